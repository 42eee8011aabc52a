import { randomBytes } from 'node:crypto'
import { EventEmitter } from 'node:events'
import { createClient, RESP_TYPES, type RedisClientOptions } from 'redis'
import { ClosedError, EngineError } from '../errors.js'
import { ConnectionHealth, reconnectDelay } from './health.js'
import { presenceField, RedisPresence } from './redis-presence.js'
import type { Engine, EngineStatus, MessageHandler } from './types.js'

/** Options of RedisEngine. */
export interface RedisEngineOptions {
  /** A `redis://` URL or node-redis client options. */
  redis: string | RedisClientOptions
  /** Normalised channel prefix (`''` or `'name:'`); wsfacility's own keys live under it too. */
  prefix: string
  /** Milliseconds a process stays counted (and its users online) after it stops refreshing its
   * entry; others then sweep it up within about a quarter of that. @default 8000 */
  nodeTtl?: number
}

// PUBLISH (+ SET EX), then sum the local connection counts every live process recorded for the
// channel: Redis's own PUBLISH count is one per process, ws4redis users expect one per socket.
const PUBLISH_SCRIPT = `
local n = redis.call('PUBLISH', KEYS[1], ARGV[1])
local ex = tonumber(ARGV[2])
if ex > 0 then redis.call('SET', KEYS[1], ARGV[1], 'EX', ex) end
if n == 0 then return 0 end
local total = 0
for _, id in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  local c = redis.call('HGET', ARGV[3] .. id, KEYS[1])
  if c then total = total + tonumber(c) end
end
return total
`
const ALIVE_FIELD = '.node'

type Client = ReturnType<typeof createClient>

function clientOptions(redis: string | RedisClientOptions): RedisClientOptions {
  const base: RedisClientOptions = typeof redis === 'string' ? { url: redis } : { ...redis }
  // Lost connections retry forever with capped, jittered backoff (see reconnectDelay); node-redis's
  // default gives up on a socket timeout, and a broker must outlive any Redis outage.
  // A reconnectStrategy given in the options wins.
  const socket = {
    reconnectStrategy: (retries: number) => reconnectDelay(retries),
    ...base.socket,
  } as RedisClientOptions['socket']
  // Commands issued while Redis is unreachable reject at once instead of waiting in a queue.
  return { disableOfflineQueue: true, ...base, socket }
}

/**
 * Connects `client`, failing at its first connection error. node-redis would otherwise retry the
 * first connect forever, so start() (and close() waiting for it) would hang while Redis is down;
 * failing lets the broker answer 503 and try again later. Connections lost after this reconnect.
 */
export async function connectOnce(client: Client): Promise<void> {
  let onError: (err: unknown) => void = () => {}
  const failed = new Promise<never>((_, reject) => {
    onError = reject
    client.once('error', onError)
  })
  try {
    await Promise.race([client.connect(), failed])
  } finally {
    client.off('error', onError)
  }
}

/**
 * Engine on node-redis: one connection for subscriptions and one for commands per process,
 * whatever the number of clients and channels.
 */
