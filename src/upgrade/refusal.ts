import type { IncomingMessage } from 'node:http'
import { closeReason, refusalCode } from '../close-codes.js'
import { type HttpError, OptionError } from '../errors.js'
import { BEARER_PROTOCOL, selectProtocol } from '../identity/jwt.js'
import { type OriginsOption, originAccepted } from './origin.js'

/**
 * How a refusal reaches the client. A browser's `WebSocket` never sees the HTTP status of a
 * refused upgrade (only 1006), so it cannot tell a bad token from a network error.
 * - `'http'`: always an HTTP status and reason before the upgrade (ws4redis).
 * - `'close'`: the handshake is accepted and closed at once with 4000 + status and the reason
 *   (4401 for 401), for every well-formed handshake.
 * - `'auto'`: `'close'` for handshakes that offer the `wsfacility` subprotocol (wsfacility/client
 *   always does; a page can: `new WebSocket(url, 'wsfacility')`), `'http'` for all others — curl,
 *   load balancers, the `ws` package, plain browser code see what they always saw.
 */
export type RefusalsOption = 'http' | 'close' | 'auto'

/**
 * The subprotocol a refusal told by a close is answered with when the client offers it (as
 * wsfacility/client does, beside `wsfacility`): the client knows from the handshake itself that
 * the socket only carries a refusal, so it never reports it open, sends nothing on it and counts
 * it as a failed attempt. Never selected for a connection that opens.
 */
export const REFUSAL_PROTOCOL = 'wsfacility.refusal'

/** The subprotocol of a connection that opens (selectProtocol), never the refusal marker. */
export function openProtocol(protocols: Set<string>): string | false {
  const rest = new Set(protocols)
  rest.delete(REFUSAL_PROTOCOL)
  return selectProtocol(rest)
}

/** The subprotocol of a refusal told by a close: the refusal marker when offered. */
export function refusalProtocol(protocols: Set<string>): string | false {
  return protocols.has(REFUSAL_PROTOCOL) ? REFUSAL_PROTOCOL : openProtocol(protocols)
}

/** Throws OptionError unless `value` can be the `refusals` option. */
export function validateRefusals(value: unknown): void {
  if (value !== 'http' && value !== 'close' && value !== 'auto') {
    throw new OptionError("refusals must be 'http', 'close' or 'auto'")
  }
}

/** True when the handshake's `Sec-WebSocket-Protocol` offers `protocol`. */
function offers(request: IncomingMessage, protocol: string): boolean {
  const header = request.headers['sec-websocket-protocol']
  if (typeof header !== 'string') return false
  return header.split(',').some((p) => p.trim() === protocol)
}

/**
 * True when refusals of this well-formed handshake are to be told by a close after accepting it
 * rather than by an HTTP status (see RefusalsOption).
 */
export function refusesByClose(
  request: IncomingMessage,
  mode: RefusalsOption,
  origins: OriginsOption | undefined,
): boolean {
  if (mode === 'http') return false
  if (mode === 'auto' && !offers(request, BEARER_PROTOCOL)) return false
  // A page reads the close code of a socket it opened, never an HTTP status. A foreign page whose
  // request carries the victim's cookies must not learn from it what they are worth (logged in
  // or not, at the user's connection limit): such a request is refused over HTTP, as before.
  return typeof request.headers.cookie !== 'string' || originAccepted(request, origins)
}

/**
 * The close frame that tells `refusal` after the handshake, or null for a status that has no
 * close code. A `Retry-After` (which a close frame cannot carry as a header) ends the reason as
 * `; retry after N s`: wsfacility/client waits at least that long before its next attempt.
 * @example refusalClose(new HttpError(503, 'too many connections', code, { 'Retry-After': '5' }))
 * // → { code: 4503, reason: 'too many connections; retry after 5 s' }
 */
export function refusalClose(refusal: HttpError): { code: number; reason: string } | null {
  const code = refusalCode(refusal.status)
  if (code === null) return null
  const after = refusal.headers['Retry-After'] ?? ''
  const suffix = /^\d+$/.test(after) ? `; retry after ${after} s` : ''
  // The suffix is what clients parse: the message is cut to make room for it.
  const message = refusal.message.replace(/[\r\n]+/g, ' ')
  return { code, reason: closeReason(message, 123 - Buffer.byteLength(suffix)) + suffix }
}
