import { EventEmitter } from 'node:events'
import type { HistoryOptions } from '../history/wire.js'
import type { IncomingMessage, Server, ServerResponse } from 'node:http'
import type { Duplex } from 'node:stream'
import { Authenticator } from '../identity/authenticator.js'
import { testIdentitiesOf } from '../identity/test-identities.js'
import { type Connection, ownerOf } from '../connection/connection.js'
import type { ConnectionServices } from '../connection/services.js'
import { FlushScheduler } from '../connection/flush-scheduler.js'
import { PublishBudget } from '../connection/publish-budget.js'
import { ConnectionRegistry } from '../connection/registry.js'
import type { ControlPlane } from '../cluster/control-channel.js'
import type { FacilityDefinition, WireFormat } from '../facility/definition.js'
import { FacilityRegistry } from '../facility/registry.js'
import { ConnectionCounter } from '../upgrade/admission.js'
import { Presence } from '../cluster/presence.js'
import type { Engine } from '../engine/types.js'
import { ClosedError } from '../errors.js'
import { answerUpgradeRequired } from '../upgrade/handshake.js'
import { Attachments } from './attachments.js'
import { Hub } from '../delivery/hub.js'
import type { Identity, PartialIdentity } from '../identity/identity.js'
import { type Message, type StoredMessage, toStored } from '../delivery/payload.js'
import { BrokerMetrics } from '../observability/metrics.js'
import { type BrokerOptions, engineFor, type ResolvedOptions, resolveOptions } from './options.js'
import { matchesPath } from '../upgrade/parse-url.js'
import { RedisSubscriber } from '../channels/redis-subscriber.js'
import { type CloseOptions, resolveCloseOptions, shutDown } from './close.js'
import { Upgrader } from '../upgrade/upgrader.js'
import { type BrokerEvents, type BrokerStats, type PublishOptions, readStats } from './events.js'
import { EngineReturn, logEngineStatus } from './engine-return.js'
import {
  type ChannelSettings,
  type PublishFn,
  publishToChannels,
  timedPublish,
} from './timed-publish.js'
import {
  changeMembership,
  controlPlaneFor,
  type JoinOptions,
  type JoinTarget,
  type RefreshOptions,
  refreshMembership,
} from './membership.js'

