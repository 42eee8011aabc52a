import assert from 'node:assert/strict'
import type { Duplex } from 'node:stream'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import {
  type EngineStatus,
  type PresenceEvent,
  type RedisEngine,
  RedisPublisher,
} from '../src/index.js'
import { identify } from './helpers/identity.js'
import { type RedisServer, startRedis, type TestRedisClient } from './helpers/redis.js'
import { connect, eventually, startBroker, type TestServer, upgradeStatus } from './helpers/ws.js'

/** Every pub/sub channel Redis has subscribers for, with their subscriber counts. */
async function subscriptions(client: TestRedisClient): Promise<Record<string, number>> {
  const channels = (await client.pubSubChannels()).sort()
  if (channels.length === 0) return {}
  return { ...(await client.pubSubNumSub(channels)) }
}

/** `calls` of one command in INFO commandstats (0 when it never ran since Redis started). */
async function calls(client: TestRedisClient, command: string): Promise<number> {
  const info = await client.info('commandstats')
  return Number(new RegExp(`^cmdstat_${command}:calls=(\\d+)`, 'm').exec(info)?.[1] ?? 0)
}

/** Listener counts of an emitter, by event name. */
function listeners(emitter: NodeJS.EventEmitter): Record<string, number> {
  return Object.fromEntries(
    emitter.eventNames().map((name) => [String(name), emitter.listenerCount(name)]),
  )
}

const ready = (t: TestServer) => () => t.broker.engine.status === 'ready'
const down = (t: TestServer) => () => t.broker.engine.status === 'reconnecting'

