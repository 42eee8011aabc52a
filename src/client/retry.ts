/**
 * Which server closes the client reconnects after.
 *
 * - 1001 (going away: a restart or deploy), 1006 (connection lost, or the upgrade failed),
 *   1011 (server error), 1012 (service restart), 1013 (try again later, also the broker's
 *   slow-consumer close) and 1014 (bad gateway) are transient: reconnect with backoff.
 * - 4001 (token expired) is retried only when `token` is a provider, which is asked for a
 *   fresh token; with a fixed string the same expired token would be refused again.
 * - Everything else means "do not retry as is": 1008 (policy: an invalid or foreign token),
 *   1009 (message too big), 1000 (the server ended the connection on purpose), 1002/1003/1007,
 *   other 4xxx. The client stops (status 'closed') and emits an error, except after 1000.
 */
const TRANSIENT = new Set([1001, 1006, 1011, 1012, 1013, 1014])

/** Close code of a JWT that expired while connected. */
export const TOKEN_EXPIRED = 4001
/** Close code of a policy violation. */
export const POLICY = 1008

/** Whether to reconnect after the server closed with `code`. */
export function shouldReconnect(code: number, hasTokenProvider: boolean): boolean {
  return TRANSIENT.has(code) || (code === TOKEN_EXPIRED && hasTokenProvider)
}
