/** A connection whose reading is paused until its publishes in flight come back. */
export interface PausedReader {
  /** Resumes reading if neither its own nor the process's budget is exceeded any more. */
  maybeResume(): void
}

/**
 * Bytes of client messages taken and not yet answered by Redis (or still waiting for the
 * facility's onMessage), per connection and per process. A client that publishes faster than Redis
 * answers (Redis slow, paused or away) would otherwise make the broker queue without bound; past
 * either budget its socket stops being read, so TCP pushes back on the client instead, and reading
 * resumes as answers come back.
 */
export class PublishBudget {
  /** Bytes one connection may have in flight before its socket is paused. */
  readonly perConnection: number
  /** Bytes all connections of the process may have in flight before publishers are paused. */
  readonly perProcess: number
  #total = 0
  readonly #waiting = new Set<PausedReader>()

  constructor(perConnection: number, perProcess: number) {
    this.perConnection = perConnection
    this.perProcess = perProcess
  }

  /** Bytes in flight now, for the whole process. */
  get total(): number {
    return this.#total
  }

  /** True while the process is past its budget. */
  get exhausted(): boolean {
    return this.#total >= this.perProcess
  }

  /** Counts `bytes` more in flight. */
  take(bytes: number): void {
    this.#total += bytes
  }

  /** Counts `bytes` answered; paused readers get their chance once the process is under budget. */
  give(bytes: number): void {
    this.#total -= bytes
    if (this.#waiting.size === 0 || this.exhausted) return
    for (const reader of [...this.#waiting]) reader.maybeResume()
  }

  /** Remembers a paused reader, to offer it a resume when the process budget frees up. */
  wait(reader: PausedReader): void {
    this.#waiting.add(reader)
  }

  /** Forgets a reader (resumed or closed). */
  unwait(reader: PausedReader): void {
    this.#waiting.delete(reader)
  }
}
