import { type ChannelPosition, type Positions, resolvePositions } from './positions.js'
import { globalWebSocket, type WebSocketConstructor } from './socket.js'
import { unknownKeyMessage } from './unknown-keys.js'
import { buildUrl, type UrlOptions } from './url.js'

/**
 * Returns the token to connect with; called before every (re)connect, and shortly before a JWT
 * with `exp` expires (to refresh it on the open connection). Null or '' sends none.
 */
export type TokenProvider = () => string | null | undefined | Promise<string | null | undefined>

/** Exponential backoff with full jitter between reconnection attempts. */
export interface ReconnectOptions {
  /** Delay ceiling of the first retry, in ms; doubles with each failed attempt. @default 500 */
  base?: number | undefined
  /** Largest delay ceiling, in ms. @default 30000 */
  cap?: number | undefined
  /** Failed attempts in a row before giving up (status 'closed'). @default Infinity */
  attempts?: number | undefined
}

/** Application-level heartbeat: the ws4redis text heartbeat, or the JSON envelope's ping. */
export type HeartbeatOptions = (
  | { /** The broker's `heartbeat` string, e.g. '--heartbeat--'. */ text: string; json?: undefined }
  | {
      /** Send `{"type":"ping"}`, expect `{"type":"pong"}` (`format: 'json'`). */ json: true
      text?: undefined
    }
) & {
  /** ms between heartbeats. @default 25000 */
  interval?: number | undefined
  /** Heartbeats in a row without an answer after which the connection is replaced. @default 2 */
  missed?: number | undefined
}

/** What `send()` does while the client is not connected. */
export interface QueueOptions {
  /** Messages kept while disconnected; more are rejected (`WSF_CLIENT_QUEUE_FULL`). @default 100 */
  max?: number | undefined
  /** `'queue'`: keep and send on reconnect, in order; `'reject'`: reject at once. @default 'queue' */
  whenDisconnected?: 'queue' | 'reject' | undefined
}

/** Options of `WsfClient`. */
export interface ClientOptions extends UrlOptions {
  /** A JWT, or a function giving one, called before every (re)connect. */
  token?: string | TokenProvider | undefined
  /** Send the token as subprotocol `bearer.<jwt>` beside `wsfacility`, or as `?token=`. @default 'protocol' */
  tokenIn?: 'protocol' | 'query' | undefined
  /**
   * With a token provider and a JWT with `exp`: ask the provider for a new token shortly before
   * expiry and send it as `{"token":"…"}` on the open socket, so the broker does not close with
   * 4001. Turn it off when the broker does not verify JWTs itself (on a raw facility it would
   * publish that frame as a message). @default true
   */
  tokenRefresh?: boolean | undefined
  /**
   * Positions to recover from on the first connect, e.g. `client.positions` of the page before a
   * reload (json facilities with `history`). @default none
   */
  positions?: Positions | null | undefined
  /** Backoff between reconnection attempts; `false` never reconnects. @default { base: 500, cap: 30000, attempts: Infinity } */
  reconnect?: ReconnectOptions | false | undefined
  /** Application-level heartbeat. @default none */
  heartbeat?: HeartbeatOptions | null | undefined
  /** Sending while disconnected. @default { max: 100, whenDisconnected: 'queue' } */
  queue?: QueueOptions | undefined
  /** WebSocket constructor, e.g. the `ws` package's. @default globalThis.WebSocket */
  WebSocket?: WebSocketConstructor | undefined
  /** How binary messages arrive. @default 'arraybuffer' */
  binaryType?: 'arraybuffer' | undefined
  /** Connect in the constructor. @default true */
  autoConnect?: boolean | undefined
  /** Random number in [0, 1) for the backoff jitter (tests inject their own). @default Math.random */
  random?: (() => number) | undefined
}

/** Options with every default applied and checked. */
export interface ResolvedOptions {
  url: UrlOptions
  token: string | TokenProvider | undefined
  tokenIn: 'protocol' | 'query'
  tokenRefresh: boolean
  positions: Map<string, ChannelPosition>
  reconnect: { base: number; cap: number; attempts: number }
  heartbeat: { ping: string; answer: 'text' | 'json'; interval: number; missed: number } | null
  queue: { max: number; whenDisconnected: 'queue' | 'reject' }
  WebSocket: WebSocketConstructor
  binaryType: 'arraybuffer'
  autoConnect: boolean
  random: () => number
}

/** Every option name; the type makes sure none is missing and none is extra. */
const OPTION_NAMES = Object.keys({
  url: true,
  path: true,
  facility: true,
  subscribe: true,
  publish: true,
  echo: true,
  query: true,
  token: true,
  tokenIn: true,
  tokenRefresh: true,
  positions: true,
  reconnect: true,
  heartbeat: true,
  queue: true,
  WebSocket: true,
  binaryType: true,
  autoConnect: true,
  random: true,
} satisfies Record<keyof ClientOptions, true>)
const RECONNECT_NAMES = Object.keys({
  base: true,
  cap: true,
  attempts: true,
} satisfies Record<keyof ReconnectOptions, true>)
const QUEUE_NAMES = Object.keys({
  max: true,
  whenDisconnected: true,
} satisfies Record<keyof QueueOptions, true>)
const HEARTBEAT_NAMES = Object.keys({
  text: true,
  json: true,
  interval: true,
  missed: true,
} satisfies Record<keyof HeartbeatOptions, true>)

