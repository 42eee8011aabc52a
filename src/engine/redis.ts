import { randomBytes } from 'node:crypto'
import { EventEmitter } from 'node:events'
import { ClosedError, EngineError } from '../errors.js'
import { BatchedReads, Coalescer, SPACING_MS } from './coalesce.js'
import { ConnectionHealth } from './connection-health.js'
import type { Listener, RedisLink } from './redis-link.js'
import { linkFor, type RedisEngineOptions } from './redis-options.js'
import { facilityMissing, OVERALL } from './presence-sets.js'
import { RedisPresence } from './redis-presence.js'
import { engineKeys } from './redis-scripts.js'
import type { HistoryOptions, HistoryRead, PositionSink } from '../history/wire.js'
import type { Engine, EngineStatus, MessageHandler, PresenceChange } from './types.js'

export { connectOnce } from './redis-standalone.js'
export type { RedisClusterConfig } from './redis-cluster.js'
export type { RedisEngineOptions } from './redis-options.js'

const ALIVE_FIELD = '.node'
const JOIN_FAILED = failed('presence join')
const LEAVE_FAILED = failed('presence leave')

/**
 * Engine on node-redis. On one server: one connection for subscriptions and one for commands per
 * process, whatever the number of clients and channels. On a cluster: per master, one for
 * commands and one for the sharded subscriptions of the channels it owns.
 */
