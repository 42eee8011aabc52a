import { parseArgs } from 'node:util'
import type { JwtOptions } from '../identity/jwt.js'
import type { Audience } from '../channels/naming.js'
import { isWireFormat, MAX_WRITE_DELAY, type WireFormat } from '../facility/definition.js'
import { closestKey } from '../client/unknown-keys.js'
import { type ConfigLayer, loadConfig, type ReadFile } from './config-file.js'
import type { FacilityConfig } from './config-schema.js'
import { type BooleanFlag, FLAGS, type StringFlag } from './flags.js'
import { ADMIN_PASSWORD_MIN, API_KEY_MIN } from './secrets.js'
import {
  audiences,
  type Env,
  flag,
  type Given,
  httpUrl,
  nonEmpty,
  originList,
  redisUrl,
  UsageError,
  wholeNumber,
} from './values.js'

export { type Env, UsageError } from './values.js'

/** How the standalone server reads express-session cookies. */
export interface CliSession {
  /** Secrets that verify cookie signatures (rotation: every one is tried). */
  secrets: string[]
  /** Cookie name (express-session's `name`). */
  cookie: string
  /** Key prefix of the sessions in Redis (connect-redis's `prefix`). */
  prefix: string
}

/** What the command line asks for, after defaults and validation. */
export interface CliConfig {
  /** Print the help and exit (the other fields then keep their defaults). */
  help: boolean
  /** Validate, print the effective settings and exit (`--check-config`). */
  checkConfig: boolean
  /** The config file read (`--config`, `WSFACILITY_CONFIG`); null: none. */
  configFile: string | null
  /** Facility definitions by name or pattern (`room/{id}`), from the config file. */
  facilities: Record<string, FacilityConfig>
  /** Track who is online (broker option `presence`). */
  presence: boolean
  /** Keys of the HTTP server API (several while rotating); empty: no API. */
  apiKeys: string[]
  /** Serve the admin dashboard at /admin/. */
  admin: boolean
  /** The dashboard's own password; null: it takes an API key. */
  adminPassword: string | null
  /** Port to listen on; 0 picks a free one. */
  port: number
  /** Address to bind. */
  host: string
  /** Redis URL; null runs the in-memory engine (or the cluster). */
  redis: string | null
  /** Root node URLs of a Redis Cluster; null when not on a cluster. */
  redisCluster: string[] | null
  /** Also receive plain PUBLISHes on the cluster (broker option `clusterPlainPublish`). */
  clusterPlainPublish: boolean
  /** Worker processes to fork (node:cluster); 1 serves in this process. */
  workers: number
  /** Channel prefix (broker option `prefix`). */
  prefix: string
  /** Seconds to keep each channel's last message (broker option `expire`). */
  expire: number
  /** Channel history (broker option `history`); null: none. */
  history: { size: number; ttl: number } | null
  /** Wire format of every facility (broker option `format`). */
  format: WireFormat
  /** Heartbeat text (broker option `heartbeat`). */
  heartbeat: string | null
  /** Audiences clients may publish to; undefined keeps the broker's default. */
  clientPublish: Audience[] | undefined
  /** Path prefix of WebSocket URLs, ending with `/`. */
  path: string
  /** JWT verification (broker option `jwt`); null accepts no tokens. */
  jwt: JwtOptions | null
  /** Session cookies, loaded from connect-redis in `redis`; null reads none. */
  session: CliSession | null
  /** Refuse clients without a user (broker option `anonymous: false`). */
  requireAuth: boolean
  /** Serve Prometheus metrics at GET /metrics. */
  metrics: boolean
  /** Broker limits given on the command line (absent ones keep the broker's defaults). */
  limits: CliLimits
  /** Origins allowed besides the server's own host (broker option `origins`). */
  origins: string[] | undefined
  /** How refusals reach clients (broker option `refusals`); undefined keeps its default. */
  refusals: 'http' | 'close' | 'auto' | undefined
}

/** The broker limits the standalone server takes from flags. */
export interface CliLimits {
  publishRate?: number
  publishBurst?: number
  writeDelay?: number
  maxConnections?: number
  maxConnectionsPerUser?: number
  maxPayload?: number
  handshakeTimeout?: number
}

