import type { IncomingMessage } from 'node:http'
import type { Duplex } from 'node:stream'
import { WebSocketServer } from 'ws'
import type { Authentication, Authenticator } from './auth/authenticator.js'
import { selectProtocol } from './auth/jwt.js'
import { Connection, CloseCode, type Delivery } from './connection.js'
import type { FacilityContext, FacilityDefinition } from './facility.js'
import { decideFlags } from './policy.js'
import type { Engine } from './engine/types.js'
import { EngineError, HttpError, TimeoutError, type WsFacilityError } from './errors.js'
import { checkHandshake, refuseUpgrade } from './http.js'
import type { Hub } from './hub.js'
import type { Lifecycle } from './lifecycle.js'
import type { ResolvedOptions } from './options.js'
import { parseRequest } from './request.js'
import type { RedisSubscriber } from './subscriber.js'
import { FlushScheduler } from './writer.js'
import { bucketFor, ConnectionCounter } from './limits.js'
import { withTimeout } from './shutdown.js'
import { checkOrigin, isCookieAuthenticated } from './origin.js'
import { redactUrl } from './redact.js'

/** One upgrade in progress: the connection it registered, and whether it ran out of time. */
interface Attempt {
  conn: Connection | null
  timedOut: boolean
}

/** What the upgrade flow needs from the broker. */
export interface UpgradeHost {
  readonly options: ResolvedOptions
  readonly engine: Engine
  readonly subscriber: RedisSubscriber
  readonly hub: Hub
  readonly auth: Authenticator
  /** True once the broker is shutting down. */
  closing(): boolean
  /** Connects the engine (the broker's `ready()`). */
  ready(): Promise<void>
  /** The definition (and pattern parameters) that applies to a concrete facility name. */
  facilityOf(facility: string): {
    definition: FacilityDefinition | null
    params: Record<string, string>
  }
  /** Keeps what hooks and the rate limit read for a connection being accepted. */
  accept: Lifecycle['accept']
  /** Takes over a connection whose handshake completed. */
  open: Lifecycle['open']
  /** Reports an upgrade refused before the handshake. */
  refused(req: IncomingMessage, status: number, reason: string): void
  /** Counts a connection closed as a slow consumer (before it is closed). */
  slowConsumerClosed(): void
  /** Reports a background failure. */
  error(err: unknown): void
}

/** The slow-consumer action, shared by all connections. */
function closeSlowConsumer(conn: Connection): void {
  conn.close(CloseCode.TRY_AGAIN_LATER, 'client too slow')
}

/**
 * The HTTP upgrade flow: limits, parsing, identity, origin, policy and subscriptions, ending in a
 * refusal with an HTTP status or in an open connection handed to the host.
 */
export class Upgrader {
  readonly #host: UpgradeHost
  readonly #wss: WebSocketServer
  #sequence = 0
  /** Delivery limits of connections without a facility definition, and per definition. */
  readonly #scheduler = new FlushScheduler()
  readonly #delivery: Delivery
  readonly #deliveries = new WeakMap<FacilityDefinition, Delivery>()
  readonly #pending = new Set<Duplex>()
  readonly #counter: ConnectionCounter

