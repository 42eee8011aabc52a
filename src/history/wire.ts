import { OptionError } from '../errors.js'

/** How much history a channel keeps: up to `size` messages, for `ttl` seconds after its last publish. */
export interface HistoryOptions {
  /** Messages kept per channel (a Redis stream trimmed with `MAXLEN ~ size`). */
  size: number
  /** Seconds the history lives after the channel's last publish. */
  ttl: number
}

/** Where a client (or the broker) stands in one channel's history. */
export interface StreamPosition {
  /** Changes whenever the channel's history is lost (expired, Redis lost its data). */
  epoch: string
  /** Offset of the last message: 1 for the first message of an epoch, 0 before any. */
  offset: number
}

/** Told the position a history publish gave its message (the HTTP API's publish reports it). */
export type PositionSink = (position: StreamPosition) => void

/** A message as read back from history. */
export interface HistoryEntry {
  offset: number
  /** The published payload, as it would arrive on the channel without history. */
  payload: Buffer
}

/** A channel's history from one offset on, with its current position. */
export interface HistoryRead extends StreamPosition {
  /** Entries after the offset asked for, oldest first, up to `offset` (none when it asked for the
   * position only). */
  entries: HistoryEntry[]
}

/** Seconds a channel's epoch and top offset outlive its last publish (at least its ttl): a client
 * that saw everything can still be told it missed nothing after the messages themselves expired. */
export const META_TTL = 86_400

/**
 * Marks a message published with history on the pub/sub channel: the mark, the epoch, `:`, the
 * offset, `:`, then the payload exactly as it is without history (the stream and the `expire` key
 * hold the payload alone). 0xFF never occurs in UTF-8, so no text message can start with it.
 */
export const HISTORY_MARK = Buffer.from([0xff, 0x00, 0x77, 0x73, 0x66, 0x68]) // \xff\0wsfh

/** A message from the channel: its payload and, with history, its epoch and offset. */
export interface ChannelMessage {
  payload: Buffer
  /** Null for a message published without history (a plain PUBLISH, a channel without it). */
  epoch: string | null
  offset: number
}

const COLON = 0x3a

/** Splits a payload read from a channel into its history position and the payload proper. */
export function decodeChannelMessage(raw: Buffer): ChannelMessage {
  const n = HISTORY_MARK.length
  if (
    raw.length > n &&
    raw[0] === 0xff &&
    raw[5] === 0x68 &&
    raw.subarray(0, n).equals(HISTORY_MARK)
  ) {
    const a = raw.indexOf(COLON, n)
    const b = a === -1 ? -1 : raw.indexOf(COLON, a + 1)
    if (b !== -1) {
      const offset = Number(raw.toString('latin1', a + 1, b))
      if (Number.isSafeInteger(offset) && offset > 0) {
        return { payload: raw.subarray(b + 1), epoch: raw.toString('latin1', n, a), offset }
      }
    }
  }
  return { payload: raw, epoch: null, offset: 0 }
}

/** The channel message for `payload` at `epoch`/`offset` (what the publish script sends). */
export function encodeChannelMessage(payload: Buffer, epoch: string, offset: number): Buffer {
  return Buffer.concat([HISTORY_MARK, Buffer.from(`${epoch}:${offset}:`, 'latin1'), payload])
}

/**
 * The name a client knows a channel of its connection by, without the prefix and without ids it
 * would otherwise learn (its own session key): `broadcast`, `user`, `session`, `group:<name>`.
 */
export function channelLabel(prefix: string, channel: string): string {
  const name = channel.startsWith(prefix) ? channel.slice(prefix.length) : channel
  const audience = name.slice(0, name.indexOf(':'))
  if (audience === 'group') return `group:${name.slice(6, name.lastIndexOf(':'))}`
  return audience
}

/**
 * The Redis Cluster hash tag that puts a channel's history keys in the channel's own slot (the
 * channel's `{tag}` when it has one, else its whole name). A name with `}` but no valid tag
 * cannot be matched on a cluster: its history publish fails there with CROSSSLOT.
 */
export function slotTag(channel: string): string {
  const open = channel.indexOf('{')
  if (open !== -1) {
    const close = channel.indexOf('}', open + 1)
    if (close > open + 1) return channel.slice(open + 1, close)
  }
  return channel
}

/** The stream (messages) and hash (epoch, top offset) holding a channel's history. */
export function historyKeys(channel: string): { stream: string; meta: string } {
  const tag = `{${slotTag(channel)}}`
  return {
    stream: `${tag}wsfacility:history:${channel}`,
    meta: `${tag}wsfacility:epoch:${channel}`,
  }
}

/** Throws OptionError unless `value` is history options (or null/false for none). */
export function resolveHistory(name: string, value: unknown): HistoryOptions | null {
  if (value === undefined || value === null || value === false) return null
  if (typeof value !== 'object' || Array.isArray(value))
    throw new OptionError(`${name} must be { size, ttl } or false`)
  const { size, ttl } = value as Partial<HistoryOptions>
  if (!(typeof size === 'number' && Number.isInteger(size) && size >= 1 && size <= 1_000_000))
    throw new OptionError(`${name}.size must be a whole number from 1 to 1000000`)
  if (!(typeof ttl === 'number' && Number.isInteger(ttl) && ttl >= 1 && ttl <= 31_536_000))
    throw new OptionError(`${name}.ttl must be a whole number of seconds from 1 to 31536000`)
  return Object.freeze({ size, ttl })
}
