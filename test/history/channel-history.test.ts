// ChannelHistory over a real MemoryEngine: live messages go from the engine's publish to
// receive() through a fault injector that can drop, hold back or duplicate them. Reads can be
// held, queued or made to fail (the engine read is then one of an engine that was closed).
import assert from 'node:assert/strict'
import { afterEach, describe, it } from 'node:test'
import { MemoryEngine } from '../../src/engine/memory.js'
import {
  ChannelHistory,
  type HistorySource,
  type Sequenced,
} from '../../src/history/channel-history.js'
import {
  decodeChannelMessage,
  type HistoryOptions,
  type StreamPosition,
} from '../../src/history/wire.js'
import { eventually } from '../helpers/ws.js'

const CHANNEL = 'broadcast:feed'

/** What the fault injector does with one live message. */
type Fault = 'pass' | 'drop' | 'hold' | 'dup'

interface Rig {
  engine: MemoryEngine
  history: ChannelHistory
  /** Offsets handed on, in order. */
  delivered: number[]
  /** Payloads handed on, in order. */
  payloads: string[]
  lost: StreamPosition[]
  errors: unknown[]
  /** Live messages held back by a 'hold' fault, in arrival order. */
  held: Sequenced[]
  /** What happens to the next live messages (by offset); 'pass' when unset. */
  faults: Map<number, Fault>
  /** Publishes `count` messages with history; payload `m<offset>`. */
  publish(count?: number): Promise<void>
  /** Hands the held-back messages to receive() (in `order`, default arrival order). */
  release(order?: number[]): void
  /** The source ChannelHistory reads from (counts and logs its calls, `read <since>` and
   * `barrier`; can be pointed elsewhere). */
  source: HistorySource & { target: MemoryEngine; reads: number; calls: string[] }
}

const engines: MemoryEngine[] = []
afterEach(async () => {
  await Promise.all(engines.splice(0).map((e) => e.close()))
})

/** `kept`: how many messages the engine keeps (Redis's `MAXLEN ~` keeps somewhat more than
 * `size`). */
async function rig(
  options: HistoryOptions = { size: 100, ttl: 60 },
  kept = options.size,
): Promise<Rig> {
  const engine = new MemoryEngine()
  engines.push(engine)
  const r = {
    engine,
    delivered: [] as number[],
    payloads: [] as string[],
    lost: [] as StreamPosition[],
    errors: [] as unknown[],
    held: [] as Sequenced[],
    faults: new Map<number, Fault>(),
  } as Rig
  let top = 0
  r.source = {
    target: engine,
    reads: 0,
    calls: [],
    readHistory(channel, since, limit) {
      this.reads++
      this.calls.push(`read ${since}`)
      return this.target.readHistory(channel, since, limit)
    },
    barrier() {
      this.calls.push('barrier')
      return this.target.barrier()
    },
  }
  r.history = new ChannelHistory(CHANNEL, 'broadcast', options, r.source, {
    deliver: (m) => {
      r.delivered.push(m.offset)
      r.payloads.push(m.payload.toString())
    },
    lost: (p) => r.lost.push(p),
    error: (err) => r.errors.push(err),
  })
  engine.onMessage((channel, raw) => {
    const m = decodeChannelMessage(raw)
    assert.notEqual(m.epoch, null, 'published with history')
    const fault = r.faults.get(m.offset) ?? 'pass'
    if (fault === 'hold') r.held.push(m as Sequenced)
    else if (fault !== 'drop') r.history.receive(m as Sequenced)
    if (fault === 'dup') r.history.receive(m as Sequenced)
    return 1
  })
  await engine.subscribe(CHANNEL)
  r.publish = async (count = 1) => {
    for (let i = 0; i < count; i++) {
      top++
      await engine.publish(CHANNEL, Buffer.from(`m${top}`), 0, { size: kept, ttl: options.ttl })
    }
  }
  r.release = (order) => {
    const held = r.held.splice(0)
    const list = order ? order.map((o) => held.find((m) => m.offset === o)!) : held
    for (const m of list) r.history.receive(m)
  }
  return r
}

const range = (from: number, to: number): number[] =>
  Array.from({ length: to - from + 1 }, (_, i) => from + i)

/** Lets pending reads (microtasks and timers of the engine) finish. */
const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))

/** The channel's epoch in `engine`, read directly (not through the rig's source). */
const epochOf = async (engine: MemoryEngine): Promise<string> =>
  (await engine.readHistory(CHANNEL, null, 0)).epoch

/** A ChannelHistory that has not seen the channel yet (no live messages reach it). */
const unseen = (r: Rig): ChannelHistory =>
  new ChannelHistory(CHANNEL, 'broadcast', { size: 100, ttl: 60 }, r.source, {
    deliver: () => {},
    lost: () => {},
    error: () => {},
  })

/** Redis lost its data: a fresh engine stands for it (a new epoch, from offset 1), the source
 * reads from it, and its live messages reach the history through `fault`. */
async function freshRedis(
  r: Rig,
  fault: Fault = 'pass',
): Promise<{
  engine: MemoryEngine
  publish(...payloads: string[]): Promise<void>
  /** Hands its held-back live messages to receive(). */
  release(): void
}> {
  const engine = new MemoryEngine()
  engines.push(engine)
  r.source.target = engine
  const held: Sequenced[] = []
  engine.onMessage((_channel, raw) => {
    const m = decodeChannelMessage(raw) as Sequenced
    if (fault === 'hold') held.push(m)
    else if (fault === 'pass') r.history.receive(m)
    return 1
  })
  await engine.subscribe(CHANNEL)
  return {
    engine,
    async publish(...payloads) {
      for (const p of payloads) await engine.publish(CHANNEL, Buffer.from(p), 0, r.history.options)
    },
    release() {
      for (const m of held.splice(0)) r.history.receive(m)
    },
  }
}

