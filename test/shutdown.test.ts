import assert from 'node:assert/strict'
import net from 'node:net'
import type { Duplex } from 'node:stream'
import { after, before, describe, it } from 'node:test'
import type { Broker, Connection } from '../src/index.js'
import { identify } from './helpers/identity.js'
import { framesOf, rawClient } from './helpers/raw.js'
import { type RedisServer, startRedis } from './helpers/redis.js'
import {
  connect,
  eventually,
  sleep,
  startBroker,
  type TestClient,
  type TestServer,
  upgradeStatus,
} from './helpers/ws.js'

let redis: RedisServer
before(async () => {
  redis = await startRedis()
})
after(async () => {
  await redis.stop()
})

/** The server side of each connection's TCP socket (its unsent bytes are the kernel's overflow). */
const sockets = new WeakMap<Connection, Duplex>()
const serverSocket = (conn: Connection): Duplex => sockets.get(conn)!
/** Remembers the server side of the sockets of `broker`'s connections (the upgrade's socket). */
const trackSockets = (broker: Broker): void => {
  broker.on('connection', (conn, req) => sockets.set(conn, req.socket))
}

describe('Graceful shutdown', () => {
  it('delivers what was published just before close() before the 1001 close frame', async () => {
    const t = await startBroker({ redis: redis.url })
    const c = await connect(t.url('/ws/last?subscribe-broadcast'))
    const closed = c.closedByServer()
    for (let i = 0; i < 50; i++) await t.broker.publish(['broadcast:last'], `m${i}`)
    const conn = [...t.broker.connections.values()][0]!
    conn.send('queued locally')
    await t.close()
    const { code } = await closed
    assert.equal(code, 1001)
    assert.equal(c.texts.length, 51, 'every message arrived before the close frame')
    assert.deepEqual(
      new Set(c.texts),
      new Set([...Array.from({ length: 50 }, (_, i) => `m${i}`), 'queued locally']),
    )
  })

  it('closes with 1012 on close({ code: 1012 }) and refuses a bad code with WSF_INVALID_OPTION', async () => {
    const t = await startBroker({})
    const c = await connect(t.url('/ws/restart?subscribe-broadcast'))
    const closed = c.closedByServer()
    assert.throws(() => void t.broker.close({ code: 1000 as never }), {
      code: 'WSF_INVALID_OPTION',
    })
    await t.broker.close({ code: 1012 })
    assert.deepEqual(await closed, { code: 1012, reason: 'server restarting' })
    await t.close()
  })

  it('answers upgrades with 503 while closing, then unsubscribes every channel and quits Redis', async () => {
    const inspector = await redis.client()
    await inspector.clientSetName('inspector')
    const t = await startBroker({ redis: redis.url, identify })
    try {
      const c = await connect(t.url('/ws/bye?subscribe-broadcast&subscribe-user&user=ann'))
      // A client that never answers the close frame keeps close() waiting for its timeout.
      const stubborn = await rawClient(t.port, '/ws/bye?subscribe-broadcast')
      stubborn.socket.pause()
      const numsub = async () =>
        Object.values(await inspector.pubSubNumSub(['broadcast:bye', 'user:ann:bye']))
      assert.deepEqual(await numsub(), [1, 1])
      const closing = t.broker.close({ timeout: 1500 })
      await c.closedByServer()
      assert.deepEqual(await upgradeStatus(t.url('/ws/bye?subscribe-broadcast')), {
        status: 503,
        body: 'server is shutting down\n',
      })
      await closing
      assert.deepEqual(await numsub(), [0, 0])
      const others = (await inspector.clientList()).filter((x) => x.name !== 'inspector')
      assert.deepEqual(others, [], 'no Redis connection of the broker is left')
      stubborn.socket.destroy()
    } finally {
      await t.close()
      await inspector.close()
    }
  })
})

describe('A client that never reads', () => {
  let t: TestServer
  const MAX = 64 * 1024
  before(async () => {
    t = await startBroker({ redis: redis.url, maxBufferedBytes: 16 * 1024 * 1024 })
    trackSockets(t.broker)
    t.broker.facility('dropping', { maxBufferedBytes: MAX, slowConsumer: 'drop' })
    t.broker.facility('closing', { maxBufferedBytes: MAX })
  })
  after(async () => {
    await t.close()
  })

  /**
   * Publishes 4 KB messages, 8 at a time (within every client's buffer), each batch once `reader`
   * has them all, until `done()` or a bound; returns how many were sent.
   */
  async function flood(channel: string, reader: TestClient, done: () => boolean): Promise<number> {
    const body = 'x'.repeat(4096)
    let sent = 0
    // At most 64 MB: far past the kernel's socket buffers plus MAX.
    while (!done() && sent < 16_000) {
      await Promise.all(
        Array.from({ length: 8 }, (_, i) => t.broker.publish([channel], `${sent + i}:${body}`)),
      )
      sent += 8
      await eventually(() => reader.received.length >= sent, 10_000)
    }
    return sent
  }

  for (const policy of ['dropping', 'closing'] as const) {
    it(`keeps its queue bounded and applies the facility's policy (${policy}); others get everything`, async () => {
      const reader = await connect(t.url(`/ws/${policy}?subscribe-broadcast`))
      const slow = await rawClient(t.port, `/ws/${policy}?subscribe-broadcast`)
      slow.socket.pause()
      await eventually(() => t.broker.connections.size === 2)
      const slowConn = [...t.broker.connections.values()].find(
        (c) => (serverSocket(c) as net.Socket).remotePort === slow.socket.localPort,
      )!
      assert.ok(slowConn)
      let peak = 0
      const sent = await flood(`broadcast:${policy}`, reader, () => {
        if (slowConn.isOpen) peak = Math.max(peak, serverSocket(slowConn).writableLength)
        return policy === 'dropping' ? slowConn.dropped > 0 : !slowConn.isOpen
      })
      assert.ok(sent < 16_000, 'the policy applied')
      assert.ok(
        peak <= MAX,
        `unsent bytes in user space stayed within maxBufferedBytes (peak ${peak})`,
      )
      await sleep(100)
      assert.equal(reader.received.length, sent, 'the reading client got every message, once')
      assert.deepEqual(
        reader.texts.map((x) => Number(x.split(':', 1)[0])),
        Array.from({ length: sent }, (_, i) => i),
      )
      if (policy === 'dropping') {
        assert.equal(slowConn.isOpen, true, 'a dropping facility keeps the slow client')
      } else {
        // Once it reads again, the client finds the frames that fitted, then the 1013 close.
        slow.socket.resume()
        await eventually(() => framesOf(slow.data()).some((f) => f.opcode === 8), 30_000)
        const last = framesOf(slow.data()).at(-1)!
        assert.equal(last.opcode, 8)
        assert.equal(last.payload.readUInt16BE(0), 1013)
      }
      slow.socket.destroy()
      await reader.close()
      await eventually(() => t.broker.connections.size === 0)
    })
  }
})
