import { createPublicKey, type JsonWebKey, type KeyObject } from 'node:crypto'
import type { IncomingMessage } from 'node:http'
import { createRemoteJWKSet, errors, jwtVerify, type JWTPayload } from 'jose'
import { type ClaimChecks, HmacJwt } from './hmac-jwt.js'
import { HttpError, OptionError } from '../errors.js'
import { type Identity, normalizeIdentity } from './identity.js'

/** How the broker verifies JWTs. Give exactly one of `secret`, `publicKey`, `jwksUrl`. */
export interface JwtOptions {
  /** HMAC secret (HS256/384/512). */
  secret?: string | Uint8Array | undefined
  /** Public key: PEM text, a JWK object, or a KeyObject (RS*, PS*, ES*, EdDSA). */
  publicKey?: string | JsonWebKey | KeyObject | undefined
  /** URL of a JWKS document (keys picked by `kid`). */
  jwksUrl?: string | undefined
  /** Accepted `alg` values; `none` is never accepted. @default by key type */
  algorithms?: string[] | undefined
  /** Required `iss`. */
  issuer?: string | string[] | undefined
  /** Required `aud`. */
  audience?: string | string[] | undefined
  /** Seconds of clock skew tolerated on `exp` and `nbf`. @default 5 */
  clockTolerance?: number | undefined
}

/** A verified token. */
export interface VerifiedToken {
  identity: Identity
  /**
   * When the token stops being accepted (ms since the epoch): `exp` plus `clockTolerance`, so a
   * token accepted within the tolerance is not closed at once as expired. Null without `exp`.
   */
  expiresAt: number | null
  claims: JWTPayload
}

/** Subprotocol a browser offers beside `bearer.<jwt>`; the broker selects it. */
export const BEARER_PROTOCOL = 'wsfacility'
const BEARER_PREFIX = 'bearer.'

const HMAC = ['HS256', 'HS384', 'HS512']
const BY_KEY_TYPE: Record<string, string[]> = {
  rsa: ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512'],
  'rsa-pss': ['PS256', 'PS384', 'PS512'],
  ec: ['ES256', 'ES384', 'ES512'],
  ed25519: ['EdDSA', 'Ed25519'],
  ed448: ['EdDSA'],
}
const ASYMMETRIC = [...new Set(Object.values(BY_KEY_TYPE).flat())]

/** A token refused: 401 before the upgrade, or a close after it. */
export class TokenError extends HttpError {
  constructor(code: 'WSF_TOKEN_EXPIRED' | 'WSF_TOKEN_INVALID', message: string) {
    super(401, message, code)
  }
}

function reason(err: unknown): TokenError {
  if (err instanceof errors.JWTExpired) return new TokenError('WSF_TOKEN_EXPIRED', 'token expired')
  if (err instanceof errors.JWTClaimValidationFailed) {
    const what = err.claim === 'nbf' ? 'token not yet valid' : `token claim ${err.claim} invalid`
    return new TokenError('WSF_TOKEN_INVALID', what)
  }
  if (err instanceof errors.JOSEAlgNotAllowed) {
    return new TokenError('WSF_TOKEN_INVALID', 'token algorithm not allowed')
  }
  if (err instanceof errors.JWSSignatureVerificationFailed) {
    return new TokenError('WSF_TOKEN_INVALID', 'token signature invalid')
  }
  if (err instanceof errors.JWKSNoMatchingKey) {
    return new TokenError('WSF_TOKEN_INVALID', 'no key matches the token')
  }
  return new TokenError('WSF_TOKEN_INVALID', 'token malformed or unverifiable')
}

/**
 * Where a request carries its token: `?token=`, `Authorization: Bearer …`, or the subprotocol
 * `bearer.<jwt>` (browsers cannot set headers: `new WebSocket(url, ['wsfacility', 'bearer.' + jwt])`).
 * `queryToken`, when given, is the URL's `token` parameter already read (null: there is none).
 */
export function tokenOf(req: IncomingMessage, queryToken?: string | null): string | null {
  const auth = req.headers.authorization
  // An empty token ('Bearer', '?token=') is still a token: refused, never read as "no token".
  if (typeof auth === 'string' && /^bearer(\s|$)/i.test(auth)) {
    return auth.replace(/^bearer\s*/i, '')
  }
  const protocols = req.headers['sec-websocket-protocol']
  if (typeof protocols === 'string') {
    for (const p of protocols.split(',')) {
      const v = p.trim()
      if (v.startsWith(BEARER_PREFIX)) return v.slice(BEARER_PREFIX.length)
    }
  }
  if (queryToken !== undefined) return queryToken
  const q = (req.url ?? '').indexOf('?')
  if (q !== -1) {
    const token = new URLSearchParams((req.url ?? '').slice(q + 1)).get('token')
    if (token !== null) return token
  }
  return null
}

