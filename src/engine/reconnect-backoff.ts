/** Base and cap of the reconnect delays, in milliseconds. */
export const RECONNECT_BASE_MS = 100
export const RECONNECT_CAP_MS = 5000
/** How long into an outage a connection keeps retrying at the base delay, in milliseconds. */
export const FAST_RETRY_MS = 2000
/** After the fast phase, the longest delay as a fraction of the time the outage has lasted. */
export const OUTAGE_FRACTION = 0.25

/**
 * The reconnect schedule of one Redis connection (node-redis `reconnectStrategy`), by time into
 * the outage rather than by attempt count. During its first 2 s every attempt waits 50–100 ms: a
 * restart or failover is usually over by then. After that a delay is at most a quarter of the
 * time Redis has been away, capped at 5 s, so the broker stays down at most about a quarter
 * longer than Redis did (doubling delays made that up to twice as long). Each delay is "equal
 * jitter" (between half and all of its ceiling), so the processes of a cluster do not all hit a
 * restarted Redis in the same millisecond.
 * @example createClient({ socket: { reconnectStrategy: new ReconnectBackoff().strategy } })
 */
export class ReconnectBackoff {
  readonly #now: () => number
  readonly #random: () => number
  #since = 0
  #last = Infinity

  constructor(now: () => number = Date.now, random: () => number = Math.random) {
    this.#now = now
    this.#random = random
  }

  /** Milliseconds to wait before attempt `retries` (node-redis restarts the count per outage). */
  readonly strategy = (retries: number): number => {
    const now = this.#now()
    // node-redis counts from 0 (or 1) again after every lost connection: a new outage.
    if (retries <= this.#last) this.#since = now
    this.#last = retries
    const elapsed = now - this.#since
    const ceiling =
      elapsed < FAST_RETRY_MS
        ? RECONNECT_BASE_MS
        : Math.min(RECONNECT_CAP_MS, elapsed * OUTAGE_FRACTION)
    return Math.round(ceiling / 2 + (this.#random() * ceiling) / 2)
  }
}
