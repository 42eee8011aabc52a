import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { describe, it } from 'node:test'
import * as wsModule from 'ws'
import { InvalidArgumentError } from '../src/errors.js'
import { encodeMessage, isBinaryPayload, type Message, toStored } from '../src/delivery/payload.js'
import { frame } from '../src/delivery/frame.js'

/** ws's frame parser (a Writable); exported at runtime by ws 8 but missing from @types/ws. */
interface WsReceiver {
  on(event: 'message', listener: (data: Buffer, isBinary: boolean) => void): this
  on(event: 'error', listener: (err: Error & { code?: string }) => void): this
  write(chunk: Buffer, callback?: (err?: Error | null) => void): boolean
}
type ReceiverConstructor = new (options?: { isServer?: boolean }) => WsReceiver
const { Receiver } = wsModule as unknown as { Receiver: ReceiverConstructor }

describe('encodeMessage', () => {
  it('keeps text as text, byte for byte', () => {
    const encoded = encodeMessage('héllo wörld ✓')
    assert.deepEqual(encoded, Buffer.from('héllo wörld ✓', 'utf8'))
    assert.equal(isBinaryPayload('raw', encoded), false)
  })

  it('encodes the empty string as no bytes', () => {
    assert.equal(encodeMessage('').length, 0)
  })

  it('stores a Buffer as exactly its bytes, without any mark (what a Redis reader gets)', () => {
    const bytes = Buffer.from([1, 2, 3, 0xff])
    assert.deepEqual(encodeMessage(bytes), bytes)
    assert.deepEqual(encodeMessage(Buffer.from('plain ascii')), Buffer.from('plain ascii'))
    assert.equal(encodeMessage(Buffer.alloc(0)).length, 0)
  })

  it('copies bytes, so the caller may reuse its buffer at once', () => {
    const bytes = Buffer.from([1, 2, 3])
    const encoded = encodeMessage(bytes)
    bytes[0] = 9
    assert.deepEqual([...encoded], [1, 2, 3])
  })

  it('stores a Uint8Array as its bytes, including a view into a larger buffer', () => {
    const whole = new Uint8Array([9, 8, 7, 6, 5, 4])
    const view = new Uint8Array(whole.buffer, 2, 3)
    assert.deepEqual([...encodeMessage(view)], [7, 6, 5])
  })

  it('stores an ArrayBuffer as its bytes', () => {
    const ab = new Uint8Array([0, 0xfe, 0xff, 0x80]).buffer
    assert.deepEqual([...encodeMessage(ab)], [0, 0xfe, 0xff, 0x80])
  })

  it('sends objects and arrays as JSON text', () => {
    const object = encodeMessage({ text: 'hi', n: 1, nested: { ok: true } })
    assert.deepEqual(JSON.parse(object.toString('utf8')), {
      text: 'hi',
      n: 1,
      nested: { ok: true },
    })
    assert.equal(encodeMessage([1, 'two', null]).toString('utf8'), '[1,"two",null]')
  })

  it('refuses values that are neither text, bytes nor objects', () => {
    for (const value of [42, null, undefined, true, Symbol('x')]) {
      assert.throws(
        () => encodeMessage(value as unknown as Message),
        (err: unknown) =>
          err instanceof InvalidArgumentError && err.code === 'WSF_INVALID_ARGUMENT',
      )
    }
  })
})

describe('isBinaryPayload', () => {
  it('classifies valid UTF-8 (what ws4redis publishes) as text on raw and json facilities', () => {
    const payload = Buffer.from('{"message": "from Django", "emoji": "🎉"}', 'utf8')
    assert.equal(isBinaryPayload('raw', payload), false)
    assert.equal(isBinaryPayload('json', payload), false)
    assert.equal(isBinaryPayload('raw', Buffer.from([1, 2, 3])), false, 'ASCII control bytes')
    assert.equal(isBinaryPayload('raw', Buffer.alloc(0)), false)
  })

  it('classifies bytes that are not UTF-8 as binary on every facility', () => {
    for (const bytes of [[0xc3, 0x28], [0xff], [0x61, 0x80, 0x62], [0xed, 0xa0, 0x80]]) {
      const payload = Buffer.from(bytes)
      for (const format of ['raw', 'binary', 'json'] as const)
        assert.equal(isBinaryPayload(format, payload), true, `${format} ${payload.toString('hex')}`)
    }
  })

  it('classifies every payload as binary on binary facilities, valid UTF-8 included', () => {
    assert.equal(isBinaryPayload('binary', Buffer.from('plain ascii')), true)
    assert.equal(isBinaryPayload('binary', Buffer.alloc(0)), true)
  })
})

describe('toStored', () => {
  it('returns text as a string and bytes that are not UTF-8 as a Buffer', () => {
    assert.equal(toStored(encodeMessage('hello'), 'raw'), 'hello')
    const stored = toStored(encodeMessage(Buffer.from([1, 2, 0xff])), 'raw')
    assert.ok(Buffer.isBuffer(stored))
    assert.deepEqual([...stored], [1, 2, 0xff])
  })

  it('returns a Buffer for every payload of a binary facility', () => {
    const stored = toStored(Buffer.from('ascii bytes'), 'binary')
    assert.ok(Buffer.isBuffer(stored))
    assert.equal(stored.toString(), 'ascii bytes')
  })
})

