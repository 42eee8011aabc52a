import { realpathSync } from 'node:fs'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { type Broker, createBroker } from './broker.js'
import { type Audience, isAudience } from './channels.js'
import type { EngineStatus } from './engine/types.js'

/** The help text of `wsfacility --help`. */
export const USAGE = `Usage: wsfacility [options]

Runs a WebSocket broker for backends that only publish to Redis (a Django app using ws4redis's
RedisPublisher, a worker). Browsers connect to /ws/<facility>?subscribe-broadcast&...; anyone
publishes on the channels broadcast:<facility>, user:<name>:<facility>, ...

Options (each may also come from the environment variable shown; the flag wins):
  --port N               port to listen on; 0 picks a free one
                           env PORT, default 8000
  --host HOST            address to bind
                           env HOST, default 127.0.0.1
  --redis URL            redis:// or rediss:// URL; without it, messages stay in this
                         process (in-memory engine)
                           env REDIS_URL
  --prefix NAME          channel prefix: ws4redis gives ws4redis:broadcast:<facility>
                           env WSFACILITY_PREFIX or WS4REDIS_PREFIX, default none
  --expire SECONDS       keep each channel's last message this long and replay it to
                         new clients; 0 turns it off
                           env WSFACILITY_EXPIRE, default 0
  --heartbeat TEXT       a text clients send to keep alive: answered with the same
                         text, never published. A value starting with "-" needs the
                         = form: --heartbeat=--heartbeat--
                           env WSFACILITY_HEARTBEAT, default none
  --client-publish LIST  audiences clients may publish to (publish-* flags), comma-
                         separated from broadcast,group,user,session; empty for none
                           env WSFACILITY_CLIENT_PUBLISH, default session,user
  --path PATH            path prefix of WebSocket URLs
                           env WSFACILITY_PATH, default /ws/
  -h, --help             print this help and exit

GET /health answers {"status":"ok"} (503 while Redis is unreachable); plain HTTP requests
under the WebSocket path get 426. SIGTERM or SIGINT closes clients with 1001 and exits.`

/** What the command line asks for, after defaults and validation. */
export interface CliConfig {
  /** Print the help and exit (the other fields then keep their defaults). */
  help: boolean
  /** Port to listen on; 0 picks a free one. */
  port: number
  /** Address to bind. */
  host: string
  /** Redis URL; null runs the in-memory engine. */
  redis: string | null
  /** Channel prefix (broker option `prefix`). */
  prefix: string
  /** Seconds to keep each channel's last message (broker option `expire`). */
  expire: number
  /** Heartbeat text (broker option `heartbeat`). */
  heartbeat: string | null
  /** Audiences clients may publish to; undefined keeps the broker's default. */
  clientPublish: Audience[] | undefined
  /** Path prefix of WebSocket URLs, ending with `/`. */
  path: string
}

/** A command line that cannot work; the CLI prints it with the usage and exits with 2. */
export class UsageError extends Error {
  readonly code = 'WSF_USAGE'
}

type Env = Readonly<Record<string, string | undefined>>

