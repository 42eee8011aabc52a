import assert from 'node:assert/strict'
import { once } from 'node:events'
import http from 'node:http'
import v8 from 'node:v8'
import vm from 'node:vm'
import { after, before, describe, it } from 'node:test'
import type { IncomingMessage } from 'node:http'
import type { Duplex } from 'node:stream'
import {
  type BrokerOptions,
  type Connection,
  type Engine,
  HttpError,
  RedisEngine,
  RedisPublisher,
  SELF,
} from '../src/index.js'
import { identify } from './helpers/identity.js'
import { closeFrame, framesOf, rawClient, rawStatus, SAMPLE_KEY } from './helpers/raw.js'
import { RESP_TYPES } from 'redis'
import { type RedisServer, startRedis } from './helpers/redis.js'
import {
  connect,
  eventually,
  sleep,
  startBroker,
  TestClient,
  type TestServer,
  upgradeStatus,
  fresh,
} from './helpers/ws.js'

let redis: RedisServer
before(async () => {
  redis = await startRedis()
})
after(async () => {
  await redis.stop()
})

const engines: { name: string; options: () => BrokerOptions }[] = [
  { name: 'memory engine', options: () => ({}) },
  { name: 'redis engine', options: () => ({ redis: redis.url }) },
]

for (const engine of engines) {
  describe(`Broker on the ${engine.name}`, () => {
    let t: TestServer
    const base = (extra: BrokerOptions = {}): BrokerOptions => ({
      ...engine.options(),
      identify,
      clientPublish: ['broadcast', 'group', 'user', 'session'],
      ...extra,
    })
    before(async () => {
      t = await startBroker(base())
    })
    after(async () => {
      await t.close()
    })

    const publisher = (target: ConstructorParameters<typeof RedisPublisher>[0], request?: object) =>
      new RedisPublisher(target, { broker: t.broker, request: request as IncomingMessage })

    it('delivers broadcast, user, group and session messages to the right connections only', async () => {
      const f = fresh('aud')
      const john = await connect(
        t.url(
          `/ws/${f}?subscribe-user&subscribe-group&subscribe-session&user=john&groups=red,blue&session=s1`,
        ),
      )
      const mary = await connect(
        t.url(
          `/ws/${f}?subscribe-user&subscribe-group&subscribe-session&user=mary&groups=green&session=s2`,
        ),
      )
      const all = await connect(t.url(`/ws/${f}?subscribe-broadcast`))
      await publisher({ facility: f, users: ['john'] }).publishMessage('to john')
      await publisher({ facility: f, groups: ['blue'] }).publishMessage('to blue')
      await publisher({ facility: f, sessions: ['s2'] }).publishMessage('to s2')
      await publisher({ facility: f, broadcast: true }).publishMessage('to all')
      await john.waitFor(2)
      await mary.waitFor(1)
      await all.waitFor(1)
      await sleep(50)
      assert.deepEqual(john.texts, ['to john', 'to blue'])
      assert.deepEqual(mary.texts, ['to s2'])
      assert.deepEqual(all.texts, ['to all'])
      await Promise.all([john.close(), mary.close(), all.close()])
    })

    it('drops flags the identity cannot fill instead of using a shared placeholder channel', async () => {
      const f = fresh('anon')
      const before = t.broker.channelCount
      const a = await connect(
        t.url(`/ws/${f}?subscribe-user&subscribe-group&subscribe-session&subscribe-broadcast`),
      )
      const b = await connect(t.url(`/ws/${f}?subscribe-user&subscribe-session`))
      // Only the broadcast channel is held for anonymous connections.
      assert.equal(t.broker.channelCount, before + 1)
      const [conn] = [...t.broker.connections.values()].filter((c) => c.facility === f)
      assert.deepEqual(conn!.channels.subscribe, [`broadcast:${f}`])
      for (const c of t.broker.connections.values()) {
        if (c.facility !== f) continue
        for (const ch of c.channels.subscribe) assert.doesNotMatch(ch, /^(user|group|session):/)
      }
      await Promise.all([a.close(), b.close()])
    })

    it('publishes what a client sends on its publish-* channels verbatim; raw facilities frame valid UTF-8 as text', async () => {
      const f = fresh('pub')
      const tab1 = await connect(t.url(`/ws/${f}?subscribe-user&user=ann`))
      const tab2 = await connect(t.url(`/ws/${f}?publish-user&user=ann`))
      await tab2.send('hello')
      await tab2.send(Buffer.from([0, 1, 2, 0xff]), true)
      // Redis keeps no mark: bytes that are valid UTF-8 are text to a raw facility.
      await tab2.send(Buffer.from('looks like text'), true)
      await tab1.waitFor(3)
      assert.deepEqual(
        tab1.received.map((r) => [
          r.binary,
          r.binary ? (r.data as Buffer).toString('hex') : r.data,
        ]),
        [
          [false, 'hello'],
          [true, '000102ff'],
          [false, 'looks like text'],
        ],
      )
      await Promise.all([tab1.close(), tab2.close()])
    })

    it('delivers every message as a binary frame on a binary facility, text frames and publisher strings included', async () => {
      const f = fresh('bin')
      t.broker.facility(f, { format: 'binary' })
      const reader = await connect(t.url(`/ws/${f}?subscribe-user&user=bea`))
      const writer = await connect(t.url(`/ws/${f}?publish-user&user=bea`))
      await writer.send('typed text')
      await writer.send(Buffer.from('ascii bytes'), true)
      await writer.send(Buffer.from([0xff, 0]), true)
      await reader.waitFor(3)
      await publisher({ facility: f, users: ['bea'] }).publishMessage('from a publisher')
      await reader.waitFor(4)
      assert.deepEqual(reader.received, [
        { data: Buffer.from('typed text'), binary: true },
        { data: Buffer.from('ascii bytes'), binary: true },
        { data: Buffer.from([0xff, 0]), binary: true },
        { data: Buffer.from('from a publisher'), binary: true },
      ])
      await Promise.all([reader.close(), writer.close()])
    })

    it('ignores unknown flags and reads flags case-insensitively', async () => {
      const f = fresh('case')
      const c = await connect(t.url(`/ws/${f}?SUBSCRIBE-Broadcast&frobnicate&subscribe-nothing`))
      await publisher({ facility: f, broadcast: true }).publishMessage('hi')
      await c.waitFor(1)
      assert.deepEqual(c.texts, ['hi'])
      await c.close()
    })

    it('never echoes a client its own messages without echo, exactly, under bursts of identical content', async () => {
      const f = fresh('echo')
      // Bursts beyond the default client publish rate: this test is about something else.
      t.broker.facility(f, { publishRate: 0 })
      const url = `/ws/${f}?subscribe-broadcast&publish-broadcast`
      const a = await connect(t.url(url))
      const b = await connect(t.url(url))
      const withEcho = await connect(t.url(`${url}&echo`))
      const n = 200
      const sends: Promise<void>[] = []
      for (let i = 0; i < n; i++) {
        sends.push(a.send('same'))
        sends.push(b.send('same'))
      }
      await Promise.all(sends)
      // a receives only b's messages, b only a's; the echo client receives both.
      await a.waitFor(n)
      await b.waitFor(n)
      await withEcho.waitFor(2 * n)
      await withEcho.send('mine')
      await withEcho.waitFor(2 * n + 1)
      await a.waitFor(n + 1)
      await b.waitFor(n + 1)
      await sleep(100)
      assert.equal(a.received.length, n + 1)
      assert.equal(b.received.length, n + 1)
      assert.equal(withEcho.received.length, 2 * n + 1)
      assert.equal(withEcho.texts.at(-1), 'mine')
      await Promise.all([a.close(), b.close(), withEcho.close()])
    })

    it('has subscriptions live when the client sees the connection open', async () => {
      const f = fresh('live')
      for (let i = 0; i < 20; i++) {
        const c = new TestClient(t.url(`/ws/${f}?subscribe-broadcast`))
        await c.opened()
        await publisher({ facility: f, broadcast: true }).publishMessage(`m${i}`)
        await c.waitFor(1)
        assert.deepEqual(c.texts, [`m${i}`])
        await c.close()
      }
    })

    it('answers the heartbeat and never publishes it', async () => {
      const hb = await startBroker(base({ heartbeat: '--heartbeat--' }))
      try {
        const f = fresh('hb')
        const listener = await connect(hb.url(`/ws/${f}?subscribe-broadcast`))
        const c = await connect(hb.url(`/ws/${f}?subscribe-broadcast&publish-broadcast`))
        await c.send('--heartbeat--')
        await c.waitFor(1)
        assert.deepEqual(c.texts, ['--heartbeat--'])
        await c.send('real')
        await listener.waitFor(1)
        await sleep(50)
        assert.deepEqual(listener.texts, ['real'])
        await Promise.all([listener.close(), c.close()])
      } finally {
        await hb.close()
      }
    })

    it('persists with expire and replays the stored message before live traffic', async () => {
      const p = await startBroker(base({ expire: 30 }))
      try {
        const f = fresh('persist')
        const pub = new RedisPublisher({ facility: f, broadcast: true }, { broker: p.broker })
        assert.equal(await pub.publishMessage('first'), 0)
        assert.equal(await pub.publishMessage('second'), 0)
        const c = await connect(p.url(`/ws/${f}?subscribe-broadcast`))
        assert.equal(await pub.publishMessage('live'), 1)
        await c.waitFor(2)
        await sleep(50)
        assert.deepEqual(c.texts, ['second', 'live'])
        assert.equal(await pub.fetchMessage(null, f, 'broadcast'), 'live')
        await c.close()
        // A per-call expire of 0 publishes without storing.
        await pub.publishMessage('unstored', { expire: 0 })
        assert.equal(await pub.fetchMessage(null, f, 'broadcast'), 'live')
      } finally {
        await p.close()
      }
    })

    it('stores client messages when expire > 0, binary included, and fetchMessage returns bytes as a Buffer', async () => {
      const p = await startBroker(base({ expire: 30 }))
      try {
        const f = fresh('cstore')
        const c = await connect(p.url(`/ws/${f}?publish-session&session=k1`))
        await c.send(Buffer.from([9, 8, 0xff]), true)
        const pub = new RedisPublisher({}, { broker: p.broker })
        await eventually(
          async () => (await pub.fetchMessage({ sessionKey: 'k1' }, f, 'session')) !== null,
        )
        assert.deepEqual(
          await pub.fetchMessage({ sessionKey: 'k1' }, f, 'any'),
          Buffer.from([9, 8, 0xff]),
        )
        const late = await connect(p.url(`/ws/${f}?subscribe-session&session=k1`))
        await late.waitFor(1)
        assert.deepEqual(late.received[0], { data: Buffer.from([9, 8, 0xff]), binary: true })
        await Promise.all([c.close(), late.close()])
      } finally {
        await p.close()
      }
    })

    it('fetchMessage returns text as a string on raw facilities and a Buffer on binary ones', async () => {
      const p = await startBroker(base({ expire: 30 }))
      try {
        const raw = fresh('fraw')
        const bin = fresh('fbin')
        p.broker.facility(bin, { format: 'binary' })
        for (const facility of [raw, bin])
          await new RedisPublisher(
            { facility, broadcast: true },
            { broker: p.broker },
          ).publishMessage(Buffer.from('bytes that read as text'))
        const pub = new RedisPublisher({}, { broker: p.broker })
        assert.equal(await pub.fetchMessage(null, raw, 'broadcast'), 'bytes that read as text')
        assert.deepEqual(
          await pub.fetchMessage(null, bin, 'broadcast'),
          Buffer.from('bytes that read as text'),
        )
      } finally {
        await p.close()
      }
    })

    it('resolves SELF to the request identity and returns the number of receiving connections', async () => {
      const f = fresh('self')
      const tabs = await Promise.all([
        connect(t.url(`/ws/${f}?subscribe-user&user=sam`)),
        connect(t.url(`/ws/${f}?subscribe-user&user=sam`)),
      ])
      const other = await connect(t.url(`/ws/${f}?subscribe-user&user=tom`))
      const request = { user: 'sam', groups: [], sessionKey: null }
      const n = await publisher({ facility: f, users: [SELF] }, request).publishMessage('for me')
      assert.equal(n, 2)
      await Promise.all(tabs.map((c) => c.waitFor(1)))
      await sleep(50)
      assert.deepEqual(other.texts, [])
      // SELF of an anonymous request reaches nobody rather than a placeholder channel.
      assert.equal(
        await publisher({ facility: f, users: [SELF] }, { user: null }).publishMessage('x'),
        0,
      )
      await Promise.all([...tabs, other].map((c) => c.close()))
    })

    it('fetchMessage looks in session, user, group, broadcast order for any', async () => {
      const p = await startBroker(base({ expire: 30 }))
      try {
        const f = fresh('fetch')
        const me = { user: 'u1', groups: ['g1'], sessionKey: 'sk1' }
        const pub = (target: object) =>
          new RedisPublisher({ facility: f, ...target }, { broker: p.broker })
        const fetch = (aud: 'any' | 'broadcast' | 'group' | 'user' | 'session') =>
          new RedisPublisher({}, { broker: p.broker }).fetchMessage(me, f, aud)
        assert.equal(await fetch('any'), null)
        await pub({ broadcast: true }).publishMessage('b')
        assert.equal(await fetch('any'), 'b')
        await pub({ groups: ['g1'] }).publishMessage('g')
        assert.equal(await fetch('any'), 'g')
        await pub({ users: ['u1'] }).publishMessage('u')
        assert.equal(await fetch('any'), 'u')
        await pub({ sessions: ['sk1'] }).publishMessage('s')
        assert.equal(await fetch('any'), 's')
        assert.equal(await fetch('broadcast'), 'b')
        assert.equal(await fetch('group'), 'g')
        assert.equal(await fetch('user'), 'u')
      } finally {
        await p.close()
      }
    })

    it('frames a message once per process however many recipients', async () => {
      const f = fresh('once')
      // What the broker writes to each socket of this test, as the HTTP server handed it over.
      const written = new Map<Duplex, unknown[]>()
      const record = (_req: IncomingMessage, socket: Duplex): void => {
        const chunks: unknown[] = []
        written.set(socket, chunks)
        const write = socket.write as (...args: unknown[]) => boolean
        socket.write = function (this: Duplex, ...args: unknown[]) {
          chunks.push(args[0])
          return write.apply(this, args)
        } as typeof socket.write
      }
      t.server.on('upgrade', record)
      const clients = await Promise.all(
        Array.from({ length: 50 }, () => connect(t.url(`/ws/${f}?subscribe-broadcast`))),
      ).finally(() => t.server.off('upgrade', record))
      assert.equal(written.size, 50)
      const seen = new Map([...written].map(([socket, chunks]) => [socket, chunks.length]))
      const before = t.broker.stats
      assert.equal(await publisher({ facility: f, broadcast: true }).publishMessage('x'), 50)
      await Promise.all(clients.map((c) => c.waitFor(1)))
      const sent = [...written].map(([socket, chunks]) => chunks.slice(seen.get(socket)))
      for (const chunks of sent) assert.equal(chunks.length, 1)
      const first = sent[0]![0] as Buffer
      assert.deepEqual(framesOf(first), [{ opcode: 1, payload: Buffer.from('x') }])
      // Framed once: the 50 sockets were handed the very same bytes, not 50 equal copies.
      assert.equal(
        sent.filter((chunks) => chunks[0] !== first).length,
        0,
        'sockets handed a frame of their own',
      )
      const stats = t.broker.stats
      assert.equal(stats.messages - before.messages, 1)
      assert.equal(stats.deliveries - before.deliveries, 50)
      assert.equal(stats.historyReads, 0) // a facility without history never reads it
      await Promise.all(clients.map((c) => c.close()))
    })

    it('refuses before the upgrade with an HTTP status and a reason', async () => {
      const cases: [string, number][] = [
        ['/ws/', 400],
        ['/ws/a:b?subscribe-broadcast', 400],
        ['/ws/a%3Ab', 400],
        [`/ws/${'x'.repeat(129)}`, 400],
        ['/ws/%E0%A4%A', 400],
        ['/elsewhere/x', 404],
      ]
      for (const [path, status] of cases) {
        const r = await upgradeStatus(t.url(path))
        assert.equal(r.status, status, path)
        assert.ok(r.body.trim().length > 0, `${path} has a reason`)
      }
    })

    it('answers 400 or 426 to requests that are not WebSocket handshakes', async () => {
      const raw = (headers: string): Promise<number> =>
        rawStatus(t.port, `GET /ws/x HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n${headers}\r\n`)
      const key = `Sec-WebSocket-Key: ${SAMPLE_KEY}\r\n`
      assert.equal(await raw(`Upgrade: h2c\r\n${key}Sec-WebSocket-Version: 13\r\n`), 400)
      assert.equal(await raw('Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n'), 400)
      assert.equal(await raw(`Upgrade: websocket\r\n${key}Sec-WebSocket-Version: 99\r\n`), 426)
      const plain = await new Promise<number>((resolve) =>
        http.get(`http://127.0.0.1:${t.port}/ws/x`, (res) => {
          res.resume()
          resolve(res.statusCode ?? 0)
        }),
      )
      assert.equal(plain, 426)
    })

    it('refuses publish flags outside clientPublish with 403', async () => {
      const p = await startBroker(base({ clientPublish: ['session', 'user'] }))
      try {
        assert.equal((await upgradeStatus(p.url('/ws/x?publish-broadcast'))).status, 403)
        assert.equal((await upgradeStatus(p.url('/ws/x?publish-group&user=a'))).status, 403)
        const ok = await connect(p.url('/ws/x?publish-user&user=a'))
        await ok.close()
      } finally {
        await p.close()
      }
    })

    it('lets allowedChannels narrow the flags or refuse with 403', async () => {
      const f = fresh('allowed')
      const p = await startBroker(
        base({
          allowedChannels: (_req, flags) => {
            if (flags.facility === 'forbidden') return false
            if (flags.identity.user === 'mallory') throw new HttpError(403, 'banned')
            // Nobody may listen to user channels here; and the hook cannot widen anything.
            return { subscribe: ['broadcast', 'session'], publish: [] }
          },
        }),
      )
      try {
        assert.equal((await upgradeStatus(p.url('/ws/forbidden?subscribe-broadcast'))).status, 403)
        assert.equal((await upgradeStatus(p.url(`/ws/${f}?user=mallory`))).status, 403)
        const c = await connect(
          p.url(`/ws/${f}?subscribe-user&subscribe-broadcast&publish-user&user=eve`),
        )
        const conn = [...p.broker.connections.values()][0]!
        assert.deepEqual(conn.channels, { subscribe: [`broadcast:${f}`], publish: [] })
        await c.close()
      } finally {
        await p.close()
      }
    })

    it('answers 401 when identify throws an HttpError(401)', async () => {
      const p = await startBroker(
        base({
          identify: () => {
            throw new HttpError(401, 'bad token')
          },
        }),
      )
      try {
        const r = await upgradeStatus(p.url('/ws/x?subscribe-user'))
        assert.equal(r.status, 401)
      } finally {
        await p.close()
      }
    })

    it('stays healthy after any close code a client sends, leaking nothing', async () => {
      const f = fresh('codes')
      // Bursts beyond the default client publish rate: this test is about something else.
      t.broker.facility(f, { publishRate: 0 })
      const codes = [
        1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000,
        4999,
      ]
      for (const code of codes) {
        const c = await connect(t.url(`/ws/${f}?subscribe-broadcast&subscribe-user&user=u${code}`))
        await c.close(code, 'bye')
      }
      // A client that vanishes without a close frame.
      const gone = await connect(t.url(`/ws/${f}?subscribe-broadcast`))
      gone.ws.terminate()
      await eventually(() => [...t.broker.connections.values()].every((c) => c.facility !== f))
      await eventually(() => t.broker.channelCount === 0)
      const c = await connect(t.url(`/ws/${f}?subscribe-broadcast`))
      await publisher({ facility: f, broadcast: true }).publishMessage('still fine')
      await c.waitFor(1)
      await c.close()
    })

    it('stays healthy when a raw client sends close codes the spec reserves (1004-1006, 1015, out of range)', async () => {
      const f = fresh('rawclose')
      for (const code of [1004, 1005, 1006, 1015, 999, 5000]) {
        const { socket } = await rawClient(t.port, `/ws/${f}?subscribe-broadcast`)
        socket.write(closeFrame(code))
        await once(socket, 'close')
      }
      await eventually(() => [...t.broker.connections.values()].every((c) => c.facility !== f))
      await eventually(() => t.broker.channelCount === 0)
      const c = await connect(t.url(`/ws/${f}?subscribe-broadcast`))
      assert.equal(await publisher({ facility: f, broadcast: true }).publishMessage('ok'), 1)
      await c.waitFor(1)
      await c.close()
    })

    it('drops a client that stops answering protocol pings', async () => {
      const p = await startBroker(base({ pingInterval: 100 }))
      try {
        const f = fresh('ping')
        const healthy = await connect(p.url(`/ws/${f}?subscribe-broadcast`))
        const dead = new TestClient(p.url(`/ws/${f}?subscribe-broadcast`), { autoPong: false })
        await dead.opened()
        await eventually(() => p.broker.connections.size === 1)
        assert.equal(healthy.ws.readyState, healthy.ws.OPEN)
        await healthy.close()
      } finally {
        await p.close()
      }
    })

    it('closes clients with 1001 on close()', async () => {
      const p = await startBroker(base())
      const c = await connect(p.url(`/ws/${fresh('bye')}?subscribe-broadcast`))
      const closed = c.closedByServer()
      await p.close()
      assert.equal((await closed).code, 1001)
    })

    it('closes a client sending a frame over maxPayload with 1009', async () => {
      const p = await startBroker(base({ maxPayload: 1024 }))
      try {
        const c = await connect(p.url(`/ws/${fresh('big')}?publish-user&user=a`))
        const closed = c.closedByServer()
        c.ws.send(Buffer.alloc(2048))
        assert.equal((await closed).code, 1009)
      } finally {
        await p.close()
      }
    })
  })
}

