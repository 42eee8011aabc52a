import { EventEmitter } from 'node:events'
import type { IncomingMessage, Server, ServerResponse } from 'node:http'
import type { Duplex } from 'node:stream'
import { type RawData, WebSocketServer, type WebSocket } from 'ws'
import { type Authentication, Authenticator } from './auth/authenticator.js'
import { selectProtocol } from './auth/jwt.js'
import { Connection, CloseCode, type Delivery } from './connection.js'
import { ControlPlane } from './control.js'
import { type FacilityContext, type FacilityDefinition, FacilityRegistry } from './facility.js'
import { decideFlags } from './policy.js'
import { Presence, type PresenceEvent } from './presence.js'
import { type Accepted, handleClientMessage, type ProtocolHost } from './protocol.js'
import { MemoryEngine } from './engine/memory.js'
import { RedisEngine } from './engine/redis.js'
import type { Engine, EngineStatus } from './engine/types.js'
import { ClosedError, EngineError, HttpError, TimeoutError, WsFacilityError } from './errors.js'
import { checkHandshake, refuseUpgrade } from './http.js'
import { Hub } from './hub.js'
import { type Identity, isIdentity, normalizeIdentity } from './identity.js'
import { encodeMessage, type Message, type StoredMessage, toStored } from './message.js'
import { BrokerMetrics } from './metrics.js'
import { type BrokerOptions, type ResolvedOptions, resolveOptions } from './options.js'
import { matchesPath, parseRequest } from './request.js'
import { RedisSubscriber } from './subscriber.js'
import { FlushScheduler } from './writer.js'
import { bucketFor, ConnectionCounter } from './limits.js'
import { type CloseOptions, resolveCloseOptions, withTimeout } from './shutdown.js'
import { checkOrigin, isCookieAuthenticated } from './origin.js'

/** One upgrade in progress: the connection it registered, and whether it ran out of time. */
interface Attempt {
  conn: Connection | null
  timedOut: boolean
}

/** Events a broker emits. */
export interface BrokerEvents {
  /** A client completed its handshake; its subscriptions are live. */
  connection: [connection: Connection, request: IncomingMessage]
  /** A client went away. */
  disconnect: [connection: Connection, code: number]
  /** An upgrade was refused before the handshake. */
  refused: [request: IncomingMessage, status: number, reason: string]
  /** A background failure (Redis connection, failed client publish). Never thrown. */
  error: [error: Error]
  /** The engine's connection state changed. */
  engine: [status: EngineStatus]
  /** A user came online or went offline (with `presence: true`); once per transition, cluster-wide. */
  presence: [event: PresenceEvent]
}

/** Options of one publish. */
export interface PublishOptions {
  /** Seconds to store the message for replay; overrides the broker's `expire`. */
  expire?: number
}

/** What a connection without facility hooks is handled with: nothing reads its context. */
const NO_HOOKS: Accepted = {
  definition: null,
  context: null as unknown as FacilityContext,
  bucket: null,
}

/** The slow-consumer action, shared by all connections. */
function closeSlowConsumer(conn: Connection): void {
  conn.close(CloseCode.TRY_AGAIN_LATER, 'client too slow')
}

/**
 * A WebSocket broker: accepts upgrades under `path`, maps each connection's flags and identity to
 * Redis channels, and delivers what anyone publishes on them.
 */
export class Broker extends EventEmitter<BrokerEvents> {
  readonly options: ResolvedOptions
  readonly engine: Engine
  readonly subscriber: RedisSubscriber
  /** Who is online, cluster-wide (tracked with the `presence` option). */
  readonly presence: Presence
  readonly #auth: Authenticator
  readonly #facilities = new FacilityRegistry()
  readonly #accepted = new WeakMap<Connection, Accepted>()
  readonly #host: ProtocolHost
  readonly #controlPlane: ControlPlane
  #sequence = 0
  #controlLive = false
  readonly #hub: Hub
  readonly #wss: WebSocketServer
  /** Delivery limits of connections without a facility definition, and per definition. */
  readonly #scheduler = new FlushScheduler()
  readonly #delivery: Delivery
  readonly #deliveries = new WeakMap<FacilityDefinition, Delivery>()
  readonly #connections = new Map<string, Connection>()
  readonly #pending = new Set<Duplex>()
  readonly #counter: ConnectionCounter
  readonly #servers = new Map<
    Server,
    (req: IncomingMessage, socket: Duplex, head: Buffer) => void
  >()
  readonly #metrics = new BrokerMetrics(this)
  #started: Promise<void> | null = null
  #pingTimer: NodeJS.Timeout | null = null
  #closing: Promise<void> | null = null

