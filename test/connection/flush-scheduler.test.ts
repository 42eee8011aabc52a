import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { type Flushable, FlushScheduler } from '../../src/connection/flush-scheduler.js'

/** Counts its flushes; `during` runs inside each. */
class Item implements Flushable {
  flushes = 0
  constructor(readonly during: () => void = () => {}) {}
  flush(): void {
    this.flushes++
    this.during()
  }
}

/** An item whose flush throws. */
const throwing = (): Item =>
  new Item(() => {
    throw new Error('boom')
  })

/** The immediates `fn` queues, captured instead of queued, to run by hand. */
function captureImmediates(fn: () => void): (() => void)[] {
  const captured: (() => void)[] = []
  const original = globalThis.setImmediate
  globalThis.setImmediate = ((task: () => void) => {
    captured.push(task)
  }) as unknown as typeof setImmediate
  try {
    fn()
  } finally {
    globalThis.setImmediate = original
  }
  return captured
}

/** A timer `fn` set, captured instead of set: its task, its delay, and whether it was unref'd. */
interface CapturedTimer {
  task: () => void
  delay: number
  unrefd: boolean
}

/** The timeouts `fn` sets, captured instead of set, to run by hand. */
function captureTimeouts(fn: () => void): CapturedTimer[] {
  const captured: CapturedTimer[] = []
  const original = globalThis.setTimeout
  globalThis.setTimeout = ((task: () => void, delay: number) => {
    const timer: CapturedTimer = { task, delay, unrefd: false }
    captured.push(timer)
    return { unref: () => ((timer.unrefd = true), timer) }
  }) as unknown as typeof setTimeout
  try {
    fn()
  } finally {
    globalThis.setTimeout = original
  }
  return captured
}

/** Ends the current turn: immediates queued so far have run (and the microtasks they queue). */
const nextTurn = (): Promise<void> => new Promise((r) => setImmediate(r))

