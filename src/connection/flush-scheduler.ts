/** Something with frames waiting to be written. */
export interface Flushable {
  flush(): void
  /** Set by the scheduler while the item waits for its flush (an item is flushed once a turn). */
  flushPending?: boolean
}

/** The items of one flush, the array of the one before (emptied, reused), and its mark. */
class Batch {
  dirty: Flushable[] = []
  spare: Flushable[] = []
  scheduled = false
}

/**
 * Collects the connections that received frames during one event-loop turn and flushes each once,
 * after the turn: every frame queued for a socket in that turn goes out in a single write. The
 * turn ends at `setImmediate`, after the loop's I/O callbacks, not at the microtask after each:
 * under load the Redis subscriber's socket gives several 64 KB reads in one poll, each a
 * callback of its own, and a socket with messages in more than one of them is written once.
 *
 * With a write delay (the `writeDelay` option, in milliseconds), a connection's frames wait for the
 * end of a window of that length: fewer, larger writes for connections with many messages each,
 * at up to that much latency. A delay's window is shared by all the connections that use it and
 * opens with the first frame queued while none is open: one timer per delay, not one per
 * connection, and no frame waits longer than the delay.
 */
export class FlushScheduler {
  /**
   * What to flush after this turn, in order, each item once (its `flushPending` says it is here).
   * Arrays, not Sets: a burst to 10,000 sockets would otherwise grow and rehash a 10,000-entry
   * hash table every turn, then drop it.
   */
  readonly #turn = new Batch()
  /** The windows of write delays, by delay. */
  readonly #windows = new Map<number, Batch>()
  /** The frames last joined in this flush, and the result (see `joined`). */
  #lastParts: readonly Buffer[] | null = null
  #lastJoined: Buffer | null = null
  readonly #runTurn = (): void => this.#run(this.#turn)

  #run(batch: Batch): void {
    batch.scheduled = false
    const dirty = batch.dirty
    // Items scheduled while this run flushes (a write that closed a socket, say) wait for the next.
    batch.dirty = batch.spare
    let i = 0
    try {
      for (; i < dirty.length; i++) {
        const item = dirty[i]!
        item.flushPending = false
        item.flush()
      }
    } finally {
      // After a flush threw, the items it left unflushed can be scheduled again.
      for (; i < dirty.length; i++) dirty[i]!.flushPending = false
      dirty.length = 0
      batch.spare = dirty
      this.#lastParts = null
      this.#lastJoined = null
    }
  }

  /**
   * Flushes `item` at the end of the current turn, or, with `delay` > 0 milliseconds, at the end
   * of that delay's current window (once, however often it is scheduled).
   */
  schedule(item: Flushable, delay = 0): void {
    if (item.flushPending === true) return
    item.flushPending = true
    if (delay > 0) return this.#later(item, delay)
    const batch = this.#turn
    batch.dirty.push(item)
    if (!batch.scheduled) {
      batch.scheduled = true
      setImmediate(this.#runTurn)
    }
  }

  #later(item: Flushable, delay: number): void {
    let batch = this.#windows.get(delay)
    if (!batch) this.#windows.set(delay, (batch = new Batch()))
    batch.dirty.push(item)
    if (!batch.scheduled) {
      batch.scheduled = true
      // Unref'd: the sockets keep the process alive while there is anyone to write to.
      setTimeout(() => this.#run(batch), delay).unref()
    }
  }

  /**
   * `parts` as one buffer, for one write. Subscribers of a channel queue the very same frames in a
   * turn and are flushed one after the other, so the join of the previous flush is reused: a burst
   * to N sockets costs one copy, not N (and N writes, not N × frames).
   */
  joined(parts: readonly Buffer[]): Buffer {
    const last = this.#lastParts
    // A run of one channel's messages is the very same array for all its recipients.
    if (last === parts && this.#lastJoined) return this.#lastJoined
    if (last && this.#lastJoined && last.length === parts.length) {
      let same = true
      for (let i = 0; i < parts.length; i++) {
        if (parts[i] !== last[i]) {
          same = false
          break
        }
      }
      if (same) return this.#lastJoined
    }
    const out = Buffer.concat(parts as Buffer[])
    this.#lastParts = parts
    this.#lastJoined = out
    return out
  }
}
