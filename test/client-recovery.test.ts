import assert from 'node:assert/strict'
import { after, afterEach, before, describe, it } from 'node:test'
import WebSocket from 'ws'
import {
  type ClientMessage,
  type ClientOptions,
  type ClientStatus,
  type Positions,
  type RecoveredEvent,
  refreshDelay,
  tokenTimes,
  WsfClient,
  type WsfClientError,
} from '../src/client/index.js'
import { readPositionFrame } from '../src/client/positions.js'
import { type Broker, type BrokerOptions, RedisPublisher } from '../src/index.js'
import { type RedisServer, startRedis } from './helpers/redis.js'
import { nowSec, signToken } from './helpers/token.js'
import { eventually, fresh, startBroker, type TestServer } from './helpers/ws.js'

const SECRET = 'a-long-enough-hmac-secret-for-wsfacility-recovery-tests-01'
const HISTORY = { size: 100, ttl: 300 }

/** A client with everything it emitted recorded. */
interface Tracked {
  client: WsfClient
  statuses: ClientStatus[]
  messages: ClientMessage[]
  recovered: RecoveredEvent[]
  errors: WsfClientError[]
  closes: { code: number; reason: string }[]
  /** URLs of the sockets it opened, in order. */
  urls: string[]
  /** What each of its sockets sent. */
  sent: unknown[][]
}

const clients: WsfClient[] = []
const cleanups: (() => Promise<unknown> | void)[] = []

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()))
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

