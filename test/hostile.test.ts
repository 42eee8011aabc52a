import assert from 'node:assert/strict'
import type { IncomingMessage } from 'node:http'
import { after, before, describe, it } from 'node:test'
import fc from 'fast-check'
import {
  type Audience,
  AUDIENCES,
  channelName,
  type Connection,
  HttpError,
  type Identity,
  InvalidArgumentError,
  RedisSubscriber,
} from '../src/index.js'
import { parseRequest } from '../src/upgrade/parse-url.js'
import { assertFacility } from '../src/channels/naming.js'
import { framesOf, rawClient } from './helpers/raw.js'
import {
  connect,
  eventually,
  frame,
  startBroker,
  type TestServer,
  upgradeStatus,
} from './helpers/ws.js'

// Pieces a hostile URL or id is made of: separators, their percent-encodings (also double),
// control characters, lone surrogates, look-alikes, and other people's names.
const NASTY = [
  ':',
  '%3A',
  '%3a',
  '%253A',
  '/',
  '%2F',
  '%',
  '%E0%A4%A',
  '%ED%A0%80',
  '?',
  '#',
  '&',
  '=',
  '+',
  '%00',
  '\u0000',
  '\u001f',
  '\u007f',
  '\ud800',
  '\udc00',
  '\uff1a',
  'İ',
  'K',
  'user',
  'group',
  'session',
  'broadcast',
  'bob',
  'user:bob',
  'x:user:bob',
  'ws4redis:',
  ' ',
]

/** Strings built from hostile pieces and arbitrary code points (lone surrogates included). */
const hostile = (maxLength = 8): fc.Arbitrary<string> =>
  fc
    .array(fc.oneof(fc.constantFrom(...NASTY), fc.string({ unit: 'binary', maxLength: 4 })), {
      maxLength,
    })
    .map((parts) => parts.join(''))

const FLAG_KEYS = [
  ...['subscribe', 'publish'].flatMap((verb) => AUDIENCES.map((a) => `${verb}-${a}`)),
  'echo',
  'user',
  'token',
]

/** Percent-encoding of any string (a lone surrogate has no UTF-8: it goes as U+FFFD). */
const percent = (s: string): string => encodeURIComponent(s.replace(/\p{Cs}/gu, '\ufffd'))

/** A query string of flags in any case, percent-encoded or not, repeated, with hostile values. */
const query: fc.Arbitrary<string> = fc
  .array(
    fc.tuple(
      fc.oneof(fc.mixedCase(fc.constantFrom(...FLAG_KEYS)), hostile(3)),
      fc.option(hostile(3), { nil: undefined }),
      fc.boolean(),
    ),
    { maxLength: 12 },
  )
  .map((pairs) =>
    pairs
      .map(([key, value, encode]) => {
        const k = encode ? percent(key).replace(/-/g, '%2D') : key
        return value === undefined ? k : `${k}=${encode ? percent(value) : value}`
      })
      .join('&'),
  )

const facilityPath: fc.Arbitrary<string> = fc.oneof(
  hostile(6),
  fc.string({ unit: 'grapheme', maxLength: 140 }),
  fc.webSegment(),
)

const identity: fc.Arbitrary<Identity> = fc.record({
  user: fc.option(hostile(4), { nil: null }),
  groups: fc.array(hostile(3), { maxLength: 3 }),
  sessionKey: fc.option(hostile(3), { nil: null }),
})

/** Splits a channel name back into audience, id and facility (the facility has no `:`). */
function decode(
  prefix: string,
  channel: string,
): { audience: string; id: string | null; facility: string } {
  assert.ok(channel.startsWith(prefix))
  const rest = channel.slice(prefix.length)
  const first = rest.indexOf(':')
  const last = rest.lastIndexOf(':')
  const audience = rest.slice(0, first)
  if (audience === 'broadcast') {
    assert.equal(first, last, `broadcast channel with an id: ${channel}`)
    return { audience, id: null, facility: rest.slice(first + 1) }
  }
  return { audience, id: rest.slice(first + 1, last), facility: rest.slice(last + 1) }
}

/** True when the string survives the trip to Redis (UTF-8) unchanged. */
const sameInRedis = (s: string): boolean => Buffer.from(s, 'utf8').toString('utf8') === s

/** The ids of `who` an audience's channels may carry. */
function idsOf(who: Identity, audience: Audience): (string | null)[] {
  switch (audience) {
    case 'broadcast':
      return [null]
    case 'user':
      return [who.user]
    case 'group':
      return who.groups
    case 'session':
      return [who.sessionKey]
  }
}

