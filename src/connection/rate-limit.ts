/**
 * A token bucket: `rate` tokens per second, holding at most `burst`. Each message takes one; an
 * empty bucket refuses. Refilled lazily from the clock, so an idle bucket costs nothing.
 */
export class TokenBucket {
  readonly #rate: number
  readonly #burst: number
  #tokens: number
  #at: number

  constructor(rate: number, burst: number, now = Date.now()) {
    this.#rate = rate
    this.#burst = burst
    this.#tokens = burst
    this.#at = now
  }

  /** Takes one token; false when the bucket is empty (the caller refuses the message). */
  take(now = Date.now()): boolean {
    const elapsed = Math.max(0, now - this.#at)
    this.#at = now
    this.#tokens = Math.min(this.#burst, this.#tokens + (elapsed * this.#rate) / 1000)
    if (this.#tokens < 1) return false
    this.#tokens -= 1
    return true
  }
}

/** The bucket of a publish rate (messages/s; 0 = unlimited → null); burst 0 = one second's worth. */
export function bucketFor(rate: number, burst: number): TokenBucket | null {
  if (rate <= 0) return null
  return new TokenBucket(rate, Math.max(1, burst || rate))
}
