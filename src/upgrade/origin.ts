import type { IncomingMessage } from 'node:http'
import type { Authentication } from '../identity/authenticator.js'
import { HttpError, OptionError } from '../errors.js'

/**
 * Origins allowed to open connections besides the server's own host: a list of exact origins
 * (`'https://app.example.com'`), or a function deciding from the `Origin` header.
 */
export type OriginsOption =
  readonly string[] | ((origin: string, request: IncomingMessage) => boolean)

/** Throws TypeError unless `value` can be the `origins` option. */
export function validateOrigins(value: unknown): void {
  if (typeof value === 'function') return
  if (
    !Array.isArray(value) ||
    !value.every((o) => typeof o === 'string' && canonical(o) !== null)
  ) {
    throw new OptionError(
      "origins must be a function or a list of origins such as 'https://app.example.com'",
    )
  }
}

/** `scheme://host[:port]` as browsers send it (default port left out, lower case), or null. */
function canonical(origin: string): string | null {
  try {
    const url = new URL(origin)
    if (url.origin === 'null') return null
    return url.origin
  } catch {
    return null
  }
}

/** True when the request's `Origin` names the host and port the request was sent to. */
export function isSameHost(origin: string, request: IncomingMessage): boolean {
  const host = request.headers.host
  if (typeof host !== 'string') return false
  let from: URL
  let to: URL
  try {
    from = new URL(origin)
    to = new URL(`http://${host}`)
  } catch {
    return false
  }
  if (from.hostname !== to.hostname) return false
  // A Host header without a port means the default port of the request's scheme, which the
  // server may not know behind a TLS proxy: then the origin must be on a default port too.
  const explicit = /:(\d+)$/.exec(host)?.[1]
  const originPort = from.port || (from.protocol === 'https:' ? '443' : '80')
  return explicit === undefined ? from.port === '' : Number(explicit) === Number(originPort)
}

/**
 * The origins a handshake names: `Origin`, and `Sec-WebSocket-Origin`, which the version-8
 * handshake of the hybi drafts sends instead (ws accepts version 8 too).
 */
export function originsOf(request: IncomingMessage): string[] {
  const { origin, 'sec-websocket-origin': hybi } = request.headers
  return [origin, hybi].filter((o) => typeof o === 'string')
}

/** True when `origin` is the request's own host or one `origins` allows. */
function allowed(
  origin: string,
  request: IncomingMessage,
  origins: OriginsOption | undefined,
): boolean {
  if (isSameHost(origin, request)) return true
  if (typeof origins === 'function') return origins(origin, request) === true
  if (origins === undefined) return false
  const given = canonical(origin)
  return given !== null && origins.some((o) => canonical(o) === given)
}

/**
 * Refuses a cross-site WebSocket (403) before the upgrade. Browsers always send `Origin` (or
 * `Sec-WebSocket-Origin`, see originsOf; each one sent must pass); a request without one is not
 * from a page and is let through. With `origins` set, every
 * connection must come from the server's own host or an allowed origin; without it, only
 * connections authenticated by a cookie are checked (same host only), because only those carry
 * credentials a foreign page can borrow (cross-site WebSocket hijacking).
 */
export function checkOrigin(
  request: IncomingMessage,
  origins: OriginsOption | undefined,
  cookieAuthenticated: boolean,
): void {
  if (origins === undefined && !cookieAuthenticated) return
  const refused = originsOf(request).find((origin) => !allowed(origin, request, origins))
  if (refused === undefined) return
  // Named, with the way out, for whoever reads the refusal: the page's console, the logs.
  const shown = refused.length > 80 ? `${refused.slice(0, 79)}…` : refused
  throw new HttpError(
    403,
    `origin ${shown} not allowed: add it to the origins option (--origins)`,
    'WSF_ORIGIN_REFUSED',
  )
}

/**
 * True when every origin the request names is its own host or one `origins` allows, or it names
 * none (not a page): a page the broker would let connect, cookies or not.
 */
export function originAccepted(
  request: IncomingMessage,
  origins: OriginsOption | undefined,
): boolean {
  return originsOf(request).every((origin) => allowed(origin, request, origins))
}

/**
 * True when a browser's cookies may have established the identity: an express-session cookie, or
 * an `identify` hook or passport user on a request that carried cookies (the broker cannot tell
 * what such code read, so it assumes the worst).
 */
export function isCookieAuthenticated(request: IncomingMessage, auth: Authentication): boolean {
  if (auth.via === 'session') return true
  if (auth.via !== 'identify' && auth.via !== 'user') return false
  const { user, groups, sessionKey } = auth.identity
  const someone = user !== null || sessionKey !== null || groups.length > 0
  return someone && typeof request.headers.cookie === 'string'
}
