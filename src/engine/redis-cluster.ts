import { createCluster, RESP_TYPES, type RedisClusterOptions } from 'redis'
import { type Commands, type Listener, RedisLink } from './redis-link.js'
import { COUNT, type EngineKeys, runScript, SPUBLISH } from './redis-scripts.js'
import { loadLibrary } from './redis-standalone.js'
import { HISTORY_SPUBLISH, parsePublished, readHistoryWith } from '../history/scripts.js'
import {
  historyKeys,
  type HistoryOptions,
  type HistoryRead,
  META_TTL,
  type PositionSink,
} from '../history/wire.js'

/** Root node URLs, or node-redis `createCluster` options. */
export type RedisClusterConfig = string[] | RedisClusterOptions

/** node-redis cluster options for `config`, failing fast while a node is unreachable. */
export function clusterOptions(config: RedisClusterConfig): RedisClusterOptions {
  const base: RedisClusterOptions = Array.isArray(config)
    ? { rootNodes: config.map((url) => ({ url })) }
    : config
  // As on a standalone server: commands sent while a node is unreachable reject at once.
  return { ...base, defaults: { disableOfflineQueue: true, ...base.defaults } }
}

function newCluster(config: RedisClusterConfig) {
  return createCluster(clusterOptions(config))
}

type Cluster = ReturnType<typeof newCluster>

/**
 * A Redis Cluster. Commands go to the master of their key's slot. Channels use sharded pub/sub
 * (SSUBSCRIBE / SPUBLISH), so a channel's messages only travel on the shard that owns its slot;
 * node-redis holds one sharded subscriber connection per master that has subscribed channels, and
 * one command connection per master. With `plainPublish` each channel is also SUBSCRIBEd (plain
 * pub/sub) on one node of the cluster, on node-redis's one extra subscriber connection, so a plain
 * PUBLISH (ws4redis's Django publisher, redis-cli) reaches it too. Redis delivers a SPUBLISH only
 * to SSUBSCRIBE and a PUBLISH only to SUBSCRIBE, so no message arrives twice.
 */
export class ClusterLink extends RedisLink {
  readonly #cluster: Cluster
  readonly #buffers: ReturnType<Cluster['withTypeMapping']>
  readonly #keys: EngineKeys
  readonly #plainPublish: boolean

