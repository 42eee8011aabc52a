import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { frame, frameFor } from '../../src/delivery/frame.js'
import { BINARY_MARK, encodeBinary, encodeText } from '../../src/delivery/payload.js'

/** The parts of one unmasked server frame, read back by the RFC 6455 §5.2 rules. */
function parse(bytes: Buffer): { fin: boolean; rsv: number; opcode: number; payload: Buffer } {
  const b0 = bytes[0]!
  const b1 = bytes[1]!
  assert.equal(b1 & 0x80, 0, 'server frames are never masked')
  let len = b1 & 0x7f
  let at = 2
  if (len === 126) {
    len = bytes.readUInt16BE(2)
    at = 4
  } else if (len === 127) {
    len = Number(bytes.readBigUInt64BE(2))
    at = 10
  }
  assert.equal(bytes.length, at + len, 'the frame is exactly header + payload')
  return { fin: (b0 & 0x80) !== 0, rsv: b0 & 0x70, opcode: b0 & 0x0f, payload: bytes.subarray(at) }
}

describe('frame', () => {
  it('builds a final text frame with the payload after a 2-byte header', () => {
    const out = frame(Buffer.from('hello'), false)
    assert.deepEqual([...out.subarray(0, 2)], [0x81, 5])
    const f = parse(out)
    assert.equal(f.fin, true)
    assert.equal(f.rsv, 0)
    assert.equal(f.opcode, 0x1)
    assert.equal(f.payload.toString(), 'hello')
  })

  it('marks binary frames with opcode 2', () => {
    const out = frame(Buffer.from([0, 1, 2]), true)
    assert.equal(out[0], 0x82)
    assert.deepEqual([...parse(out).payload], [0, 1, 2])
  })

  it('frames an empty payload as a bare header', () => {
    assert.deepEqual([...frame(Buffer.alloc(0), false)], [0x81, 0])
  })

  it('uses the 7-bit length up to 125 bytes', () => {
    const out = frame(Buffer.alloc(125, 0x61), false)
    assert.equal(out.length, 127)
    assert.equal(out[1], 125)
    assert.equal(parse(out).payload.length, 125)
  })

  it('uses the 16-bit length from 126 to 65535 bytes', () => {
    for (const len of [126, 65535]) {
      const out = frame(Buffer.alloc(len, 0x62), true)
      assert.equal(out.length, len + 4)
      assert.equal(out[1], 126)
      assert.equal(out.readUInt16BE(2), len)
      assert.ok(parse(out).payload.equals(Buffer.alloc(len, 0x62)))
    }
  })

  it('uses the 64-bit length from 65536 bytes', () => {
    const data = Buffer.alloc(65536)
    for (let i = 0; i < data.length; i++) data[i] = i % 251
    const out = frame(data, true)
    assert.equal(out.length, 65536 + 10)
    assert.equal(out[1], 127)
    assert.equal(out.readUInt32BE(2), 0, 'high 32 bits')
    assert.equal(out.readUInt32BE(6), 65536, 'low 32 bits')
    assert.ok(parse(out).payload.equals(data))
  })

  it('copies the payload, so a later change of the source leaves the frame intact', () => {
    const data = Buffer.from('abc')
    const out = frame(data, false)
    data[0] = 0x7a
    assert.equal(parse(out).payload.toString(), 'abc')
  })
})

describe('frameFor', () => {
  it('sends text as is on raw facilities', () => {
    const f = parse(frameFor('raw', encodeText('plain text')))
    assert.equal(f.opcode, 0x1)
    assert.equal(f.payload.toString(), 'plain text')
  })

  it('sends marked binary payloads as binary frames without the mark, on raw facilities', () => {
    const f = parse(frameFor('raw', encodeBinary(Buffer.from([1, 2, 3]))))
    assert.equal(f.opcode, 0x2)
    assert.deepEqual([...f.payload], [1, 2, 3])
  })

  it('sends payloads that are not UTF-8 as binary frames', () => {
    const f = parse(frameFor('raw', Buffer.from([0xc3, 0x28])))
    assert.equal(f.opcode, 0x2)
    assert.deepEqual([...f.payload], [0xc3, 0x28])
  })

  it('wraps JSON text as a data envelope on json facilities', () => {
    const f = parse(frameFor('json', encodeText('{"a":1}')))
    assert.equal(f.opcode, 0x1)
    assert.deepEqual(JSON.parse(f.payload.toString()), { type: 'data', data: { a: 1 } })
  })

  it('wraps plain text as a string on json facilities', () => {
    const f = parse(frameFor('json', encodeText('hello')))
    assert.deepEqual(JSON.parse(f.payload.toString()), { type: 'data', data: 'hello' })
  })

  it('wraps multi-byte UTF-8 text with the right byte length', () => {
    const f = parse(frameFor('json', encodeText('"héllo ☃"')))
    assert.deepEqual(JSON.parse(f.payload.toString('utf8')), { type: 'data', data: 'héllo ☃' })
  })

  it('keeps binary payloads binary (and unwrapped) on json facilities', () => {
    const f = parse(frameFor('json', encodeBinary(Buffer.from([9, 8]))))
    assert.equal(f.opcode, 0x2)
    assert.deepEqual([...f.payload], [9, 8])
  })

  it('treats a payload that is only the binary mark as an empty binary message', () => {
    const f = parse(frameFor('raw', Buffer.from(BINARY_MARK)))
    assert.equal(f.opcode, 0x2)
    assert.equal(f.payload.length, 0)
  })
})