/** Picks the subprotocol to answer: ours when offered, else the first one that is not a token. */
export function selectProtocol(protocols: Set<string>): string | false {
  if (protocols.has(BEARER_PROTOCOL)) return BEARER_PROTOCOL
  for (const p of protocols) if (!p.startsWith(BEARER_PREFIX)) return p
  const [first] = protocols
  return first ?? false
}

/**
 * Verifies JWTs (a secret: HMAC and claims here, hmac-jwt.ts; a public key or a JWKS: jose) and
 * maps claims to an identity: `sub` → user, `groups`, `sid`.
 */
export class JwtVerifier {
  /** A public key or a JWKS, for jose (null with a secret). */
  readonly #key: KeyObject | ReturnType<typeof createRemoteJWKSet> | null = null
  /** Verifies tokens with the secret (null with a public key or a JWKS). */
  readonly #hmac: HmacJwt | null = null
  /** jose's options of the same names, which HmacJwt checks alike. */
  readonly #options: ClaimChecks & { algorithms: string[] }

  constructor(options: JwtOptions) {
    const given = [options.secret, options.publicKey, options.jwksUrl].filter(
      (k) => k !== undefined,
    )
    if (given.length !== 1)
      throw new OptionError('jwt needs exactly one of secret, publicKey, jwksUrl')
    let allowed: string[]
    let secret: Uint8Array | null = null
    if (options.secret !== undefined) {
      secret =
        typeof options.secret === 'string' ? Buffer.from(options.secret, 'utf8') : options.secret
      if (secret.length === 0) throw new OptionError('jwt.secret must not be empty')
      allowed = HMAC
    } else if (options.publicKey !== undefined) {
      const pk = options.publicKey
      const key =
        typeof pk === 'string'
          ? createPublicKey(pk)
          : 'type' in pk && typeof (pk as KeyObject).export === 'function'
            ? (pk as KeyObject)
            : createPublicKey({ key: pk as JsonWebKey, format: 'jwk' })
      if (key.type !== 'public') throw new OptionError('jwt.publicKey must be a public key')
      this.#key = key
      allowed = BY_KEY_TYPE[key.asymmetricKeyType ?? ''] ?? []
    } else {
      this.#key = createRemoteJWKSet(new URL(options.jwksUrl!))
      allowed = ASYMMETRIC
    }
    const algorithms = options.algorithms ?? allowed
    if (algorithms.length === 0 || algorithms.some((a) => a.toLowerCase() === 'none')) {
      throw new OptionError('jwt.algorithms must list real algorithms; none is never accepted')
    }
    // A secret never verifies an asymmetric alg and a public key never an HMAC one.
    const mismatched = algorithms.filter((a) => !allowed.includes(a))
    if (mismatched.length > 0) {
      throw new OptionError(`jwt.algorithms ${mismatched.join(', ')} do not fit the key`)
    }
    this.#options = {
      algorithms,
      ...(options.issuer === undefined ? {} : { issuer: options.issuer }),
      ...(options.audience === undefined ? {} : { audience: options.audience }),
      clockTolerance: options.clockTolerance ?? 5,
    }
    if (secret) this.#hmac = new HmacJwt(secret, this.#options)
  }

  /**
   * Verifies `token`; throws TokenError (401) with a reason. With a secret it answers at once (no
   * turn of the event loop: an HMAC is computed synchronously), with a public key or a JWKS it
   * resolves later.
   */
  verify(token: string): VerifiedToken | Promise<VerifiedToken> {
    const hmac = this.#hmac
    if (hmac === null) return this.#verifyWith(token, this.#key!)
    let payload: JWTPayload
    try {
      payload = hmac.verify(token)
    } catch (err) {
      throw reason(err)
    }
    return this.#verified(payload)
  }

  async #verifyWith(
    token: string,
    key: KeyObject | ReturnType<typeof createRemoteJWKSet>,
  ): Promise<VerifiedToken> {
    let payload: JWTPayload
    try {
      if (typeof key === 'function') payload = (await jwtVerify(token, key, this.#options)).payload
      else payload = (await jwtVerify(token, key, this.#options)).payload
    } catch (err) {
      throw reason(err)
    }
    return this.#verified(payload)
  }

  /** The identity and expiry a verified payload gives. */
  #verified(payload: JWTPayload): VerifiedToken {
    if (typeof payload.sub !== 'string' || payload.sub === '') {
      throw new TokenError('WSF_TOKEN_INVALID', 'token has no sub claim')
    }
    const groups = Array.isArray(payload.groups)
      ? payload.groups.filter((g): g is string => typeof g === 'string')
      : []
    return {
      identity: normalizeIdentity({
        user: payload.sub,
        groups,
        sessionKey: typeof payload.sid === 'string' ? payload.sid : null,
      }),
      expiresAt:
        typeof payload.exp === 'number'
          ? (payload.exp + this.#options.clockTolerance) * 1000
          : null,
      claims: payload,
    }
  }
}
