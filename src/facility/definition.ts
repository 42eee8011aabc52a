import type { IncomingMessage } from 'node:http'
import { type Audience, isAudience } from '../channels/naming.js'
import type { Identity } from '../identity/identity.js'
import { OptionError } from '../errors.js'
import { type HistoryOptions, resolveHistory } from '../history/wire.js'
import { unknownKeyMessage } from '../client/unknown-keys.js'

/** What happens to a client whose unread frames pass `maxBufferedBytes`. */
export type SlowConsumerPolicy = 'close' | 'drop'

/** What a facility's hooks learn about one connection attempt. */
export interface FacilityContext {
  /** The concrete facility name, e.g. `room/42`. */
  facility: string
  /** Values of the pattern's `{params}`, e.g. `{ id: '42' }`. */
  params: Record<string, string>
  identity: Identity
  request: IncomingMessage
}

/** One permission check; any false (or throw) refuses the connection with 403. */
export type AuthorizeHook = (context: FacilityContext) => boolean | Promise<boolean>

/** Wire format: `raw` (ws4redis-compatible, the default) or the JSON envelope. */
export type WireFormat = 'raw' | 'json'

/** Options and hooks for one facility name or pattern. Unset fields keep the broker's defaults. */
export interface FacilityDefinition<C = unknown> {
  /** Audiences clients may subscribe to with `subscribe-*` flags. @default all four */
  subscribe?: Audience[]
  /** Audiences clients may publish to with `publish-*` flags. @default the broker's clientPublish */
  publish?: Audience[]
  /** Audiences every connection subscribes to, whatever its flags (when its identity fills them). */
  autoSubscribe?: Audience[]
  /** Accept connections without identity (false → 401). @default the broker's `anonymous` */
  anonymous?: boolean
  /** Seconds to store published messages for replay. @default the broker's `expire` */
  expire?: number
  /** @default 'raw' */
  format?: WireFormat
  /** Channel history ({ size, ttl }) for this facility's channels, or false for none. @default the broker's `history` */
  history?: HistoryOptions | false
  /** Messages per second a client may send here (0 = unlimited). @default the broker's publishRate */
  publishRate?: number
  /** Messages a client may send at once. @default the broker's publishBurst */
  publishBurst?: number
  /** Largest client message stored when this facility persists (`expire` > 0). @default the broker's maxStoredMessage */
  maxStoredMessage?: number
  /** Unsent bytes per client before `slowConsumer` applies. @default the broker's maxBufferedBytes */
  maxBufferedBytes?: number
  /** `'close'` (1013) or `'drop'` for a client that does not read. @default the broker's slowConsumer */
  slowConsumer?: SlowConsumerPolicy
  /** Permission checks, as Panther's `permissions`: any false → 403. */
  authorize?: AuthorizeHook | AuthorizeHook[]
  /** After the handshake; the connection is live. */
  onConnect?: (connection: C, context: FacilityContext) => void | Promise<void>
  /**
   * A client message. Return `false` to stop it from being published on the connection's
   * publish-* channels (it was handled here).
   */
  onMessage?: (
    connection: C,
    message: unknown,
    context: FacilityContext,
  ) => void | boolean | Promise<void | boolean>
  /** After the connection closed. */
  onDisconnect?: (connection: C, code: number, context: FacilityContext) => void | Promise<void>
}

/** Every field name of a definition; the type makes sure none is missing and none is extra. */
const DEFINITION_FIELDS = Object.keys({
  subscribe: true,
  publish: true,
  autoSubscribe: true,
  anonymous: true,
  expire: true,
  format: true,
  history: true,
  publishRate: true,
  publishBurst: true,
  maxStoredMessage: true,
  maxBufferedBytes: true,
  slowConsumer: true,
  authorize: true,
  onConnect: true,
  onMessage: true,
  onDisconnect: true,
} satisfies Record<keyof FacilityDefinition, true>)

function checkAudiences(name: string, value: unknown): void {
  if (value === undefined) return
  if (!Array.isArray(value) || !value.every(isAudience)) {
    throw new OptionError(`${name} must list audiences: broadcast, group, user, session`)
  }
}

/** Throws OptionError for a definition that cannot work. */
export function validateDefinition(pattern: string, definition: FacilityDefinition): void {
  if (typeof pattern !== 'string' || pattern === '' || pattern.includes(':')) {
    throw new OptionError('a facility name or pattern is a non-empty string without ":"')
  }
  if (typeof definition !== 'object' || definition === null || Array.isArray(definition)) {
    throw new OptionError('a facility definition is an object')
  }
  const unknown = unknownKeyMessage(definition, DEFINITION_FIELDS, 'facility option')
  if (unknown !== null) throw new OptionError(unknown)
  checkAudiences('subscribe', definition.subscribe)
  checkAudiences('publish', definition.publish)
  checkAudiences('autoSubscribe', definition.autoSubscribe)
  if (
    definition.format !== undefined &&
    definition.format !== 'raw' &&
    definition.format !== 'json'
  ) {
    throw new OptionError("format must be 'raw' or 'json'")
  }
  resolveHistory('history', definition.history)
  const { anonymous } = definition
  for (const name of [
    'expire',
    'publishRate',
    'publishBurst',
    'maxStoredMessage',
    'maxBufferedBytes',
  ] as const) {
    const value = definition[name]
    if (value !== undefined && !(typeof value === 'number' && Number.isFinite(value) && value >= 0))
      throw new OptionError(`${name} must be a finite number >= 0`)
  }
  const { slowConsumer } = definition
  if (slowConsumer !== undefined && slowConsumer !== 'close' && slowConsumer !== 'drop') {
    throw new OptionError("slowConsumer must be 'close' or 'drop'")
  }
  if (anonymous !== undefined && typeof anonymous !== 'boolean') {
    throw new OptionError('anonymous must be a boolean')
  }
  const hooks = [definition.authorize].flat().filter((h) => h !== undefined)
  for (const hook of [
    ...hooks,
    definition.onConnect,
    definition.onMessage,
    definition.onDisconnect,
  ]) {
    if (hook !== undefined && typeof hook !== 'function')
      throw new OptionError('hooks must be functions')
  }
}
