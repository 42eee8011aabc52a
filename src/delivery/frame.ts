import { dataFrame, type HistoryPosition } from './envelope.js'
import type { WireFormat } from '../facility/definition.js'
import { encodeMessage, isBinaryPayload, isBytes, type Message } from './payload.js'

/**
 * One complete unmasked server-to-client WebSocket frame (RFC 6455 §5.2), built once per message
 * so every recipient gets the same bytes.
 */
export function frame(data: Buffer, binary: boolean): Buffer {
  const len = data.length
  const headerLength = len < 126 ? 2 : len < 65536 ? 4 : 10
  const out = Buffer.allocUnsafe(headerLength + len)
  out[0] = 0x80 | (binary ? 0x2 : 0x1)
  if (len < 126) {
    out[1] = len
  } else if (len < 65536) {
    out[1] = 126
    out.writeUInt16BE(len, 2)
  } else {
    out[1] = 127
    out.writeUInt32BE(Math.floor(len / 2 ** 32), 2)
    out.writeUInt32BE(len >>> 0, 6)
  }
  data.copy(out, headerLength)
  return out
}

/**
 * The frame clients of a facility receive for a payload from Redis: as is for `raw` (a text frame
 * when it is valid UTF-8, else a binary one) and `binary` (always a binary frame); text wrapped in
 * `{"type":"data","data":…}` for `json` (bytes that are not UTF-8 stay a binary frame), with the
 * channel's label, epoch and offset when it has history.
 */
export function frameFor(format: WireFormat, payload: Buffer, position?: HistoryPosition): Buffer {
  const binary = isBinaryPayload(format, payload)
  if (format === 'json' && !binary)
    return frame(Buffer.from(dataFrame(payload.toString('utf8'), position)), false)
  return frame(payload, binary)
}

/**
 * The frame for a message sent to one connection without Redis in between (`Connection.send`,
 * `broker.sendTo`), which keeps what it is: bytes as a binary frame, text and objects as text (in
 * the envelope on `json` facilities); on `binary` facilities every message is a binary frame.
 */
export function messageFrame(format: WireFormat, message: Message): Buffer {
  const payload = encodeMessage(message)
  if (isBytes(message) || format === 'binary') return frame(payload, true)
  return frameFor(format, payload)
}
