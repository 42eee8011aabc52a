// Live joins and leaves against the counts: receiver counts, PUBSUB NUMSUB, presence, channels.
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import fc from 'fast-check'
import { type RedisCluster, startCluster } from './helpers/cluster.js'
import { identify } from './helpers/identity.js'
import { type RedisServer, startRedis, type TestRedisClient } from './helpers/redis.js'
import {
  closeAll,
  connect,
  connectionOf,
  eventually,
  fresh,
  startBroker,
  type TestClient,
  type TestServer,
} from './helpers/ws.js'

async function numSub(client: TestRedisClient, channel: string): Promise<number> {
  return Number((await client.pubSubNumSub([channel]))[channel] ?? 0)
}

const GROUPS = ['g0', 'g1']

describe('live subscriptions stay exact (two broker processes, one Redis)', () => {
  let redis: RedisServer
  let brokers: TestServer[]
  let inspect: TestRedisClient
  before(async () => {
    redis = await startRedis()
    brokers = [
      await startBroker({ redis: redis.url, identify, presence: true }),
      await startBroker({ redis: redis.url, identify, presence: true }),
    ]
    inspect = await redis.client()
  })
  after(async () => {
    inspect.destroy()
    for (const t of brokers) await t.close()
    await redis.stop()
  })

  it('races of joins and leaves of one channel, from both processes, end as the last one says', async () => {
    const [a, b] = brokers as [TestServer, TestServer]
    const f = fresh('race')
    const clients = await Promise.all(
      [a, a, b, b].map((t, i) => connect(t.url(`/ws/${f}?user=r${i}`))),
    )
    const channel = `group:hot:${f}`
    // Per connection, from one process: join, leave, join — all in flight at once.
    const work = [0, 1, 2, 3].flatMap((i) => {
      const from = brokers[i % 2]!.broker
      const target = { user: `r${i}` }
      const ops = [from.join(target, { group: 'hot' }), from.leave(target, { group: 'hot' })]
      if (i % 2 === 0) ops.push(from.join(target, { group: 'hot' }))
      return ops
    })
    await Promise.all(work)
    assert.equal(await a.broker.publish([channel], 'x'), 2)
    await eventually(async () => (await numSub(inspect, channel)) === 2)
    await Promise.all([0, 2].map((i) => a.broker.leave({ user: `r${i}` }, { group: 'hot' })))
    assert.equal(await a.broker.publish([channel], 'y'), 0)
    await eventually(async () => (await numSub(inspect, channel)) === 0)
    assert.equal(a.broker.channelCount + b.broker.channelCount, 0)
    await closeAll(...clients)
  })

  it("one process's requests by user and by connection id apply in the order it made them", async () => {
    const [a, b] = brokers as [TestServer, TestServer]
    const f = fresh('order')
    // One connection here (a) and one on the other process (b), as the same user.
    const here = await connect(a.url(`/ws/${f}?user=o1`))
    const there = await connect(b.url(`/ws/${f}?user=o1`))
    const ids = [connectionOf(a.broker, f).id, connectionOf(b.broker, f).id]
    const channel = `group:ord:${f}`
    for (let round = 0; round < 5; round++) {
      // The join by user has to list the processes first; the leaves by id do not.
      const work = [
        a.broker.join({ user: 'o1' }, { group: 'ord' }),
        ...ids.map((id) => a.broker.leave({ connection: id }, { group: 'ord' })),
      ]
      assert.deepEqual(await Promise.all(work), [2, 1, 1])
      assert.equal(await a.broker.publish([channel], 'none'), 0)
      assert.equal(await numSub(inspect, channel), 0)
      const back = [
        ...ids.map((id) => a.broker.leave({ connection: id }, { group: 'ord' })),
        a.broker.join({ user: 'o1' }, { group: 'ord' }),
      ]
      assert.deepEqual(await Promise.all(back), [0, 0, 2])
      assert.equal(await a.broker.publish([channel], 'both'), 2)
      assert.equal(await a.broker.leave({ user: 'o1' }, { group: 'ord' }), 2)
    }
    await here.waitFor(5)
    await there.waitFor(5)
    assert.deepEqual(here.texts, Array(5).fill('both'))
    await closeAll(here, there)
  })

  it('a join made while Redis is down is applied when it comes back', async () => {
    const [a] = brokers as [TestServer]
    const f = fresh('outage')
    const c = await connect(a.url(`/ws/${f}?user=ol`))
    const conn = connectionOf(a.broker, f)
    await redis.stop()
    await eventually(() => a.broker.engine.status === 'reconnecting', 10_000)
    let joined: number | null = null
    const joining = a.broker.join({ connection: conn.id }, { group: 'later' }).then((n) => {
      joined = n
      return n
    })
    // Not live while Redis is away: the join waits.
    await assert.rejects(a.broker.publish([`group:later:${f}`], 'lost'), {
      code: 'WSF_REDIS_UNAVAILABLE',
    })
    assert.equal(joined, null)
    // node-redis rejects what it queued at a failed reconnect attempt (reported as an error
    // first): the join's SUBSCRIBE has failed once Redis came back after that.
    let errors = 0
    a.broker.on('error', () => errors++)
    await eventually(() => errors > 1, 10_000)
    assert.equal(joined, null)
    await redis.restart()
    assert.equal(await joining, 1)
    for (const t of brokers) await eventually(() => t.broker.engine.status === 'ready', 15_000)
    const after = await redis.client()
    assert.equal(await numSub(after, `group:later:${f}`), 1)
    assert.equal(await a.broker.publish([`group:later:${f}`], 'back'), 1)
    await c.waitFor(1)
    assert.deepEqual(c.texts, ['back'])
    after.destroy()
    inspect.destroy()
    inspect = await redis.client()
    await c.close()
  })

  it('random sequences of joins, leaves and closes keep every count exact (fast-check)', async () => {
    type Op =
      | { kind: 'join' | 'leave'; conn: number; group: string; from: number; by: 'id' | 'user' }
      | { kind: 'close'; conn: number }
    const op: fc.Arbitrary<Op> = fc.oneof(
      fc.record({
        kind: fc.constantFrom('join' as const, 'leave' as const),
        conn: fc.nat(4),
        group: fc.constantFrom(...GROUPS),
        from: fc.nat(1),
        by: fc.constantFrom('id' as const, 'user' as const),
      }),
      fc.record({ kind: fc.constant('close' as const), conn: fc.nat(4) }),
    )
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.array(op, { maxLength: 6 }), { maxLength: 6 }),
        async (batches) => {
          const f = fresh('prop')
          // Five connections, three on the first process and two on the second.
          const home = [0, 0, 0, 1, 1]
          const clients: TestClient[] = await Promise.all(
            home.map((p, i) => connect(brokers[p]!.url(`/ws/${f}?user=p${i}`))),
          )
          const ids = home.map((p, i) => {
            const c = [...brokers[p]!.broker.connections.values()].find(
              (x) => x.facility === f && x.identity.user === `p${i}`,
            )
            return c!.id
          })
          // A failed run closes its clients too: the next runs start from no channels.
          try {
            const open = home.map(() => true)
            const member = home.map(() => new Set<string>())
            for (const batch of batches) {
              // One process asks for all of a connection's changes in a batch: they apply in order.
              const origin = new Map<number, number>()
              const work: Promise<unknown>[] = []
              for (const o of batch) {
                if (o.kind === 'close') {
                  clients[o.conn]!.ws.terminate()
                  open[o.conn] = false
                  continue
                }
                const from = origin.get(o.conn) ?? o.from
                origin.set(o.conn, from)
                const target = o.by === 'id' ? { connection: ids[o.conn]! } : { user: `p${o.conn}` }
                const broker = brokers[from]!.broker
                work.push(
                  (o.kind === 'join'
                    ? broker.join(target, { group: o.group })
                    : broker.leave(target, { group: o.group })
                  ).catch(() => 0),
                )
                if (open[o.conn]) {
                  if (o.kind === 'join') member[o.conn]!.add(o.group)
                  else member[o.conn]!.delete(o.group)
                }
              }
              await Promise.all(work)
            }
            const expected = GROUPS.map((g) => member.filter((m, i) => open[i] && m.has(g)).length)
            const processes = GROUPS.map(
              (g) => new Set(home.filter((_, i) => open[i] && member[i]!.has(g))).size,
            )
            const counts = async () => {
              const receivers = await Promise.all(
                GROUPS.map((g) => brokers[0]!.broker.publish([`group:${g}:${f}`], 'probe')),
              )
              const numsub = await Promise.all(
                GROUPS.map((g) => numSub(inspect, `group:${g}:${f}`)),
              )
              const presence = await Promise.all(
                home.map((_, i) => brokers[0]!.broker.presence.count(`p${i}`, f)),
              )
              const channels = home.map((p, i) => {
                const c = brokers[p]!.broker.connections.get(ids[i]!)
                return c ? [...c.channels.subscribe].sort() : null
              })
              return { receivers, numsub, presence, channels }
            }
            const want = {
              receivers: expected,
              numsub: processes,
              presence: open.map((o) => (o ? 1 : 0)),
              channels: home.map((_, i) =>
                open[i] ? [...member[i]!].map((g) => `group:${g}:${f}`).sort() : null,
              ),
            }
            let got = await counts()
            await eventually(async () => {
              got = await counts()
              return JSON.stringify(got) === JSON.stringify(want)
            }).catch(() => assert.deepEqual(got, want))
          } finally {
            await closeAll(...clients)
          }
          await eventually(() => brokers.every((t) => t.broker.channelCount === 0))
        },
      ),
      { numRuns: 12 },
    )
  })
})

