import type { EngineStatus, EngineTransport } from '../engine/types.js'
import type { Logger } from './options.js'

/**
 * Waits for Redis to come back: what a live join made during an outage waits on before it tries
 * again (connection/subscribing.ts).
 */
export class EngineReturn {
  readonly #engine: EngineTransport
  #waiters: ((back: boolean) => void)[] = []
  #closed = false

  constructor(engine: EngineTransport) {
    this.#engine = engine
    engine.onStatus((status) => {
      if (status === 'ready') this.#settle(true)
      else if (status === 'closed') this.close()
    })
  }

  /**
   * Resolves true once the engine is ready again; false when it is ready now (the failure was not
   * an outage) or the broker closes first.
   */
  wait(): Promise<boolean> {
    if (this.#closed || this.#engine.status === 'ready') return Promise.resolve(false)
    return new Promise((resolve) => this.#waiters.push(resolve))
  }

  /** Ends every wait with false (the broker is closing). */
  close(): void {
    this.#closed = true
    this.#settle(false)
  }

  #settle(back: boolean): void {
    const waiters = this.#waiters
    this.#waiters = []
    for (const resolve of waiters) resolve(back)
  }
}

/**
 * Logs a change of Redis's state. Messages published while the subscriber was away are lost (and
 * so are their own copies, which the broker forgets at 'reconnecting').
 */
export function logEngineStatus(logger: Logger | undefined, status: EngineStatus): void {
  if (status === 'reconnecting')
    logger?.warn?.({ redis: status }, 'redis connection lost, reconnecting')
  else if (status === 'ready') logger?.info?.({ redis: status }, 'redis ready')
}
