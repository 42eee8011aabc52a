import type { IncomingMessage } from 'node:http'
import { type HistoryOptions, resolveHistory } from '../history/wire.js'
import { checkWriteDelay, isWireFormat, type WireFormat } from '../facility/definition.js'
import type { RedisClientOptions, RedisClusterOptions } from 'redis'
import {
  type Audience,
  DEFAULT_MAX_FACILITY_LENGTH,
  isAudience,
  normalizePrefix,
} from '../channels/naming.js'
import type { Engine } from '../engine/types.js'
import { MemoryEngine } from '../engine/memory.js'
import { RedisEngine } from '../engine/redis.js'
import type { IdentifyHook, Identity } from '../identity/identity.js'
import type { JwtOptions } from '../identity/jwt.js'
import type { SessionOptions } from '../identity/session.js'
import type { JoinContext, SlowConsumerPolicy } from '../facility/definition.js'
import { OptionError } from '../errors.js'
import type { Flags } from '../channels/redis-subscriber.js'
import { type OriginsOption, validateOrigins } from '../upgrade/origin.js'
import { unknownKeyMessage } from '../client/unknown-keys.js'
import { type RefusalsOption, validateRefusals } from '../upgrade/refusal.js'
import { type MetricsOptions, validateMetricsOptions } from '../observability/metrics.js'

/** What `allowedChannels` sees and may narrow. */
export interface AllowedChannelsContext extends Flags {
  /** The facility of the request. */
  facility: string
  /** The identity of the request. */
  identity: Identity
  /** Set when the hook decides a live join rather than a connection. */
  join?: JoinContext | undefined
}

/**
 * Narrows a connection's flags, or refuses it (return `false` or throw → 403). Returning nothing
 * keeps the flags; returned flags are intersected with the requested ones, never widened.
 * (ws4redis's `WS4REDIS_ALLOWED_CHANNELS`.)
 */
export type AllowedChannelsHook = (
  request: IncomingMessage,
  flags: AllowedChannelsContext,
) => NarrowedFlags | boolean | void | Promise<NarrowedFlags | boolean | void>

/** What `allowedChannels` may return to narrow: the lists to keep (an absent one keeps all). */
export interface NarrowedFlags {
  subscribe?: Audience[] | undefined
  publish?: Audience[] | undefined
}

/** An optional structured logger; any of pino, bunyan or console fits. */
export interface Logger {
  debug?: ((obj: object, msg?: string) => void) | undefined
  info?: ((obj: object, msg?: string) => void) | undefined
  warn?: ((obj: object, msg?: string) => void) | undefined
  error?: ((obj: object, msg?: string) => void) | undefined
}

