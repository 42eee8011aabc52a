import assert from 'node:assert/strict'
import { once } from 'node:events'
import http from 'node:http'
import net from 'node:net'
import { after, afterEach, before, describe, it } from 'node:test'
import WebSocket, { WebSocketServer } from 'ws'
import {
  backoffDelay,
  buildUrl,
  type ClientMessage,
  type ClientOptions,
  type ClientStatus,
  createClient,
  shouldReconnect,
  WsfClient,
  type WsfClientError,
} from '../src/client/index.js'
import { refusalStatus, retryAfter } from '../src/client/retry.js'
import { type Broker, type BrokerOptions, HttpError, RedisPublisher } from '../src/index.js'
import { freePort, type RedisServer, startRedis } from './helpers/redis.js'
import { nowSec, signToken } from './helpers/token.js'
import { connect, eventually, sleep, startBroker, type TestServer } from './helpers/ws.js'

const SECRET = 'a-long-enough-hmac-secret-for-wsfacility-client-tests-0123'

/** Mints an HS256 JWT for `sub` expiring at `exp` (seconds since the epoch). */
const mint = (sub: string, exp = nowSec() + 600): Promise<string> =>
  signToken({ key: SECRET, sub, exp })

/** A client with everything it emitted recorded. */
interface Tracked {
  client: WsfClient
  statuses: ClientStatus[]
  messages: ClientMessage[]
  errors: WsfClientError[]
  closes: { code: number; reason: string }[]
  retries: { attempt: number; delay: number }[]
}

const clients: WsfClient[] = []
const cleanups: (() => Promise<unknown> | void)[] = []

/** Creates a client (not connected yet), records its events, and closes it after the test. */
function track(options: ClientOptions): Tracked {
  const client = new WsfClient({
    WebSocket,
    reconnect: { base: 20, cap: 200 },
    ...options,
    autoConnect: false,
  })
  clients.push(client)
  const t: Tracked = { client, statuses: [], messages: [], errors: [], closes: [], retries: [] }
  client.on('status', (s) => t.statuses.push(s))
  client.on('message', (m) => t.messages.push(m))
  client.on('error', (e) => t.errors.push(e))
  client.on('close', (c) => t.closes.push(c))
  client.on('retry', (r) => t.retries.push(r))
  if (options.autoConnect !== false) client.connect()
  return t
}

const opened = (t: Tracked, times = 1): Promise<void> =>
  eventually(() => t.statuses.filter((s) => s === 'open').length >= times, 10_000)

const texts = (t: Tracked): string[] =>
  t.messages.map((m) =>
    typeof m === 'string' ? m : `bytes:${Buffer.from(new Uint8Array(m)).toString('hex')}`,
  )

const received = (t: Tracked, n: number): Promise<void> =>
  eventually(() => t.messages.length >= n, 10_000)

/** The only connection a broker has that publishes (or the only one at all). */
function onlyConnection(broker: Broker, publishing = false) {
  const conns = [...broker.connections.values()].filter(
    (c) => !publishing || c.channels.publish.length > 0,
  )
  assert.equal(conns.length, 1)
  return conns[0]!
}

/** Starts a broker on a given port (a "restarted server" on the old port). */
const brokerOnPort = (port: number, options: BrokerOptions = {}): Promise<TestServer> =>
  startBroker(options, port)

/** A plain `ws` server (not a broker) for behaviour a broker would never show. */
async function rawServer(): Promise<{ wss: WebSocketServer; url: string; close(): Promise<void> }> {
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' })
  await once(wss, 'listening')
  const { port } = wss.address() as net.AddressInfo
  return {
    wss,
    url: `ws://127.0.0.1:${port}`,
    async close() {
      for (const ws of wss.clients) ws.terminate()
      await new Promise<void>((resolve) => wss.close(() => resolve()))
    },
  }
}

/** The `ws` WebSocket, recording every frame each instance sends. */
function spyWebSocket() {
  const sockets: { sent: unknown[] }[] = []
  class SpyWebSocket extends WebSocket {
    readonly sent: unknown[] = []
    constructor(url: string, protocols?: string | string[]) {
      super(url, protocols)
      sockets.push(this)
    }
    override send(data: unknown, ...rest: unknown[]): void {
      this.sent.push(data)
      ;(super.send as (...args: unknown[]) => void)(data, ...rest)
    }
  }
  return { SpyWebSocket, sockets }
}

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()))
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