describe('ChannelHistory: live messages', () => {
  it('hands on messages in order, each once, without reading history', async () => {
    const r = await rig()
    await r.publish(5)
    assert.deepEqual(r.delivered, range(1, 5))
    assert.deepEqual(r.payloads, ['m1', 'm2', 'm3', 'm4', 'm5'])
    assert.deepEqual(r.history.position, { epoch: r.history.position!.epoch, offset: 5 })
    assert.equal(r.source.reads, 0)
    assert.equal(r.history.reads, 0)
  })

  it('a dropped message is read from history when the next one shows the jump', async () => {
    const r = await rig()
    r.faults.set(3, 'drop')
    await r.publish(5)
    await eventually(() => r.delivered.length === 5)
    assert.deepEqual(r.delivered, range(1, 5))
    assert.deepEqual(r.payloads, ['m1', 'm2', 'm3', 'm4', 'm5'])
    assert.equal(r.source.reads, 1)
    assert.equal(r.history.reads, 1)
    // A jump needs no barrier (that is for after a resubscription).
    assert.deepEqual(r.source.calls, ['read 2'])
    assert.deepEqual(r.lost, [])
  })

  it('messages that arrive during a repair wait for it, then follow in order', async () => {
    const r = await rig()
    r.faults.set(2, 'drop')
    await r.publish(1)
    // 3 shows the jump and starts a read; 4..6 arrive before it is answered.
    const gate = holdReads(r)
    await r.publish(5)
    assert.deepEqual(r.delivered, [1])
    gate.open()
    await eventually(() => r.delivered.length === 6)
    assert.deepEqual(r.delivered, range(1, 6))
    assert.equal(r.source.reads, 1)
  })

  it('a second jump among the messages held during a repair is read from history too', async () => {
    const r = await rig()
    r.faults.set(2, 'drop')
    r.faults.set(5, 'drop')
    await r.publish(1)
    // 3 shows the first jump: its read is made at once (it finds 2 and 3) and answered once 4
    // and 6 have arrived; 6 shows the second jump (5).
    const answers = holdAnswers(r)
    await r.publish(5)
    assert.deepEqual(r.delivered, [1])
    answers.open()
    await settle()
    assert.deepEqual(r.delivered, range(1, 6))
    assert.deepEqual(r.source.calls, ['read 1', 'read 4'])
  })

  it('reordered messages: the late one is delivered from history, its live copy is ignored', async () => {
    const r = await rig()
    r.faults.set(3, 'hold')
    await r.publish(5)
    await eventually(() => r.delivered.length === 5)
    r.release()
    await settle()
    assert.deepEqual(r.delivered, range(1, 5))
  })

  it('a duplicated live message is handed on once', async () => {
    const r = await rig()
    r.faults.set(2, 'hold')
    await r.publish(3)
    // 2 was read from history when 3 showed the jump; it now arrives live, twice.
    await eventually(() => r.delivered.length === 3)
    const late = r.held[0]!
    r.history.receive(late)
    r.history.receive(late)
    await r.publish(1)
    assert.deepEqual(r.delivered, range(1, 4))
    await settle()
    assert.equal(r.source.reads, 1, 'the late copies are not a jump')
  })

  it('a live message that arrives twice in a row is handed on once, without a read', async () => {
    const r = await rig()
    r.faults.set(2, 'dup')
    await r.publish(3)
    assert.deepEqual(r.delivered, [1, 2, 3])
    await settle()
    assert.deepEqual(r.source.calls, [])
  })

  it('catchUp reads what was published while the subscription was away, live ones wait for it', async () => {
    const r = await rig()
    await r.publish(2)
    // The subscription is "away": 3..6 never arrive live, and nothing after them shows a jump.
    for (const o of range(3, 6)) r.faults.set(o, 'drop')
    await r.publish(4)
    assert.deepEqual(r.delivered, [1, 2])
    const gate = holdReads(r)
    r.history.catchUp()
    // 7 arrives live while the catch-up read is out: it waits, then follows 3..6.
    await r.publish(1)
    assert.deepEqual(r.delivered, [1, 2])
    gate.open()
    await eventually(() => r.delivered.length === 7)
    assert.deepEqual(r.delivered, range(1, 7))
    assert.equal(r.source.reads, 1)
    assert.deepEqual(r.lost, [])
  })

  it('catchUp reads what was missed, with no later live message to show it', async () => {
    const r = await rig()
    await r.publish(2)
    for (const o of range(3, 6)) r.faults.set(o, 'drop')
    await r.publish(4)
    r.history.catchUp()
    await settle()
    assert.deepEqual(r.delivered, range(1, 6))
    assert.deepEqual(r.source.calls, ['barrier', 'read 2'])
    assert.equal(r.history.reads, 1)
    assert.deepEqual(r.lost, [])
  })

  it('catchUp reads once the resubscription is in effect (the barrier): what is published meanwhile is in the read', async () => {
    const r = await rig()
    await r.publish(2)
    // Live messages are lost until the SUBSCRIBE is in effect, which the barrier waits for; 5
    // is published while it is on its way.
    for (const o of range(3, 5)) r.faults.set(o, 'drop')
    await r.publish(2)
    r.source.barrier = async () => {
      await r.publish(1)
      r.faults.clear()
    }
    r.history.catchUp()
    await settle()
    assert.deepEqual(r.delivered, range(1, 5))
    await r.publish(1)
    assert.deepEqual(r.delivered, range(1, 6))
    assert.equal(r.source.reads, 1)
  })

  it('a catchUp read that fails is reported; delivery goes on live', async () => {
    const r = await rig()
    await r.publish(2)
    r.faults.set(3, 'drop')
    await r.publish(1)
    const closed = new MemoryEngine()
    await closed.close()
    r.source.target = closed
    r.history.catchUp()
    await settle()
    assert.equal(r.errors.length, 1)
    assert.deepEqual(r.delivered, [1, 2])
    r.source.target = r.engine
    await r.publish(1) // 4 shows the jump: 3 is read then
    await settle()
    assert.deepEqual(r.delivered, range(1, 4))
  })

  it("catchUp after Redis lost its data, with nothing published since: lost() at the new epoch's start", async () => {
    const r = await rig()
    await r.publish(3)
    const redis = await freshRedis(r)
    r.history.catchUp()
    await settle()
    const epoch = await epochOf(redis.engine)
    assert.deepEqual(r.lost, [{ epoch, offset: 0 }])
    assert.deepEqual(r.history.position, { epoch, offset: 0 })
    await redis.publish('n1')
    assert.deepEqual(r.delivered, [1, 2, 3, 1])
    assert.deepEqual(r.payloads.slice(3), ['n1'])
  })

  it('catchUp does nothing before the channel is known, nor during a repair', async () => {
    const r = await rig()
    r.history.catchUp()
    await settle()
    assert.equal(r.source.reads, 0)
    await r.publish(1)
    r.faults.set(2, 'drop')
    const gate = holdReads(r)
    await r.publish(2) // 3 starts a repair
    r.history.catchUp()
    gate.open()
    await eventually(() => r.delivered.length === 3)
    assert.equal(r.source.reads, 1)
  })

  it('history trimmed past the gap: lost() once, then delivery goes on from what history has', async () => {
    const r = await rig({ size: 3, ttl: 60 })
    await r.publish(1)
    for (const o of range(2, 8)) r.faults.set(o, 'drop')
    await r.publish(8) // 2..8 dropped; history keeps 7..9 once 9 is published
    await eventually(() => r.delivered.length === 4)
    const epoch = r.history.position!.epoch
    assert.deepEqual(r.lost, [{ epoch, offset: 6 }])
    assert.deepEqual(r.delivered, [1, 7, 8, 9])
  })

  it('a new epoch (the history was lost): lost() with the new position, then its messages', async () => {
    const r = await rig()
    await r.publish(3)
    const old = r.history.position!
    // Redis lost its data: a fresh engine stands for it, with a new epoch from offset 1.
    const fresh = new MemoryEngine()
    engines.push(fresh)
    r.source.target = fresh
    const options = { size: 100, ttl: 60 }
    fresh.onMessage((_channel, raw) => {
      r.history.receive(decodeChannelMessage(raw) as Sequenced)
      return 1
    })
    await fresh.subscribe(CHANNEL)
    await fresh.publish(CHANNEL, Buffer.from('n1'), 0, options)
    await fresh.publish(CHANNEL, Buffer.from('n2'), 0, options)
    await eventually(() => r.delivered.length === 5)
    const now = r.history.position!
    assert.notEqual(now.epoch, old.epoch)
    assert.deepEqual(r.lost, [{ epoch: now.epoch, offset: 0 }])
    assert.deepEqual(r.delivered, [1, 2, 3, 1, 2])
    assert.deepEqual(r.payloads.slice(3), ['n1', 'n2'])
    // The read from 3 finds the other epoch; its messages are read from its start.
    assert.deepEqual(r.source.calls, ['read 3', 'read 0'])
    assert.equal(r.history.reads, 2)
  })

  it('a channel known at offset 0 whose history is lost: one read from its start', async () => {
    const r = await rig()
    // The channel has no message yet: a recovery makes its epoch known, at offset 0.
    const first = await r.history.recover(null, null)
    assert.equal(first.offset, 0)
    const redis = await freshRedis(r)
    await redis.publish('n1')
    await settle()
    assert.deepEqual(r.payloads, ['n1'])
    assert.deepEqual(r.lost, [{ epoch: await epochOf(redis.engine), offset: 0 }])
    assert.deepEqual(r.source.calls, ['read null', 'barrier', 'read 0'])
    assert.equal(r.history.reads, 2)
  })

  it('a failed read hands on what was held, gaps and all, and reports the error', async () => {
    const r = await rig()
    await r.publish(1)
    r.faults.set(2, 'drop')
    // The history cannot be read: the source is an engine that was closed.
    const closed = new MemoryEngine()
    await closed.close()
    r.source.target = closed
    await r.publish(2)
    await eventually(() => r.delivered.length === 2)
    assert.deepEqual(r.delivered, [1, 3])
    assert.equal(r.errors.length, 1)
    // Delivery goes on live.
    r.source.target = r.engine
    await r.publish(1)
    assert.deepEqual(r.delivered, [1, 3, 4])
  })

  it('a failed repair read: held messages go on but for those already handed on, and waiting recoveries are served', async () => {
    const r = await rig()
    await r.publish(1)
    const { epoch } = r.history.position!
    r.faults.set(2, 'drop')
    const reads = queueReads(r)
    await r.publish(2) // 3 starts a repair; its read is out
    // Meanwhile 3 arrives again (a duplicate), and a recovery asks.
    r.history.receive({ payload: Buffer.from('m3'), epoch, offset: 3 })
    const answer = r.history.recover(0, epoch)
    await reads.fail()
    assert.deepEqual(r.delivered, [1, 3])
    assert.equal(r.errors.length, 1)
    await reads.next() // the recovery's read
    const a = await answer
    assert.equal(a.recovered, true)
    assert.deepEqual(
      a.entries.map((e) => e.offset),
      [1, 2, 3],
    )
  })

  it("a failed read after a new epoch: its message is handed on, and the old epoch's kept messages answer no more", async () => {
    const r = await rig()
    await r.publish(3)
    const old = r.history.position!
    await r.history.recover(0, old.epoch) // 1..3 kept as the tail
    const redis = await freshRedis(r)
    const reads = queueReads(r)
    await redis.publish('n1') // another epoch: a repair, whose read fails
    await reads.fail()
    assert.equal(r.errors.length, 1)
    assert.deepEqual(r.payloads, ['m1', 'm2', 'm3', 'n1'])
    const now = r.history.position!
    assert.notEqual(now.epoch, old.epoch)
    assert.equal(now.offset, 1)
    await reads.drain()
    await redis.publish('n2')
    const a = await r.history.recover(0, now.epoch)
    assert.equal(a.recovered, true)
    assert.deepEqual(
      a.entries.map((e) => e.payload.toString()),
      ['n1', 'n2'],
    )
  })

  it('a late message of the old epoch, held during the repair of a new one, is left behind', async () => {
    const r = await rig()
    await r.publish(1)
    r.faults.set(2, 'hold') // 2, of the old epoch, is late
    await r.publish(1)
    const redis = await freshRedis(r)
    const gate = holdReads(r)
    await redis.publish('n1') // another epoch: a repair
    r.release() // 2 arrives meanwhile
    gate.open()
    await settle()
    assert.deepEqual(r.payloads, ['m1', 'n1'])
    assert.deepEqual(r.history.position, { epoch: await epochOf(redis.engine), offset: 1 })
  })

  it('a sink that closes the channel when told of a read error gets nothing more', async () => {
    const r = await rig()
    const delivered: number[] = []
    r.history = new ChannelHistory(CHANNEL, 'broadcast', { size: 100, ttl: 60 }, r.source, {
      deliver: (m) => delivered.push(m.offset),
      lost: () => {},
      error: () => r.history.close(),
    })
    await r.publish(1)
    r.faults.set(2, 'drop')
    const reads = queueReads(r)
    await r.publish(2) // 3 starts a repair
    await reads.fail()
    assert.deepEqual(delivered, [1])
  })

  it('close() during a repair: nothing more is handed on or reported, whether the read succeeds or fails', async () => {
    for (const outcome of ['next', 'fail'] as const) {
      const r = await rig()
      await r.publish(1)
      r.faults.set(2, 'drop')
      const reads = queueReads(r)
      await r.publish(2) // 3 starts a repair
      r.history.close()
      await reads[outcome]()
      assert.deepEqual(r.delivered, [1], outcome)
      assert.deepEqual(r.lost, [], outcome)
      assert.deepEqual(r.errors, [], outcome)
    }
  })

  it('close() stops delivery and rejects recoveries waiting for a read', async () => {
    const r = await rig()
    await r.publish(2)
    const gate = holdReads(r)
    // One recovery's read is out when the channel closes, another one waits for the next read.
    const reading = r.history.recover(0, r.history.position!.epoch)
    const waiting = r.history.recover(1, r.history.position!.epoch)
    const outcomes = Promise.allSettled([reading, waiting])
    r.history.close()
    gate.open()
    for (const o of await outcomes) {
      assert.equal(o.status, 'rejected')
      assert.match(String((o as PromiseRejectedResult).reason), /channel closed/)
    }
    await assert.rejects(r.history.recover(null, null), /channel closed/)
    await r.publish(1)
    assert.deepEqual(r.delivered, [1, 2])
  })
})