  constructor(host: UpgradeHost) {
    this.#host = host
    const options = host.options
    this.#counter = new ConnectionCounter(options)
    this.#delivery = {
      maxBufferedBytes: options.maxBufferedBytes,
      slowConsumer: options.slowConsumer,
      scheduler: this.#scheduler,
      onSlowConsumer: (c) => {
        host.slowConsumerClosed()
        closeSlowConsumer(c)
      },
    }
    this.#wss = new WebSocketServer({
      noServer: true,
      clientTracking: false,
      perMessageDeflate: false,
      maxPayload: options.maxPayload,
      handleProtocols: selectProtocol,
    })
  }

  /** Runs one upgrade: every refusal happens here, before the handshake, with an HTTP status. */
  async handle(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const host = this.#host
    this.#pending.add(socket)
    const onSocketError = (): void => {}
    socket.on('error', onSocketError)
    const attempt: Attempt = { conn: null, timedOut: false }
    const work = this.#prepare(req, socket, attempt)
    try {
      const stored = await withTimeout(work, host.options.handshakeTimeout).catch((err) => {
        if (!(err instanceof TimeoutError)) throw err
        attempt.timedOut = true
        throw new HttpError(503, 'handshake timed out', 'WSF_HANDSHAKE_TIMEOUT')
      })
      const conn = attempt.conn!
      if (socket.destroyed) throw new HttpError(499, 'client went away')
      if (host.closing()) throw new HttpError(503, 'server is shutting down')
      this.#wss.handleUpgrade(req, socket, head, (ws) => host.open(conn, ws, socket, stored, req))
    } catch (err) {
      // After a timeout the work goes on in the background: release what it took once it settles.
      const release = (): void => this.#release(attempt)
      if (attempt.timedOut) void work.then(release, release)
      else release()
      const status = err instanceof HttpError ? err.status : 500
      const reason = err instanceof HttpError ? err.message : 'internal error'
      if (!(err instanceof HttpError)) host.error(err)
      host.options.logger?.info?.({ status, reason, url: redactUrl(req.url) }, 'upgrade refused')
      refuseUpgrade(socket, status, reason, err instanceof HttpError ? err.headers : {})
      host.refused(req, status, reason)
    } finally {
      this.#pending.delete(socket)
      socket.off('error', onSocketError)
    }
  }

  /** Cuts the upgrades still in progress and closes the WebSocket server (on broker shutdown). */
  close(): void {
    for (const socket of this.#pending) socket.destroy()
    this.#wss.close()
  }

  /** Undoes what a refused upgrade registered. */
  #release(attempt: Attempt): void {
    const conn = attempt.conn
    if (!conn) return
    this.#host.hub.remove(conn, conn.channels.subscribe)
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
    const host = this.#host
    const options = host.options
    if (host.closing()) throw new HttpError(503, 'server is shutting down')
    checkHandshake(req)
    this.#countUntilClosed(socket, this.#counter.admit())
    const parsed = parseRequest(req.url ?? '', options.path, {
      maxFacilityLength: options.maxFacilityLength,
      maxFlags: options.maxFlags,
    })
    await host.ready().catch((err: unknown) => {
      throw new HttpError(503, 'message broker unavailable', (err as WsFacilityError).code)
    })
    // While Redis is away a connection would miss messages without knowing; refuse it instead
    // (even when its channels are already subscribed and nothing else would touch Redis).
    if (host.engine.status !== 'ready') {
      throw new HttpError(503, 'message broker unavailable', 'WSF_REDIS_UNAVAILABLE')
    }
    const { definition, params } = host.facilityOf(parsed.facility)
    const auth = await this.#authenticate(req, definition)
    const identity = auth.identity
    checkOrigin(req, options.origins, isCookieAuthenticated(req, auth))
    if (identity.user !== null)
      this.#countUntilClosed(socket, this.#counter.admitUser(identity.user))
    const context: FacilityContext = { facility: parsed.facility, params, identity, request: req }
    const flags = await decideFlags(parsed, definition, options, context)
    if (attempt.timedOut) throw new HttpError(503, 'handshake timed out')
    const channels = host.subscriber.channels(parsed.facility, flags, identity)
    const conn = new Connection({
      id: `${host.engine.nodeId}.${(++this.#sequence).toString(36)}`,
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
      definition?.publishRate ?? options.publishRate,
      definition?.publishBurst ?? options.publishBurst,
    )
    // Only hooks read the context; without them and without a rate limit nothing is kept, so an
    // idle connection does not keep its upgrade request.
    if (bucket || definition?.onConnect || definition?.onDisconnect || definition?.onMessage)
      host.accept(conn, { definition, context, bucket })
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
        maxBufferedBytes: definition.maxBufferedBytes ?? this.#host.options.maxBufferedBytes,
        slowConsumer: definition.slowConsumer ?? this.#host.options.slowConsumer,
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

  async #authenticate(
    req: IncomingMessage,
    definition: FacilityDefinition | null,
  ): Promise<Authentication> {
    let auth: Authentication
    try {
      auth = await this.#host.auth.authenticate(req)
    } catch (err) {
      if (err instanceof HttpError) throw err
      this.#host.error(err)
      // A session store that cannot answer is an outage, not a bad credential.
      if (err instanceof EngineError) throw new HttpError(503, 'session store unavailable')
      throw new HttpError(401, 'cannot identify this request')
    }
    const anonymousAllowed = definition?.anonymous ?? this.#host.options.anonymous
    if (!anonymousAllowed && auth.identity.user === null) {
      throw new HttpError(401, 'authentication required')
    }
    return auth
  }

  /** Subscribes a pending connection, then reads what is stored for its channels. */
  async #subscribe(conn: Connection): Promise<Map<string, Buffer>> {
    const host = this.#host
    const channels = conn.channels.subscribe
    try {
      await host.hub.add(conn, channels, conn.format)
    } catch (err) {
      host.error(err)
      throw new HttpError(503, 'message broker unavailable')
    }
    const stored = new Map<string, Buffer>()
    if (!host.options.replay || channels.length === 0) return stored
    try {
      const values = await host.engine.get(channels)
      // Whatever was published before the read has now reached the connection's held messages.
      await host.engine.barrier()
      values.forEach((v, i) => v && stored.set(channels[i]!, v))
    } catch (err) {
      host.error(err)
      throw new HttpError(503, 'message broker unavailable')
    }
    return stored
  }
}