export class RedisEngine extends EventEmitter implements Engine {
  readonly #cmd: Client
  readonly #sub: Client
  readonly #buffers: ReturnType<Client['withTypeMapping']>
  readonly #nodeId = randomBytes(6).toString('hex')
  readonly #nodesKey: string
  readonly #nodeKeyPrefix: string
  readonly #nodeKey: string
  readonly #nodeTtl: number
  readonly #counts = new Map<string, number>()
  readonly #presence: RedisPresence
  /** This process's presence counts by field, to restore them if Redis loses its data. */
  readonly #present = new Map<string, number>()
  #dirty = new Map<string, number>()
  #flushing: Promise<void> | null = null
  #handler: MessageHandler = () => 0
  #sha: string | null = null
  #started: Promise<void> | null = null
  #timer: NodeJS.Timeout | null = null
  #closed = false
  readonly #health: ConnectionHealth
  readonly #listener = (message: Buffer, channel: Buffer): void => {
    this.#handler(channel.toString(), message)
  }

  constructor(options: RedisEngineOptions) {
    super()
    const opts = clientOptions(options.redis)
    this.#cmd = createClient(opts)
    this.#sub = createClient(opts)
    this.#buffers = this.#cmd.withTypeMapping({ [RESP_TYPES.BLOB_STRING]: Buffer })
    this.#nodesKey = `${options.prefix}wsfacility:nodes`
    this.#nodeKeyPrefix = `${options.prefix}wsfacility:node:`
    this.#nodeKey = this.#nodeKeyPrefix + this.#nodeId
    this.#nodeTtl = options.nodeTtl ?? 8_000
    this.#presence = new RedisPresence(this.#cmd, options.prefix, this.#nodeId)
    for (const [name, client] of [
      ['commands', this.#cmd],
      ['subscriber', this.#sub],
    ] as const) {
      // Without a listener an 'error' event would throw; the broker always listens.
      client.on(
        'error',
        (err: unknown) =>
          this.listenerCount('error') > 0 &&
          this.emit(
            'error',
            new EngineError(`redis ${name} connection: ${String(err)}`, { cause: err }),
          ),
      )
    }
    // After a reconnect: this process's entry and, when Redis lost its data (a restart without
    // persistence), its presence counts are written again. The periodic refresh would find the
    // entry missing too, but only after this rewrite has already re-created it.
    this.#cmd.on('ready', () => {
      if (this.#started)
        void this.#rewriteNode()
          .then(() => this.#presence.restore(this.#present))
          .catch(() => {})
    })
    // One status for both connections; 'status' listeners hear combined transitions only.
    this.#health = new ConnectionHealth([this.#cmd, this.#sub], (s) => this.emit('status', s))
  }

  /** Combined state of the two connections: `ready` only while both are. */
  get status(): EngineStatus {
    return this.#health.status
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

  presenceJoin(set: string, member: string): Promise<boolean> {
    return this.#run('presence join', async () => {
      const field = presenceField(set, member)
      this.#present.set(field, (this.#present.get(field) ?? 0) + 1)
      return this.#presence.join(set, member)
    })
  }

  presenceLeave(set: string, member: string): Promise<boolean> {
    return this.#run('presence leave', async () => {
      const field = presenceField(set, member)
      const n = (this.#present.get(field) ?? 0) - 1
      if (n > 0) this.#present.set(field, n)
      else this.#present.delete(field)
      return this.#presence.leave(set, member)
    })
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
    return (this.#cmd.isOpen ? 1 : 0) + (this.#sub.isOpen ? 1 : 0)
  }

  onStatus(listener: (status: EngineStatus) => void): void {
    this.on('status', listener)
  }

  onError(listener: (err: Error) => void): void {
    this.on('error', listener)
  }

  start(): Promise<void> {
    this.#started ??= (async () => {
      if (this.#closed) throw new ClosedError()
      try {
        await Promise.all([connectOnce(this.#cmd), connectOnce(this.#sub)])
        await this.#rewriteNode()
      } catch (err) {
        this.#started = null
        await Promise.allSettled([this.#cmd.destroy(), this.#sub.destroy()])
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
      if (err instanceof EngineError || err instanceof ClosedError) throw err
      throw new EngineError(`${what} failed: ${String(err)}`, { cause: err })
    }
  }

  subscribe(channel: string): Promise<void> {
    return this.#run('SUBSCRIBE', () => this.#sub.subscribe(channel, this.#listener, true))
  }

  unsubscribe(channel: string): Promise<void> {
    return this.#run('UNSUBSCRIBE', () => this.#sub.unsubscribe(channel, this.#listener, true))
  }

  publish(channel: string, payload: Buffer, expire: number): Promise<number> {
    return this.#run('PUBLISH', async () => {
      const options = {
        keys: [channel, this.#nodesKey],
        arguments: [payload, String(Math.floor(expire)), this.#nodeKeyPrefix],
      }
      if (this.#sha) {
        try {
          return Number(await this.#cmd.evalSha(this.#sha, options))
        } catch (err) {
          if (!String(err).includes('NOSCRIPT')) throw err
        }
      }
      this.#sha = await this.#cmd.scriptLoad(PUBLISH_SCRIPT)
      return Number(await this.#cmd.evalSha(this.#sha, options))
    })
  }

  get(channels: string[]): Promise<(Buffer | null)[]> {
    if (channels.length === 0) return Promise.resolve([])
    return this.#run('MGET', async () => {
      const values = (await this.#buffers.mGet(channels)) as unknown[]
      return values.map((v) => (Buffer.isBuffer(v) ? v : null))
    })
  }

  barrier(): Promise<void> {
    // A PING on the subscriber connection is answered after every message Redis pushed to it before.
    return this.#run('PING', async () => {
      await this.#sub.ping()
    })
  }

  setLocalCount(channel: string, count: number): Promise<void> {
    if (count > 0) this.#counts.set(channel, count)
    else this.#counts.delete(channel)
    this.#dirty.set(channel, count)
    this.#flushing ??= Promise.resolve().then(() => this.#flushCounts())
    return this.#flushing
  }

  async #flushCounts(): Promise<void> {
    const dirty = this.#dirty
    this.#dirty = new Map()
    this.#flushing = null
    if (this.#closed || !this.#cmd.isReady || dirty.size === 0) return
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

  /** Keeps this process's entry alive and forgets processes whose entry expired. */
  async #refresh(): Promise<void> {
    if (!this.#cmd.isReady) return
    const alive = await this.#cmd.pExpire(this.#nodeKey, this.#nodeTtl)
    if (!alive) {
      // Redis lost this process's entry (restarted without persistence): write it all again.
      await this.#rewriteNode()
      await this.#presence.restore(this.#present)
    } else await this.#cmd.sAdd(this.#nodesKey, this.#nodeId)
    for (const id of await this.#cmd.sMembers(this.#nodesKey)) {
      if (id === this.#nodeId || (await this.#cmd.exists(this.#nodeKeyPrefix + id))) continue
      const left = await this.#presence.sweep(id, this.#nodeKeyPrefix + id, this.#nodesKey)
      for (const [set, member] of left) this.emit('swept', set, member)
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    this.#health.close()
    if (this.#timer) clearInterval(this.#timer)
    if (this.#started) {
      await this.#started.catch(() => {})
      if (this.#cmd.isReady) {
        await this.#cmd
          .multi()
          .del(this.#nodeKey)
          .sRem(this.#nodesKey, this.#nodeId)
          .exec()
          .catch(() => {})
      }
    }
    // A connection that is reconnecting is destroyed: close() would wait for Redis to return.
    await Promise.allSettled([
      this.#sub.isReady ? this.#sub.close() : this.#sub.destroy(),
      this.#cmd.isReady ? this.#cmd.close() : this.#cmd.destroy(),
    ])
  }
}
