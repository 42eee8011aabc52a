import { type Audience, FLAG_ORDER } from '../channels/naming.js'
import type { ResolvedOptions } from '../broker/options.js'
import { type HistoryOptions, resolveHistory } from '../history/wire.js'
import type {
  AuthorizeHook,
  FacilityDefinition,
  SlowConsumerPolicy,
  WireFormat,
} from './definition.js'

/**
 * What applies to the connections of one facility: its definition's fields where set, the broker's
 * options otherwise. Worked out once per definition (and once for ad hoc facilities), then shared
 * by every connection and every message of that facility.
 */
export interface FacilitySettings {
  /** The definition these come from; null for facilities nobody defined. */
  readonly definition: FacilityDefinition | null
  readonly format: WireFormat
  /** Seconds published messages are stored for replay (0: not stored). */
  readonly expire: number
  /** Channel history (null: none). */
  readonly history: HistoryOptions | null
  readonly anonymous: boolean
  readonly maySubscribe: readonly Audience[]
  readonly mayPublish: readonly Audience[]
  readonly autoSubscribe: readonly Audience[]
  readonly authorize: readonly AuthorizeHook[]
  /** Clients may join and leave channels over the open socket. */
  readonly clientJoin: boolean
  /** Client messages per second (0: unlimited) and the burst on top. */
  readonly publishRate: number
  readonly publishBurst: number
  /** Largest client message published with `expire` > 0, so stored in Redis (bytes). */
  readonly maxStoredMessage: number
  readonly maxBufferedBytes: number
  readonly slowConsumer: SlowConsumerPolicy
  /** Milliseconds a connection's frames wait to go out together (0: at the end of the turn). */
  readonly writeDelay: number
  /** True when a hook reads the connection's context (onConnect, onMessage, onDisconnect). */
  readonly hasHooks: boolean
}

/** The settings of connections to `definition` (null: an ad hoc facility) under `options`. */
export function resolveSettings(
  definition: FacilityDefinition | null,
  options: ResolvedOptions,
): FacilitySettings {
  const d = definition ?? {}
  return Object.freeze({
    definition,
    format: d.format ?? options.format,
    expire: d.expire ?? options.expire,
    history: d.history === undefined ? options.history : resolveHistory('history', d.history),
    anonymous: d.anonymous ?? options.anonymous,
    maySubscribe: d.subscribe ?? FLAG_ORDER,
    mayPublish: d.publish ?? options.clientPublish,
    autoSubscribe: d.autoSubscribe ?? [],
    authorize: [d.authorize ?? []].flat(),
    clientJoin: d.clientJoin ?? false,
    publishRate: d.publishRate ?? options.publishRate,
    publishBurst: d.publishBurst ?? options.publishBurst,
    maxStoredMessage: d.maxStoredMessage ?? options.maxStoredMessage,
    maxBufferedBytes: d.maxBufferedBytes ?? options.maxBufferedBytes,
    slowConsumer: d.slowConsumer ?? options.slowConsumer,
    writeDelay: d.writeDelay ?? options.writeDelay,
    hasHooks:
      d.onConnect !== undefined || d.onMessage !== undefined || d.onDisconnect !== undefined,
  })
}
