/**
 * Channel positions: where the client stands in each channel's history (json facilities with
 * `history`), read from the frames the broker sends, and sent back as `?recover=` on reconnect.
 */

/** Where the client stands in one channel: the history's epoch and the last offset it has. */
export interface ChannelPosition {
  /** Changes whenever the channel's history is lost on the server. */
  epoch: string
  /** Offset of the last message the client has (1 for the first of an epoch, 0 before any). */
  offset: number
}

/**
 * The client's positions by channel label (`broadcast`, `user`, `session`, `group:<name>`): what
 * `client.positions` returns and the `positions` option takes. Plain JSON, e.g. for
 * sessionStorage across a page reload.
 */
export type Positions = Record<string, ChannelPosition>

/** One channel of a `recovered` frame. */
export interface ChannelRecovery extends ChannelPosition {
  /** True when the client gave a position for this channel and got everything it missed. */
  recovered: boolean
  /** Messages the server sent from history, before the `recovered` frame. */
  missed: number
}

/** What the `'recovered'` event carries: the broker's `recovered` frame, without its `type`. */
export interface RecoveredEvent {
  /** True when the client gave positions and every one of its channels was recovered. */
  recovered: boolean
  /** By channel label; `offset` is the client's position from now on. */
  channels: Record<string, ChannelRecovery>
}

/** Most channels one `recover` parameter may name (the broker refuses more with 400): past it,
 * the most recently updated ones are sent. */
export const MAX_POSITIONS = 64
/** Longest epoch the broker accepts in `recover`. */
const MAX_EPOCH = 64

function isPosition(value: unknown): value is ChannelPosition {
  const p = value as Partial<ChannelPosition> | null
  return (
    typeof p === 'object' &&
    p !== null &&
    typeof p.epoch === 'string' &&
    p.epoch.length <= MAX_EPOCH &&
    typeof p.offset === 'number' &&
    Number.isSafeInteger(p.offset) &&
    p.offset >= 0
  )
}

/** Checks the `positions` option; returns its channels as a map. Throws a TypeError. */
export function resolvePositions(value: unknown): Map<string, ChannelPosition> {
  const out = new Map<string, ChannelPosition>()
  if (value === undefined || value === null) return out
  if (typeof value !== 'object' || Array.isArray(value)) {
    throw new TypeError('positions must be an object of { epoch, offset } by channel label')
  }
  for (const [label, position] of Object.entries(value as Record<string, unknown>)) {
    if (!isPosition(position)) {
      throw new TypeError(
        `positions.${label} must be { epoch: string (up to ${MAX_EPOCH} characters), offset: integer >= 0 }`,
      )
    }
    out.set(label, { epoch: position.epoch, offset: position.offset })
  }
  return out
}

/** A data frame's position: label, epoch and offset. */
export interface DataPosition extends ChannelPosition {
  channel: string
}

/** What a broker frame is, as far as positions go. */
export type PositionFrame =
  | { type: 'data' | 'position'; position: DataPosition }
  | { type: 'recovered'; event: RecoveredEvent }

/** The head of a data frame with a position, as the broker writes it (delivery/envelope.ts). */
const DATA_HEAD =
  /^\{"type":"data","channel":("(?:[^"\\]|\\.)*"),"epoch":("(?:[^"\\]|\\.)*"),"offset":(\d+),"data":/

/** A `position` frame: the broker did not echo the client's own message at this position. */
const POSITION =
  /^\{"type":"position","channel":("(?:[^"\\]|\\.)*"),"epoch":("(?:[^"\\]|\\.)*"),"offset":(\d+)\}$/

const ENVELOPE = '{"type":"'
const DATA = '{"type":"data",'
const RECOVERED = '{"type":"recovered",'
const POSITION_START = '{"type":"position",'

/**
 * Reads the position of a text frame from the broker, cheaply: only frames starting with
 * `{"type":"` are looked at; a data frame's head is matched without parsing its data; a
 * `recovered` frame (small) is parsed. Null for every other frame.
 */
export function readPositionFrame(data: unknown): PositionFrame | null {
  if (typeof data !== 'string' || !data.startsWith(ENVELOPE)) return null
  if (data.startsWith(DATA)) return readHead('data', DATA_HEAD.exec(data))
  if (data.startsWith(RECOVERED)) return readRecovered(data)
  if (data.startsWith(POSITION_START)) return readHead('position', POSITION.exec(data))
  return null
}

/** The position matched by DATA_HEAD or POSITION (channel, epoch, offset). */
function readHead(type: 'data' | 'position', m: RegExpExecArray | null): PositionFrame | null {
  if (!m) return null
  try {
    const channel = JSON.parse(m[1]!) as string
    const epoch = JSON.parse(m[2]!) as string
    const offset = Number(m[3])
    if (!Number.isSafeInteger(offset)) return null
    return { type, position: { channel, epoch, offset } }
  } catch {
    return null
  }
}

function readRecovered(data: string): PositionFrame | null {
  let frame: unknown
  try {
    frame = JSON.parse(data)
  } catch {
    return null
  }
  const f = frame as { recovered?: unknown; channels?: unknown }
  if (typeof f.recovered !== 'boolean') return null
  if (typeof f.channels !== 'object' || f.channels === null || Array.isArray(f.channels)) {
    return null
  }
  const channels: [string, ChannelRecovery][] = []
  for (const [label, value] of Object.entries(f.channels as Record<string, unknown>)) {
    const c = value as ChannelRecovery
    if (!isPosition(value) || typeof c.recovered !== 'boolean' || typeof c.missed !== 'number') {
      return null
    }
    channels.push([
      label,
      { epoch: c.epoch, offset: c.offset, recovered: c.recovered, missed: c.missed },
    ])
  }
  const event = { recovered: f.recovered, channels: Object.fromEntries(channels) }
  return { type: 'recovered', event }
}

/**
 * The `recover` query parameter's value (before URL encoding) for `positions`, or null without
 * any: the last `MAX_POSITIONS` of the map (kept in update order by the client).
 */
export function recoverParam(positions: ReadonlyMap<string, ChannelPosition>): string | null {
  if (positions.size === 0) return null
  return JSON.stringify(toObject([...positions].slice(-MAX_POSITIONS)))
}

/** Positions as a plain object (copies; a label such as `__proto__` stays an own property). */
export function toObject(entries: Iterable<[string, ChannelPosition]>): Positions {
  return Object.fromEntries([...entries].map(([label, p]) => [label, { ...p }]))
}
