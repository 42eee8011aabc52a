import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { frame, frameFor, messageFrame } from '../../src/delivery/frame.js'
import { encodeText } from '../../src/delivery/payload.js'

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

  it('sends bytes that are valid UTF-8 as a text frame on raw facilities (no mark in Redis)', () => {
    const f = parse(frameFor('raw', Buffer.from([0x68, 0x69, 0x01])))
    assert.equal(f.opcode, 0x1)
    assert.deepEqual([...f.payload], [0x68, 0x69, 0x01])
  })

  it('sends a payload that starts with 0xff as it is: bytes carry no mark any more', () => {
    const bytes = Buffer.from([0xff, 0x00, 0x77, 0x73, 0x66, 0x62, 1, 2])
    const f = parse(frameFor('raw', bytes))
    assert.equal(f.opcode, 0x2)
    assert.deepEqual(f.payload, bytes)
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

  it('keeps bytes that are not UTF-8 binary (and unwrapped) on json facilities', () => {
    const f = parse(frameFor('json', Buffer.from([9, 8, 0xff])))
    assert.equal(f.opcode, 0x2)
    assert.deepEqual([...f.payload], [9, 8, 0xff])
  })

  it('sends every payload as a binary frame on binary facilities, text included', () => {
    for (const payload of [encodeText('plain text'), Buffer.from([0xc3, 0x28]), Buffer.alloc(0)]) {
      const f = parse(frameFor('binary', payload))
      assert.equal(f.opcode, 0x2)
      assert.deepEqual(f.payload, payload)
    }
  })
})

describe('messageFrame (Connection.send, sendTo: no Redis in between)', () => {
  it('keeps bytes a binary frame even when they are valid UTF-8, on raw and json facilities', () => {
    for (const format of ['raw', 'json'] as const) {
      const f = parse(messageFrame(format, Buffer.from('ascii')))
      assert.equal(f.opcode, 0x2, format)
      assert.equal(f.payload.toString(), 'ascii')
    }
    assert.deepEqual([...parse(messageFrame('raw', new Uint8Array([1, 2]))).payload], [1, 2])
  })

  it('sends text and objects as text, in the envelope on json facilities', () => {
    const raw = parse(messageFrame('raw', { a: 1 }))
    assert.equal(raw.opcode, 0x1)
    assert.equal(raw.payload.toString(), '{"a":1}')
    const json = parse(messageFrame('json', 'hi'))
    assert.equal(json.opcode, 0x1)
    assert.deepEqual(JSON.parse(json.payload.toString()), { type: 'data', data: 'hi' })
  })

  it('sends everything as a binary frame on binary facilities', () => {
    const f = parse(messageFrame('binary', 'text'))
    assert.equal(f.opcode, 0x2)
    assert.equal(f.payload.toString(), 'text')
  })
})