  constructor(options: BrokerOptions = {}) {
    super()
    this.options = resolveOptions(options)
    this.engine =
      this.options.engine ??
      (this.options.redis !== undefined || this.options.redisCluster !== undefined
        ? new RedisEngine({
            redis: this.options.redis,
            cluster: this.options.redisCluster,
            prefix: this.options.channelPrefix,
          })
        : new MemoryEngine())
    this.engine.onError((err) => this.#error(err))
    this.engine.onStatus((status) => {
      // Messages published while the subscriber was away are lost; so are their own copies.
      if (status === 'reconnecting') {
        for (const c of this.#connections.values()) c.forgetOwn()
        this.options.logger?.warn?.({ redis: status }, 'redis connection lost, reconnecting')
      } else if (status === 'ready') this.options.logger?.info?.({ redis: status }, 'redis ready')
      this.emit('engine', status)
    })
    this.subscriber = new RedisSubscriber({ prefix: this.options.channelPrefix })
    this.#auth = new Authenticator(this.options)
    this.#controlPlane = new ControlPlane(
      this.engine,
      this.options.channelPrefix,
      this.#connections,
    )
    this.presence = new Presence(
      this.engine,
      (event) => this.emit('presence', event),
      (err) => this.#error(err),
    )
    this.#host = {
      heartbeat: this.options.heartbeat,
      publish: (conn, payload) => this.#publishFrom(conn, payload),
      refreshToken: (conn, token) => this.refreshToken(conn, token),
      error: (err) => this.#error(err),
    }
    this.#hub = new Hub(this.engine, (err) => this.#error(err))
    this.#counter = new ConnectionCounter(this.options)
    this.#delivery = {
      maxBufferedBytes: this.options.maxBufferedBytes,
      slowConsumer: this.options.slowConsumer,
      scheduler: this.#scheduler,
      onSlowConsumer: (c) => {
        this.#metrics.slowConsumerCloses++
        closeSlowConsumer(c)
      },
    }
    this.#wss = new WebSocketServer({
      noServer: true,
      clientTracking: false,
      perMessageDeflate: false,
      maxPayload: this.options.maxPayload,
      handleProtocols: selectProtocol,
    })
  }

  /** Live connections of this process, by id. */
  get connections(): ReadonlyMap<string, Connection> {
    return this.#connections
  }

  /** Channels this process is subscribed to for its clients. */
  get channelCount(): number {
    return this.#clientChannels
  }

  /** Counters since start: messages taken from the engine (framed once each) and deliveries. */
  get stats(): { connections: number; channels: number; messages: number; deliveries: number } {
    return {
      connections: this.#connections.size,
      channels: this.#clientChannels,
      messages: this.#hub.messages,
      deliveries: this.#hub.deliveries,
    }
  }

  /** Channels held for clients (the process's own control channel left out). */
  get #clientChannels(): number {
    return this.#hub.channelCount - (this.#controlLive ? 1 : 0)
  }

  /** Metrics in the Prometheus text exposition format (connections, messages, drops, refusals,
   * Redis state, publish latency, process memory and CPU). */
  metrics(): string {
    return this.#metrics.text()
  }

  /**
   * A node:http request handler (also an Express middleware) that answers with `metrics()`; mount
   * it where your scraper looks.
   * @example app.get('/metrics', broker.metricsHandler())
   */
  metricsHandler(): (req: IncomingMessage, res: ServerResponse) => void {
    return this.#metrics.handler()
  }

  /** True once `close()` was called. */
  get closed(): boolean {
    return this.#closing !== null
  }

  #error(err: unknown): void {
    const error = err instanceof Error ? err : new Error(String(err))
    this.options.logger?.error?.({ err: error }, error.message)
    if (this.listenerCount('error') > 0) this.emit('error', error)
  }

  /** Connects the engine (Redis); called on first use, may be awaited to fail early. */
  ready(): Promise<void> {
    if (this.#closing) return Promise.reject(new ClosedError())
    this.#started ??= this.engine.start().then(
      async () => {
        // One control channel per process carries sends and closes addressed from elsewhere.
        await this.#hub.add(this.#controlPlane, [this.#controlPlane.channel])
        this.#controlLive = true
        this.#startPings()
      },
      (err: unknown) => {
        this.#started = null
        throw err
      },
    )
    return this.#started
  }

  #startPings(): void {
    if (this.options.pingInterval === 0 || this.#pingTimer) return
    this.#pingTimer = setInterval(() => {
      for (const conn of this.#connections.values()) {
        if (!conn.alive) {
          conn.terminate()
          continue
        }
        conn.alive = false
        conn.ws?.ping()
      }
    }, this.options.pingInterval)
    this.#pingTimer.unref()
  }

  /**
   * Handles WebSocket upgrades under `path` on `server`. Upgrades elsewhere are left to other
   * listeners (or refused with 404 when there are none).
   */
  attach(server: Server): this {
    if (this.#closing) throw new ClosedError()
    if (this.#servers.has(server)) return this
    const listener = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
      if (!matchesPath(req.url ?? '', this.options.path)) {
        if (server.listenerCount('upgrade') === 1) refuseUpgrade(socket, 404, 'not found')
        return
      }
      void this.handleUpgrade(req, socket, head)
    }
    server.on('upgrade', listener)
    this.#servers.set(server, listener)
    this.ready().catch((err: unknown) => this.#error(err))
    return this
  }

  /** Stops handling upgrades on `server` (open connections stay). */
  detach(server: Server): void {
    const listener = this.#servers.get(server)
    if (listener) server.off('upgrade', listener)
    this.#servers.delete(server)
  }

  /**
   * Defines a facility: a name (`chat`) or a pattern with parameters (`room/{id}`), its allowed
   * audiences, auto-subscriptions, anonymous access, expiry, wire format and hooks. Facilities
   * that are not defined keep the broker's defaults.
   * @example broker.facility('room/{id}', { format: 'json', authorize: ({ params, identity }) => canJoin(identity.user, params.id) })
   */
  facility(pattern: string, definition: FacilityDefinition<Connection>): this {
    this.#facilities.define(pattern, definition as FacilityDefinition)
    return this
  }

  /** The definition (and pattern parameters) that applies to a concrete facility name. */
  facilityOf(facility: string): {
    definition: FacilityDefinition | null
    params: Record<string, string>
  } {
    const match = this.#facilities.match(facility)
    return match
      ? { definition: match.entry.definition, params: match.params }
      : { definition: null, params: {} }
  }

  /** Seconds messages published on `facility` are stored: its definition's, else the broker's. */
  expireOf(facility: string): number {
    return this.facilityOf(facility).definition?.expire ?? this.options.expire
  }

  /**
   * Answers a plain HTTP request under `path` with 426 Upgrade Required; returns false (and does
   * nothing) for other paths. For servers that want WebSocket paths to say what they are.
   */
  handleRequest(req: IncomingMessage, res: ServerResponse): boolean {
    if (!matchesPath(req.url ?? '', this.options.path)) return false
    res.writeHead(426, {
      'Content-Type': 'text/plain; charset=utf-8',
      Upgrade: 'websocket',
      Connection: 'Upgrade',
    })
    res.end('this URL accepts WebSocket connections only\n')
    return true
  }

  /** Runs one upgrade: every refusal happens here, before the handshake, with an HTTP status. */
  async handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    this.#pending.add(socket)
    const onSocketError = (): void => {}
    socket.on('error', onSocketError)
    const attempt: Attempt = { conn: null, timedOut: false }
    const work = this.#prepare(req, socket, attempt)
    try {
      const stored = await withTimeout(work, this.options.handshakeTimeout).catch((err) => {
        if (!(err instanceof TimeoutError)) throw err
        attempt.timedOut = true
        throw new HttpError(503, 'handshake timed out', 'WSF_HANDSHAKE_TIMEOUT')
      })
      const conn = attempt.conn!
      if (socket.destroyed) throw new HttpError(499, 'client went away')
      if (this.#closing) throw new HttpError(503, 'server is shutting down')
      this.#wss.handleUpgrade(req, socket, head, (ws) => this.#open(conn, ws, socket, stored, req))
    } catch (err) {
      // After a timeout the work goes on in the background: release what it took once it settles.
      const release = (): void => this.#release(attempt)
      if (attempt.timedOut) void work.then(release, release)
      else release()
      const status = err instanceof HttpError ? err.status : 500
      const reason = err instanceof HttpError ? err.message : 'internal error'
      if (!(err instanceof HttpError)) this.#error(err)
      this.options.logger?.info?.({ status, reason, url: req.url }, 'upgrade refused')
      refuseUpgrade(socket, status, reason, err instanceof HttpError ? err.headers : {})
      this.emit('refused', req, status, reason)
    } finally {
      this.#pending.delete(socket)
      socket.off('error', onSocketError)
    }
  }

  /** Undoes what a refused upgrade registered. */
  #release(attempt: Attempt): void {
    const conn = attempt.conn
    if (!conn) return
    this.#hub.remove(conn, conn.channels.subscribe)
    conn.markClosed()
  }

  /**
   * The broker's work for one upgrade: limits, parsing, identity, origin, policy, then the
   * subscriptions; resolves to the stored messages to replay. Each connection counts against the
   * limits until its socket closes.
   */
  async #prepare(
    req: IncomingMessage,
    socket: Duplex,
    attempt: Attempt,
  ): Promise<Map<string, Buffer>> {
    if (this.#closing) throw new HttpError(503, 'server is shutting down')
    checkHandshake(req)
    this.#countUntilClosed(socket, this.#counter.admit())
    const parsed = parseRequest(req.url ?? '', this.options.path, {
      maxFacilityLength: this.options.maxFacilityLength,
      maxFlags: this.options.maxFlags,
    })
    await this.ready().catch((err: unknown) => {
      throw new HttpError(503, 'message broker unavailable', (err as WsFacilityError).code)
    })
    // While Redis is away a connection would miss messages without knowing; refuse it instead
    // (even when its channels are already subscribed and nothing else would touch Redis).
    if (this.engine.status !== 'ready') {
      throw new HttpError(503, 'message broker unavailable', 'WSF_REDIS_UNAVAILABLE')
    }
    const { definition, params } = this.facilityOf(parsed.facility)
    const auth = await this.#authenticateUpgrade(req, definition)
    const identity = auth.identity
    checkOrigin(req, this.options.origins, isCookieAuthenticated(req, auth))
    if (identity.user !== null)
      this.#countUntilClosed(socket, this.#counter.admitUser(identity.user))
    const context: FacilityContext = { facility: parsed.facility, params, identity, request: req }
    const flags = await decideFlags(parsed, definition, this.options, context)
    if (attempt.timedOut) throw new HttpError(503, 'handshake timed out')
    const channels = this.subscriber.channels(parsed.facility, flags, identity)
    const conn = new Connection({
      id: `${this.engine.nodeId}.${(++this.#sequence).toString(36)}`,
      facility: parsed.facility,
      params,
      format: definition?.format ?? 'raw',
      identity,
      channels,
      echo: parsed.echo,
      delivery: this.#deliveryFor(definition),
    })
    attempt.conn = conn
    const bucket = bucketFor(
      definition?.publishRate ?? this.options.publishRate,
      definition?.publishBurst ?? this.options.publishBurst,
    )
    // Only hooks read the context; without them and without a rate limit nothing is kept, so an
    // idle connection does not keep its upgrade request.
    if (bucket || definition?.onConnect || definition?.onDisconnect || definition?.onMessage)
      this.#accepted.set(conn, { definition, context, bucket })
    conn.expiresAt = auth.expiresAt
    conn.tokenAuthenticated = auth.via === 'jwt'
    return this.#subscribe(conn)
  }

  /** The delivery limits a facility's connections share (one object per definition). */
  #deliveryFor(definition: FacilityDefinition | null): Delivery {
    if (!definition || (definition.maxBufferedBytes ?? definition.slowConsumer) === undefined)
      return this.#delivery
    let delivery = this.#deliveries.get(definition)
    if (!delivery) {
      delivery = {
        ...this.#delivery,
        maxBufferedBytes: definition.maxBufferedBytes ?? this.options.maxBufferedBytes,
        slowConsumer: definition.slowConsumer ?? this.options.slowConsumer,
      }
      this.#deliveries.set(definition, delivery)
    }
    return delivery
  }

  /** Keeps a connection counted until its socket closes (whether it was upgraded or refused). */
  #countUntilClosed(socket: Duplex, release: () => void): void {
    if (socket.destroyed) release()
    else socket.once('close', release)
  }

  async #authenticateUpgrade(
    req: IncomingMessage,
    definition: FacilityDefinition | null,
  ): Promise<Authentication> {
    let auth: Authentication
    try {
      auth = await this.#auth.authenticate(req)
    } catch (err) {
      if (err instanceof HttpError) throw err
      this.#error(err)
      // A session store that cannot answer is an outage, not a bad credential.
      if (err instanceof EngineError) throw new HttpError(503, 'session store unavailable')
      throw new HttpError(401, 'cannot identify this request')
    }
    const anonymousAllowed = definition?.anonymous ?? this.options.anonymous
    if (!anonymousAllowed && auth.identity.user === null) {
      throw new HttpError(401, 'authentication required')
    }
    return auth
  }

  /** Subscribes a pending connection, then reads what is stored for its channels. */
  async #subscribe(conn: Connection): Promise<Map<string, Buffer>> {
    const channels = conn.channels.subscribe
    try {
      await this.#hub.add(conn, channels, conn.format)
    } catch (err) {
      this.#error(err)
      throw new HttpError(503, 'message broker unavailable')
    }
    const stored = new Map<string, Buffer>()
    if (!this.options.replay || channels.length === 0) return stored
    try {
      const values = await this.engine.get(channels)
      // Whatever was published before the read has now reached the connection's held messages.
      await this.engine.barrier()
      values.forEach((v, i) => v && stored.set(channels[i]!, v))
    } catch (err) {
      this.#error(err)
      throw new HttpError(503, 'message broker unavailable')
    }
    return stored
  }

  #open(
    conn: Connection,
    ws: WebSocket,
    socket: Duplex,
    stored: Map<string, Buffer>,
    req: IncomingMessage,
  ): void {
    this.#connections.set(conn.id, conn)
    this.#byWs.set(ws, conn)
    const on = this.#wsListeners
    ws.on('message', on.message)
    ws.on('pong', on.pong)
    ws.on('error', on.error)
    ws.on('close', on.close)
    conn.open(ws, socket, stored)
    if (conn.expiresAt !== null) conn.setExpiry(conn.expiresAt, this.#expire)
    this.options.logger?.debug?.({ id: conn.id, facility: conn.facility }, 'connection accepted')
    this.emit('connection', conn, req)
    if (this.options.presence) this.#pendingPresence(this.presence.track(conn))
    const accepted = this.#accepted.get(conn)
    const onConnect = accepted?.definition?.onConnect
    if (onConnect) this.#runHook(() => onConnect(conn, accepted.context))
  }

  /** Connection of each open WebSocket, for the listeners every socket shares. */
  readonly #byWs = new WeakMap<WebSocket, Connection>()
  /**
   * One set of listeners for all sockets (ws calls them with the socket as `this`) instead of
   * closures per connection: idle connections are most of a broker's memory.
   */
  readonly #wsListeners = ((broker: Broker) => ({
    message(this: WebSocket, data: RawData, isBinary: boolean): void {
      const conn = broker.#byWs.get(this)
      if (!conn) return
      conn.alive = true
      if (!conn.isOpen) return
      const accepted = broker.#accepted.get(conn) ?? NO_HOOKS
      handleClientMessage(broker.#host, conn, accepted, data as Buffer, isBinary)
    },
    pong(this: WebSocket): void {
      const conn = broker.#byWs.get(this)
      if (conn) conn.alive = true
    },
    error(this: WebSocket, err: Error): void {
      broker.options.logger?.debug?.({ err, id: broker.#byWs.get(this)?.id }, 'client error')
    },
    close(this: WebSocket, code: number): void {
      const conn = broker.#byWs.get(this)
      if (conn) broker.#drop(conn, code)
    },
  }))(this)

  readonly #expire = (conn: Connection): void => {
    if (conn.format === 'json') {
      conn.sendFrame({ type: 'error', code: 'expired_token', detail: 'token expired' })
    }
    conn.close(CloseCode.TOKEN_EXPIRED, 'token expired')
  }

  readonly #presenceWork = new Set<Promise<void>>()

  /** Keeps presence updates in flight so close() can wait for them (leaves must reach Redis). */
  #pendingPresence(work: Promise<void>): void {
    this.#presenceWork.add(work)
    void work.finally(() => this.#presenceWork.delete(work))
  }

  #runHook(fn: () => unknown): void {
    try {
      Promise.resolve(fn()).catch((err: unknown) => this.#error(err))
    } catch (err) {
      this.#error(err)
    }
  }

  /**
   * Accepts a fresh JWT for a connection authenticated by one (the `{"token": "…"}` message on raw
   * facilities; facilities with their own protocol call it too). The identity must stay the same;
   * the connection then lives until the new token's expiry. Rejects with a TokenError (the caller
   * closes with 1008).
   */
  async refreshToken(conn: Connection, token: string): Promise<void> {
    const expiresAt = await this.#auth.refresh(token, conn.identity)
    conn.setExpiry(expiresAt, this.#expire)
  }

  #drop(conn: Connection, code: number): void {
    if (!this.#connections.delete(conn.id)) return
    this.#hub.remove(conn, conn.channels.subscribe)
    conn.markClosed()
    this.options.logger?.debug?.(
      { id: conn.id, facility: conn.facility, code },
      'connection closed',
    )
    this.emit('disconnect', conn, code)
    if (this.options.presence) this.#pendingPresence(this.presence.untrack(conn))
    const accepted = this.#accepted.get(conn)
    const onDisconnect = accepted?.definition?.onDisconnect
    if (onDisconnect) this.#runHook(() => onDisconnect(conn, code, accepted.context))
  }

  /** Publishes what a client sent on its publish-* channels (never echoing it without `echo`). */
  #publishFrom(conn: Connection, payload: Buffer): void {
    this.#metrics.messagesIn++
    const expire = this.expireOf(conn.facility)
    for (const channel of conn.channels.publish) {
      const forget =
        !conn.echo && conn.channels.subscribe.includes(channel)
          ? conn.expectOwn(channel, payload)
          : null
      this.#enginePublish(channel, payload, expire).catch((err: unknown) => {
        forget?.()
        this.#error(err)
        conn.close(CloseCode.INTERNAL, 'publish failed')
      })
    }
  }

  /** engine.publish, timed for the publish latency histogram. */
  async #enginePublish(channel: string, payload: Buffer, expire: number): Promise<number> {
    const start = performance.now()
    try {
      const n = await this.engine.publish(channel, payload, expire)
      this.#metrics.observePublish((performance.now() - start) / 1000, true)
      return n
    } catch (err) {
      this.#metrics.observePublish(0, false)
      throw err
    }
  }

  /**
   * Sends a message to one connection, on whatever process holds it (Panther's addressable
   * connections). Resolves to false when no process knows the id's node; a connection that has
   * gone meanwhile is ignored.
   */
  async sendTo(connectionId: string, message: string | Buffer): Promise<boolean> {
    await this.ready()
    return this.#controlPlane.sendTo(connectionId, message)
  }

  /** Closes one connection, on whatever process holds it, with `code` (1000 or 3000–4999). */
  async closeConnection(connectionId: string, code = 1000, reason = ''): Promise<boolean> {
    await this.ready()
    return this.#controlPlane.closeConnection(connectionId, code, reason)
  }

  /** Closes every connection of `user` on every process. */
  async disconnectUser(user: string, code = 1000, reason = ''): Promise<void> {
    await this.ready()
    return this.#controlPlane.disconnectUser(user, code, reason)
  }

  /**
   * The identity of a request — an upgrade or an Express `req` (session, passport user, bearer
   * JWT) — resolved as for connections, or of an identity-like object.
   */
  async identify(
    requestOrIdentity: IncomingMessage | Partial<Identity> | null | undefined,
  ): Promise<Identity> {
    if (requestOrIdentity === null || requestOrIdentity === undefined)
      return normalizeIdentity(null)
    if (isIdentity(requestOrIdentity)) return normalizeIdentity(requestOrIdentity)
    return (await this.#auth.authenticate(requestOrIdentity as IncomingMessage)).identity
  }

  /**
   * Publishes `message` on raw channel names; resolves to the number of connections, on every
   * process, that received it. Most code uses RedisPublisher instead.
   */
  async publish(
    channels: readonly string[],
    message: Message,
    options: PublishOptions = {},
  ): Promise<number> {
    const expire = options.expire ?? this.options.expire
    if (typeof expire !== 'number' || !Number.isFinite(expire) || expire < 0) {
      throw new TypeError('expire must be a number >= 0')
    }
    const payload = encodeMessage(message)
    await this.ready()
    const counts = await Promise.all(channels.map((ch) => this.#enginePublish(ch, payload, expire)))
    return counts.reduce((a, b) => a + b, 0)
  }

  /** The first stored message among `channels`, in order, or null. */
  async fetch(channels: readonly string[]): Promise<StoredMessage | null> {
    if (channels.length === 0) return null
    await this.ready()
    const values = await this.engine.get([...channels])
    const found = values.find((v) => v !== null)
    return found ? toStored(found) : null
  }

  /**
   * Shuts down: new upgrades get 503; messages already published reach their clients (bounded by
   * the timeout); every client is closed with `code` (1001 by default, 1012 for a restart) after
   * its queued frames; after `timeout` ms the rest are cut; then the channels are unsubscribed and
   * Redis is released. Idempotent. A number is the timeout, as in earlier versions.
   * @example await broker.close({ code: 1012, timeout: 5000 })
   */
  close(options: number | CloseOptions = {}): Promise<void> {
    const { code, timeout } = resolveCloseOptions(options)
    this.#closing ??= (async () => {
      if (this.#pingTimer) clearInterval(this.#pingTimer)
      const deadline = Date.now() + timeout
      // What Redis accepted before close() is on its way to this process: let it arrive first.
      if (this.#started) await withTimeout(this.engine.barrier(), timeout).catch(() => {})
      const conns = [...this.#connections.values()]
      const gone = conns.map(
        (c) =>
          new Promise<void>((resolve) => {
            if (!c.ws || c.ws.readyState === c.ws.CLOSED) return resolve()
            c.ws.once('close', () => resolve())
          }),
      )
      const reason =
        code === CloseCode.SERVICE_RESTART ? 'server restarting' : 'server shutting down'
      for (const c of conns) c.close(code, reason)
      await withTimeout(Promise.all(gone), Math.max(0, deadline - Date.now())).catch(() => {})
      for (const c of conns) {
        if (c.ws && c.ws.readyState !== c.ws.CLOSED) c.terminate()
        this.#drop(c, code)
      }
      for (const socket of this.#pending) socket.destroy()
      for (const server of [...this.#servers.keys()]) this.detach(server)
      this.#wss.close()
      await Promise.allSettled([...this.#presenceWork])
      await this.#started?.catch(() => {})
      await this.engine.close()
    })()
    return this.#closing
  }
}

/**
 * Creates a broker. Without `redis` or `redisCluster` it runs on the in-memory engine (one process).
 * @example
 * const broker = createBroker({ redis: process.env.REDIS_URL, expire: 60 })
 * broker.attach(httpServer)
 */
export function createBroker(options: BrokerOptions = {}): Broker {
  return new Broker(options)
}