describe('Broker on Redis specifics', () => {
  it('delivers a PUBLISH by any Redis client verbatim, with the ws4redis prefix', async () => {
    const t = await startBroker({ redis: redis.url, prefix: 'ws4redis' })
    const raw = await redis.client()
    try {
      const c = await connect(t.url('/ws/foobar?subscribe-broadcast'))
      assert.equal(await raw.publish('ws4redis:broadcast:foobar', 'Hello World'), 1)
      await raw.publish('ws4redis:broadcast:foobar', Buffer.from([0xc3, 0x28]))
      await c.waitFor(2)
      assert.deepEqual(c.received[0], { data: 'Hello World', binary: false })
      // Bytes that are not UTF-8 cannot be a text frame: they arrive as binary, unchanged.
      assert.deepEqual(c.received[1], { data: Buffer.from([0xc3, 0x28]), binary: true })
      await c.close()
    } finally {
      await raw.close()
      await t.close()
    }
  })

  it('keeps exactly the message bytes in Redis: what a client or publisher sends is what PUBLISH, GET and history carry', async () => {
    const t = await startBroker({
      redis: redis.url,
      identify,
      expire: 60,
      clientPublish: ['broadcast'],
    })
    t.broker.facility('hist', { history: { size: 10, ttl: 60 } })
    const raw = await redis.client()
    const sub = raw.duplicate()
    await sub.connect()
    const heard: Buffer[] = []
    try {
      await sub.subscribe('broadcast:bytes', (m) => heard.push(m), true)
      const bytes = Buffer.from([0x00, 0x01, 0xfe, 0xff])
      const c = await connect(t.url('/ws/bytes?publish-broadcast'))
      await c.send(bytes, true)
      await eventually(() => heard.length === 1)
      await new RedisPublisher(
        { facility: 'bytes', broadcast: true },
        { broker: t.broker },
      ).publishMessage(Buffer.from('ascii'))
      await eventually(() => heard.length === 2)
      // A Redis reader (ws4redis's fetch_message, redis-cli) gets what was sent, nothing more.
      assert.deepEqual(heard, [bytes, Buffer.from('ascii')])
      const stored = await raw
        .withTypeMapping({ [RESP_TYPES.BLOB_STRING]: Buffer })
        .get('broadcast:bytes')
      assert.deepEqual(stored, Buffer.from('ascii'))
      await new RedisPublisher(
        { facility: 'hist', broadcast: true },
        { broker: t.broker },
      ).publishMessage(bytes)
      const read = await t.broker.engine.readHistory('broadcast:hist', 0, 10)
      assert.deepEqual(
        read.entries.map((e) => e.payload),
        [bytes],
      )
      const kept = await raw
        .withTypeMapping({ [RESP_TYPES.BLOB_STRING]: Buffer })
        .get('broadcast:hist')
      assert.deepEqual(kept, bytes)
      await c.close()
    } finally {
      await sub.close()
      await raw.close()
      await t.close()
    }
  })

  it('writes a burst that arrives in one Redis read to each socket in one write, joined once for all', async () => {
    const t = await startBroker({ redis: redis.url })
    const raw = await redis.client()
    const written: unknown[][] = []
    t.broker.on('connection', (_conn, req) => {
      const socket = req.socket
      const writes: unknown[] = []
      written.push(writes)
      const write = socket.write.bind(socket) as (chunk: unknown) => boolean
      socket.write = ((chunk: unknown) => {
        writes.push(chunk)
        return write(chunk)
      }) as typeof socket.write
    })
    try {
      const clients = await Promise.all(
        [0, 1, 2].map(() => connect(t.url('/ws/burst?subscribe-broadcast'))),
      )
      // One MULTI: Redis pushes the 40 messages to the subscriber back to back, in one read.
      const multi = raw.multi()
      for (let i = 0; i < 40; i++) multi.publish('broadcast:burst', `m${i}`)
      await multi.exec()
      await Promise.all(clients.map((c) => c.waitFor(40)))
      for (const c of clients)
        assert.deepEqual(
          c.texts,
          Array.from({ length: 40 }, (_, i) => `m${i}`),
        )
      assert.equal(written.length, 3)
      for (const writes of written) assert.equal(writes.length, 1)
      // The three sockets got the very same buffer: the frames were joined once, not per socket.
      assert.equal(written[1]![0], written[0]![0])
      assert.equal(written[2]![0], written[0]![0])
      await Promise.all(clients.map((c) => c.close()))
    } finally {
      await raw.close()
      await t.close()
    }
  })

  it('replays a key stored by another program (a Django ws4redis publisher)', async () => {
    const t = await startBroker({ redis: redis.url, identify })
    const raw = await redis.client()
    try {
      await raw.set('user:django:news', 'stored by django', { EX: 60 })
      const c = await connect(t.url('/ws/news?subscribe-user&user=django'))
      await c.waitFor(1)
      assert.deepEqual(c.texts, ['stored by django'])
      await c.close()
    } finally {
      await raw.close()
      await t.close()
    }
  })

  it('holds one subscriber and one command connection per process, and one subscription per channel', async () => {
    const raw = await redis.client()
    await raw.clientSetName('inspector')
    const t = await startBroker({ redis: redis.url, identify })
    try {
      const clients = await Promise.all(
        Array.from({ length: 60 }, (_, i) =>
          connect(t.url(`/ws/scale?subscribe-broadcast&subscribe-user&user=u${i % 20}`)),
        ),
      )
      const list = (await raw.clientList()).filter((c) => c.name !== 'inspector')
      assert.equal(list.length, 2)
      const numsub = await raw.pubSubNumSub(['broadcast:scale', 'user:u0:scale', 'user:u19:scale'])
      assert.deepEqual(Object.values(numsub), [1, 1, 1])
      assert.equal(t.broker.channelCount, 21)
      await Promise.all(clients.slice(0, 57).map((c) => c.close()))
      // u0..u16 left entirely (their three tabs closed); u17..u19 still have one each.
      await eventually(async () => (await raw.pubSubNumSub('user:u0:scale'))['user:u0:scale'] === 0)
      const after = await raw.pubSubNumSub(['broadcast:scale', 'user:u19:scale', 'user:u16:scale'])
      assert.deepEqual(Object.values(after), [1, 1, 0])
      await Promise.all(clients.slice(57).map((c) => c.close()))
      await eventually(async () => (await raw.pubSubChannels('*scale*')).length === 0)
    } finally {
      await raw.close()
      await t.close()
    }
  })

  it('never lets a SUBSCRIBE and an UNSUBSCRIBE of one channel overlap', async () => {
    const raw = await redis.client()
    // Every SUBSCRIBE and UNSUBSCRIBE of the channel, in the order Redis ran them.
    const monitor = await redis.client()
    const ran: string[] = []
    await monitor.monitor((line) => {
      const [, name, args = ''] = /\] "([a-z]+)"(.*)$/i.exec(String(line)) ?? []
      const command = name?.toLowerCase()
      if (
        (command === 'subscribe' || command === 'unsubscribe') &&
        args.includes('"broadcast:churn"')
      )
        ran.push(command)
      else if (command === 'echo' && args.includes('"churn-seen"')) ran.push('seen')
    })
    const numSub = async (): Promise<number | undefined> =>
      (await raw.pubSubNumSub('broadcast:churn'))['broadcast:churn']
    const t = await startBroker({ redis: redis.url })
    try {
      // Churn: connections to one channel open and close as fast as possible, concurrently; a
      // round's opens meet the previous round's UNSUBSCRIBE still in flight.
      for (let round = 0; round < 30; round++) {
        const batch = Array.from(
          { length: 8 },
          () => new TestClient(t.url('/ws/churn?subscribe-broadcast')),
        )
        await Promise.all(batch.map((c) => c.opened()))
        await Promise.all(batch.map((c) => c.close()))
      }
      // Nobody wants the channel: Redis must end up with it unsubscribed, none left behind.
      await eventually(async () => (await numSub()) === 0)
      const last = await connect(t.url('/ws/churn?subscribe-broadcast'))
      await eventually(async () => (await numSub()) === 1)
      await raw.publish('broadcast:churn', 'after churn')
      await last.waitFor(1)
      await last.close()
      await eventually(async () => (await numSub()) === 0)
      await raw.echo('churn-seen')
      await eventually(() => ran.at(-1) === 'seen')
      // One at a time: each SUBSCRIBE is followed by its UNSUBSCRIBE before the next SUBSCRIBE.
      const commands = ran.slice(0, -1)
      assert.ok(commands.length >= 4, `churn reached Redis: ${commands.join(' ')}`)
      assert.equal(commands[0], 'subscribe')
      assert.equal(commands.at(-1), 'unsubscribe')
      const twice = commands.findIndex((c, i) => i > 0 && c === commands[i - 1])
      assert.equal(
        twice,
        -1,
        `${commands[twice]} twice in a row, at ${twice} of ${commands.length}`,
      )
    } finally {
      monitor.destroy()
      await raw.close()
      await t.close()
    }
  })

  it('serialises SUBSCRIBE and UNSUBSCRIBE of a channel even when Redis answers slowly', async () => {
    // The real RedisEngine, instrumented: each operation is slowed down and overlaps are recorded.
    const real = new RedisEngine({ redis: redis.url, prefix: '' })
    const inFlight = new Map<string, number>()
    let overlaps = 0
    const slow =
      (op: (ch: string) => Promise<void>) =>
      async (channel: string): Promise<void> => {
        const n = (inFlight.get(channel) ?? 0) + 1
        inFlight.set(channel, n)
        if (n > 1) overlaps++
        try {
          await sleep(15)
          await op(channel)
        } finally {
          inFlight.set(channel, (inFlight.get(channel) ?? 1) - 1)
        }
      }
    const engine: Engine = {
      start: () => real.start(),
      onMessage: (h) => real.onMessage(h),
      onStatus: (l) => real.onStatus(l),
      onError: (l) => real.onError(l),
      subscribe: slow((ch) => real.subscribe(ch)),
      unsubscribe: slow((ch) => real.unsubscribe(ch)),
      publish: (ch, p, e, hist) => real.publish(ch, p, e, hist),
      get: (chs) => real.get(chs),
      readHistory: (ch, since, limit) => real.readHistory(ch, since, limit),
      barrier: () => real.barrier(),
      setLocalCount: (ch, n) => real.setLocalCount(ch, n),
      get connectionCount() {
        return real.connectionCount
      },
      get status() {
        return real.status
      },
      get nodeId() {
        return real.nodeId
      },
      nodes: () => real.nodes(),
      presenceJoin: (set, m) => real.presenceJoin(set, m),
      presenceLeave: (set, m) => real.presenceLeave(set, m),
      presenceList: (set) => real.presenceList(set),
      presenceCount: (set, m) => real.presenceCount(set, m),
      onPresenceSwept: (l) => real.onPresenceSwept(l),
      close: () => real.close(),
    }
    const raw = await redis.client()
    const t = await startBroker({ engine })
    try {
      const ops: Promise<unknown>[] = []
      for (let i = 0; i < 10; i++) {
        const c = new TestClient(t.url('/ws/slow?subscribe-broadcast'))
        ops.push(c.opened().then(() => c.close()))
        await sleep(7)
      }
      await Promise.all(ops)
      const last = await connect(t.url('/ws/slow?subscribe-broadcast'))
      await eventually(
        async () => (await raw.pubSubNumSub('broadcast:slow'))['broadcast:slow'] === 1,
      )
      await raw.publish('broadcast:slow', 'still subscribed')
      await last.waitFor(1)
      assert.equal(overlaps, 0)
      await last.close()
    } finally {
      await raw.close()
      await t.close()
    }
  })

  it('lets two brokers on one Redis deliver to each other’s clients, counting receivers on both', async () => {
    const a = await startBroker({ redis: redis.url, identify, clientPublish: ['user'] })
    const b = await startBroker({ redis: redis.url, identify, clientPublish: ['user'] })
    try {
      const onA = await connect(a.url('/ws/two?subscribe-user&publish-user&user=zoe'))
      const onB = await connect(b.url('/ws/two?subscribe-user&user=zoe'))
      const onB2 = await connect(b.url('/ws/two?subscribe-user&user=zoe'))
      await onA.send('from a')
      await onB.waitFor(1)
      await onB2.waitFor(1)
      assert.deepEqual(onB.texts, ['from a'])
      const n = await new RedisPublisher(
        { facility: 'two', users: ['zoe'] },
        { broker: b.broker },
      ).publishMessage('from b')
      assert.equal(n, 3)
      await onA.waitFor(1)
      assert.deepEqual(onA.texts, ['from b'])
      await Promise.all([onA.close(), onB.close(), onB2.close()])
    } finally {
      await a.close()
      await b.close()
    }
  })

  it('refuses upgrades with 503 while Redis is unreachable, and rejects publishes with a coded error', async () => {
    const own = await startRedis()
    const t = await startBroker({ redis: own.url })
    try {
      await own.kill()
      await eventually(() => t.broker.engine.connectionCount >= 0)
      assert.equal((await upgradeStatus(t.url('/ws/down?subscribe-broadcast'))).status, 503)
      await assert.rejects(
        new RedisPublisher(
          { facility: 'down', broadcast: true },
          { broker: t.broker },
        ).publishMessage('x'),
        { code: 'WSF_REDIS_UNAVAILABLE' },
      )
    } finally {
      await t.close()
      await own.stop()
    }
  })
})

