// A broker process SIGKILLed mid-stream and started again: its client reconnects to the new
// process with its positions and gets everything it missed, in order, once.
import assert from 'node:assert/strict'
import { after, afterEach, before, describe, it } from 'node:test'
import { type Child, spawnNode } from '../helpers/child.js'
import {
  assertExactlyOnce,
  fcallPublish,
  HistoryClient,
  keepPublishing,
  libraryLoaded,
} from '../helpers/history.js'
import { type RedisServer, startRedis, type TestRedisClient } from '../helpers/redis.js'
import { eventually } from '../helpers/ws.js'

const FIXTURE = 'test/fixtures/history-broker.ts'
const HISTORY = { size: 1000, ttl: 300 }

describe('history: a broker process SIGKILLed and restarted', () => {
  let redis: RedisServer
  let publisher: TestRedisClient
  const children: Child[] = []
  before(async () => {
    redis = await startRedis()
    publisher = await redis.client()
  })
  afterEach(async () => {
    await Promise.all(children.splice(0).map((c) => c.kill()))
  })
  after(async () => {
    publisher.destroy()
    await redis.stop()
  })

  /** Starts the fixture broker (on `port`, 0: any) and resolves to its child and port. */
  async function broker(port = 0): Promise<{ child: Child; port: number }> {
    const child = spawnNode(['--import', 'tsx', FIXTURE, redis.url, String(port)])
    children.push(child)
    const [, listening] = await child.waitForOutput(/^port (\d+)$/m, 20_000)
    return { child, port: Number(listening) }
  }

  it('the client reconnects to the new process and gets every message once, in order (FCALL publisher)', async () => {
    const first = await broker()
    const url = `ws://127.0.0.1:${first.port}/ws/feed?subscribe-broadcast`
    const client = new HistoryClient()
    await client.open(url)
    await client.recoveredFrame(1)
    // The broker loads the function library other publishers call.
    await libraryLoaded(publisher)
    const run = keepPublishing((payload) =>
      fcallPublish(publisher, 'broadcast:feed', payload, HISTORY),
    )
    try {
      await client.untilN('broadcast', 20)
      await first.child.signal('SIGKILL')
      await client.closed()
      const killedAt = run.count
      await eventually(() => run.count >= killedAt + 30, 10_000)
      // A new process on the same port, knowing nothing of the channel.
      await broker(first.port)
      const position = client.positions.broadcast!
      await client.reconnect(url)
      const frame = await client.recoveredFrame(2)
      assert.equal(frame.recovered, true)
      assert.deepEqual(
        { epoch: frame.channels.broadcast!.epoch, recovered: frame.channels.broadcast!.recovered },
        { epoch: position.epoch, recovered: true },
      )
      assert.ok(frame.channels.broadcast!.missed >= 30)
      const reconnectedAt = run.count
      await client.untilN('broadcast', reconnectedAt + 10)
    } finally {
      await run.stop()
    }
    await client.untilN('broadcast', run.count - 1)
    assertExactlyOnce(client.dataOf('broadcast'), run.count)
    client.terminate()
  })
})