describe('URL parser (property-based)', () => {
  it('either refuses with an HTTP status or yields a facility that cannot break the channel layout', () => {
    fc.assert(
      fc.property(facilityPath, query, (path, q) => {
        let parsed
        try {
          parsed = parseRequest(`/ws/${path}?${q}`, '/ws/')
        } catch (err) {
          assert.ok(err instanceof HttpError, String(err))
          assert.ok([400, 404, 414].includes(err.status), `status ${err.status}`)
          return
        }
        const { facility } = parsed
        assert.ok(facility.length > 0)
        assert.ok(!facility.includes(':'), `facility ${JSON.stringify(facility)} contains ":"`)
        assert.ok(sameInRedis(facility), `facility ${JSON.stringify(facility)} is not UTF-8 safe`)
        // eslint-disable-next-line no-control-regex
        assert.ok(!/[\u0000-\u001f\u007f]/.test(facility))
        assert.ok([...facility].length <= 128)
        for (const list of [parsed.subscribe, parsed.publish]) {
          assert.ok(list.every((a) => AUDIENCES.includes(a)))
          assert.equal(new Set(list).size, list.length)
        }
      }),
      { numRuns: 2000 },
    )
  })

  it('never refuses the plain flags, whatever their case or order', () => {
    fc.assert(
      fc.property(
        fc.array(fc.mixedCase(fc.constantFrom(...FLAG_KEYS)), { maxLength: 10 }),
        (keys) => {
          const parsed = parseRequest(`/ws/chat?${keys.join('&')}`, '/ws/')
          const lower = keys.map((k) => k.toLowerCase())
          assert.deepEqual(
            new Set(parsed.subscribe),
            new Set(AUDIENCES.filter((a) => lower.includes(`subscribe-${a}`))),
          )
        },
      ),
      { numRuns: 500 },
    )
  })
})

describe('Channel naming (property-based)', () => {
  it('gives a connection only broadcast and its own user, group and session channels, whatever the URL and ids', () => {
    const prefixes = fc.constantFrom('', 'ws4redis')
    fc.assert(
      fc.property(prefixes, facilityPath, query, identity, (prefix, path, q, who) => {
        let parsed
        try {
          parsed = parseRequest(`/ws/${path}?${q}`, '/ws/')
        } catch {
          return
        }
        const subscriber = new RedisSubscriber({ prefix })
        let channels
        try {
          channels = subscriber.channels(parsed.facility, parsed, who)
        } catch (err) {
          // An id that cannot name a channel refuses the connection; it never names another's.
          assert.ok(err instanceof InvalidArgumentError, String(err))
          return
        }
        const p = prefix === '' ? '' : `${prefix}:`
        for (const channel of [...channels.subscribe, ...channels.publish]) {
          assert.ok(sameInRedis(channel), `channel ${JSON.stringify(channel)} changes in Redis`)
          const { audience, id, facility } = decode(p, channel)
          assert.equal(facility, parsed.facility)
          assert.ok(AUDIENCES.includes(audience as Audience))
          assert.ok(
            idsOf(who, audience as Audience).includes(id),
            `${channel} is not ${JSON.stringify(who)}'s`,
          )
        }
      }),
      { numRuns: 2000 },
    )
  })

  it('names one channel per (audience, id, facility): no two different triples share a Redis name', () => {
    const triple = fc.record({
      audience: fc.constantFrom(...AUDIENCES),
      id: hostile(4),
      facility: hostile(4),
    })
    const name = (t: { audience: Audience; id: string; facility: string }): Buffer | null => {
      try {
        assertFacility(t.facility)
        return Buffer.from(channelName('', t.audience, t.facility, t.id), 'utf8')
      } catch (err) {
        assert.ok(err instanceof InvalidArgumentError, String(err))
        return null
      }
    }
    // Pairs that differ only slightly (a lone surrogate for another, a piece moved across a ":")
    // are where a collision would hide; plain random pairs almost never collide by chance.
    const pair = fc.tuple(triple, hostile(2)).chain(([a, tail]) =>
      fc.oneof(
        fc.tuple(fc.constant(a), triple),
        fc.constant([a, { ...a, id: a.id.replace(/[\ud800-\udfff]/g, '\udfff') }] as const),
        // `id` + `:` + `facility:tail` against `id:facility` + `:` + `tail`.
        fc.constant([
          { ...a, facility: `${a.facility}:${tail}` },
          { ...a, id: `${a.id}:${a.facility}`, facility: tail },
        ] as const),
      ),
    )
    fc.assert(
      fc.property(pair, ([a, b]) => {
        const na = name(a)
        const nb = name(b)
        if (na === null || nb === null || !na.equals(nb)) return
        const key = (t: typeof a) => [
          t.audience,
          t.audience === 'broadcast' ? '' : t.id,
          t.facility,
        ]
        assert.deepEqual(key(a), key(b), `${na.toString()} names two channels`)
      }),
      { numRuns: 3000 },
    )
  })
})