describe('buildUrl', () => {
  it('writes flags as keys without values, in order, and percent-encodes the facility', () => {
    assert.equal(
      buildUrl({
        url: 'ws://localhost:8000',
        facility: 'chat room/1',
        subscribe: ['user', 'broadcast'],
        publish: ['session'],
        echo: true,
      }),
      'ws://localhost:8000/ws/chat%20room%2F1?subscribe-user&subscribe-broadcast&publish-session&echo',
    )
  })

  it('maps http(s) to ws(s), honours path, and appends extra query parameters', () => {
    assert.equal(buildUrl({ url: 'http://h:1', facility: 'a' }), 'ws://h:1/ws/a')
    assert.equal(
      buildUrl({
        url: 'https://h',
        path: '/sockets',
        facility: 'a',
        subscribe: ['group'],
        query: { v: 2, x: 'a&b', flag: true, off: false, none: null },
      }),
      'wss://h/sockets/a?subscribe-group&v=2&x=a%26b&flag',
    )
  })

  it("keeps the base URL's path: path goes under it, with or without slashes", () => {
    assert.equal(buildUrl({ url: 'https://h/app/', facility: 'a' }), 'wss://h/app/ws/a')
    assert.equal(buildUrl({ url: 'https://h/app', facility: 'a' }), 'wss://h/app/ws/a')
    assert.equal(
      buildUrl({ url: 'http://h:8/app/v2/', path: '/sockets', facility: 'a' }),
      'ws://h:8/app/v2/sockets/a',
    )
    assert.equal(buildUrl({ url: 'ws://h/app/', path: 'live', facility: 'a' }), 'ws://h/app/live/a')
    assert.equal(buildUrl({ url: 'ws://h/app/', path: '/', facility: 'a' }), 'ws://h/app/a')
  })

  it('resolves a relative base against location, and refuses one without location', () => {
    assert.throws(() => buildUrl({ url: '/', facility: 'a' }), TypeError)
    const g = globalThis as { location?: { href: string } }
    g.location = { href: 'https://example.com/app/page?x=1' }
    try {
      assert.equal(
        buildUrl({ url: '/', facility: 'news', subscribe: ['broadcast'] }),
        'wss://example.com/ws/news?subscribe-broadcast',
      )
      assert.equal(buildUrl({ facility: 'n' }), 'wss://example.com/ws/n')
      // A relative base is a directory of the page's URL, kept as the base path.
      assert.equal(buildUrl({ url: './', facility: 'n' }), 'wss://example.com/app/ws/n')
    } finally {
      delete g.location
    }
  })

  it('refuses unknown audiences and empty facilities', () => {
    assert.throws(
      () => buildUrl({ url: 'ws://h', facility: 'a', subscribe: ['everyone' as 'user'] }),
      TypeError,
    )
    assert.throws(() => buildUrl({ url: 'ws://h', facility: '' }), TypeError)
  })
})

describe('client options', () => {
  const base = { url: 'ws://h', facility: 'a', WebSocket, autoConnect: false }
  const refused = (options: Record<string, unknown>, pattern: RegExp) =>
    assert.throws(
      () => createClient({ ...base, ...options } as ClientOptions),
      (err: unknown) => err instanceof TypeError && pattern.test(err.message),
    )

  it('refuses a mistyped option with a TypeError naming it and the likely one', () => {
    refused({ reconect: { base: 10 } }, /"reconect".*"reconnect"/)
    refused({ subscibe: ['user'] }, /"subscibe".*"subscribe"/)
    refused({ autoconnect: true }, /"autoconnect".*"autoConnect"/)
    refused({ colour: 'blue' }, /^unknown option "colour"$/)
  })

  it('refuses mistyped names inside reconnect, queue and heartbeat', () => {
    refused({ reconnect: { attemps: 3 } }, /"reconnect\.attemps".*"reconnect\.attempts"/)
    refused({ queue: { maxx: 3 } }, /"queue\.maxx".*"queue\.max"/)
    refused(
      { heartbeat: { text: '-', intervall: 5 } },
      /"heartbeat\.intervall".*"heartbeat\.interval"/,
    )
  })

  it('accepts every documented option', () => {
    const client = createClient({
      ...base,
      path: '/ws/',
      subscribe: ['user'],
      publish: [],
      echo: false,
      query: {},
      token: 't',
      tokenIn: 'query',
      tokenRefresh: false,
      positions: null,
      reconnect: { base: 1, cap: 2, attempts: 3 },
      heartbeat: { text: '-', interval: 5, missed: 1 },
      queue: { max: 1, whenDisconnected: 'reject' },
      binaryType: 'arraybuffer',
      random: Math.random,
    })
    assert.equal(client.status, 'closed')
  })
})