/** Options of `createBroker`. */
export interface BrokerOptions {
  /** Redis to use: a `redis://` URL or node-redis options. Absent → the in-memory engine. */
  redis?: string | RedisClientOptions | undefined
  /**
   * A Redis Cluster instead of `redis`: root node URLs, or node-redis `createCluster` options.
   * Channels then use sharded pub/sub (SSUBSCRIBE / SPUBLISH): publishers must SPUBLISH.
   * @example createBroker({ redisCluster: ['redis://10.0.0.1:7000', 'redis://10.0.0.2:7000'] })
   */
  redisCluster?: string[] | RedisClusterOptions | undefined
  /**
   * With `redisCluster`: also receive plain `PUBLISH`es (what ws4redis's Django publisher and
   * redis-cli send), not only `SPUBLISH`. Each channel is then also SUBSCRIBEd on one node of the
   * cluster, over one more connection per process. The cost is the plain PUBLISH itself: Redis
   * Cluster sends every one to every node of the cluster over its bus, where an SPUBLISH stays on
   * the shard owning the channel. @default false
   */
  clusterPlainPublish?: boolean | undefined
  /** A ready engine instead of `redis` (advanced; tests and custom transports). */
  engine?: Engine | undefined
  /** Channel prefix; `'ws4redis'` gives channels `ws4redis:broadcast:…`. @default '' */
  prefix?: string | undefined
  /** Path prefix that upgrades are accepted on. @default '/ws/' */
  path?: string | undefined
  /**
   * Seconds a message published through this broker (RedisPublisher, `broker.publish`, clients'
   * `publish-*` messages) is stored under its channel's key (`SET … EX`), for replay to new
   * connections and `fetchMessage`; 0 stores nothing. Replay sends what a channel's key holds,
   * whoever stored it (ws4redis's `SETEX`, wsfacility's publishers with expire > 0); a plain
   * `PUBLISH` stores nothing, so it is never replayed. @default 0
   */
  expire?: number | undefined
  /**
   * Channel history with offsets, for recovery on reconnect and the broker's own catch-up after
   * Redis hiccups: each channel keeps up to `size` messages for `ttl` seconds after its last
   * publish (a Redis stream). Per facility with `broker.facility(name, { history })`. @default off
   * @example createBroker({ redis, history: { size: 100, ttl: 300 } })
   */
  history?: HistoryOptions | false | null | undefined
  /** Wire format of facilities that do not set their own: `raw` (ws4redis: text frames, binary
   * frames for bytes that are not UTF-8), `binary` (every message a binary frame) or the `json`
   * envelope. @default 'raw' */
  format?: WireFormat | undefined
  /** Replay stored messages to new connections. @default true */
  replay?: boolean | undefined
  /** A text message that clients send to keep alive; echoed back, never published. @default null */
  heartbeat?: string | null | undefined
  /** Audiences clients may publish to with `publish-*` flags. @default ['session', 'user'] */
  clientPublish?: Audience[] | undefined
  /** Narrows or refuses a connection's flags (403). */
  allowedChannels?: AllowedChannelsHook | undefined
  /** Resolves a request's identity itself (replacing `jwt` and `session`); throw an HttpError
   * for 401. @default JWT, then session cookie, then anonymous */
  identify?: IdentifyHook | undefined
  /** Verify JWTs from `?token=`, `Authorization: Bearer`, or the subprotocol `bearer.<jwt>`. */
  jwt?: JwtOptions | undefined
  /** Read express-session cookies and load sessions from the app's store. */
  session?: SessionOptions | undefined
  /** Track who is online (cluster-wide, with `presence` events). @default false */
  presence?: boolean | undefined
  /** Accept connections without an identity; false refuses them with 401. @default true */
  anonymous?: boolean | undefined
  /** Milliseconds between protocol pings; a client that missed the last one is dropped. 0 = off. @default 30000 */
  pingInterval?: number | undefined
  /** Longest facility name. @default 128 */
  maxFacilityLength?: number | undefined
  /** Largest message a client may send, in bytes (close 1009 beyond). @default 1048576 */
  maxPayload?: number | undefined
  /** Bytes of unsent frames per client before the slow-consumer policy applies. @default 4194304 */
  maxBufferedBytes?: number | undefined
  /** What to do with a client whose buffer is full: close it with 1013, or drop frames. @default 'close' */
  slowConsumer?: SlowConsumerPolicy | undefined
  /** Milliseconds a client's frames wait so that they go out in one write (fewer system calls
   * for clients with many messages each, at up to this much latency); at most 10000. 0 = at the
   * end of the event-loop turn. @default 0 */
  writeDelay?: number | undefined
  /** Messages per second a client may send to publish (token bucket; json facilities answer
   * `rate_limited`, raw ones close 1008). 0 = unlimited. On by default: `user` and `session`
   * publishing is allowed by default, so no client may flood them. @default 20 */
  publishRate?: number | undefined
  /** Messages a client may send at once before `publishRate` applies; 0 = one second's worth. @default 0 */
  publishBurst?: number | undefined
  /** Largest client message published on a facility that stores messages (`expire` > 0), in
   * bytes: what clients can make Redis hold is bounded (json: `message_too_large`, raw: close
   * 1009). @default 65536 */
  maxStoredMessage?: number | undefined
  /** Bytes of client messages one connection may have waiting for Redis (or for an async
   * onMessage); past it its socket is not read until Redis answers (TCP pushes back on the
   * client). @default 1048576 */
  maxInFlightBytes?: number | undefined
  /** The same for all connections of the process together. @default 67108864 */
  maxInFlightBytesTotal?: number | undefined
  /** Connections this process accepts (past it: 503 with Retry-After). 0 = unlimited. @default 0 */
  maxConnections?: number | undefined
  /** Connections of one user this process accepts (past it: 429). 0 = unlimited. @default 0 */
  maxConnectionsPerUser?: number | undefined
  /** Query parameters a WebSocket URL may carry (past it: 400). @default 32 */
  maxFlags?: number | undefined
  /** Milliseconds the broker's own upgrade work (identity, hooks, Redis subscribe) may take
   * before it refuses with 503 and releases what it took. @default 10000 */
  handshakeTimeout?: number | undefined
  /** Origins allowed besides the server's own host. Unset: only cookie-authenticated
   * connections are checked (cross-site → 403); set: every connection is. @default unset */
  origins?: OriginsOption | undefined
  /**
   * How refusals reach clients: `'http'` a status before the upgrade; `'close'` the handshake is
   * accepted, then closed with 4000 + status (4401, 4403, 4429, 4503…) and the reason, which a
   * browser can read; `'auto'` close for clients that offer the `wsfacility` subprotocol (as
   * wsfacility/client does), HTTP for the rest. @default 'auto'
   */
  refusals?: RefusalsOption | undefined
  /** Structured logger. @default none */
  logger?: Logger | undefined
  /**
   * Where the broker's Prometheus metrics live: `{ registry }`, a prom-client registry of the
   * app's, so they join its `/metrics`. @default a registry of the broker's own
   * @example createBroker({ metrics: { registry: promClient.register } })
   */
  metrics?: MetricsOptions | undefined
}

