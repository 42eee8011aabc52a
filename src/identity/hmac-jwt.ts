import { isAscii } from 'node:buffer'
import { createHmac, createSecretKey, type KeyObject, timingSafeEqual } from 'node:crypto'
import { errors, type JWTPayload } from 'jose'
import { HmacSha256 } from './hmac-sha256.js'

/** Three base64url parts joined by dots: the only shape a compact JWS can have. */
const COMPACT = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/
/** UTF-8 that refuses malformed bytes, as jose reads a claims set. */
const STRICT_UTF8 = new TextDecoder('utf-8', { fatal: true })
/** Most headers an HmacJwt remembers; past it, it forgets them all and starts again. */
const MAX_HEADERS = 64

/** The claim checks of HmacJwt (jose's options of the same names). */
export interface ClaimChecks {
  issuer?: string | string[]
  audience?: string | string[]
  /** Seconds. */
  clockTolerance: number
}

/**
 * Verifies HS256/384/512 JWTs with one secret: the signature (HS256 with hmac-sha256.ts, the
 * others with node:crypto's HMAC), then the claims as jose's jwtVerify checks them with the same
 * options (checkClaims). WebCrypto, which jose uses for signatures, costs ten times as much per
 * token as a synchronous HMAC, and in a connection storm that was most of a JWT connection's
 * CPU. Errors are jose's, so callers map them as for jwtVerify.
 */
export class HmacJwt {
  readonly #secret: KeyObject
  readonly #hs256: HmacSha256
  readonly #options: ClaimChecks & { algorithms: readonly string[] }
  /**
   * The `alg` of headers already accepted, by their encoded text: an application's tokens share
   * one or two headers, decoded and checked once instead of once per token. Only accepted ones
   * are kept, and at most MAX_HEADERS.
   */
  readonly #headers = new Map<string, string>()

  /** `options`: the accepted `alg` values and the claim checks. */
  constructor(secret: Uint8Array, options: ClaimChecks & { algorithms: readonly string[] }) {
    this.#secret = createSecretKey(Uint8Array.from(secret))
    this.#hs256 = new HmacSha256(secret)
    this.#options = options
  }

  /** The claims of `token` once its signature and claims are checked; throws jose's errors. */
  verify(token: string): JWTPayload {
    if (!COMPACT.test(token)) throw new errors.JWSInvalid('JWS must be three base64url parts')
    const headerEnd = token.indexOf('.')
    const payloadEnd = token.indexOf('.', headerEnd + 1)
    const alg = this.#alg(token.slice(0, headerEnd))
    const signed = token.slice(0, payloadEnd)
    const given = Buffer.from(token.slice(payloadEnd + 1), 'base64url')
    const valid =
      alg === 'HS256'
        ? this.#hs256.verifies(signed, given)
        : timingSafeMatch(
            createHmac(`sha${alg.slice(2)}`, this.#secret)
              .update(signed)
              .digest(),
            given,
          )
    if (!valid) throw new errors.JWSSignatureVerificationFailed()
    return checkClaims(
      Buffer.from(token.slice(headerEnd + 1, payloadEnd), 'base64url'),
      this.#options,
    )
  }

  /** The accepted `alg` of an encoded protected header; throws jose's error for any other. */
  #alg(encoded: string): string {
    const known = this.#headers.get(encoded)
    if (known !== undefined) return known
    let header: unknown
    try {
      header = JSON.parse(Buffer.from(encoded, 'base64url').toString('utf8'))
    } catch {
      throw new errors.JWSInvalid('JWS Protected Header is invalid')
    }
    if (typeof header !== 'object' || header === null || Array.isArray(header)) {
      throw new errors.JWSInvalid('JWS Protected Header must be an object')
    }
    const { alg } = header as { alg?: unknown }
    if (typeof alg !== 'string' || !this.#options.algorithms.includes(alg)) {
      throw new errors.JOSEAlgNotAllowed('"alg" (Algorithm) Header Parameter value not allowed')
    }
    // Extensions change what is signed or how it must be read: none is understood here, so, as
    // jose does for unknown ones, a token that uses any is refused.
    if ('crit' in header || 'b64' in header) {
      throw new errors.JWSInvalid('JWS extensions are not supported')
    }
    if (this.#headers.size >= MAX_HEADERS) this.#headers.clear()
    this.#headers.set(encoded, alg)
    return alg
  }
}

/** True when two MACs are equal, compared in constant time. */
function timingSafeMatch(expected: Buffer, given: Buffer): boolean {
  return given.length === expected.length && timingSafeEqual(given, expected)
}

const claimFailed = (payload: JWTPayload, claim: string, why: string, reason: string) =>
  new errors.JWTClaimValidationFailed(why, payload, claim, reason)

/** A date claim: absent, or a number (else the claim is invalid). */
function numericClaim(payload: JWTPayload, claim: 'iat' | 'nbf' | 'exp'): number | undefined {
  const value = payload[claim]
  if (value === undefined) return undefined
  if (typeof value !== 'number')
    throw claimFailed(payload, claim, `"${claim}" claim must be a number`, 'invalid')
  return value
}

/**
 * The claims set of a verified token, checked as jose checks it for jwtVerify with `checks`: a
 * top-level JSON object in strict UTF-8; `iss` then `aud` present when required and one of the
 * accepted; `iat`, `nbf`, `exp` numbers when present; `nbf` not after now and `exp` after now,
 * each within the tolerance (whole seconds since the epoch).
 */
function checkClaims(bytes: Buffer, checks: ClaimChecks): JWTPayload {
  let payload: unknown
  try {
    // ASCII (most claims sets) reads the same in every encoding: no strict decoder needed.
    payload = JSON.parse(isAscii(bytes) ? bytes.toString('latin1') : STRICT_UTF8.decode(bytes))
  } catch (cause) {
    throw new errors.JWTInvalid('JWT Claims Set must be a top-level JSON object', { cause })
  }
  if (typeof payload !== 'object' || payload === null || Array.isArray(payload))
    throw new errors.JWTInvalid('JWT Claims Set must be a top-level JSON object')
  const claims = payload as JWTPayload
  const { issuer, audience, clockTolerance } = checks
  if (issuer !== undefined && !Object.hasOwn(claims, 'iss'))
    throw claimFailed(claims, 'iss', 'missing required "iss" claim', 'missing')
  if (audience !== undefined && !Object.hasOwn(claims, 'aud'))
    throw claimFailed(claims, 'aud', 'missing required "aud" claim', 'missing')
  if (issuer !== undefined && !(Array.isArray(issuer) ? issuer : [issuer]).includes(claims.iss!))
    throw claimFailed(claims, 'iss', 'unexpected "iss" claim value', 'check_failed')
  if (audience !== undefined) {
    const accepted = typeof audience === 'string' ? [audience] : audience
    const aud = claims.aud
    const present =
      typeof aud === 'string'
        ? accepted.includes(aud)
        : Array.isArray(aud) && accepted.some((a) => aud.includes(a))
    if (!present) throw claimFailed(claims, 'aud', 'unexpected "aud" claim value', 'check_failed')
  }
  const now = Math.floor(Date.now() / 1000)
  numericClaim(claims, 'iat')
  const nbf = numericClaim(claims, 'nbf')
  if (nbf !== undefined && nbf > now + clockTolerance)
    throw claimFailed(claims, 'nbf', '"nbf" claim timestamp check failed', 'check_failed')
  const exp = numericClaim(claims, 'exp')
  if (exp !== undefined && exp <= now - clockTolerance)
    throw new errors.JWTExpired('"exp" claim timestamp check failed', claims, 'exp', 'check_failed')
  return claims
}