describe('backoffDelay and the reconnect rule', () => {
  it('grows exponentially up to cap, scaled by full jitter', () => {
    const opts = { base: 500, cap: 30_000 }
    const one = () => 1
    assert.deepEqual(
      [0, 1, 2, 3, 6, 7, 20].map((a) => backoffDelay(a, opts, one)),
      [500, 1000, 2000, 4000, 30_000, 30_000, 30_000],
    )
    assert.equal(
      backoffDelay(3, opts, () => 0.25),
      1000,
    )
    assert.equal(
      backoffDelay(3, opts, () => 0),
      0,
    )
  })

  it('retries transient closes, 4001 only with a token provider, never 1008', () => {
    for (const code of [1001, 1006, 1011, 1012, 1013])
      assert.equal(shouldReconnect(code, false), true)
    assert.equal(shouldReconnect(4001, true), true)
    assert.equal(shouldReconnect(4001, false), false)
    assert.equal(shouldReconnect(1008, true), false)
    assert.equal(shouldReconnect(1000, true), false)
  })

  it('retries refusals 4429 and 45xx, 4401 once with a token provider, never other 44xx', () => {
    for (const code of [4429, 4500, 4503]) assert.equal(shouldReconnect(code, false), true)
    for (const code of [4400, 4403, 4404, 4418]) assert.equal(shouldReconnect(code, true), false)
    assert.equal(shouldReconnect(4401, false), false)
    assert.equal(shouldReconnect(4401, true), true)
    assert.equal(shouldReconnect(4401, true, true), false, 'not twice in a row')
    assert.equal(refusalStatus(4403), 403)
    assert.equal(refusalStatus(4001), null)
  })

  it("reads the wait of a refusal from its reason's '; retry after N s'", () => {
    assert.equal(retryAfter('too many connections on this server; retry after 5 s'), 5000)
    assert.equal(retryAfter('retry after 2 s'), 2000)
    assert.equal(retryAfter('too many connections'), null)
    assert.equal(retryAfter('see; retry after soon'), null)
  })
})

