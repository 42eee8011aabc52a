// What happens on a channel while a recovering connection is still upgrading: messages that
// arrive meanwhile, and a history lost meanwhile. A RedisEngine (real Redis) whose history read
// or stored-message read waits at a gate the test opens holds the upgrade at the right step.
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { RedisEngine } from '../../src/engine/redis.js'
import type { HistoryRead } from '../../src/history/wire.js'
import {
  assertExactlyOnce,
  fcallPublish,
  HistoryClient,
  libraryLoaded,
  type RecoveredFrame,
} from '../helpers/history.js'
import { identify } from '../helpers/identity.js'
import { type RedisServer, startRedis, type TestRedisClient } from '../helpers/redis.js'
import { eventually, startBroker, type TestServer } from '../helpers/ws.js'

/** A gate a step waits at until the test opens it; `reached` resolves when the step arrives. */
class Gate {
  open!: () => void
  readonly opened = new Promise<void>((r) => (this.open = r))
  arrived!: () => void
  readonly reached = new Promise<void>((r) => (this.arrived = r))
  async pass(): Promise<void> {
    this.arrived()
    await this.opened
  }
}

/** RedisEngine whose next history read, stored-message read (`read`) or UNSUBSCRIBE can be held at a gate. */
class GatedEngine extends RedisEngine {
  readGate: Gate | null = null
  getGate: Gate | null = null
  override async readHistory(
    channel: string,
    since: number | null,
    limit: number,
  ): Promise<HistoryRead> {
    const gate = this.readGate
    this.readGate = null
    await gate?.pass()
    return super.readHistory(channel, since, limit)
  }
  /** Held after Redis unsubscribed the channel, before the broker hears it did. */
  unsubscribeGate: Gate | null = null
  override async unsubscribe(channel: string): Promise<void> {
    await super.unsubscribe(channel)
    const gate = this.unsubscribeGate
    this.unsubscribeGate = null
    await gate?.pass()
  }
  /** The upgrade's read of stored messages (the one `getGate` holds). */
  override async read(channels: readonly string[]): Promise<ReadonlyMap<string, Buffer | null>> {
    const gate = this.getGate
    this.getGate = null
    await gate?.pass()
    return super.read(channels)
  }
}

const HISTORY = { size: 1000, ttl: 300 }