describe('Hostile requests on a live broker', () => {
  let t: TestServer
  before(async () => {
    // The identity comes from a header the "login" set; the URL must not be able to change it.
    t = await startBroker({
      identify: (req: IncomingMessage) => ({
        user: (req.headers['x-user'] as string | undefined) ?? null,
        groups: [],
        sessionKey: null,
      }),
      clientPublish: ['broadcast', 'group', 'user', 'session'],
    })
    t.broker.facility('env', { format: 'json' })
  })
  after(async () => {
    await t.close()
  })

  for (const path of [
    'x:user:bob',
    'x%3Auser%3Abob',
    'x%3auser',
    '%E0%A4%A',
    'a%00b',
    '%ED%A0%80',
  ]) {
    it(`refuses facility ${path} with 400`, async () => {
      assert.equal((await upgradeStatus(t.url(`/ws/${path}?subscribe-user`))).status, 400)
    })
  }

  it('keeps a connection on its own user channel whatever the query says about other users', async () => {
    const conns: Connection[] = []
    const onConnection = (c: Connection): number => conns.push(c)
    t.broker.on('connection', onConnection)
    const queries = [
      'subscribe-user=bob',
      'SUBSCRIBE-USER=bob&user=bob',
      'subscribe%2Duser=bob&publish-user=bob',
      'subscribe-user&subscribe-user=user:bob:x',
    ]
    const clients = []
    for (const q of queries) {
      clients.push(await connect(t.url(`/ws/x?${q}`), { headers: { 'x-user': 'alice' } }))
    }
    t.broker.off('connection', onConnection)
    for (const c of conns) {
      assert.deepEqual(c.channels.subscribe, ['user:alice:x'])
      assert.ok(c.channels.publish.every((ch) => ch === 'user:alice:x'))
    }
    await Promise.all(clients.map((c) => c.close()))
  })

  it('answers malformed JSON on a json facility with invalid_message and keeps the connection', async () => {
    const c = await connect(t.url('/ws/env?publish-broadcast'))
    await c.send('{"type":"data",')
    assert.deepEqual(await frame(c, 1), {
      type: 'error',
      code: 'invalid_message',
      detail: 'message is not valid JSON',
    })
    await c.send('{"type":"ping"}')
    assert.deepEqual(await frame(c, 2), { type: 'pong' })
    await c.close()
  })

  it('refuses a binary frame on a json facility with invalid_message, publishes nothing, keeps the connection', async () => {
    const listener = await connect(t.url('/ws/env?subscribe-broadcast'))
    const c = await connect(t.url('/ws/env?publish-broadcast'))
    await c.send(Buffer.from('{"type":"data","data":1}'), true)
    assert.deepEqual(await frame(c, 1), {
      type: 'error',
      code: 'invalid_message',
      detail: 'binary frames are not accepted on this facility',
    })
    await c.send('{"type":"data","data":2}')
    assert.deepEqual(await frame(listener, 1), { type: 'data', data: 2 })
    await c.close()
    await listener.close()
  })

  for (const facility of ['env', 'rawfacility']) {
    it(`closes with 1007 on a text frame that is not UTF-8 (${facility})`, async () => {
      const c = await connect(t.url(`/ws/${facility}?publish-broadcast`))
      const closed = c.closedByServer()
      c.ws.send(Buffer.from([0x7b, 0xc3, 0x28, 0x7d]), { binary: false })
      assert.equal((await closed).code, 1007)
    })
  }

  it('closes with 1009 on a frame over maxPayload, checked from the header before the body arrives', async () => {
    const p = await startBroker({ maxPayload: 1024 })
    try {
      const { socket, data } = await rawClient(p.port, '/ws/big')
      // A masked text frame announcing 1 MiB (64-bit length), with no payload sent at all.
      socket.write(Buffer.from([0x81, 0xff, 0, 0, 0, 0, 0, 0x10, 0, 0, 1, 2, 3, 4]))
      await eventually(() => framesOf(data()).length > 0)
      const [close] = framesOf(data())
      assert.equal(close!.opcode, 8)
      assert.equal(close!.payload.readUInt16BE(0), 1009)
      socket.destroy()
    } finally {
      await p.close()
    }
  })
})
