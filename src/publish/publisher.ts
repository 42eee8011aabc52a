import { EventEmitter } from 'node:events'
import { createClient, type RedisClientOptions, type RedisClusterOptions } from 'redis'
import type { PublishOptions } from '../broker/events.js'
import { normalizePrefix } from '../channels/naming.js'
import { unknownKeyMessage } from '../client/unknown-keys.js'
import { encodeMessage, type Message } from '../delivery/payload.js'
import { ReconnectBackoff } from '../engine/reconnect-backoff.js'
import { ClusterLink } from '../engine/redis-cluster.js'
import { engineKeys, type EngineKeys } from '../engine/redis-scripts.js'
import { connectOnce, publishOn } from '../engine/redis-standalone.js'
import { ClosedError, EngineError, InvalidArgumentError, OptionError } from '../errors.js'
import { type HistoryOptions, type PositionSink, resolveHistory } from '../history/wire.js'
import { checkTarget, needsSelf, type PublisherTarget, targetChannels } from './redis-publisher.js'

/** Options of `createPublisher`. */
export interface PublisherOptions {
  /** The brokers' Redis: a `redis://` URL or node-redis client options. */
  redis?: string | RedisClientOptions | undefined
  /** Or their Redis Cluster: root node URLs or node-redis `createCluster` options (SPUBLISH). */
  redisCluster?: string[] | RedisClusterOptions | undefined
  /** The brokers' channel prefix (`'ws4redis'` → `ws4redis:broadcast:…`). @default '' */
  prefix?: string | undefined
  /** Seconds each message is stored for replay, unless a publish says otherwise. @default 0 */
  expire?: number | undefined
  /** Channel history ({ size, ttl }) each message is appended to, unless a publish says
   * otherwise; give the brokers' facility settings. @default off */
  history?: HistoryOptions | false | null | undefined
}

/** Events of a Publisher. */
export interface PublisherEvents {
  /** A background failure of the Redis connection (it reconnects by itself). Never thrown. */
  error: [error: Error]
}

const OPTION_NAMES = Object.keys({
  redis: true,
  redisCluster: true,
  prefix: true,
  expire: true,
  history: true,
} satisfies Record<keyof PublisherOptions, true>)

/** What a Publisher needs of Redis: standalone (one client) or a cluster (ClusterLink). */
interface PublishLink {
  connect(): Promise<void>
  publish(
    channel: string,
    payload: Buffer,
    expire: number,
    history: HistoryOptions | null,
    position?: PositionSink,
  ): Promise<number>
  close(): Promise<void>
}

/** One command connection to a standalone server, and nothing else. */
function standaloneLink(
  redis: string | RedisClientOptions,
  keys: EngineKeys,
  error: (err: unknown) => void,
): PublishLink {
  const base: RedisClientOptions = typeof redis === 'string' ? { url: redis } : { ...redis }
  // As the broker's connections: reconnect forever with backoff, and reject a publish at once
  // while Redis is away instead of queueing it.
  const client = createClient({
    disableOfflineQueue: true,
    ...base,
    socket: {
      reconnectStrategy: new ReconnectBackoff().strategy,
      ...base.socket,
    } as NonNullable<RedisClientOptions['socket']>,
  })
  client.on('error', error)
  return {
    connect: () => connectOnce(client),
    publish: (channel, payload, expire, history, position) =>
      publishOn(client, keys, channel, payload, expire, history, position),
    close: async () => {
      await (client.isReady ? client.close() : client.destroy())
    },
  }
}

function clusterLink(
  config: string[] | RedisClusterOptions,
  keys: EngineKeys,
  error: (err: unknown) => void,
): PublishLink {
  // Command connections only: a cluster opens sharded subscriber connections on SSUBSCRIBE.
  const link = new ClusterLink(config, keys)
  link.on('error', (_name, err) => error(err))
  return {
    connect: () => link.connect(),
    publish: (channel, payload, expire, history, position) =>
      link.publish(channel, payload, expire, history, position),
    close: () => link.close(),
  }
}

/**
 * Publishes to wsfacility channels from a process that serves no clients (a worker, a cron job):
 * one Redis command connection, opened on the first publish, and no subscriber connection, no
 * broker, no timers. Receiver counts are the brokers' connections, as with RedisPublisher.
 * After `close()` it holds nothing that keeps the process alive.
 * @example
 * const publisher = createPublisher({ redis: process.env.REDIS_URL, prefix: 'ws4redis' })
 * await publisher.publish({ facility: 'notifications', users: ['ann'] }, 'Your report is ready')
 * await publisher.close()
 */
