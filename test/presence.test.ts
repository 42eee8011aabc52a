import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { type PresenceEvent, RedisPublisher } from '../src/index.js'
import { Presence } from '../src/cluster/presence.js'
import { MemoryEngine } from '../src/engine/memory.js'
import { RedisEngine } from '../src/engine/redis.js'
import type { PresenceChange } from '../src/engine/types.js'
import { identify } from './helpers/identity.js'
import { spawnNode } from './helpers/child.js'
import { type RedisServer, startRedis } from './helpers/redis.js'
import { connect, eventually, sleep, startBroker, type TestServer } from './helpers/ws.js'

describe('Presence on one Redis, two broker processes', () => {
  let redis: RedisServer
  let a: TestServer
  let b: TestServer
  const events: PresenceEvent[] = []
  before(async () => {
    redis = await startRedis()
    a = await startBroker({ redis: redis.url, identify, presence: true })
    b = await startBroker({ redis: redis.url, identify, presence: true })
    for (const t of [a, b]) t.broker.on('presence', (e) => events.push(e))
  })
  after(async () => {
    await a.close()
    await b.close()
    await redis.stop()
  })
  const overall = (user: string, type: 'join' | 'leave') =>
    events.filter((e) => e.user === user && e.type === type && e.facility === null).length

  it('keeps a user with a tab on each process online until the last tab closes, with one join and one leave', async () => {
    assert.equal(await a.broker.presence.isOnline('ann'), false)
    const tabA = await connect(a.url('/ws/chat?subscribe-user&user=ann'))
    await eventually(() => b.broker.presence.isOnline('ann'))
    const tabB = await connect(b.url('/ws/chat?subscribe-user&user=ann'))
    await eventually(async () => (await a.broker.presence.count('ann')) === 2)
    await tabA.close()
    await eventually(async () => (await a.broker.presence.count('ann')) === 1)
    assert.equal(await b.broker.presence.isOnline('ann'), true)
    await tabB.close()
    await eventually(async () => !(await a.broker.presence.isOnline('ann')))
    await sleep(100)
    assert.equal(overall('ann', 'join'), 1)
    assert.equal(overall('ann', 'leave'), 1)
  })

  it('lists who is online cluster-wide, with connection counts, overall and per facility', async () => {
    const tabs = await Promise.all([
      connect(a.url('/ws/chat?user=bob')),
      connect(b.url('/ws/chat?user=bob')),
      connect(b.url('/ws/news?user=cy')),
      connect(b.url('/ws/news')), // anonymous: not counted
    ])
    await eventually(async () => (await a.broker.presence.list()).length === 2)
    assert.deepEqual(await a.broker.presence.list(), [
      { user: 'bob', connections: 2 },
      { user: 'cy', connections: 1 },
    ])
    assert.deepEqual(await b.broker.presence.list('chat'), [{ user: 'bob', connections: 2 }])
    assert.deepEqual(await b.broker.presence.list('news'), [{ user: 'cy', connections: 1 }])
    assert.equal(await a.broker.presence.isOnline('cy', 'chat'), false)
    // The layout other programs may read (docs/redis-layout.md): one hash per facility, and the
    // overall one, any facility, under the empty facility name.
    const raw = await redis.client()
    try {
      assert.deepEqual({ ...(await raw.hGetAll('{wsfacility}:presence:')) }, { bob: '2', cy: '1' })
      assert.deepEqual({ ...(await raw.hGetAll('{wsfacility}:presence:chat')) }, { bob: '2' })
    } finally {
      await raw.close()
    }
    await Promise.all(tabs.map((t) => t.close()))
    await eventually(async () => (await a.broker.presence.list()).length === 0)
  })

  it('works the same with the other broker in its own OS process: presence, publish, disconnect', async () => {
    const child = spawnNode(['--import', 'tsx', 'test/fixtures/presence-broker.ts', redis.url])
    try {
      const [, port] = await child.waitForOutput(/port (\d+)/, 20_000)
      const remote = await connect(`ws://127.0.0.1:${port}/ws/chat?subscribe-user&user=fay`)
      const local = await connect(a.url('/ws/chat?subscribe-user&user=fay'))
      await eventually(async () => (await a.broker.presence.count('fay')) === 2)
      const n = await new RedisPublisher(
        { facility: 'chat', users: ['fay'] },
        { broker: a.broker },
      ).publishMessage('both tabs')
      assert.equal(n, 2)
      await Promise.all([remote.waitFor(1), local.waitFor(1)])
      const closed = remote.closedByServer()
      await a.broker.disconnectUser('fay', 4000, 'bye')
      assert.equal((await closed).code, 4000)
      await local.closedByServer().catch(() => {})
      await eventually(async () => !(await a.broker.presence.isOnline('fay')))
      await sleep(200)
      // Each transition is reported once, by whichever process made it.
      const inChild = (type: string) =>
        child.stdout.split('\n').filter((l) => l === `presence ${type} fay null`).length
      assert.equal(overall('fay', 'join') + inChild('join'), 1)
      assert.equal(overall('fay', 'leave') + inChild('leave'), 1)
    } finally {
      await child.kill()
    }
  })

  it('takes the users of a SIGKILLed process offline within the TTL, with exactly one leave', async () => {
    const child = spawnNode(['--import', 'tsx', 'test/fixtures/presence-broker.ts', redis.url])
    try {
      const [, port] = await child.waitForOutput(/port (\d+)/, 20_000)
      const at = (user: string) => `ws://127.0.0.1:${port}/ws/chat?user=${user}`
      // dan only on the child; eve on the child and on a; gus came and went on the child.
      const tabs = await Promise.all(['dan', 'eve'].map((u) => connect(at(u))))
      const eve = await connect(a.url('/ws/chat?user=eve'))
      const gus = await connect(at('gus'))
      await eventually(async () => (await a.broker.presence.count('eve')) === 2, 5000)
      await eventually(() => a.broker.presence.isOnline('gus'), 5000)
      await gus.close()
      await child.waitForOutput(/presence leave gus chat/, 5000)
      await child.signal('SIGKILL')
      for (const t of tabs) t.ws.terminate()
      // Default TTL: 10 s after the process stops refreshing (generous wait, no timing assertion).
      await eventually(async () => !(await a.broker.presence.isOnline('dan')), 30_000)
      await sleep(3000)
      assert.equal(overall('dan', 'leave'), 1)
      const danLeaves = events.filter((e) => e.user === 'dan' && e.type === 'leave')
      assert.deepEqual(danLeaves.map((e) => String(e.facility)).sort(), ['chat', 'null'])
      // The sweep took only the child's share: eve is still online through a, and gus, whose
      // leave the child reported itself, gets no second one.
      assert.deepEqual(await a.broker.presence.list('chat'), [{ user: 'eve', connections: 1 }])
      assert.equal(overall('eve', 'leave'), 0)
      assert.equal(overall('gus', 'leave'), 0)
      await eve.close()
      await eventually(async () => overall('eve', 'leave') === 1)
    } finally {
      await child.kill()
    }
  })

  it("reports every leave of a sweep when a presence listener throws, each throw as the broker's error", async () => {
    const engine = new RedisEngine({ redis: redis.url, prefix: '' })
    engine.onError(() => {})
    await engine.start()
    const reported: string[] = []
    const errors: unknown[] = []
    new Presence(
      engine,
      (e) => {
        reported.push(`${e.type} ${String(e.facility)} ${e.user}`)
        throw new Error('listener failed')
      },
      (err) => errors.push(err),
    )
    await engine.presenceJoin('chat', 'sw-ann')
    await engine.presenceJoin('chat', 'sw-bob')
    // Left joined: the close sweeps them up, two leaves each.
    await engine.close()
    assert.deepEqual(reported.sort(), [
      'leave chat sw-ann',
      'leave chat sw-bob',
      'leave null sw-ann',
      'leave null sw-bob',
    ])
    assert.equal(errors.length, 4)
    assert.equal(await a.broker.presence.isOnline('sw-bob'), false)
  })
})

