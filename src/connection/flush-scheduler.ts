/** Something with frames waiting to be written. */
export interface Flushable {
  flush(): void
  /** Set by the scheduler while the item waits for its flush (an item is flushed once a turn). */
  flushPending?: boolean
}

/**
 * Collects the connections that received frames during one event-loop turn and flushes each once,
 * after the turn: every frame queued for a socket in that turn goes out in a single write. The
 * turn ends at `setImmediate`, after the loop's I/O callbacks, not at the microtask after each:
 * under load the Redis subscriber's socket gives several 64 KB reads in one poll, each a
 * callback of its own, and a socket with messages in more than one of them is written once.
 */
export class FlushScheduler {
  /**
   * What to flush after this turn, in order, each item once (its `flushPending` says it is here).
   * An array, not a Set: a burst to 10,000 sockets would otherwise grow and rehash a 10,000-entry
   * hash table every turn, then drop it.
   */
  #dirty: Flushable[] = []
  /** The array of the previous run, emptied, reused for the next turn. */
  #spare: Flushable[] = []
  #scheduled = false
  /** The frames last joined in this flush, and the result (see `joined`). */
  #lastParts: readonly Buffer[] | null = null
  #lastJoined: Buffer | null = null
  readonly #run = (): void => {
    this.#scheduled = false
    const dirty = this.#dirty
    // Items scheduled while this run flushes (a write that closed a socket, say) wait for the next.
    this.#dirty = this.#spare
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
      this.#spare = dirty
      this.#lastParts = null
      this.#lastJoined = null
    }
  }

  /** Flushes `item` at the end of the current turn (once, however often it is scheduled). */
  schedule(item: Flushable): void {
    if (item.flushPending === true) return
    item.flushPending = true
    this.#dirty.push(item)
    if (!this.#scheduled) {
      this.#scheduled = true
      setImmediate(this.#run)
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
