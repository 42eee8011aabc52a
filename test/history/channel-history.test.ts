// ChannelHistory over a real MemoryEngine: live messages go from the engine's publish to
// receive() through a fault injector that can drop, hold back or duplicate them.
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
type Fault = 'pass' | 'drop' | 'hold'

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
  /** The source ChannelHistory reads from (counts reads, can be pointed elsewhere). */
  source: HistorySource & { target: MemoryEngine; reads: number }
}

const engines: MemoryEngine[] = []
afterEach(async () => {
  await Promise.all(engines.splice(0).map((e) => e.close()))
})

async function rig(options: HistoryOptions = { size: 100, ttl: 60 }): Promise<Rig> {
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
    readHistory(channel, since, limit) {
      this.reads++
      return this.target.readHistory(channel, since, limit)
    },
    barrier() {
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
    else if (fault === 'pass') r.history.receive(m as Sequenced)
    return 1
  })
  await engine.subscribe(CHANNEL)
  r.publish = async (count = 1) => {
    for (let i = 0; i < count; i++) {
      top++
      await engine.publish(CHANNEL, Buffer.from(`m${top}`), 0, options)
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
    const before = r.source.reads
    const position = await fresh.recover(null, null)
    assert.equal(position.offset, 3)
    assert.equal(position.recovered, false)
    assert.deepEqual(position.entries, [])
    assert.equal(r.source.reads - before, 1)
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
    assert.ok(r.source.reads <= 2, `${r.source.reads} reads for 50 recoveries`)
    all.forEach((a, i) => {
      assert.equal(a.recovered, true)
      assert.deepEqual(
        a.entries.map((e) => e.offset),
        range((i % 10) + 1, 20),
      )
    })
  })

  it('another epoch, an offset beyond the top, a trimmed position: recovered:false', async () => {
    const r = await rig({ size: 5, ttl: 60 })
    await r.publish(12)
    const { epoch } = r.history.position!
    for (const [since, e] of [
      [3, 'not-this-epoch'],
      [13, epoch],
      [2, epoch],
    ] as const) {
      const a = await r.history.recover(since, e)
      assert.deepEqual(
        { ...a, entries: a.entries.length },
        { epoch, offset: 12, entries: 0, recovered: false },
        `since ${since} of ${e}`,
      )
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

/** Queues the source's reads: each waits until `next()` lets the oldest one through. */
function queueReads(r: Rig): { next(): Promise<void>; drain(): Promise<void> } {
  const read = r.source.readHistory
  const queue: (() => void)[] = []
  const arrived: (() => void)[] = []
  let open = false
  r.source.readHistory = async function (channel, since, limit) {
    if (!open) {
      await new Promise<void>((resolve) => {
        queue.push(resolve)
        for (const a of arrived.splice(0)) a()
      })
    }
    return read.call(this, channel, since, limit)
  }
  const waitForOne = (): Promise<void> =>
    queue.length > 0 ? Promise.resolve() : new Promise((resolve) => arrived.push(resolve))
  return {
    async next() {
      await waitForOne()
      queue.shift()!()
      await settle()
    },
    async drain() {
      open = true
      r.source.readHistory = read
      for (const release of queue.splice(0)) release()
      await settle()
    },
  }
}