describe('WsfClient against a broker (memory engine)', () => {
  let srv: TestServer
  before(async () => {
    srv = await startBroker({ clientPublish: ['broadcast', 'session', 'user'] })
  })
  after(() => srv.close())

  it('connects and receives text and binary messages', async () => {
    const t = track({ url: srv.url(''), facility: 'news', subscribe: ['broadcast'] })
    await opened(t)
    const pub = new RedisPublisher({ facility: 'news', broadcast: true }, { broker: srv.broker })
    assert.equal(await pub.publishMessage('hello'), 1)
    // Bytes that are not UTF-8 (a raw facility sends valid UTF-8 as text).
    assert.equal(await pub.publishMessage(Buffer.from([1, 2, 0xff])), 1)
    await received(t, 2)
    assert.equal(t.messages[0], 'hello')
    assert.ok(t.messages[1] instanceof ArrayBuffer)
    assert.deepEqual([...new Uint8Array(t.messages[1])], [1, 2, 0xff])
  })

  it('sends text and binary that the broker publishes to other clients', async () => {
    const reader = track({ url: srv.url(''), facility: 'talk', subscribe: ['broadcast'] })
    const writer = track({ url: srv.url(''), facility: 'talk', publish: ['broadcast'] })
    await Promise.all([opened(reader), opened(writer)])
    await writer.client.send('hi all')
    await writer.client.send(new Uint8Array([9, 0xf8]))
    await received(reader, 2)
    assert.deepEqual(texts(reader), ['hi all', 'bytes:09f8'])
    assert.deepEqual(writer.messages, [])
  })

  it('goes connecting → open → reconnecting → open → closed, with off() and unsubscribe working', async () => {
    const t = track({
      url: srv.url(''),
      facility: 'st',
      subscribe: ['broadcast'],
      autoConnect: false,
    })
    const extra: ClientStatus[] = []
    const unsubscribe = t.client.on('status', (s) => extra.push(s))
    assert.equal(t.client.status, 'closed')
    t.client.connect()
    await opened(t)
    unsubscribe()
    onlyConnection(srv.broker).close(1012, 'restart')
    await opened(t, 2)
    await t.client.close()
    assert.deepEqual(t.statuses, ['connecting', 'open', 'reconnecting', 'open', 'closed'])
    assert.deepEqual(extra, ['connecting', 'open'])
    assert.equal(t.client.status, 'closed')
    assert.equal(t.closes[0]!.code, 1012)
  })

  it("emits the first 'connecting' to listeners attached right after createClient", async () => {
    const client = createClient({ WebSocket, url: srv.url(''), facility: 'first' })
    clients.push(client)
    const statuses: ClientStatus[] = []
    client.on('status', (s) => statuses.push(s))
    assert.equal(client.status, 'connecting')
    await eventually(() => statuses.includes('open'))
    assert.deepEqual(statuses, ['connecting', 'open'])

    // Closed before the deferred event went out: both still arrive, in order, once.
    const early = createClient({ WebSocket, url: srv.url(''), facility: 'first' })
    const seen: ClientStatus[] = []
    early.on('status', (s) => seen.push(s))
    await early.close()
    await sleep(0)
    assert.deepEqual(seen, ['connecting', 'closed'])
  })

  it('close() stops for good: no reconnects, sends rejected with WSF_CLIENT_CLOSED', async () => {
    const t = track({ url: srv.url(''), facility: 'stop', subscribe: ['broadcast'] })
    await opened(t)
    await t.client.close()
    await sleep(300) // ten times the backoff ceiling of the first retries
    assert.equal(srv.broker.connections.size, 0)
    assert.deepEqual(t.statuses, ['connecting', 'open', 'closed'])
    assert.deepEqual(t.retries, [])
    await assert.rejects(t.client.send('late'), { code: 'WSF_CLIENT_CLOSED' })
  })

  it('queues sends while disconnected and flushes them in order on (re)connect', async () => {
    const reader = await connect(srv.url('/ws/q?subscribe-broadcast'))
    cleanups.push(() => reader.close())
    const t = track({
      url: srv.url(''),
      facility: 'q',
      publish: ['broadcast'],
      autoConnect: false,
      // A fixed 1 s delay keeps the client 'reconnecting' long enough to send into the gap.
      reconnect: { base: 1000, cap: 1000 },
      random: () => 0.999,
    })
    await t.client.send('m1')
    await t.client.send('m2')
    t.client.connect()
    await t.client.send('m3') // still connecting: queued behind m1, m2
    await reader.waitFor(3, 10_000)
    onlyConnection(srv.broker, true).close(1013, 'later')
    await eventually(() => t.client.status === 'reconnecting')
    await t.client.send('m4')
    await t.client.send(new Uint8Array([0xf5]))
    await t.client.send('m6')
    await reader.waitFor(6, 10_000)
    assert.deepEqual(reader.texts, ['m1', 'm2', 'm3', 'm4', 'f5', 'm6'])
  })

  it('rejects past queue.max with WSF_CLIENT_QUEUE_FULL', async () => {
    const t = track({ url: srv.url(''), facility: 'q', autoConnect: false, queue: { max: 2 } })
    await t.client.send('a')
    await t.client.send('b')
    await assert.rejects(t.client.send('c'), { code: 'WSF_CLIENT_QUEUE_FULL' })
  })

  it("rejects sends while disconnected with whenDisconnected: 'reject'", async () => {
    const reader = await connect(srv.url('/ws/rj?subscribe-broadcast'))
    cleanups.push(() => reader.close())
    const t = track({
      url: srv.url(''),
      facility: 'rj',
      publish: ['broadcast'],
      autoConnect: false,
      queue: { whenDisconnected: 'reject' },
      // A fixed 1 s delay keeps the client 'reconnecting' long enough to send into the gap.
      reconnect: { base: 1000, cap: 1000 },
      random: () => 0.999,
    })
    await assert.rejects(t.client.send('early'), { code: 'WSF_CLIENT_DISCONNECTED' })
    t.client.connect()
    await opened(t)
    onlyConnection(srv.broker, true).close(1011, 'oops')
    await eventually(() => t.client.status === 'reconnecting')
    await assert.rejects(t.client.send('lost'), { code: 'WSF_CLIENT_DISCONNECTED' })
    await opened(t, 2)
    await t.client.send('kept')
    await reader.waitFor(1, 10_000)
    await sleep(100)
    assert.deepEqual(reader.texts, ['kept'])
  })

  it('stops after 1008 (policy) with a WSF_CLIENT_POLICY error', async () => {
    const t = track({ url: srv.url(''), facility: 'pol', token: () => null })
    await opened(t)
    onlyConnection(srv.broker).close(1008, 'no')
    await eventually(() => t.client.status === 'closed')
    assert.deepEqual(
      t.errors.map((e) => [e.code, e.closeCode]),
      [['WSF_CLIENT_POLICY', 1008]],
    )
    await sleep(300)
    assert.equal(srv.broker.connections.size, 0)
    assert.deepEqual(t.retries, [])
  })

  it('gives up after reconnect.attempts failed attempts', async () => {
    const port = await freePort()
    const t = track({
      url: `ws://127.0.0.1:${port}`,
      facility: 'x',
      reconnect: { base: 5, cap: 10, attempts: 2 },
    })
    await eventually(() => t.client.status === 'closed', 10_000)
    assert.equal(t.retries.length, 2)
    assert.deepEqual(
      t.errors.map((e) => e.code),
      ['WSF_CLIENT_GAVE_UP'],
    )
  })
})