describe('ChannelHistory: recoveries', () => {
  it('a channel not seen yet: one read for its position, recovered only when a position was given', async () => {
    const r = await rig()
    await r.publish(3)
    // A new ChannelHistory on a channel with history but no live message yet.
    const fresh = new ChannelHistory(CHANNEL, 'broadcast', { size: 100, ttl: 60 }, r.source, {
      deliver: () => {},
      lost: () => {},
      error: () => {},
    })
    assert.equal(fresh.position, null)
    const before = r.source.reads
    const position = await fresh.recover(null, null)
    assert.equal(position.offset, 3)
    assert.equal(position.recovered, false)
    assert.deepEqual(position.entries, [])
    assert.equal(r.source.reads - before, 1)
    assert.deepEqual(r.source.calls, ['read null', 'barrier'], 'a read of the position only')
    assert.deepEqual(fresh.position, { epoch: position.epoch, offset: 3 })
    const missed = await fresh.recover(1, position.epoch)
    assert.equal(missed.recovered, true)
    assert.deepEqual(
      missed.entries.map((e) => [e.offset, e.payload.toString()]),
      [
        [2, 'm2'],
        [3, 'm3'],
      ],
    )
  })

  it('from memory: the current position, no read', async () => {
    const r = await rig()
    await r.publish(4)
    const { epoch } = r.history.position!
    const answer = await r.history.recover(4, epoch)
    assert.deepEqual(answer, { epoch, offset: 4, entries: [], recovered: true })
    // No position (`since` null): the position, whatever the epoch.
    for (const e of [null, epoch]) {
      const position = await r.history.recover(null, e)
      assert.deepEqual(position, { epoch, offset: 4, entries: [], recovered: false }, String(e))
    }
    assert.equal(r.source.reads, 0)
  })

  it('an older position: one read, then the kept tail answers the next ones (and follows live)', async () => {
    const r = await rig()
    await r.publish(10)
    const { epoch } = r.history.position!
    const first = await r.history.recover(4, epoch)
    assert.deepEqual(
      first.entries.map((e) => e.offset),
      range(5, 10),
    )
    assert.equal(r.source.reads, 1)
    await r.publish(2)
    const second = await r.history.recover(6, epoch)
    assert.equal(second.recovered, true)
    assert.deepEqual(
      second.entries.map((e) => e.offset),
      range(7, 12),
    )
    assert.equal(r.source.reads, 1, 'served from the tail')
    const again = await r.history.recover(4, epoch)
    assert.deepEqual(
      again.entries.map((e) => e.offset),
      range(5, 12),
    )
    assert.equal(r.source.reads, 1, 'from where the tail starts')
    const none = await r.history.recover(null, epoch)
    assert.deepEqual(none, { epoch, offset: 12, entries: [], recovered: false })
    // Further back than the tail: one read, whose entries are then the tail.
    const older = await r.history.recover(2, epoch)
    assert.deepEqual(
      older.entries.map((e) => e.offset),
      range(3, 12),
    )
    assert.equal(r.source.reads, 2)
    const next = await r.history.recover(3, epoch)
    assert.deepEqual(
      next.entries.map((e) => e.offset),
      range(4, 12),
    )
    assert.equal(r.source.reads, 2, 'the tail reaches back to 2 now')
  })

  it('the kept tail holds `size` messages: where it starts moves on as live ones come', async () => {
    const r = await rig({ size: 5, ttl: 60 })
    await r.publish(10)
    const { epoch } = r.history.position!
    await r.history.recover(7, epoch) // one read: 8..10 kept
    await r.publish(4) // 11..14: the tail keeps the last 5
    const kept = await r.history.recover(9, epoch)
    assert.deepEqual(
      kept.entries.map((e) => e.offset),
      range(10, 14),
    )
    assert.equal(r.source.reads, 1, 'from the tail')
    const before = await r.history.recover(8, epoch)
    assert.equal(r.source.reads, 2, 'before the tail: read')
    assert.equal(before.recovered, false, 'history keeps 10..14 too')
  })

  it('the tail is dropped once no recovery used it for more than 30 s, and kept again by the next read', async (t) => {
    t.mock.timers.enable({ apis: ['Date'], now: 1_000_000 })
    const r = await rig()
    await r.publish(10)
    const { epoch } = r.history.position!
    await r.history.recover(4, epoch) // 5..10 kept, used now
    t.mock.timers.tick(30_000)
    await r.publish(1) // 30 s without a recovery: still kept
    const kept = await r.history.recover(6, epoch)
    assert.deepEqual(
      kept.entries.map((e) => e.offset),
      range(7, 11),
    )
    assert.equal(r.source.reads, 1)
    t.mock.timers.tick(30_001)
    await r.publish(1) // more than 30 s since that recovery: dropped
    const read = await r.history.recover(6, epoch)
    assert.deepEqual(
      read.entries.map((e) => e.offset),
      range(7, 12),
    )
    assert.equal(r.source.reads, 2)
    const again = await r.history.recover(8, epoch)
    assert.deepEqual(
      again.entries.map((e) => e.offset),
      range(9, 12),
    )
    assert.equal(r.source.reads, 2, 'that read is the tail now')
  })

  it('one read asks for a bounded number of entries: a position further back is not recovered, nor kept', async () => {
    // Redis's `MAXLEN ~` keeps somewhat more than `size`: here history holds 150 messages for a
    // size of 20, more than one read asks for.
    const r = await rig({ size: 20, ttl: 60 }, 150)
    await r.publish(150)
    const { epoch } = r.history.position!
    const far = await r.history.recover(0, epoch)
    assert.deepEqual(
      { ...far, entries: far.entries.length },
      { epoch, offset: 150, entries: 0, recovered: false },
    )
    const near = await r.history.recover(30, epoch)
    assert.equal(near.recovered, true)
    assert.deepEqual(
      near.entries.map((e) => e.offset),
      range(31, 150),
    )
    assert.equal(r.source.reads, 2)
  })

  it('recoveries that arrive while a read is out share it', async () => {
    const r = await rig()
    await r.publish(20)
    const { epoch } = r.history.position!
    const gate = holdReads(r)
    const answers = Promise.all(
      Array.from({ length: 50 }, (_, i) => r.history.recover(i % 10, epoch)),
    )
    gate.open()
    const all = await answers
    assert.equal(r.source.reads, 1, "the first read's entries, kept as the tail, answer the rest")
    all.forEach((a, i) => {
      assert.equal(a.recovered, true)
      assert.deepEqual(
        a.entries.map((e) => e.offset),
        range((i % 10) + 1, 20),
      )
    })
  })

  it('recoveries that wait for a repair share one read, each answered from its own position', async () => {
    const r = await rig()
    await r.publish(20)
    const { epoch } = r.history.position!
    r.faults.set(21, 'drop')
    const gate = holdReads(r)
    await r.publish(2) // 22 starts a repair
    const answers = Promise.all(
      Array.from({ length: 50 }, (_, i) => r.history.recover(i % 10, epoch)),
    )
    gate.open()
    const all = await answers
    assert.deepEqual(r.source.calls, ['read 20', 'read 0'])
    all.forEach((a, i) => {
      assert.equal(a.recovered, true)
      assert.deepEqual(
        a.entries.map((e) => e.offset),
        range((i % 10) + 1, 22),
      )
    })
  })

  it('another epoch, an offset beyond the top, a trimmed position: recovered:false', async () => {
    const r = await rig({ size: 5, ttl: 60 })
    await r.publish(12)
    const { epoch } = r.history.position!
    // Another epoch is answered from memory, whatever the offset; the others need a read.
    for (const [since, e, reads] of [
      [3, 'not-this-epoch', 0],
      [12, 'not-this-epoch', 0],
      [20, 'not-this-epoch', 0],
      [13, epoch, 1],
      [2, epoch, 1],
    ] as const) {
      const before = r.source.reads
      const a = await r.history.recover(since, e)
      assert.deepEqual(
        { ...a, entries: a.entries.length },
        { epoch, offset: 12, entries: 0, recovered: false },
        `since ${since} of ${e}`,
      )
      assert.equal(r.source.reads - before, reads, `since ${since} of ${e}: reads`)
    }
  })

  it('a position this process has not handed on yet (its live copy is late) is recovered from history', async () => {
    const r = await rig()
    await r.publish(3)
    const { epoch } = r.history.position!
    // Message 4 reached another process (and the client, there); here it is still on its way.
    r.faults.set(4, 'hold')
    await r.publish(1)
    assert.deepEqual(r.delivered, [1, 2, 3])
    const answer = await r.history.recover(4, epoch)
    assert.deepEqual(answer, { epoch, offset: 4, entries: [], recovered: true })
    const older = await r.history.recover(2, epoch)
    assert.equal(older.recovered, true)
    assert.deepEqual(
      older.entries.map((e) => e.offset),
      [3, 4],
    )
    r.release()
    await settle()
    assert.deepEqual(r.delivered, [1, 2, 3, 4])
  })

  it('a position ahead of this process, with a tail kept: read from history, and the tail stays', async () => {
    const r = await rig()
    await r.publish(10)
    const { epoch } = r.history.position!
    await r.history.recover(4, epoch) // 5..10 kept
    r.faults.set(11, 'hold')
    await r.publish(1)
    r.source.barrier = async () => r.release()
    const ahead = await r.history.recover(11, epoch)
    assert.deepEqual(ahead, { epoch, offset: 11, entries: [], recovered: true })
    assert.deepEqual(r.delivered, range(1, 11))
    const older = await r.history.recover(5, epoch)
    assert.deepEqual(
      older.entries.map((e) => e.offset),
      range(6, 11),
    )
    assert.equal(r.source.reads, 2, 'the tail answered')
  })

  it('first sight: answers from the read, recovered only from a position of its epoch', async () => {
    const r = await rig()
    // An empty channel: its epoch is made by the first read, at offset 0.
    const epoch = await epochOf(r.engine)
    for (const e of [null, epoch]) {
      const a = await unseen(r).recover(null, e)
      assert.deepEqual(a, { epoch, offset: 0, entries: [], recovered: false }, `empty, of ${e}`)
    }
    await r.publish(3)
    for (const [since, e, entries] of [
      [null, epoch, null],
      [1, 'not-this-epoch', null],
      [1, epoch, [2, 3]],
      [0, epoch, [1, 2, 3]],
    ] as const) {
      const a = await unseen(r).recover(since, e)
      assert.deepEqual(
        { ...a, entries: a.entries.map((x) => x.offset) },
        { epoch, offset: 3, entries: entries ?? [], recovered: entries !== null },
        `since ${since} of ${e}`,
      )
    }
  })

  it('first sight, from a position: the read is kept as the tail (a message in flight up to its top)', async () => {
    const r = await rig()
    for (const o of [1, 2]) r.faults.set(o, 'drop') // published before this process subscribed
    r.faults.set(3, 'hold') // on its way
    await r.publish(3)
    const epoch = await epochOf(r.engine)
    r.source.barrier = async () => r.release()
    const first = await r.history.recover(1, epoch)
    assert.deepEqual(
      first.entries.map((e) => e.offset),
      [2, 3],
    )
    assert.deepEqual(r.delivered, [3])
    assert.deepEqual(r.history.position, { epoch, offset: 3 })
    await r.publish(1)
    const next = await r.history.recover(2, epoch)
    assert.deepEqual(
      next.entries.map((e) => e.offset),
      [3, 4],
    )
    assert.equal(r.source.reads, 1, 'the tail answered')
  })

  it('first sight: a message published after the read, handed on before its answer, is not missing later', async () => {
    const r = await rig()
    for (const o of range(1, 3)) r.faults.set(o, 'drop') // before this process subscribed
    await r.publish(3)
    r.faults.clear()
    const epoch = await epochOf(r.engine)
    r.source.barrier = async () => r.publish(1) // 4
    const first = await r.history.recover(1, epoch)
    assert.deepEqual(
      { ...first, entries: first.entries.map((e) => e.offset) },
      { epoch, offset: 3, entries: [2, 3], recovered: true },
    )
    assert.deepEqual(r.history.position, { epoch, offset: 4 })
    const next = await r.history.recover(2, epoch)
    assert.deepEqual(
      next.entries.map((e) => e.offset),
      [3, 4],
    )
  })

  it('first sight: a new epoch seen live while the first read is out is where delivery stands', async () => {
    const r = await rig()
    for (const o of [1, 2]) r.faults.set(o, 'drop') // before this process subscribed
    await r.publish(2)
    const epoch = await epochOf(r.engine)
    // After the read, Redis loses its data, and the new epoch's first message arrives.
    let redis: Awaited<ReturnType<typeof freshRedis>> | undefined
    r.source.barrier = async () => {
      redis = await freshRedis(r)
      await redis.publish('n1')
    }
    const answer = await r.history.recover(1, epoch)
    assert.deepEqual(
      { ...answer, entries: answer.entries.map((e) => e.offset) },
      { epoch, offset: 2, entries: [2], recovered: true },
    )
    const now = await epochOf(redis!.engine)
    assert.deepEqual(r.history.position, { epoch: now, offset: 1 })
    await redis!.publish('n2')
    assert.deepEqual(r.payloads, ['n1', 'n2'])
    assert.deepEqual(r.source.calls, ['read 1'])
  })

  it('first sight, position only: nothing is kept for later recoveries', async () => {
    const r = await rig()
    for (const o of range(1, 3)) r.faults.set(o, 'drop') // before this process subscribed
    await r.publish(3)
    r.faults.clear()
    const position = await r.history.recover(null, null)
    const { epoch } = position
    assert.deepEqual(position, { epoch, offset: 3, entries: [], recovered: false })
    await r.publish(2)
    const a = await r.history.recover(3, epoch)
    assert.deepEqual(
      a.entries.map((e) => e.offset),
      [4, 5],
    )
    assert.deepEqual(r.source.calls, ['read null', 'barrier', 'read 3'])
  })

  it('a failed read rejects every recovery it was for; those that came meanwhile get the next read', async () => {
    const r = await rig()
    for (const o of range(1, 5)) r.faults.set(o, 'drop') // before this process subscribed
    await r.publish(5)
    r.faults.clear()
    const epoch = await epochOf(r.engine)
    const reads = queueReads(r)
    const settled: string[] = []
    const recover = (name: string, since: number | null, e: string | null) => {
      const p = r.history.recover(since, e)
      p.then(
        () => settled.push(`${name} answered`),
        () => settled.push(`${name} failed`),
      )
      return p
    }
    void recover('a', null, null)
    await reads.fail()
    assert.deepEqual(settled, ['a failed'])
    assert.equal(reads.out, 0, 'no read with no recovery waiting')
    void recover('b', null, null)
    // c and d wait for the next read, from the oldest position asked (3).
    void recover('c', null, null)
    void recover('d', 3, epoch)
    await reads.fail() // b's read
    assert.deepEqual(settled, ['a failed', 'b failed'])
    const e = recover('e', 2, epoch) // comes while c and d's read is out
    await reads.fail() // c and d's read
    assert.deepEqual(settled, ['a failed', 'b failed', 'c failed', 'd failed'])
    await reads.next() // e's read
    const answer = await e
    assert.deepEqual(
      answer.entries.map((x) => x.offset),
      [3, 4, 5],
    )
    assert.deepEqual(r.source.calls, ['read null', 'read null', 'read 3', 'read 2', 'barrier'])
  })
})