const FLAGS = {
  port: { type: 'string' },
  host: { type: 'string' },
  redis: { type: 'string' },
  prefix: { type: 'string' },
  expire: { type: 'string' },
  heartbeat: { type: 'string' },
  'client-publish': { type: 'string' },
  path: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const

// /health reads this key (under the prefix, never written) to check the command connection.
const HEALTH_KEY = 'wsfacility:health'
const HEALTH_TIMEOUT_MS = 2000

/** Turns argv and the environment into a config; throws UsageError for values that cannot work. */
export function parseCli(argv: readonly string[], env: Env = {}): CliConfig {
  let values: ReturnType<typeof parseArgs<{ options: typeof FLAGS }>>['values']
  try {
    ;({ values } = parseArgs({ args: [...argv], options: FLAGS, strict: true }))
  } catch (err) {
    // node's messages may span lines; the CLI prints one.
    const message = err instanceof Error ? err.message : String(err)
    throw new UsageError(message.replace(/\s*\n\s*/g, ' '))
  }
  // A flag wins over its environment variable; an empty variable counts as unset.
  const pick = (flag: keyof typeof FLAGS, ...vars: string[]): [string, string] | null => {
    const value = values[flag]
    if (typeof value === 'string') return [value, `--${flag}`]
    for (const name of vars) {
      const v = env[name]
      if (v !== undefined && v !== '') return [v, name]
    }
    return null
  }

  const config: CliConfig = {
    help: false,
    port: 8000,
    host: '127.0.0.1',
    redis: null,
    prefix: '',
    expire: 0,
    heartbeat: null,
    clientPublish: undefined,
    path: '/ws/',
  }
  // --help answers whatever else the line says.
  if (values.help) return { ...config, help: true }
  const port = pick('port', 'PORT')
  if (port) config.port = wholeNumber(port, 65535)
  const host = pick('host', 'HOST')
  if (host) config.host = host[0]
  const redis = pick('redis', 'REDIS_URL')
  if (redis) config.redis = redisUrl(redis)
  const prefix = pick('prefix', 'WSFACILITY_PREFIX', 'WS4REDIS_PREFIX')
  if (prefix) {
    if (prefix[0].slice(0, -1).includes(':')) {
      throw new UsageError(`${prefix[1]} must not contain ":" (except at the end)`)
    }
    config.prefix = prefix[0]
  }
  const expire = pick('expire', 'WSFACILITY_EXPIRE')
  if (expire) config.expire = wholeNumber(expire, Number.MAX_SAFE_INTEGER)
  const heartbeat = pick('heartbeat', 'WSFACILITY_HEARTBEAT')
  if (heartbeat) {
    if (heartbeat[0] === '') throw new UsageError(`${heartbeat[1]} must not be empty`)
    config.heartbeat = heartbeat[0]
  }
  const clientPublish = pick('client-publish', 'WSFACILITY_CLIENT_PUBLISH')
  if (clientPublish) config.clientPublish = audiences(clientPublish)
  const path = pick('path', 'WSFACILITY_PATH')
  if (path) {
    if (!path[0].startsWith('/')) throw new UsageError(`${path[1]} must start with "/"`)
    config.path = path[0].endsWith('/') ? path[0] : `${path[0]}/`
  }
  return config
}

function wholeNumber([value, source]: [string, string], max: number): number {
  const n = /^\d+$/.test(value) ? Number(value) : NaN
  if (!(n <= max)) throw new UsageError(`${source} must be a whole number from 0 to ${max}`)
  return n
}

function redisUrl([value, source]: [string, string]): string {
  let url: URL | null = null
  try {
    url = new URL(value)
  } catch {
    // reported below
  }
  if (url?.protocol !== 'redis:' && url?.protocol !== 'rediss:') {
    throw new UsageError(`${source} must be a redis:// or rediss:// URL`)
  }
  return value
}

function audiences([value, source]: [string, string]): Audience[] {
  const out = new Set<Audience>()
  for (const item of value.split(',')) {
    const name = item.trim().toLowerCase()
    if (name === '') continue
    if (!isAudience(name)) {
      throw new UsageError(
        `${source}: unknown audience "${item.trim()}" (use broadcast, group, user, session)`,
      )
    }
    out.add(name)
  }
  return [...out]
}

/** A URL for messages: the password replaced by `***`. */
function redact(url: string): string {
  const u = new URL(url)
  if (u.password) u.password = '***'
  return u.toString()
}

/** Where the CLI writes; console by default. */
export interface CliOutput {
  /** Normal output: the address, the engine in use, the help. */
  out(line: string): void
  /** Errors, usage errors and shutdown notices. */
  err(line: string): void
}

const consoleOutput: CliOutput = {
  out: (line) => console.log(line),
  err: (line) => console.error(line),
}

/** The standalone server: one HTTP server, one broker; `listen()` then `close()`. */
export class StandaloneServer {
  readonly config: CliConfig
  readonly broker: Broker
  readonly http: http.Server
  readonly #output: CliOutput
  #connected = false
  #down = false
  readonly #reported = new Set<string>()
  #closing: Promise<void> | null = null

  constructor(config: CliConfig, output: CliOutput = consoleOutput) {
    this.config = config
    this.#output = output
    this.broker = createBroker({
      redis: config.redis ?? undefined,
      prefix: config.prefix,
      path: config.path,
      expire: config.expire,
      heartbeat: config.heartbeat,
      clientPublish: config.clientPublish,
    })
    this.broker.on('engine', (status) => this.#engineStatus(status))
    this.broker.on('error', (err) => {
      // A startup failure is reported once, by listen(). During an outage both Redis connections
      // fail again on every retry: print each distinct error once per outage.
      if (!this.#connected || this.#reported.has(err.message)) return
      if (this.#reported.size < 100) this.#reported.add(err.message)
      this.#output.err(`error: ${err.message}`)
    })
    this.http = http.createServer((req, res) => this.#request(req, res))
  }

  #engineStatus(status: EngineStatus): void {
    if (!this.#connected) return
    if (status === 'reconnecting' && !this.#down) {
      this.#down = true
      this.#output.err('redis: connection lost, reconnecting')
    } else if (status === 'ready' && this.#down) {
      this.#down = false
      this.#reported.clear()
      this.#output.err('redis: connected again')
    }
  }

  #request(req: http.IncomingMessage, res: http.ServerResponse): void {
    if (this.broker.handleRequest(req, res)) return
    const path = (req.url ?? '/').split('?', 1)[0]
    if (path === '/health' && (req.method === 'GET' || req.method === 'HEAD')) {
      void this.#healthy().then((ok) => {
        const body = JSON.stringify({ status: ok ? 'ok' : 'unavailable' })
        res.writeHead(ok ? 200 : 503, {
          'Content-Type': 'application/json',
          'Content-Length': Buffer.byteLength(body),
          'Cache-Control': 'no-store',
        })
        res.end(req.method === 'HEAD' ? undefined : body)
      })
      return
    }
    res.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8' }).end('not found\n')
  }

  /**
   * Asks the engine rather than trusting its last status event (the subscriber's and the command
   * connection's events interleave): a PING on the subscriber and an MGET on the command
   * connection, which both fail at once while Redis is down.
   */
  async #healthy(): Promise<boolean> {
    if (this.#closing || !this.#connected) return false
    const { engine } = this.broker
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), HEALTH_TIMEOUT_MS)
    })
    const probe = Promise.all([
      engine.barrier(),
      engine.get([this.broker.options.channelPrefix + HEALTH_KEY]),
    ]).then(
      () => true,
      () => false,
    )
    try {
      return await Promise.race([probe, timeout])
    } finally {
      clearTimeout(timer)
    }
  }

  /** Connects the engine, then listens; resolves to the server's URL (with the real port). */
  async listen(): Promise<string> {
    const { config } = this
    this.broker.attach(this.http)
    try {
      await this.broker.ready()
    } catch (err) {
      const where = config.redis ? ` at ${redact(config.redis)}` : ''
      const cause = err instanceof Error && err.cause instanceof Error ? err.cause : err
      throw new Error(`cannot connect to Redis${where}: ${String(cause)}`, { cause: err })
    }
    this.#connected = true
    if (this.#closing) throw new Error('closed while starting')
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error): void => reject(err)
      this.http.once('error', onError)
      this.http.listen(config.port, config.host, () => {
        this.http.off('error', onError)
        resolve()
      })
    })
    const { port } = this.http.address() as AddressInfo
    const host = config.host.includes(':') ? `[${config.host}]` : config.host
    return `http://${host}:${port}`
  }

  /** Closes every client with 1001, releases Redis, closes the HTTP server. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      const stopped = new Promise<void>((resolve) => {
        if (!this.http.listening) return resolve()
        this.http.close(() => resolve())
      })
      await this.broker.close()
      this.http.closeAllConnections()
      await stopped
    })()
    return this.#closing
  }
}

/**
 * Runs the CLI until SIGTERM or SIGINT; resolves to the exit code: 0 after a clean shutdown or
 * `--help`, 1 when Redis cannot be reached or the port is taken, 2 for a bad command line.
 */