describe('WsfClient reconnection', () => {
  it('reconnects by itself after the server restarts on the same port', async () => {
    let srv = await startBroker()
    cleanups.push(() => srv.close())
    const port = srv.port
    const t = track({
      url: srv.url(''),
      facility: 'live',
      subscribe: ['broadcast'],
      reconnect: { base: 50, cap: 400 },
    })
    await opened(t)
    await srv.close()
    await eventually(() => t.client.status === 'reconnecting')
    await sleep(200) // let a few attempts fail against the closed port
    srv = await brokerOnPort(port)
    await opened(t, 2)
    const pub = new RedisPublisher({ facility: 'live', broadcast: true }, { broker: srv.broker })
    assert.equal(await pub.publishMessage('back again'), 1)
    await received(t, 1)
    assert.deepEqual(texts(t), ['back again'])
    assert.deepEqual(t.statuses, ['connecting', 'open', 'reconnecting', 'open'])
    assert.equal(t.closes[0]!.code, 1001)
  })

  it('waits random(0, min(cap, base * 2^attempt)) between attempts', async () => {
    let accepted = 0
    const tcp = net.createServer((socket) => {
      accepted++
      socket.destroy()
    })
    tcp.listen(0, '127.0.0.1')
    await once(tcp, 'listening')
    cleanups.push(() => new Promise<void>((resolve) => tcp.close(() => resolve())))
    const randoms = [1, 0.5, 1, 1, 1, 0.25]
    let i = 0
    const t = track({
      url: `ws://127.0.0.1:${(tcp.address() as net.AddressInfo).port}`,
      facility: 'x',
      reconnect: { base: 10, cap: 80 },
      random: () => randoms[i++ % randoms.length]!,
    })
    await eventually(() => t.retries.length >= 6, 10_000)
    await t.client.close()
    assert.deepEqual(
      t.retries.slice(0, 6),
      [10, 10, 40, 80, 80, 20].map((delay, n) => ({ attempt: n + 1, delay })),
    )
    assert.ok(accepted >= 6, `${accepted} connection attempts`)
    assert.equal(t.client.status, 'closed')
  })
})

