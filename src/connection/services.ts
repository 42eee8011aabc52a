import type { IncomingMessage } from 'node:http'
import type { HistoryOptions } from '../history/wire.js'
import type { ResolvedOptions } from '../broker/options.js'
import type { Presence } from '../cluster/presence.js'
import type { Hub } from '../delivery/hub.js'
import type { FacilityContext } from '../facility/definition.js'
import type { FacilitySettings } from '../facility/settings.js'
import type { Identity } from '../identity/identity.js'
import type { Flags, RedisSubscriber } from '../channels/redis-subscriber.js'
import type { ConnectionCounter } from '../upgrade/admission.js'
import type { Connection, ConnectionFacts } from './connection.js'
import type { FlushScheduler } from './flush-scheduler.js'
import type { PublishBudget } from './publish-budget.js'
import type { ConnectionRegistry } from './registry.js'

/** What every connection of a broker shares: one object, not a copy each. */
export interface ConnectionServices {
  readonly options: ResolvedOptions
  readonly hub: Hub
  readonly presence: Presence
  readonly registry: ConnectionRegistry
  readonly counter: ConnectionCounter
  readonly scheduler: FlushScheduler
  readonly budget: PublishBudget
  /** Flags + identity → channel names (a refreshed identity's channels). */
  readonly subscriber: RedisSubscriber
  /** Resolves true once Redis is back after an outage, false when the broker closes first. */
  engineReturned(): Promise<boolean>
  /** Publishes a client's payload on one channel; resolves to the receivers. */
  publish(
    channel: string,
    payload: Buffer,
    expire: number,
    history: HistoryOptions | null,
  ): Promise<number>
  /** Checks a fresh JWT for `identity`; resolves to its expiry (ms since the epoch) or null. */
  refreshToken(token: string, identity: Identity): Promise<number | null>
  /** Counts one client message taken for publishing. */
  received(): void
  /** Announces a connection whose subscriptions are live (the broker's `connection` event). */
  opened(connection: Connection, request: IncomingMessage): void
  /** Announces a connection that went away (the broker's `disconnect` event). */
  closed(connection: Connection, code: number): void
  /** Counts a connection closed as a slow consumer. */
  slowConsumerClosed(): void
  /** Reports a background failure (a hook that threw, a failed publish). */
  error(err: unknown): void
}

/** What the owner learns once the upgrade has decided who the client is and what it gets. */
export interface Acceptance {
  facts: ConnectionFacts
  settings: FacilitySettings
  /** Kept only when a hook will read it. */
  context: FacilityContext
  tokenAuthenticated: boolean
  expiresAt: number | null
  /** The flags after policy (a refreshed identity's channels are worked out from them). */
  flags: Flags
}
