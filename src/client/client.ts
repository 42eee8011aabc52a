import { Emitter } from './emitter.js'
import type { ClientEvents, ClientMessage, ClientStatus } from './events.js'
import { type ClientErrorCode, WsfClientError } from './errors.js'
import { Heartbeat } from './heartbeat.js'
import { StatusCell } from './status.js'
import {
  backoffDelay,
  type ClientOptions,
  type ResolvedOptions,
  resolveOptions,
} from './options.js'
import {
  type ChannelPosition,
  type DataPosition,
  type Positions,
  readPositionFrame,
  type RecoveredEvent,
  recoverParam,
  toObject,
} from './positions.js'
import { finalCloseError, refusalStatus, retryAfter, shouldReconnect } from './retry.js'
import { type CloseEventLike, OPEN, type SendData, type WebSocketLike } from './socket.js'
import { Joins, type JoinResult, type JoinTarget } from './joins.js'
import { TokenRefresh } from './token-refresh.js'
import { buildUrl } from './url.js'

export type { ClientEvents, ClientMessage, ClientStatus } from './events.js'

/**
 * Subprotocol the client always offers: the broker selects it (also beside a `bearer.<jwt>`
 * token) and, offered it, tells refusals by close codes the client can read (4401…).
 */
const PROTOCOL = 'wsfacility'
/**
 * Offered beside it: the broker answers a refusal's handshake with this one, so the socket is
 * known to carry only the refusal's close — never reported open, nothing sent on it.
 */
const REFUSAL_PROTOCOL = 'wsfacility.refusal'
/** Close code the client uses for a connection whose heartbeats went unanswered. */
const HEARTBEAT_TIMEOUT = 4000
/** setTimeout holds at most ~24.8 days. */
const MAX_TIMER = 2 ** 31 - 1

/**
 * A WebSocket client for a wsfacility broker that stays connected: it reconnects with backoff,
 * gets a token on every connect and refreshes it in-band before it expires, recovers what it
 * missed (json facilities with history), sends heartbeats and queues messages while disconnected.
 * @example
 * const client = new WsfClient({ url: '/', facility: 'chat', subscribe: ['broadcast'], publish: ['broadcast'] })
 * client.on('message', (m) => console.log(m))
 * await client.send('hello')
 */
