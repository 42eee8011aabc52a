// redis-server restarted under an open broker, with its data (AOF) and without it.
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import { RedisPublisher } from '../../src/index.js'
import { historyKeys } from '../../src/history/wire.js'
import {
  assertExactlyOnce,
  fcallPublish,
  HistoryClient,
  libraryLoaded,
} from '../helpers/history.js'
import { startProxy } from '../helpers/proxy.js'
import { type RedisServer, startRedis, type TestRedisClient } from '../helpers/redis.js'
import { eventually, startBroker, type TestServer } from '../helpers/ws.js'

const HISTORY = { size: 1000, ttl: 300 }
const CHANNEL = 'broadcast:feed'
const PATH = '/ws/feed?subscribe-broadcast'

describe('history: Redis restarted under an open broker', () => {
  const cleanup: (() => Promise<unknown>)[] = []
  after(async () => {
    for (const fn of cleanup.reverse()) await fn()
  })

  async function brokerOn(url: string): Promise<TestServer> {
    const t = await startBroker({ redis: url })
    t.broker.facility('feed', { format: 'json', history: HISTORY })
    cleanup.push(() => t.close())
    return t
  }

  async function client(redis: RedisServer): Promise<TestRedisClient> {
    const c = await redis.client()
    cleanup.push(async () => c.destroy())
    return c
  }

  async function publishRange(redis: TestRedisClient, from: number, to: number): Promise<void> {
    for (let n = from; n < to; n++)
      await fcallPublish(redis, CHANNEL, JSON.stringify({ n }), HISTORY)
  }

  it('with its data: open clients get everything published once it is back, a reconnecting client recovers', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'wsfacility-aof-'))
    cleanup.push(() => rm(dir, { recursive: true, force: true }))
    const redis = await startRedis(['--appendonly', 'yes', '--appendfsync', 'always', '--dir', dir])
    cleanup.push(() => redis.stop())
    // The broker reaches Redis through a proxy that keeps it away after the restart until the
    // test has published: what it missed is then certain.
    const proxy = await startProxy(redis.port)
    cleanup.push(() => proxy.close())
    const t = await brokerOn(proxy.redisUrl)
    const open = [new HistoryClient(), new HistoryClient()]
    const away = new HistoryClient()
    for (const c of [...open, away]) {
      await c.open(t.url(PATH))
      await c.recoveredFrame(1)
    }
    const before = await client(redis)
    await libraryLoaded(before)
    await publishRange(before, 0, 10)
    for (const c of [...open, away]) await c.untilN('broadcast', 9)
    away.terminate()
    await away.closed()
    const epoch = away.positions.broadcast!.epoch

    proxy.block()
    await redis.restart()
    await eventually(() => t.broker.engine.status !== 'ready')
    // Back with its data: the same epoch, the offset where it was, the function library.
    const after = await client(redis)
    const { meta } = historyKeys(CHANNEL)
    assert.deepEqual(await after.hGetAll(meta), { e: epoch, s: '10' })
    await publishRange(after, 10, 30)
    proxy.unblock()
    await eventually(() => t.broker.engine.status === 'ready', 10_000)
    // Published while the broker was away: its catch-up brings them to the open clients.
    for (const c of open) await c.untilN('broadcast', 29)
    await publishRange(after, 30, 40)
    for (const c of open) {
      await c.untilN('broadcast', 39)
      assertExactlyOnce(c.dataOf('broadcast'), 40)
      assert.equal(c.recovered.length, 1, 'no recovered:false frame: nothing was lost')
      assert.ok(c.isOpen)
    }
    // A client that was away recovers from the restarted Redis.
    await away.reconnect(t.url(PATH))
    const frame = await away.recoveredFrame(2)
    assert.equal(frame.recovered, true)
    assert.deepEqual(frame.channels.broadcast, { epoch, offset: 40, recovered: true, missed: 30 })
    await away.untilN('broadcast', 39)
    assertExactlyOnce(away.dataOf('broadcast'), 40)
    for (const c of [...open, away]) c.terminate()
  })

  it('without its data: an open json client gets a recovered:false frame, a reconnecting one recovered:false', async () => {
    const redis = await startRedis()
    cleanup.push(() => redis.stop())
    const t = await brokerOn(redis.url)
    const open = new HistoryClient()
    const away = new HistoryClient()
    for (const c of [open, away]) {
      await c.open(t.url(PATH))
      await c.recoveredFrame(1)
    }
    const before = await client(redis)
    await libraryLoaded(before)
    await publishRange(before, 0, 10)
    for (const c of [open, away]) await c.untilN('broadcast', 9)
    away.terminate()
    await away.closed()
    const old = away.positions.broadcast!

    await redis.restart()
    // The broker's catch-up finds a new epoch: the open client is told its history is gone.
    const lost = await open.recoveredFrame(2)
    assert.equal(lost.recovered, false)
    const now = lost.channels.broadcast!
    assert.notEqual(now.epoch, old.epoch)
    assert.deepEqual({ ...now, epoch: '' }, { epoch: '', offset: 0, recovered: false, missed: 0 })
    assert.ok(open.isOpen, 'the client stays connected')
    // Delivery goes on in the new epoch (the broker loads the function library again).
    const after = await client(redis)
    await libraryLoaded(after)
    await publishRange(after, 10, 15)
    await open.untilN('broadcast', 14)
    const fresh = open.dataOf('broadcast').slice(10)
    assert.deepEqual(
      fresh.map((f) => [f.epoch, f.offset, (f.data as { n: number }).n]),
      [1, 2, 3, 4, 5].map((offset) => [now.epoch, offset, 9 + offset]),
    )
    // A client coming back with a position of the lost epoch cannot recover.
    await away.reconnect(t.url(PATH))
    const frame = await away.recoveredFrame(2)
    assert.equal(frame.recovered, false)
    assert.deepEqual(frame.channels.broadcast, {
      epoch: now.epoch,
      offset: 5,
      recovered: false,
      missed: 0,
    })
    assert.equal(away.connections[1]!.length, 1, 'nothing but the recovered frame')
    await publishRange(after, 15, 16)
    await away.untilN('broadcast', 15)
    await open.untilN('broadcast', 15)
    assert.equal(open.recovered.length, 2, 'told once')
    open.terminate()
    away.terminate()
  })
  it('without its data: what the new epoch got before the broker was back follows the recovered:false frame', async () => {
    const redis = await startRedis()
    cleanup.push(() => redis.stop())
    const proxy = await startProxy(redis.port)
    cleanup.push(() => proxy.close())
    const t = await brokerOn(proxy.redisUrl)
    // The publisher is another broker, straight on Redis.
    const other = await brokerOn(redis.url)
    const publisher = new RedisPublisher(
      { facility: 'feed', broadcast: true },
      { broker: other.broker },
    )
    const publish = async (from: number, to: number) => {
      for (let n = from; n < to; n++) await publisher.publishMessage(JSON.stringify({ n }))
    }
    const open = new HistoryClient()
    await open.open(t.url(PATH))
    await open.recoveredFrame(1)
    await publish(0, 10)
    await open.untilN('broadcast', 9)
    const old = open.positions.broadcast!

    proxy.block()
    await redis.restart()
    await eventually(() => other.broker.engine.status === 'ready', 10_000)
    // A new epoch, 5 messages long, before the broker of the open client is back.
    await publish(10, 15)
    proxy.unblock()
    const lost = await open.recoveredFrame(2)
    const now = lost.channels.broadcast!
    assert.notEqual(now.epoch, old.epoch)
    assert.deepEqual({ ...now, epoch: '' }, { epoch: '', offset: 0, recovered: false, missed: 0 })
    await open.untilN('broadcast', 14)
    await publish(15, 17)
    await open.untilN('broadcast', 16)
    // After the frame: the new epoch from its first message, each once.
    const at = open.frames.indexOf(lost)
    const after = open.frames.slice(at + 1) as { epoch: string; offset: number; data: unknown }[]
    assert.deepEqual(
      after.map((f) => [f.epoch, f.offset, f.data]),
      [1, 2, 3, 4, 5, 6, 7].map((offset) => [now.epoch, offset, { n: 9 + offset }]),
    )
    open.terminate()
  })
})