describe('Broker memory per connection', () => {
  it('keeps no upgrade request alive for connections to facilities without hooks, and keeps it for hooks', async () => {
    v8.setFlagsFromString('--expose-gc')
    const gc = vm.runInNewContext('gc') as () => void
    const t = await startBroker()
    t.broker.facility('hooked', { onDisconnect: () => {} })
    const requests = new Map<string, WeakRef<IncomingMessage>>()
    t.broker.on('connection', (conn, req) => requests.set(conn.facility, new WeakRef(req)))
    try {
      const plain = await connect(t.url('/ws/plain?subscribe-broadcast'))
      const hooked = await connect(t.url('/ws/hooked?subscribe-broadcast'))
      // Idle connections are most of a broker's memory: a request kept by each would cost ~1 KB.
      await eventually(async () => {
        gc()
        await sleep(10)
        return requests.get('plain')!.deref() === undefined
      })
      // onDisconnect receives the context with its request, so that one stays.
      assert.ok(requests.get('hooked')!.deref())
      await Promise.all([plain.close(), hooked.close()])
    } finally {
      await t.close()
    }
  })
})

describe('Broker slow consumers', () => {
  /** Publishes 64 KB messages until `done()` or 64 MB were sent (kernel buffers come first). */
  async function flood(t: TestServer, channel: string, done: () => boolean): Promise<void> {
    const big = 'x'.repeat(64 * 1024)
    for (let i = 0; i < 1024 && !done(); i++) {
      await t.broker.publish([channel], big)
      if (i % 16 === 0) await sleep(1)
    }
  }

  for (const policy of ['close', 'drop'] as const) {
    it(`applies the ${policy} policy once a client's unsent frames pass maxBufferedBytes`, async () => {
      const t = await startBroker({ maxBufferedBytes: 256 * 1024, slowConsumer: policy })
      const connected = once(t.broker, 'connection') as Promise<[Connection]>
      const { socket } = await rawClient(t.port, '/ws/slow?subscribe-broadcast')
      socket.pause()
      const [conn] = await connected
      try {
        const hit = () => (policy === 'close' ? !conn.isOpen : conn.dropped > 0)
        await flood(t, 'broadcast:slow', hit)
        assert.ok(hit(), `the ${policy} policy never applied`)
        // close: 1013 and gone; drop: still open, frames dropped instead of buffered.
        assert.equal(conn.isOpen, policy === 'drop')
      } finally {
        socket.destroy()
        await t.close()
      }
    })
  }
})
