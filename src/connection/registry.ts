import { type Connection, ownerOf } from './connection.js'

/**
 * An upgrade in progress, or a refusal told by a close still closing, as the registry sees it:
 * something it can cut on shutdown.
 */
export interface Upgrading {
  /** Ends the attempt with a refusal, or cuts the refused socket (the broker is shutting down). */
  abortShutdown(): void
}

/** An upgrade in progress: the registry cuts it once its deadline has passed. */
export interface Attempt extends Upgrading {
  /**
   * `performance.now()` by which its handshake must complete: its start plus the broker's one
   * `handshakeTimeout`, so attempts reach their deadlines in the order they started.
   */
  readonly deadline: number
  /** Ends the attempt with its timeout's refusal. */
  timedOut(): void
}

/**
 * The connections of one broker: those open (by id), those still upgrading, the bytes held for
 * the latter, the presence updates in flight, and the liveness timer. Entries are added and
 * removed only by each connection's owner.
 */
export class ConnectionRegistry {
  readonly #open = new Map<string, Connection>()
  /** In the order they started, which is their deadlines' order. */
  readonly #upgrading = new Set<Attempt>()
  /**
   * Armed for the deadline of the oldest upgrade while any is in progress: one timer for all of
   * them instead of one per upgrade (a connection storm starts thousands a second).
   */
  #deadlineTimer: NodeJS.Timeout | null = null
  /** Refused connections whose close is under way (refusals told by a close). */
  readonly #refusing = new Set<Upgrading>()
  /** Work in flight (presence updates), and who waits for there to be none. */
  #working = 0
  #idle: (() => void)[] = []
  #pingTimer: NodeJS.Timeout | null = null
  /** Bytes of messages held for connections whose handshake has not completed. */
  heldBytes = 0

  /** Open connections, by id. */
  get open(): ReadonlyMap<string, Connection> {
    return this.#open
  }

  /** Upgrades in progress. */
  get upgrading(): number {
    return this.#upgrading.size
  }

  upgradeStarted(attempt: Attempt): void {
    this.#upgrading.add(attempt)
    if (this.#deadlineTimer === null) this.#armDeadline(attempt.deadline)
  }

  upgradeEnded(attempt: Attempt): void {
    this.#upgrading.delete(attempt)
    if (this.#upgrading.size === 0 && this.#deadlineTimer !== null) {
      clearTimeout(this.#deadlineTimer)
      this.#deadlineTimer = null
    }
  }

  #armDeadline(deadline: number): void {
    const wait = Math.max(1, Math.ceil(deadline - performance.now()))
    this.#deadlineTimer = setTimeout(this.#expire, wait)
  }

  /** Cuts every upgrade past its deadline (the oldest first), then waits for the next one's. */
  readonly #expire = (): void => {
    this.#deadlineTimer = null
    const now = performance.now()
    for (const attempt of this.#upgrading) {
      if (attempt.deadline > now) {
        if (this.#deadlineTimer === null) this.#armDeadline(attempt.deadline)
        return
      }
      this.#upgrading.delete(attempt)
      attempt.timedOut()
    }
  }

  refusalStarted(refused: Upgrading): void {
    this.#refusing.add(refused)
  }

  refusalEnded(refused: Upgrading): void {
    this.#refusing.delete(refused)
  }

  opened(connection: Connection): void {
    this.#open.set(connection.id, connection)
  }

  closed(connection: Connection): void {
    this.#open.delete(connection.id)
  }

  /** Keeps work in flight (presence updates) so shutdown can wait for it. */
  pending(work: Promise<void>): void {
    this.#working++
    work.then(this.#workDone, this.#workDone)
  }

  readonly #workDone = (): void => {
    if (--this.#working > 0) return
    const waiting = this.#idle
    this.#idle = []
    for (const resolve of waiting) resolve()
  }

  /** Resolves once no work is in flight (at once when none is). */
  settled(): Promise<void> {
    if (this.#working === 0) return Promise.resolve()
    return new Promise((resolve) => this.#idle.push(resolve))
  }

  /**
   * Cuts every upgrade in progress and every refused socket still closing (shutdown). An upgrade
   * refused now by a close gets its close frame and the time to answer it.
   */
  abortUpgrades(): void {
    for (const refused of [...this.#refusing]) refused.abortShutdown()
    for (const attempt of [...this.#upgrading]) attempt.abortShutdown()
  }

  /**
   * Pings every open connection each `interval` ms; one that answered nothing (no pong, no
   * message) since the previous round is cut. 0 turns liveness checks off.
   */
  startPings(interval: number): void {
    if (interval === 0 || this.#pingTimer) return
    this.#pingTimer = setInterval(() => {
      for (const connection of this.#open.values()) ownerOf(connection).heartbeat()
    }, interval)
    this.#pingTimer.unref()
  }

  stopPings(): void {
    if (this.#pingTimer) clearInterval(this.#pingTimer)
    this.#pingTimer = null
  }
}