describe('live subscriptions on a Redis Cluster (sharded pub/sub)', () => {
  let cluster: RedisCluster
  let a: TestServer
  let b: TestServer
  before(async () => {
    cluster = await startCluster()
    a = await startBroker({ redisCluster: cluster.urls, identify })
    b = await startBroker({ redisCluster: cluster.urls, identify })
  })
  after(async () => {
    await a.close()
    await b.close()
    await cluster.stop()
  })

  it("joins and leaves a user's connections on both processes", async () => {
    const f = fresh('shard')
    const onA = await connect(a.url(`/ws/${f}?user=cl`))
    const onB = await connect(b.url(`/ws/${f}?user=cl`))
    const channel = `group:c:${f}`
    const shard = await cluster.ownerOf(channel)
    const shardNumSub = async () =>
      Number(((await cluster.command(shard, ['PUBSUB', 'SHARDNUMSUB', channel])) as unknown[])[1])
    assert.equal(await a.broker.join({ user: 'cl' }, { group: 'c' }), 2)
    assert.equal(await shardNumSub(), 2)
    assert.equal(await b.broker.publish([channel], 'hi'), 2)
    await onA.waitFor(1)
    await onB.waitFor(1)
    assert.equal(await b.broker.leave({ user: 'cl' }, { group: 'c' }), 2)
    assert.equal(await a.broker.publish([channel], 'bye'), 0)
    await eventually(async () => (await shardNumSub()) === 0)
    await closeAll(onA, onB)
  })
})
