import { once } from 'node:events'
import http, { type IncomingMessage } from 'node:http'
import net, { type AddressInfo } from 'node:net'
import type { Duplex } from 'node:stream'
import { WebSocketServer } from 'ws'
import {
  type BrokerOptions,
  resolveOptions,
  type ResolvedOptions,
} from '../../src/broker/options.js'
import { RedisSubscriber } from '../../src/channels/redis-subscriber.js'
import { Presence } from '../../src/cluster/presence.js'
import type { Connection } from '../../src/connection/connection.js'
import { FlushScheduler } from '../../src/connection/flush-scheduler.js'
import { ConnectionOwner } from '../../src/connection/owner.js'
import { PublishBudget } from '../../src/connection/publish-budget.js'
import { ConnectionRegistry } from '../../src/connection/registry.js'
import type { ConnectionServices } from '../../src/connection/services.js'
import { Hub } from '../../src/delivery/hub.js'
import { MemoryEngine } from '../../src/engine/memory.js'
import type { FacilityDefinition } from '../../src/facility/definition.js'
import { resolveSettings } from '../../src/facility/settings.js'
import { anonymous } from '../../src/identity/identity.js'
import { ConnectionCounter } from '../../src/upgrade/admission.js'
import { TestClient } from './ws.js'

/** What a test decides about one connection (what the upgrade pipeline would). */
export interface AcceptOptions {
  subscribe?: string[]
  publish?: string[]
  echo?: boolean
  user?: string | null
  definition?: FacilityDefinition<Connection>
  tokenAuthenticated?: boolean
  expiresAt?: number | null
}

/** One connection driven by hand through its owner, over a real socket on 127.0.0.1. */
export interface Attempt {
  owner: ConnectionOwner
  /** The server side of the socket (the owner's), with every write recorded. */
  socket: net.Socket
  /** Chunks the owner's socket was asked to write (the handshake answer included). */
  writes: Buffer[]
  /** The client's socket (raw clients only). */
  client: net.Socket | null
  /** What the client received so far (raw clients only). */
  received(): Buffer
  /** Completes the handshake: the owner takes the WebSocket, then `stored` is replayed. */
  complete(stored?: ReadonlyMap<string, Buffer>): Promise<void>
  /** The ws client (ws clients only). */
  ws: TestClient | null
}

const KEY = 'dGhlIHNhbXBsZSBub25jZQ=='

/**
 * The services a broker gives its connections, built from the real parts (hub over the memory
 * engine, registry, counter, scheduler, budget) and recording what connections report.
 */
export class OwnerHarness {
  readonly options: ResolvedOptions
  readonly engine = new MemoryEngine()
  readonly hub: Hub
  readonly registry = new ConnectionRegistry()
  readonly counter: ConnectionCounter
  readonly scheduler = new FlushScheduler()
  readonly budget: PublishBudget
  readonly services: ConnectionServices
  readonly opened: Connection[] = []
  readonly closed: [Connection, number][] = []
  readonly errors: unknown[] = []
  readonly published: { channel: string; payload: Buffer; expire: number }[] = []
  received = 0
  slowConsumers = 0
  /** What `services.publish` does (the engine's publish unless a test replaces it). */
  publishImpl: (channel: string, payload: Buffer, expire: number) => Promise<number>
  /** What `services.refreshToken` does. */
  refreshImpl: () => Promise<number | null> = async () => null
  readonly #server: http.Server
  readonly #wss = new WebSocketServer({ noServer: true, perMessageDeflate: false })
  readonly #waiting: ((req: IncomingMessage, socket: Duplex, head: Buffer) => void)[] = []
  #port = 0
  readonly #sockets = new Set<net.Socket>()

