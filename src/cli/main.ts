import cluster from 'node:cluster'
import { realpathSync } from 'node:fs'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { fileURLToPath } from 'node:url'
import { RedisStore } from 'connect-redis'
import { createClient, type RedisClientOptions } from 'redis'
import type { SessionOptions } from '../identity/session.js'
import { type Broker, createBroker } from '../broker/broker.js'
import { type CliConfig, type CliSession, type Env, parseCli, UsageError } from './options.js'
import { USAGE } from './usage.js'
import { AdminDashboard } from './admin/index.js'
import { type NodeBoard, ServerApi } from './api/index.js'
import { runPrimary, SHUTDOWN } from './workers.js'
import { connectOnce } from '../engine/redis.js'
import { redactPassword } from '../observability/redact.js'
import {
  brokerOptionsOf,
  checkSettings,
  effectiveSettings,
  facilityDefinitions,
} from './settings.js'
import type { EngineStatus } from '../engine/types.js'

export { type CliConfig, type CliSession, parseCli, UsageError } from './options.js'
export { USAGE } from './usage.js'

/** What follows a command-line error. */
export const HELP_HINT = "Run 'wsfacility --help' for the options."

// /health reads this key (under the prefix, never written) to check the command connection.
const HEALTH_KEY = 'wsfacility:health'
const HEALTH_TIMEOUT_MS = 2000

type RedisClient = ReturnType<typeof createClient>

/**
 * The session options of the broker: sessions as connect-redis stores them, read through a
 * connection of our own (connected by `listen()`).
 */
