import assert from 'node:assert/strict'
import { after, afterEach, before, describe, it } from 'node:test'
import { RedisEngine } from '../src/engine/redis.js'
import { EngineError } from '../src/errors.js'
import { type Broker, createBroker, type PresenceEvent, RedisPublisher } from '../src/index.js'
import { identify } from './helpers/identity.js'
import { BIN, LISTENING, spawnNode } from './helpers/child.js'
import { type RedisCluster, startCluster } from './helpers/cluster.js'
import { freePort } from './helpers/redis.js'
import {
  connect,
  eventually,
  sleep,
  startBroker,
  type TestClient,
  type TestServer,
} from './helpers/ws.js'

let cluster: RedisCluster
before(async () => {
  cluster = await startCluster()
})
after(async () => {
  await cluster.stop()
})

/** One name per master, made from `make(i)`, each owned by a different master (CLUSTER KEYSLOT). */
async function onEachMaster(make: (i: number) => string): Promise<Map<number, string>> {
  const byMaster = new Map<number, string>()
  for (let i = 0; byMaster.size < cluster.ports.length; i++) {
    const name = make(i)
    const port = await cluster.ownerOf(name)
    if (!byMaster.has(port)) byMaster.set(port, name)
  }
  return byMaster
}

/** Connections open on every node of the cluster, counted by the nodes (CLIENT LIST). */
async function clientsOnCluster(): Promise<number> {
  let n = 0
  for (const port of cluster.ports) {
    const list = String(await cluster.command(port, ['CLIENT', 'LIST']))
    // Minus the connection `command` opened to ask.
    n += list.trim().split('\n').length - 1
  }
  return n
}

