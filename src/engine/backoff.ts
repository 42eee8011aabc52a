import { reconnectDelay } from './health.js'

/** How long into an outage a connection keeps retrying at the base delay, in milliseconds. */
export const FAST_RETRY_MS = 2000

/**
 * The reconnect schedule of one Redis connection (node-redis `reconnectStrategy`), by time into
 * the outage rather than by attempt count: during its first 2 s every attempt waits the base
 * delay (50–100 ms, jittered), then the delays grow exponentially to the 5 s cap
 * (reconnectDelay). A restart or failover is usually over within those seconds, and with
 * doubling delays the attempt in force when Redis came back often waited as long again as the
 * outage had lasted, refusing upgrades all that time; a long outage still backs off to the cap.
 * @example createClient({ socket: { reconnectStrategy: new ReconnectBackoff().strategy } })
 */
export class ReconnectBackoff {
  readonly #now: () => number
  readonly #random: () => number
  #since = 0
  #last = Infinity
  /** node-redis's retry count when the fast phase of this outage ended, or null during it. */
  #slowFrom: number | null = null

  constructor(now: () => number = Date.now, random: () => number = Math.random) {
    this.#now = now
    this.#random = random
  }

  /** Milliseconds to wait before attempt `retries` (node-redis restarts the count per outage). */
  readonly strategy = (retries: number): number => {
    const now = this.#now()
    // node-redis counts from 0 (or 1) again after every lost connection: a new outage.
    if (retries <= this.#last) {
      this.#since = now
      this.#slowFrom = null
    }
    this.#last = retries
    if (this.#slowFrom === null) {
      if (now - this.#since < FAST_RETRY_MS) return reconnectDelay(0, this.#random)
      this.#slowFrom = retries
    }
    return reconnectDelay(retries - this.#slowFrom + 1, this.#random)
  }
}