describe('ChannelHistory: answers and live delivery', () => {
  it('an answer read from history comes once every message up to its top was handed on (barrier)', async () => {
    const r = await rig()
    await r.publish(3)
    const { epoch } = r.history.position!
    // 4 and 5 are on their way (held back); the barrier is what lets in-flight messages through.
    r.faults.set(4, 'hold')
    r.faults.set(5, 'hold')
    await r.publish(2)
    let barriers = 0
    r.source.barrier = async () => {
      barriers++
      r.release()
    }
    const answer = await r.history.recover(1, epoch)
    assert.deepEqual(
      answer.entries.map((e) => e.offset),
      [2, 3, 4, 5],
    )
    // Handed on before the answer: a connection that upgrades holds them and skips them.
    assert.deepEqual(r.delivered, [1, 2, 3, 4, 5])
    assert.equal(barriers, 1)
  })

  it('no barrier when the read is not ahead of what was handed on', async () => {
    const r = await rig()
    await r.publish(5)
    const { epoch } = r.history.position!
    let barriers = 0
    r.source.barrier = async () => void barriers++
    const answer = await r.history.recover(1, epoch)
    assert.equal(answer.entries.length, 4)
    assert.equal(barriers, 0)
  })

  it("an answer read from another epoch comes once that epoch's messages were handed on (barrier)", async () => {
    const r = await rig()
    await r.publish(3)
    const old = r.history.position!
    const redis = await freshRedis(r, 'hold')
    await redis.publish('n1', 'n2') // on their way
    r.source.barrier = async () => redis.release()
    const answer = await r.history.recover(1, old.epoch)
    const epoch = await epochOf(redis.engine)
    assert.deepEqual(answer, { epoch, offset: 2, entries: [], recovered: false })
    assert.deepEqual(r.payloads, ['m1', 'm2', 'm3', 'n1', 'n2'])
    assert.deepEqual(r.lost, [{ epoch, offset: 0 }])
  })

  it('a recovery read that finds another epoch keeps nothing to answer the old one with', async () => {
    const r = await rig()
    await r.publish(2)
    const old = r.history.position!
    const redis = await freshRedis(r, 'drop') // its live messages never arrive here
    await redis.publish('n1', 'n2')
    const epoch = await epochOf(redis.engine)
    for (let i = 0; i < 2; i++) {
      const a = await r.history.recover(1, old.epoch)
      assert.deepEqual(
        { ...a, entries: a.entries.length },
        { epoch, offset: 2, entries: 0, recovered: false },
      )
    }
    assert.equal(r.source.reads, 2)
  })

  it('a message handed on between a recovery read and its answer is not missing from later answers', async () => {
    const r = await rig()
    await r.publish(5)
    const { epoch } = r.history.position!
    // 6 is published just after the read and handed on before its answer.
    const read = r.source.readHistory
    r.source.readHistory = async function (channel, since, limit) {
      r.source.readHistory = read
      const answer = await read.call(this, channel, since, limit)
      await r.publish(1)
      return answer
    }
    const first = await r.history.recover(1, epoch)
    assert.deepEqual(
      { ...first, entries: first.entries.map((e) => e.offset) },
      { epoch, offset: 5, entries: [2, 3, 4, 5], recovered: true },
    )
    assert.deepEqual(r.delivered, range(1, 6))
    const next = await r.history.recover(2, epoch)
    assert.deepEqual(
      next.entries.map((e) => e.offset),
      range(3, 6),
    )
  })

  it('an answer whose top is held by a repair waits for the repair', async () => {
    const r = await rig()
    await r.publish(2)
    const { epoch } = r.history.position!
    r.faults.set(3, 'drop')
    r.faults.set(5, 'hold')
    const reads = queueReads(r)
    // The recovery's read goes out first; then 4 shows a jump and a repair starts; 5 is in
    // flight until the barrier.
    let deliveredAtAnswer: number[] | null = null
    const answer = r.history.recover(1, epoch).then((a) => {
      deliveredAtAnswer = [...r.delivered]
      return a
    })
    await r.publish(3)
    r.source.barrier = async () => r.release()
    await reads.next() // the recovery's read: its top (5) is held by the repair
    await settle()
    assert.equal(deliveredAtAnswer, null, 'not answered while the repair holds its top')
    await reads.next() // the repair's read
    await reads.drain()
    const a = await answer
    assert.equal(a.recovered, true)
    assert.deepEqual(
      a.entries.map((e) => e.offset),
      [2, 3, 4, 5],
    )
    assert.deepEqual(deliveredAtAnswer, [1, 2, 3, 4, 5], 'the repair was done before the answer')
  })
})

