import { createClient, RESP_TYPES, type RedisClientOptions } from 'redis'
import { ReconnectBackoff } from './reconnect-backoff.js'
import { type Commands, type Listener, RedisLink } from './redis-link.js'
import { type EngineKeys, PUBLISH, runScript, type ScriptRunner } from './redis-scripts.js'
import {
  FUNCTION_LIBRARY,
  HISTORY_PUBLISH,
  parsePublished,
  readHistoryWith,
} from '../history/scripts.js'
import {
  historyKeys,
  type HistoryOptions,
  type HistoryRead,
  META_TTL,
  type PositionSink,
} from '../history/wire.js'

type Client = ReturnType<typeof createClient>

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

/** Loads FUNCTION_LIBRARY on the server of `client`; false when it has no functions. */
export async function loadLibrary(client: Pick<Client, 'sendCommand'>): Promise<boolean> {
  try {
    await client.sendCommand(['FUNCTION', 'LOAD', 'REPLACE', FUNCTION_LIBRARY])
    return true
  } catch (err) {
    if (/unknown (sub)?command/i.test(String(err))) return false
    throw err
  }
}

/**
 * Publishes on a standalone server through `client` (+ SET EX, + history) and resolves to the
 * receivers every live process recorded: what StandaloneLink and the publisher-only entry send.
 */
export async function publishOn(
  client: ScriptRunner,
  keys: EngineKeys,
  channel: string,
  payload: Buffer,
  expire: number,
  history: HistoryOptions | null,
  position?: PositionSink,
): Promise<number> {
  const ex = String(Math.floor(expire))
  if (history) {
    const { stream, meta } = historyKeys(channel)
    const scriptKeys = [channel, stream, meta, keys.nodes]
    const args = [payload, ex, keys.node, String(history.size), String(history.ttl)]
    args.push(String(META_TTL))
    const published = parsePublished(await runScript(client, HISTORY_PUBLISH, scriptKeys, args))
    position?.(published.position)
    return published.count
  }
  const args = [payload, ex, keys.node]
  return Number(await runScript(client, PUBLISH, [channel, keys.nodes], args))
}

/** A standalone Redis server: one connection for commands, one for subscriptions. */
export class StandaloneLink extends RedisLink {
  readonly #cmd: Client
  readonly #sub: Client
  readonly #buffers: ReturnType<Client['withTypeMapping']>
  readonly #keys: EngineKeys

  constructor(redis: string | RedisClientOptions, keys: EngineKeys) {
    super()
    const base: RedisClientOptions = typeof redis === 'string' ? { url: redis } : { ...redis }
    // Lost connections retry forever, fast at first, then with capped, jittered backoff (see
    // ReconnectBackoff, one per connection); node-redis's default gives up on a socket timeout,
    // and a broker must outlive any Redis outage. A reconnectStrategy given in the options wins.
    const socket = (): NonNullable<RedisClientOptions['socket']> =>
      ({
        reconnectStrategy: new ReconnectBackoff().strategy,
        ...base.socket,
      }) as NonNullable<RedisClientOptions['socket']>
    // Commands issued while Redis is unreachable reject at once instead of waiting in a queue.
    const opts = () => ({ disableOfflineQueue: true, ...base, socket: socket() })
    this.#cmd = createClient(opts())
    this.#sub = createClient(opts())
    this.#buffers = this.#cmd.withTypeMapping({ [RESP_TYPES.BLOB_STRING]: Buffer })
    this.#keys = keys
    for (const [name, client] of [
      ['commands', this.#cmd],
      ['subscriber', this.#sub],
    ] as const) {
      client.on('error', (err: unknown) => this.emit('error', `redis ${name} connection`, err))
      client.on('reconnecting', () => this.emit('reconnecting'))
      client.on('ready', () => this.emit('ready', client === this.#cmd))
    }
  }

  get commands(): Commands {
    return this.#cmd as unknown as Commands
  }

  get isReady(): boolean {
    return this.#cmd.isReady
  }

  get healthy(): boolean {
    return this.#cmd.isReady && this.#sub.isReady
  }

  get connectionCount(): number {
    return (this.#cmd.isOpen ? 1 : 0) + (this.#sub.isOpen ? 1 : 0)
  }

  async connect(): Promise<void> {
    await Promise.all([connectOnce(this.#cmd), connectOnce(this.#sub)])
  }

  subscribe(channel: string, listener: Listener): Promise<void> {
    return this.#sub.subscribe(channel, listener, true)
  }

  unsubscribe(channel: string, listener: Listener): Promise<void> {
    return this.#sub.unsubscribe(channel, listener, true)
  }

  async barrier(): Promise<void> {
    // A PING on the subscriber connection is answered after every message Redis pushed to it before.
    await this.#sub.ping()
  }

  publish(
    channel: string,
    payload: Buffer,
    expire: number,
    history: HistoryOptions | null,
    position?: PositionSink,
  ): Promise<number> {
    return publishOn(this.#cmd, this.#keys, channel, payload, expire, history, position)
  }

  readHistory(channel: string, since: number | null, limit: number): Promise<HistoryRead> {
    return readHistoryWith(this.#buffers, channel, since, limit)
  }

  async loadFunctions(): Promise<boolean> {
    return loadLibrary(this.#cmd)
  }

  async mget(keys: string[]): Promise<(Buffer | null)[]> {
    const values = (await this.#buffers.mGet(keys)) as unknown[]
    return values.map((v) => (Buffer.isBuffer(v) ? v : null))
  }

  async close(): Promise<void> {
    // A connection that is reconnecting is destroyed: close() would wait for Redis to return.
    await Promise.allSettled([
      this.#sub.isReady ? this.#sub.close() : this.#sub.destroy(),
      this.#cmd.isReady ? this.#cmd.close() : this.#cmd.destroy(),
    ])
  }

  async destroy(): Promise<void> {
    await Promise.allSettled([this.#cmd.destroy(), this.#sub.destroy()])
  }
}