export class WsfClient {
  readonly #options: ResolvedOptions
  readonly #events = new Emitter<ClientEvents>()
  readonly #queue: SendData[] = []
  readonly #status = new StatusCell((status) => this.#events.emit('status', status))
  /** Not connecting, connected or waiting to retry. */
  #stopped = true
  /** Stopped by close() or by a final error: sends are rejected until connect(). */
  #ended = false
  #socket: WebSocketLike | null = null
  #heartbeat: Heartbeat | null = null
  /** Bumped by every attempt and by close(): async work of an older one is ignored. */
  #generation = 0
  /** Failed attempts since the last open. */
  #attempt = 0
  /** The last attempt was refused with 4401 (a token provider gets one retry, not more). */
  #authRetried = false
  #retryTimer: ReturnType<typeof setTimeout> | null = null
  /** Position by channel label, in update order (the last ones are sent when there are many). */
  readonly #positions: Map<string, ChannelPosition>
  /** The current socket was opened with `?recover=`. */
  #asked = false
  /** The current socket has had its first `recovered` frame (later ones report losses). */
  #recoveredSeen = false
  /** The token the current socket is authenticated with. */
  #jwt: string | null = null
  readonly #tokenRefresh: TokenRefresh
  readonly #joins = new Joins({
    send: (text) => {
      const socket = this.#socket
      if (this.#status.value !== 'open' || !socket || socket.readyState !== OPEN) return false
      socket.send(text)
      return true
    },
    position: (label) => this.#positions.get(label),
    positioned: (label, position) => this.#advance({ channel: label, ...position }),
    refused: (error) => this.#events.emit('error', error),
  })

  constructor(options: ClientOptions) {
    this.#options = resolveOptions(options)
    this.#positions = new Map(this.#options.positions)
    const { token, tokenRefresh } = this.#options
    this.#tokenRefresh = new TokenRefresh(
      typeof token === 'function' && tokenRefresh ? token : null,
      (socket) => this.#socket === socket,
      (message, cause) =>
        this.#error('WSF_CLIENT_TOKEN_REFRESH', message, cause === undefined ? {} : { cause }),
    )
    if (this.#options.autoConnect) {
      // `createClient(...).on('status', …)` must hear the first 'connecting': the status is
      // 'connecting' at once, its event comes after the caller attached its listeners.
      this.#status.deferring(() => this.connect())
    }
  }

  /** The current status. */
  get status(): ClientStatus {
    return this.#status.value
  }

  /**
   * Where the client stands in each channel's history (json facilities with `history`), by label:
   * a plain copy, JSON-serialisable, to keep (e.g. in sessionStorage) and give back as the
   * `positions` option after a page reload.
   */
  get positions(): Positions {
    return toObject(this.#positions)
  }

  /** Adds a listener; returns a function that removes it. */
  on<K extends keyof ClientEvents>(
    event: K,
    listener: (value: ClientEvents[K]) => void,
  ): () => void {
    return this.#events.on(event, listener)
  }

  /** Removes a listener. */
  off<K extends keyof ClientEvents>(event: K, listener: (value: ClientEvents[K]) => void): void {
    this.#events.off(event, listener)
  }

  /** Starts connecting (done by the constructor unless `autoConnect: false`); a no-op unless closed. */
  connect(): void {
    if (!this.#stopped) return
    this.#stopped = false
    this.#ended = false
    this.#attempt = 0
    this.#authRetried = false
    this.#status.set('connecting')
    void this.#open()
  }

  /**
   * Sends text or bytes. Resolves once handed to the socket or queued; while disconnected it
   * queues (`queue.whenDisconnected: 'queue'`, up to `queue.max`) or rejects with a coded error.
   */
  send(data: SendData): Promise<void> {
    if (this.#ended) return this.#reject('WSF_CLIENT_CLOSED', 'client is closed')
    const socket = this.#socket
    if (this.#status.value === 'open' && socket && socket.readyState === OPEN) {
      try {
        socket.send(data)
      } catch (err) {
        return Promise.reject(err instanceof Error ? err : new Error(String(err)))
      }
      return Promise.resolve()
    }
    const { max, whenDisconnected } = this.#options.queue
    if (whenDisconnected === 'reject') {
      return this.#reject('WSF_CLIENT_DISCONNECTED', 'not connected')
    }
    if (this.#queue.length >= max) {
      return this.#reject('WSF_CLIENT_QUEUE_FULL', `send queue is full (${max} messages)`)
    }
    this.#queue.push(data)
    return Promise.resolve()
  }

  /**
   * Joins a group or channel of the facility without reconnecting (json facilities defined with
   * `clientJoin`); joined again by itself after every reconnect, from its position when the
   * channel has history. Resolves with the broker's answer; rejects with
   * `WSF_CLIENT_JOIN_REFUSED` (or `WSF_CLIENT_CLOSED`).
   * @example await client.join({ group: 'room-42' })
   */
  join(target: JoinTarget): Promise<JoinResult> {
    if (this.#ended) return this.#reject('WSF_CLIENT_CLOSED', 'client is closed')
    return this.#joins.join(target)
  }

  /** Leaves a group or channel (as `join`); resolves once the broker answered. */
  leave(target: JoinTarget): Promise<void> {
    if (this.#ended) return this.#reject('WSF_CLIENT_CLOSED', 'client is closed')
    return this.#joins.leave(target)
  }

  /**
   * Stops for good: no more reconnects, queued messages are dropped, status 'closed'. Resolves
   * when the socket has closed. `connect()` starts again.
   */
  close(): Promise<void> {
    const socket = this.#socket
    this.#stop()
    this.#queue.length = 0
    if (!socket) return Promise.resolve()
    const closed = new Promise<void>((resolve) => socket.addEventListener('close', () => resolve()))
    socket.close(1000)
    return closed
  }

  async #open(): Promise<void> {
    const generation = ++this.#generation
    const { token, tokenIn, url, WebSocket } = this.#options
    let jwt: string | null | undefined
    try {
      jwt = typeof token === 'function' ? await token() : token
    } catch (err) {
      if (generation !== this.#generation) return
      this.#error('WSF_CLIENT_TOKEN', 'the token provider failed', { cause: err })
      this.#retry()
      return
    }
    if (generation !== this.#generation) return
    const withToken = typeof jwt === 'string' && jwt !== ''
    const recover = recoverParam(this.#positions)
    const query = { ...url.query }
    if (withToken && tokenIn === 'query') query.token = jwt
    if (recover !== null) query.recover = recover
    const target = buildUrl({ ...url, query })
    let socket: WebSocketLike
    try {
      const protocols = [PROTOCOL, REFUSAL_PROTOCOL]
      if (withToken && tokenIn === 'protocol') protocols.push(`bearer.${jwt}`)
      socket = new WebSocket(target, protocols)
    } catch (err) {
      // A URL or subprotocol the runtime refuses will be refused again: stop.
      this.#stop()
      this.#error('WSF_CLIENT_SOCKET', 'could not create the WebSocket', { cause: err })
      return
    }
    socket.binaryType = this.#options.binaryType
    this.#socket = socket
    this.#asked = recover !== null
    this.#recoveredSeen = false
    this.#jwt = withToken ? jwt! : null
    socket.addEventListener('open', () => {
      // A refusal: its close follows, and says what to do.
      if (socket.protocol === REFUSAL_PROTOCOL) return
      if (this.#socket === socket) this.#onOpen(socket)
    })
    socket.addEventListener('message', (event) => {
      if (this.#socket === socket) this.#onMessage(event.data)
    })
    socket.addEventListener('close', (event) => this.#onClose(socket, event))
    // Errors carry no detail in browsers; the close event that follows says what to do.
    socket.addEventListener('error', () => {})
  }

  #onOpen(socket: WebSocketLike): void {
    this.#attempt = 0
    this.#authRetried = false
    if (this.#options.heartbeat) {
      this.#heartbeat = new Heartbeat(
        this.#options.heartbeat,
        (text) => socket.send(text),
        () => this.#onHeartbeatTimeout(socket),
      )
      this.#heartbeat.start()
    }
    if (this.#jwt !== null) this.#tokenRefresh.schedule(socket, this.#jwt)
    this.#status.set('open')
    // In order, before anything sent after this turn; a send failing here closes the socket.
    for (const data of this.#queue.splice(0)) socket.send(data)
    this.#joins.opened()
  }

  #onMessage(data: unknown): void {
    if (this.#heartbeat?.receive(data) || this.#joins.receive(data)) return
    const frame = readPositionFrame(data)
    if (frame?.type === 'recovered') return this.#onRecovered(frame.event)
    if (frame?.type === 'position') return this.#advance(frame.position)
    if (frame?.type === 'data') this.#advance(frame.position)
    const message =
      typeof data === 'string' || data instanceof ArrayBuffer
        ? data
        : ArrayBuffer.isView(data)
          ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
          : (data as ClientMessage)
    this.#events.emit('message', message)
  }

  /** A data frame with a position: the client has this message now (positions only move on). */
  #advance({ channel, epoch, offset }: DataPosition): void {
    const known = this.#positions.get(channel)
    if (known && known.epoch === epoch && known.offset >= offset) return
    this.#positions.delete(channel)
    this.#positions.set(channel, { epoch, offset })
  }

  /** The broker's `recovered` frame: its positions are the client's from now on. */
  #onRecovered(event: RecoveredEvent): void {
    for (const [label, { epoch, offset }] of Object.entries(event.channels)) {
      this.#positions.delete(label)
      this.#positions.set(label, { epoch, offset })
    }
    // The first frame of a connection that gave no positions only tells where the channels stand.
    const report = this.#asked || this.#recoveredSeen
    this.#recoveredSeen = true
    if (report) this.#events.emit('recovered', event)
  }

  #onClose(socket: WebSocketLike, event: CloseEventLike): void {
    if (this.#socket !== socket) return
    this.#socket = null
    this.#tokenRefresh.clear()
    this.#heartbeat?.stop()
    this.#heartbeat = null
    const { code, reason } = event
    this.#events.emit('close', { code, reason })
    if (this.#stopped) return
    const status = refusalStatus(code)
    if (shouldReconnect(code, typeof this.#options.token === 'function', this.#authRetried)) {
      this.#authRetried = status === 401
      this.#retry(status === null ? 0 : (retryAfter(reason) ?? 0))
      return
    }
    this.#stop()
    const final = finalCloseError(code, reason)
    if (final) this.#events.emit('error', final)
  }

  #onHeartbeatTimeout(socket: WebSocketLike): void {
    if (this.#socket !== socket) return
    // The peer is gone or stuck: a close handshake would wait for it, so drop the socket now.
    this.#socket = null
    this.#tokenRefresh.clear()
    this.#heartbeat = null
    socket.close(HEARTBEAT_TIMEOUT, 'heartbeat timeout')
    ;(socket as { terminate?: () => void }).terminate?.()
    this.#events.emit('close', { code: 1006, reason: 'heartbeat timeout' })
    this.#error('WSF_CLIENT_HEARTBEAT_TIMEOUT', 'heartbeats went unanswered')
    this.#retry()
  }

  /** Schedules the next attempt after the backoff delay, or `minimum` ms when that is longer. */
  #retry(minimum = 0): void {
    if (this.#stopped) return
    const { reconnect, random } = this.#options
    if (this.#attempt >= reconnect.attempts) {
      this.#stop()
      this.#error('WSF_CLIENT_GAVE_UP', `gave up after ${this.#attempt} reconnection attempts`)
      return
    }
    const delay = Math.min(
      MAX_TIMER,
      Math.max(backoffDelay(this.#attempt, reconnect, random), minimum),
    )
    this.#attempt++
    this.#status.set('reconnecting')
    this.#events.emit('retry', { attempt: this.#attempt, delay })
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = null
      void this.#open()
    }, delay)
  }

  #stop(): void {
    this.#stopped = true
    this.#ended = true
    this.#generation++
    if (this.#retryTimer !== null) clearTimeout(this.#retryTimer)
    this.#retryTimer = null
    this.#tokenRefresh.clear()
    this.#heartbeat?.stop()
    this.#heartbeat = null
    this.#joins.stopped()
    this.#status.set('closed')
  }

  #error(
    code: ClientErrorCode,
    message: string,
    options?: { cause?: unknown; closeCode?: number; status?: number },
  ): void {
    this.#events.emit('error', new WsfClientError(code, message, options))
  }

  #reject(code: ClientErrorCode, message: string): Promise<never> {
    return Promise.reject(new WsfClientError(code, message))
  }
}

/** Creates a `WsfClient` (connecting at once unless `autoConnect: false`). */
export function createClient(options: ClientOptions): WsfClient {
  return new WsfClient(options)
}
