import { dataFrame, type HistoryPosition } from './envelope.js'
import type { WireFormat } from '../facility/definition.js'
import { decodePayload } from './payload.js'

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
 * The frame clients of a facility receive for a payload from Redis: as is for `raw`; text
 * wrapped in `{"type":"data","data":…}` for `json` (binary stays a binary frame), with the channel's
 * label, epoch and offset when it has history.
 */
export function frameFor(format: WireFormat, payload: Buffer, position?: HistoryPosition): Buffer {
  const { binary, data } = decodePayload(payload)
  if (format === 'json' && !binary)
    return frame(Buffer.from(dataFrame(data.toString('utf8'), position)), false)
  return frame(data, binary)
}