/** Holds the source's reads until `open()`: recoveries and repairs wait meanwhile. */
function holdReads(r: Rig): { open(): void } {
  const read = r.source.readHistory
  let release!: () => void
  const gate = new Promise<void>((resolve) => (release = resolve))
  r.source.readHistory = async function (channel, since, limit) {
    await gate
    return read.call(this, channel, since, limit)
  }
  return {
    open() {
      r.source.readHistory = read
      release()
    },
  }
}

/** Holds the answers of the source's reads until `open()`: each read is made at once (it sees
 * what is published up to then), and answered once opened. */
function holdAnswers(r: Rig): { open(): void } {
  const read = r.source.readHistory
  let release!: () => void
  const gate = new Promise<void>((resolve) => (release = resolve))
  r.source.readHistory = async function (channel, since, limit) {
    const answer = await read.call(this, channel, since, limit)
    await gate
    return answer
  }
  return {
    open() {
      r.source.readHistory = read
      release()
    },
  }
}

/**
 * Queues the source's reads: each waits until `next()` lets the oldest one through, or `fail()`
 * makes it a read of an engine that was closed (Redis cannot be read). Both first let pending
 * work finish, and fail when no read is out.
 */
function queueReads(r: Rig): {
  next(): Promise<void>
  fail(): Promise<void>
  drain(): Promise<void>
  /** Reads waiting in the queue. */
  readonly out: number
} {
  const read = r.source.readHistory
  const closed = new MemoryEngine()
  void closed.close()
  const queue: ((fail: boolean) => void)[] = []
  let open = false
  r.source.readHistory = async function (channel, since, limit) {
    const fail = open ? false : await new Promise<boolean>((resolve) => queue.push(resolve))
    if (!fail) return read.call(this, channel, since, limit)
    const target = this.target
    this.target = closed
    try {
      return read.call(this, channel, since, limit)
    } finally {
      this.target = target
    }
  }
  const release = async (fail: boolean): Promise<void> => {
    await settle()
    const oldest = queue.shift()
    assert.ok(oldest, 'a read is out')
    oldest(fail)
    await settle()
  }
  return {
    next: () => release(false),
    fail: () => release(true),
    async drain() {
      open = true
      r.source.readHistory = read
      for (const oldest of queue.splice(0)) oldest(false)
      await settle()
    },
    get out() {
      return queue.length
    },
  }
}

describe('ChannelHistory: Redis gone back to an older snapshot', () => {
  it('a jump that history cannot fill is told lost once, after one read, and delivery goes on', async () => {
    const r = await rig()
    await r.publish(3)
    assert.deepEqual(r.delivered, [1, 2, 3])
    // From now on the source answers as a Redis restarted from a snapshot taken at offset 3
    // (same epoch): 4 and 5 were never kept, and 6 arrives live.
    const real = r.source.readHistory.bind(r.source)
    r.source.readHistory = async (channel, since, limit) => {
      const read = await real(channel, since, limit)
      return { ...read, offset: 3, entries: read.entries.filter((e) => e.offset <= 3) }
    }
    r.faults.set(4, 'drop')
    r.faults.set(5, 'drop')
    const readsBefore = r.source.reads
    await r.publish(3)
    await eventually(() => r.delivered.at(-1) === 6)
    assert.deepEqual(r.delivered, [1, 2, 3, 6])
    assert.equal(r.source.reads - readsBefore, 1)
    assert.deepEqual(
      r.lost.map((p) => p.offset),
      [5],
    )
    await r.publish()
    await settle()
    assert.deepEqual(r.delivered, [1, 2, 3, 6, 7])
  })
})