function redisSessions(
  redis: string,
  session: CliSession,
): { client: RedisClient; options: SessionOptions } {
  // As the engine's connections: a lookup while Redis is away fails at once (401) rather than
  // holding the upgrade until Redis is back.
  const options: RedisClientOptions = { url: redis, disableOfflineQueue: true }
  const client = createClient(options)
  const store = new RedisStore({ client, prefix: session.prefix })
  return { client, options: { store, secret: session.secrets, name: session.cookie } }
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
  /** The connection that loads sessions, when `config.session` is set. */
  readonly #sessions: RedisClient | null
  #connected = false
  #down = false
  readonly #reported = new Set<string>()
  #closing: Promise<void> | null = null
  readonly #metrics: (req: http.IncomingMessage, res: http.ServerResponse) => void
  /** The HTTP server API (`--api-key`) and the dashboard (`--admin`), when configured. */
  readonly #api: ServerApi | null
  readonly #admin: AdminDashboard | null

  constructor(config: CliConfig, output: CliOutput = consoleOutput) {
    this.config = config
    this.#output = output
    if (config.session && !config.redis) throw new TypeError('session needs redis')
    const sessions =
      config.session && config.redis ? redisSessions(config.redis, config.session) : null
    this.#sessions = sessions?.client ?? null
    this.broker = createBroker(brokerOptionsOf(config, sessions?.options))
    for (const [name, definition] of facilityDefinitions(config)) {
      this.broker.facility(name, definition)
    }
    this.broker.on('engine', (status) => this.#engineStatus(status))
    this.broker.on('error', (err) => this.#reportError(err.message))
    this.#sessions?.on('error', (err: unknown) =>
      this.#reportError(`redis sessions connection: ${String(err)}`),
    )
    this.#metrics = this.broker.metricsHandler()
    // The dashboard reads through the API's routes: with --admin and no key, they exist only
    // behind its login.
    const needsApi = config.apiKeys.length > 0 || config.admin
    const api = needsApi ? new ServerApi(this.broker, { keys: config.apiKeys }) : null
    this.#api = config.apiKeys.length > 0 ? api : null
    const secrets = [
      ...(config.adminPassword === null ? [] : [config.adminPassword]),
      ...config.apiKeys,
    ]
    this.#admin = config.admin && api ? new AdminDashboard({ secrets, api }) : null
    this.#board = api?.board ?? null
    this.http = http.createServer((req, res) => this.#request(req, res))
  }

  /** Every process's figures for /api/info and the dashboard (null without either). */
  readonly #board: NodeBoard | null

  #reportError(message: string): void {
    // A startup failure is reported once, by listen(). During an outage every Redis connection
    // fails again on every retry: print each distinct error once per outage.
    if (!this.#connected || this.#reported.has(message)) return
    if (this.#reported.size < 100) this.#reported.add(message)
    this.#output.err(`error: ${message}`)
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
    if (this.#api?.handle(req, res) || this.#admin?.handle(req, res)) return
    const path = (req.url ?? '/').split('?', 1)[0]
    const readOnly = req.method === 'GET' || req.method === 'HEAD'
    if (path === '/metrics' && readOnly && this.config.metrics) {
      this.#metrics(req, res)
      return
    }
    if (path === '/health' && readOnly) {
      void this.#healthy().then((ok) => {
        // `redis` is the engine's own view (memory for the in-memory engine).
        const redis =
          this.config.redis || this.config.redisCluster ? this.broker.engine.status : 'memory'
        const body = JSON.stringify({ status: ok ? 'ok' : 'unavailable', redis })
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
    // Without its sessions connection the server cannot tell who a client is.
    if (this.#sessions && !this.#sessions.isReady) return false
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
      if (this.#sessions) await connectOnce(this.#sessions)
    } catch (err) {
      const urls = config.redisCluster ?? (config.redis ? [config.redis] : [])
      const where = urls.length > 0 ? ` at ${urls.map(redactPassword).join(', ')}` : ''
      const cause = err instanceof Error && err.cause instanceof Error ? err.cause : err
      throw new Error(`cannot connect to Redis${where}: ${String(cause)}`, { cause: err })
    }
    this.#connected = true
    if (this.#closing) throw new Error('closed while starting')
    this.#board?.start()
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

  /** Closes every client with 1001, then the Redis connections and the HTTP server. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#board?.stop()
      const stopped = new Promise<void>((resolve) => {
        if (!this.http.listening) return resolve()
        this.http.close(() => resolve())
      })
      await this.broker.close()
      if (this.#sessions?.isOpen) await this.#sessions.close().catch(() => {})
      else this.#sessions?.destroy()
      this.http.closeAllConnections()
      await stopped
    })()
    return this.#closing
  }
}

/**
 * Runs the CLI until SIGTERM or SIGINT; resolves to the exit code: 0 after a clean shutdown or
 * `--help` or `--check-config`, 1 when Redis cannot be reached or the port is taken, 2 for a bad
 * command line or config file (a line for each problem, one pointing at --help).
 */
export async function main(
  argv: readonly string[] = process.argv.slice(2),
  env: Env = process.env,
  output: CliOutput = consoleOutput,
): Promise<number> {
  let config: CliConfig
  try {
    config = parseCli(argv, env)
    if (!config.help) checkSettings(config)
  } catch (err) {
    if (!(err instanceof UsageError)) throw err
    // The error alone stays on screen; 90 lines of usage after it would push it off. A config
    // file's problems are one line each.
    const lines = err.message.split('\n').map((line) => `wsfacility: ${line}`)
    output.err(`${lines.join('\n')}\n${HELP_HINT}`)
    return 2
  }
  if (config.help) {
    output.out(USAGE)
    return 0
  }
  if (config.checkConfig) {
    output.out(JSON.stringify(effectiveSettings(config), null, 2))
    return 0
  }

  if (config.workers > 1 && cluster.isPrimary) {
    const exec = fileURLToPath(import.meta.url)
    return runPrimary({ exec, argv, env, workers: config.workers, output })
  }
  const server = new StandaloneServer(config, output)
  const shutdown = closeOnSignal(server, output)
  try {
    if (!config.redis && !config.redisCluster) {
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
 * Closes `server` on the first SIGTERM or SIGINT (also during startup), or when the primary of
 * `--workers` asks or goes away; `done` resolves when it is closed. A second signal exits at once.
 */
function closeOnSignal(
  server: StandaloneServer,
  output: CliOutput,
): { readonly signalled: boolean; done: Promise<void>; dispose(): void } {
  let signalled = false
  let finish: () => void = () => {}
  const done = new Promise<void>((resolve) => (finish = resolve))
  const shutDown = (why: string): void => {
    signalled = true
    output.err(`${why}: shutting down`)
    server.close().then(finish, (err: unknown) => {
      output.err(`error while shutting down: ${String(err)}`)
      finish()
    })
  }
  const onSignal = (signal: NodeJS.Signals): void => {
    if (signalled) {
      output.err(`${signal} again: exiting without waiting`)
      process.exit(1)
    }
    shutDown(signal)
  }
  // A worker hears Ctrl-C from the terminal and the primary's request: both mean one shutdown.
  const onMessage = (message: unknown): void => {
    if (message === SHUTDOWN && !signalled) shutDown('asked by the primary')
  }
  const onDisconnect = (): void => {
    if (!signalled) shutDown('primary gone')
  }
  process.on('SIGTERM', onSignal)
  process.on('SIGINT', onSignal)
  if (cluster.isWorker) {
    process.on('message', onMessage)
    process.on('disconnect', onDisconnect)
  }
  return {
    get signalled() {
      return signalled
    },
    done,
    dispose() {
      process.off('SIGTERM', onSignal)
      process.off('SIGINT', onSignal)
      process.off('message', onMessage)
      process.off('disconnect', onDisconnect)
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
