import type { IncomingMessage } from 'node:http'
import type { HistoryOptions, StreamPosition } from '../history/wire.js'
import type { PresenceEvent } from '../cluster/presence.js'
import type { Connection } from '../connection/connection.js'
import type { EngineStatus } from '../engine/types.js'
import type { ConnectionRegistry } from '../connection/registry.js'
import type { Hub } from '../delivery/hub.js'

/** Events a broker emits. */
export interface BrokerEvents {
  /** A client completed its handshake; its subscriptions are live. */
  connection: [connection: Connection, request: IncomingMessage]
  /** A client went away. */
  disconnect: [connection: Connection, code: number]
  /** An upgrade was refused: before the handshake with `status`, or right after it with close
   * code 4000 + `status` (option `refusals`). */
  refused: [request: IncomingMessage, status: number, reason: string]
  /** A background failure (Redis connection, failed client publish). Never thrown. */
  error: [error: Error]
  /** The engine's connection state changed. */
  engine: [status: EngineStatus]
  /** A user came online or went offline (with `presence: true`); once per transition, cluster-wide. */
  presence: [event: PresenceEvent]
}

/** Counters of a broker's process (`broker.stats`). */
export interface BrokerStats {
  /** Open connections. */
  connections: number
  /** Upgrades in progress (not yet refused or open). */
  upgrading: number
  /** Bytes of messages held for upgrades in progress until their handshake completes. */
  heldBytes: number
  /** Channels subscribed for clients. */
  channels: number
  /** Messages taken from the engine for at least one local client (each framed once). */
  messages: number
  /** Frames handed to clients (one per client per message). */
  deliveries: number
  /** Reads of channel history from the engine: recoveries of connecting clients (shared per
   * channel), repairs of gaps in live offsets and catch-ups after the subscription came back. */
  historyReads: number
}

/** Options of one publish. */
export interface PublishOptions {
  /** Seconds to store the message for replay; overrides the broker's `expire`. */
  expire?: number | undefined
  /** Append it to the channels' history ({ size, ttl }), or false for none; overrides the
   * broker's `history` (RedisPublisher: the facility's). */
  history?: HistoryOptions | false | null | undefined
  /** Filled with the position (epoch, offset) each channel with history gave the message. */
  positions?: Map<string, StreamPosition> | undefined
}

/** `broker.stats` read now; `ownChannels` are the hub's channels that are not clients' (control). */
export function readStats(
  registry: ConnectionRegistry,
  hub: Hub,
  ownChannels: number,
): BrokerStats {
  return {
    connections: registry.open.size,
    upgrading: registry.upgrading,
    heldBytes: registry.heldBytes,
    channels: hub.channelCount - ownChannels,
    messages: hub.messages,
    deliveries: hub.deliveries,
    historyReads: hub.historyReads,
  }
}