export class Publisher extends EventEmitter<PublisherEvents> {
  /** The channel prefix as it starts channel names (`''` or `'name:'`). */
  readonly channelPrefix: string
  readonly #expire: number
  readonly #history: HistoryOptions | null
  readonly #link: PublishLink
  #started: Promise<void> | null = null
  #closing: Promise<void> | null = null

  constructor(options: PublisherOptions) {
    super()
    if (typeof options !== 'object' || options === null) {
      throw new OptionError('publisher options must be an object')
    }
    const unknown = unknownKeyMessage(options, OPTION_NAMES)
    if (unknown !== null) throw new OptionError(unknown)
    const { redis, redisCluster, prefix = '', expire = 0 } = options
    if ((redis === undefined) === (redisCluster === undefined)) {
      throw new OptionError('a publisher needs redis or redisCluster (one of them)')
    }
    if (typeof prefix !== 'string' || prefix.slice(0, -1).includes(':')) {
      throw new OptionError('prefix must be a string without ":" (except at the end)')
    }
    if (typeof expire !== 'number' || !Number.isFinite(expire) || expire < 0) {
      throw new OptionError('expire must be a number >= 0')
    }
    this.channelPrefix = normalizePrefix(prefix)
    this.#expire = expire
    this.#history = resolveHistory('history', options.history)
    const keys = engineKeys(this.channelPrefix)
    const error = (err: unknown): void => {
      if (this.listenerCount('error') === 0) return
      this.emit('error', new EngineError(`redis: ${String(err)}`, { cause: err }))
    }
    this.#link =
      redis !== undefined
        ? standaloneLink(redis, keys, error)
        : clusterLink(redisCluster!, keys, error)
  }

  /** Connects to Redis; done by the first publish, may be awaited to fail early. */
  ready(): Promise<void> {
    if (this.#closing) return Promise.reject(new ClosedError('publisher is closed'))
    this.#started ??= this.#link.connect().catch((err: unknown) => {
      this.#started = null
      throw new EngineError(`cannot connect to redis: ${String(err)}`, { cause: err })
    })
    return this.#started
  }

  /** The channel names `target` publishes on. SELF is refused: a worker has no request. */
  channels(target: PublisherTarget): string[] {
    checkTarget(target)
    if (needsSelf(target)) {
      throw new InvalidArgumentError('SELF needs a request: a Publisher publishes from none')
    }
    return targetChannels(this.channelPrefix, target, null)
  }

  /**
   * Publishes `message` (text, bytes, or an object sent as JSON) to every channel of `target` and
   * stores it (`expire`) or appends it to their history as configured; resolves to the number of
   * connections, on every broker, that received it. Rejects with `WSF_REDIS_UNAVAILABLE` while
   * Redis is unreachable.
   */
  async publish(
    target: PublisherTarget,
    message: Message,
    options: PublishOptions = {},
  ): Promise<number> {
    const channels = this.channels(target)
    const expire = options.expire ?? this.#expire
    if (typeof expire !== 'number' || !Number.isFinite(expire) || expire < 0) {
      throw new OptionError('expire must be a number >= 0')
    }
    const history =
      options.history === undefined ? this.#history : resolveHistory('history', options.history)
    const payload = encodeMessage(message)
    const { positions } = options
    await this.ready()
    try {
      const counts = await Promise.all(
        channels.map((ch) =>
          this.#link.publish(
            ch,
            payload,
            expire,
            history,
            positions && ((p) => positions.set(ch, p)),
          ),
        ),
      )
      return counts.reduce((a, b) => a + b, 0)
    } catch (err) {
      if (this.#closing) throw new ClosedError('publisher is closed')
      throw new EngineError(`PUBLISH failed: ${String(err)}`, { cause: err })
    }
  }

  /** Waits for publishes in flight, then closes the Redis connection. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      await this.#started?.catch(() => {})
      await this.#link.close().catch(() => {})
    })()
    return this.#closing
  }
}

/**
 * A publisher-only connection to the brokers' Redis, for processes that serve no clients.
 * @example const publisher = createPublisher({ redis: process.env.REDIS_URL })
 */
export function createPublisher(options: PublisherOptions): Publisher {
  return new Publisher(options)
}

export type { PublisherTarget, Target } from './redis-publisher.js'
export { SELF } from './redis-publisher.js'
export type { PublishOptions } from '../broker/events.js'
