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
})
