import { once } from 'node:events'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import WebSocket from 'ws'
import { type Broker, createBroker } from '../broker/broker.js'
import { type BrokerOptions, OPTION_NAMES } from '../broker/options.js'
import { unknownKeyMessage } from '../client/unknown-keys.js'
import type { Connection } from '../connection/connection.js'
import { ClosedError, HttpError, OptionError } from '../errors.js'
import type { Identity } from '../identity/identity.js'
import {
  TEST_IDENTITIES,
  TEST_IDENTITY_HEADER,
  TestIdentities,
} from '../identity/test-identities.js'
import { type TestMessage, TestingError, TestSocket } from './test-socket.js'

/** What a test broker serves: an Express app, a request listener, or an `http.Server`. */
export type TestApp = http.Server | http.RequestListener

/** Options of `createTestBroker`: the broker's own, plus how long the helpers wait. */
export interface TestBrokerOptions extends BrokerOptions {
  /** Milliseconds `connect()`, `nextMessage()` and `closed()` wait before they reject. @default 2000 */
  timeout?: number | undefined
}

/** Options of one `connect()` or `refusal()`. */
export interface TestConnectOptions {
  /** Extra request headers (a session cookie, `Authorization`, `Origin`). */
  headers?: Record<string, string> | undefined
  /** Subprotocols to offer (`bearer.<jwt>` for a real token). */
  protocols?: string | string[] | undefined
  /** Milliseconds to wait for the handshake. @default the broker's `timeout` */
  timeout?: number | undefined
}

/** An upgrade the broker refused: the HTTP status, the one-line reason, the headers. */
export interface TestRefusal {
  status: number
  reason: string
  /** Response headers, lower-cased (`retry-after`, …). */
  headers: Readonly<Record<string, string>>
}

/** An identity to connect as: user, groups, session key; absent fields are empty. */
export type TestIdentity = Partial<Identity>

const DEFAULT_TIMEOUT = 2000

/**
 * A broker for your app's tests: on the in-memory engine unless you give `redis`, serving your
 * Express app or `http.Server` on 127.0.0.1 (a free port), with clients that connect as any
 * identity without tokens or cookies, and one `close()` for everything.
 *
 * Identities travel as a random key in a test-only header that only this broker's registry knows;
 * a broker made by `createBroker` never reads it.
 * @example
 * const t = createTestBroker({ expire: 60 })
 * await t.listen(createApp(t.broker))
 * const ann = await t.connect('notifications?subscribe-user', { user: 'ann' })
 * await fetch(`${t.url}/notify/ann`, { method: 'POST', headers: t.headers({ user: 'bob' }) })
 * assert.equal(await ann.nextMessage(), 'hello')
 * await t.close()
 */
export class TestBroker {
  /** The broker under test: define facilities on it, hand it to your app. */
  readonly broker: Broker
  /** The broker's background errors so far (a hook that threw, a failed client publish). */
  readonly errors: Error[] = []
  readonly #identities = new TestIdentities()
  readonly #timeout: number
  readonly #sockets = new Set<WebSocket>()
  /** Connections the broker opened, waiting for the socket whose key they carry. */
  readonly #opened = new Map<string, (connection: Connection) => void>()
  #server: http.Server | null = null
  #port = 0
  #closing: Promise<void> | null = null

