import { EventEmitter } from 'node:events'
import type { createClient } from 'redis'
import type { HistoryOptions, HistoryRead, PositionSink } from '../history/wire.js'

type Client = ReturnType<typeof createClient>

/** A MULTI of commands on wsfacility's own keys (one hash slot, see engineKeys). */
export interface Multi {
  hSet(key: string, field: string, value: string | number): Multi
  hDel(key: string, field: string): Multi
  hIncrBy(key: string, field: string, by: number): Multi
  pExpire(key: string, ms: number): Multi
  del(key: string): Multi
  sAdd(key: string, member: string): Multi
  sRem(key: string, member: string): Multi
  exec(): Promise<unknown>
}

/** The commands RedisEngine and RedisPresence send, routed by key on a cluster. */
export type Commands = Pick<
  Client,
  'sMembers' | 'exists' | 'pExpire' | 'sAdd' | 'hGet' | 'hGetAll' | 'eval' | 'evalSha'
> & {
  /** A MULTI; on a cluster it runs on the master of its first key. */
  multi(): Multi
}

/** Called with each message of a subscribed channel. */
export type Listener = (message: Buffer, channel: Buffer) => void

/** Events of a RedisLink. */
export interface LinkEvents {
  /** A connection failed; `name` says which. */
  error: [name: string, err: unknown]
  /** A connection was lost and is being re-established. */
  reconnecting: []
  /** A connection (re)connected; `commands` is true when commands can be sent again. */
  ready: [commands: boolean]
}

/**
 * What RedisEngine needs of Redis, on a standalone server (redis-standalone.ts) or a cluster
 * (redis-cluster.ts): keyed commands, pub/sub with a barrier, publishing with receiver counts.
 */
export abstract class RedisLink extends EventEmitter<LinkEvents> {
  /** Commands on keys. */
  abstract readonly commands: Commands
  /** Whether commands can be sent now. */
  abstract readonly isReady: boolean
  /** Whether every connection (commands and subscriptions) is ready now. */
  abstract readonly healthy: boolean
  /** Number of connections to Redis open now. */
  abstract readonly connectionCount: number
  /** Connects, failing at the first connection error instead of retrying. */
  abstract connect(): Promise<void>
  /** Subscribes `channel`; resolves once Redis confirmed it. */
  abstract subscribe(channel: string, listener: Listener): Promise<void>
  /** Unsubscribes `channel`; resolves once Redis confirmed it. */
  abstract unsubscribe(channel: string, listener: Listener): Promise<void>
  /** Resolves once every message Redis sent to our subscriptions before the call was handled. */
  abstract barrier(): Promise<void>
  /**
   * Publishes `payload` on `channel` (+ SET EX when `expire` > 0; appended to its history first
   * with `history`, whose position goes to `position`) and resolves to the sum of the local connection counts live processes
   * recorded for it.
   */
  abstract publish(
    channel: string,
    payload: Buffer,
    expire: number,
    history: HistoryOptions | null,
    position?: PositionSink,
  ): Promise<number>
  /** A channel's history position and entries after `since` (engine/types.ts EngineHistory). */
  abstract readHistory(channel: string, since: number | null, limit: number): Promise<HistoryRead>
  /** Loads the `wsfacility` Redis function library (for publishers in other languages) on every
   * server; resolves false where Redis has no functions (before 7.0). */
  abstract loadFunctions(): Promise<boolean>
  /** Reads keys as buffers, null where a key is missing. */
  abstract mget(keys: string[]): Promise<(Buffer | null)[]>
  /** Closes gracefully (pending replies arrive first). */
  abstract close(): Promise<void>
  /** Drops every connection at once. */
  abstract destroy(): Promise<void>
}
