import type { HistoryOptions, HistoryRead, PositionSink } from '../history/wire.js'

/** Called for every message the engine receives on a subscribed channel; returns how many local
 * connections it reached. */
export type MessageHandler = (channel: string, payload: Buffer) => number

/** Connection state of an engine, as reported through `onStatus`. */
export type EngineStatus = 'connecting' | 'ready' | 'reconnecting' | 'closed'

/**
 * Pub/sub between processes: the engine's connections, its channels and what is published on
 * them. The hub and the control channel move messages through it.
 */
export interface EngineTransport {
  /** Connects; safe to call more than once. */
  start(): Promise<void>
  /** Sets the one handler of incoming messages (the hub's). */
  onMessage(handler: MessageHandler): void
  /** Subscribes a channel; resolves once messages published from now on are delivered. */
  subscribe(channel: string): Promise<void>
  /** Unsubscribes a channel; resolves once the server confirmed it. */
  unsubscribe(channel: string): Promise<void>
  /**
   * Publishes `payload` on `channel` and, when `expire` > 0, stores it under the channel's name
   * for `expire` seconds. With `history`, it is also appended to the channel's history in the same
   * atomic step and published marked with its epoch and offset (history/wire.ts), which go to
   * `position` when given. Resolves to the
   * number of connections, on every process, that received it.
   */
  publish(
    channel: string,
    payload: Buffer,
    expire: number,
    history?: HistoryOptions | null,
    position?: PositionSink,
  ): Promise<number>
  /** Resolves once every message published before the call has reached the message handler. */
  barrier(): Promise<void>
  /** Connection state now: `ready` only while every connection to Redis is (the memory engine is
   * `ready` until closed). */
  readonly status: EngineStatus
  /** Registers a listener of connection state changes, called once per transition. */
  onStatus(listener: (status: EngineStatus) => void): void
  /** Registers a listener of background errors (lost connection, failed refresh). */
  onError(listener: (err: Error) => void): void
  /** This process's id, unique among the processes sharing the engine's Redis. */
  readonly nodeId: string
  /** Number of connections to Redis this engine holds (0 for the memory engine). */
  readonly connectionCount: number
  /** Disconnects and releases everything. */
  close(): Promise<void>
}

/** The last message of each channel, kept by `publish` with `expire` > 0 (replay, fetchMessage). */
export interface EngineStorage {
  /** Reads stored payloads of channels, null where none is stored. */
  get(channels: readonly string[]): Promise<(Buffer | null)[]>
  /**
   * Reads them as `get` does, into a map that may hold other channels too: the reads asked for at
   * the same moment may share one map and one round trip (a connection storm's replay reads).
   * Absent or null in it: nothing stored. Optional: without it, the broker reads with `get`.
   */
  read?: ((channels: readonly string[]) => Promise<ReadonlyMap<string, Buffer | null>>) | undefined
}

/** Each channel's history: a bounded stream with an epoch (history/). */
export interface EngineHistory {
  /**
   * The channel's epoch and top offset and, when `since` is a number, its entries after `since`
   * (oldest first, at most `limit`; trimmed or expired ones are missing). A channel without an
   * epoch gets one now, at offset 0, so a position handed out stays valid for the next publish.
   */
  readHistory(channel: string, since: number | null, limit: number): Promise<HistoryRead>
}

/** What one connection's join or leave changed, cluster-wide. */
export interface PresenceChange {
  /** Its user came online (a join) or went offline (a leave) on any facility. */
  overall: boolean
  /** The same on the connection's facility. */
  facility: boolean
}

/**
 * Who is online, counted per process and summed cluster-wide, in presence sets: one per facility
 * (named after it) and the overall set `''` (on any facility; facility names are never empty).
 */
export interface EnginePresence {
  /**
   * Counts one more connection of `user` on `facility` for this process, in the facility's set
   * and in the overall one; resolves in which of them that made the user online cluster-wide.
   */
  presenceJoin(facility: string, user: string): Promise<PresenceChange>
  /** Counts one such connection less; resolves in which sets the user is now offline everywhere. */
  presenceLeave(facility: string, user: string): Promise<PresenceChange>
  /** Members of `set` online on any process, with their connection counts. */
  presenceList(set: string): Promise<Map<string, number>>
  /** Connections of `member` in `set`, on every process. */
  presenceCount(set: string, member: string): Promise<number>
  /** Listens for leaves this process found by sweeping up after a dead process (set `''`: offline
   * on every facility). */
  onPresenceSwept(listener: (set: string, member: string) => void): void
}

/** The processes sharing an engine and what each one's clients listen to. */
export interface EngineMembership {
  /** Records how many local connections listen on `channel`, for cluster-wide receiver counts.
   * Resolves once the count is visible to publishers on other processes. */
  setLocalCount(channel: string, count: number): Promise<void>
  /** Ids of the live processes sharing this engine (this one included). */
  nodes(): Promise<string[]>
}

/**
 * What moves and stores messages for a broker: all five concerns. RedisEngine and MemoryEngine
 * implement it and pass the same contract tests (test/engine.test.ts); each part of the broker
 * depends only on the concerns it uses.
 */
export interface Engine
  extends EngineTransport, EngineStorage, EngineHistory, EnginePresence, EngineMembership {}
