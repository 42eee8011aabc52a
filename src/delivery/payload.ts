import { isUtf8 } from 'node:buffer'
import { InvalidArgumentError } from '../errors.js'

/** What a publisher may send: text, bytes, or a plain value sent as JSON text. */
export type Message =
  string | Buffer | Uint8Array | ArrayBuffer | Record<string, unknown> | unknown[]

/** What `fetchMessage` returns: text as a string, binary as a Buffer. */
export type StoredMessage = string | Buffer

/**
 * Marks a Redis payload as binary. Redis carries bytes only, so "binary stays binary" needs a mark;
 * 0xFF never occurs in UTF-8, so no text message (from ws4redis or anyone) can start with it.
 */
export const BINARY_MARK = Buffer.from([0xff, 0x00, 0x77, 0x73, 0x66, 0x62])

/** A payload read from Redis, classified. */
export interface Decoded {
  binary: boolean
  data: Buffer
}

/** Encodes a text message for Redis: its UTF-8 bytes, verbatim. */
export function encodeText(text: string | Buffer): Buffer {
  return typeof text === 'string' ? Buffer.from(text, 'utf8') : text
}

/** Encodes a binary message for Redis: the mark, then the bytes. */
export function encodeBinary(bytes: Buffer | Uint8Array): Buffer {
  return Buffer.concat([BINARY_MARK, bytes])
}

/** Encodes any publisher message for Redis. */
export function encodeMessage(message: Message): Buffer {
  if (typeof message === 'string') return encodeText(message)
  if (Buffer.isBuffer(message) || message instanceof Uint8Array) return encodeBinary(message)
  if (message instanceof ArrayBuffer) return encodeBinary(new Uint8Array(message))
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
 * Classifies a payload from Redis: marked payloads are binary, valid UTF-8 is text (what a Django
 * ws4redis publisher sends), anything else is binary.
 */
export function decodePayload(payload: Buffer): Decoded {
  if (
    payload.length >= BINARY_MARK.length &&
    payload[0] === 0xff &&
    payload.subarray(0, BINARY_MARK.length).equals(BINARY_MARK)
  ) {
    return { binary: true, data: payload.subarray(BINARY_MARK.length) }
  }
  return { binary: !isUtf8(payload), data: payload }
}

/** The value `fetchMessage` hands back for a stored payload. */
export function toStored(payload: Buffer): StoredMessage {
  const { binary, data } = decodePayload(payload)
  return binary ? Buffer.from(data) : data.toString('utf8')
}