  constructor(options: BrokerOptions = {}) {
    this.options = resolveOptions({ pingInterval: 0, ...options })
    this.hub = new Hub(this.engine, (err) => this.errors.push(err))
    this.counter = new ConnectionCounter(this.options)
    this.budget = new PublishBudget(
      this.options.maxInFlightBytes,
      this.options.maxInFlightBytesTotal,
    )
    this.publishImpl = (channel, payload, expire) => this.engine.publish(channel, payload, expire)
    const presence = new Presence(
      this.engine,
      () => {},
      (err) => this.errors.push(err),
    )
    this.services = {
      options: this.options,
      hub: this.hub,
      presence,
      registry: this.registry,
      counter: this.counter,
      scheduler: this.scheduler,
      budget: this.budget,
      subscriber: new RedisSubscriber({ prefix: this.options.channelPrefix }),
      engineReturned: () => Promise.resolve(false),
      publish: (channel, payload, expire) => {
        this.published.push({ channel, payload, expire })
        return this.publishImpl(channel, payload, expire)
      },
      refreshToken: () => this.refreshImpl(),
      received: () => void this.received++,
      opened: (c) => void this.opened.push(c),
      closed: (c, code) => void this.closed.push([c, code]),
      slowConsumerClosed: () => void this.slowConsumers++,
      error: (err) => void this.errors.push(err),
    }
    this.#server = http.createServer((_req, res) => res.writeHead(404).end())
    this.#server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      const next = this.#waiting.shift()
      if (next) next(req, socket, head)
      else socket.destroy()
    })
  }

  async start(): Promise<this> {
    this.#server.listen(0, '127.0.0.1')
    await once(this.#server, 'listening')
    this.#port = (this.#server.address() as AddressInfo).port
    return this
  }

  /** The settings and facts of a connection, as the upgrade would decide them. */
  acceptance(o: AcceptOptions = {}): Parameters<ConnectionOwner['accept']>[0] {
    const definition = (o.definition ?? null) as FacilityDefinition | null
    const settings = resolveSettings(definition, this.options)
    const identity = { ...anonymous(), user: o.user ?? null }
    return {
      facts: {
        id: `test.${Math.random().toString(36).slice(2)}`,
        facility: 'f',
        params: {},
        format: settings.format,
        identity,
        channels: { subscribe: o.subscribe ?? [], publish: o.publish ?? [] },
        echo: o.echo ?? false,
      },
      settings,
      context: { facility: 'f', params: {}, identity, request: {} as IncomingMessage },
      tokenAuthenticated: o.tokenAuthenticated ?? false,
      expiresAt: o.expiresAt ?? null,
      flags: { subscribe: [], publish: [] },
    }
  }

  /**
   * Starts an upgrade from a client (`raw`: a TCP socket that only records; `ws`: a ws client)
   * and resolves once its owner exists, without taking anything yet.
   */
  async begin(client: 'raw' | 'ws' = 'raw'): Promise<Attempt> {
    const arrived = new Promise<{ req: IncomingMessage; socket: net.Socket; head: Buffer }>(
      (resolve) =>
        this.#waiting.push((req, socket, head) =>
          resolve({ req, socket: socket as net.Socket, head }),
        ),
    )
    let raw: net.Socket | null = null
    let ws: TestClient | null = null
    let buf = Buffer.alloc(0)
    if (client === 'raw') {
      raw = net.connect(this.#port, '127.0.0.1')
      raw.on('data', (d: Buffer) => (buf = Buffer.concat([buf, d])))
      raw.on('error', () => {})
      raw.write(
        `GET /ws/f HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          `Sec-WebSocket-Key: ${KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
      )
    } else {
      ws = new TestClient(`ws://127.0.0.1:${this.#port}/ws/f`)
    }
    const { req, socket, head } = await arrived
    this.#sockets.add(socket)
    if (raw) this.#sockets.add(raw)
    const writes: Buffer[] = []
    const write = socket.write.bind(socket) as (...args: unknown[]) => boolean
    socket.write = ((chunk: unknown, ...rest: unknown[]) => {
      writes.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk)))
      return write(chunk, ...rest)
    }) as typeof socket.write
    const owner = new ConnectionOwner(this.services, socket)
    return {
      owner,
      socket,
      writes,
      client: raw,
      ws,
      received: () => buf,
      complete: (stored = new Map()) =>
        new Promise<void>((resolve, reject) => {
          owner.check()
          let opened = false
          owner.handingOver()
          this.#wss.handleUpgrade(req, socket, head, (w) => {
            opened = true
            owner.open(w, stored, req)
            resolve()
          })
          if (!opened) reject(new Error('ws refused the handshake'))
        }),
    }
  }

  /** An upgrade that got as far as its subscriptions (admitted, accepted, subscribed). */
  async upgrading(o: AcceptOptions = {}, client: 'raw' | 'ws' = 'raw'): Promise<Attempt> {
    const attempt = await this.begin(client)
    attempt.owner.admit()
    if (o.user) attempt.owner.admitUser(o.user)
    attempt.owner.accept(this.acceptance(o))
    const { subscribed, counted } = attempt.owner.subscribe()
    await Promise.all([subscribed, counted])
    return attempt
  }

  /** An open connection. */
  async open(o: AcceptOptions = {}, client: 'raw' | 'ws' = 'raw'): Promise<Attempt> {
    const attempt = await this.upgrading(o, client)
    await attempt.complete()
    if (attempt.ws) await attempt.ws.opened()
    return attempt
  }

  async close(): Promise<void> {
    for (const c of [...this.registry.open.values()]) c.terminate()
    this.registry.abortUpgrades()
    for (const socket of this.#sockets) socket.destroy()
    this.#server.closeAllConnections()
    await new Promise<void>((resolve) => this.#server.close(() => resolve()))
    await this.engine.close()
  }
}

/** A harness started on 127.0.0.1. */
export const harness = (options: BrokerOptions = {}): Promise<OwnerHarness> =>
  new OwnerHarness(options).start()

/**
 * Lets callbacks queued so far run (promise jobs, socket I/O, and the flush: an immediate that
 * may be queued after this one, by a promise job of this turn).
 */
export const tick = (): Promise<void> => new Promise((r) => setImmediate(() => setImmediate(r)))

/**
 * Lets the hub deliver what the engine gave it so far (it does once the engine's read is done, in
 * a microtask queued by the first message), and nothing more: frames queued meanwhile are not
 * flushed yet.
 */
export const delivered = (): Promise<void> => new Promise((r) => queueMicrotask(r))
