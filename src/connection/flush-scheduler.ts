/** Something with frames waiting to be written. */
export interface Flushable {
  flush(): void
}

/**
 * Collects the connections that received frames during one event-loop turn and flushes each once,
 * after the turn: every frame queued for a socket in that turn goes out in a single write.
 */
export class FlushScheduler {
  #dirty = new Set<Flushable>()
  #scheduled = false
  /** The frames last joined in this flush, and the result (see `joined`). */
  #lastParts: readonly Buffer[] | null = null
  #lastJoined: Buffer | null = null
  readonly #run = (): void => {
    this.#scheduled = false
    const dirty = this.#dirty
    this.#dirty = new Set()
    try {
      for (const item of dirty) item.flush()
    } finally {
      this.#lastParts = null
      this.#lastJoined = null
    }
  }

  /** Flushes `item` at the end of the current turn. */
  schedule(item: Flushable): void {
    this.#dirty.add(item)
    if (!this.#scheduled) {
      this.#scheduled = true
      queueMicrotask(this.#run)
    }
  }

  /**
   * `parts` as one buffer, for one write. Subscribers of a channel queue the very same frames in a
   * turn and are flushed one after the other, so the join of the previous flush is reused: a burst
   * to N sockets costs one copy, not N (and N writes, not N × frames).
   */
  joined(parts: readonly Buffer[]): Buffer {
    const last = this.#lastParts
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
