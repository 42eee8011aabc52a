import type { Connection } from '../connection/connection.js'
import { OVERALL } from '../engine/presence-sets.js'
import type { EnginePresence, PresenceChange } from '../engine/types.js'

/** A user came online or went offline: overall (`facility` null) or on one facility. */
export interface PresenceEvent {
  type: 'join' | 'leave'
  user: string
  /** The facility, or null for "on any facility". */
  facility: string | null
}

/** One online user of a listing. */
export interface PresenceEntry {
  user: string
  /** Open connections, on every process. */
  connections: number
}

const DONE = Promise.resolve()

/**
 * Who is online, cluster-wide: every authenticated connection counts for its user, overall and on
 * its facility. A join or leave is reported exactly once per transition, by the process where it
 * happened (or, after a process died, by the one process that swept it up).
 */
export class Presence {
  readonly #engine: EnginePresence
  readonly #emit: (event: PresenceEvent) => void
  readonly #onError: (err: unknown) => void

  constructor(
    engine: EnginePresence,
    emit: (event: PresenceEvent) => void,
    onError: (err: unknown) => void,
  ) {
    this.#engine = engine
    this.#emit = emit
    this.#onError = onError
    engine.onPresenceSwept((set, user) =>
      this.#report({ type: 'leave', user, facility: set === OVERALL ? null : set }),
    )
  }

  /**
   * Emits one event; a listener that throws is the broker's error, and the other events of the
   * same change or sweep are still reported.
   */
  #report(event: PresenceEvent): void {
    try {
      this.#emit(event)
    } catch (err) {
      this.#onError(err)
    }
  }

  /** Counts a new connection (no-op for anonymous ones). */
  track(conn: Connection): Promise<void> {
    return this.#change(conn, 'join')
  }

  /** Uncounts a closed connection. */
  untrack(conn: Connection): Promise<void> {
    return this.#change(conn, 'leave')
  }

  #change(conn: Connection, type: 'join' | 'leave'): Promise<void> {
    const user = conn.identity.user
    if (user === null) return DONE
    const engine = this.#engine
    const { facility } = conn
    let change: Promise<PresenceChange>
    try {
      change =
        type === 'join' ? engine.presenceJoin(facility, user) : engine.presenceLeave(facility, user)
    } catch (err) {
      this.#onError(err)
      return DONE
    }
    // Without an async function: a connection storm tracks thousands of connections a second.
    return change.then((changed) => {
      if (changed.overall) this.#report({ type, user, facility: null })
      if (changed.facility) this.#report({ type, user, facility })
    }, this.#onError)
  }

  /** Whether `user` has a connection on any process (on `facility`, when given). */
  async isOnline(user: string, facility?: string): Promise<boolean> {
    return (await this.count(user, facility)) > 0
  }

  /** How many connections `user` has on every process (on `facility`, when given). */
  count(user: string, facility?: string): Promise<number> {
    return this.#engine.presenceCount(facility ?? OVERALL, user)
  }

  /** Online users with their connection counts, overall or on `facility`, sorted by name. */
  async list(facility?: string): Promise<PresenceEntry[]> {
    const members = await this.#engine.presenceList(facility ?? OVERALL)
    return [...members]
      .map(([user, connections]) => ({ user, connections }))
      .sort((a, b) => (a.user < b.user ? -1 : a.user > b.user ? 1 : 0))
  }
}
