import type { EngineStatus } from './types.js'

/** What ConnectionHealth watches: a node-redis client (anything with its events and `isReady`). */
export interface WatchedConnection {
  on(event: 'ready' | 'reconnecting' | 'error' | 'end', listener: () => void): unknown
  readonly isReady: boolean
}

/**
 * One status for several Redis connections (commands and subscriber): `ready` only while every
 * one is ready, so listeners never see `ready` from one connection while the other is still down,
 * and they hear each transition once instead of once per connection.
 */
export class ConnectionHealth {
  readonly #connections: readonly WatchedConnection[]
  readonly #onChange: (status: EngineStatus) => void
  #status: EngineStatus = 'connecting'
  #wasReady = false
  #closed = false

  constructor(connections: readonly WatchedConnection[], onChange: (status: EngineStatus) => void) {
    this.#connections = connections
    this.#onChange = onChange
    const update = (): void => this.update()
    for (const c of connections) {
      // Redis going away shows first as 'error' (isReady is already false then), coming back as
      // 'ready'; 'end' covers a deliberate close.
      for (const event of ['ready', 'reconnecting', 'error', 'end'] as const) c.on(event, update)
    }
  }

  /** The combined status: `connecting` until every connection was ready once, then `ready` or
   * `reconnecting`, and `closed` for good after close(). */
  get status(): EngineStatus {
    return this.#status
  }

  /** Recomputes the status from the connections; calls `onChange` on a transition. */
  update(): void {
    if (this.#closed) return
    const ready = this.#connections.every((c) => c.isReady)
    if (ready) this.#wasReady = true
    this.#set(ready ? 'ready' : this.#wasReady ? 'reconnecting' : 'connecting')
  }

  /** Marks the connections as closed for good (`closed` is final). */
  close(): void {
    this.#set('closed')
    this.#closed = true
  }

  #set(status: EngineStatus): void {
    if (status === this.#status) return
    this.#status = status
    this.#onChange(status)
  }
}
