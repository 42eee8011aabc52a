import assert from 'node:assert/strict'
import { after, afterEach, before, describe, it } from 'node:test'
import { createPublisher, type Publisher, type PublisherOptions, SELF } from '../src/index.js'
import { exitsByItself, spawnNode } from './helpers/child.js'
import { type RedisCluster, startCluster } from './helpers/cluster.js'
import { identify } from './helpers/identity.js'
import { freePort, type RedisServer, startRedis } from './helpers/redis.js'
import { connect, startBroker } from './helpers/ws.js'

let redis: RedisServer
before(async () => {
  redis = await startRedis()
})
after(() => redis.stop())

const publishers: Publisher[] = []
function publisher(options: PublisherOptions): Publisher {
  const p = createPublisher(options)
  publishers.push(p)
  return p
}
afterEach(async () => {
  await Promise.all(publishers.splice(0).map((p) => p.close()))
})

describe('createPublisher', () => {
  it("publishes on the brokers' channels (prefix included) and counts their connections", async () => {
    const t = await startBroker({ redis: redis.url, prefix: 'ws4redis', identify })
    try {
      const ann = await connect(t.url('/ws/jobs?subscribe-user&subscribe-broadcast&user=ann'))
      const other = await connect(t.url('/ws/jobs?subscribe-user&user=bob'))
      const p = publisher({ redis: redis.url, prefix: 'ws4redis' })
      assert.deepEqual(p.channels({ facility: 'jobs', users: ['ann'], broadcast: true }), [
        'ws4redis:broadcast:jobs',
        'ws4redis:user:ann:jobs',
      ])
      assert.equal(await p.publish({ facility: 'jobs', users: ['ann'] }, 'done'), 1)
      assert.equal(await p.publish({ facility: 'jobs', broadcast: true }, { n: 2 }), 1)
      assert.equal(await p.publish({ facility: 'jobs', users: ['ann'] }, Buffer.from([0xff])), 1)
      await ann.waitFor(3)
      assert.deepEqual(ann.texts, ['done', '{"n":2}', 'ff'])
      assert.deepEqual(ann.received[2]!.binary, true)
      assert.deepEqual(other.texts, [])
      await Promise.all([ann.close(), other.close()])
    } finally {
      await t.close()
    }
  })

  it('stores messages for replay with expire, and appends them to history', async () => {
    const inspector = await redis.client()
    try {
      const p = publisher({ redis: redis.url, expire: 30 })
      await p.publish({ facility: 'kept', broadcast: true }, 'last one')
      assert.equal(await inspector.get('broadcast:kept'), 'last one')
      assert.ok((await inspector.ttl('broadcast:kept')) > 0)
      await p.publish({ facility: 'plain', broadcast: true }, 'x', { expire: 0 })
      assert.equal(await inspector.exists('broadcast:plain'), 0)
      await p.publish({ facility: 'hist', broadcast: true }, 'h1', {
        history: { size: 5, ttl: 60 },
      })
      const streams = await inspector.keys('*hist*')
      assert.ok(streams.length > 0, 'history keys were written')
      // `positions` tells where each history channel put the message.
      const positions = new Map<string, { epoch: string; offset: number }>()
      const history = { size: 5, ttl: 60 }
      await p.publish({ facility: 'hist', broadcast: true, users: ['ann'] }, 'h2', {
        history,
        positions,
      })
      assert.deepEqual([...positions.keys()], ['broadcast:hist', 'user:ann:hist'])
      assert.equal(positions.get('broadcast:hist')!.offset, 2)
      assert.equal(positions.get('user:ann:hist')!.offset, 1)
      const meta = await inspector.keys('*epoch*broadcast:hist')
      assert.equal(await inspector.hGet(meta[0]!, 'e'), positions.get('broadcast:hist')!.epoch)
      const t = await startBroker({ redis: redis.url, expire: 30 })
      try {
        const late = await connect(t.url('/ws/kept?subscribe-broadcast'))
        await late.waitFor(1)
        assert.deepEqual(late.texts, ['last one'])
        await late.close()
      } finally {
        await t.close()
      }
    } finally {
      await inspector.close()
    }
  })

  it('holds one command connection, opened by the first publish, never a subscriber', async () => {
    const inspector = await redis.client()
    try {
      await inspector.clientSetName('inspector')
      const mine = async () => (await inspector.clientList()).filter((c) => c.name !== 'inspector')
      const p = publisher({ redis: redis.url })
      assert.equal((await mine()).length, 0, 'nothing before the first publish')
      await p.publish({ facility: 'n', broadcast: true }, 'a')
      await p.publish({ facility: 'n', users: ['a', 'b'] }, 'b')
      const open = await mine()
      assert.equal(open.length, 1)
      const info = open[0]! as unknown as Record<string, unknown>
      for (const kind of ['sub', 'psub', 'ssub']) assert.equal(info[kind], 0, kind)
      await p.close()
      assert.equal((await mine()).length, 0)
    } finally {
      await inspector.close()
    }
  })

  it('lets a worker process exit by itself after close()', async () => {
    const t = await startBroker({ redis: redis.url, prefix: 'ws4redis', identify })
    try {
      const ann = await connect(t.url('/ws/jobs?subscribe-user&user=ann'))
      const child = spawnNode(['--import', 'tsx', 'test/fixtures/publisher-exit.ts'], {
        REDIS_URL: redis.url,
      })
      const exit = await exitsByItself(child)
      assert.equal(exit.code, 0, child.stderr)
      assert.equal(child.stdout, 'receivers 1\nclosed\n')
      await ann.waitFor(1)
      assert.deepEqual(ann.texts, ['report ready'])
      await ann.close()
    } finally {
      await t.close()
    }
  })

  it('rejects with WSF_REDIS_UNAVAILABLE while Redis is unreachable, then closes at once', async () => {
    const p = publisher({ redis: `redis://127.0.0.1:${await freePort()}` })
    await assert.rejects(p.ready(), { code: 'WSF_REDIS_UNAVAILABLE' })
    await assert.rejects(p.publish({ facility: 'x', broadcast: true }, 'lost'), {
      code: 'WSF_REDIS_UNAVAILABLE',
    })
    await p.close()
    await assert.rejects(p.publish({ facility: 'x', broadcast: true }, 'late'), {
      code: 'WSF_CLOSED',
    })
  })

  it('refuses SELF, a target without facility, and options that cannot work', () => {
    const p = publisher({ redis: redis.url })
    assert.throws(() => p.channels({ facility: 'x', users: [SELF] }), {
      code: 'WSF_INVALID_ARGUMENT',
    })
    assert.throws(() => p.channels({ broadcast: true }), { code: 'WSF_INVALID_ARGUMENT' })
    assert.throws(() => p.channels({ facility: 'a:b', broadcast: true }), {
      code: 'WSF_INVALID_ARGUMENT',
    })
    for (const options of [
      {},
      { redis: redis.url, redisCluster: ['redis://127.0.0.1:1'] },
      { redis: redis.url, prefix: 'a:b' },
      { redis: redis.url, expire: -1 },
      { redis: redis.url, history: { size: 0, ttl: 1 } },
    ]) {
      assert.throws(() => createPublisher(options as PublisherOptions), {
        code: 'WSF_INVALID_OPTION',
      })
    }
    assert.throws(
      () => createPublisher({ redis: redis.url, prefx: 'ws4redis' } as PublisherOptions),
      (err: Error & { code?: string }) =>
        err.code === 'WSF_INVALID_OPTION' && /"prefx".*"prefix"/.test(err.message),
    )
  })

  it('is the package entry wsfacility/publisher (built), and in wsfacility', async () => {
    const entry = 'wsfacility/publisher'
    const mod = (await import(entry)) as Record<string, unknown>
    assert.deepEqual(Object.keys(mod).sort(), ['Publisher', 'SELF', 'createPublisher'])
    assert.equal(typeof createPublisher, 'function')
  })

  describe('on a Redis Cluster', () => {
    let cluster: RedisCluster
    before(async () => {
      cluster = await startCluster()
    })
    after(() => cluster.stop())

    it('SPUBLISHes to the brokers of the cluster without opening a subscriber connection', async () => {
      const t = await startBroker({ redisCluster: cluster.urls, identify })
      try {
        const ann = await connect(t.url('/ws/jobs?subscribe-user&user=ann'))
        /** Connections with sharded subscriptions, and connections at all, on every master. */
        const census = async () => {
          let subscribers = 0
          let connections = 0
          for (const port of cluster.ports) {
            const list = String(await cluster.command(port, ['CLIENT', 'LIST'])).trim()
            connections += list.split('\n').length - 1 // minus the one that asked
            subscribers += [...list.matchAll(/ ssub=([1-9]\d*)/g)].length
          }
          return { subscribers, connections }
        }
        const before = await census()
        assert.ok(before.subscribers > 0, "the broker's own sharded subscriptions are seen")
        const p = publisher({ redisCluster: cluster.urls })
        assert.equal(await p.publish({ facility: 'jobs', users: ['ann'] }, 'sharded'), 1)
        await ann.waitFor(1)
        assert.deepEqual(ann.texts, ['sharded'])
        const positions = new Map<string, { epoch: string; offset: number }>()
        const history = { size: 5, ttl: 60 }
        await p.publish({ facility: 'logs', users: ['ann'] }, 'kept', { history, positions })
        assert.equal(positions.get('user:ann:logs')?.offset, 1)
        const during = await census()
        assert.equal(during.subscribers, before.subscribers, 'the publisher subscribes nothing')
        assert.ok(during.connections > before.connections, 'the publisher has connections')
        await p.close()
        assert.deepEqual(await census(), before)
        await ann.close()
      } finally {
        await t.close()
      }
    })
  })
})
