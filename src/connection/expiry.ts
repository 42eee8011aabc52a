/** setTimeout holds at most ~24.8 days; longer expiries re-arm when that fires. */
const MAX_TIMER = 2 ** 31 - 1

/**
 * When a connection's token stops being accepted, and the timer that acts on it. `arm()` starts
 * the timer (once the connection is open); `expired` runs at the expiry, not before.
 */
export class TokenExpiry {
  #at: number | null = null
  #timer: NodeJS.Timeout | null = null
  readonly #expired: () => void

  constructor(expired: () => void) {
    this.#expired = expired
  }

  /** When the token expires (ms since the epoch); null without one. */
  get at(): number | null {
    return this.#at
  }

  /** Sets the expiry without arming it (before the connection is open). */
  set(at: number | null): void {
    this.clear()
    this.#at = at
  }

  /** Sets the expiry (replacing an earlier one) and arms its timer; null cancels. */
  arm(at: number | null = this.#at): void {
    this.set(at)
    if (at === null) return
    const delay = Math.min(Math.max(0, at - Date.now()), MAX_TIMER)
    this.#timer = setTimeout(() => {
      if (Date.now() < at) return this.arm(at)
      this.#expired()
    }, delay)
    this.#timer.unref()
  }

  /** Stops the timer (the expiry stays known). */
  clear(): void {
    if (this.#timer) clearTimeout(this.#timer)
    this.#timer = null
  }
}
