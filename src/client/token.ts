/**
 * In-band token refresh: when a connection's JWT is about to expire, the client asks its token
 * provider for a new one and sends `{"token":"<jwt>"}` on the open socket, so the broker keeps
 * the connection until the new token's expiry instead of closing it with 4001.
 */

/** What the client reads from a JWT (never verified: the broker does that). */
export interface TokenTimes {
  /** `exp` in ms since the epoch. */
  expiresAt: number
  /** `iat` in ms since the epoch, when the token has one. */
  issuedAt: number | null
}

/** Refresh this long before expiry at least, when the token lives long enough (ms). */
export const REFRESH_LEAD = 5000
/** Otherwise refresh once this share of the remaining lifetime has passed. */
export const REFRESH_AT = 0.85

function base64UrlDecode(text: string): string {
  const b64 = text.replace(/-/g, '+').replace(/_/g, '/')
  const binary = atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4))
  const bytes = new Uint8Array(binary.length)
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i)
  return new TextDecoder().decode(bytes)
}

/**
 * `exp` and `iat` of a JWT, decoded without verifying (base64url JSON); null when `token` is not
 * a JWT or has no numeric `exp`.
 */
export function tokenTimes(token: string): TokenTimes | null {
  const parts = token.split('.')
  if (parts.length !== 3 || parts[1] === '') return null
  let payload: unknown
  try {
    payload = JSON.parse(base64UrlDecode(parts[1]!))
  } catch {
    return null
  }
  if (typeof payload !== 'object' || payload === null) return null
  const { exp, iat } = payload as { exp?: unknown; iat?: unknown }
  if (typeof exp !== 'number' || !Number.isFinite(exp)) return null
  return {
    expiresAt: exp * 1000,
    issuedAt: typeof iat === 'number' && Number.isFinite(iat) ? iat * 1000 : null,
  }
}

/**
 * Milliseconds from `now` until the client should ask for a new token: once 85% of the remaining
 * lifetime has passed, but at least 5 s before expiry — or halfway, for a token with less than
 * 10 s left. The remaining lifetime is `exp - now`, and at most `exp - iat` when the token has
 * `iat` (so a client clock running behind the issuer's does not refresh late). Null when the
 * token has already expired.
 */
export function refreshDelay(times: TokenTimes, now: number): number | null {
  let left = times.expiresAt - now
  if (times.issuedAt !== null) left = Math.min(left, times.expiresAt - times.issuedAt)
  if (!(left > 0)) return null
  return Math.min(left * REFRESH_AT, Math.max(left - REFRESH_LEAD, left / 2))
}

/** The frame that hands the broker a new token (raw and json facilities alike). */
export const tokenFrame = (token: string): string => JSON.stringify({ token })
