import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import {
  handleClientMessage,
  type InboundTarget,
  rawTokenOf,
} from '../../src/connection/inbound.js'
import type { MembershipFrame, ServerFrame } from '../../src/delivery/envelope.js'
import { HttpError } from '../../src/errors.js'
import type { WireFormat } from '../../src/facility/definition.js'
import { TokenError } from '../../src/identity/jwt.js'

/** A connection as inbound handling sees it, recording what was asked of it. */
class Target implements InboundTarget {
  readonly texts: string[] = []
  readonly frames: ServerFrame[] = []
  readonly closes: [number, string][] = []
  readonly offers: { message: unknown; payload: Buffer; text: boolean | undefined }[] = []
  readonly tokens: string[] = []
  tokensLeft = Infinity
  refreshResult: () => Promise<void> = async () => {}

  constructor(
    readonly format: WireFormat,
    readonly tokenAuthenticated = false,
  ) {}

  sendText(text: string): void {
    this.texts.push(text)
  }
  sendFrame(frame: ServerFrame): void {
    this.frames.push(frame)
  }
  close(code: number, reason: string): void {
    this.closes.push([code, reason])
  }
  takeToken(): boolean {
    if (this.tokensLeft <= 0) return false
    this.tokensLeft--
    return true
  }
  refreshToken(token: string): Promise<void> {
    this.tokens.push(token)
    return this.refreshResult()
  }
  offer(message: unknown, payload: Buffer, text?: boolean): void {
    this.offers.push({ message, payload, text })
  }
  readonly memberships: MembershipFrame[] = []
  membershipFrame(frame: MembershipFrame): void {
    this.memberships.push(frame)
  }
}

const text = (s: string): Buffer => Buffer.from(s, 'utf8')
/** Lets a rejected refresh reach its handler. */
const settle = (): Promise<void> => new Promise((r) => setImmediate(r))