describe('WsfClient tokens (JWT broker)', () => {
  let srv: TestServer
  before(async () => {
    srv = await startBroker({ jwt: { secret: SECRET, clockTolerance: 0 } })
  })
  after(() => srv.close())

  const toAlice = (message: string) =>
    new RedisPublisher(
      { facility: 'inbox', users: ['alice'] },
      { broker: srv.broker },
    ).publishMessage(message)

  it('sends the token as the bearer subprotocol and calls the provider on every connect', async () => {
    let calls = 0
    const t = track({
      url: srv.url(''),
      facility: 'inbox',
      subscribe: ['user'],
      token: async () => {
        calls++
        return mint('alice')
      },
    })
    await opened(t)
    assert.equal(calls, 1)
    assert.equal(onlyConnection(srv.broker).identity.user, 'alice')
    assert.equal(await toAlice('one'), 1)
    onlyConnection(srv.broker).close(1012, 'restart')
    await opened(t, 2)
    assert.equal(calls, 2)
    assert.equal(await toAlice('two'), 1)
    await received(t, 2)
    assert.deepEqual(texts(t), ['one', 'two'])
  })

  it("sends a fixed token as ?token= with tokenIn: 'query'", async () => {
    const seen: string[] = []
    const listener = (_conn: unknown, req: http.IncomingMessage) => seen.push(req.url ?? '')
    srv.broker.on('connection', listener)
    cleanups.push(() => void srv.broker.off('connection', listener))
    const t = track({
      url: srv.url(''),
      facility: 'inbox',
      subscribe: ['user'],
      token: await mint('alice'),
      tokenIn: 'query',
    })
    await opened(t)
    assert.match(seen[0]!, /^\/ws\/inbox\?subscribe-user&token=ey/)
    assert.equal(await toAlice('by query'), 1)
    await received(t, 1)
  })

  it('after 4001 (token expired) reconnects with a fresh token from the provider', async () => {
    const tokens: string[] = []
    const t = track({
      url: srv.url(''),
      facility: 'inbox',
      subscribe: ['user'],
      // No in-band refresh (client-recovery.test.ts tests it): the 4001 reconnect path.
      tokenRefresh: false,
      token: async () => {
        // The first token expires in about 2 s; the broker closes with 4001 then.
        const exp = Math.floor(Date.now() / 1000) + (tokens.length === 0 ? 2 : 600)
        tokens.push(await mint('alice', exp))
        return tokens.at(-1)
      },
    })
    await opened(t)
    await opened(t, 2)
    assert.equal(t.closes[0]!.code, 4001)
    assert.equal(tokens.length, 2)
    assert.equal(await toAlice('fresh'), 1)
    await received(t, 1)
    assert.deepEqual(t.errors, [])
  })

  it('stops after 4001 when the token is a fixed string', async () => {
    const t = track({ url: srv.url(''), facility: 'inbox', token: await mint('alice') })
    await opened(t)
    onlyConnection(srv.broker).close(4001, 'token expired')
    await eventually(() => t.client.status === 'closed')
    assert.deepEqual(
      t.errors.map((e) => e.code),
      ['WSF_CLIENT_TOKEN_EXPIRED'],
    )
    assert.deepEqual(t.retries, [])
  })
})

