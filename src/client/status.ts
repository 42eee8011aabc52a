import type { ClientStatus } from './events.js'

/**
 * A client's status and its `status` events. A change made while `deferring()` runs (inside
 * createClient, before anyone could listen) is announced a microtask later; a change before that
 * microtask comes after it, so listeners hear every status, in order, once.
 */
export class StatusCell {
  #status: ClientStatus = 'closed'
  #deferred: ClientStatus | null = null
  #deferring = false
  readonly #emit: (status: ClientStatus) => void

  constructor(emit: (status: ClientStatus) => void) {
    this.#emit = emit
  }

  get value(): ClientStatus {
    return this.#status
  }

  /** Runs `fn`; the status changes it makes are announced after the current task. */
  deferring(fn: () => void): void {
    this.#deferring = true
    try {
      fn()
    } finally {
      this.#deferring = false
    }
  }

  set(status: ClientStatus): void {
    if (this.#status === status) return
    this.#status = status
    if (this.#deferring) {
      this.#deferred = status
      queueMicrotask(() => this.#flushDeferred())
      return
    }
    this.#flushDeferred()
    this.#emit(status)
  }

  #flushDeferred(): void {
    const deferred = this.#deferred
    this.#deferred = null
    if (deferred !== null) this.#emit(deferred)
  }
}
