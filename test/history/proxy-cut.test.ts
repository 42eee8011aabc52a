// A client behind a TCP proxy that the test cuts: it reconnects with the positions of its last
// data frames while a publisher keeps publishing, and must get every message exactly once.
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { RedisPublisher } from '../../src/index.js'
import { assertExactlyOnce, HistoryClient, keepPublishing } from '../helpers/history.js'
import { startProxy, type TcpProxy } from '../helpers/proxy.js'
import { type RedisServer, startRedis } from '../helpers/redis.js'
import { eventually, startBroker, type TestServer } from '../helpers/ws.js'

describe('history: a client reconnecting after its connection was cut', () => {
  let redis: RedisServer
  let t: TestServer
  let proxy: TcpProxy
  before(async () => {
    redis = await startRedis()
    t = await startBroker({ redis: redis.url })
    t.broker.facility('feed', { format: 'json', history: { size: 1000, ttl: 300 } })
    proxy = await startProxy(t.port)
  })
  after(async () => {
    await proxy.close()
    await t.close()
    await redis.stop()
  })

  it('gets every message once, in order, with recovered:true, while a publisher keeps publishing', async () => {
    const path = '/ws/feed?subscribe-broadcast'
    const client = new HistoryClient()
    await client.open(proxy.url(path))
    // A first connection asks for nothing: it is told where the channel stands.
    const first = await client.recoveredFrame(1)
    assert.equal(first.recovered, false)
    assert.equal(first.channels.broadcast!.offset, 0)

    const publisher = new RedisPublisher(
      { facility: 'feed', broadcast: true },
      { broker: t.broker },
    )
    const run = keepPublishing((payload) => publisher.publishMessage(payload))
    try {
      await client.untilN('broadcast', 20)
      proxy.cut()
      await client.closed()
      // Messages go on while the client is away.
      const cutAt = run.count
      await eventually(() => run.count >= cutAt + 30, 10_000)
      const before = client.positions.broadcast!
      await client.reconnect(proxy.url(path))
      const frame = await client.recoveredFrame(2)
      assert.equal(frame.recovered, true)
      assert.equal(frame.channels.broadcast!.recovered, true)
      assert.equal(frame.channels.broadcast!.epoch, before.epoch)
      assert.ok(frame.channels.broadcast!.missed >= 1, 'missed messages were sent')
      // The missed messages come first on the new connection, then the recovered frame.
      const second = client.connections[1]!
      const at = second.findIndex((f) => (f as { type: string }).type === 'recovered')
      assert.equal(at, frame.channels.broadcast!.missed)
      assert.equal((second[0] as { offset: number }).offset, before.offset + 1)
      // And live ones after it.
      const reconnectedAt = run.count
      await client.untilN('broadcast', reconnectedAt + 10)
    } finally {
      await run.stop()
    }
    const total = run.count
    await client.untilN('broadcast', total - 1)
    assertExactlyOnce(client.dataOf('broadcast'), total)
    client.terminate()
  })
})