describe('FlushScheduler', () => {
  it('flushes nothing before the end of the turn', async () => {
    const scheduler = new FlushScheduler()
    const item = new Item()
    scheduler.schedule(item)
    assert.equal(item.flushes, 0)
    await nextTurn()
    assert.equal(item.flushes, 1)
  })

  it('flushes once the I/O callbacks of the loop phase are done, not after each one', async () => {
    // Each read of a socket (the Redis subscriber's, say) is a callback of its own, with the
    // microtasks run between them: a flush after each would write a socket once per read.
    const scheduler = new FlushScheduler()
    const item = new Item()
    const seen: number[] = []
    setImmediate(() => {
      scheduler.schedule(item)
      queueMicrotask(() => seen.push(item.flushes))
    })
    setImmediate(() => {
      seen.push(item.flushes)
      scheduler.schedule(item)
    })
    await nextTurn() // both callbacks have run; the flush they asked for is the next turn's
    await nextTurn()
    assert.deepEqual(seen, [0, 0], 'not flushed between the callbacks')
    assert.equal(item.flushes, 1, 'flushed once after them')
  })

  it('queues one run per turn however many items are scheduled', () => {
    const scheduler = new FlushScheduler()
    const runs = captureImmediates(() => {
      scheduler.schedule(new Item())
      scheduler.schedule(new Item())
      scheduler.schedule(new Item())
    })
    assert.equal(runs.length, 1)
  })

  it('flushes each item once per turn however often it was scheduled', async () => {
    const scheduler = new FlushScheduler()
    const a = new Item()
    const b = new Item()
    for (let i = 0; i < 5; i++) {
      scheduler.schedule(a)
      scheduler.schedule(b)
    }
    await nextTurn()
    assert.deepEqual([a.flushes, b.flushes], [1, 1])
    await nextTurn()
    assert.deepEqual([a.flushes, b.flushes], [1, 1], 'nothing scheduled: nothing flushed')
  })

  it('flushes again in a later turn when scheduled again', async () => {
    const scheduler = new FlushScheduler()
    const a = new Item()
    scheduler.schedule(a)
    await nextTurn()
    scheduler.schedule(a)
    scheduler.schedule(a)
    await nextTurn()
    assert.equal(a.flushes, 2)
  })

  it('flushes an item scheduled during a flush in a run of its own', async () => {
    const scheduler = new FlushScheduler()
    const late = new Item()
    const order: string[] = []
    const first = new Item(() => {
      order.push('first')
      scheduler.schedule(late)
    })
    scheduler.schedule(first)
    await nextTurn()
    assert.equal(first.flushes, 1)
    assert.equal(late.flushes, 0, 'not in the run that scheduled it')
    await nextTurn()
    assert.equal(late.flushes, 1)
    assert.deepEqual(order, ['first'])
  })

  it('is not stuck after a flush threw: the next schedule runs again', () => {
    const scheduler = new FlushScheduler()
    const runs = captureImmediates(() => {
      scheduler.schedule(throwing())
    })
    assert.equal(runs.length, 1)
    assert.throws(() => runs[0]!(), /boom/)
    const next = new Item()
    const again = captureImmediates(() => scheduler.schedule(next))
    assert.equal(again.length, 1, 'a new run is queued')
    again[0]!()
    assert.equal(next.flushes, 1)
  })

  it('lets the items a throwing flush left unflushed be scheduled again', () => {
    const scheduler = new FlushScheduler()
    const left = new Item()
    const runs = captureImmediates(() => {
      scheduler.schedule(throwing())
      scheduler.schedule(left)
    })
    assert.throws(() => runs[0]!(), /boom/)
    assert.equal(left.flushes, 0)
    const again = captureImmediates(() => scheduler.schedule(left))
    assert.equal(again.length, 1)
    again[0]!()
    assert.equal(left.flushes, 1)
  })

  describe('with a write delay', () => {
    it("flushes at the end of the window, not of the turn, on an unref'd timer", async () => {
      const scheduler = new FlushScheduler()
      const item = new Item()
      const timers = captureTimeouts(() => scheduler.schedule(item, 40))
      assert.equal(timers.length, 1)
      assert.equal(timers[0]!.delay, 40)
      assert.equal(timers[0]!.unrefd, true, 'a pending write does not hold the process up')
      await nextTurn()
      assert.equal(item.flushes, 0, 'still waiting at the end of the turn')
      timers[0]!.task()
      assert.equal(item.flushes, 1)
    })

    it('collects what is scheduled in later turns into the same window: one timer, one flush', async () => {
      const scheduler = new FlushScheduler()
      const a = new Item()
      const b = new Item()
      const first = captureTimeouts(() => scheduler.schedule(a, 40))
      await nextTurn()
      const later = captureTimeouts(() => {
        scheduler.schedule(a, 40)
        scheduler.schedule(b, 40)
      })
      assert.equal(later.length, 0, 'the window is already open')
      first[0]!.task()
      assert.deepEqual([a.flushes, b.flushes], [1, 1])
    })

    it('opens a new window once the last one was flushed', () => {
      const scheduler = new FlushScheduler()
      const a = new Item()
      const first = captureTimeouts(() => scheduler.schedule(a, 40))
      first[0]!.task()
      const second = captureTimeouts(() => scheduler.schedule(a, 40))
      assert.equal(second.length, 1)
      second[0]!.task()
      assert.equal(a.flushes, 2)
    })

    it('keeps a window per delay, and the turn apart from them', async () => {
      const scheduler = new FlushScheduler()
      const now = new Item()
      const short = new Item()
      const long = new Item()
      const timers = captureTimeouts(() => {
        scheduler.schedule(short, 20)
        scheduler.schedule(long, 200)
        scheduler.schedule(now)
        scheduler.schedule(short, 20)
      })
      assert.deepEqual(
        timers.map((t) => t.delay),
        [20, 200],
      )
      await nextTurn()
      assert.deepEqual([now.flushes, short.flushes, long.flushes], [1, 0, 0])
      timers[0]!.task()
      assert.deepEqual([now.flushes, short.flushes, long.flushes], [1, 1, 0])
      timers[1]!.task()
      assert.deepEqual([now.flushes, short.flushes, long.flushes], [1, 1, 1])
    })

    it("flushes an item scheduled during a window's flush in the next window", () => {
      const scheduler = new FlushScheduler()
      const late = new Item()
      let next: CapturedTimer[] = []
      const first = new Item(() => (next = captureTimeouts(() => scheduler.schedule(late, 40))))
      const timers = captureTimeouts(() => scheduler.schedule(first, 40))
      timers[0]!.task()
      assert.equal(late.flushes, 0)
      assert.equal(next.length, 1, 'a window of its own')
      next[0]!.task()
      assert.equal(late.flushes, 1)
    })

    it('lets the items a throwing flush left in a window be scheduled again', () => {
      const scheduler = new FlushScheduler()
      const left = new Item()
      const timers = captureTimeouts(() => {
        scheduler.schedule(throwing(), 40)
        scheduler.schedule(left, 40)
      })
      assert.throws(() => timers[0]!.task(), /boom/)
      const again = captureTimeouts(() => scheduler.schedule(left, 40))
      assert.equal(again.length, 1)
      again[0]!.task()
      assert.equal(left.flushes, 1)
    })

    it('reuses a join across the recipients of one window, and forgets it after', () => {
      const scheduler = new FlushScheduler()
      const parts = [Buffer.from('a'), Buffer.from('b')]
      const joins: Buffer[] = []
      const items = [0, 1].map(() => new Item(() => joins.push(scheduler.joined(parts))))
      const timers = captureTimeouts(() => items.forEach((item) => scheduler.schedule(item, 40)))
      timers[0]!.task()
      assert.equal(joins[1], joins[0])
      assert.notEqual(scheduler.joined(parts), joins[0])
    })
  })

  describe('joined', () => {
    it('concatenates the frames in order', () => {
      const scheduler = new FlushScheduler()
      const out = scheduler.joined([Buffer.from('ab'), Buffer.from('c'), Buffer.from('de')])
      assert.equal(out.toString(), 'abcde')
    })

    it('reuses the join of the same frame list within a flush', async () => {
      const scheduler = new FlushScheduler()
      const f1 = Buffer.from('one')
      const f2 = Buffer.from('two')
      const joins: Buffer[] = []
      const items = [0, 1, 2].map(() => new Item(() => joins.push(scheduler.joined([f1, f2]))))
      for (const item of items) scheduler.schedule(item)
      await nextTurn()
      assert.equal(joins.length, 3)
      assert.equal(joins[0]!.toString(), 'onetwo')
      assert.equal(joins[1], joins[0], 'the very same buffer, not a copy')
      assert.equal(joins[2], joins[0])
    })

    it('reuses a join for an equal list of the same buffers, not only the same array', () => {
      const scheduler = new FlushScheduler()
      const f1 = Buffer.from('a')
      const f2 = Buffer.from('b')
      const first = scheduler.joined([f1, f2])
      assert.equal(scheduler.joined([f1, f2]), first)
    })

    it('joins afresh when a frame differs, even with equal bytes', () => {
      const scheduler = new FlushScheduler()
      const f1 = Buffer.from('a')
      const first = scheduler.joined([f1, Buffer.from('b')])
      const second = scheduler.joined([f1, Buffer.from('b')])
      assert.notEqual(second, first)
      assert.equal(second.toString(), 'ab')
    })

    it('joins afresh when the first frame differs', () => {
      const scheduler = new FlushScheduler()
      const f2 = Buffer.from('b')
      const first = scheduler.joined([Buffer.from('a'), f2])
      const second = scheduler.joined([Buffer.from('x'), f2])
      assert.notEqual(second, first)
      assert.equal(second.toString(), 'xb')
    })

    it('joins afresh when the list is longer or shorter', () => {
      const scheduler = new FlushScheduler()
      const f1 = Buffer.from('a')
      const f2 = Buffer.from('b')
      const two = scheduler.joined([f1, f2])
      const three = scheduler.joined([f1, f2, f1])
      assert.equal(three.toString(), 'aba')
      const one = scheduler.joined([f1, f2])
      assert.notEqual(one, two, 'the previous join was of three frames')
      assert.equal(one.toString(), 'ab', 'not the longer join it is a prefix of')
      assert.equal(scheduler.joined([f1]).toString(), 'a')
    })

    it('forgets the last join at the end of each flush', async () => {
      const scheduler = new FlushScheduler()
      const f1 = Buffer.from('a')
      const f2 = Buffer.from('b')
      const joins: Buffer[] = []
      const item = new Item(() => joins.push(scheduler.joined([f1, f2])))
      scheduler.schedule(item)
      await nextTurn()
      scheduler.schedule(item)
      await nextTurn()
      assert.equal(joins.length, 2)
      assert.notEqual(joins[1], joins[0], 'a join is not kept alive past its flush')
    })

    it('forgets the last join even when a flush threw', () => {
      const scheduler = new FlushScheduler()
      const f1 = Buffer.from('a')
      const f2 = Buffer.from('b')
      const joins: Buffer[] = []
      const runs = captureImmediates(() =>
        scheduler.schedule(
          new Item(() => {
            joins.push(scheduler.joined([f1, f2]))
            throw new Error('boom')
          }),
        ),
      )
      assert.throws(() => runs[0]!(), /boom/)
      joins.push(scheduler.joined([f1, f2]))
      assert.notEqual(joins[1], joins[0])
    })
  })
})