describe('WsfClient refused by the broker (close 4000 + status)', () => {
  /** Identity from the query: ?user=ann; ?deny=<status> refuses with that status. */
  const identify = (req: http.IncomingMessage) => {
    const q = new URL(req.url ?? '/', 'http://x').searchParams
    const deny = q.get('deny')
    if (deny) throw new HttpError(Number(deny), `denied with ${deny}`)
    return { user: q.get('user'), groups: [], sessionKey: null }
  }
  /** A broker, and the statuses of the upgrades it refused (its attempts that failed). */
  async function refusing(options: BrokerOptions = {}) {
    const srv = await startBroker({ identify, ...options })
    cleanups.push(() => srv.close())
    const refused: number[] = []
    srv.broker.on('refused', (_req, status) => refused.push(status))
    return { srv, refused }
  }

  it('stops with WSF_CLIENT_REFUSED and the status after 4401, 4403 and 4400, without retrying', async () => {
    const { srv, refused } = await refusing()
    const cases: [facility: string, deny: string | undefined, status: number][] = [
      ['f', '401', 401],
      ['f', '403', 403],
      ['a:b', undefined, 400],
    ]
    for (const [facility, deny, status] of cases) {
      refused.length = 0
      const t = track({ url: srv.url(''), facility, query: { deny } })
      await eventually(() => t.client.status === 'closed')
      assert.deepEqual(
        t.errors.map((e) => [e.code, e.status, e.closeCode]),
        [['WSF_CLIENT_REFUSED', status, 4000 + status]],
      )
      assert.deepEqual(t.retries, [])
      assert.deepEqual(refused, [status], 'one attempt')
      await assert.rejects(t.client.send('x'), { code: 'WSF_CLIENT_CLOSED' })
    }
  })

  it('retries a 4401 once when the token is a provider, asking it again, then stops', async () => {
    const { srv, refused } = await refusing({ identify: undefined, jwt: { secret: SECRET } })
    let calls = 0
    const t = track({ url: srv.url(''), facility: 'inbox', token: () => `bad-${++calls}` })
    await eventually(() => t.client.status === 'closed')
    assert.equal(calls, 2, 'a fresh token for the one retry')
    assert.deepEqual(refused, [401, 401])
    assert.equal(t.retries.length, 1)
    assert.deepEqual(
      t.errors.map((e) => [e.code, e.status]),
      [['WSF_CLIENT_REFUSED', 401]],
    )
    // A provider whose second token is good: the client connects on that retry.
    const tokens = ['bad', await mint('alice')]
    const good = track({ url: srv.url(''), facility: 'inbox', token: () => tokens.shift() })
    await opened(good)
    assert.deepEqual(good.errors, [])
    assert.deepEqual(
      good.closes.map((c) => c.code),
      [4401],
    )
  })

  for (const [limit, code] of [
    ['maxConnections', 4503],
    ['maxConnectionsPerUser', 4429],
  ] as const) {
    it(`backs off at least the retry after of a ${code} (${limit}), whatever the backoff`, async () => {
      const { srv, refused } = await refusing({ [limit]: 1 })
      const holder = await connect(srv.url('/ws/f?user=ann'))
      cleanups.push(() => holder.close())
      const t = track({
        url: srv.url(''),
        facility: 'f',
        query: { user: 'ann' },
        random: () => 0,
      })
      await eventually(() => t.retries.length === 1)
      assert.equal(t.closes[0]!.code, code)
      assert.match(t.closes[0]!.reason, /; retry after 5 s$/)
      assert.deepEqual(t.retries, [{ attempt: 1, delay: 5000 }], 'not the 0 ms of the backoff')
      assert.equal(t.client.status, 'reconnecting')
      assert.deepEqual(t.errors, [])
      assert.equal(refused.length, 1)
    })
  }

  it('makes its next attempt only after the retry after (attempts counted by the server)', async () => {
    // A server refusing the first attempt as the broker does: the refusal subprotocol, a close.
    let attempts = 0
    const wss = new WebSocketServer({
      port: 0,
      host: '127.0.0.1',
      handleProtocols: () => (++attempts === 1 ? 'wsfacility.refusal' : 'wsfacility'),
    })
    await once(wss, 'listening')
    cleanups.push(() => new Promise<void>((resolve) => wss.close(() => resolve())))
    wss.on('connection', (ws) => {
      if (ws.protocol === 'wsfacility.refusal') ws.close(4429, 'busy; retry after 1 s')
      else cleanups.push(() => ws.terminate())
    })
    const t = track({
      url: `ws://127.0.0.1:${(wss.address() as net.AddressInfo).port}`,
      facility: 'f',
      reconnect: { base: 1, cap: 1 },
      random: () => 1,
      queue: { max: 10, whenDisconnected: 'queue' },
    })
    const sent: string[] = []
    wss.on('connection', (ws) => ws.on('message', (m) => sent.push(`${ws.protocol}:${m}`)))
    await t.client.send('queued')
    await opened(t)
    assert.equal(attempts, 2)
    assert.deepEqual(t.retries, [{ attempt: 1, delay: 1000 }])
    // The refused socket was never open: nothing was flushed on it.
    assert.deepEqual(t.statuses, ['connecting', 'reconnecting', 'open'])
    await eventually(() => sent.length > 0)
    assert.deepEqual(sent, ['wsfacility:queued'])
  })
})