describe('Presence on the memory engine', () => {
  it('tracks joins and leaves in one process, each transition once: more tabs add no overall join', async () => {
    const t = await startBroker({ identify, presence: true })
    const events: PresenceEvent[] = []
    t.broker.on('presence', (e) => events.push(e))
    try {
      const tabs = [await connect(t.url('/ws/room?user=eve'))]
      await eventually(() => events.length === 2)
      tabs.push(await connect(t.url('/ws/room?user=eve')))
      tabs.push(await connect(t.url('/ws/hall?user=eve')))
      await eventually(async () => (await t.broker.presence.count('eve')) === 3)
      for (const tab of tabs) await tab.close()
      await eventually(async () => !(await t.broker.presence.isOnline('eve')))
      await sleep(50)
      assert.deepEqual(
        events.map((e) => [e.type, e.facility]),
        [
          ['join', null],
          ['join', 'room'],
          ['join', 'hall'],
          ['leave', 'room'],
          ['leave', null],
          ['leave', 'hall'],
        ],
      )
    } finally {
      await t.close()
    }
  })

  it('counts no anonymous connection: no events, nobody listed', async () => {
    const t = await startBroker({ identify, presence: true })
    const events: PresenceEvent[] = []
    t.broker.on('presence', (e) => events.push(e))
    try {
      const anonymous = await connect(t.url('/ws/room'))
      const known = await connect(t.url('/ws/room?user=ann'))
      await eventually(() => events.length === 2)
      assert.deepEqual(await t.broker.presence.list(), [{ user: 'ann', connections: 1 }])
      assert.deepEqual(await t.broker.presence.list('room'), [{ user: 'ann', connections: 1 }])
      await anonymous.close()
      await known.close()
      await eventually(() => events.length === 4)
      assert.ok(
        events.every((e) => e.user === 'ann'),
        JSON.stringify(events),
      )
    } finally {
      await t.close()
    }
  })

  it('lists the online users sorted by name, whatever order they came in', async () => {
    const t = await startBroker({ identify, presence: true })
    try {
      const users = ['mia', 'zed', 'amy', 'bob', 'kim']
      const tabs = []
      for (const u of users) tabs.push(await connect(t.url(`/ws/room?user=${u}`)))
      tabs.push(await connect(t.url('/ws/room?user=zed')))
      await eventually(async () => (await t.broker.presence.count('zed')) === 2)
      const want = [
        { user: 'amy', connections: 1 },
        { user: 'bob', connections: 1 },
        { user: 'kim', connections: 1 },
        { user: 'mia', connections: 1 },
        { user: 'zed', connections: 2 },
      ]
      assert.deepEqual(await t.broker.presence.list(), want)
      assert.deepEqual(await t.broker.presence.list('room'), want)
      for (const tab of tabs) await tab.close()
    } finally {
      await t.close()
    }
  })

  it("reports a throwing presence listener or engine as the broker's error, and the connection stays open", async () => {
    // An engine whose presence write throws at once (a custom Engine may), for one user.
    class Throwing extends MemoryEngine {
      override presenceJoin(facility: string, user: string): Promise<PresenceChange> {
        if (user === 'bad') throw new Error('presence write refused')
        return super.presenceJoin(facility, user)
      }
    }
    const t = await startBroker({ identify, presence: true, engine: new Throwing() })
    const errors: unknown[] = []
    t.broker.on('error', (err) => errors.push(err))
    t.broker.on('presence', (e) => {
      if (e.user === 'loud') throw new Error('listener failed')
    })
    try {
      const bad = await connect(t.url('/ws/room?subscribe-broadcast&user=bad'))
      await eventually(() => errors.length === 1)
      assert.match(String(errors[0]), /presence write refused/)
      const loud = await connect(t.url('/ws/room?subscribe-broadcast&user=loud'))
      // Both of loud's joins (overall, then the facility's) reach the listener, which throws on each.
      await eventually(() => errors.length === 3)
      assert.match(String(errors[1]), /listener failed/)
      assert.match(String(errors[2]), /listener failed/)
      assert.equal(await t.broker.presence.count('loud', 'room'), 1)
      assert.equal(await t.broker.publish(['broadcast:room'], 'still here'), 2)
      await bad.waitFor(1)
      await loud.waitFor(1)
      await bad.close()
      await loud.close()
    } finally {
      await t.close()
    }
  })

  it('tracks nothing without the presence option', async () => {
    const t = await startBroker({ identify })
    try {
      const c = await connect(t.url('/ws/room?user=eve'))
      await sleep(100)
      assert.equal(await t.broker.presence.isOnline('eve'), false)
      await c.close()
    } finally {
      await t.close()
    }
  })
})
