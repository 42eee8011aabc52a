import type { IncomingMessage } from 'node:http'
import type { Duplex } from 'node:stream'
import type { WebSocket } from 'ws'
import { CloseCode, closeReason } from '../close-codes.js'
import { HttpError } from '../errors.js'
import { refuseUpgrade } from '../upgrade/handshake.js'
import { refusalClose } from '../upgrade/refusal.js'
import { Connection, type ConnectionHandle, type ConnectionState } from './connection.js'
import { TokenExpiry } from './expiry.js'
import {
  clientGone,
  type ListenedOwner,
  ignoreError,
  own,
  socketGone,
  wsClose,
  wsError,
  wsMessage,
  wsPong,
} from './listeners.js'
import type { Attempt } from './registry.js'
import type { Acceptance, ConnectionServices } from './services.js'
import type { Recoveries } from '../history/recovery.js'
import { Subscribing } from './subscribing.js'

/**
 * Owns one connection for its whole life — upgrading, open, closing, closed — and is the only
 * place that takes and gives back what it holds: the admission counts, the hub registration
 * (subscriptions and receiver counts), messages held before the handshake, the outbound queue,
 * presence, timers. Every way out ends in `release`, which runs once. Its outbound queue
 * (outbound.ts), inbound handling (publishing.ts) and live joins (subscribing.ts) are the classes
 * it extends.
 */
