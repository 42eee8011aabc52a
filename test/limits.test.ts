import assert from 'node:assert/strict'
import { once } from 'node:events'
import type { IncomingMessage } from 'node:http'
import { after, before, describe, it } from 'node:test'
import { type BrokerOptions, createBroker, HttpError } from '../src/index.js'
import { ConnectionCounter } from '../src/upgrade/admission.js'
import { bucketFor, TokenBucket } from '../src/connection/rate-limit.js'
import { identify } from './helpers/identity.js'
import { type RedisServer, startRedis } from './helpers/redis.js'
import {
  connect,
  eventually,
  frame,
  sendJson,
  startBroker,
  TestClient,
  type TestServer,
  upgradeStatus,
} from './helpers/ws.js'

/** Opens a client: resolves to it once open, or to the HTTP status it was refused with. */
async function attempt(url: string): Promise<TestClient | number> {
  const c = new TestClient(url)
  return Promise.race([
    c.opened(),
    once(c.ws, 'unexpected-response').then(([, res]) => (res as IncomingMessage).statusCode ?? 0),
  ])
}

/** True when a client could connect (and closes it again). */
async function canConnect(url: string): Promise<boolean> {
  const c = await attempt(url)
  if (typeof c === 'number') return false
  await c.close()
  return true
}

describe('TokenBucket', () => {
  it('allows a burst, then one message per 1/rate seconds', () => {
    const bucket = new TokenBucket(2, 3, 0)
    assert.deepEqual(
      [0, 0, 0, 0].map(() => bucket.take(0)),
      [true, true, true, false],
    )
    assert.equal(bucket.take(400), false, '0.8 of a token after 400 ms')
    assert.equal(bucket.take(500), true, 'a whole token after 500 ms')
    assert.equal(bucket.take(500), false)
  })

  it('never holds more than the burst however long it was idle', () => {
    const bucket = new TokenBucket(10, 2, 0)
    const taken = Array.from({ length: 5 }, () => bucket.take(60_000)).filter(Boolean)
    assert.equal(taken.length, 2)
  })

  it('is absent for rate 0 and gets one second of burst for burst 0', () => {
    assert.equal(bucketFor(0, 10), null)
    const bucket = bucketFor(3, 0)!
    const taken = Array.from({ length: 5 }, () => bucket.take()).filter(Boolean)
    assert.equal(taken.length, 3)
  })
})

describe('ConnectionCounter', () => {
  it('refuses past maxConnections with 503 and Retry-After, and counts again after a release', () => {
    const counter = new ConnectionCounter({ maxConnections: 2, maxConnectionsPerUser: 0 })
    counter.admit()
    counter.admit()
    assert.throws(
      () => counter.admit(),
      (err) => err instanceof HttpError && err.status === 503 && err.headers['Retry-After'] === '5',
    )
    assert.equal(counter.total, 2, 'a refused admission is not counted')
    counter.release()
    assert.equal(counter.total, 1)
    counter.admit()
    assert.equal(counter.total, 2)
  })

  it('refuses past maxConnectionsPerUser with 429, per user', () => {
    const counter = new ConnectionCounter({ maxConnections: 0, maxConnectionsPerUser: 1 })
    counter.admitUser('ann')
    counter.admitUser('bob')
    assert.throws(
      () => counter.admitUser('ann'),
      (err) => err instanceof HttpError && err.status === 429,
    )
    counter.releaseUser('ann')
    assert.equal(counter.countOf('bob'), 1)
    assert.equal(counter.countOf('ann'), 0)
    counter.admitUser('ann')
  })
})

let redis: RedisServer
before(async () => {
  redis = await startRedis()
})
after(async () => {
  await redis.stop()
})

