import { OptionError } from '../errors.js'
import { createHmac, timingSafeEqual } from 'node:crypto'
import type { IncomingMessage } from 'node:http'
import { parse as parseCookie } from 'cookie'
import { type Identity, normalizeIdentity, type PartialIdentity } from './identity.js'

// express-session's own types are not used here: they live in @types/express-session, which a
// user of wsfacility may not have (nor need, without session cookies). These structural types
// take any express-session Store (MemoryStore, connect-redis's RedisStore, …) as they are.

/**
 * A loaded session as the store hands it back: express-session's `SessionData` (its `cookie`, and
 * what the app put there, e.g. `user` or passport's `passport.user`).
 */
export type SessionRecord = { readonly [key: string]: unknown }

/**
 * What the broker needs of an express-session store: `get`, as every express-session `Store`
 * has it (`MemoryStore`, connect-redis's `RedisStore`, …).
 */
export interface SessionStore {
  get(sid: string, callback: (err: unknown, session?: object | null) => void): void
}

/** Maps a loaded session to an identity; the default reads `user`, `groups` and passport. */
export type SessionIdentityMapper = (
  session: SessionRecord,
  sessionId: string,
) => PartialIdentity | null | Promise<PartialIdentity | null>

/** How the broker reads express-session cookies. */
export interface SessionOptions {
  /** The express-session store the app uses (connect-redis in production, MemoryStore in demos). */
  store: SessionStore
  /** The app's session secret, or a list for rotation (the first signs, all verify). */
  secret: string | readonly string[]
  /** Cookie name. @default 'connect.sid' */
  name?: string | undefined
  /** Overrides how a session maps to `{ user, groups, sessionKey }`. */
  identity?: SessionIdentityMapper | undefined
}

/**
 * Checks an express-session cookie value (`s:<id>.<signature>`, HMAC-SHA256, base64 without
 * padding) against each secret; returns the session id, or null when unsigned or forged.
 */
export function unsignCookie(value: string, secrets: readonly string[]): string | null {
  if (!value.startsWith('s:')) return null
  const signed = value.slice(2)
  const dot = signed.lastIndexOf('.')
  if (dot <= 0) return null
  const id = signed.slice(0, dot)
  const given = Buffer.from(signed.slice(dot + 1))
  for (const secret of secrets) {
    const expected = Buffer.from(
      createHmac('sha256', secret).update(id).digest('base64').replace(/=+$/, ''),
    )
    if (expected.length === given.length && timingSafeEqual(expected, given)) return id
  }
  return null
}

function nameOf(value: unknown): string | null {
  if (typeof value === 'string' || typeof value === 'number') return String(value)
  if (value && typeof value === 'object') {
    const v = value as Record<string, unknown>
    for (const key of ['username', 'name', 'id']) {
      if (typeof v[key] === 'string' || typeof v[key] === 'number') return String(v[key])
    }
  }
  return null
}

/**
 * The default session → identity mapping: user from `session.user` (a string, or an object's
 * `username`, `name` or `id`) or passport's `session.passport.user`; groups from
 * `session.user.groups` or `session.groups`; the session id as session key.
 */
export function identityFromSession(
  session: Record<string, unknown>,
  sessionId: string,
  requestUser?: unknown,
): Identity {
  const sessionUser = session.user as Record<string, unknown> | string | undefined
  const passport = session.passport as { user?: unknown } | undefined
  const user = nameOf(requestUser) ?? nameOf(sessionUser) ?? nameOf(passport?.user)
  const rawGroups =
    (typeof sessionUser === 'object' && sessionUser !== null ? sessionUser.groups : undefined) ??
    (typeof requestUser === 'object' && requestUser !== null
      ? (requestUser as Record<string, unknown>).groups
      : undefined) ??
    session.groups
  const groups = Array.isArray(rawGroups) ? rawGroups.filter((g) => typeof g === 'string') : []
  return normalizeIdentity({ user, groups: user === null ? [] : groups, sessionKey: sessionId })
}

/** Reads the session of a request from its cookie and the store. */
export class SessionReader {
  readonly #store: SessionStore
  readonly #secrets: readonly string[]
  readonly #name: string
  readonly #map: SessionIdentityMapper | undefined

  constructor(options: SessionOptions) {
    if (!options.store || typeof options.store.get !== 'function') {
      throw new OptionError('session.store must be an express-session Store')
    }
    const secrets = typeof options.secret === 'string' ? [options.secret] : [...options.secret]
    if (secrets.length === 0 || secrets.some((s) => typeof s !== 'string' || s === '')) {
      throw new OptionError('session.secret must be a non-empty string or list of strings')
    }
    this.#store = options.store
    this.#secrets = secrets
    this.#name = options.name ?? 'connect.sid'
    this.#map = options.identity
  }

  /** The verified session id of the request's cookie, or null. */
  sessionId(req: IncomingMessage): string | null {
    const header = req.headers.cookie
    if (!header) return null
    const value = parseCookie(header)[this.#name]
    return value ? unsignCookie(value, this.#secrets) : null
  }

  /** Loads a session from the store; null when it does not exist. */
  load(sessionId: string): Promise<SessionRecord | null> {
    return new Promise((resolve, reject) =>
      this.#store.get(sessionId, (err, session) =>
        err ? reject(err) : resolve((session as SessionRecord | null | undefined) ?? null),
      ),
    )
  }

  /** Maps a session to an identity (the `identity` option, or the default mapping). */
  async toIdentity(
    session: SessionRecord,
    sessionId: string,
    requestUser?: unknown,
  ): Promise<Identity> {
    if (this.#map) return normalizeIdentity(await this.#map(session, sessionId))
    return identityFromSession(session, sessionId, requestUser)
  }

  /**
   * The identity of a request from its cookie: null for a missing, unsigned, forged or
   * unknown-session cookie — never someone else's identity.
   */
  async identify(req: IncomingMessage): Promise<Identity | null> {
    const id = this.sessionId(req)
    if (id === null) return null
    const session = await this.load(id)
    return session ? this.toIdentity(session, id) : null
  }
}