/** Limit flags: flag, environment variable, broker option, smallest value (and largest). */
const LIMIT_FLAGS: readonly (readonly [StringFlag, string, keyof CliLimits, number, number?])[] = [
  ['publish-rate', 'WSFACILITY_PUBLISH_RATE', 'publishRate', 0],
  ['publish-burst', 'WSFACILITY_PUBLISH_BURST', 'publishBurst', 0],
  ['write-delay', 'WSFACILITY_WRITE_DELAY', 'writeDelay', 0, MAX_WRITE_DELAY],
  ['max-connections', 'WSFACILITY_MAX_CONNECTIONS', 'maxConnections', 0],
  ['max-user-connections', 'WSFACILITY_MAX_USER_CONNECTIONS', 'maxConnectionsPerUser', 0],
  ['max-payload', 'WSFACILITY_MAX_PAYLOAD', 'maxPayload', 1],
  ['handshake-timeout', 'WSFACILITY_HANDSHAKE_TIMEOUT', 'handshakeTimeout', 1],
]

type Pick = (flag: StringFlag, ...vars: string[]) => Given | null

/** A switch and where its value came from, for messages. */
interface Switch {
  on: boolean
  source: string
}

/** The config before any flag, variable or file. */
function defaults(): CliConfig {
  return {
    help: false,
    checkConfig: false,
    configFile: null,
    facilities: {},
    port: 8000,
    host: '127.0.0.1',
    redis: null,
    redisCluster: null,
    clusterPlainPublish: false,
    workers: 1,
    prefix: '',
    expire: 0,
    history: null,
    format: 'raw',
    heartbeat: null,
    clientPublish: undefined,
    path: '/ws/',
    jwt: null,
    session: null,
    requireAuth: false,
    presence: false,
    metrics: false,
    apiKeys: [],
    admin: false,
    adminPassword: null,
    limits: {},
    origins: undefined,
    refusals: undefined,
  }
}

// An HTTP cookie name (RFC 6265 token).
const COOKIE_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/

/** One line saying what parseArgs refused: an unknown flag with the one it probably is. */
function argsProblem(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err)
  const given = /^Unknown option '(-[^']*)'/.exec(message)?.[1]
  if ((err as { code?: unknown }).code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' && given) {
    const close = closestKey(given.replace(/^-+/, ''), Object.keys(FLAGS))
    return `unknown option ${given}${close === null ? '' : ` (did you mean --${close}?)`}`
  }
  // node's messages may span lines; the CLI prints one.
  return message.replace(/\s*\n\s*/g, ' ')
}

/**
 * Turns argv, the environment and the config file they name into a config: a flag wins over its
 * environment variable, which wins over the file. Throws UsageError for values that cannot work.
 */