export class RedisEngine extends EventEmitter implements Engine {
  readonly #link: RedisLink
  readonly #nodeId = randomBytes(6).toString('hex')
  readonly #nodesKey: string
  readonly #nodeKeyPrefix: string
  readonly #nodeKey: string
  readonly #nodeTtl: number
  readonly #counts = new Map<string, number>()
  readonly #presence: RedisPresence
  #dirty = new Map<string, number>()
  // One round trip of each kind in flight at a time, under load SPACING_MS apart; what callers ask
  // for meanwhile shares the next one (engine/coalesce.ts): in a connection storm, one count
  // flush, one MGET of persisted messages and one barrier PING serve every upgrade that arrived
  // since the last ones.
  // Each run's failure is an EngineError once, for all of its callers.
  readonly #flushes = new Coalescer(
    // A flush cut by Redis going away fails as an outage (a live join waits for Redis then).
    () => this.#flushCounts().catch(failed('receiver count update')),
    SPACING_MS,
  )
  readonly #reads = new BatchedReads(
    (keys) => this.#link.mget(keys).catch(failed('MGET')),
    SPACING_MS,
  )
  readonly #barriers = new Coalescer(() => this.#link.barrier().catch(failed('PING')), SPACING_MS)
  #handler: MessageHandler = () => 0
  #started: Promise<void> | null = null
  #timer: NodeJS.Timeout | null = null
  /** Set once close() has taken this process out of the cluster: every call rejects from then. */
  #closed = false
  /** close()'s promise: from its start, presence changes reject and the entry is not refreshed. */
  #closing: Promise<void> | null = null
  /** Publishes not settled yet (close() lets them finish), and close()'s wait for the last. */
  #publishing = 0
  #published: (() => void) | null = null
  /** Whether history is in use: then the `wsfacility` function library is (re)loaded on connect. */
  #functions: Promise<void> | null = null
  readonly #health: ConnectionHealth
  /**
   * One listener per subscribed channel, which knows its channel's name: node-redis has already
   * decoded it to find the listener, and a shared listener would decode it again (a string and its
   * hash per message). Kept until the channel is unsubscribed, so a SUBSCRIBE sent again (after a
   * failure) gives node-redis the listener it may already hold, never a second one.
   */
  readonly #listeners = new Map<string, Listener>()

  constructor(options: RedisEngineOptions) {
    super()
    const keys = engineKeys(options.prefix)
    this.#link = linkFor(options, keys)
    this.#nodesKey = keys.nodes
    this.#nodeKeyPrefix = keys.node
    this.#nodeKey = this.#nodeKeyPrefix + this.#nodeId
    this.#nodeTtl = options.nodeTtl ?? 8_000
    this.#presence = new RedisPresence(this.#link.commands, keys, this.#nodeId)
    // Without a listener an 'error' event would throw; the broker always listens.
    this.#link.on(
      'error',
      (name, err) =>
        this.listenerCount('error') > 0 &&
        this.emit('error', new EngineError(`${name}: ${String(err)}`, { cause: err })),
    )
    // After a reconnect: this process's entry is written again, and its presence counts are set to
    // the connections it really holds: Redis may have lost them (a restart without persistence), or
    // kept them while leaves of this process failed to reach it. The periodic refresh would find
    // the entry missing too, but only after this rewrite has already re-created it.
    this.#link.on('ready', (commands) => {
      if (!commands || !this.#started || this.#closing) return
      void this.#rewriteNode()
        .then(() => this.#reconcilePresence())
        .catch(() => {})
      // Redis may have lost its functions with its data.
      if (this.#functions) this.#functions = this.#loadFunctions()
    })
    // One status for all connections; 'status' listeners hear combined transitions only.
    const watchedLink = this.#link
    const watched = {
      on: (event: 'ready' | 'reconnecting' | 'error' | 'end', fn: () => void) =>
        event !== 'end' && watchedLink.on(event, fn),
      get isReady() {
        return watchedLink.healthy
      },
    }
    this.#health = new ConnectionHealth([watched], (s) => this.emit('status', s))
  }

  /** Combined state of the connections: `ready` only while all of them are. */
  get status(): EngineStatus {
    return this.#health.status
  }

  get #cmd() {
    return this.#link.commands
  }

  get nodeId(): string {
    return this.#nodeId
  }

  /** Ids of processes whose entry has not expired. */
  nodes(): Promise<string[]> {
    return this.#run('SMEMBERS', async () => {
      const ids = await this.#cmd.sMembers(this.#nodesKey)
      const alive = await Promise.all(ids.map((id) => this.#cmd.exists(this.#nodeKeyPrefix + id)))
      return ids.filter((_, i) => alive[i] === 1)
    })
  }

  // Called once per connection with presence on: no async frames of their own (the batches of
  // RedisPresence carry the round trips).
  presenceJoin(facility: string, user: string): Promise<PresenceChange> {
    if (this.#closing) return Promise.reject(new ClosedError())
    if (facility === OVERALL) return Promise.reject(facilityMissing())
    return this.#presence.join(facility, user, JOIN_FAILED)
  }

  presenceLeave(facility: string, user: string): Promise<PresenceChange> {
    if (this.#closing) return Promise.reject(new ClosedError())
    if (facility === OVERALL) return Promise.reject(facilityMissing())
    return this.#presence.leave(facility, user, LEAVE_FAILED)
  }

  presenceList(set: string): Promise<Map<string, number>> {
    return this.#run('presence list', () => this.#presence.list(set))
  }

  presenceCount(set: string, member: string): Promise<number> {
    return this.#run('presence count', () => this.#presence.count(set, member))
  }

  onPresenceSwept(listener: (set: string, member: string) => void): void {
    this.on('swept', listener)
  }

  get connectionCount(): number {
    return this.#link.connectionCount
  }

  onStatus(listener: (status: EngineStatus) => void): void {
    this.on('status', listener)
  }

  onError(listener: (err: Error) => void): void {
    this.on('error', listener)
  }

  start(): Promise<void> {
    this.#started ??= (async () => {
      if (this.#closing) throw new ClosedError()
      try {
        await this.#link.connect()
        await this.#rewriteNode()
      } catch (err) {
        this.#started = null
        await this.#link.destroy()
        throw new EngineError(`cannot connect to redis: ${String(err)}`, { cause: err })
      }
      const every = Math.min(this.#nodeTtl / 4, 2000)
      this.#timer = setInterval(() => void this.#refresh().catch(() => {}), every)
      this.#timer.unref()
    })()
    return this.#started
  }

  onMessage(handler: MessageHandler): void {
    this.#handler = handler
  }

  async #run<T>(what: string, fn: () => Promise<T>): Promise<T> {
    if (this.#closed) throw new ClosedError()
    try {
      return await fn()
    } catch (err) {
      throw engineError(what, err)
    }
  }

  subscribe(channel: string): Promise<void> {
    let listener = this.#listeners.get(channel)
    if (!listener) {
      listener = (message: Buffer): void => void this.#handler(channel, message)
      this.#listeners.set(channel, listener)
    }
    const given = listener
    return this.#run('SUBSCRIBE', () => this.#link.subscribe(channel, given))
  }

  async unsubscribe(channel: string): Promise<void> {
    const listener = this.#listeners.get(channel)
    if (!listener) return
    await this.#run('UNSUBSCRIBE', () => this.#link.unsubscribe(channel, listener))
    this.#listeners.delete(channel)
  }

  publish(
    channel: string,
    payload: Buffer,
    expire: number,
    history?: HistoryOptions | null,
    position?: PositionSink,
  ): Promise<number> {
    if (history) this.#functions ??= this.#loadFunctions()
    const sent = this.#run('PUBLISH', () =>
      this.#link.publish(channel, payload, expire, history ?? null, position),
    )
    this.#publishing++
    sent.then(this.#publishSettled, this.#publishSettled)
    return sent
  }

  readonly #publishSettled = (): void => {
    if (--this.#publishing === 0) this.#published?.()
  }

  readHistory(channel: string, since: number | null, limit: number): Promise<HistoryRead> {
    this.#functions ??= this.#loadFunctions()
    return this.#run('history read', () => this.#link.readHistory(channel, since, limit))
  }

  /** Loads the function library for publishers in other languages; a failure is reported, not
   * thrown (wsfacility's own publishes use scripts and do not need it). */
  async #loadFunctions(): Promise<void> {
    try {
      await this.#link.loadFunctions()
    } catch (err) {
      if (this.listenerCount('error') > 0 && !this.#closed)
        this.emit('error', new EngineError(`FUNCTION LOAD failed: ${String(err)}`, { cause: err }))
    }
  }

  get(channels: readonly string[]): Promise<(Buffer | null)[]> {
    if (channels.length === 0) return Promise.resolve([])
    if (this.#closed) return Promise.reject(new ClosedError())
    return this.#reads.get(channels)
  }

  read(channels: readonly string[]): Promise<ReadonlyMap<string, Buffer | null>> {
    if (channels.length === 0) return Promise.resolve(new Map())
    if (this.#closed) return Promise.reject(new ClosedError())
    return this.#reads.read(channels)
  }

  barrier(): Promise<void> {
    if (this.#closed) return Promise.reject(new ClosedError())
    return this.#barriers.run()
  }

  /** Every caller of one flush shares its promise (a connection storm makes one per batch). */
  setLocalCount(channel: string, count: number): Promise<void> {
    if (count > 0) this.#counts.set(channel, count)
    else this.#counts.delete(channel)
    this.#dirty.set(channel, count)
    return this.#flushes.run()
  }

  async #flushCounts(): Promise<void> {
    const dirty = this.#dirty
    this.#dirty = new Map()
    if (this.#closing || !this.#link.isReady || dirty.size === 0) return
    const multi = this.#cmd.multi()
    for (const [channel, count] of dirty) {
      if (count > 0) multi.hSet(this.#nodeKey, channel, count)
      else multi.hDel(this.#nodeKey, channel)
    }
    multi.pExpire(this.#nodeKey, this.#nodeTtl)
    await multi.exec()
  }

  /** Writes this process's whole entry (after a connect, or when Redis lost it). */
  async #rewriteNode(): Promise<void> {
    const multi = this.#cmd.multi()
    multi.del(this.#nodeKey)
    multi.hSet(this.#nodeKey, ALIVE_FIELD, '1')
    for (const [channel, count] of this.#counts) multi.hSet(this.#nodeKey, channel, count)
    multi.pExpire(this.#nodeKey, this.#nodeTtl)
    multi.sAdd(this.#nodesKey, this.#nodeId)
    await multi.exec()
  }

  /** Sets this process's presence in Redis to what it holds; reports who went offline by it. */
  async #reconcilePresence(): Promise<void> {
    for (const [set, member] of await this.#presence.reconcile()) {
      this.emit('swept', set, member)
    }
  }

  /** Keeps this process's entry alive and forgets processes whose entry expired. */
  async #refresh(): Promise<void> {
    if (this.#closing || !this.#link.isReady) return
    const alive = await this.#cmd.pExpire(this.#nodeKey, this.#nodeTtl)
    if (!alive) {
      // Redis lost this process's entry (restarted without persistence): write it all again.
      await this.#rewriteNode()
      await this.#reconcilePresence()
    } else await this.#cmd.sAdd(this.#nodesKey, this.#nodeId)
    for (const id of await this.#cmd.sMembers(this.#nodesKey)) {
      if (id === this.#nodeId || (await this.#cmd.exists(this.#nodeKeyPrefix + id))) continue
      const left = await this.#presence.sweep(id, this.#nodeKeyPrefix + id, this.#nodesKey)
      for (const [set, member] of left) this.emit('swept', set, member)
    }
  }

  close(): Promise<void> {
    this.#closing ??= this.#shutDown()
    return this.#closing
  }

  async #shutDown(): Promise<void> {
    this.#health.close()
    if (this.#started) {
      await this.#started.catch(() => {})
      if (this.#timer) clearInterval(this.#timer)
      if (this.#link.isReady) await this.#leaveCluster().catch(() => {})
    }
    // What the 'swept' listeners publish in reply (the presence facility's leaves) goes out first,
    // as does every publish made before close() (a script's EVALSHA may need an EVAL after it).
    await new Promise(setImmediate)
    if (this.#publishing > 0) await new Promise<void>((resolve) => (this.#published = resolve))
    this.#closed = true
    await this.#link.close()
  }

  /**
   * Takes this process out of the cluster: its entry, and whatever presence it still holds in
   * Redis (connections whose leave failed to reach it, or that were never untracked) as a sweep
   * takes a dead process's, each resulting leave reported here ('swept') while publishes still go
   * out. While Redis is unreachable nothing is removed: the entry expires and another process
   * sweeps it up.
   */
  async #leaveCluster(): Promise<void> {
    await this.#cmd.multi().del(this.#nodeKey).exec()
    const left = await this.#presence.sweepSelf(this.#nodeKey, this.#nodesKey)
    for (const [set, member] of left) this.emit('swept', set, member)
  }
}

/** Throws the failure of the Redis command `what` as engineError does. */
function failed(what: string): (err: unknown) => never {
  return (err) => {
    throw engineError(what, err)
  }
}

/** `err` of the Redis command `what` as the engine's errors: an EngineError, or a ClosedError. */
function engineError(what: string, err: unknown): Error {
  if (err instanceof EngineError || err instanceof ClosedError) return err
  return new EngineError(`${what} failed: ${String(err)}`, { cause: err })
}
