import assert from 'node:assert/strict'
import type net from 'node:net'
import { after, before, describe, it } from 'node:test'
import { RedisPublisher } from '../src/index.js'
import { framesOf, rawClient } from './helpers/raw.js'
import { type RedisServer, startRedis } from './helpers/redis.js'
import { connect, eventually, sleep, startBroker, type TestServer } from './helpers/ws.js'

/** A raw client that keeps each chunk the server's writes arrived in, after the handshake. */
async function chunked(
  t: TestServer,
  path: string,
): Promise<{ chunks: Buffer[]; socket: net.Socket }> {
  const { socket } = await rawClient(t.port, path)
  const chunks: Buffer[] = []
  socket.on('data', (d: Buffer) => chunks.push(d))
  return { chunks, socket }
}

const texts = (chunk: Buffer): string[] => framesOf(chunk).map((f) => f.payload.toString())

describe('writeDelay (real Redis, raw sockets)', () => {
  let redis: RedisServer
  let t: TestServer
  before(async () => {
    redis = await startRedis()
    // A window far longer than the few Redis round trips the test makes inside it.
    t = await startBroker({ redis: redis.url, writeDelay: 1000 })
    t.broker.facility('now', { writeDelay: 0 })
  })
  after(async () => {
    await t.close()
    await redis.stop()
  })

  it("sends a client's messages of separate publishes in one write; a facility of 0 at once", async () => {
    const feed = await chunked(t, '/ws/feed?subscribe-broadcast')
    const now = await chunked(t, '/ws/now?subscribe-broadcast')
    const toFeed = new RedisPublisher({ facility: 'feed', broadcast: true }, { broker: t.broker })
    const toNow = new RedisPublisher({ facility: 'now', broadcast: true }, { broker: t.broker })
    assert.equal(await toFeed.publishMessage('f-1'), 1)
    assert.equal(await toNow.publishMessage('n-1'), 1)
    await eventually(() => now.chunks.length === 1)
    assert.deepEqual(texts(now.chunks[0]!), ['n-1'])
    assert.equal(feed.chunks.length, 0, "the broker's delay holds the earlier message back")
    assert.equal(await toFeed.publishMessage('f-2'), 1)
    assert.equal(await toFeed.publishMessage('f-3'), 1)
    await eventually(() => feed.chunks.length > 0, 5000)
    assert.deepEqual(feed.chunks.map(texts), [['f-1', 'f-2', 'f-3']], 'one write, in order')
    feed.socket.destroy()
    now.socket.destroy()
  })

  it('writes what waits for the window ahead of the 1001 of a shutdown, without waiting it out', async () => {
    const own = await startBroker({ redis: redis.url, writeDelay: 10_000 })
    const c = await connect(own.url('/ws/last?subscribe-broadcast'))
    const closed = c.closedByServer()
    for (let i = 0; i < 5; i++) await own.broker.publish(['broadcast:last'], `m${i}`)
    await sleep(100) // time for the messages to arrive, were they not waiting
    assert.equal(c.texts.length, 0, 'waiting for the window (10 s)')
    await own.close()
    assert.equal((await closed).code, 1001)
    assert.deepEqual(c.texts, ['m0', 'm1', 'm2', 'm3', 'm4'])
  })
})
