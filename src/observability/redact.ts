/**
 * Query parameters whose values are credentials: `token` (read by the JWT authentication, see
 * `tokenOf`) and the usual names of tokens, keys and passwords, compared without case.
 */
export const CREDENTIAL_PARAMS: ReadonlySet<string> = new Set([
  'token',
  'access_token',
  'id_token',
  'refresh_token',
  'jwt',
  'auth',
  'authorization',
  'bearer',
  'api_key',
  'apikey',
  'key',
  'secret',
  'password',
  'passwd',
  'pwd',
  'session',
  'sessionid',
  'sid',
])

/** What a redacted value reads as. */
export const REDACTED = 'REDACTED'

/** The key of one `key=value` query part, decoded as URLSearchParams (and so `tokenOf`) decodes it. */
function keyOf(part: string): string {
  for (const [key] of new URLSearchParams(part)) return key.toLowerCase()
  return ''
}

/**
 * A request target fit for logs: the value of every credential parameter replaced by
 * `REDACTED`, the rest left exactly as sent.
 * @example redactUrl('/ws/chat?subscribe-user&token=eyJ…') === '/ws/chat?subscribe-user&token=REDACTED'
 */
export function redactUrl(url: string): string
export function redactUrl(url: string | undefined): string | undefined
export function redactUrl(url: string | undefined): string | undefined {
  if (url === undefined) return undefined
  const q = url.indexOf('?')
  if (q === -1) return url
  // Everything after `?` is read as the query, a `#` included, as tokenOf reads it.
  const query = url
    .slice(q + 1)
    .split('&')
    .map((part) => {
      const eq = part.indexOf('=')
      if (eq === -1 || !CREDENTIAL_PARAMS.has(keyOf(part))) return part
      return `${part.slice(0, eq)}=${REDACTED}`
    })
    .join('&')
  return `${url.slice(0, q + 1)}${query}`
}

/**
 * A URL fit for messages: its password, if any, replaced by `REDACTED`; a value that is not a
 * URL is returned whole only when it holds no `@` (where a password would sit), else REDACTED.
 * @example redactPassword('redis://:hunter2@cache:6379') === 'redis://:REDACTED@cache:6379'
 */
export function redactPassword(url: string): string {
  let u: URL
  try {
    u = new URL(url)
  } catch {
    return url.includes('@') ? REDACTED : url
  }
  if (u.password) u.password = REDACTED
  return u.toString()
}
