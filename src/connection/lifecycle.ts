import type { IncomingMessage } from 'node:http'
import type { Duplex } from 'node:stream'
import type { RawData, WebSocket } from 'ws'
import { type Connection, CloseCode } from './connection.js'
import type { FacilityContext } from '../facility/definition.js'
import type { Hub } from '../delivery/hub.js'
import type { ResolvedOptions } from '../broker/options.js'
import type { Presence } from '../cluster/presence.js'
import { type Accepted, handleClientMessage, type ProtocolHost } from './inbound.js'

/** What open connections need from the broker. */
export interface LifecycleHost {
  readonly options: ResolvedOptions
  readonly presence: Presence
  readonly hub: Hub
  /** Handles what clients send. */
  readonly protocol: ProtocolHost
  /** Announces a connection whose subscriptions are live (the broker's `connection` event). */
  opened(conn: Connection, req: IncomingMessage): void
  /** Announces a connection that went away (the broker's `disconnect` event). */
  closed(conn: Connection, code: number): void
  /** Reports a background failure (a hook that threw). */
  error(err: unknown): void
}

/** What a connection without facility hooks is handled with: nothing reads its context. */
const NO_HOOKS: Accepted = {
  definition: null,
  context: null as unknown as FacilityContext,
  bucket: null,
}

/**
 * The open connections of one broker, from the handshake to their close: socket listeners, token
 * expiry, presence and the facility's connect and disconnect hooks.
 */
export class Lifecycle {
  readonly #host: LifecycleHost
  readonly #connections = new Map<string, Connection>()
  readonly #accepted = new WeakMap<Connection, Accepted>()
  /** Connection of each open WebSocket, for the listeners every socket shares. */
  readonly #byWs = new WeakMap<WebSocket, Connection>()
  readonly #presenceWork = new Set<Promise<void>>()

  constructor(host: LifecycleHost) {
    this.#host = host
  }

  /** Live connections, by id. */
  get connections(): ReadonlyMap<string, Connection> {
    return this.#connections
  }

  /** Keeps what hooks and the rate limit read for a connection (set before it opens). */
  accept(conn: Connection, accepted: Accepted): void {
    this.#accepted.set(conn, accepted)
  }

  /** Registers a connection whose handshake completed and starts serving it. */
  open(
    conn: Connection,
    ws: WebSocket,
    socket: Duplex,
    stored: Map<string, Buffer>,
    req: IncomingMessage,
  ): void {
    const host = this.#host
    this.#connections.set(conn.id, conn)
    this.#byWs.set(ws, conn)
    const on = this.#wsListeners
    ws.on('message', on.message)
    ws.on('pong', on.pong)
    ws.on('error', on.error)
    ws.on('close', on.close)
    conn.open(ws, socket, stored)
    if (conn.expiresAt !== null) conn.setExpiry(conn.expiresAt, this.#expire)
    host.options.logger?.debug?.({ id: conn.id, facility: conn.facility }, 'connection accepted')
    host.opened(conn, req)
    if (host.options.presence) this.#pendingPresence(host.presence.track(conn))
    const accepted = this.#accepted.get(conn)
    const onConnect = accepted?.definition?.onConnect
    if (onConnect) this.#runHook(() => onConnect(conn, accepted.context))
  }

  /**
   * One set of listeners for all sockets (ws calls them with the socket as `this`) instead of
   * closures per connection: idle connections are most of a broker's memory.
   */
  readonly #wsListeners = ((lifecycle: Lifecycle) => ({
    message(this: WebSocket, data: RawData, isBinary: boolean): void {
      const conn = lifecycle.#byWs.get(this)
      if (!conn) return
      conn.alive = true
      if (!conn.isOpen) return
      const accepted = lifecycle.#accepted.get(conn) ?? NO_HOOKS
      handleClientMessage(lifecycle.#host.protocol, conn, accepted, data as Buffer, isBinary)
    },
    pong(this: WebSocket): void {
      const conn = lifecycle.#byWs.get(this)
      if (conn) conn.alive = true
    },
    error(this: WebSocket, err: Error): void {
      const id = lifecycle.#byWs.get(this)?.id
      lifecycle.#host.options.logger?.debug?.({ err, id }, 'client error')
    },
    close(this: WebSocket, code: number): void {
      const conn = lifecycle.#byWs.get(this)
      if (conn) lifecycle.drop(conn, code)
    },
  }))(this)

  readonly #expire = (conn: Connection): void => {
    if (conn.format === 'json') {
      conn.sendFrame({ type: 'error', code: 'expired_token', detail: 'token expired' })
    }
    conn.close(CloseCode.TOKEN_EXPIRED, 'token expired')
  }

  /** Lets a connection live until `expiresAt` (a refreshed token's expiry; null: no expiry). */
  setExpiry(conn: Connection, expiresAt: number | null): void {
    conn.setExpiry(expiresAt, this.#expire)
  }

  /** Keeps presence updates in flight so close() can wait for them (leaves must reach Redis). */
  #pendingPresence(work: Promise<void>): void {
    this.#presenceWork.add(work)
    void work.finally(() => this.#presenceWork.delete(work))
  }

  /** Resolves once the presence updates in flight have settled. */
  async settled(): Promise<void> {
    await Promise.allSettled([...this.#presenceWork])
  }

  #runHook(fn: () => unknown): void {
    try {
      Promise.resolve(fn()).catch((err: unknown) => this.#host.error(err))
    } catch (err) {
      this.#host.error(err)
    }
  }

  /** Forgets a connection that closed (once): its channels, presence, and the disconnect hook. */
  drop(conn: Connection, code: number): void {
    const host = this.#host
    if (!this.#connections.delete(conn.id)) return
    host.hub.remove(conn, conn.channels.subscribe)
    conn.markClosed()
    host.options.logger?.debug?.(
      { id: conn.id, facility: conn.facility, code },
      'connection closed',
    )
    host.closed(conn, code)
    if (host.options.presence) this.#pendingPresence(host.presence.untrack(conn))
    const accepted = this.#accepted.get(conn)
    const onDisconnect = accepted?.definition?.onDisconnect
    if (onDisconnect) this.#runHook(() => onDisconnect(conn, code, accepted.context))
  }
}
