import type { Connection } from '../connection/connection.js'
import type { EnginePresence } from '../engine/types.js'

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

// The overall set: facility names are never empty, so '' cannot collide with one.
const OVERALL = ''

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
      emit({ type: 'leave', user, facility: set === OVERALL ? null : set }),
    )
  }

  /** Counts a new connection (no-op for anonymous ones). */
  track(conn: Connection): Promise<void> {
    return this.#change(conn, 'join')
  }

  /** Uncounts a closed connection. */
  untrack(conn: Connection): Promise<void> {
    return this.#change(conn, 'leave')
  }

  async #change(conn: Connection, type: 'join' | 'leave'): Promise<void> {
    const user = conn.identity.user
    if (user === null) return
    const op = type === 'join' ? this.#engine.presenceJoin : this.#engine.presenceLeave
    try {
      const [overall, facility] = await Promise.all([
        op.call(this.#engine, OVERALL, user),
        op.call(this.#engine, conn.facility, user),
      ])
      if (overall) this.#emit({ type, user, facility: null })
      if (facility) this.#emit({ type, user, facility: conn.facility })
    } catch (err) {
      this.#onError(err)
    }
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
