// Two brokers on one Redis: a client that was on one reconnects to the other and recovers there.
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { RedisPublisher } from '../../src/index.js'
import { assertExactlyOnce, HistoryClient, keepPublishing } from '../helpers/history.js'
import { type RedisServer, startRedis } from '../helpers/redis.js'
import { eventually, fresh, startBroker, type TestServer } from '../helpers/ws.js'

const HISTORY = { size: 1000, ttl: 300 }

describe('history: a client moving from one broker to another', () => {
  let redis: RedisServer
  let a: TestServer
  let b: TestServer
  before(async () => {
    redis = await startRedis()
    a = await startBroker({ redis: redis.url })
    b = await startBroker({ redis: redis.url })
    for (const t of [a, b]) t.broker.facility('feed{n}', { format: 'json', history: HISTORY })
  })
  after(async () => {
    await a.close()
    await b.close()
    await redis.stop()
  })

  /** A client on `facility` of `a` that received 20 messages of a publisher that goes on. */
  async function movingClient(facility: string) {
    const path = `/ws/${facility}?subscribe-broadcast`
    const client = new HistoryClient()
    await client.open(a.url(path))
    await client.recoveredFrame(1)
    // A third party publishes: a RedisPublisher on broker a.
    const publisher = new RedisPublisher({ facility, broadcast: true }, { broker: a.broker })
    const run = keepPublishing((payload) => publisher.publishMessage(payload), 1)
    await client.untilN('broadcast', 20)
    client.terminate()
    await client.closed()
    const leftAt = run.count
    await eventually(() => run.count >= leftAt + 20, 10_000)
    return { client, run, path }
  }

  async function finish(
    client: HistoryClient,
    run: ReturnType<typeof keepPublishing>,
  ): Promise<void> {
    const at = run.count
    await client.untilN('broadcast', at + 10).finally(() => run.stop())
    await client.untilN('broadcast', run.count - 1)
    assertExactlyOnce(client.dataOf('broadcast'), run.count)
    client.terminate()
  }

  it('recovers on a broker that has nobody on the channel yet', async () => {
    const { client, run, path } = await movingClient(fresh('feed'))
    const position = client.positions.broadcast!
    await client.reconnect(b.url(path))
    const frame = await client.recoveredFrame(2)
    assert.equal(frame.recovered, true)
    assert.equal(frame.channels.broadcast!.epoch, position.epoch)
    assert.ok(frame.channels.broadcast!.missed >= 20)
    await finish(client, run)
  })

  it('recovers on a broker whose other clients are on the channel', async () => {
    const facility = fresh('feed')
    const path = `/ws/${facility}?subscribe-broadcast`
    const resident = new HistoryClient()
    await resident.open(b.url(path))
    const { client, run } = await movingClient(facility)
    await client.reconnect(b.url(path))
    const frame = await client.recoveredFrame(2)
    assert.equal(frame.recovered, true)
    assert.ok(frame.channels.broadcast!.missed >= 20)
    await finish(client, run)
    await resident.untilN('broadcast', run.count - 1)
    assertExactlyOnce(resident.dataOf('broadcast'), run.count)
    resident.terminate()
  })
})