describe('RedisEngine on a Redis Cluster', () => {
  const open: RedisEngine[] = []
  afterEach(async () => {
    await Promise.all(open.splice(0).map((engine) => engine.close()))
  })

  async function engine(
    clusterPlainPublish = false,
  ): Promise<{ engine: RedisEngine; got: Map<string, string[]> }> {
    const e = new RedisEngine({ cluster: cluster.urls, prefix: '', clusterPlainPublish })
    e.onError(() => {})
    open.push(e)
    await e.start()
    const got = new Map<string, string[]>()
    e.onMessage((channel, payload) => {
      got.set(channel, [...(got.get(channel) ?? []), payload.toString()])
      return 1
    })
    return { engine: e, got }
  }

  it('rejects start with code WSF_REDIS_UNAVAILABLE when no root node answers', async () => {
    const e = new RedisEngine({ cluster: [`redis://127.0.0.1:${await freePort()}`], prefix: '' })
    e.onError(() => {})
    open.push(e)
    await assert.rejects(e.start(), (err: unknown) => {
      assert.ok(err instanceof EngineError)
      assert.equal(err.code, 'WSF_REDIS_UNAVAILABLE')
      return true
    })
    assert.equal(e.connectionCount, 0)
  })

  it('subscribes each channel on the master owning its slot only (PUBSUB SHARDNUMSUB)', async () => {
    const { engine: e } = await engine()
    const channels = await onEachMaster((i) => `broadcast:shard-${i}`)
    for (const ch of channels.values()) await e.subscribe(ch)
    for (const [owner, ch] of channels) {
      for (const port of cluster.ports) {
        const reply = (await cluster.command(port, ['PUBSUB', 'SHARDNUMSUB', ch])) as unknown[]
        assert.equal(Number(reply[1]), port === owner ? 1 : 0, `${ch} on ${port}`)
      }
    }
  })

  it('barrier waits for messages on every shard, published by another process', async () => {
    const { engine: receiver, got } = await engine()
    const { engine: sender } = await engine()
    const channels = [...(await onEachMaster((i) => `broadcast:barrier-${i}`)).values()]
    for (const ch of channels) await receiver.subscribe(ch)
    const body = 'x'.repeat(4096)
    const sent = Array.from({ length: 150 }, (_, i) => `${i} ${body}`)
    await Promise.all(
      sent.flatMap((text) => channels.map((ch) => sender.publish(ch, Buffer.from(text), 0))),
    )
    await receiver.barrier()
    for (const ch of channels) assert.deepEqual(got.get(ch), sent, ch)
    // Why that holds: a reply comes after every push sent before it on the same connection, and
    // the barrier's PING went to the sharded subscriber connection of every master.
    for (const port of cluster.ports) {
      const list = String(await cluster.command(port, ['CLIENT', 'LIST']))
      const subscribers = list.split('\n').filter((line) => / ssub=[1-9]/.test(line))
      assert.equal(subscribers.length, 1, `one sharded subscriber on ${port}`)
      assert.match(subscribers[0]!, / cmd=ping /, `last command on ${port}`)
    }
  })

  it('sums the receivers every process recorded, on channels of every shard', async () => {
    const one = await engine()
    const two = await engine()
    for (const ch of (await onEachMaster((i) => `user:u${i}:chat`)).values()) {
      await Promise.all([one.engine.subscribe(ch), two.engine.subscribe(ch)])
      await one.engine.setLocalCount(ch, 2)
      await two.engine.setLocalCount(ch, 3)
      assert.equal(await one.engine.publish(ch, Buffer.from('x'), 0), 5)
      assert.equal(await two.engine.publish(ch, Buffer.from('y'), 0), 5)
    }
    assert.deepEqual(
      (await one.engine.nodes()).sort(),
      [one, two].map((h) => h.engine.nodeId).sort(),
    )
  })

  it('reports as connectionCount the connections the cluster nodes see', async () => {
    const before = await clientsOnCluster()
    const { engine: e } = await engine()
    for (const ch of (await onEachMaster((i) => `broadcast:count-${i}`)).values()) {
      await e.subscribe(ch)
    }
    // A command connection and a sharded subscriber connection per master.
    assert.equal(e.connectionCount, 2 * cluster.ports.length)
    assert.equal((await clientsOnCluster()) - before, e.connectionCount)
    await e.close()
    assert.equal(e.connectionCount, 0)
    await eventually(async () => (await clientsOnCluster()) === before)
  })

  it('receives what another client SPUBLISHes, not what it PUBLISHes, and reads keys it SET', async () => {
    const { engine: e, got } = await engine()
    const ch = 'ws4redis:broadcast:django'
    const port = await cluster.ownerOf(ch)
    await e.subscribe(ch)
    await cluster.command(port, ['PUBLISH', ch, 'plain publish'])
    await cluster.command(port, ['SPUBLISH', ch, 'sharded publish'])
    await cluster.command(port, ['SET', ch, 'stored by another program'])
    await e.barrier()
    assert.deepEqual(got.get(ch), ['sharded publish'])
    assert.deepEqual(await e.get([ch]), [Buffer.from('stored by another program')])
  })

  it('with clusterPlainPublish, receives a plain PUBLISH sent to any master, and an SPUBLISH once', async () => {
    const { engine: e, got } = await engine(true)
    const ch = 'ws4redis:broadcast:plain'
    const owner = await cluster.ownerOf(ch)
    await e.subscribe(ch)
    const expected: string[] = []
    // Each master in turn (a Django app connects to whichever node it was given).
    for (const port of cluster.ports) {
      await cluster.command(port, ['PUBLISH', ch, `plain via ${port}`])
      expected.push(`plain via ${port}`)
      await eventually(() => got.get(ch)?.length === expected.length)
    }
    assert.equal(await e.publish(ch, Buffer.from('sharded'), 0), 0)
    expected.push('sharded')
    await eventually(() => got.get(ch)?.length === expected.length)
    // Sent after the SPUBLISH on the same master: a copy of it on the plain subscription would
    // come first.
    await cluster.command(owner, ['PUBLISH', ch, 'last'])
    expected.push('last')
    await eventually(() => got.get(ch)?.length === expected.length)
    await e.barrier()
    assert.deepEqual(got.get(ch), expected)
  })

  it('subscribes a channel with plain pub/sub on one node only with clusterPlainPublish, on none without (PUBSUB NUMSUB)', async () => {
    const numsub = async (ch: string): Promise<number[]> =>
      Promise.all(
        cluster.ports.map(async (port) =>
          Number(((await cluster.command(port, ['PUBSUB', 'NUMSUB', ch])) as unknown[])[1]),
        ),
      )
    const sum = (counts: number[]): number => counts.reduce((a, b) => a + b, 0)
    const { engine: plain } = await engine(true)
    const { engine: sharded } = await engine(false)
    const a = 'broadcast:numsub-a'
    const b = 'broadcast:numsub-b'
    await plain.subscribe(a)
    await sharded.subscribe(b)
    assert.equal(sum(await numsub(a)), 1)
    assert.deepEqual(await numsub(b), [0, 0, 0])
    const shard = (await cluster.command(await cluster.ownerOf(a), [
      'PUBSUB',
      'SHARDNUMSUB',
      a,
    ])) as unknown[]
    assert.equal(Number(shard[1]), 1, 'still sharded too')
    // One more connection: the plain subscriber's.
    assert.equal(plain.connectionCount, sharded.connectionCount + 1)
    await plain.unsubscribe(a)
    assert.deepEqual(await numsub(a), [0, 0, 0])
  })

  it('keeps presence across processes in one slot (no CROSSSLOT)', async () => {
    const { engine: a } = await engine()
    const { engine: b } = await engine()
    const both = (on: boolean) => ({ overall: on, facility: on })
    assert.deepEqual(await a.presenceJoin('chat', 'ann'), both(true))
    assert.deepEqual(await b.presenceJoin('chat', 'ann'), both(false))
    assert.deepEqual(await b.presenceJoin('news', 'bob'), both(true))
    assert.deepEqual(await a.presenceList('chat'), new Map([['ann', 2]]))
    assert.equal(await b.presenceCount('news', 'bob'), 1)
    assert.equal(await a.presenceCount('', 'ann'), 2)
    assert.deepEqual(await a.presenceLeave('chat', 'ann'), both(false))
    assert.deepEqual(await b.presenceLeave('chat', 'ann'), both(true))
    assert.deepEqual(await a.presenceList('chat'), new Map())
  })

  it(
    'recovers when the master holding its bookkeeping and a channel restarts empty',
    { timeout: 60_000 },
    async () => {
      const one = await engine()
      const two = await engine()
      const port = await cluster.ownerOf('{wsfacility}:nodes')
      let ch = ''
      for (let i = 0; !ch; i++) {
        if ((await cluster.ownerOf(`broadcast:restart-${i}`)) === port)
          ch = `broadcast:restart-${i}`
      }
      await one.engine.subscribe(ch)
      await one.engine.setLocalCount(ch, 4)
      assert.equal(await two.engine.publish(ch, Buffer.from('before'), 0), 4)
      await cluster.restart(port)
      // Once reconnected, the subscription is back and the entry with the count rewritten.
      await eventually(async () => {
        try {
          return (await two.engine.publish(ch, Buffer.from('after'), 0)) === 4
        } catch {
          return false
        }
      }, 30_000)
      await one.engine.barrier()
      assert.ok(one.got.get(ch)?.includes('after'))
      // The 'ready' rewrite can fail while the node still answers CLUSTERDOWN; the periodic
      // refresh writes the entry again.
      const ids = [one, two].map((h) => h.engine.nodeId).sort()
      await eventually(async () => (await two.engine.nodes()).sort().join() === ids.join(), 10_000)
    },
  )
})

