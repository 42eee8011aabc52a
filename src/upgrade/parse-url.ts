import { type Audience, FLAG_ORDER, facilityProblem, isAudience } from '../channels/naming.js'
import { HttpError } from '../errors.js'

/** What the URL of one WebSocket request asks for. */
export interface ParsedRequest {
  /** The facility named after the path prefix, percent-decoded. */
  facility: string
  /** Audiences named by `subscribe-*` flags, without duplicates, in a fixed order. */
  subscribe: Audience[]
  /** Audiences named by `publish-*` flags, without duplicates, in a fixed order. */
  publish: Audience[]
  /** The `echo` flag: the client also receives the messages it publishes. */
  echo: boolean
  /** Every query parameter, keys lower-cased (for hooks that read their own parameters). */
  query: Map<string, string>
  /** The first `token` parameter (that name exactly, as `tokenOf` reads it), or null. */
  token: string | null
}

/** Limits applied while parsing. */
export interface ParseLimits {
  /** @default 128 */
  maxFacilityLength?: number
  /** Longest request target (path and query) accepted. @default 4096 */
  maxUrlLength?: number
  /** Most query parameters accepted. @default 32 */
  maxFlags?: number
}

/** True when the request target's path lies under `prefix` (which ends with `/`). */
export function matchesPath(url: string, prefix: string): boolean {
  const path = url.split('?', 1)[0] ?? ''
  return path.startsWith(prefix) || `${path}/` === prefix
}

/**
 * Parses the request target of an upgrade under `prefix` into facility and flags.
 * Pure: throws HttpError(400) for a malformed target, never touches I/O.
 * @example parseRequest('/ws/chat?subscribe-broadcast&ECHO', '/ws/')
 */
export function parseRequest(url: string, prefix: string, limits: ParseLimits = {}): ParsedRequest {
  const maxUrl = limits.maxUrlLength ?? 4096
  if (url.length > maxUrl) throw new HttpError(414, `request URL longer than ${maxUrl} characters`)
  const q = url.indexOf('?')
  const rawPath = q === -1 ? url : url.slice(0, q)
  const rawQuery = q === -1 ? '' : url.slice(q + 1)
  // `/ws` for prefix `/ws/` is the prefix without a facility: an empty facility, not another path.
  if (`${rawPath}/` === prefix) throw new HttpError(400, 'facility is empty')
  if (!rawPath.startsWith(prefix)) throw new HttpError(404, `path is not under ${prefix}`)

  let rest = rawPath.slice(prefix.length)
  if (rest.endsWith('/')) rest = rest.slice(0, -1)
  let facility: string
  try {
    facility = decodeURIComponent(rest)
  } catch {
    throw new HttpError(400, 'facility is not valid percent-encoding')
  }
  const problem = facilityProblem(facility, limits.maxFacilityLength)
  if (problem) throw new HttpError(400, problem)

  const query = new Map<string, string>()
  // The audiences asked for, one bit each (FLAG_ORDER's index): no Set per request.
  let subscribe = 0
  let publish = 0
  let echo = false
  const maxFlags = limits.maxFlags ?? 32
  let count = 0
  let token: string | null = null
  for (const [rawKey, value] of queryParams(rawQuery)) {
    if (rawKey === 'token' && token === null) token = value
    if (++count > maxFlags) throw new HttpError(400, `more than ${maxFlags} query parameters`)
    const key = rawKey.toLowerCase()
    if (!query.has(key)) query.set(key, value)
    if (key === 'echo') echo = true
    const dash = key.indexOf('-')
    if (dash === -1) continue
    const verb = key.slice(0, dash)
    const audience = key.slice(dash + 1)
    if (!isAudience(audience)) continue
    if (verb === 'subscribe') subscribe |= 1 << FLAG_ORDER.indexOf(audience)
    else if (verb === 'publish') publish |= 1 << FLAG_ORDER.indexOf(audience)
  }
  return {
    facility,
    subscribe: FLAG_ORDER.filter((_, i) => subscribe & (1 << i)),
    publish: FLAG_ORDER.filter((_, i) => publish & (1 << i)),
    echo,
    query,
    token,
  }
}

/**
 * The `key=value` pairs of a query, as URLSearchParams reads them. Without `%` or `+` there is
 * nothing to decode and splitting is all it does, done here without its iterator and entry
 * arrays (most upgrade URLs: flags, a base64url token); otherwise URLSearchParams itself.
 */
function queryParams(raw: string): Iterable<[string, string]> {
  if (raw.includes('%') || raw.includes('+')) return new URLSearchParams(raw)
  const pairs: [string, string][] = []
  for (const part of raw.split('&')) {
    if (part === '') continue
    const eq = part.indexOf('=')
    pairs.push(eq === -1 ? [part, ''] : [part.slice(0, eq), part.slice(eq + 1)])
  }
  return pairs
}
