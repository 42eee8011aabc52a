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
  readonly #run = (): void => {
    this.#scheduled = false
    const dirty = this.#dirty
    this.#dirty = new Set()
    for (const item of dirty) item.flush()
  }

  /** Flushes `item` at the end of the current turn. */
  schedule(item: Flushable): void {
    this.#dirty.add(item)
    if (!this.#scheduled) {
      this.#scheduled = true
      queueMicrotask(this.#run)
    }
  }
}