describe('Limits on upgrades', () => {
  const servers: TestServer[] = []
  const start = async (options: BrokerOptions): Promise<TestServer> => {
    const t = await startBroker({ redis: redis.url, identify, ...options })
    servers.push(t)
    return t
  }
  after(async () => {
    await Promise.all(servers.map((t) => t.close()))
  })

  it('refuses connections past maxConnections with 503 + Retry-After, and accepts again once one closed', async () => {
    const t = await start({ maxConnections: 2 })
    const a = await connect(t.url('/ws/lim?subscribe-broadcast'))
    const b = await connect(t.url('/ws/lim?subscribe-broadcast'))
    const refused = await new Promise<IncomingMessage>((resolve, reject) => {
      const c = new TestClient(t.url('/ws/lim?subscribe-broadcast'))
      c.ws.on('unexpected-response', (_req, res) => resolve(res))
      c.ws.on('open', () => reject(new Error('a third connection was accepted')))
    })
    assert.equal(refused.statusCode, 503)
    assert.equal(refused.headers['retry-after'], '5')
    await a.close()
    await eventually(() => canConnect(t.url('/ws/lim?subscribe-broadcast')))
    await b.close()
  })

  it('counts upgrades in progress: a burst of parallel handshakes cannot overshoot', async () => {
    const t = await start({ maxConnections: 3 })
    const outcomes = await Promise.all(
      Array.from({ length: 10 }, () => attempt(t.url('/ws/burst?subscribe-broadcast'))),
    )
    const opened = outcomes.filter((o) => typeof o !== 'number')
    assert.equal(opened.length, 3)
    assert.deepEqual(
      outcomes.filter((o) => typeof o === 'number'),
      Array.from({ length: 7 }, () => 503),
    )
    await Promise.all(opened.map((c) => c.close()))
  })

  it('refuses a user past maxConnectionsPerUser with 429 while other users and anonymous clients connect', async () => {
    const t = await start({ maxConnectionsPerUser: 2 })
    const ann = [
      await connect(t.url('/ws/tabs?subscribe-user&user=ann')),
      await connect(t.url('/ws/tabs?subscribe-user&user=ann')),
    ]
    assert.equal((await upgradeStatus(t.url('/ws/tabs?subscribe-user&user=ann'))).status, 429)
    const others = [
      await connect(t.url('/ws/tabs?subscribe-user&user=bob')),
      await connect(t.url('/ws/tabs?subscribe-broadcast')),
      await connect(t.url('/ws/tabs?subscribe-broadcast')),
      await connect(t.url('/ws/tabs?subscribe-broadcast')),
    ]
    await ann[0]!.close()
    await eventually(() => canConnect(t.url('/ws/tabs?subscribe-user&user=ann')))
    await Promise.all([ann[1]!, ...others].map((c) => c.close()))
  })

  it('refuses more than maxFlags query parameters with 400', async () => {
    const t = await start({ maxFlags: 4 })
    const many = Array.from({ length: 5 }, (_, i) => `x${i}`).join('&')
    assert.deepEqual(await upgradeStatus(t.url(`/ws/f?${many}`)), {
      status: 400,
      body: 'more than 4 query parameters\n',
    })
    const c = await connect(t.url('/ws/f?subscribe-broadcast&a&b&c'))
    await c.close()
  })

  it('refuses with 503 when the upgrade outlives handshakeTimeout, and releases what it subscribed', async () => {
    let unblock = (): void => {}
    const slow = new Promise<void>((resolve) => (unblock = resolve))
    const t = await start({
      handshakeTimeout: 200,
      allowedChannels: async () => {
        await slow
      },
    })
    const raw = await redis.client()
    try {
      const refused = await upgradeStatus(t.url('/ws/slowhook?subscribe-broadcast'))
      assert.deepEqual(refused, { status: 503, body: 'handshake timed out\n' })
      unblock()
      // The late work runs to its end and lets go of everything.
      await eventually(() => t.broker.channelCount === 0)
      const numsub = await raw.pubSubNumSub('broadcast:slowhook')
      assert.equal(numsub['broadcast:slowhook'], 0)
      assert.equal(t.broker.connections.size, 0)
    } finally {
      await raw.close()
    }
  })

  it('refuses with 503 and unsubscribes when Redis answers the subscribe too late', async () => {
    const t = await start({ handshakeTimeout: 300 })
    const raw = await redis.client()
    const blocker = await redis.client()
    try {
      // CLIENT PAUSE holds every client's commands, the broker's SUBSCRIBE among them.
      await blocker.sendCommand(['CLIENT', 'PAUSE', '800', 'ALL'])
      const refused = await upgradeStatus(t.url('/ws/paused?subscribe-broadcast'))
      assert.equal(refused.status, 503)
      await eventually(() => t.broker.channelCount === 0)
      await eventually(
        async () => (await raw.pubSubNumSub('broadcast:paused'))['broadcast:paused'] === 0,
      )
      const c = await connect(t.url('/ws/paused?subscribe-broadcast'))
      await c.close()
    } finally {
      await blocker.close()
      await raw.close()
    }
  })
})