describe('Redis faults: redis-server stops and comes back on the same port', () => {
  const cleanup: (() => Promise<void>)[] = []
  after(async () => {
    for (const fn of cleanup.reverse()) await fn()
  })

  async function setup(
    redisArgs: string[] = [],
  ): Promise<{ redis: RedisServer; a: TestServer; b: TestServer }> {
    const redis = await startRedis(redisArgs)
    cleanup.push(() => redis.stop())
    // `a` replays nothing, so only its own check of the engine's state refuses upgrades while
    // Redis is away (with replay, the read of stored messages would fail too).
    const a = await startBroker({ redis: redis.url, replay: false, identify, presence: true })
    const b = await startBroker({ redis: redis.url, identify, presence: true })
    cleanup.push(
      () => a.close(),
      () => b.close(),
    )
    return { redis, a, b }
  }

  for (const how of ['kill', 'stop'] as const) {
    it(`keeps its clients, resubscribes each channel once and delivers again (${how === 'kill' ? 'SIGKILL' : 'SIGTERM'})`, async () => {
      const { redis, a, b } = await setup()
      const statuses: EngineStatus[] = []
      a.broker.on('engine', (s) => statuses.push(s))
      const onA1 = await connect(a.url('/ws/one?subscribe-broadcast'))
      const onA2 = await connect(a.url('/ws/two?subscribe-broadcast'))
      const leaves = await connect(a.url('/ws/three?subscribe-broadcast'))
      const onB1 = await connect(b.url('/ws/one?subscribe-broadcast'))
      const onB4 = await connect(b.url('/ws/four?subscribe-broadcast'))
      const inspect = await redis.client()
      const before = await subscriptions(inspect)
      assert.equal(before['broadcast:one'], 2)
      assert.equal(before['broadcast:three'], 1)
      inspect.destroy()

      await redis[how]()
      await eventually(down(a), 10_000)
      await eventually(down(b), 10_000)
      // Publishing fails at once with a coded error, from both entry points.
      const publisher = new RedisPublisher(
        { facility: 'one', broadcast: true },
        { broker: a.broker },
      )
      await assert.rejects(publisher.publishMessage('lost'), { code: 'WSF_REDIS_UNAVAILABLE' })
      await assert.rejects(a.broker.publish(['broadcast:one'], 'lost'), {
        code: 'WSF_REDIS_UNAVAILABLE',
      })
      // New upgrades are refused, on an already subscribed channel too.
      assert.equal((await upgradeStatus(a.url('/ws/one?subscribe-broadcast'))).status, 503)
      assert.equal((await upgradeStatus(b.url('/ws/new?subscribe-broadcast'))).status, 503)
      // The last client of a channel leaves during the outage: its UNSUBSCRIBE cannot be sent.
      // (node-redis rejects what is queued at each failed reconnect attempt, which it reports
      // as an error first: wait for one.)
      let errors = 0
      a.broker.on('error', () => errors++)
      await leaves.close()
      await eventually(() => a.broker.connections.size === 2)
      const seen = errors
      await eventually(() => errors > seen + 1, 10_000)

      await redis.restart()
      await eventually(ready(a), 15_000)
      await eventually(ready(b), 15_000)
      const after = await redis.client()
      cleanup.push(async () => after.destroy())
      const expected = { ...before }
      delete expected['broadcast:three']
      await eventually(
        async () => JSON.stringify(await subscriptions(after)) === JSON.stringify(expected),
      )
      // One SUBSCRIBE per process carried all its channels: none was subscribed twice.
      assert.equal(await calls(after, 'subscribe'), 2)

      for (const c of [onA1, onA2, onB1, onB4]) assert.equal(c.ws.readyState, c.ws.OPEN)
      assert.equal(
        await new RedisPublisher(
          { facility: 'one', broadcast: true },
          { broker: b.broker },
        ).publishMessage('back'),
        2,
      )
      await a.broker.publish(['broadcast:two', 'broadcast:four'], 'both')
      await onA1.waitFor(1)
      await onB1.waitFor(1)
      await onA2.waitFor(1)
      await onB4.waitFor(1)
      assert.deepEqual(
        [onA1.texts, onB1.texts, onA2.texts, onB4.texts],
        [['back'], ['back'], ['both'], ['both']],
      )
      // Upgrades are accepted again.
      const late = await connect(a.url('/ws/one?subscribe-broadcast'))
      await late.close()
      assert.deepEqual(statuses, ['reconnecting', 'ready'])
      await Promise.all([onA1, onA2, onB1, onB4].map((c) => c.close()))
    })
  }

  it(
    'closes while Redis is down, its clients with 1001, without waiting for Redis',
    { timeout: 30_000 },
    async () => {
      const redis = await startRedis()
      cleanup.push(() => redis.stop())
      const t = await startBroker({ redis: redis.url })
      const c = await connect(t.url('/ws/shut?subscribe-broadcast'))
      await redis.kill()
      await eventually(down(t), 10_000)
      const closed = c.closedByServer()
      await t.close()
      assert.equal((await closed).code, 1001)
      assert.equal(t.broker.engine.status, 'closed')
      assert.equal(t.broker.engine.connectionCount, 0)
    },
  )

  it('leaks no listeners or connections over several down/up cycles', async () => {
    const { redis, a } = await setup()
    const sockets: Duplex[] = []
    a.broker.on('connection', (_conn, req) => sockets.push(req.socket))
    const clients = await Promise.all(
      ['x', 'y', 'z'].map((f) => connect(a.url(`/ws/${f}?subscribe-broadcast&user=u${f}`))),
    )
    const engine = a.broker.engine as RedisEngine
    const snapshot = async () => {
      const inspect = await redis.client()
      try {
        const list = await inspect.clientList()
        return {
          engine: listeners(engine),
          broker: listeners(a.broker),
          process: listeners(process),
          server: listeners(a.server),
          sockets: sockets.map(listeners),
          // Connections to Redis other than this inspecting one: the two of each broker.
          redisConnections: list.length - 1,
          channels: await subscriptions(inspect),
        }
      } finally {
        inspect.destroy()
      }
    }
    const first = await snapshot()
    assert.equal(first.redisConnections, 4)
    for (let cycle = 0; cycle < 3; cycle++) {
      await (cycle % 2 === 0 ? redis.kill() : redis.stop())
      await eventually(down(a), 10_000)
      await redis.restart()
      await eventually(ready(a), 15_000)
      await eventually(async () => JSON.stringify(await snapshot()) === JSON.stringify(first))
    }
    for (const c of clients) assert.equal(c.ws.readyState, c.ws.OPEN)
    await a.broker.publish(['broadcast:x', 'broadcast:y', 'broadcast:z'], 'still here')
    await Promise.all(clients.map((c) => c.waitFor(1)))
    await Promise.all(clients.map((c) => c.close()))
  })

  it('writes presence again after Redis lost it in a restart', async () => {
    // Redis comes back from a snapshot taken before the clients joined: both processes' entries
    // are in it, alive, and none of their presence. Only the rewrite on reconnect can put presence
    // back; the periodic refresh finds each process's entry where it was and leaves presence alone.
    const dir = await mkdtemp(join(tmpdir(), 'wsfacility-redis-'))
    cleanup.push(() => rm(dir, { recursive: true, force: true }))
    const { redis, a, b } = await setup(['--dir', dir])
    const inspect = await redis.client()
    await inspect.sendCommand(['SAVE']).finally(() => inspect.destroy())
    const clients = await Promise.all([
      connect(a.url('/ws/room?subscribe-broadcast&user=ann')),
      connect(a.url('/ws/room?subscribe-broadcast&user=bob')),
      connect(b.url('/ws/room?subscribe-broadcast&user=bob')),
      connect(b.url('/ws/hall?subscribe-broadcast&user=cid')),
    ])
    const expected = {
      all: [
        { user: 'ann', connections: 1 },
        { user: 'bob', connections: 2 },
        { user: 'cid', connections: 1 },
      ],
      room: [
        { user: 'ann', connections: 1 },
        { user: 'bob', connections: 2 },
      ],
      hall: [{ user: 'cid', connections: 1 }],
    }
    const lists = async (t: TestServer) => ({
      all: await t.broker.presence.list(),
      room: await t.broker.presence.list('room'),
      hall: await t.broker.presence.list('hall'),
    })
    await eventually(async () => JSON.stringify(await lists(b)) === JSON.stringify(expected))
    // Killed, so nothing is saved on the way down: the restart loads the snapshot.
    await redis.kill()
    await eventually(down(a), 10_000)
    await redis.restart()
    await eventually(ready(a), 15_000)
    await eventually(ready(b), 15_000)
    // Right after the restart Redis holds no presence; each process writes its own share back.
    for (const t of [a, b]) {
      let seen: Awaited<ReturnType<typeof lists>> | null = null
      await eventually(
        async () => JSON.stringify((seen = await lists(t))) === JSON.stringify(expected),
      ).catch(() => assert.deepEqual(seen, expected))
    }
    await Promise.all(clients.map((c) => c.close()))
    await eventually(async () => (await a.broker.presence.list()).length === 0)
  })
  it('takes leaves that Redis missed out of presence when it comes back with its data', async () => {
    // Saving on SIGTERM into a directory of its own: the restarted server loads what it had, so
    // this process's old share of presence is still there and must be corrected, not re-added.
    const dir = await mkdtemp(join(tmpdir(), 'wsfacility-redis-'))
    const redis = await startRedis(['--save', '3600 1', '--dir', dir])
    cleanup.push(async () => {
      await redis.stop()
      await rm(dir, { recursive: true, force: true })
    })
    const a = await startBroker({ redis: redis.url, replay: false, identify, presence: true })
    const b = await startBroker({ redis: redis.url, identify, presence: true })
    cleanup.push(
      () => a.close(),
      () => b.close(),
    )
    const ann = await connect(a.url('/ws/room?subscribe-broadcast&user=ann'))
    const bob = await connect(b.url('/ws/room?subscribe-broadcast&user=bob'))
    await eventually(async () => (await b.broker.presence.list('room')).length === 2)
    const events: PresenceEvent[] = []
    a.broker.on('presence', (e) => events.push(e))
    await redis.stop()
    await eventually(down(a), 10_000)
    await ann.close()
    await eventually(() => a.broker.connections.size === 0)
    await redis.restart()
    await eventually(ready(a), 15_000)
    await eventually(ready(b), 15_000)
    const onlyBob = JSON.stringify([{ user: 'bob', connections: 1 }])
    for (const facility of [undefined, 'room']) {
      await eventually(
        async () => JSON.stringify(await b.broker.presence.list(facility)) === onlyBob,
      )
    }
    // ann's leave is reported once, by the process that held her connection.
    await eventually(() => events.length === 2)
    assert.deepEqual(events.map((e) => `${e.type} ${e.user} ${e.facility}`).sort(), [
      'leave ann null',
      'leave ann room',
    ])
    await bob.close()
    await eventually(async () => (await b.broker.presence.list()).length === 0)
  })
})
