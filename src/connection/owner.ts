import type { IncomingMessage } from 'node:http'
import type { Duplex } from 'node:stream'
import type { RawData, WebSocket } from 'ws'
import type { ResolvedOptions } from '../broker/options.js'
import { CloseCode, closeReason } from '../close-codes.js'
import type { Presence } from '../cluster/presence.js'
import { type ServerFrame, serverFrame } from '../delivery/envelope.js'
import { frame, frameFor } from '../delivery/frame.js'
import type { Hub, Recipient } from '../delivery/hub.js'
import { encodeMessage, type Message } from '../delivery/payload.js'
import { HttpError } from '../errors.js'
import type { FacilityContext } from '../facility/definition.js'
import type { FacilitySettings } from '../facility/settings.js'
import type { Identity } from '../identity/identity.js'
import type { ConnectionCounter } from '../upgrade/admission.js'
import { refuseUpgrade } from '../upgrade/handshake.js'
import {
  Connection,
  type ConnectionFacts,
  type ConnectionHandle,
  type ConnectionState,
} from './connection.js'
import type { Flushable, FlushScheduler } from './flush-scheduler.js'
import { handleClientMessage, type InboundTarget } from './inbound.js'
import type { PausedReader, PublishBudget } from './publish-budget.js'
import { bucketFor, type TokenBucket } from './rate-limit.js'
import type { ConnectionRegistry, Upgrading } from './registry.js'

/** What every connection of a broker shares: one object, not a copy each. */
export interface ConnectionServices {
  readonly options: ResolvedOptions
  readonly hub: Hub
  readonly presence: Presence
  readonly registry: ConnectionRegistry
  readonly counter: ConnectionCounter
  readonly scheduler: FlushScheduler
  readonly budget: PublishBudget
  /** Publishes a client's payload on one channel; resolves to the receivers. */
  publish(channel: string, payload: Buffer, expire: number): Promise<number>
  /** Checks a fresh JWT for `identity`; resolves to its expiry (ms since the epoch) or null. */
  refreshToken(token: string, identity: Identity): Promise<number | null>
  /** Counts one client message taken for publishing. */
  received(): void
  /** Announces a connection whose subscriptions are live (the broker's `connection` event). */
  opened(connection: Connection, request: IncomingMessage): void
  /** Announces a connection that went away (the broker's `disconnect` event). */
  closed(connection: Connection, code: number): void
  /** Counts a connection closed as a slow consumer. */
  slowConsumerClosed(): void
  /** Reports a background failure (a hook that threw, a failed publish). */
  error(err: unknown): void
}

/** What the owner learns once the upgrade has decided who the client is and what it gets. */
export interface Acceptance {
  facts: ConnectionFacts
  settings: FacilitySettings
  /** Kept only when a hook will read it. */
  context: FacilityContext
  tokenAuthenticated: boolean
  expiresAt: number | null
}

/** A message that arrived before the handshake completed. */
interface Held {
  channel: string
  payload: Buffer
  framed: Buffer
}

/** What only an upgrade in progress holds. */
interface UpgradeState {
  timer: NodeJS.Timeout
  /** Rejects when the attempt is cut (socket gone, timeout, shutdown). */
  aborted: Promise<never>
  abort: (err: HttpError) => void
}

const OWNER = Symbol('wsfacility.owner')
type Owned = { [OWNER]?: ConnectionOwner }

const ownerOfEmitter = (emitter: unknown): ConnectionOwner | undefined => (emitter as Owned)[OWNER]

// One set of listeners for every socket and WebSocket (called with it as `this`) instead of
// closures per connection: idle connections are most of a broker's memory.
function socketGone(this: Duplex): void {
  ownerOfEmitter(this)?.abort(new HttpError(499, 'client went away', 'WSF_CLIENT_GONE'))
}
function ignoreError(): void {}
function wsMessage(this: WebSocket, data: RawData, isBinary: boolean): void {
  ownerOfEmitter(this)?.received(data as Buffer, isBinary)
}
function wsPong(this: WebSocket): void {
  ownerOfEmitter(this)?.answered()
}
function wsError(this: WebSocket, err: Error): void {
  const owner = ownerOfEmitter(this)
  owner?.services.options.logger?.debug?.({ err, id: owner.connection?.id }, 'client error')
}
function wsClose(this: WebSocket, code: number): void {
  ownerOfEmitter(this)?.release(code)
}

