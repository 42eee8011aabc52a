import { isUtf8 } from 'node:buffer'
import { InvalidArgumentError } from '../errors.js'
import type { WireFormat } from '../facility/definition.js'

/** What a publisher may send: text, bytes, or a plain value sent as JSON text. */
export type Message =
  string | Buffer | Uint8Array | ArrayBuffer | Record<string, unknown> | unknown[]

/** What `fetchMessage` returns: text as a string, binary as a Buffer. */
export type StoredMessage = string | Buffer

/** Encodes a text message for Redis: its UTF-8 bytes, verbatim. */
export function encodeText(text: string | Buffer): Buffer {
  return typeof text === 'string' ? Buffer.from(text, 'utf8') : text
}

/** True for the bytes a publisher may send (Buffer, Uint8Array, ArrayBuffer). */
export function isBytes(message: Message): message is Buffer | Uint8Array | ArrayBuffer {
  return message instanceof Uint8Array || message instanceof ArrayBuffer
}

/**
 * Encodes any publisher message for Redis, exactly as a Redis reader (ws4redis's `fetch_message`,
 * redis-cli) should see it: text as its UTF-8 bytes, bytes as they are (copied, so the caller may
 * reuse its buffer), objects as JSON text. Nothing marks bytes as binary: how a payload reaches
 * clients is the facility's format (see isBinaryPayload).
 */
export function encodeMessage(message: Message): Buffer {
  if (typeof message === 'string') return encodeText(message)
  if (message instanceof Uint8Array) return Buffer.from(message)
  if (message instanceof ArrayBuffer) return Buffer.from(new Uint8Array(message))
  if (message !== null && typeof message === 'object') {
    let json: string
    try {
      json = JSON.stringify(message)
    } catch (err) {
      throw new InvalidArgumentError(`message cannot be sent as JSON: ${String(err)}`)
    }
    return encodeText(json)
  }
  throw new InvalidArgumentError('message must be a string, bytes, or a JSON-serialisable object')
}

/**
 * Whether a payload from Redis reaches clients of a `format` facility as a binary frame: always
 * on `binary` facilities; elsewhere only when it is not valid UTF-8, which a text frame must be
 * (anything a ws4redis publisher sends is text).
 */
export function isBinaryPayload(format: WireFormat, payload: Buffer): boolean {
  return format === 'binary' || !isUtf8(payload)
}

/** The value `fetchMessage` hands back for a payload stored on a `format` facility. */
export function toStored(payload: Buffer, format: WireFormat): StoredMessage {
  return isBinaryPayload(format, payload) ? Buffer.from(payload) : payload.toString('utf8')
}
