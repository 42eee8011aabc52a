import { createHash, createHmac, timingSafeEqual } from 'node:crypto'
import { ADMIN_PASSWORD_MIN, Secrets } from '../secrets.js'
import type { IncomingMessage } from 'node:http'
import { parse as parseCookie } from 'cookie'

/** The dashboard's session cookie. */
export const COOKIE = 'wsfacility_admin'
const SESSION_MS = 12 * 3600_000
// Failed logins a process accepts per window before it answers 429 for the rest of it.
const MAX_FAILURES = 20
const FAILURE_WINDOW_MS = 60_000

const digest = (value: string): Buffer => createHash('sha256').update(value).digest()

/**
 * Logins to the dashboard: a password (the admin password or an API key), then a signed cookie
 * `<expiry>.<HMAC>` that any worker process can check, since they share the secrets. Changing the
 * secrets ends every session.
 */
export class AdminSessions {
  readonly #secrets: Secrets
  readonly #key: Buffer
  #failures = 0
  #windowStart = 0

  constructor(secrets: readonly string[]) {
    // API keys are longer than passwords: the shorter minimum serves both.
    this.#secrets = new Secrets(secrets, ADMIN_PASSWORD_MIN, 'admin password or API key')
    this.#key = digest(`wsfacility-admin\0${[...secrets].sort().join('\0')}`)
  }

  /** Whether `password` is one of the secrets (compared in constant time, every one). */
  checkPassword(password: string): boolean {
    return this.#secrets.matches(password)
  }

  /** False once too many logins failed lately (then the login answers 429). */
  loginAllowed(now = Date.now()): boolean {
    if (now - this.#windowStart > FAILURE_WINDOW_MS) {
      this.#windowStart = now
      this.#failures = 0
    }
    return this.#failures < MAX_FAILURES
  }

  /** Counts a failed login. */
  failed(): void {
    this.#failures++
  }

  #sign(expiry: string): string {
    return createHmac('sha256', this.#key).update(expiry).digest('base64url')
  }

  /** A Set-Cookie value that opens a session. */
  issue(secure: boolean, now = Date.now()): string {
    const expiry = String(now + SESSION_MS)
    const attrs = ['Path=/admin', 'HttpOnly', 'SameSite=Strict', `Max-Age=${SESSION_MS / 1000}`]
    if (secure) attrs.push('Secure')
    return `${COOKIE}=${expiry}.${this.#sign(expiry)}; ${attrs.join('; ')}`
  }

  /** A Set-Cookie value that ends the session. */
  static clear(): string {
    return `${COOKIE}=; Path=/admin; HttpOnly; SameSite=Strict; Max-Age=0`
  }

  /** Whether the request carries a valid, unexpired session cookie. */
  valid(req: IncomingMessage, now = Date.now()): boolean {
    const value = parseCookie(req.headers.cookie ?? '')[COOKIE]
    if (!value) return false
    const dot = value.indexOf('.')
    const expiry = value.slice(0, dot)
    if (dot < 0 || !/^\d+$/.test(expiry) || Number(expiry) <= now) return false
    const expected = Buffer.from(this.#sign(expiry))
    const given = Buffer.from(value.slice(dot + 1))
    return given.length === expected.length && timingSafeEqual(given, expected)
  }
}