describe('Client publish rate', () => {
  const servers: TestServer[] = []
  after(async () => {
    await Promise.all(servers.map((t) => t.close()))
  })

  it('json facility: past the burst, answers rate_limited, publishes nothing, keeps the connection', async () => {
    const t = await startBroker({ redis: redis.url, identify, publishRate: 1, publishBurst: 3 })
    servers.push(t)
    t.broker.facility('rated', { format: 'json', publish: ['broadcast'] })
    const listener = await connect(t.url('/ws/rated?subscribe-broadcast'))
    const speaker = await connect(t.url('/ws/rated?publish-broadcast'))
    for (let i = 0; i < 5; i++) await sendJson(speaker, { type: 'data', data: i })
    assert.deepEqual(await frame(speaker, 1), {
      type: 'error',
      code: 'rate_limited',
      detail: 'too many messages',
    })
    await frame(speaker, 2)
    await listener.waitFor(3)
    await sendJson(speaker, { type: 'ping' })
    assert.deepEqual(await frame(speaker, 3), { type: 'pong' }, 'still open; pings are not limited')
    assert.deepEqual(
      listener.texts.map((x) => JSON.parse(x) as unknown),
      [0, 1, 2].map((data) => ({ type: 'data', data })),
    )
    await listener.close()
    await speaker.close()
  })

  it('raw facility: past the burst, closes 1008; other connections keep publishing', async () => {
    const t = await startBroker({ redis: redis.url, identify, publishRate: 1, publishBurst: 2 })
    servers.push(t)
    t.broker.facility('calm', { publishRate: 0 })
    const listener = await connect(t.url('/ws/rawrate?subscribe-user&user=u'))
    const speaker = await connect(t.url('/ws/rawrate?publish-user&user=u'))
    const closed = speaker.closedByServer()
    for (let i = 0; i < 4; i++) speaker.ws.send(`m${i}`)
    assert.deepEqual(await closed, { code: 1008, reason: 'rate limit exceeded' })
    await listener.waitFor(2)
    assert.deepEqual(listener.texts, ['m0', 'm1'])
    // A facility can lift the broker's limit.
    const calm = await connect(t.url('/ws/calm?publish-user&subscribe-user&echo&user=v'))
    for (let i = 0; i < 10; i++) calm.ws.send(`c${i}`)
    await calm.waitFor(10)
    await calm.close()
    await listener.close()
  })

  it('per facility: a facility rate applies there while the broker default stays unlimited', async () => {
    const broker = createBroker({ identify })
    broker.facility('slow', { format: 'json', publishRate: 2 })
    assert.throws(() => broker.facility('bad', { publishRate: -1 }), { code: 'WSF_INVALID_OPTION' })
    assert.throws(() => broker.facility('bad2', { slowConsumer: 'block' as never }), {
      code: 'WSF_INVALID_OPTION',
    })
    await broker.close()
    const t = await startBroker({ identify })
    servers.push(t)
    t.broker.facility('slow', { format: 'json', publishRate: 2 })
    const c = await connect(t.url('/ws/slow?publish-user&user=w'))
    for (let i = 0; i < 3; i++) await sendJson(c, { type: 'data', data: i })
    assert.deepEqual(await frame(c, 1), {
      type: 'error',
      code: 'rate_limited',
      detail: 'too many messages',
    })
    const free = await connect(t.url('/ws/free?publish-user&subscribe-user&echo&user=w'))
    for (let i = 0; i < 20; i++) free.ws.send(`f${i}`)
    await free.waitFor(20)
    await free.close()
    await c.close()
  })
})
