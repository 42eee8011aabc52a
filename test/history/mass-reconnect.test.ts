// 200 clients cut at once (a TCP proxy) reconnect at once with the same position: their
// recoveries share a few history reads, and each gets everything it missed.
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { RedisPublisher } from '../../src/index.js'
import { assertExactlyOnce, HistoryClient } from '../helpers/history.js'
import { startProxy, type TcpProxy } from '../helpers/proxy.js'
import { type RedisServer, startRedis } from '../helpers/redis.js'
import { eventually, startBroker, type TestServer } from '../helpers/ws.js'

const N = 200

describe('history: a mass reconnect with one position', () => {
  let redis: RedisServer
  let t: TestServer
  let proxy: TcpProxy
  before(async () => {
    redis = await startRedis()
    t = await startBroker({ redis: redis.url })
    t.broker.facility('feed{n}', { format: 'json', history: { size: 1000, ttl: 300 } })
    proxy = await startProxy(t.port)
  })
  after(async () => {
    await proxy.close()
    await t.close()
    await redis.stop()
  })

  async function scenario(facility: string, resident: boolean): Promise<number> {
    const path = `/ws/${facility}?subscribe-broadcast`
    const publisher = new RedisPublisher({ facility, broadcast: true }, { broker: t.broker })
    let n = 0
    const publish = async (count: number) => {
      for (let i = 0; i < count; i++) await publisher.publishMessage(JSON.stringify({ n: n++ }))
    }
    // With `resident`, one client on the broker's own port keeps the channel subscribed.
    const stay = resident ? await new HistoryClient().open(t.url(path)) : null
    const clients = Array.from({ length: N }, () => new HistoryClient())
    await Promise.all(clients.map((c) => c.open(proxy.url(path))))
    await publish(10)
    await Promise.all(clients.map((c) => c.untilN('broadcast', 9)))
    proxy.cut()
    await Promise.all(clients.map((c) => c.closed()))
    await eventually(() => t.broker.stats.connections === (resident ? 1 : 0))
    await publish(20)
    const reads = t.broker.stats.historyReads
    await Promise.all(clients.map((c) => c.reconnect(proxy.url(path))))
    const frames = await Promise.all(clients.map((c) => c.recoveredFrame(2)))
    const used = t.broker.stats.historyReads - reads
    for (const f of frames) {
      assert.equal(f.recovered, true)
      assert.equal(f.channels.broadcast!.missed, 20)
    }
    await publish(1)
    for (const c of clients) {
      await c.untilN('broadcast', 30)
      assertExactlyOnce(c.dataOf('broadcast'), 31)
      c.terminate()
    }
    if (stay) {
      await stay.untilN('broadcast', 30)
      assertExactlyOnce(stay.dataOf('broadcast'), 31)
      stay.terminate()
    }
    return used
  }

  it(`${N} clients of a channel nobody else holds share a few reads`, async () => {
    const reads = await scenario('feed1', false)
    assert.ok(reads >= 1 && reads <= 5, `${reads} history reads for ${N} recoveries`)
  })

  it(`${N} clients of a channel the broker kept subscribed share a few reads`, async () => {
    const reads = await scenario('feed2', true)
    assert.ok(reads >= 1 && reads <= 5, `${reads} history reads for ${N} recoveries`)
  })
})
