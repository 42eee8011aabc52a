import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { type PresenceEvent, RedisPublisher } from '../src/index.js'
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
})

describe('Presence on the memory engine', () => {
  it('tracks joins and leaves in one process', async () => {
    const t = await startBroker({ identify, presence: true })
    const events: PresenceEvent[] = []
    t.broker.on('presence', (e) => events.push(e))
    try {
      const c = await connect(t.url('/ws/room?user=eve'))
      await eventually(() => t.broker.presence.isOnline('eve', 'room'))
      await c.close()
      await eventually(async () => !(await t.broker.presence.isOnline('eve')))
      assert.deepEqual(
        events.map((e) => [e.type, e.facility]),
        [
          ['join', null],
          ['join', 'room'],
          ['leave', null],
          ['leave', 'room'],
        ],
      )
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