export class ConnectionOwner
  extends Subscribing
  implements ConnectionHandle, Attempt, ListenedOwner
{
  /** True while the upgrade is in progress (its deadline counts, the registry lists it). */
  #upgrading = true
  readonly deadline: number
  /**
   * Rejects the step in flight with the cut's error. Steps run one at a time: the pipeline awaits
   * each before it takes the next.
   */
  #cut: ((err: HttpError) => void) | null = null
  /** Why the upgrade was cut, once it was. */
  #abortReason: HttpError | null = null
  // What this connection holds, each given back by release().
  #counted = false
  #countedUser: string | null = null
  #subscribed = false
  #tracked = false
  /** The token's expiry and its timer; made for a token that expires (null until one does). */
  #expiry: TokenExpiry | null = null
  #waiters: (() => void)[] | null = null
  /** Completes the handshake for a refusal told by a close (refusal.ts); null: refuse over HTTP. */
  #completeForRefusal: (() => WebSocket | null) | null = null
  /** The WebSocket of a refusal told by a close, until it is gone. */
  #refusal: { ws: WebSocket; timer: NodeJS.Timeout } | null = null

  constructor(services: ConnectionServices, socket: Duplex) {
    super(services, socket)
    this.deadline = performance.now() + services.options.handshakeTimeout
    services.registry.upgradeStarted(this)
    own(socket, this)
    socket.on('error', ignoreError)
    socket.on('close', socketGone)
    socket.on('end', socketGone)
  }

  get state(): ConnectionState {
    return this.phase
  }

  get expiresAt(): number | null {
    return this.#expiry?.at ?? null
  }

  // ---- upgrading -------------------------------------------------------------------------------

  /**
   * `work`, unless the attempt is cut first (the socket went away, the handshake timed out, the
   * broker is shutting down): then the cut's HttpError. Every await of the upgrade goes through it.
   */
  step<T>(work: Promise<T>): Promise<T> {
    if (!this.#upgrading || this.phase !== 'upgrading') return Promise.reject(this.#gone())
    return new Promise<T>((resolve, reject) => {
      this.#cut = reject
      work.then(resolve, reject)
    })
  }

  timedOut(): void {
    this.abort(new HttpError(503, 'handshake timed out', 'WSF_HANDSHAKE_TIMEOUT'))
  }

  /** Throws the cut's error when the attempt is over or its socket cannot carry a handshake. */
  check(): void {
    if (this.phase !== 'upgrading') throw this.#gone()
    const socket = this.socket
    if (socket.destroyed || !socket.readable || !socket.writable) {
      this.abort(clientGone())
      throw this.#gone()
    }
  }

  #gone(): HttpError {
    return this.#abortReason ?? clientGone()
  }

  /** Counts the connection against `maxConnections` (throws 503 past it). */
  admit(): void {
    this.check()
    this.services.counter.admit()
    this.#counted = true
  }

  /** Counts it for its user against `maxConnectionsPerUser` (throws 429 past it). */
  admitUser(user: string): void {
    this.check()
    this.services.counter.admitUser(user)
    this.#countedUser = user
  }

  /** Takes the decisions of the upgrade: who the client is, its facility and its channels. */
  accept(acceptance: Acceptance): Connection {
    this.check()
    const { settings } = acceptance
    this.settings = settings
    this.connection = new Connection(this, acceptance.facts)
    // Kept for the hooks that read it: onConnect/onMessage/onDisconnect, and the checks of joins.
    if (settings.hasHooks || settings.authorize.length > 0 || this.services.options.allowedChannels)
      this.context = acceptance.context
    this.tokenAuthenticated = acceptance.tokenAuthenticated
    this.#expiryFor(acceptance.expiresAt)?.set(acceptance.expiresAt)
    this.trackChannels(acceptance.flags)
    return this.connection
  }

  /**
   * Subscribes the connection's channels (once per process however many connections want them)
   * and counts it as a receiver; messages are held from now until the handshake completes.
   * `subscribed` resolves once Redis has confirmed the channels not subscribed yet (null when
   * every one already was), `counted` once the count is written: the upgrade reads what is stored
   * meanwhile, then awaits both through step() before it opens.
   */
  subscribe(): { subscribed: Promise<void> | null; counted: Promise<void> } {
    this.check()
    this.#subscribed = true
    const { format, history } = this.settings!
    const channels = this.connection!.channels.subscribe
    return this.services.hub.register(this, channels, format, history)
  }

  /**
   * From now on a refusal is told by a close: `complete` completes the handshake (null when `ws`
   * would not) and the owner closes the WebSocket with the refusal's code instead of answering
   * with an HTTP status.
   */
  refuseByClose(complete: () => WebSocket | null): void {
    this.#completeForRefusal = complete
  }

  /**
   * Cuts the upgrade: answers the client with the refusal when it can still read one, and gives
   * back everything taken so far. Idempotent; a no-op once the connection is open.
   */
  abort(err: HttpError): void {
    if (!this.#upgrading || this.phase !== 'upgrading') return
    this.#abortReason = err
    const cut = this.#cut
    this.#cut = null
    cut?.(err)
    const close = this.#completeForRefusal ? refusalClose(err) : null
    const ws = close ? this.#completeForRefusal!() : null
    if (ws && close) return this.#refuseOpen(ws, close.code, close.reason)
    refuseUpgrade(this.socket, err.status, err.message, err.headers)
    this.release(1006)
  }

  /**
   * Tells a refusal on the WebSocket of a handshake completed for it: a close frame, and nothing
   * else. The connection is never registered; what the upgrade subscribed and held goes now, its
   * admission counts go with its socket, which is cut if the client has not answered the close
   * within `handshakeTimeout`.
   */
  #refuseOpen(ws: WebSocket, code: number, reason: string): void {
    this.#endUpgrade()
    this.phase = 'closing'
    this.dropHeld()
    this.#unsubscribe()
    own(ws, this)
    ws.on('error', wsError)
    ws.on('close', wsClose)
    ws.close(code, reason)
    const timer = setTimeout(() => ws.terminate(), this.services.options.handshakeTimeout)
    this.#refusal = { ws, timer }
    this.services.registry.refusalStarted(this)
  }

  abortShutdown(): void {
    if (this.#refusal) return this.terminate()
    this.abort(new HttpError(503, 'server is shutting down'))
  }

  protected overflowWhileUpgrading(): void {
    this.abort(new HttpError(503, 'too many messages before the handshake completed'))
  }

  /**
   * ws is about to take the socket (it listens for its end from then on). Ours goes first: the
   * socket's 'end' listeners stay two, as on a plain ws server, instead of growing to three and
   * keeping the grown list (~150 bytes) for the connection's whole life.
   */
  handingOver(): void {
    this.socket.off('end', socketGone)
  }

  /** Ends the upgrade-only state (its deadline, socket listeners, the registry's count). */
  #endUpgrade(): void {
    if (!this.#upgrading) return
    this.#upgrading = false
    this.#cut = null
    const socket = this.socket
    socket.off('close', socketGone)
    socket.off('end', socketGone)
    // The no-op 'error' listener stays: a refused client may reset the connection after reading
    // its answer, and an 'error' event without a listener would crash the process.
    this.services.registry.upgradeEnded(this)
  }

  /**
   * Takes over the WebSocket of a completed handshake: stored messages first, then what arrived
   * while upgrading, then live traffic; then the connection is announced and its onConnect runs.
   */
  open(
    ws: WebSocket,
    stored: ReadonlyMap<string, Buffer>,
    request: IncomingMessage,
    recoveries: Recoveries | null = null,
  ): void {
    if (this.phase !== 'upgrading') {
      ws.terminate()
      return
    }
    const services = this.services
    const connection = this.connection!
    this.#endUpgrade()
    // ws has an 'error' listener on the socket for as long as it lives: the no-op goes.
    this.socket.off('error', ignoreError)
    this.ws = ws
    own(ws, this)
    ws.on('message', wsMessage)
    ws.on('pong', wsPong)
    ws.on('error', wsError)
    ws.on('close', wsClose)
    services.hub.settle() // what arrived while upgrading is held, behind the stored messages
    this.phase = 'open'
    services.registry.opened(connection)
    this.startDelivery(stored, recoveries)
    this.#expiry?.arm()
    services.options.logger?.debug?.(
      { id: connection.id, facility: connection.facility },
      'connection accepted',
    )
    services.opened(connection, request)
    if (services.options.presence && connection.identity.user !== null) {
      this.#tracked = true
      services.registry.pending(services.presence.track(connection))
    }
    const onConnect = this.settings!.definition?.onConnect
    if (onConnect) this.#runHook(() => onConnect(connection, this.context!))
  }

  // ---- liveness and expiry ---------------------------------------------------------------------

  heartbeat(): void {
    if (this.phase !== 'open') return
    // A socket paused by the publish budget cannot read the client's pong: not a dead client.
    if (!this.alive && !this.readingPaused) return this.terminate()
    this.alive = false
    this.ws?.ping()
  }

  async refreshToken(token: string): Promise<void> {
    const expiresAt = await this.services.refreshToken(token, this.connection!.identity)
    // The new expiry closes the connection only while it is open.
    const expiry = this.#expiryFor(expiresAt)
    if (!expiry) return
    if (this.phase === 'open') expiry.arm(expiresAt)
    else expiry.set(expiresAt)
  }

  /** The connection's TokenExpiry, made now if `at` is an expiry; null while neither is. */
  #expiryFor(at: number | null): TokenExpiry | null {
    if (this.#expiry === null && at !== null) this.#expiry = new TokenExpiry(() => this.#expired())
    return this.#expiry
  }

  #expired(): void {
    if (this.format === 'json') {
      this.sendFrame({ type: 'error', code: 'expired_token', detail: 'token expired' })
    }
    this.close(CloseCode.TOKEN_EXPIRED, 'token expired')
  }

  // ---- the end -----------------------------------------------------------------------------------

  close(code: number, reason = ''): void {
    if (this.phase === 'upgrading') return this.abort(new HttpError(503, reason || 'closed'))
    if (this.phase !== 'open') return
    this.services.hub.settle() // what arrived before the close goes out before it
    this.flush()
    this.phase = 'closing'
    this.#expiry?.clear()
    this.dropQueue()
    this.ws!.close(code, closeReason(reason))
    // A socket paused by the publish budget is read again (what the client sent meanwhile is
    // dropped), or the client's answering close frame would wait for Redis.
    this.maybeResume()
  }

  /** Cuts the connection at once; `code` is what the disconnect reports. */
  terminate(code = 1006): void {
    if (this.phase === 'upgrading') return this.abortShutdown()
    if (this.phase === 'closed') return
    ;(this.ws ?? this.#refusal?.ws)?.terminate()
    this.socket.destroy()
    this.release(code)
  }

  /**
   * Gives back everything the connection holds — exactly once, whatever ended it (ws refusing the
   * handshake, the socket closing at any point, a timeout, a refusal, a close, the broker's
   * shutdown). A connection that had opened is announced as gone, and its onDisconnect runs.
   */
  release(code: number): void {
    const was = this.phase
    if (was === 'closed') return
    this.phase = 'closed'
    const services = this.services
    this.#endUpgrade()
    this.#expiry?.clear()
    this.dropQueue()
    this.dropHeld()
    this.stopReading()
    const refused = this.#refusal !== null
    if (this.#refusal) {
      clearTimeout(this.#refusal.timer)
      this.#refusal = null
      services.registry.refusalEnded(this)
    }
    this.#unsubscribe()
    if (this.#counted) services.counter.release()
    this.#counted = false
    if (this.#countedUser !== null) services.counter.releaseUser(this.#countedUser)
    this.#countedUser = null
    const connection = this.connection
    if (connection && !refused && (was === 'open' || was === 'closing')) {
      services.registry.closed(connection)
      services.options.logger?.debug?.(
        { id: connection.id, facility: connection.facility, code },
        'connection closed',
      )
      services.closed(connection, code)
      if (this.#tracked) services.registry.pending(services.presence.untrack(connection))
      this.#tracked = false
      const onDisconnect = this.settings!.definition?.onDisconnect
      if (onDisconnect) this.#runHook(() => onDisconnect(connection, code, this.context!))
    }
    for (const resolve of this.#waiters ?? []) resolve()
    this.#waiters = null
  }

  /** Takes the connection out of the hub: its channels' receiver counts, its subscriptions. */
  #unsubscribe(): void {
    const connection = this.connection
    if (this.#subscribed && connection)
      void this.services.hub.remove(this, connection.channels.subscribe)
    this.#subscribed = false
  }

  released(): Promise<void> {
    if (this.phase === 'closed') return Promise.resolve()
    return new Promise((resolve) => (this.#waiters ??= []).push(resolve))
  }

  #runHook(fn: () => unknown): void {
    try {
      Promise.resolve(fn()).catch((err: unknown) => this.services.error(err))
    } catch (err) {
      this.services.error(err)
    }
  }
}
