// CLIENT KILL TYPE pubsub while 300 messages are published: the broker's subscription breaks, and
// the open client still gets all 300 (the broker catches up from history once resubscribed).
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import type { EngineStatus } from '../../src/index.js'
import {
  assertExactlyOnce,
  fcallPublish,
  HistoryClient,
  libraryLoaded,
} from '../helpers/history.js'
import { type RedisServer, startRedis, type TestRedisClient } from '../helpers/redis.js'
import { eventually, startBroker, type TestServer } from '../helpers/ws.js'

const HISTORY = { size: 1000, ttl: 300 }

describe('history: CLIENT KILL TYPE pubsub while publishing', () => {
  let redis: RedisServer
  let t: TestServer
  let admin: TestRedisClient
  before(async () => {
    redis = await startRedis()
    admin = await redis.client()
    t = await startBroker({ redis: redis.url })
    t.broker.facility('feed', { format: 'json', history: HISTORY })
  })
  after(async () => {
    await t.close()
    admin.destroy()
    await redis.stop()
  })

  it('the open client gets all 300 messages, in order, exactly once', async () => {
    const statuses: EngineStatus[] = []
    t.broker.on('engine', (s) => statuses.push(s))
    const client = new HistoryClient()
    await client.open(t.url('/ws/feed?subscribe-broadcast'))
    await client.recoveredFrame(1)
    await libraryLoaded(admin)
    const readsBefore = t.broker.stats.historyReads
    const publish = (n: number) =>
      fcallPublish(admin, 'broadcast:feed', JSON.stringify({ n }), HISTORY)
    // One pipeline: 100 messages, the kill of the broker's subscriber connection, 200 more.
    // Redis runs them in order, before the broker can be back: the last 200 reach nobody live,
    // and the first 100, counted as received, die in the killed connection's output buffer.
    const sent: Promise<unknown>[] = []
    for (let n = 0; n < 100; n++) sent.push(publish(n))
    sent.push(admin.sendCommand(['CLIENT', 'KILL', 'TYPE', 'pubsub']))
    for (let n = 100; n < 300; n++) sent.push(publish(n))
    const replies = (await Promise.all(sent)).map(Number)
    assert.equal(replies[100], 1, 'one subscriber connection killed (the broker’s)')
    assert.deepEqual(
      [replies[99], replies[101], replies[300]],
      [1, 0, 0],
      'counted before the kill, by nobody after it',
    )
    await eventually(() => statuses.includes('reconnecting') && t.broker.engine.status === 'ready')
    // Nothing else is published until the client has them all: only the broker's catch-up after
    // it resubscribed can bring the last ones.
    await client.untilN('broadcast', 299)
    // Nothing more arrives late: a few more live ones come straight after, each once.
    for (let n = 300; n < 310; n++) await publish(n)
    await client.untilN('broadcast', 309)
    assertExactlyOnce(client.dataOf('broadcast'), 310)
    assert.ok(client.isOpen, 'the client stayed connected')
    assert.equal(client.recovered.length, 1, 'no recovered:false frame: nothing was lost')
    assert.ok(t.broker.stats.historyReads > readsBefore, 'the broker read history to catch up')
    client.terminate()
  })

  it('more missed than the history keeps: the open client gets a recovered:false frame, then what history has', async () => {
    const small = { size: 20, ttl: 300 }
    t.broker.facility('small', { format: 'json', history: small })
    const client = new HistoryClient()
    await client.open(t.url('/ws/small?subscribe-broadcast'))
    await client.recoveredFrame(1)
    const publish = (n: number) =>
      fcallPublish(admin, 'broadcast:small', JSON.stringify({ n }), small)
    for (let n = 0; n < 10; n++) await publish(n)
    await client.untilN('broadcast', 9)
    const sent: Promise<unknown>[] = [admin.sendCommand(['CLIENT', 'KILL', 'TYPE', 'pubsub'])]
    // Far more than the stream keeps (MAXLEN ~ 20 trims whole nodes of 100 entries).
    for (let n = 10; n < 310; n++) sent.push(publish(n))
    await Promise.all(sent)
    const lost = await client.recoveredFrame(2)
    assert.equal(lost.recovered, false)
    const at = lost.channels.broadcast!
    assert.equal(at.recovered, false)
    assert.ok(at.offset > 10 && at.offset < 300, `goes on from ${at.offset}`)
    await client.untilN('broadcast', 309)
    // Before the frame: 0..9 live; after it, from the oldest message history still had, in order.
    const frames = client.frames as { type: string; offset?: number; data?: { n: number } }[]
    const i = frames.indexOf(lost as never)
    assert.deepEqual(
      frames.slice(1, i).map((f) => f.data!.n),
      Array.from({ length: 10 }, (_, n) => n),
    )
    const after = frames.slice(i + 1)
    assert.deepEqual(
      after.map((f) => f.offset),
      Array.from({ length: 310 - at.offset }, (_, k) => at.offset + 1 + k),
    )
    assert.equal(client.recovered.length, 2)
    client.terminate()
  })
})