/** Every option name; the type makes sure none is missing and none is extra. */
export const OPTION_NAMES: readonly string[] = Object.keys({
  redis: true,
  redisCluster: true,
  clusterPlainPublish: true,
  engine: true,
  prefix: true,
  path: true,
  expire: true,
  history: true,
  format: true,
  replay: true,
  heartbeat: true,
  clientPublish: true,
  allowedChannels: true,
  identify: true,
  jwt: true,
  session: true,
  presence: true,
  anonymous: true,
  pingInterval: true,
  maxFacilityLength: true,
  maxPayload: true,
  maxBufferedBytes: true,
  slowConsumer: true,
  writeDelay: true,
  publishRate: true,
  publishBurst: true,
  maxStoredMessage: true,
  maxInFlightBytes: true,
  maxInFlightBytesTotal: true,
  maxConnections: true,
  maxConnectionsPerUser: true,
  maxFlags: true,
  handshakeTimeout: true,
  origins: true,
  refusals: true,
  logger: true,
  metrics: true,
} satisfies Record<keyof BrokerOptions, true>)

const DEFAULTS = {
  prefix: '',
  path: '/ws/',
  expire: 0,
  format: 'raw',
  replay: true,
  anonymous: true,
  presence: false,
  heartbeat: null,
  clientPublish: ['session', 'user'],
  pingInterval: 30_000,
  maxFacilityLength: DEFAULT_MAX_FACILITY_LENGTH,
  maxPayload: 1024 * 1024,
  maxBufferedBytes: 4 * 1024 * 1024,
  slowConsumer: 'close',
  writeDelay: 0,
  publishRate: 20,
  publishBurst: 0,
  maxStoredMessage: 64 * 1024,
  maxInFlightBytes: 1024 * 1024,
  maxInFlightBytesTotal: 64 * 1024 * 1024,
  maxConnections: 0,
  maxConnectionsPerUser: 0,
  maxFlags: 32,
  handshakeTimeout: 10_000,
  clusterPlainPublish: false,
  refusals: 'auto',
} satisfies Partial<BrokerOptions>

type Defaulted = keyof typeof DEFAULTS

/** Options after defaults and validation. */
export type ResolvedOptions = Omit<BrokerOptions, Defaulted> & {
  [K in keyof Pick<BrokerOptions, Defaulted>]-?: Exclude<BrokerOptions[K], undefined>
} & {
  /** The prefix as it starts channel names (`''` or `'name:'`). */
  channelPrefix: string
  /** History of facilities that do not set their own; null: none. */
  history: HistoryOptions | null
}

function nonNegative(name: string, value: unknown): void {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
    throw new OptionError(`${name} must be a number >= 0`)
  }
}