interface ParsedFrame {
  fin: boolean
  rsv: number
  opcode: number
  masked: boolean
  length: number
  payload: Buffer
}

/** Decodes one frame header by hand (RFC 6455 §5.2) and checks the frame has no trailing bytes. */
function parseFrame(buf: Buffer): ParsedFrame {
  const b0 = buf.readUInt8(0)
  const b1 = buf.readUInt8(1)
  let length = b1 & 0x7f
  let offset = 2
  if (length === 126) {
    length = buf.readUInt16BE(2)
    offset = 4
  } else if (length === 127) {
    length = Number(buf.readBigUInt64BE(2))
    offset = 10
  }
  assert.equal(buf.length, offset + length, 'frame length is header plus payload')
  return {
    fin: (b0 & 0x80) !== 0,
    rsv: b0 & 0x70,
    opcode: b0 & 0x0f,
    masked: (b1 & 0x80) !== 0,
    length,
    payload: buf.subarray(offset),
  }
}

const LENGTHS = [0, 1, 125, 126, 127, 65535, 65536, 70000]

function textOf(length: number): Buffer {
  // Multi-byte characters would make the byte length differ from the string length; the
  // last bytes stay ASCII so every length is reachable.
  const text = 'ü'.repeat(Math.floor(length / 2)) + 'a'.repeat(length % 2)
  const buf = Buffer.from(text, 'utf8')
  assert.equal(buf.length, length)
  return buf
}

describe('frame', () => {
  for (const length of LENGTHS) {
    it(`frames ${length} bytes of text with FIN, opcode 1, no mask and the right length`, () => {
      const data = textOf(length)
      const parsed = parseFrame(frame(data, false))
      assert.equal(parsed.fin, true)
      assert.equal(parsed.rsv, 0)
      assert.equal(parsed.opcode, 1)
      assert.equal(parsed.masked, false)
      assert.equal(parsed.length, length)
      assert.deepEqual(parsed.payload, data)
    })

    it(`frames ${length} bytes of binary with FIN, opcode 2, no mask and the right length`, () => {
      const data = randomBytes(length)
      const parsed = parseFrame(frame(data, true))
      assert.equal(parsed.fin, true)
      assert.equal(parsed.rsv, 0)
      assert.equal(parsed.opcode, 2)
      assert.equal(parsed.masked, false)
      assert.equal(parsed.length, length)
      assert.deepEqual(parsed.payload, data)
    })
  }

  it('uses the shortest length encoding', () => {
    assert.equal(frame(Buffer.alloc(125), true).length, 2 + 125)
    assert.equal(frame(Buffer.alloc(126), true).length, 4 + 126)
    assert.equal(frame(Buffer.alloc(65535), true).length, 4 + 65535)
    assert.equal(frame(Buffer.alloc(65536), true).length, 10 + 65536)
    assert.equal(frame(Buffer.alloc(126), true).readUInt8(1), 126)
    assert.equal(frame(Buffer.alloc(65536), true).readUInt8(1), 127)
  })

  it("produces frames that ws's own client-side parser reads back", async () => {
    const receiver = new Receiver({ isServer: false })
    const received: { data: Buffer; isBinary: boolean }[] = []
    const errors: Error[] = []
    receiver.on('message', (data, isBinary) => received.push({ data: Buffer.from(data), isBinary }))
    receiver.on('error', (err) => errors.push(err))

    const sent: { data: Buffer; isBinary: boolean }[] = []
    for (const length of LENGTHS) {
      sent.push({ data: textOf(length), isBinary: false })
      sent.push({ data: randomBytes(length), isBinary: true })
    }
    // All frames in one stream, as a coalesced socket write would deliver them.
    const stream = Buffer.concat(sent.map((m) => frame(m.data, m.isBinary)))
    await new Promise<void>((resolve, reject) =>
      receiver.write(stream, (err) => (err ? reject(err) : resolve())),
    )

    assert.deepEqual(errors, [])
    assert.equal(received.length, sent.length)
    for (const [i, message] of sent.entries()) {
      assert.equal(received[i]?.isBinary, message.isBinary, `message ${i}`)
      assert.deepEqual(received[i]?.data, message.data, `message ${i}`)
    }
  })

  it('is checked by a parser that really validates: ws refuses a text frame that is not UTF-8', async () => {
    const receiver = new Receiver({ isServer: false })
    const failed = new Promise<Error & { code?: string }>((resolve) =>
      receiver.on('error', resolve),
    )
    receiver.write(frame(Buffer.from([0xc3, 0x28]), false))
    const err = await failed
    assert.equal(err.code, 'WS_ERR_INVALID_UTF8')
  })
})

describe('encodeMessage of values JSON cannot encode', () => {
  it('rejects a circular object with InvalidArgumentError', () => {
    const circular: Record<string, unknown> = {}
    circular.self = circular
    assert.throws(() => encodeMessage(circular), { code: 'WSF_INVALID_ARGUMENT' })
  })
})