export type { BrokerEvents, BrokerStats, PublishOptions } from './events.js'

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
  readonly #facilities: FacilityRegistry
  readonly #controlPlane: ControlPlane
  #controlLive = false
  readonly #hub: Hub
  /** The connections, open and upgrading; each is owned by its ConnectionOwner. */
  readonly #registry = new ConnectionRegistry()
  /** The upgrades that lead to them (refused with a status, or opened). */
  readonly #upgrader: Upgrader
  readonly #attachments: Attachments
  readonly #metrics: BrokerMetrics
  readonly #engineReturn: EngineReturn
  readonly #publish: PublishFn
  #started: Promise<void> | null = null
  #closing: Promise<void> | null = null

  constructor(options: BrokerOptions = {}) {
    super()
    this.options = resolveOptions(options)
    this.#facilities = new FacilityRegistry(this.options)
    this.#attachments = new Attachments(this.options.path, (req, socket, head) => {
      void this.handleUpgrade(req, socket, head)
    })
    this.#metrics = new BrokerMetrics(this, this.options.metrics)
    this.engine = engineFor(this.options)
    this.engine.onError((err) => this.#error(err))
    this.#publish = timedPublish(this.engine, this.#metrics)
    this.engine.onStatus((status) => {
      if (status === 'reconnecting')
        for (const c of this.#registry.open.values()) ownerOf(c).forgetOwn()
      logEngineStatus(this.options.logger, status)
      this.emit('engine', status)
    })
    this.subscriber = new RedisSubscriber({ prefix: this.options.channelPrefix })
    this.#auth = new Authenticator(this.options, testIdentitiesOf(options))
    this.presence = new Presence(
      this.engine,
      (event) => this.emit('presence', event),
      (err) => this.#error(err),
    )
    this.#hub = new Hub(this.engine, (err) => this.#error(err), this.options.channelPrefix)
    this.#engineReturn = new EngineReturn(this.engine)
    const services: ConnectionServices = {
      options: this.options,
      hub: this.#hub,
      presence: this.presence,
      registry: this.#registry,
      counter: new ConnectionCounter(this.options),
      scheduler: new FlushScheduler(),
      budget: new PublishBudget(this.options.maxInFlightBytes, this.options.maxInFlightBytesTotal),
      subscriber: this.subscriber,
      engineReturned: () => this.#engineReturn.wait(),
      publish: (channel, payload, expire, history) =>
        this.#publish(channel, payload, expire, history),
      refreshToken: (token, identity) => this.#auth.refresh(token, identity),
      received: () => this.#metrics.messageIn(),
      opened: (conn, req) => this.emit('connection', conn, req),
      closed: (conn, code) => this.emit('disconnect', conn, code),
      slowConsumerClosed: () => this.#metrics.slowConsumerClosed(),
      error: (err) => this.#error(err),
    }
    this.#controlPlane = controlPlaneFor(
      this.engine,
      this.options.channelPrefix,
      this.#registry.open,
      this.#auth,
      (err) => this.#error(err),
    )
    this.#upgrader = new Upgrader({
      options: this.options,
      engine: this.engine,
      subscriber: this.subscriber,
      auth: this.#auth,
      services,
      closing: () => this.#closing !== null,
      ready: () => this.ready(),
      started: () => this.#controlLive,
      facilityOf: (facility) => this.#facilities.match(facility),
      refused: (req, status, reason) => this.emit('refused', req, status, reason),
      error: (err) => this.#error(err),
    })
  }

  /** Live connections of this process, by id. */
  get connections(): ReadonlyMap<string, Connection> {
    return this.#registry.open
  }

  /** Channels this process is subscribed to for its clients. */
  get channelCount(): number {
    return this.stats.channels
  }

  /** Counters since start: messages taken from the engine (framed once each), deliveries and
   * history reads. */
  get stats(): BrokerStats {
    // The process's own control channel is not a client's.
    return readStats(this.#registry, this.#hub, this.#controlLive ? 1 : 0)
  }

  /** Metrics in the Prometheus text exposition format (connections, messages, drops, refusals,
   * Redis state, publish latency; process memory and CPU unless `metrics.registry` is given). */
  metrics(): Promise<string> {
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
        this.#registry.startPings(this.options.pingInterval)
      },
      (err: unknown) => {
        this.#started = null
        throw err
      },
    )
    return this.#started
  }

  /**
   * Handles WebSocket upgrades under `path` on `server`. Upgrades elsewhere are left to other
   * listeners (or refused with 404 when there are none).
   */
  attach(server: Server): this {
    if (this.#closing) throw new ClosedError()
    if (this.#attachments.add(server)) this.ready().catch((err: unknown) => this.#error(err))
    return this
  }

  /** Stops handling upgrades on `server` (open connections stay). */
  detach(server: Server): void {
    this.#attachments.remove(server)
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

  /** Seconds messages published on `facility` are stored: its definition's, else the broker's. */
  expireOf(facility: string): number {
    return this.#facilities.match(facility).settings.expire
  }

  /** The wire format of `facility`: its definition's, else the broker's. */
  formatOf(facility: string): WireFormat {
    return this.#facilities.match(facility).settings.format
  }

  /** The history of `facility`'s channels ({ size, ttl }): its definition's, else the broker's;
   * null for none. */
  historyOf(facility: string): HistoryOptions | null {
    return this.#facilities.match(facility).settings.history
  }

  /**
   * Answers a plain HTTP request under `path` with 426 Upgrade Required; returns false (and does
   * nothing) for other paths. For servers that want WebSocket paths to say what they are.
   */
  handleRequest(req: IncomingMessage, res: ServerResponse): boolean {
    if (!matchesPath(req.url ?? '', this.options.path)) return false
    answerUpgradeRequired(res)
    return true
  }

  /** Runs one upgrade: every refusal happens here, before the handshake, with an HTTP status. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    return this.#upgrader.handle(req, socket, head)
  }

  /**
   * Accepts a fresh JWT for a connection authenticated by one (the `{"token": "…"}` message on raw
   * facilities; facilities with their own protocol call it too). The identity must stay the same;
   * the connection then lives until the new token's expiry. Rejects with a TokenError (the caller
   * closes with 1008).
   */
  refreshToken(conn: Connection, token: string): Promise<void> {
    return ownerOf(conn).refreshToken(token)
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
   * Joins the connections of `target` — one connection, a user's or a session's, on every
   * process — to a group or channel of their facility, without reconnecting. Resolves, once the
   * subscriptions are live, to the number of connections listening to it (already or now).
   * Rejects with a JoinRefusedError when a facility refuses (its `subscribe` list, `authorize`
   * with `context.join`, `allowedChannels`); the connections it allowed stay joined.
   * @example await broker.join({ user: 'alice' }, { group: 'room-42' })
   */
  async join(target: JoinTarget, options: JoinOptions): Promise<number> {
    await this.ready()
    return changeMembership(this.#controlPlane, 'join', target, options)
  }

  /** Leaves a group or channel (as `join`); resolves to the number of connections that left. */
  async leave(target: JoinTarget, options: JoinOptions): Promise<number> {
    await this.ready()
    return changeMembership(this.#controlPlane, 'leave', target, options)
  }

  /**
   * Re-reads the identity of `user`'s connections on every process — their groups from
   * `options.groups`, or their session from the store — and moves each to the group channels it
   * now has (joined and left channels stay so); a connection whose session is gone or now names
   * another user is closed with 4401. Resolves to the number of connections refreshed.
   * @example await broker.refreshIdentity('alice', { groups: ['staff'] })
   */
  async refreshIdentity(user: string, options: RefreshOptions = {}): Promise<number> {
    await this.ready()
    return refreshMembership(this.#controlPlane, user, options)
  }

  /**
   * The identity of a request — an upgrade or an Express `req` (session, passport user, bearer
   * JWT) — resolved as for connections, or of an identity-like object.
   */
  async identify(
    requestOrIdentity: IncomingMessage | PartialIdentity | null | undefined,
  ): Promise<Identity> {
    return this.#auth.identify(requestOrIdentity)
  }

  /**
   * Publishes `message` on raw channel names; resolves to the number of connections, on every
   * process, that received it. Most code uses RedisPublisher instead. Without `expire` or
   * `history` in `options`, each channel gets its facility's (the name's last segment), as
   * RedisPublisher does.
   */
  async publish(
    channels: readonly string[],
    message: Message,
    options: PublishOptions = {},
  ): Promise<number> {
    const ready = () => this.ready()
    return publishToChannels(this.#publish, this.#settingsOf, ready, channels, message, options)
  }

  readonly #settingsOf: ChannelSettings = (ch) =>
    this.#facilities.ofChannel(this.options.channelPrefix, ch) ?? this.options

  /**
   * The first stored message among `channels`, in order, or null: a Buffer on `binary`
   * facilities (`format`) and for bytes that are not UTF-8, a string otherwise.
   */
  async fetch(
    channels: readonly string[],
    format: WireFormat = this.options.format,
  ): Promise<StoredMessage | null> {
    if (channels.length === 0) return null
    await this.ready()
    const values = await this.engine.get([...channels])
    const found = values.find((v) => v !== null)
    return found ? toStored(found, format) : null
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
    this.#closing ??= shutDown({
      code,
      timeout,
      registry: this.#registry,
      engineReturn: this.#engineReturn,
      started: this.#started,
      engine: this.engine,
      detachAll: () => {
        this.#attachments.clear()
        this.#upgrader.close()
      },
      metrics: this.#metrics,
    })
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
