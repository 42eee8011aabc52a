import type { RedisClientOptions } from 'redis'
import { OptionError } from '../errors.js'
import { ClusterLink, type RedisClusterConfig } from './redis-cluster.js'
import type { RedisLink } from './redis-link.js'
import type { EngineKeys } from './redis-scripts.js'
import { StandaloneLink } from './redis-standalone.js'

/** Options of RedisEngine: `redis` for one server, or `cluster` for a Redis Cluster. */
export interface RedisEngineOptions {
  /** A `redis://` URL or node-redis client options. */
  redis?: string | RedisClientOptions | undefined
  /** A Redis Cluster: root node URLs or node-redis `createCluster` options. Channels then use
   * sharded pub/sub (SSUBSCRIBE / SPUBLISH). */
  cluster?: RedisClusterConfig | undefined
  /**
   * With `cluster`: also SUBSCRIBE each channel with plain pub/sub (on one node of the cluster),
   * so a plain PUBLISH (ws4redis's Django publisher) reaches its clients, not only SPUBLISH. Redis
   * Cluster sends every plain PUBLISH to every node. @default false
   */
  clusterPlainPublish?: boolean | undefined
  /** Normalised channel prefix (`''` or `'name:'`); wsfacility's own keys live under it too. */
  prefix: string
  /** Milliseconds a process stays counted (and its users online) after it stops refreshing its
   * entry; others then sweep it up within about a quarter of that. @default 8000 */
  nodeTtl?: number | undefined
}

/** The connections to Redis that `options` name: one server, or a cluster. */
export function linkFor(options: RedisEngineOptions, keys: EngineKeys): RedisLink {
  if (options.cluster !== undefined && options.redis !== undefined) {
    throw new OptionError('give either redis or cluster, not both')
  }
  if (options.cluster !== undefined)
    return new ClusterLink(options.cluster, keys, options.clusterPlainPublish === true)
  if (options.redis === undefined) throw new OptionError('redis or cluster is required')
  if (options.clusterPlainPublish)
    throw new OptionError(
      'clusterPlainPublish needs cluster (plain PUBLISH already works on one server)',
    )
  return new StandaloneLink(options.redis, keys)
}
