import type { IncomingMessage } from 'node:http'
import { API_KEY_MIN, Secrets } from '../secrets.js'

const SCHEME = 'apikey'

/**
 * Checks `Authorization: apikey KEY` against the configured keys (several, for rotation), each
 * compared in constant time (Secrets).
 */
export class ApiKeys {
  readonly #keys: Secrets

  constructor(keys: readonly string[]) {
    this.#keys = new Secrets(keys, API_KEY_MIN, 'API key')
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
    return this.#keys.matches(key)
  }
}