  constructor(config: RedisClusterConfig, keys: EngineKeys, plainPublish = false) {
    super()
    this.#cluster = newCluster(config)
    this.#plainPublish = plainPublish
    this.#buffers = this.#cluster.withTypeMapping({ [RESP_TYPES.BLOB_STRING]: Buffer })
    this.#keys = keys
    this.#cluster.on('error', (err: unknown) => this.emit('error', 'redis cluster', err))
    this.#cluster.on('node-error', (err: unknown, node: { host?: string; port?: number }) =>
      this.emit('error', `redis cluster node ${node.host}:${node.port}`, err),
    )
    // After a slot migration node-redis moves the subscription; if that fails, messages stop.
    this.#cluster.on('sharded-channel-moved-error', (err: unknown, channel: string) =>
      this.emit('error', `redis cluster: moving the subscription of ${channel}`, err),
    )
    this.#cluster.on('node-reconnecting', () => this.emit('reconnecting'))
    this.#cluster.on('node-ready', () => this.emit('ready', this.#cluster.isReady))
  }

  get commands(): Commands {
    return this.#cluster as unknown as Commands
  }

  get isReady(): boolean {
    return this.#cluster.isReady
  }

  // node-redis's cluster is ready once its slots are known; the nodes' own states are not exposed.
  // A master's sharded subscriber connection counts too: when it is lost, so are the messages of
  // its channels until it is back, and the engine's status must say so (the hub catches channels
  // with history up when it is ready again). One still opening for a first SSUBSCRIBE does not.
  get healthy(): boolean {
    return (
      this.#cluster.isReady &&
      this.#cluster.masters.every(
        ({ pubSub }) => !pubSub || pubSub.connectPromise !== undefined || pubSub.client.isReady,
      )
    )
  }

  /** Command connections of every master and replica, plus the sharded subscriber connections. */
  get connectionCount(): number {
    let n = 0
    for (const node of [...this.#cluster.masters, ...this.#cluster.replicas]) {
      if (node.client?.isOpen) n += 1
    }
    for (const master of this.#cluster.masters) if (master.pubSub?.client.isOpen) n += 1
    if (this.#cluster.pubSubNode?.client.isOpen) n += 1
    return n
  }

  async connect(): Promise<void> {
    await this.#cluster.connect()
  }

  async subscribe(channel: string, listener: Listener): Promise<void> {
    const sharded = this.#cluster.sSubscribe(channel, listener, true)
    if (!this.#plainPublish) return sharded
    await Promise.all([sharded, this.#cluster.subscribe(channel, listener, true)])
  }

  async unsubscribe(channel: string, listener: Listener): Promise<void> {
    const sharded = this.#cluster.sUnsubscribe(channel, listener, true)
    if (!this.#plainPublish) return sharded
    // node-redis types UNSUBSCRIBE's listener for either mode; ours is the buffer one it was given.
    const plain = listener as Parameters<Cluster['unsubscribe']>[1]
    await Promise.all([sharded, this.#cluster.unsubscribe(channel, plain, true)])
  }

  async barrier(): Promise<void> {
    // A PING on a sharded subscriber connection is answered after every message its master pushed
    // to it before; a master without one has no channel of ours, so sent us nothing. The plain
    // subscriber connection likewise, for what its node has received of plain PUBLISHes so far
    // (a PUBLISH on another node reaches it over the cluster bus, later).
    const plain = this.#cluster.pubSubNode
    await Promise.all([
      ...this.#cluster.masters.map(async (master) => {
        const pubSub = master.pubSub
        if (!pubSub) return
        const client = await (pubSub.connectPromise ?? pubSub.client)
        await client.ping()
      }),
      plain && (plain.connectPromise ?? Promise.resolve(plain.client)).then((c) => c.ping()),
    ])
  }

  async publish(
    channel: string,
    payload: Buffer,
    expire: number,
    history: HistoryOptions | null,
    position?: PositionSink,
  ): Promise<number> {
    // Two steps, as the channel and wsfacility's bookkeeping live on different slots: the count
    // is read just after the publish instead of atomically with it. The history keys share the
    // channel's slot (historyKeys), so appending and publishing stay one step.
    const ex = String(Math.floor(expire))
    let processes: number
    if (history) {
      const { stream, meta } = historyKeys(channel)
      const args = [payload, ex, String(history.size), String(history.ttl), String(META_TTL)]
      const published = parsePublished(
        await runScript(this.#cluster, HISTORY_SPUBLISH, [channel, stream, meta], args),
      )
      position?.(published.position)
      processes = published.count
    } else processes = Number(await runScript(this.#cluster, SPUBLISH, [channel], [payload, ex]))
    if (processes === 0) return 0
    const keys = [this.#keys.nodes]
    return Number(await runScript(this.#cluster, COUNT, keys, [channel, this.#keys.node]))
  }

  readHistory(channel: string, since: number | null, limit: number): Promise<HistoryRead> {
    return readHistoryWith(this.#buffers, channel, since, limit)
  }

  async loadFunctions(): Promise<boolean> {
    // Each master keeps its own functions.
    const loaded = await Promise.all(
      this.#cluster.masters.map(async (master) =>
        loadLibrary(await this.#cluster.nodeClient(master)),
      ),
    )
    return loaded.every(Boolean)
  }

  async mget(keys: string[]): Promise<(Buffer | null)[]> {
    // MGET cannot span slots: one GET per key, pipelined on each master's connection.
    const values = await Promise.all(keys.map((key) => this.#buffers.get(key) as Promise<unknown>))
    return values.map((v) => (Buffer.isBuffer(v) ? v : null))
  }

  async close(): Promise<void> {
    await (this.#cluster.isOpen ? this.#cluster.close() : this.#cluster.destroy())
  }

  async destroy(): Promise<void> {
    this.#cluster.destroy()
  }
}
