import { WsfClientError } from './errors.js'
/**
 * Which server closes the client reconnects after.
 *
 * - 1001 (going away: a restart or deploy), 1006 (connection lost, or the upgrade failed),
 *   1011 (server error), 1012 (service restart), 1013 (try again later, also the broker's
 *   slow-consumer close) and 1014 (bad gateway) are transient: reconnect with backoff.
 * - 4001 (token expired) is retried only when `token` is a provider, which is asked for a
 *   fresh token; with a fixed string the same expired token would be refused again.
 * - 4400–4599 are the broker's refusals, 4000 + the HTTP status it would have answered the
 *   upgrade with. 4429 (too many connections) and 45xx (unavailable, shutting down, internal
 *   error) are retried, no sooner than the `retry after N s` that ends the reason; 4401 (bad or
 *   missing credentials) is retried once when `token` is a provider, which may give a fresh
 *   token; every other 44xx (400 bad request, 403 forbidden…) will be refused again as is.
 * - Everything else means "do not retry as is": 1008 (policy: an invalid or foreign token),
 *   1009 (message too big), 1000 (the server ended the connection on purpose), 1002/1003/1007,
 *   other 4xxx. The client stops (status 'closed') and emits an error, except after 1000.
 */
const TRANSIENT = new Set([1001, 1006, 1011, 1012, 1013, 1014])

/** Close code of a JWT that expired while connected. */
export const TOKEN_EXPIRED = 4001
/** Close code of a policy violation. */
export const POLICY = 1008

/** The HTTP status of a refusal told by close code `code` (4401 → 401), or null. */
export function refusalStatus(code: number): number | null {
  return code >= 4400 && code <= 4599 ? code - 4000 : null
}

/**
 * Whether to reconnect after the server closed with `code`. `authRetried`: the attempt before
 * this one was refused with 4401 already (a provider gets one more chance, not more).
 */
export function shouldReconnect(
  code: number,
  hasTokenProvider: boolean,
  authRetried = false,
): boolean {
  if (TRANSIENT.has(code)) return true
  if (code === TOKEN_EXPIRED) return hasTokenProvider
  const status = refusalStatus(code)
  if (status === null) return false
  if (status === 429 || status >= 500) return true
  return status === 401 && hasTokenProvider && !authRetried
}

/**
 * The wait a refusal's reason asks for, in ms: the broker ends it with `; retry after N s` where
 * an HTTP refusal would carry `Retry-After: N`. Null when it asks for none.
 */
export function retryAfter(reason: string): number | null {
  const match = /(?:^|; )retry after (\d{1,9}) s$/.exec(reason)
  return match ? Number(match[1]) * 1000 : null
}

/**
 * The error a client reports when a close ends it for good (no reconnect): a refusal, a policy
 * close, an expired token without a provider, any other close but 1000; null for 1000.
 */
export function finalCloseError(code: number, reason: string): WsfClientError | null {
  const status = refusalStatus(code)
  if (status !== null) {
    return new WsfClientError(
      'WSF_CLIENT_REFUSED',
      `refused by the server: ${status} (${reason})`,
      {
        closeCode: code,
        status,
      },
    )
  }
  if (code === POLICY) {
    return new WsfClientError('WSF_CLIENT_POLICY', `closed by the server: policy (${reason})`, {
      closeCode: code,
    })
  }
  if (code === TOKEN_EXPIRED) {
    return new WsfClientError(
      'WSF_CLIENT_TOKEN_EXPIRED',
      'token expired; give a token provider to refresh it',
      { closeCode: code },
    )
  }
  if (code === 1000) return null
  return new WsfClientError(
    'WSF_CLIENT_CLOSED_BY_SERVER',
    `closed by the server with ${code} (${reason})`,
    { closeCode: code },
  )
}