/**
 * Owns one connection for its whole life — upgrading, open, closing, closed — and is the only
 * place that takes and gives back what it holds: the admission counts, the hub registration
 * (subscriptions and receiver counts), messages held before the handshake, the outbound queue,
 * presence, timers. Every way out ends in `release`, which runs once.
 */
export class ConnectionOwner
  implements ConnectionHandle, Recipient, Flushable, InboundTarget, PausedReader, Upgrading
{
  readonly services: ConnectionServices
  readonly #socket: Duplex
  #state: ConnectionState = 'upgrading'
  #upgrade: UpgradeState | null
  /** Why the upgrade was cut, once it was. */
  #abortReason: HttpError | null = null
  /** The public face of this connection, once the upgrade knows who it is. */
  connection: Connection | null = null
  #settings: FacilitySettings | null = null
  #context: FacilityContext | null = null
  #ws: WebSocket | null = null
  // What this connection holds, each given back by release().
  #counted = false
  #countedUser: string | null = null
  #subscribed = false
  #tracked = false
  /** Messages that arrived before the handshake completed; created when the first one does. */
  #held: Held[] | null = null
  #heldBytes = 0
  /** Frames waiting for this turn's flush; created by the first one. */
  #queue: Buffer[] | null = null
  #queued = 0
  /** Payloads this connection published and will see again on channels it subscribes (no echo). */
  #own: Map<string, Buffer[]> | null = null
  #bucket: TokenBucket | null = null
  /** The client messages going through an async onMessage, one at a time, in order. */
  #inbound: Promise<void> | null = null
  #inFlight = 0
  #paused = false
  #alive = true
  #dropped = 0
  #tokenAuthenticated = false
  #expiresAt: number | null = null
  #expiryTimer: NodeJS.Timeout | null = null
  #waiters: (() => void)[] | null = null

  constructor(services: ConnectionServices, socket: Duplex) {
    this.services = services
    this.#socket = socket
    let abort!: (err: HttpError) => void
    const aborted = new Promise<never>((_resolve, reject) => (abort = reject))
    aborted.catch(() => {})
    const timeout = services.options.handshakeTimeout
    const timer = setTimeout(
      () => this.abort(new HttpError(503, 'handshake timed out', 'WSF_HANDSHAKE_TIMEOUT')),
      timeout,
    )
    this.#upgrade = { timer, aborted, abort }
    services.registry.upgradeStarted(this)
    ;(socket as Owned)[OWNER] = this
    socket.on('error', ignoreError)
    socket.on('close', socketGone)
    socket.on('end', socketGone)
  }

  get state(): ConnectionState {
    return this.#state
  }

  get expiresAt(): number | null {
    return this.#expiresAt
  }

  get tokenAuthenticated(): boolean {
    return this.#tokenAuthenticated
  }

  get dropped(): number {
    return this.#dropped
  }

  get format(): 'raw' | 'json' {
    return this.#settings?.format ?? 'raw'
  }

  // ---- upgrading -------------------------------------------------------------------------------

  /**
   * `work`, unless the attempt is cut first (the socket went away, the handshake timed out, the
   * broker is shutting down): then the cut's HttpError. Every await of the upgrade goes through it.
   */
  step<T>(work: Promise<T>): Promise<T> {
    const upgrade = this.#upgrade
    if (!upgrade || this.#state !== 'upgrading') return Promise.reject(this.#gone())
    return Promise.race([work, upgrade.aborted])
  }

  /** Throws the cut's error when the attempt is over or its socket cannot carry a handshake. */
  check(): void {
    if (this.#state !== 'upgrading') throw this.#gone()
    const socket = this.#socket
    if (socket.destroyed || !socket.readable || !socket.writable) {
      this.abort(new HttpError(499, 'client went away', 'WSF_CLIENT_GONE'))
      throw this.#gone()
    }
  }

  #gone(): HttpError {
    return this.#abortReason ?? new HttpError(499, 'client went away', 'WSF_CLIENT_GONE')
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
    this.#settings = settings
    this.connection = new Connection(this, acceptance.facts)
    if (settings.hasHooks) this.#context = acceptance.context
    this.#bucket = bucketFor(settings.publishRate, settings.publishBurst)
    this.#tokenAuthenticated = acceptance.tokenAuthenticated
    this.#expiresAt = acceptance.expiresAt
    return this.connection
  }

  /**
   * Subscribes the connection's channels (once per process however many connections want them)
   * and counts it as a receiver; messages are held from now until the handshake completes.
   */
  async subscribe(): Promise<void> {
    this.check()
    const connection = this.connection!
    this.#subscribed = true
    await this.step(this.services.hub.add(this, connection.channels.subscribe, connection.format))
  }

  /**
   * Cuts the upgrade: answers the client with the refusal when it can still read one, and gives
   * back everything taken so far. Idempotent; a no-op once the connection is open.
   */
  abort(err: HttpError): void {
    const upgrade = this.#upgrade
    if (!upgrade || this.#state !== 'upgrading') return
    this.#abortReason = err
    upgrade.abort(err)
    refuseUpgrade(this.#socket, err.status, err.message, err.headers)
    this.release(1006)
  }

  abortShutdown(): void {
    this.abort(new HttpError(503, 'server is shutting down'))
  }

  /** Ends the upgrade-only state (timer, socket listeners, the registry's count). */
  #endUpgrade(): void {
    const upgrade = this.#upgrade
    if (!upgrade) return
    this.#upgrade = null
    clearTimeout(upgrade.timer)
    const socket = this.#socket
    socket.off('close', socketGone)
    socket.off('end', socketGone)
    socket.off('error', ignoreError)
    this.services.registry.upgradeEnded(this)
  }

  /**
   * Takes over the WebSocket of a completed handshake: stored messages first (skipping any the
   * live stream already carried), then what arrived while upgrading, then live traffic.
   */
  open(ws: WebSocket, stored: ReadonlyMap<string, Buffer>, request: IncomingMessage): void {
    if (this.#state !== 'upgrading') {
      ws.terminate()
      return
    }
    const services = this.services
    const connection = this.connection!
    this.#endUpgrade()
    this.#ws = ws
    ;(ws as Owned)[OWNER] = this
    ws.on('message', wsMessage)
    ws.on('pong', wsPong)
    ws.on('error', wsError)
    ws.on('close', wsClose)
    this.#state = 'open'
    services.registry.opened(connection)
    const held = this.#held ?? []
    this.#dropHeld()
    for (const [channel, payload] of stored) {
      if (held.some((h) => h.channel === channel && h.payload.equals(payload))) continue
      this.#enqueue(frameFor(this.format, payload))
    }
    for (const h of held) this.#enqueue(h.framed)
    if (this.#expiresAt !== null) this.#setExpiry(this.#expiresAt)
    services.options.logger?.debug?.(
      { id: connection.id, facility: connection.facility },
      'connection accepted',
    )
    services.opened(connection, request)
    if (services.options.presence && connection.identity.user !== null) {
      this.#tracked = true
      services.registry.pending(services.presence.track(connection))
    }
    const onConnect = this.#settings!.definition?.onConnect
    if (onConnect) this.#runHook(() => onConnect(connection, this.#context!))
  }

  // ---- delivery ----------------------------------------------------------------------------------

  deliver(channel: string, payload: Buffer, framed: Buffer): void {
    const state = this.#state
    if (state === 'closed' || state === 'closing') return
    const own = this.#own?.get(channel)
    if (own && own.length > 0 && own[0]!.equals(payload)) {
      own.shift()
      return
    }
    if (state === 'upgrading') this.#hold(channel, payload, framed)
    else this.#enqueue(framed)
  }

  /** Keeps a message for after the handshake, within the same bound as unsent frames. */
  #hold(channel: string, payload: Buffer, framed: Buffer): void {
    const settings = this.#settings!
    if (this.#heldBytes + framed.length > settings.maxBufferedBytes) {
      if (settings.slowConsumer === 'drop') {
        this.#dropped++
        return
      }
      this.services.slowConsumerClosed()
      this.abort(new HttpError(503, 'too many messages before the handshake completed'))
      return
    }
    ;(this.#held ??= []).push({ channel, payload, framed })
    this.#heldBytes += framed.length
    this.services.registry.heldBytes += framed.length
  }

  #dropHeld(): void {
    this.services.registry.heldBytes -= this.#heldBytes
    this.#heldBytes = 0
    this.#held = null
  }

  /** Queues one text frame as is (a heartbeat answer, an envelope frame). */
  sendText(text: string): void {
    if (this.#state === 'open') this.#enqueue(frame(Buffer.from(text, 'utf8'), false))
  }

  send(message: Message): void {
    if (this.#state === 'open') this.#enqueue(frameFor(this.format, encodeMessage(message)))
  }

  sendFrame(value: ServerFrame): void {
    this.sendText(serverFrame(value))
  }

  #enqueue(framed: Buffer): void {
    const socket = this.#socket
    const settings = this.#settings!
    if (this.#queued + socket.writableLength + framed.length > settings.maxBufferedBytes) {
      if (settings.slowConsumer === 'drop') {
        this.#dropped++
        return
      }
      this.services.slowConsumerClosed()
      this.close(CloseCode.TRY_AGAIN_LATER, 'client too slow')
      return
    }
    this.#queued += framed.length
    if (this.#queue) this.#queue.push(framed)
    else {
      this.#queue = [framed]
      this.services.scheduler.schedule(this)
    }
  }

  /** Writes every queued frame in one go. */
  flush(): void {
    const queue = this.#queue
    if (!queue) return
    this.#queue = null
    this.#queued = 0
    const socket = this.#socket
    if (socket.destroyed || !socket.writable) return
    // One write per turn: each write to a socket costs a syscall and stream bookkeeping, whatever
    // its size. The frames are written under `ws`, which is why permessage-deflate stays off.
    socket.write(queue.length === 1 ? queue[0]! : this.services.scheduler.joined(queue))
  }

  /**
   * Notes a payload this connection is about to publish on `channel`, so that its own copy is not
   * delivered back to it. Returns a function that forgets it again (when the publish failed).
   */
  #expectOwn(channel: string, payload: Buffer): () => void {
    this.#own ??= new Map()
    let list = this.#own.get(channel)
    if (!list) this.#own.set(channel, (list = []))
    list.push(payload)
    return () => {
      const i = list.indexOf(payload)
      if (i !== -1) list.splice(i, 1)
    }
  }

  /** Forgets expected own payloads (after the subscriber connection lost messages). */
  forgetOwn(): void {
    this.#own = null
  }

  // ---- inbound -----------------------------------------------------------------------------------

  /** A message from the client. */
  received(data: Buffer, isBinary: boolean): void {
    this.#alive = true
    if (this.#state !== 'open') return
    handleClientMessage(this, this.services.options.heartbeat, data, isBinary)
  }

  /** A pong from the client. */
  answered(): void {
    this.#alive = true
  }

  takeToken(): boolean {
    return this.#bucket === null || this.#bucket.take()
  }

  async refreshToken(token: string): Promise<void> {
    const expiresAt = await this.services.refreshToken(token, this.connection!.identity)
    this.#setExpiry(expiresAt)
  }

  offer(message: unknown, payload: Buffer, text = false): void {
    const hook = this.#settings!.definition?.onMessage
    if (!hook) return this.#publish(payload)
    const connection = this.connection!
    const context = this.#context!
    const step = async (): Promise<void> => {
      let pass: boolean
      try {
        const value = text ? (message as Buffer).toString('utf8') : message
        pass = (await hook(connection, value, context)) !== false
      } catch (err) {
        this.services.error(err)
        pass = false
      }
      if (pass) this.#publish(payload)
    }
    const next = (this.#inbound ?? Promise.resolve()).then(step)
    this.#inbound = next
    void next.then(() => {
      if (this.#inbound === next) this.#inbound = null
    })
  }

  /**
   * Publishes a client message on the connection's publish channels (never echoing it without
   * `echo`), within the publish budget: past it, the socket is not read until Redis answers.
   */
  #publish(payload: Buffer): void {
    const services = this.services
    const settings = this.#settings!
    const connection = this.connection!
    const { expire } = settings
    if (expire > 0 && payload.length > settings.maxStoredMessage) {
      const detail = `messages stored on this facility are limited to ${settings.maxStoredMessage} bytes`
      if (this.format === 'json')
        this.sendFrame({ type: 'error', code: 'message_too_large', detail })
      else this.close(CloseCode.TOO_BIG, 'message too large to store')
      return
    }
    services.received()
    const channels = connection.channels.publish
    if (channels.length === 0) return
    const cost = payload.length * channels.length
    const budget = services.budget
    this.#inFlight += cost
    budget.take(cost)
    let left = channels.length
    const done = (): void => {
      if (--left > 0) return
      this.#inFlight -= cost
      budget.give(cost)
      this.maybeResume()
    }
    for (const channel of channels) {
      const forget =
        !connection.echo && connection.channels.subscribe.includes(channel)
          ? this.#expectOwn(channel, payload)
          : null
      services.publish(channel, payload, expire).then(done, (err: unknown) => {
        forget?.()
        services.error(err)
        this.close(CloseCode.INTERNAL, 'publish failed')
        done()
      })
    }
    if (this.#inFlight >= budget.perConnection || budget.exhausted) this.#pause()
  }

  #pause(): void {
    if (this.#paused || this.#state !== 'open') return
    this.#paused = true
    this.services.budget.wait(this)
    this.#ws?.pause()
  }

  maybeResume(): void {
    if (!this.#paused) return
    const budget = this.services.budget
    if (this.#state === 'open' && (this.#inFlight >= budget.perConnection || budget.exhausted))
      return
    this.#paused = false
    budget.unwait(this)
    this.#ws?.resume()
  }

  // ---- liveness and expiry ---------------------------------------------------------------------

  heartbeat(): void {
    if (this.#state !== 'open') return
    if (!this.#alive) return this.terminate()
    this.#alive = false
    this.#ws?.ping()
  }

  /** Closes the connection at `expiresAt` (replacing an earlier expiry); null cancels. */
  #setExpiry(expiresAt: number | null): void {
    if (this.#expiryTimer) clearTimeout(this.#expiryTimer)
    this.#expiryTimer = null
    this.#expiresAt = expiresAt
    if (expiresAt === null || this.#state !== 'open') return
    // setTimeout holds at most ~24.8 days; longer expiries re-arm when that fires.
    const delay = Math.min(Math.max(0, expiresAt - Date.now()), 2 ** 31 - 1)
    this.#expiryTimer = setTimeout(() => {
      if (Date.now() < expiresAt) return this.#setExpiry(expiresAt)
      if (this.format === 'json') {
        this.sendFrame({ type: 'error', code: 'expired_token', detail: 'token expired' })
      }
      this.close(CloseCode.TOKEN_EXPIRED, 'token expired')
    }, delay)
    this.#expiryTimer.unref()
  }

  // ---- the end -----------------------------------------------------------------------------------

  close(code: number, reason = ''): void {
    if (this.#state === 'upgrading') return this.abort(new HttpError(503, reason || 'closed'))
    if (this.#state !== 'open') return
    this.flush()
    this.#state = 'closing'
    this.#stopDelivery()
    this.#ws!.close(code, closeReason(reason))
  }

  /** Cuts the connection at once; `code` is what the disconnect reports. */
  terminate(code = 1006): void {
    if (this.#state === 'upgrading') return this.abortShutdown()
    if (this.#state === 'closed') return
    this.#ws?.terminate()
    this.#socket.destroy()
    this.release(code)
  }

  #stopDelivery(): void {
    if (this.#expiryTimer) clearTimeout(this.#expiryTimer)
    this.#expiryTimer = null
    this.#queue = null
    this.#queued = 0
    this.#own = null
  }

  /**
   * Gives back everything the connection holds — exactly once, whatever ended it (ws refusing the
   * handshake, the socket closing at any point, a timeout, a refusal, a close, the broker's
   * shutdown). A connection that had opened is announced as gone, and its onDisconnect runs.
   */
  release(code: number): void {
    const was = this.#state
    if (was === 'closed') return
    this.#state = 'closed'
    const services = this.services
    this.#endUpgrade()
    this.#stopDelivery()
    this.#dropHeld()
    const connection = this.connection
    if (this.#subscribed && connection) services.hub.remove(this, connection.channels.subscribe)
    this.#subscribed = false
    if (this.#counted) services.counter.release()
    this.#counted = false
    if (this.#countedUser !== null) services.counter.releaseUser(this.#countedUser)
    this.#countedUser = null
    if (this.#paused) services.budget.unwait(this)
    this.#paused = false
    if (connection && (was === 'open' || was === 'closing')) {
      services.registry.closed(connection)
      services.options.logger?.debug?.(
        { id: connection.id, facility: connection.facility, code },
        'connection closed',
      )
      services.closed(connection, code)
      if (this.#tracked) services.registry.pending(services.presence.untrack(connection))
      this.#tracked = false
      const onDisconnect = this.#settings!.definition?.onDisconnect
      if (onDisconnect) this.#runHook(() => onDisconnect(connection, code, this.#context!))
    }
    for (const resolve of this.#waiters ?? []) resolve()
    this.#waiters = null
  }

  released(): Promise<void> {
    if (this.#state === 'closed') return Promise.resolve()
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
