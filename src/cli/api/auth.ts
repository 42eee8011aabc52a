import { createHash, timingSafeEqual } from 'node:crypto'
import type { IncomingMessage } from 'node:http'

const SCHEME = 'apikey'

/** Digests compare in constant time whatever the lengths of the key and the guess. */
const digest = (value: string): Buffer => createHash('sha256').update(value).digest()

/**
 * Checks `Authorization: apikey KEY` against the configured keys (several, for rotation). Every
 * key is compared, in constant time, so the time taken says nothing about which one matched.
 */
export class ApiKeys {
  readonly #digests: Buffer[]

  constructor(keys: readonly string[]) {
    if (keys.length === 0) throw new TypeError('the API needs at least one key')
    for (const key of keys) {
      if (typeof key !== 'string' || key.length < 16) {
        throw new TypeError('an API key must be a string of at least 16 characters')
      }
    }
    this.#digests = keys.map(digest)
  }

  /** The key of `Authorization: apikey KEY`, or null without one. */
  static fromHeader(req: IncomingMessage): string | null {
    const header = req.headers.authorization
    if (typeof header !== 'string') return null
    const space = header.indexOf(' ')
    if (space < 0 || header.slice(0, space).toLowerCase() !== SCHEME) return null
    const key = header.slice(space + 1).trim()
    return key === '' ? null : key
  }

  /** Whether `key` is one of the configured keys. */
  matches(key: string | null): boolean {
    if (key === null) return false
    const given = digest(key)
    let ok = false
    for (const d of this.#digests) ok = timingSafeEqual(d, given) || ok
    return ok
  }
}
