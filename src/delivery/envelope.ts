/**
 * The JSON envelope of facilities with `format: 'json'` (the bazis-ws protocol): every frame is
 * one object discriminated by `type`, parsed once at the boundary.
 */

/** Error codes of `{"type":"error"}` frames. */
export type EnvelopeErrorCode =
  | 'expired_token'
  | 'invalid_token'
  | 'user_not_found'
  | 'invalid_message'
  | 'forbidden'
  | 'rate_limited'
  | 'message_too_large'

/** What a client may send to join or leave a channel of its facility (docs/live-subscriptions.md). */
export interface MembershipFrame {
  type: 'join' | 'leave'
  /** A group of the facility, or `channel`: `broadcast`, `user`, `session`, `group:<name>`. */
  group?: unknown
  channel?: unknown
  /** Echoed in the answer, so the client can match it. */
  id?: string | number | undefined
  /** Join only: the client's position in the channel's history; what it missed is sent first. */
  since?: { epoch: string; offset: number } | undefined
}

/** An id of a join frame, as echoed in the answer. */
export type FrameId = string | number

/** What a client may send. */
export type ClientFrame =
  | { type: 'ping' }
  | { type: 'token'; token: string }
  | { type: 'data'; data: unknown }
  | MembershipFrame

/** Where a channel's history stands for a client, in a `recovered` frame. */
export interface ChannelRecovery {
  epoch: string
  /** The offset the client is caught up to (its position from now on). */
  offset: number
  /** True when the client asked for this channel and got everything it missed. */
  recovered: boolean
  /** Messages it was sent from history. */
  missed: number
}

/** What the server sends. */
export type ServerFrame =
  | { type: 'pong' }
  | {
      type: 'data'
      data: unknown
      channel?: string | undefined
      epoch?: string | undefined
      offset?: number | undefined
    }
  | { type: 'recovered'; recovered: boolean; channels: Record<string, ChannelRecovery> }
  /** To a publisher without echo, in place of its own message on a channel with history. */
  | { type: 'position'; channel: string; epoch: string; offset: number }
  | { type: 'error'; code: EnvelopeErrorCode; detail: string }
  | { type: 'join' | 'leave'; user: string; facility?: string | undefined }
  /** The answer to a join frame; with history, where the channel stands for the client. */
  | {
      type: 'joined'
      channel: string
      id?: FrameId | undefined
      epoch?: string | undefined
      offset?: number | undefined
      recovered?: boolean | undefined
      missed?: number | undefined
    }
  | { type: 'left'; channel: string; id?: FrameId | undefined }
  | {
      type: 'join-refused'
      channel?: string | undefined
      code: string
      reason: string
      id?: FrameId | undefined
    }

/** A client frame, or why it is not one. */
export type ParsedFrame = { ok: true; frame: ClientFrame } | { ok: false; detail: string }

/**
 * Parses a client's text frame. `{"token": "…"}` (bazis-ws's in-band token, no `type`) is a
 * token frame; `{"type":"data","data":…}` carries data; anything else is refused with a reason.
 */
export function parseClientFrame(text: string): ParsedFrame {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    return { ok: false, detail: 'message is not valid JSON' }
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return { ok: false, detail: 'message must be a JSON object' }
  }
  const v = value as Record<string, unknown>
  if (v.type === undefined && typeof v.token === 'string')
    return { ok: true, frame: { type: 'token', token: v.token } }
  switch (v.type) {
    case 'ping':
      return { ok: true, frame: { type: 'ping' } }
    case 'token':
      return typeof v.token === 'string'
        ? { ok: true, frame: { type: 'token', token: v.token } }
        : { ok: false, detail: 'token must be a string' }
    case 'data':
      return 'data' in v
        ? { ok: true, frame: { type: 'data', data: v.data } }
        : { ok: false, detail: 'data frame without data' }
    case 'join':
    case 'leave':
      return parseMembership(v.type, v)
    default:
      return { ok: false, detail: 'unknown message type' }
  }
}

function isFrameId(id: unknown): id is FrameId {
  return (typeof id === 'string' && id.length <= 64) || Number.isSafeInteger(id)
}

/** A join or leave frame; its group or channel is checked when it is applied. */
function parseMembership(type: 'join' | 'leave', v: Record<string, unknown>): ParsedFrame {
  if (v.id !== undefined && !isFrameId(v.id))
    return { ok: false, detail: 'id must be a string (at most 64 characters) or an integer' }
  const frame: MembershipFrame = { type, group: v.group, channel: v.channel }
  if (v.id !== undefined) frame.id = v.id as FrameId
  if (type === 'join' && v.since !== undefined) {
    const p = v.since as { epoch?: unknown; offset?: unknown } | null
    if (
      typeof p !== 'object' ||
      p === null ||
      typeof p.epoch !== 'string' ||
      p.epoch.length > 64 ||
      !Number.isSafeInteger(p.offset) ||
      (p.offset as number) < 0
    )
      return { ok: false, detail: 'since is {"epoch": string, "offset": integer >= 0}' }
    frame.since = { epoch: p.epoch, offset: p.offset as number }
  }
  return { ok: true, frame }
}

/** Serialises a server frame. */
export function serverFrame(frame: ServerFrame): string {
  return JSON.stringify(frame)
}

/** The last head built by positionHead: messages of one channel and epoch come in runs. */
let lastHead = { channel: '', epoch: '', head: '' }

/** `{"type":"data","channel":…,"epoch":…,"offset":` for a channel label and epoch. */
function positionHead(channel: string, epoch: string): string {
  const last = lastHead
  if (last.channel === channel && last.epoch === epoch && last.head !== '') return last.head
  const head = `{"type":"data","channel":${JSON.stringify(channel)},"epoch":${JSON.stringify(epoch)},"offset":`
  lastHead = { channel, epoch, head }
  return head
}

/** What JSON text can start with: an object, array, string, number, true, false or null. */
const JSON_START = /^\s*[{["\-0-9tfn]/

/**
 * Wraps a published payload for a JSON facility: JSON text is embedded as a value, other text as
 * a string — so a Django publisher's plain strings and a route's objects both arrive as data, and
 * a number, boolean or null a client sent arrives as itself.
 */
export function dataFrame(text: string, position?: HistoryPosition): string {
  const head =
    position === undefined
      ? '{"type":"data","data":'
      : `${positionHead(position.channel, position.epoch)}${position.offset},"data":`
  if (JSON_START.test(text)) {
    try {
      JSON.parse(text)
      return `${head}${text}}`
    } catch {
      // not JSON after all: sent as a string below
    }
  }
  return `${head}${JSON.stringify(text)}}`
}

/** The channel position a data frame of a facility with history carries. */
export interface HistoryPosition {
  /** The channel's label (history/wire.ts channelLabel). */
  channel: string
  epoch: string
  offset: number
}