/** Creates and connects a client that records its events, its socket URLs and what they sent. */
function track(options: ClientOptions): Tracked {
  const urls: string[] = []
  const sent: unknown[][] = []
  class RecordingWebSocket extends WebSocket {
    readonly #sent: unknown[] = []
    constructor(url: string, protocols?: string | string[]) {
      super(url, protocols)
      urls.push(url)
      sent.push(this.#sent)
    }
    override send(data: unknown, ...rest: unknown[]): void {
      this.#sent.push(data)
      ;(super.send as (...args: unknown[]) => void)(data, ...rest)
    }
  }
  const client = new WsfClient({
    WebSocket: RecordingWebSocket,
    reconnect: { base: 20, cap: 200 },
    ...options,
    autoConnect: false,
  })
  clients.push(client)
  const t: Tracked = {
    client,
    statuses: [],
    messages: [],
    recovered: [],
    errors: [],
    closes: [],
    urls,
    sent,
  }
  client.on('status', (s) => t.statuses.push(s))
  client.on('message', (m) => t.messages.push(m))
  client.on('recovered', (e) => t.recovered.push(e))
  client.on('error', (e) => t.errors.push(e))
  client.on('close', (c) => t.closes.push(c))
  client.connect()
  return t
}

const opened = (t: Tracked, times = 1): Promise<void> =>
  eventually(() => t.statuses.filter((s) => s === 'open').length >= times, 10_000)

const received = (t: Tracked, n: number): Promise<void> =>
  eventually(() => t.messages.length >= n, 10_000)

/** The `data` of every data frame received, in order. */
const data = (t: Tracked): unknown[] =>
  t.messages.map((m) => (JSON.parse(String(m)) as { data: unknown }).data)

/** The parsed `recover` parameter of a socket URL, or null. */
function recoverOf(url: string): unknown {
  const value = new URL(url).searchParams.get('recover')
  return value === null ? null : JSON.parse(value)
}

/**
 * A token provider whose every call after the first waits for `release()`: the client stays
 * disconnected (between its close and its next connect) for exactly as long as a test needs.
 */
function gatedProvider(token: () => string | null | Promise<string | null> = () => null) {
  let calls = 0
  let open: (() => void) | null = null
  let gate = Promise.resolve()
  return {
    get calls() {
      return calls
    },
    /** Makes the next calls wait. */
    hold() {
      gate = new Promise<void>((resolve) => (open = resolve))
    },
    release() {
      open?.()
    },
    provider: async () => {
      calls++
      await gate
      return token()
    },
  }
}

const publisher = (broker: Broker, facility: string) => {
  const pub = new RedisPublisher({ facility, broadcast: true }, { broker })
  return (value: unknown) => pub.publishMessage(JSON.stringify(value))
}

/** The one connection of `facility` that publishes (asserts there is one). */
function onlyPublisherOf(broker: Broker, facility: string) {
  const conns = [...broker.connections.values()].filter(
    (c) => c.facility === facility && c.channels.publish.length > 0,
  )
  assert.equal(conns.length, 1)
  return conns[0]!
}

/** The one connection of the broker (asserts there is one). */
function onlyConnection(broker: Broker) {
  const conns = [...broker.connections.values()]
  assert.equal(conns.length, 1)
  return conns[0]!
}

describe('Position frames and tokens, read without a broker', () => {
  it('reads a data frame’s position without parsing its data, and ignores other frames', () => {
    assert.deepEqual(
      readPositionFrame(
        '{"type":"data","channel":"group:a\\"b","epoch":"17","offset":5,"data":{"x":1}}',
      ),
      { type: 'data', position: { channel: 'group:a"b', epoch: '17', offset: 5 } },
    )
    // The data is never looked at: text that is not JSON after the head changes nothing.
    assert.deepEqual(
      readPositionFrame('{"type":"data","channel":"user","epoch":"1","offset":2,"data":not json'),
      { type: 'data', position: { channel: 'user', epoch: '1', offset: 2 } },
    )
    assert.deepEqual(
      readPositionFrame('{"type":"position","channel":"broadcast","epoch":"17","offset":6}'),
      { type: 'position', position: { channel: 'broadcast', epoch: '17', offset: 6 } },
    )
    for (const other of [
      '{"type":"position","channel":"broadcast","epoch":"17","offset":6,"data":1}',
      '{"type":"position","channel":"broadcast","epoch":17,"offset":6}',
      '{"type":"data","data":{"channel":"user","epoch":"1","offset":2}}',
      '{"type":"pong"}',
      '{"channel":"user","epoch":"1","offset":2}',
      'hello',
      ' {"type":"recovered","recovered":true,"channels":{}}',
    ]) {
      assert.equal(readPositionFrame(other), null, other)
    }
    assert.equal(readPositionFrame(new ArrayBuffer(3)), null)
  })

  it('reads a recovered frame, and refuses one of the wrong shape', () => {
    const channels = { broadcast: { epoch: '9', offset: 3, recovered: true, missed: 2 } }
    assert.deepEqual(
      readPositionFrame(JSON.stringify({ type: 'recovered', recovered: true, channels })),
      { type: 'recovered', event: { recovered: true, channels } },
    )
    for (const bad of [
      { type: 'recovered', recovered: 'yes', channels },
      { type: 'recovered', recovered: true, channels: [] },
      { type: 'recovered', recovered: true, channels: { b: { epoch: 9, offset: 3 } } },
    ]) {
      assert.equal(readPositionFrame(JSON.stringify(bad)), null)
    }
  })

  it('decodes exp and iat of a JWT without verifying it; null for anything else', async () => {
    const exp = nowSec() + 600
    const token = await signToken({ key: SECRET, sub: 'zoë', exp, iat: true })
    const times = tokenTimes(token)!
    assert.equal(times.expiresAt, exp * 1000)
    assert.ok(times.issuedAt !== null && Math.abs(times.issuedAt - Date.now()) < 60_000)
    assert.equal(tokenTimes(await signToken({ key: SECRET, sub: 'x' })), null) // no exp
    for (const other of ['', 'opaque-token', 'a.b.c', 'a..c', 'x.eyJleHAiOiJzb29uIn0.y']) {
      assert.equal(tokenTimes(other), null, other)
    }
  })

  it('refreshes at 85% of the remaining lifetime, at least 5 s before expiry, halfway under 10 s', () => {
    const at = (seconds: number, iat: number | null = null) =>
      refreshDelay({ expiresAt: seconds * 1000, issuedAt: iat }, 0)
    assert.equal(at(3600), 3600 * 850)
    assert.equal(at(20), 15_000)
    assert.equal(at(8), 4000)
    assert.equal(at(2), 1000)
    assert.equal(at(0), null)
    assert.equal(at(-5), null)
    // iat bounds the lifetime: a client clock behind the issuer's does not refresh late.
    assert.equal(refreshDelay({ expiresAt: 100_000, issuedAt: 80_000 }, 0), 15_000)
  })

  it('refuses a positions option that is not { label: { epoch, offset } }', () => {
    const base = { url: 'ws://127.0.0.1:1', facility: 'f', WebSocket, autoConnect: false }
    for (const positions of [
      [],
      'broadcast',
      { broadcast: null },
      { broadcast: { epoch: 1, offset: 0 } },
      { broadcast: { epoch: '1', offset: -1 } },
      { broadcast: { epoch: '1', offset: 1.5 } },
      { broadcast: { epoch: 'e'.repeat(65), offset: 1 } },
    ]) {
      assert.throws(
        () => new WsfClient({ ...base, positions: positions as unknown as Positions }),
        TypeError,
        JSON.stringify(positions),
      )
    }
    assert.throws(
      () => new WsfClient({ ...base, tokenRefresh: 'yes' as unknown as boolean }),
      TypeError,
    )
    const positions = {
      broadcast: { epoch: '17', offset: 4 },
      'group:a': { epoch: '3', offset: 0 },
    }
    const client = new WsfClient({ ...base, positions })
    assert.deepEqual(client.positions, positions)
    assert.notEqual(client.positions.broadcast, positions.broadcast) // a copy
    assert.deepEqual(new WsfClient({ ...base, positions: null }).positions, {})
  })
})

/** The recovery tests, on the engine `options` give the broker. */
function recoveryTests(name: string, options: () => BrokerOptions) {
  describe(`WsfClient recovery (${name})`, () => {
    let srv: TestServer
    before(async () => {
      srv = await startBroker(options())
    })
    after(() => srv.close())

    /** A json facility with history, and a client of its broadcast channel behind a gate. */
    async function feed(extra: Partial<ClientOptions> = {}) {
      const facility = fresh('feed')
      srv.broker.facility(facility, { format: 'json', history: HISTORY })
      const gate = gatedProvider()
      const t = track({
        url: srv.url(''),
        facility,
        subscribe: ['broadcast'],
        token: gate.provider,
        ...extra,
      })
      await opened(t)
      return { facility, gate, t, publish: publisher(srv.broker, facility) }
    }

    for (const [how, drop] of [
      ['closed with 1012', (b: Broker) => onlyConnection(b).close(1012, 'restart')],
      ['terminated (1006)', (b: Broker) => onlyConnection(b).terminate()],
    ] as const) {
      it(`gets every message once, in order, after its socket was ${how} while messages were published`, async () => {
        const { gate, t, publish } = await feed()
        // The first connect gave no positions: no 'recovered' event, no frame as a message.
        const first = t.client.positions.broadcast
        assert.ok(first && typeof first.epoch === 'string' && first.offset === 0)
        assert.equal(recoverOf(t.urls[0]!), null)
        for (const n of [1, 2]) await publish({ n })
        await received(t, 2)
        assert.deepEqual(t.client.positions, { broadcast: { epoch: first.epoch, offset: 2 } })

        gate.hold()
        drop(srv.broker)
        await eventually(() => gate.calls === 2, 10_000) // disconnected, waiting to reconnect
        for (const n of [3, 4, 5]) await publish({ n })
        gate.release()
        await opened(t, 2)
        await eventually(() => t.recovered.length === 1, 10_000)
        await publish({ n: 6 })
        await received(t, 6)

        assert.deepEqual(recoverOf(t.urls[1]!), { broadcast: { epoch: first.epoch, offset: 2 } })
        assert.deepEqual(
          data(t),
          [1, 2, 3, 4, 5, 6].map((n) => ({ n })),
        )
        assert.deepEqual(t.recovered, [
          {
            recovered: true,
            channels: { broadcast: { epoch: first.epoch, offset: 5, recovered: true, missed: 3 } },
          },
        ])
        assert.deepEqual(t.client.positions, { broadcast: { epoch: first.epoch, offset: 6 } })
        assert.deepEqual(t.errors, [])
      })
    }

    it('a publisher without echo: its own message moves its position and is not sent back after a reconnect', async () => {
      const facility = fresh('talk')
      srv.broker.facility(facility, { format: 'json', history: HISTORY, publish: ['broadcast'] })
      const gate = gatedProvider()
      const opts = { url: srv.url(''), facility, subscribe: ['broadcast' as const] }
      const speaker = track({ ...opts, publish: ['broadcast'], token: gate.provider })
      const listener = track(opts)
      await opened(speaker)
      await opened(listener)
      await speaker.client.send(JSON.stringify({ type: 'data', data: { n: 1 } }))
      await received(listener, 1)
      const epoch = listener.client.positions.broadcast!.epoch
      await eventually(() => speaker.client.positions.broadcast?.offset === 1, 10_000)
      assert.deepEqual(speaker.messages, [], 'no echo, and the position frame is no message')
      gate.hold()
      onlyPublisherOf(srv.broker, facility).close(1012, 'restart')
      await eventually(() => gate.calls === 2, 10_000)
      gate.release()
      await opened(speaker, 2)
      await eventually(() => speaker.recovered.length === 1, 10_000)
      assert.deepEqual(speaker.recovered[0]!.channels.broadcast, {
        epoch,
        offset: 1,
        recovered: true,
        missed: 0,
      })
      await publisher(srv.broker, facility)({ n: 2 })
      await received(speaker, 1)
      await received(listener, 2)
      assert.deepEqual(data(speaker), [{ n: 2 }], 'its own message did not come back')
      assert.deepEqual(data(listener), [{ n: 1 }, { n: 2 }])
    })

    it('resumes from the positions of an earlier client (a page reload)', async () => {
      const { facility, t, publish } = await feed()
      for (const n of [1, 2]) await publish({ n })
      await received(t, 2)
      // What a page would keep in sessionStorage.
      const saved = JSON.parse(JSON.stringify(t.client.positions)) as Positions
      await t.client.close()
      for (const n of [3, 4]) await publish({ n })

      const reloaded = track({
        url: srv.url(''),
        facility,
        subscribe: ['broadcast'],
        positions: saved,
      })
      await eventually(() => reloaded.recovered.length === 1, 10_000)
      await publish({ n: 5 })
      await received(reloaded, 3)
      assert.deepEqual(recoverOf(reloaded.urls[0]!), saved)
      assert.deepEqual(
        data(reloaded),
        [3, 4, 5].map((n) => ({ n })),
      )
      assert.equal(reloaded.recovered[0]!.recovered, true)
      assert.deepEqual(reloaded.recovered[0]!.channels.broadcast, {
        ...saved.broadcast,
        offset: 4,
        recovered: true,
        missed: 2,
      })
    })

    it('tells recovered: false and goes on from the new position when history was trimmed', async () => {
      const facility = fresh('short')
      srv.broker.facility(facility, { format: 'json', history: { size: 1, ttl: 300 } })
      const gate = gatedProvider()
      const t = track({
        url: srv.url(''),
        facility,
        subscribe: ['broadcast'],
        token: gate.provider,
      })
      await opened(t)
      const publish = publisher(srv.broker, facility)
      await publish({ n: 1 })
      await received(t, 1)
      gate.hold()
      onlyConnection(srv.broker).close(1012, 'restart')
      await eventually(() => gate.calls === 2, 10_000)
      // More than the history keeps: the oldest missed messages are gone.
      for (let n = 2; n <= 400; n++) await publish({ n })
      gate.release()
      await eventually(() => t.recovered.length === 1, 10_000)
      const event = t.recovered[0]!
      assert.equal(event.recovered, false)
      assert.equal(event.channels.broadcast!.recovered, false)
      assert.equal(event.channels.broadcast!.offset, 400)
      await publish({ n: 401 })
      await eventually(() => data(t).some((d) => (d as { n: number }).n === 401), 10_000)
      assert.deepEqual(data(t), [{ n: 1 }, { n: 401 }])
      assert.equal(t.client.positions.broadcast!.offset, 401)
    })
  })
}

let redis: RedisServer | null = null
before(async () => {
  redis = await startRedis()
})
after(async () => {
  await redis?.stop()
})

recoveryTests('memory engine', () => ({ history: HISTORY }))
recoveryTests('Redis', () => ({ redis: redis!.url }))

describe('WsfClient recovery when the epoch changed', () => {
  it('memory engine: a fresh broker on the same port has a new epoch → recovered: false', async () => {
    const first = await startBroker({ history: HISTORY })
    const port = first.port
    let current = first
    cleanups.push(() => current.close())
    first.broker.facility('epoch', { format: 'json' })
    const gate = gatedProvider()
    const t = track({
      url: first.url(''),
      facility: 'epoch',
      subscribe: ['broadcast'],
      token: gate.provider,
    })
    await opened(t)
    await publisher(first.broker, 'epoch')({ n: 1 })
    await received(t, 1)
    const old = t.client.positions.broadcast!
    gate.hold()
    await first.close()
    await eventually(() => gate.calls === 2, 10_000)
    current = await startBroker({ history: HISTORY }, port)
    current.broker.facility('epoch', { format: 'json' })
    await publisher(current.broker, 'epoch')({ n: 2 }) // missed, and lost with the old epoch
    gate.release()
    await eventually(() => t.recovered.length === 1, 10_000)
    const event = t.recovered[0]!
    assert.equal(event.recovered, false)
    const channel = event.channels.broadcast!
    assert.notEqual(channel.epoch, old.epoch)
    assert.deepEqual(
      { offset: channel.offset, recovered: channel.recovered, missed: channel.missed },
      { offset: 1, recovered: false, missed: 0 },
    )
    await publisher(current.broker, 'epoch')({ n: 3 })
    await received(t, 2)
    assert.deepEqual(data(t), [{ n: 1 }, { n: 3 }])
    assert.deepEqual(t.client.positions, { broadcast: { epoch: channel.epoch, offset: 2 } })
  })

  describe('Redis', () => {
    let srv: TestServer
    before(async () => {
      srv = await startBroker({ redis: redis!.url, history: HISTORY })
    })
    after(() => srv.close())

    const flushAll = async () => {
      const r = await redis!.client()
      try {
        await r.flushAll()
      } finally {
        r.destroy()
      }
    }

    it('after FLUSHALL while disconnected → recovered: false on reconnect', async () => {
      const facility = fresh('flush')
      srv.broker.facility(facility, { format: 'json' })
      const publish = publisher(srv.broker, facility)
      const gate = gatedProvider()
      const t = track({
        url: srv.url(''),
        facility,
        subscribe: ['broadcast'],
        token: gate.provider,
      })
      await opened(t)
      await publish({ n: 1 })
      await received(t, 1)
      const old = t.client.positions.broadcast!
      gate.hold()
      onlyConnection(srv.broker).close(1012, 'restart')
      await eventually(() => gate.calls === 2, 10_000)
      await flushAll()
      await publish({ n: 2 })
      gate.release()
      await eventually(() => t.recovered.length === 1, 10_000)
      const event = t.recovered[0]!
      assert.equal(event.recovered, false)
      assert.notEqual(event.channels.broadcast!.epoch, old.epoch)
      assert.equal(event.channels.broadcast!.recovered, false)
      await publish({ n: 3 })
      await received(t, 2)
      assert.deepEqual(data(t), [{ n: 1 }, { n: 3 }])
    })

    /** A connected client whose channel's history Redis loses (FLUSHALL), then `n: 2` and `n: 3`. */
    async function lossWhileConnected() {
      const facility = fresh('loss')
      srv.broker.facility(facility, { format: 'json' })
      const publish = publisher(srv.broker, facility)
      const t = track({ url: srv.url(''), facility, subscribe: ['broadcast'] })
      await opened(t)
      await publish({ n: 1 })
      await received(t, 1)
      const old = t.client.positions.broadcast!
      await flushAll()
      await publish({ n: 2 })
      await eventually(() => t.recovered.length === 1, 10_000)
      await publish({ n: 3 })
      await eventually(() => data(t).some((d) => (d as { n: number }).n === 3), 10_000)
      return { t, old }
    }

    it('a loss while connected (FLUSHALL) comes as a recovered: false event, not a message', async () => {
      const { t, old } = await lossWhileConnected()
      const event = t.recovered[0]!
      assert.equal(event.recovered, false)
      const channel = event.channels.broadcast!
      assert.notEqual(channel.epoch, old.epoch)
      assert.equal(channel.recovered, false)
      assert.equal(channel.missed, 0)
      // Every message is a data frame: the recovered frame was not emitted as one.
      for (const m of t.messages) assert.match(String(m), /^\{"type":"data",/)
      assert.deepEqual(data(t).at(-1), { n: 3 })
      assert.deepEqual(t.client.positions, { broadcast: { epoch: channel.epoch, offset: 2 } })
      assert.deepEqual(t.statuses, ['connecting', 'open'])
      assert.equal(t.urls.length, 1)
    })

    it('a loss while connected: the first message of the new epoch still reaches the client', async () => {
      const { t } = await lossWhileConnected()
      assert.deepEqual(data(t), [{ n: 1 }, { n: 2 }, { n: 3 }])
    })
  })
})

describe('WsfClient token refresh on the open connection (JWT broker)', () => {
  let srv: TestServer
  before(async () => {
    srv = await startBroker({ jwt: { secret: SECRET, clockTolerance: 0 } })
    srv.broker.facility('inbox-json', { format: 'json' })
  })
  after(() => srv.close())

  const toAlice = (facility: string, message: string) =>
    new RedisPublisher({ facility, users: ['alice'] }, { broker: srv.broker }).publishMessage(
      message,
    )

  for (const facility of ['inbox', 'inbox-json']) {
    it(`${facility}: sends a new token before the first expires; the connection outlives it`, async () => {
      const tokens: string[] = []
      const t = track({
        url: srv.url(''),
        facility,
        subscribe: ['user'],
        token: async () => {
          // The first token expires in 2–3 s, the next ones in ten minutes.
          tokens.push(
            await signToken({
              key: SECRET,
              sub: 'alice',
              exp: nowSec() + (tokens.length === 0 ? 3 : 600),
            }),
          )
          return tokens.at(-1)
        },
      })
      await opened(t)
      const id = onlyConnection(srv.broker).id
      const firstExpiry = tokenTimes(tokens[0]!)!.expiresAt
      await eventually(() => tokens.length === 2, 10_000)
      await eventually(() => t.sent[0]!.length === 1, 10_000)
      assert.deepEqual(t.sent[0], [JSON.stringify({ token: tokens[1] })])
      // Past the first token's expiry (when the broker would have closed with 4001).
      await eventually(() => Date.now() > firstExpiry + 500, 10_000)
      assert.equal(await toAlice(facility, 'still here'), 1)
      await received(t, 1)
      assert.equal(onlyConnection(srv.broker).id, id)
      assert.deepEqual(t.closes, [])
      assert.deepEqual(t.statuses, ['connecting', 'open'])
      assert.equal(t.urls.length, 1)
      assert.deepEqual(t.errors, [])
      assert.equal(tokens.length, 2)
    })
  }

  it('reports a failing refresh with WSF_CLIENT_TOKEN_REFRESH, then reconnects after 4001', async () => {
    let calls = 0
    const t = track({
      url: srv.url(''),
      facility: 'inbox',
      subscribe: ['user'],
      token: async () => {
        calls++
        if (calls === 2) throw new Error('token service down')
        return signToken({ key: SECRET, sub: 'alice', exp: nowSec() + (calls === 1 ? 3 : 600) })
      },
    })
    await opened(t)
    await eventually(() => t.errors.length === 1, 10_000)
    assert.equal(t.errors[0]!.code, 'WSF_CLIENT_TOKEN_REFRESH')
    assert.equal((t.errors[0]!.cause as Error).message, 'token service down')
    await opened(t, 2)
    assert.equal(t.closes[0]!.code, 4001)
    assert.equal(calls, 3)
    assert.deepEqual(t.sent[0], [])
    assert.equal(await toAlice('inbox', 'after reconnect'), 1)
    await received(t, 1)
  })

  it('sends nothing when the provider gives the same token again, and says so', async () => {
    const token = await signToken({ key: SECRET, sub: 'alice', exp: nowSec() + 3 })
    let calls = 0
    const t = track({
      url: srv.url(''),
      facility: 'inbox',
      subscribe: ['user'],
      reconnect: false,
      token: () => {
        calls++
        return token
      },
    })
    await opened(t)
    await eventually(() => t.errors.length >= 1, 10_000)
    assert.equal(t.errors[0]!.code, 'WSF_CLIENT_TOKEN_REFRESH')
    assert.equal(calls, 2)
    assert.deepEqual(t.sent[0], [])
  })

  it('never refreshes in-band with tokenRefresh: false', async () => {
    let calls = 0
    const t = track({
      url: srv.url(''),
      facility: 'inbox',
      subscribe: ['user'],
      tokenRefresh: false,
      token: async () => {
        calls++
        return signToken({ key: SECRET, sub: 'alice', exp: nowSec() + (calls === 1 ? 2 : 600) })
      },
    })
    await opened(t)
    // Without a refresh the broker closes at expiry, and the client reconnects with a new token.
    await opened(t, 2)
    assert.equal(t.closes[0]!.code, 4001)
    assert.equal(calls, 2)
    assert.deepEqual(t.sent[0], [])
  })
})
