import type { IncomingMessage } from 'node:http'
import {
  type IdentifyHook,
  type Identity,
  anonymous,
  isIdentity,
  normalizeIdentity,
  type PartialIdentity,
} from './identity.js'
import { checkIdentity } from './identity-check.js'
import { JwtVerifier, type JwtOptions, TokenError, tokenOf, type VerifiedToken } from './jwt.js'
import { identityFromSession, SessionReader, type SessionOptions } from './session.js'
import type { TestIdentities } from './test-identities.js'

/** Who a request is, and until when (JWTs expire). */
export interface Authentication {
  identity: Identity
  /** Expiry of the token that authenticated the request (ms since the epoch), or null. */
  expiresAt: number | null
  /** What established the identity. */
  via: 'identify' | 'jwt' | 'session' | 'user' | 'anonymous' | 'test'
}

/** `auth` once its identity is one every channel can name (else HttpError 401). */
function checked(auth: Authentication): Authentication {
  checkIdentity(auth.identity)
  return auth
}

const viaJwt = (verified: VerifiedToken): Authentication => ({
  identity: verified.identity,
  expiresAt: verified.expiresAt,
  via: 'jwt',
})

/** What an Express request may carry once express-session and passport ran. */
interface ExpressLike extends IncomingMessage {
  session?: Record<string, unknown>
  sessionID?: string
  user?: unknown
}

/**
 * Resolves identities in one order for upgrades, Express routes and publishers: on a test broker
 * of `wsfacility/testing` only, the identity its test-identity header names; then the `identify`
 * hook when given; else a JWT (query, Authorization header or subprotocol) when configured — an
 * invalid one is a 401, never a fallback; else the express-session session (already loaded on
 * an Express `req`, or read from the cookie and store), or passport's `req.user` on its own;
 * else anonymous.
 */
export class Authenticator {
  readonly #identify: IdentifyHook | undefined
  readonly #jwt: JwtVerifier | null
  readonly #session: SessionReader | null
  readonly #tests: TestIdentities | null

  constructor(
    options: {
      identify?: IdentifyHook | undefined
      jwt?: JwtOptions | undefined
      session?: SessionOptions | undefined
    },
    tests: TestIdentities | null = null,
  ) {
    this.#tests = tests
    this.#identify = options.identify
    this.#jwt = options.jwt ? new JwtVerifier(options.jwt) : null
    this.#session = options.session ? new SessionReader(options.session) : null
  }

  /** True when JWTs are verified (so in-band token refresh is possible). */
  get verifiesTokens(): boolean {
    return this.#jwt !== null
  }

  /** Who `request` is; HttpError 401 when its identity has a string no channel can name. */
  /** The identity of a request (as for connections), or of an identity-like object. */
  async identify(
    requestOrIdentity: IncomingMessage | PartialIdentity | null | undefined,
  ): Promise<Identity> {
    if (requestOrIdentity === null || requestOrIdentity === undefined)
      return normalizeIdentity(null)
    if (isIdentity(requestOrIdentity)) return normalizeIdentity(requestOrIdentity)
    return (await this.authenticate(requestOrIdentity as IncomingMessage)).identity
  }

  async authenticate(request: IncomingMessage): Promise<Authentication> {
    return this.authenticateNow(request)
  }

  /**
   * `authenticate`, answered at once when nothing has to be awaited (anonymous, a JWT verified
   * with a secret, a test identity): an upgrade then goes on without a turn of the event loop.
   * Throws (or rejects) as `authenticate` rejects. `queryToken`: the URL's `token` parameter when
   * the caller has read it already (null: none), as `tokenOf` takes it.
   */
  authenticateNow(
    request: IncomingMessage,
    queryToken?: string | null,
  ): Authentication | Promise<Authentication> {
    const auth = this.#resolve(request, queryToken)
    return auth instanceof Promise ? auth.then(checked) : checked(auth)
  }

  #resolve(
    request: IncomingMessage,
    queryToken?: string | null,
  ): Authentication | Promise<Authentication> {
    const tested = this.#tests?.identityOf(request)
    if (tested) return { identity: tested, expiresAt: null, via: 'test' }
    if (this.#identify) return this.#identified(this.#identify, request)
    if (this.#jwt) {
      const token = tokenOf(request, queryToken)
      if (token !== null) {
        const verified = this.#jwt.verify(token)
        return verified instanceof Promise ? verified.then(viaJwt) : viaJwt(verified)
      }
    }
    const req = request as ExpressLike
    if (req.session && typeof req.sessionID === 'string') return this.#loadedSession(req)
    // Passport without sessions (`session: false`, API strategies) leaves only `req.user`.
    if (req.user !== undefined && req.user !== null) {
      const identity = identityFromSession({}, '', req.user)
      if (identity.user !== null) return { identity, expiresAt: null, via: 'user' }
    }
    if (this.#session) return this.#storedSession(this.#session, request)
    return { identity: anonymous(), expiresAt: null, via: 'anonymous' }
  }

  async #identified(identify: IdentifyHook, request: IncomingMessage): Promise<Authentication> {
    const identity = normalizeIdentity(await identify(request))
    return { identity, expiresAt: null, via: 'identify' }
  }

  /** The session express-session already loaded on an Express `req`. */
  async #loadedSession(req: ExpressLike): Promise<Authentication> {
    const identity = this.#session
      ? await this.#session.toIdentity(req.session as never, req.sessionID!, req.user)
      : identityFromSession(req.session!, req.sessionID!, req.user)
    return { identity, expiresAt: null, via: 'session' }
  }

  /** The session the request's cookie names, read from the store; anonymous without one. */
  async #storedSession(session: SessionReader, request: IncomingMessage): Promise<Authentication> {
    const identity = await session.identify(request)
    if (identity) return { identity, expiresAt: null, via: 'session' }
    return { identity: anonymous(), expiresAt: null, via: 'anonymous' }
  }

  /**
   * The identity session `sessionKey` gives now, read again from the store: null when the session
   * is gone, undefined when identities do not come from a session store.
   */
  async sessionIdentity(sessionKey: string): Promise<Identity | null | undefined> {
    if (!this.#session || this.#identify) return undefined
    const session = await this.#session.load(sessionKey)
    if (!session) return null
    const identity = await this.#session.toIdentity(session, sessionKey)
    checkIdentity(identity)
    return identity
  }

  /**
   * Verifies a fresh token for a connection authenticated as `current`; resolves to its expiry.
   * A token for another user is refused: a connection's channels were chosen for its identity.
   */
  async refresh(token: string, current: Identity): Promise<number | null> {
    if (!this.#jwt) throw new TokenError('WSF_TOKEN_INVALID', 'tokens are not accepted here')
    const verified = await this.#jwt.verify(token)
    if (verified.identity.user !== current.user) {
      throw new TokenError('WSF_TOKEN_INVALID', 'token is for another user')
    }
    return verified.expiresAt
  }
}