export function parseCli(
  argv: readonly string[],
  env: Env = {},
  read: ReadFile | undefined = undefined,
): CliConfig {
  let values: ReturnType<typeof parseArgs<{ options: typeof FLAGS }>>['values']
  try {
    ;({ values } = parseArgs({ args: [...argv], options: FLAGS, strict: true }))
  } catch (err) {
    throw new UsageError(argsProblem(err))
  }
  // --help answers whatever else the line says, a broken config file included.
  if (values.help) return { ...defaults(), help: true }
  const configFile = typeof values.config === 'string' ? values.config : env.WSFACILITY_CONFIG
  const file: ConfigLayer | null =
    configFile === undefined || configFile === '' ? null : loadConfig(configFile, read)
  // A flag wins over its environment variable, which wins over the file; an empty variable
  // counts as unset.
  const pick: Pick = (flag, ...vars) => {
    const value = values[flag]
    if (typeof value === 'string') return [value, `--${flag}`]
    for (const name of vars) {
      const v = env[name]
      if (v !== undefined && v !== '') return [v, name]
    }
    return file?.value(flag) ?? null
  }
  // The same for switches: a flag turns one on; a set variable says on or off; then the file.
  const on = (name: BooleanFlag, variable: string): Switch => {
    if (values[name] === true) return { on: true, source: `--${name}` }
    const v = env[variable]
    if (v !== undefined && v !== '') return { on: flag(env, variable), source: variable }
    return file?.switch(name) ?? { on: false, source: `--${name}` }
  }

  const config = defaults()
  config.checkConfig = values['check-config'] === true
  config.configFile = file?.file ?? null
  config.facilities = file?.facilities ?? {}
  const port = pick('port', 'PORT')
  if (port) config.port = wholeNumber(port, 65535)
  const host = pick('host', 'HOST')
  if (host) config.host = host[0]
  const redis = pick('redis', 'REDIS_URL')
  if (redis) config.redis = redisUrl(redis)
  const cluster = pick('redis-cluster', 'WSFACILITY_REDIS_CLUSTER')
  if (cluster) {
    if (redis) throw new UsageError(`give ${redis[1]} or ${cluster[1]}, not both`)
    config.redisCluster = cluster[0].split(',').map((url) => redisUrl([url.trim(), cluster[1]]))
  }
  const plain = on('cluster-plain-publish', 'WSFACILITY_CLUSTER_PLAIN_PUBLISH')
  config.clusterPlainPublish = plain.on
  if (plain.on && !cluster) {
    throw new UsageError(
      `${plain.source} needs --redis-cluster (plain PUBLISH works on one server)`,
    )
  }
  const workers = pick('workers', 'WSFACILITY_WORKERS')
  if (workers) {
    config.workers = wholeNumber(workers, 256)
    if (config.workers < 1) throw new UsageError(`${workers[1]} must be at least 1`)
    if (config.workers > 1 && !redis && !cluster) {
      // Workers share nothing but Redis: with the in-memory engine each would be alone.
      throw new UsageError(`${workers[1]} needs --redis or --redis-cluster`)
    }
  }
  const prefix = pick('prefix', 'WSFACILITY_PREFIX', 'WS4REDIS_PREFIX')
  if (prefix) {
    if (prefix[0].slice(0, -1).includes(':')) {
      throw new UsageError(`${prefix[1]} must not contain ":" (except at the end)`)
    }
    config.prefix = prefix[0]
  }
  const expire = pick('expire', 'WSFACILITY_EXPIRE')
  if (expire) config.expire = wholeNumber(expire, Number.MAX_SAFE_INTEGER)
  config.history = historyOptions(pick)
  const format = pick('format', 'WSFACILITY_FORMAT')
  if (format) {
    if (!isWireFormat(format[0])) throw new UsageError(`${format[1]} must be raw, binary or json`)
    config.format = format[0]
  }
  const heartbeat = pick('heartbeat', 'WSFACILITY_HEARTBEAT')
  if (heartbeat) config.heartbeat = nonEmpty(heartbeat)
  const clientPublish = pick('client-publish', 'WSFACILITY_CLIENT_PUBLISH')
  if (clientPublish) config.clientPublish = audiences(clientPublish)
  const path = pick('path', 'WSFACILITY_PATH')
  if (path) {
    if (!path[0].startsWith('/')) throw new UsageError(`${path[1]} must start with "/"`)
    config.path = path[0].endsWith('/') ? path[0] : `${path[0]}/`
  }
  for (const [name, variable, option, min, max] of LIMIT_FLAGS) {
    const given = pick(name, variable)
    if (!given) continue
    const n = wholeNumber(given, max ?? Number.MAX_SAFE_INTEGER)
    if (n < min) throw new UsageError(`${given[1]} must be a whole number from ${min}`)
    config.limits[option] = n
  }
  const origins = pick('origins', 'WSFACILITY_ORIGINS')
  if (origins) config.origins = originList(origins)
  const refusals = pick('refusals', 'WSFACILITY_REFUSALS')
  if (refusals) {
    const [mode, source] = refusals
    if (mode !== 'http' && mode !== 'close' && mode !== 'auto') {
      throw new UsageError(`${source} must be http, close or auto`)
    }
    config.refusals = mode
  }
  config.jwt = jwtOptions(pick)
  config.session = sessionOptions(pick, config.redis)
  const requireAuth = on('require-auth', 'WSFACILITY_REQUIRE_AUTH')
  config.requireAuth = requireAuth.on
  if (config.requireAuth && !config.jwt && !config.session) {
    throw new UsageError(
      `${requireAuth.source} needs --jwt-secret, --jwks-url or --session-secret (or no client has a user)`,
    )
  }
  config.presence = on('presence', 'WSFACILITY_PRESENCE').on
  config.metrics = on('metrics', 'WSFACILITY_METRICS').on
  const apiKey = pick('api-key', 'WSFACILITY_API_KEY')
  if (apiKey) config.apiKeys = secretList(apiKey, 'key')
  // Short keys and passwords can be guessed over HTTP: the API and the login refuse them.
  if (config.apiKeys.some((k) => k.length < API_KEY_MIN)) {
    throw new UsageError(`${apiKey![1]}: every API key needs at least ${API_KEY_MIN} characters`)
  }
  const password = pick('admin-password', 'WSFACILITY_ADMIN_PASSWORD')
  if (password) config.adminPassword = nonEmpty(password)
  if (config.adminPassword !== null && config.adminPassword.length < ADMIN_PASSWORD_MIN) {
    throw new UsageError(`${password![1]} needs at least ${ADMIN_PASSWORD_MIN} characters`)
  }
  const admin = on('admin', 'WSFACILITY_ADMIN')
  config.admin = admin.on
  if (admin.on && config.adminPassword === null && config.apiKeys.length === 0) {
    throw new UsageError(`${admin.source} needs --admin-password or --api-key`)
  }
  return config
}

