import type { ChannelRecovery, ServerFrame } from '../delivery/envelope.js'
import type { Hub, OpenRecovery } from '../delivery/hub.js'
import { HttpError } from '../errors.js'
import type { StreamPosition } from './wire.js'

/** The positions a client asks to recover from, by channel label. */
export type RecoverRequest = ReadonlyMap<string, StreamPosition>

/** Most channels one `recover` parameter may name. */
const MAX_CHANNELS = 64

/**
 * Parses the `recover` query parameter: JSON `{"<label>":{"epoch":"…","offset":N},…}` (URL-encoded),
 * the positions the client had on its channels. Throws a 400 HttpError for anything else.
 * @example parseRecoverParam('{"broadcast":{"epoch":"1733","offset":12}}')
 */
export function parseRecoverParam(value: string | undefined): RecoverRequest {
  const out = new Map<string, StreamPosition>()
  if (value === undefined || value === '') return out
  let parsed: unknown
  try {
    parsed = JSON.parse(value)
  } catch {
    throw new HttpError(400, 'recover must be JSON', 'WSF_RECOVER_INVALID')
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
    throw new HttpError(400, 'recover must be a JSON object', 'WSF_RECOVER_INVALID')
  const entries = Object.entries(parsed as Record<string, unknown>)
  if (entries.length > MAX_CHANNELS)
    throw new HttpError(
      400,
      `recover names more than ${MAX_CHANNELS} channels`,
      'WSF_RECOVER_INVALID',
    )
  for (const [label, position] of entries) {
    const p = position as Partial<StreamPosition> | null
    if (
      typeof p !== 'object' ||
      p === null ||
      typeof p.epoch !== 'string' ||
      p.epoch.length > 64 ||
      typeof p.offset !== 'number' ||
      !Number.isSafeInteger(p.offset) ||
      p.offset < 0
    ) {
      throw new HttpError(
        400,
        'recover positions are {"epoch": string, "offset": integer >= 0}',
        'WSF_RECOVER_INVALID',
      )
    }
    out.set(label, { epoch: p.epoch, offset: p.offset })
  }
  return out
}

/** What a connection gets from the history of its channels as it opens. */
export interface Recoveries {
  /** By channel name: its position, and the missed messages when it recovered. */
  channels: Map<string, OpenRecovery>
  /** Labels the client gave a position for that belong to its channels. */
  requested: Set<string>
}

/**
 * Asks each channel's history what the connection missed since the positions it gave (or only
 * where the channel stands). Called once the connection is registered on its channels, so that
 * everything published after each answer reaches it live.
 */
export async function recoverChannels(
  hub: Hub,
  channels: readonly string[],
  request: RecoverRequest,
  labelOf: (channel: string) => string,
): Promise<Recoveries> {
  const requested = new Set<string>()
  const answers = await Promise.all(
    channels.map((channel) => {
      const label = labelOf(channel)
      const position = request.get(label)
      if (position) requested.add(label)
      return hub.recover(channel, position?.offset ?? null, position?.epoch ?? null)
    }),
  )
  const out = new Map<string, OpenRecovery>()
  answers.forEach((answer, i) => answer && out.set(channels[i]!, answer))
  return { channels: out, requested }
}

/** The `recovered` frame a json facility's client gets after its missed messages. */
export function recoveredFrame(recoveries: Recoveries): ServerFrame {
  const channels: Record<string, ChannelRecovery> = {}
  let recovered = recoveries.requested.size > 0
  for (const r of recoveries.channels.values()) {
    const asked = recoveries.requested.has(r.label)
    channels[r.label] = {
      epoch: r.epoch,
      offset: r.offset,
      recovered: asked && r.recovered,
      missed: r.frames.length,
    }
    if (asked && !r.recovered) recovered = false
  }
  return { type: 'recovered', recovered, channels }
}

/** The frame telling a json client that a channel's history was lost while it was connected. */
export function lostFrame(label: string, position: StreamPosition): ServerFrame {
  return {
    type: 'recovered',
    recovered: false,
    channels: { [label]: { ...position, recovered: false, missed: 0 } },
  }
}