  constructor(options: TestBrokerOptions = {}) {
    const unknown = unknownKeyMessage(options, [...OPTION_NAMES, 'timeout'])
    if (unknown !== null) throw new OptionError(unknown)
    const { timeout = DEFAULT_TIMEOUT, ...brokerOptions } = options
    if (typeof timeout !== 'number' || !Number.isFinite(timeout) || timeout <= 0) {
      throw new OptionError('timeout must be a number > 0')
    }
    this.#timeout = timeout
    // The registry rides under a symbol no entry exports: see identity/test-identities.ts.
    const withRegistry = { ...brokerOptions, [TEST_IDENTITIES]: this.#identities }
    this.broker = createBroker(withRegistry as BrokerOptions)
    // Kept for the test to look at (a hook that threw), never thrown at it.
    this.broker.on('error', (err) => this.errors.push(err))
    this.broker.on('connection', (connection, request) => {
      const key = this.#identities.keyOf(request)
      if (key !== null) this.#opened.get(key)?.(connection)
    })
  }

  /** The HTTP server, once `listen()` resolved. */
  get server(): http.Server {
    if (!this.#server) throw new Error('call listen() first')
    return this.#server
  }

  /** `http://127.0.0.1:<port>` of the server, once `listen()` resolved. */
  get url(): string {
    if (!this.#server) throw new Error('call listen() first')
    return `http://127.0.0.1:${this.#port}`
  }

  /**
   * Serves `app` (an Express app or request listener; an `http.Server`; nothing: 404 for every
   * request) with the broker attached, on 127.0.0.1 and a free port. Connects the engine first,
   * so a Redis that cannot be reached fails here.
   */
  async listen(app?: TestApp): Promise<this> {
    if (this.#closing) throw new ClosedError('the test broker is closed')
    if (this.#server) throw new Error('listen() was called already')
    const server =
      app instanceof http.Server
        ? app
        : http.createServer(
            app ??
              ((req, res) => {
                if (!this.broker.handleRequest(req, res)) res.writeHead(404).end()
              }),
          )
    this.#server = server
    this.broker.attach(server)
    await this.broker.ready()
    if (!server.listening) {
      server.listen(0, '127.0.0.1')
      await once(server, 'listening')
    }
    this.#port = (server.address() as AddressInfo).port
    return this
  }

  /**
   * Headers that make an HTTP request to your app carry `identity`: `req.wsfacility.identity()`
   * and `SELF` then mean it (this broker's routes only). Pass them to fetch, supertest or
   * `connect()`'s `headers`.
   * @example await fetch(`${t.url}/notify/me`, { method: 'POST', headers: t.headers({ user: 'ann' }) })
   */
  headers(identity: TestIdentity): Record<string, string> {
    return { [TEST_IDENTITY_HEADER]: this.#identities.issue(identity) }
  }

  /** The `ws://` URL of `target`: a path (`/ws/chat?…`), or a facility with its flags under the
   * broker's `path` (`chat?subscribe-broadcast`). */
  wsUrl(target: string): string {
    const path = target.startsWith('/') ? target : `${this.broker.options.path}${target}`
    return `${this.url.replace(/^http/, 'ws')}${path}`
  }

  /**
   * Opens a WebSocket to `target` as `identity` (`{ user, groups, sessionKey }`, no token or
   * cookie needed); without one the broker's own authentication decides (JWT, session cookie in
   * `headers`, `identify`), as in production. Resolves once the connection is live on the broker
   * (its channels subscribed); rejects with an HttpError (`status`, the reason as message,
   * `headers`) when the broker refuses the upgrade.
   * @example const ann = await t.connect('chat?subscribe-broadcast&publish-broadcast', { user: 'ann', groups: ['staff'] })
   */
  async connect(
    target: string,
    identity?: TestIdentity | null,
    options: TestConnectOptions = {},
  ): Promise<TestSocket> {
    if (this.#closing) throw new ClosedError('the test broker is closed')
    const url = this.wsUrl(target)
    const timeout = options.timeout ?? this.#timeout
    const key = this.#identities.issue(identity ?? null)
    const ws = new WebSocket(url, options.protocols ?? [], {
      headers: { ...options.headers, [TEST_IDENTITY_HEADER]: key },
    })
    this.#sockets.add(ws)
    ws.once('close', () => this.#sockets.delete(ws))
    // A failed socket may still report errors after the handshake promise settled.
    ws.on('error', () => {})
    const early: TestMessage[] = []
    const collect = (data: Buffer, binary: boolean): void => {
      early.push(binary ? data : data.toString('utf8'))
    }
    ws.on('message', collect)
    let timer: NodeJS.Timeout | undefined
    const handshake = new Promise<void>((resolve, reject) => {
      let refused = false
      timer = setTimeout(() => {
        reject(new TestingError('WSF_TIMEOUT', `${url}: no handshake within ${timeout} ms`))
      }, timeout)
      ws.once('open', () => resolve())
      ws.once('unexpected-response', (_req, res) => {
        refused = true
        void readRefusal(res).then((err) => reject(err), reject)
      })
      ws.once('error', (err) => reject(err))
      // Closed after the upgrade, or the server went away, before the broker saw it open.
      ws.once('close', (code, reason) => {
        if (refused) return
        const why = `closed with ${code} (${reason.toString()}) during the handshake`
        reject(new TestingError('WSF_TEST_EXPECTATION', `${url}: ${why}`))
      })
    })
    const live = new Promise<Connection>((resolve) => this.#opened.set(key, resolve))
    try {
      const [, connection] = await Promise.all([handshake, live])
      ws.off('message', collect)
      return new TestSocket(ws, connection, early, this.#timeout, url)
    } catch (err) {
      ws.terminate()
      throw err
    } finally {
      clearTimeout(timer)
      this.#opened.delete(key)
    }
  }

  /**
   * The refusal of an upgrade to `target` as `identity`: its HTTP status, reason and headers.
   * Rejects when the broker accepts it (the socket is closed again).
   * @example assert.equal((await t.refusal('staff?subscribe-group', { user: 'eve' })).status, 403)
   */
  async refusal(
    target: string,
    identity?: TestIdentity | null,
    options: TestConnectOptions = {},
  ): Promise<TestRefusal> {
    let socket: TestSocket
    try {
      socket = await this.connect(target, identity, options)
    } catch (err) {
      if (!(err instanceof HttpError)) throw err
      return { status: err.status, reason: err.message, headers: err.headers }
    }
    await socket.close()
    const what = 'expected a refusal, the upgrade was accepted'
    throw new TestingError('WSF_TEST_EXPECTATION', `${this.wsUrl(target)}: ${what}`)
  }

  /**
   * Closes everything: the clients (the broker closes them with 1001), the broker and its engine
   * (Redis connections), the HTTP server, and forgets every test identity. Idempotent.
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      await this.broker.close({ timeout: this.#timeout })
      for (const ws of this.#sockets) ws.terminate()
      const server = this.#server
      if (server?.listening) {
        server.closeAllConnections()
        await new Promise<void>((resolve) => server.close(() => resolve()))
      }
      this.#identities.clear()
    })()
    return this.#closing
  }
}

/** The HttpError of a refused upgrade: its status, its one-line reason, its headers. */
async function readRefusal(res: http.IncomingMessage): Promise<HttpError> {
  let body = ''
  res.setEncoding('utf8')
  for await (const chunk of res) body += chunk as string
  const headers: Record<string, string> = {}
  for (const [name, value] of Object.entries(res.headers)) {
    if (value !== undefined) headers[name] = Array.isArray(value) ? value.join(', ') : value
  }
  const status = res.statusCode ?? 0
  return new HttpError(status, body.trim(), undefined, headers)
}

/**
 * Creates a test broker; `await t.listen(app)` serves your app with it.
 * @example
 * const t = createTestBroker()
 * await t.listen(app)
 */
export function createTestBroker(options: TestBrokerOptions = {}): TestBroker {
  return new TestBroker(options)
}
