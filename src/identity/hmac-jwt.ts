import { createHmac, timingSafeEqual } from 'node:crypto'
import { errors, type JWTClaimVerificationOptions, type JWTPayload, UnsecuredJWT } from 'jose'

const BASE64URL = /^[A-Za-z0-9_-]+$/
/** `{"alg":"none"}`: the header under which jose checks the claims of a token verified here. */
const NONE_HEADER = Buffer.from('{"alg":"none"}').toString('base64url')

/**
 * Verifies an HS256/384/512 JWT: the signature with node:crypto's HMAC, the claims (exp, nbf,
 * iss, aud, clock tolerance) with jose. WebCrypto, which jose uses for signatures, costs ten
 * times as much per token as a synchronous HMAC, and in a connection storm that was most of a
 * JWT connection's CPU. Errors are jose's, so callers map them as for jwtVerify.
 */
export function verifyHmacJwt(
  token: string,
  secret: Uint8Array,
  algorithms: readonly string[],
  claims: JWTClaimVerificationOptions,
): JWTPayload {
  const parts = token.split('.')
  if (parts.length !== 3 || !parts.every((p) => BASE64URL.test(p))) {
    throw new errors.JWSInvalid('JWS must be three base64url parts')
  }
  const [encodedHeader, encodedPayload, encodedSignature] = parts as [string, string, string]
  let header: unknown
  try {
    header = JSON.parse(Buffer.from(encodedHeader, 'base64url').toString('utf8'))
  } catch {
    throw new errors.JWSInvalid('JWS Protected Header is invalid')
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) {
    throw new errors.JWSInvalid('JWS Protected Header must be an object')
  }
  const { alg } = header as { alg?: unknown }
  if (typeof alg !== 'string' || !algorithms.includes(alg)) {
    throw new errors.JOSEAlgNotAllowed('"alg" (Algorithm) Header Parameter value not allowed')
  }
  // Extensions change what is signed or how it must be read: none is understood here, so, as
  // jose does for unknown ones, a token that uses any is refused.
  if ('crit' in header || 'b64' in header) {
    throw new errors.JWSInvalid('JWS extensions are not supported')
  }
  const expected = createHmac(`sha${alg.slice(2)}`, secret)
    .update(`${encodedHeader}.${encodedPayload}`)
    .digest()
  const given = Buffer.from(encodedSignature, 'base64url')
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
    throw new errors.JWSSignatureVerificationFailed()
  }
  return UnsecuredJWT.decode(`${NONE_HEADER}.${encodedPayload}.`, claims).payload
}