export async function main(
  argv: readonly string[] = process.argv.slice(2),
  env: Env = process.env,
  output: CliOutput = consoleOutput,
): Promise<number> {
  let config: CliConfig
  try {
    config = parseCli(argv, env)
  } catch (err) {
    if (!(err instanceof UsageError)) throw err
    output.err(`wsfacility: ${err.message}\n\n${USAGE}`)
    return 2
  }
  if (config.help) {
    output.out(USAGE)
    return 0
  }

  const server = new StandaloneServer(config, output)
  const shutdown = closeOnSignal(server, output)
  try {
    if (!config.redis) {
      output.out('no --redis or REDIS_URL: using the in-memory engine (this process only)')
    }
    try {
      output.out(`listening on ${await server.listen()}`)
    } catch (err) {
      if (shutdown.signalled) {
        await shutdown.done
        return 0
      }
      output.err(`wsfacility: ${err instanceof Error ? err.message : String(err)}`)
      await server.close().catch(() => {})
      return 1
    }
    await shutdown.done
    return 0
  } finally {
    shutdown.dispose()
  }
}

/**
 * Closes `server` on the first SIGTERM or SIGINT (also during startup); `done` resolves when it is
 * closed. A second signal exits at once.
 */
function closeOnSignal(
  server: StandaloneServer,
  output: CliOutput,
): { readonly signalled: boolean; done: Promise<void>; dispose(): void } {
  let signalled = false
  let finish: () => void = () => {}
  const done = new Promise<void>((resolve) => (finish = resolve))
  const onSignal = (signal: NodeJS.Signals): void => {
    if (signalled) {
      output.err(`${signal} again: exiting without waiting`)
      process.exit(1)
    }
    signalled = true
    output.err(`${signal}: shutting down`)
    server.close().then(finish, (err: unknown) => {
      output.err(`error while shutting down: ${String(err)}`)
      finish()
    })
  }
  process.on('SIGTERM', onSignal)
  process.on('SIGINT', onSignal)
  return {
    get signalled() {
      return signalled
    },
    done,
    dispose() {
      process.off('SIGTERM', onSignal)
      process.off('SIGINT', onSignal)
    },
  }
}

/** Runs `main` and exits the process with its code (what `bin/wsfacility.js` calls). */
export function run(argv?: readonly string[], env?: Env): void {
  main(argv, env).then(
    (code) => process.exit(code),
    (err: unknown) => {
      console.error(err)
      process.exit(1)
    },
  )
}

function isEntryPoint(): boolean {
  const script = process.argv[1]
  if (!script) return false
  try {
    return realpathSync(script) === realpathSync(fileURLToPath(import.meta.url))
  } catch {
    return false
  }
}

if (isEntryPoint()) run()