/** Throws a TypeError naming the first key of `value` not in `known` (and the likely one). */
function checkKeys(value: unknown, known: readonly string[], where = ''): void {
  if (typeof value !== 'object' || value === null) return
  const message = unknownKeyMessage(value, known, 'option', where)
  if (message !== null) throw new TypeError(message)
}

const RECONNECT = {
  base: 500,
  cap: 30_000,
  attempts: Infinity,
} satisfies ResolvedOptions['reconnect']
const QUEUE = { max: 100, whenDisconnected: 'queue' } satisfies ResolvedOptions['queue']
const HEARTBEAT = { interval: 25_000, missed: 2 }

/** The JSON envelope's ping frame. */
export const JSON_PING = '{"type":"ping"}'

const positive = (v: number): boolean => typeof v === 'number' && v > 0

/**
 * The fields of `value` that are not undefined: an option set to undefined means its default,
 * which a plain spread over the defaults would overwrite.
 */
function given<T extends object>(
  value: T | null | undefined,
): { [K in keyof T]?: Exclude<T[K], undefined> } {
  if (value === null || value === undefined) return {}
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as {
    [K in keyof T]?: Exclude<T[K], undefined>
  }
}

/** Applies defaults and throws a TypeError on impossible values. */
export function resolveOptions(options: ClientOptions): ResolvedOptions {
  if (typeof options !== 'object' || options === null) throw new TypeError('options are required')
  // A mistyped name (`reconect`) would otherwise leave its option at the default without a word.
  checkKeys(options, OPTION_NAMES)
  if (options.reconnect !== false) checkKeys(options.reconnect, RECONNECT_NAMES, 'reconnect.')
  checkKeys(options.queue, QUEUE_NAMES, 'queue.')
  checkKeys(options.heartbeat, HEARTBEAT_NAMES, 'heartbeat.')
  const {
    token,
    tokenIn = 'protocol',
    tokenRefresh = true,
    heartbeat,
    autoConnect = true,
  } = options
  const url: UrlOptions = {
    url: options.url,
    path: options.path,
    facility: options.facility,
    subscribe: options.subscribe,
    publish: options.publish,
    echo: options.echo,
    query: options.query,
  }
  buildUrl(url) // throws now rather than on every reconnect
  if (token !== undefined && typeof token !== 'string' && typeof token !== 'function') {
    throw new TypeError('token must be a string or a function')
  }
  if (tokenIn !== 'protocol' && tokenIn !== 'query') {
    throw new TypeError("tokenIn must be 'protocol' or 'query'")
  }
  if (typeof tokenRefresh !== 'boolean') throw new TypeError('tokenRefresh must be a boolean')
  const positions = resolvePositions(options.positions)
  const reconnect =
    options.reconnect === false
      ? { ...RECONNECT, attempts: 0 }
      : { ...RECONNECT, ...given(options.reconnect) }
  if (!positive(reconnect.base) || !positive(reconnect.cap) || reconnect.cap < reconnect.base) {
    throw new TypeError('reconnect needs 0 < base <= cap')
  }
  if (!(reconnect.attempts >= 0)) throw new TypeError('reconnect.attempts must be >= 0')
  const queue = { ...QUEUE, ...given(options.queue) }
  if (!(queue.max >= 0)) throw new TypeError('queue.max must be >= 0')
  if (queue.whenDisconnected !== 'queue' && queue.whenDisconnected !== 'reject') {
    throw new TypeError("queue.whenDisconnected must be 'queue' or 'reject'")
  }
  let hb: ResolvedOptions['heartbeat'] = null
  if (heartbeat) {
    const { interval, missed } = { ...HEARTBEAT, ...given(heartbeat) }
    if (!positive(interval)) throw new TypeError('heartbeat.interval must be > 0')
    if (!Number.isInteger(missed) || missed < 1) {
      throw new TypeError('heartbeat.missed must be an integer >= 1')
    }
    if (heartbeat.json === true && heartbeat.text === undefined) {
      hb = { ping: JSON_PING, answer: 'json', interval, missed }
    } else if (typeof heartbeat.text === 'string' && heartbeat.text !== '' && !heartbeat.json) {
      hb = { ping: heartbeat.text, answer: 'text', interval, missed }
    } else {
      throw new TypeError('heartbeat needs exactly one of text (a non-empty string) and json: true')
    }
  }
  const WebSocket = options.WebSocket ?? globalWebSocket()
  if (typeof WebSocket !== 'function') {
    throw new TypeError('no global WebSocket: pass a constructor as the WebSocket option')
  }
  if (options.binaryType !== undefined && options.binaryType !== 'arraybuffer') {
    throw new TypeError("binaryType must be 'arraybuffer'")
  }
  return {
    url,
    token,
    tokenIn,
    tokenRefresh,
    positions,
    reconnect,
    heartbeat: hb,
    queue,
    WebSocket,
    binaryType: 'arraybuffer',
    autoConnect,
    random: options.random ?? Math.random,
  }
}

/**
 * Delay before reconnection attempt `attempt` (0 for the first): exponential backoff with full
 * jitter, `random() * min(cap, base * 2^attempt)`, so that clients dropped together by a restart
 * do not come back together.
 */
export function backoffDelay(
  attempt: number,
  { base, cap }: { base: number; cap: number },
  random: () => number = Math.random,
): number {
  const ceiling = Math.min(cap, base * 2 ** attempt)
  return Math.max(0, Math.min(1, random())) * ceiling
}