function checkCluster(cluster: unknown): void {
  const roots: unknown = Array.isArray(cluster)
    ? cluster
    : (cluster as { rootNodes?: unknown } | null)?.rootNodes
  if (!Array.isArray(roots) || roots.length === 0) {
    throw new OptionError(
      'redisCluster must list root nodes: redis:// URLs or { rootNodes: [...] }',
    )
  }
  if (Array.isArray(cluster) && !cluster.every((url) => /^rediss?:\/\//.test(String(url)))) {
    throw new OptionError('redisCluster URLs must start with redis:// or rediss://')
  }
}

/** Applies defaults and throws OptionError (`WSF_INVALID_OPTION`) on values that cannot work. */
export function resolveOptions(options: BrokerOptions = {}): ResolvedOptions {
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    throw new OptionError('broker options must be an object')
  }
  // The broker writes pre-built frames to the socket under `ws` (one framing per message for all
  // recipients); a compressed connection would receive them uncompressed and break.
  if ('perMessageDeflate' in (options as Record<string, unknown>)) {
    throw new OptionError('perMessageDeflate is not supported: frames are written pre-built')
  }
  // A mistyped name (`redsi`) would otherwise leave its option at the default without a word.
  const unknown = unknownKeyMessage(options, OPTION_NAMES)
  if (unknown !== null) throw new OptionError(unknown)
  // An option set to undefined (`prefix: process.env.PREFIX`) means "use the default", as its
  // optional type promises; a plain spread would overwrite the default with undefined.
  const given = Object.fromEntries(
    Object.entries(options).filter(([, value]) => value !== undefined),
  ) as { [K in keyof BrokerOptions]?: Exclude<BrokerOptions[K], undefined> }
  const opts = { ...DEFAULTS, ...given }
  const engines = (['redis', 'redisCluster', 'engine'] as const).filter((k) => k in given)
  if (engines.length > 1) throw new OptionError(`give only one of ${engines.join(', ')}`)
  if (given.redisCluster !== undefined) checkCluster(given.redisCluster)
  if (typeof opts.clusterPlainPublish !== 'boolean') {
    throw new OptionError('clusterPlainPublish must be a boolean')
  }
  if (opts.clusterPlainPublish && given.redisCluster === undefined) {
    throw new OptionError(
      'clusterPlainPublish needs redisCluster (on one Redis server plain PUBLISH always works)',
    )
  }
  if (typeof opts.path !== 'string' || !opts.path.startsWith('/')) {
    throw new OptionError('path must start with "/"')
  }
  if (!opts.path.endsWith('/')) opts.path = `${opts.path}/`
  if (typeof opts.prefix !== 'string' || opts.prefix.slice(0, -1).includes(':')) {
    throw new OptionError('prefix must be a string without ":" (except at the end)')
  }
  nonNegative('expire', opts.expire)
  if (!isWireFormat(opts.format)) {
    throw new OptionError("format must be 'raw', 'binary' or 'json'")
  }
  nonNegative('pingInterval', opts.pingInterval)
  nonNegative('maxPayload', opts.maxPayload)
  nonNegative('maxBufferedBytes', opts.maxBufferedBytes)
  checkWriteDelay(opts.writeDelay)
  nonNegative('publishRate', opts.publishRate)
  nonNegative('publishBurst', opts.publishBurst)
  nonNegative('maxStoredMessage', opts.maxStoredMessage)
  for (const name of ['maxInFlightBytes', 'maxInFlightBytesTotal'] as const) {
    if (!Number.isInteger(opts[name]) || opts[name] < 1) {
      throw new OptionError(`${name} must be an integer >= 1`)
    }
  }
  for (const name of ['maxConnections', 'maxConnectionsPerUser'] as const) {
    if (!Number.isInteger(opts[name]) || opts[name] < 0) {
      throw new OptionError(`${name} must be an integer >= 0`)
    }
  }
  for (const name of ['maxFacilityLength', 'maxFlags', 'handshakeTimeout'] as const) {
    if (!Number.isInteger(opts[name]) || opts[name] < 1) {
      throw new OptionError(`${name} must be an integer >= 1`)
    }
  }
  if (options.origins !== undefined) validateOrigins(options.origins)
  validateRefusals(opts.refusals)
  validateMetricsOptions(options.metrics)
  if (opts.heartbeat !== null && (typeof opts.heartbeat !== 'string' || opts.heartbeat === '')) {
    throw new OptionError('heartbeat must be a non-empty string or null')
  }
  if (!Array.isArray(opts.clientPublish) || !opts.clientPublish.every(isAudience)) {
    throw new OptionError('clientPublish must list audiences: broadcast, group, user, session')
  }
  if (
    options.identify !== undefined &&
    (options.jwt !== undefined || options.session !== undefined)
  ) {
    throw new OptionError('identify replaces jwt and session: give one or the other')
  }
  if (opts.slowConsumer !== 'close' && opts.slowConsumer !== 'drop') {
    throw new OptionError("slowConsumer must be 'close' or 'drop'")
  }
  for (const hook of ['allowedChannels', 'identify'] as const) {
    if (opts[hook] !== undefined && typeof opts[hook] !== 'function') {
      throw new OptionError(`${hook} must be a function`)
    }
  }
  return {
    ...opts,
    clientPublish: [...opts.clientPublish],
    channelPrefix: normalizePrefix(opts.prefix),
    history: resolveHistory('history', opts.history),
  }
}

/** The engine of a broker: the one given, a RedisEngine for `redis`/`redisCluster`, else the
 * in-memory engine. */
export function engineFor(options: ResolvedOptions): Engine {
  if (options.engine) return options.engine
  if (options.redis === undefined && options.redisCluster === undefined) return new MemoryEngine()
  return new RedisEngine({
    redis: options.redis,
    cluster: options.redisCluster,
    clusterPlainPublish: options.clusterPlainPublish,
    prefix: options.channelPrefix,
  })
}