describe('history: a channel moving on while a recovering connection upgrades', () => {
  let redis: RedisServer
  let admin: TestRedisClient
  let engine: GatedEngine
  let t: TestServer
  before(async () => {
    redis = await startRedis()
    admin = await redis.client()
    engine = new GatedEngine({ redis: redis.url, prefix: '' })
    t = await startBroker({ engine, identify })
    t.broker.facility('feed{n}', { format: 'json', history: HISTORY })
  })
  after(async () => {
    await t.close()
    admin.destroy()
    await redis.stop()
  })

  let n = 0
  const publish = async (channel: string, count: number) => {
    for (let i = 0; i < count; i++)
      await fcallPublish(admin, channel, JSON.stringify({ n: n++ }), HISTORY)
  }

  it('messages that arrive while its history read is out are sent once, after what it missed', async () => {
    n = 0
    const path = '/ws/feed1?subscribe-broadcast'
    const client = await new HistoryClient().open(t.url(path))
    await libraryLoaded(admin)
    await publish('broadcast:feed1', 5)
    await client.untilN('broadcast', 4)
    client.terminate()
    await client.closed()
    await publish('broadcast:feed1', 5)
    // The new connection is registered on the channel; its history read waits. Meanwhile 5
    // more arrive live (held, as it is upgrading) — and the read, once out, has them too.
    const gate = (engine.readGate = new Gate())
    const reconnecting = client.reconnect(t.url(path))
    await gate.reached
    await publish('broadcast:feed1', 5)
    await eventually(() => t.broker.stats.heldBytes > 0)
    gate.open()
    await reconnecting
    const frame = await client.recoveredFrame(2)
    assert.equal(frame.recovered, true)
    assert.equal(frame.channels.broadcast!.offset, 15)
    assert.equal(frame.channels.broadcast!.missed, 10)
    await publish('broadcast:feed1', 1)
    await client.untilN('broadcast', 15)
    assertExactlyOnce(client.dataOf('broadcast'), 16)
    client.terminate()
  })

  it('a history lost while it upgrades is told after its recovered frame, and the new epoch follows', async () => {
    n = 0
    // broadcast is recovered; user is not, so the upgrade reads stored messages (the gate).
    const path = '/ws/feed2?subscribe-broadcast&subscribe-user&user=ann'
    const client = await new HistoryClient().open(t.url(path))
    await libraryLoaded(admin)
    await publish('broadcast:feed2', 5)
    await client.untilN('broadcast', 4)
    client.terminate()
    await client.closed()
    const old = client.positions.broadcast!
    const gate = (engine.getGate = new Gate())
    const reconnecting = client.reconnect(t.url(path))
    await gate.reached
    // Recovered (nothing missed), still upgrading: Redis loses its data, a new epoch begins.
    await admin.flushAll()
    await publish('broadcast:feed2', 2)
    await eventually(() => t.broker.stats.heldBytes > 0)
    gate.open()
    await reconnecting
    await client.until(() => client.connections[1]!.length >= 4, 'four frames')
    const frames = client.connections[1]! as (RecoveredFrame | { type: 'data'; epoch: string })[]
    const [recovered, lost, ...data] = frames as [RecoveredFrame, RecoveredFrame, ...unknown[]]
    assert.equal(recovered.type, 'recovered')
    assert.deepEqual(recovered.channels.broadcast, { ...old, recovered: true, missed: 0 })
    assert.equal(lost.type, 'recovered', 'the loss is told')
    assert.equal(lost.recovered, false)
    const now = lost.channels.broadcast!
    assert.notEqual(now.epoch, old.epoch)
    assert.deepEqual(
      data.map((f) => {
        const d = f as { channel: string; epoch: string; offset: number }
        return [d.channel, d.epoch, d.offset]
      }),
      [
        ['broadcast', now.epoch, 1],
        ['broadcast', now.epoch, 2],
      ],
    )
    client.terminate()
  })

  it('a channel subscribed again while its UNSUBSCRIBE was in flight catches up on what it missed', async () => {
    n = 0
    const path = '/ws/feed3?subscribe-broadcast'
    const channel = 'broadcast:feed3'
    const client = await new HistoryClient().open(t.url(path))
    await libraryLoaded(admin)
    await publish(channel, 5)
    await client.untilN('broadcast', 4)
    // The last client leaves: the channel is unsubscribed in Redis, the broker not told yet.
    const gate = (engine.unsubscribeGate = new Gate())
    client.terminate()
    await gate.reached
    await publish(channel, 3) // reach no process
    // The client comes back meanwhile: the broker subscribes the channel again once the
    // UNSUBSCRIBE is done, and the 3 it missed are in history.
    const reconnecting = client.reconnect(t.url(path))
    await eventually(() => t.broker.stats.upgrading === 1)
    gate.open()
    await reconnecting
    const frame = await client.recoveredFrame(2)
    assert.equal(frame.recovered, true)
    assert.deepEqual(
      { offset: frame.channels.broadcast!.offset, missed: frame.channels.broadcast!.missed },
      { offset: 8, missed: 3 },
    )
    await publish(channel, 1)
    await client.untilN('broadcast', 8)
    assertExactlyOnce(client.dataOf('broadcast'), 9)
    client.terminate()
  })

  it('a history lost while its recovery read is out: answered in the new epoch, the loss not told twice', async () => {
    n = 0
    const path = '/ws/feed4?subscribe-broadcast'
    const channel = 'broadcast:feed4'
    // A resident client keeps the channel known to the broker (and is told of the loss live).
    const resident = await new HistoryClient().open(t.url(path))
    const client = await new HistoryClient().open(t.url(path))
    await libraryLoaded(admin)
    await publish(channel, 3)
    await client.untilN('broadcast', 2)
    client.terminate()
    await client.closed()
    await publish(channel, 2)
    const old = client.positions.broadcast!
    // Its position is behind the broker's and no tail is kept: the recovery reads Redis (held).
    const gate = (engine.readGate = new Gate())
    const reconnecting = client.reconnect(t.url(path))
    await gate.reached
    await admin.flushAll()
    await publish(channel, 1) // epoch 2, offset 1: the broker repairs and tells of the loss
    const lost = await resident.recoveredFrame(2)
    gate.open()
    await reconnecting
    await client.until(() => client.connections[1]!.length >= 2, 'two frames')
    await publish(channel, 1)
    await client.untilN('broadcast', 6)
    const now = lost.channels.broadcast!.epoch
    assert.notEqual(now, old.epoch)
    const frames = client.connections[1]! as { type: string; epoch?: string; offset?: number }[]
    assert.deepEqual(frames, [
      {
        type: 'recovered',
        recovered: false,
        channels: { broadcast: { epoch: now, offset: 1, recovered: false, missed: 0 } },
      },
      { ...frames[1], type: 'data', epoch: now, offset: 1 },
      { ...frames[2], type: 'data', epoch: now, offset: 2 },
    ])
    resident.terminate()
    client.terminate()
  })
})