describe('handleClientMessage', () => {
  describe('heartbeat', () => {
    it('answers the heartbeat text with itself and publishes nothing', () => {
      for (const format of ['raw', 'json'] as const) {
        const t = new Target(format)
        handleClientMessage(t, '--heartbeat--', text('--heartbeat--'), false)
        assert.deepEqual(t.texts, ['--heartbeat--'])
        assert.equal(t.offers.length, 0)
        assert.equal(t.tokensLeft, Infinity, 'a heartbeat takes no token')
      }
    })

    it('answers a heartbeat even when the rate limit is exhausted', () => {
      const t = new Target('raw')
      t.tokensLeft = 0
      handleClientMessage(t, 'hb', text('hb'), false)
      assert.deepEqual(t.texts, ['hb'])
      assert.equal(t.closes.length, 0)
    })

    it('treats the heartbeat text as a message when no heartbeat is configured', () => {
      const t = new Target('raw')
      handleClientMessage(t, null, text('--heartbeat--'), false)
      assert.deepEqual(t.texts, [])
      assert.equal(t.offers.length, 1)
    })

    it('does not take a binary frame with the heartbeat bytes for a heartbeat', () => {
      const t = new Target('raw')
      handleClientMessage(t, 'hb', text('hb'), true)
      assert.deepEqual(t.texts, [])
      assert.equal(t.offers.length, 1)
    })

    it('does not take a longer or different text for a heartbeat', () => {
      const t = new Target('raw')
      handleClientMessage(t, 'hb', text('hb!'), false)
      handleClientMessage(t, 'hb', text('hx'), false)
      handleClientMessage(t, 'hb', text('h'), false)
      assert.deepEqual(t.texts, [])
      assert.equal(t.offers.length, 3)
    })

    it('does not take bytes that only decode to the heartbeat for it', () => {
      // 0xFF decodes to U+FFFD, the heartbeat's text, but it is 1 byte against 3.
      const t = new Target('raw')
      handleClientMessage(t, '\uFFFD', Buffer.from([0xff]), false)
      assert.deepEqual(t.texts, [])
      assert.equal(t.offers.length, 1)
    })

    it('compares the heartbeat by bytes, multi-byte characters included', () => {
      const t = new Target('raw')
      handleClientMessage(t, '♥', text('♥'), false)
      assert.deepEqual(t.texts, ['♥'])
    })
  })

  describe('raw facilities', () => {
    it('offers a text message as text, published as its bytes', () => {
      const t = new Target('raw')
      const data = text('hello')
      handleClientMessage(t, null, data, false)
      assert.equal(t.offers.length, 1)
      const offer = t.offers[0]!
      assert.equal(offer.message, data)
      assert.equal(offer.payload, data, 'published verbatim')
      assert.equal(offer.text, true, 'decoded as text for the hook')
    })

    it('offers a binary message as bytes, published verbatim (no mark)', () => {
      const t = new Target('raw')
      const data = Buffer.from([1, 2, 3])
      handleClientMessage(t, null, data, true)
      const offer = t.offers[0]!
      assert.equal(offer.message, data)
      assert.equal(offer.payload, data, 'published verbatim')
      assert.notEqual(offer.text, true)
    })

    it('publishes text and binary frames verbatim on a binary facility, text decoded for the hook', () => {
      const t = new Target('binary')
      handleClientMessage(t, null, text('typed'), false)
      handleClientMessage(t, null, Buffer.from([0xff]), true)
      assert.deepEqual(
        t.offers.map((o) => [o.payload, o.text]),
        [
          [text('typed'), true],
          [Buffer.from([0xff]), false],
        ],
      )
    })

    it('closes with 1008 when the rate limit is exceeded, and publishes nothing', () => {
      const t = new Target('raw')
      t.tokensLeft = 1
      handleClientMessage(t, null, text('one'), false)
      handleClientMessage(t, null, text('two'), false)
      assert.equal(t.offers.length, 1)
      assert.deepEqual(t.closes, [[1008, 'rate limit exceeded']])
      assert.deepEqual(t.frames, [], 'raw facilities have no error frame')
    })

    it('rate-limits binary messages too', () => {
      const t = new Target('raw')
      t.tokensLeft = 0
      handleClientMessage(t, null, Buffer.from([1]), true)
      assert.equal(t.offers.length, 0)
      assert.deepEqual(t.closes, [[1008, 'rate limit exceeded']])
    })

    it('takes {"token": …} as a token refresh on a JWT connection, without a rate token', () => {
      const t = new Target('raw', true)
      t.tokensLeft = 0
      handleClientMessage(t, null, text('{"token":"abc"}'), false)
      assert.deepEqual(t.tokens, ['abc'])
      assert.equal(t.offers.length, 0)
      assert.deepEqual(t.closes, [])
    })

    it('publishes {"token": …} on a connection a JWT did not authenticate', () => {
      const t = new Target('raw', false)
      handleClientMessage(t, null, text('{"token":"abc"}'), false)
      assert.deepEqual(t.tokens, [])
      assert.equal(t.offers.length, 1)
    })

    it('publishes a binary {"token": …} frame as data', () => {
      const t = new Target('raw', true)
      handleClientMessage(t, null, text('{"token":"abc"}'), true)
      assert.deepEqual(t.tokens, [])
      assert.equal(t.offers.length, 1)
    })

    it('publishes other JSON on a JWT connection', () => {
      const t = new Target('raw', true)
      handleClientMessage(t, null, text('{"token":"abc","more":1}'), false)
      handleClientMessage(t, null, text('{"token":5}'), false)
      assert.deepEqual(t.tokens, [])
      assert.equal(t.offers.length, 2)
    })

    it('closes with 1008 when a raw token refresh fails', async () => {
      const t = new Target('raw', true)
      t.refreshResult = () => Promise.reject(new HttpError(401, 'token for another user'))
      handleClientMessage(t, null, text('{"token":"abc"}'), false)
      await settle()
      assert.deepEqual(t.closes, [[1008, 'token for another user']])
      assert.deepEqual(t.frames, [])
    })

    it('closes with a generic reason when a refresh fails with something else', async () => {
      const t = new Target('raw', true)
      t.refreshResult = () => Promise.reject(new Error('secret internals'))
      handleClientMessage(t, null, text('{"token":"abc"}'), false)
      await settle()
      assert.deepEqual(t.closes, [[1008, 'invalid token']])
    })
  })

  describe('json facilities', () => {
    it('offers the data of a data frame, published as its JSON text', () => {
      const t = new Target('json')
      handleClientMessage(t, null, text('{"type":"data","data":{"a":[1,2]}}'), false)
      assert.equal(t.offers.length, 1)
      const offer = t.offers[0]!
      assert.deepEqual(offer.message, { a: [1, 2] })
      assert.equal(offer.payload.toString(), '{"a":[1,2]}')
      assert.notEqual(offer.text, true, 'the hook gets the parsed value')
    })

    it('answers ping with pong, without a rate token', () => {
      const t = new Target('json')
      t.tokensLeft = 0
      handleClientMessage(t, null, text('{"type":"ping"}'), false)
      assert.deepEqual(t.frames, [{ type: 'pong' }])
      assert.equal(t.offers.length, 0)
    })

    it('answers rate_limited and keeps the connection past the rate limit', () => {
      const t = new Target('json')
      t.tokensLeft = 1
      handleClientMessage(t, null, text('{"type":"data","data":1}'), false)
      handleClientMessage(t, null, text('{"type":"data","data":2}'), false)
      assert.equal(t.offers.length, 1)
      assert.deepEqual(t.frames, [
        { type: 'error', code: 'rate_limited', detail: 'too many messages' },
      ])
      assert.deepEqual(t.closes, [])
    })

    it('refuses binary frames with invalid_message and never publishes them', () => {
      const t = new Target('json')
      handleClientMessage(t, null, text('{"type":"data","data":1}'), true)
      assert.deepEqual(t.frames, [
        {
          type: 'error',
          code: 'invalid_message',
          detail: 'binary frames are not accepted on this facility',
        },
      ])
      assert.equal(t.offers.length, 0)
      assert.equal(t.tokensLeft, Infinity)
    })

    it('refuses malformed frames with invalid_message and the reason', () => {
      const t = new Target('json')
      handleClientMessage(t, null, text('not json'), false)
      handleClientMessage(t, null, text('{"type":"nope"}'), false)
      assert.deepEqual(t.frames, [
        { type: 'error', code: 'invalid_message', detail: 'message is not valid JSON' },
        { type: 'error', code: 'invalid_message', detail: 'unknown message type' },
      ])
      assert.equal(t.offers.length, 0)
    })

    it('refreshes the token of a JWT connection (both token frame forms)', () => {
      const t = new Target('json', true)
      handleClientMessage(t, null, text('{"type":"token","token":"a"}'), false)
      handleClientMessage(t, null, text('{"token":"b"}'), false)
      assert.deepEqual(t.tokens, ['a', 'b'])
      assert.deepEqual(t.frames, [])
      assert.equal(t.offers.length, 0)
    })

    it('refuses token frames on a connection a JWT did not authenticate', () => {
      const t = new Target('json', false)
      handleClientMessage(t, null, text('{"type":"token","token":"a"}'), false)
      assert.deepEqual(t.tokens, [])
      assert.deepEqual(t.frames, [
        {
          type: 'error',
          code: 'invalid_token',
          detail: 'tokens are not accepted on this connection',
        },
      ])
      assert.deepEqual(t.closes, [])
    })

    it('answers expired_token and closes 1008 when the fresh token is expired', async () => {
      const t = new Target('json', true)
      t.refreshResult = () => Promise.reject(new TokenError('WSF_TOKEN_EXPIRED', 'token expired'))
      handleClientMessage(t, null, text('{"token":"a"}'), false)
      await settle()
      assert.deepEqual(t.frames, [
        { type: 'error', code: 'expired_token', detail: 'token expired' },
      ])
      assert.deepEqual(t.closes, [[1008, 'token expired']])
    })

    it('answers invalid_token with the refusal reason and closes 1008', async () => {
      const t = new Target('json', true)
      t.refreshResult = () =>
        Promise.reject(new TokenError('WSF_TOKEN_INVALID', 'signature mismatch'))
      handleClientMessage(t, null, text('{"token":"a"}'), false)
      await settle()
      assert.deepEqual(t.frames, [
        { type: 'error', code: 'invalid_token', detail: 'signature mismatch' },
      ])
      assert.deepEqual(t.closes, [[1008, 'signature mismatch']])
    })

    it('keeps the connection when the refresh succeeds', async () => {
      const t = new Target('json', true)
      handleClientMessage(t, null, text('{"token":"a"}'), false)
      await settle()
      assert.deepEqual(t.frames, [])
      assert.deepEqual(t.closes, [])
    })

    it('answers the heartbeat before parsing the envelope', () => {
      const t = new Target('json')
      handleClientMessage(t, 'ping!', text('ping!'), false)
      assert.deepEqual(t.texts, ['ping!'])
      assert.deepEqual(t.frames, [])
    })
  })
})

describe('rawTokenOf', () => {
  it('reads the token of {"token": "…"}', () => {
    assert.equal(rawTokenOf(text('{"token":"x.y.z"}')), 'x.y.z')
    assert.equal(rawTokenOf(text('{ "token" : "t" }')), 't')
  })

  it('refuses anything else', () => {
    for (const s of [
      '',
      ' {"token":"t"}',
      '["token"]',
      '{"token":1}',
      '{"token":null}',
      '{"token":"t","x":1}',
      '{}',
      '{"tok":"t"}',
      '{not json',
      'null',
    ]) {
      assert.equal(rawTokenOf(text(s)), null, s)
    }
  })

  it('refuses messages past 16 KiB without parsing them', () => {
    const token = 'a'.repeat(16384 - '{"token":""}'.length)
    assert.equal(rawTokenOf(text(`{"token":"${token}"}`)), token, 'exactly 16 KiB')
    assert.equal(rawTokenOf(text(`{"token":"${token}a"}`)), null, 'one byte more')
  })
})