describe('WsfClient heartbeats', () => {
  it("answers of the broker's text heartbeat keep the connection and are not messages", async () => {
    const srv = await startBroker({ heartbeat: '--hb--' })
    cleanups.push(() => srv.close())
    const { SpyWebSocket, sockets } = spyWebSocket()
    const t = track({
      url: srv.url(''),
      facility: 'hb',
      subscribe: ['broadcast'],
      WebSocket: SpyWebSocket,
      heartbeat: { text: '--hb--', interval: 20, missed: 2 },
    })
    await opened(t)
    // Without answers the client would have replaced the connection after the third heartbeat.
    await eventually(() => sockets[0]!.sent.length >= 10, 10_000)
    assert.equal(sockets.length, 1)
    assert.ok(sockets[0]!.sent.every((s) => s === '--hb--'))
    assert.deepEqual(t.statuses, ['connecting', 'open'])
    const pub = new RedisPublisher({ facility: 'hb', broadcast: true }, { broker: srv.broker })
    await pub.publishMessage('data')
    await received(t, 1)
    assert.deepEqual(texts(t), ['data'])
  })

  it('replaces a connection whose heartbeats go unanswered after `missed` of them', async () => {
    const raw = await rawServer()
    cleanups.push(() => raw.close())
    const perConnection: string[][] = []
    raw.wss.on('connection', (ws) => {
      const got: string[] = []
      perConnection.push(got)
      ws.on('message', (data) => got.push(String(data)))
    })
    const t = track({
      url: raw.url,
      facility: 'dead',
      heartbeat: { text: '--heartbeat--', interval: 20, missed: 3 },
    })
    await eventually(() => perConnection.length >= 2, 10_000)
    assert.deepEqual(perConnection[0], ['--heartbeat--', '--heartbeat--', '--heartbeat--'])
    assert.equal(t.errors[0]!.code, 'WSF_CLIENT_HEARTBEAT_TIMEOUT')
    await opened(t, 2)
    assert.deepEqual(t.statuses.slice(0, 4), ['connecting', 'open', 'reconnecting', 'open'])
    assert.deepEqual(t.messages, [])
  })

  it("sends JSON pings to a format: 'json' facility; pongs are not messages", async () => {
    const srv = await startBroker()
    srv.broker.facility('j', { format: 'json' })
    cleanups.push(() => srv.close())
    const { SpyWebSocket, sockets } = spyWebSocket()
    const t = track({
      url: srv.url(''),
      facility: 'j',
      subscribe: ['broadcast'],
      WebSocket: SpyWebSocket,
      heartbeat: { json: true, interval: 20, missed: 2 },
    })
    await opened(t)
    await eventually(() => sockets[0]!.sent.length >= 10, 10_000)
    assert.equal(sockets.length, 1)
    assert.ok(sockets[0]!.sent.every((s) => s === '{"type":"ping"}'))
    assert.deepEqual(t.statuses, ['connecting', 'open'])
    const pub = new RedisPublisher({ facility: 'j', broadcast: true }, { broker: srv.broker })
    await pub.publishMessage({ hello: 1 })
    await received(t, 1)
    assert.deepEqual(texts(t), ['{"type":"data","data":{"hello":1}}'])
  })
})

describe('WsfClient against a real redis-server', () => {
  let redis: RedisServer
  let srv: TestServer
  before(async () => {
    redis = await startRedis()
    srv = await startBroker({ redis: redis.url, clientPublish: ['broadcast'] })
  })
  after(async () => {
    await srv.close()
    await redis.stop()
  })

  it('receives what any Redis client publishes and publishes what it sends', async () => {
    const reader = track({ url: srv.url(''), facility: 'rr', subscribe: ['broadcast'] })
    const writer = createClient({
      url: srv.url(''),
      facility: 'rr',
      publish: ['broadcast'],
      WebSocket,
    })
    clients.push(writer)
    await opened(reader)
    await eventually(() => writer.status === 'open')
    const r = await redis.client()
    try {
      assert.equal(await r.publish('broadcast:rr', 'from redis'), 1)
    } finally {
      r.destroy()
    }
    await received(reader, 1)
    await writer.send('from writer')
    await received(reader, 2)
    assert.deepEqual(texts(reader), ['from redis', 'from writer'])
  })
})
