import { createHash, timingSafeEqual } from 'node:crypto'

/** Shortest API key taken (`--api-key`): it is guessed over HTTP otherwise. */
export const API_KEY_MIN = 16
/** Shortest admin password taken (`--admin-password`). */
export const ADMIN_PASSWORD_MIN = 8

/** Digests compare in constant time whatever the lengths of the secret and the guess. */
const digest = (value: string): Buffer => createHash('sha256').update(value).digest()

/**
 * A set of secrets (API keys, an admin password) that a guess is checked against: every secret is
 * compared, in constant time, so the time taken says nothing about which one matched.
 */
export class Secrets {
  readonly #digests: Buffer[]

  /** Throws TypeError for an empty list or a secret shorter than `min` (`what` names it). */
  constructor(values: readonly string[], min: number, what: string) {
    if (values.length === 0) throw new TypeError(`at least one ${what} is needed`)
    for (const v of values) {
      if (typeof v !== 'string' || v.length < min) {
        throw new TypeError(`an ${what} must be a string of at least ${min} characters`)
      }
    }
    this.#digests = values.map(digest)
  }

  /** Whether `guess` is one of the secrets. */
  matches(guess: string | null): boolean {
    if (guess === null) return false
    const given = digest(guess)
    let ok = false
    for (const d of this.#digests) ok = timingSafeEqual(d, given) || ok
    return ok
  }
}