describe('Brokers on a Redis Cluster', () => {
  const servers: TestServer[] = []
  const events: PresenceEvent[] = []
  let publisherBroker: Broker
  before(async () => {
    const options = { redisCluster: cluster.urls, identify, presence: true, expire: 60 }
    servers.push(await startBroker(options), await startBroker(options))
    for (const s of servers) s.broker.on('presence', (e) => events.push(e))
    // A process without a server that only publishes, like a worker or an Express app.
    publisherBroker = createBroker({ redisCluster: cluster.urls, expire: 60 })
    publisherBroker.on('error', () => {})
    await publisherBroker.ready()
  })
  after(async () => {
    await Promise.all([...servers.map((s) => s.close()), publisherBroker.close()])
  })

  it('delivers a RedisPublisher message to clients of both brokers, on channels of every shard', async () => {
    const users = await onEachMaster((i) => `user:member-${i}:room`)
    const clients = new Map<string, TestClient[]>()
    for (const channel of users.values()) {
      const user = channel.split(':')[1]!
      const tabs = await Promise.all(
        servers.map((s) => connect(s.url(`/ws/room?subscribe-user&user=${user}`))),
      )
      clients.set(user, tabs)
    }
    for (const [user, tabs] of clients) {
      const pub = new RedisPublisher(
        { facility: 'room', users: [user] },
        { broker: publisherBroker },
      )
      assert.equal(await pub.publishMessage(`for ${user}`), tabs.length)
    }
    for (const [user, tabs] of clients) {
      for (const tab of tabs) {
        await tab.waitFor(1)
        assert.deepEqual(tab.texts, [`for ${user}`])
      }
    }
    await Promise.all([...clients.values()].flat().map((tab) => tab.close()))
  })

  it('replays persisted messages of channels on different shards to a new client', async () => {
    const user = 'replay-user'
    const userOwner = await cluster.ownerOf(`user:${user}:news`)
    assert.notEqual(await cluster.ownerOf(`broadcast:news`), userOwner, 'two shards')
    await new RedisPublisher(
      { facility: 'news', broadcast: true },
      { broker: publisherBroker },
    ).publishMessage('to everyone')
    await new RedisPublisher(
      { facility: 'news', users: [user] },
      { broker: publisherBroker },
    ).publishMessage('to you')
    const c = await connect(
      servers[1]!.url(`/ws/news?subscribe-broadcast&subscribe-user&user=${user}`),
    )
    await c.waitFor(2)
    assert.deepEqual([...c.texts].sort(), ['to everyone', 'to you'])
    await c.close()
  })

  it('shares presence and addresses a connection held by the other broker', async () => {
    const [a, b] = servers as [TestServer, TestServer]
    const tab = await connect(b.url('/ws/chat?user=zoe'))
    await eventually(async () => (await a.broker.presence.count('zoe')) === 1)
    const id = [...b.broker.connections.values()].find((c) => c.facility === 'chat')!.id
    assert.equal(await a.broker.sendTo(id, 'direct'), true)
    await tab.waitFor(1)
    assert.deepEqual(tab.texts, ['direct'])
    await tab.close()
    await eventually(async () => !(await a.broker.presence.isOnline('zoe')))
  })

  it('does not deliver a plain PUBLISH without clusterPlainPublish', async () => {
    const c = await connect(servers[0]!.url('/ws/noplain?subscribe-broadcast'))
    const owner = await cluster.ownerOf('broadcast:noplain')
    await cluster.command(owner, ['PUBLISH', 'broadcast:noplain', 'plain'])
    await new RedisPublisher(
      { facility: 'noplain', broadcast: true },
      { broker: publisherBroker },
    ).publishMessage('sharded')
    await c.waitFor(1)
    await servers[0]!.broker.engine.barrier()
    assert.deepEqual(c.texts, ['sharded'])
    await c.close()
  })

  it('delivers a plain PUBLISH from any master with clusterPlainPublish, and a RedisPublisher message once', async () => {
    const t = await startBroker({ redisCluster: cluster.urls, clusterPlainPublish: true })
    try {
      const c = await connect(t.url('/ws/django?subscribe-broadcast'))
      const ch = 'broadcast:django'
      for (const port of cluster.ports) {
        await cluster.command(port, ['PUBLISH', ch, `from ${port}`])
        await c.waitFor(c.received.length + 1)
      }
      const pub = new RedisPublisher({ facility: 'django', broadcast: true }, { broker: t.broker })
      assert.equal(await pub.publishMessage('sharded'), 1)
      await c.waitFor(cluster.ports.length + 1)
      await cluster.command(await cluster.ownerOf(ch), ['PUBLISH', ch, 'last'])
      await c.waitFor(cluster.ports.length + 2)
      await t.broker.engine.barrier()
      assert.deepEqual(c.texts, [...cluster.ports.map((p) => `from ${p}`), 'sharded', 'last'])
      await c.close()
    } finally {
      await t.close()
    }
  })

  it('delivers a plain PUBLISH with --cluster-plain-publish (standalone server)', async () => {
    const child = spawnNode([
      BIN,
      '--port',
      '0',
      '--redis-cluster',
      cluster.urls.join(','),
      '--cluster-plain-publish',
    ])
    try {
      const [, port] = await child.waitForOutput(LISTENING, 20_000)
      const c = await connect(`ws://127.0.0.1:${port}/ws/cli?subscribe-broadcast`)
      await cluster.command(cluster.ports[0]!, ['PUBLISH', 'broadcast:cli', 'from django'])
      await c.waitFor(1)
      assert.deepEqual(c.texts, ['from django'])
      await c.close()
    } finally {
      await child.kill()
    }
  })

  it('takes the users of a SIGKILLed process offline within the TTL, with exactly one leave', async () => {
    const fixture = 'test/fixtures/presence-broker.ts'
    const child = spawnNode(['--import', 'tsx', fixture, cluster.urls.join(',')])
    try {
      const [, port] = await child.waitForOutput(/port (\d+)/, 20_000)
      const tab = await connect(`ws://127.0.0.1:${port}/ws/chat?user=dan`)
      await eventually(() => servers[0]!.broker.presence.isOnline('dan'))
      await child.signal('SIGKILL')
      tab.ws.terminate()
      // Swept by a live process once the dead one's entry expired (default TTL 8 s): generous wait.
      await eventually(async () => !(await servers[0]!.broker.presence.isOnline('dan')), 30_000)
      await sleep(3000)
      const leaves = events.filter((e) => e.user === 'dan' && e.type === 'leave' && !e.facility)
      assert.equal(leaves.length, 1)
    } finally {
      await child.kill()
    }
  })
})
