import { HttpError } from '../errors.js'

/** Connection limits of one process. 0 means unlimited. */
export interface ConnectionLimits {
  /** Open and in-progress connections of this process. */
  maxConnections: number
  /** Open and in-progress connections of one user on this process (anonymous ones not counted). */
  maxConnectionsPerUser: number
}

/** Seconds a client refused for a connection limit is told to wait (`Retry-After`). */
export const RETRY_AFTER_SECONDS = 5

/**
 * Counts this process's connections, overall and per user, from the start of an upgrade until its
 * socket closes; an upgrade past a limit is refused before the handshake. Counting upgrades in
 * progress keeps a burst of parallel handshakes from overshooting the limit.
 */
export class ConnectionCounter {
  readonly #limits: ConnectionLimits
  #total = 0
  readonly #byUser = new Map<string, number>()

  constructor(limits: ConnectionLimits) {
    this.#limits = limits
  }

  /** Connections counted now. */
  get total(): number {
    return this.#total
  }

  /** Connections of `user` counted now. */
  countOf(user: string): number {
    return this.#byUser.get(user) ?? 0
  }

  /** Counts one more connection; throws HttpError 503 past `maxConnections`. */
  admit(): void {
    const max = this.#limits.maxConnections
    if (max > 0 && this.#total >= max) {
      throw new HttpError(503, 'too many connections on this server', 'WSF_TOO_MANY_CONNECTIONS', {
        'Retry-After': String(RETRY_AFTER_SECONDS),
      })
    }
    this.#total++
  }

  /** Uncounts a connection counted by `admit` (its owner calls it exactly once). */
  release(): void {
    this.#total--
  }

  /**
   * Counts one more connection of `user`; throws HttpError 429 (with Retry-After) past
   * `maxConnectionsPerUser`.
   */
  admitUser(user: string): void {
    const max = this.#limits.maxConnectionsPerUser
    if (max === 0) return
    const count = this.countOf(user)
    if (count >= max) {
      throw new HttpError(
        429,
        'too many connections for this user',
        'WSF_TOO_MANY_USER_CONNECTIONS',
        { 'Retry-After': String(RETRY_AFTER_SECONDS) },
      )
    }
    this.#byUser.set(user, count + 1)
  }

  /** Uncounts a connection counted by `admitUser` (its owner calls it exactly once). */
  releaseUser(user: string): void {
    if (this.#limits.maxConnectionsPerUser === 0) return
    const left = this.countOf(user) - 1
    if (left > 0) this.#byUser.set(user, left)
    else this.#byUser.delete(user)
  }
}
