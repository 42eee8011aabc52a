/** Who a channel reaches; the `subscribe-*` / `publish-*` flags of a URL. */
export type Audience = 'broadcast' | 'group' | 'user' | 'session'

const AUDIENCES: readonly Audience[] = ['broadcast', 'group', 'user', 'session']

/** Extra query parameters: `true` or `''` gives a bare key, `false`/null/undefined leaves it out. */
export type QueryParams = Record<string, string | number | boolean | null | undefined>

/** What a WebSocket URL is built from. */
export interface UrlOptions {
  /**
   * Base URL: `ws://host:port`, `wss://…`, `http(s)://…` (turned into `ws(s)://`), or a relative
   * URL such as `'/'`, resolved against `location` in browsers. Its path is kept: `path` goes
   * under it (`https://h/app/` → `wss://h/app/ws/…`).
   * @default '/'
   */
  url?: string | undefined
  /** Path prefix the broker accepts upgrades on, under the base URL's path. @default '/ws/' */
  path?: string | undefined
  /** Facility name; percent-encoded into the path. */
  facility: string
  /** Audiences to receive from (`subscribe-<audience>` flags). @default [] */
  subscribe?: readonly Audience[] | undefined
  /** Audiences every sent message is published to (`publish-<audience>` flags). @default [] */
  publish?: readonly Audience[] | undefined
  /** Also receive the messages this connection publishes. @default false */
  echo?: boolean | undefined
  /** Extra query parameters, after the flags. */
  query?: QueryParams | undefined
}

function flags(
  kind: 'subscribe' | 'publish',
  audiences: readonly Audience[] | undefined,
): string[] {
  if (audiences === undefined) return []
  if (!Array.isArray(audiences)) throw new TypeError(`${kind} must be an array of audiences`)
  return audiences.map((a) => {
    if (!AUDIENCES.includes(a)) throw new TypeError(`unknown ${kind} audience: ${String(a)}`)
    return `${kind}-${a}`
  })
}

function base(url: string): URL {
  const location = (globalThis as { location?: { href: string } }).location
  let resolved: URL
  try {
    resolved = location ? new URL(url, location.href) : new URL(url)
  } catch {
    throw new TypeError(`url ${JSON.stringify(url)} is not absolute and there is no location`)
  }
  if (resolved.protocol === 'http:') resolved.protocol = 'ws:'
  else if (resolved.protocol === 'https:') resolved.protocol = 'wss:'
  if (resolved.protocol !== 'ws:' && resolved.protocol !== 'wss:') {
    throw new TypeError(`url must be ws:, wss:, http: or https:, not ${resolved.protocol}`)
  }
  return resolved
}

/**
 * The WebSocket URL of a facility: flags are keys without values, as ws4redis expects.
 * @example buildUrl({ url: 'ws://localhost:8000', facility: 'chat', subscribe: ['user', 'broadcast'], publish: ['session'], echo: true })
 * // → 'ws://localhost:8000/ws/chat?subscribe-user&subscribe-broadcast&publish-session&echo'
 */
export function buildUrl(options: UrlOptions): string {
  const { facility, path = '/ws/', echo = false, query = {} } = options
  if (typeof facility !== 'string' || facility === '') {
    throw new TypeError('facility must be a non-empty string')
  }
  const target = base(options.url ?? '/')
  // The base's path is where the app lives (`https://h/app/` behind a proxy): `path` goes under
  // it, as a directory whether or not the base ends with `/`.
  const under = target.pathname.replace(/\/+$/, '')
  const prefix = `${under}/${path.replace(/^\/+/, '')}`.replace(/\/?$/, '/')
  const params = [...flags('subscribe', options.subscribe), ...flags('publish', options.publish)]
  if (echo) params.push('echo')
  for (const [key, value] of Object.entries(query)) {
    if (value === false || value === null || value === undefined) continue
    const k = encodeURIComponent(key)
    params.push(value === true || value === '' ? k : `${k}=${encodeURIComponent(String(value))}`)
  }
  const search = params.length > 0 ? `?${params.join('&')}` : ''
  return `${target.protocol}//${target.host}${prefix}${encodeURIComponent(facility)}${search}`
}