/** A secret or a comma-separated list of them (rotation: every one is accepted), none empty. */
function secretList([value, source]: Given, what: string): string[] {
  // Taken byte for byte: no trimming, so they match the other side's exactly.
  const list = value.split(',')
  if (list.includes('')) {
    throw new UsageError(`${source} must be one ${what} or a comma-separated list, none empty`)
  }
  return list
}

/** --history-size and --history-ttl: both or neither. */
function historyOptions(pick: Pick): CliConfig['history'] {
  const size = pick('history-size', 'WSFACILITY_HISTORY_SIZE')
  const ttl = pick('history-ttl', 'WSFACILITY_HISTORY_TTL')
  if (!size && !ttl) return null
  if (!size) throw new UsageError(`${ttl![1]} needs --history-size`)
  if (!ttl) throw new UsageError(`${size[1]} needs --history-ttl`)
  const n = wholeNumber(size, 1_000_000)
  if (n < 1) throw new UsageError(`${size[1]} must be a whole number from 1 to 1000000`)
  const seconds = wholeNumber(ttl, 31_536_000)
  if (seconds < 1) throw new UsageError(`${ttl[1]} must be a whole number from 1 to 31536000`)
  return { size: n, ttl: seconds }
}

function jwtOptions(pick: Pick): JwtOptions | null {
  const secret = pick('jwt-secret', 'WSFACILITY_JWT_SECRET')
  const jwks = pick('jwks-url', 'WSFACILITY_JWKS_URL')
  const issuer = pick('jwt-issuer', 'WSFACILITY_JWT_ISSUER')
  const audience = pick('jwt-audience', 'WSFACILITY_JWT_AUDIENCE')
  if (secret && jwks) {
    throw new UsageError(`give ${secret[1]} or ${jwks[1]}, not both`)
  }
  if (!secret && !jwks) {
    const orphan = issuer ?? audience
    if (orphan) throw new UsageError(`${orphan[1]} needs --jwt-secret or --jwks-url`)
    return null
  }
  const jwt: JwtOptions = secret ? { secret: nonEmpty(secret) } : { jwksUrl: httpUrl(jwks!) }
  if (issuer) jwt.issuer = nonEmpty(issuer)
  if (audience) jwt.audience = nonEmpty(audience)
  return jwt
}

function sessionOptions(pick: Pick, redis: string | null): CliSession | null {
  const secret = pick('session-secret', 'WSFACILITY_SESSION_SECRET')
  const cookie = pick('session-cookie', 'WSFACILITY_SESSION_COOKIE')
  const prefix = pick('session-prefix', 'WSFACILITY_SESSION_PREFIX')
  if (!secret) {
    const orphan = cookie ?? prefix
    if (orphan) throw new UsageError(`${orphan[1]} needs --session-secret`)
    return null
  }
  if (redis === null) {
    throw new UsageError(`${secret[1]} needs --redis: sessions are read from connect-redis`)
  }
  const secrets = secretList(secret, 'secret')
  if (cookie && !COOKIE_NAME.test(cookie[0])) {
    throw new UsageError(`${cookie[1]} must be a cookie name (letters, digits, !#$%&'*+-.^_\`|~)`)
  }
  // An empty --session-prefix is connect-redis's `prefix: ''`: session ids are the keys.
  return { secrets, cookie: cookie?.[0] ?? 'connect.sid', prefix: prefix?.[0] ?? 'sess:' }
}
