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
  /** Set when the hooks decide a live join (`broker.join` or a client's join frame), not the
   * connection itself. */
  join?: JoinContext | undefined
}

/** The live join `authorize` and `allowedChannels` hooks are asked about. */
export interface JoinContext {
  /** The channel's label: `group:<name>`, `broadcast`, `user` or `session`. */
  label: string
  audience: Audience
  /** The group, for a group join; null otherwise. */
  group: string | null
  /** The channel's name in Redis. */
  channel: string
  /** True when the client asked (a join frame), false for `broker.join`. */
  fromClient: boolean
}

/** One permission check; any false (or throw) refuses the connection with 403. */
export type AuthorizeHook = (context: FacilityContext) => boolean | Promise<boolean>

/**
 * Wire format. `raw` (ws4redis-compatible, the default): messages as published, a text frame when
 * the bytes are valid UTF-8 and a binary frame otherwise. `binary`: as `raw`, but every message is
 * a binary frame (for facilities that carry bytes). `json`: the JSON envelope.
 */
export type WireFormat = 'raw' | 'binary' | 'json'

/** The wire formats, for validation. */
export const WIRE_FORMATS: readonly WireFormat[] = ['raw', 'binary', 'json']

/** True for a WireFormat. */
export function isWireFormat(value: unknown): value is WireFormat {
  return WIRE_FORMATS.includes(value as WireFormat)
}

/** Options and hooks for one facility name or pattern. Unset fields keep the broker's defaults. */
export interface FacilityDefinition<C = unknown> {
  /** Audiences clients may subscribe to with `subscribe-*` flags. @default all four */
  subscribe?: Audience[] | undefined
  /** Audiences clients may publish to with `publish-*` flags. @default the broker's clientPublish */
  publish?: Audience[] | undefined
  /** Audiences every connection subscribes to, whatever its flags (when its identity fills them). */
  autoSubscribe?: Audience[] | undefined
  /** Accept connections without identity (false → 401). @default the broker's `anonymous` */
  anonymous?: boolean | undefined
  /** Seconds to store published messages for replay. @default the broker's `expire` */
  expire?: number | undefined
  /** `'raw'` (ws4redis: text frames, binary for bytes that are not UTF-8), `'binary'` (every
   * message a binary frame) or `'json'` (the envelope). @default the broker's format */
  format?: WireFormat | undefined
  /** Channel history ({ size, ttl }) for this facility's channels, or false for none. @default the broker's `history` */
  history?: HistoryOptions | false | undefined
  /** Messages per second a client may send here (0 = unlimited). @default the broker's publishRate */
  publishRate?: number | undefined
  /** Messages a client may send at once. @default the broker's publishBurst */
  publishBurst?: number | undefined
  /** Largest client message stored when this facility persists (`expire` > 0). @default the broker's maxStoredMessage */
  maxStoredMessage?: number | undefined
  /** Unsent bytes per client before `slowConsumer` applies. @default the broker's maxBufferedBytes */
  maxBufferedBytes?: number | undefined
  /** `'close'` (1013) or `'drop'` for a client that does not read. @default the broker's slowConsumer */
  slowConsumer?: SlowConsumerPolicy | undefined
  /** Milliseconds a client's frames wait to go out in one write (0 to 10000). @default the broker's writeDelay */
  writeDelay?: number | undefined
  /**
   * Whether clients may join and leave groups and channels over the open socket (`json`
   * facilities' join frames, `client.join()`); each join is checked like `broker.join` (the
   * `subscribe` list, `authorize` with `context.join`, `allowedChannels`). @default false
   */
  clientJoin?: boolean | undefined
  /** Permission checks, as Panther's `permissions`: any false → 403. Asked again, with
   * `context.join` set, for every live join. */
  authorize?: AuthorizeHook | AuthorizeHook[] | undefined
  /** After the handshake; the connection is live. */
  onConnect?: ((connection: C, context: FacilityContext) => void | Promise<void>) | undefined
  /**
   * A client message. Return `false` to stop it from being published on the connection's
   * publish-* channels (it was handled here).
   */
  onMessage?:
    | ((
        connection: C,
        message: unknown,
        context: FacilityContext,
      ) => void | boolean | Promise<void | boolean>)
    | undefined
  /** After the connection closed. */
  onDisconnect?:
    ((connection: C, code: number, context: FacilityContext) => void | Promise<void>) | undefined
}

/** The longest write delay: past it, frames would outwait heartbeats and pings. */
export const MAX_WRITE_DELAY = 10_000

/** Throws OptionError unless `value` is a write delay (milliseconds, 0 to MAX_WRITE_DELAY). */
export function checkWriteDelay(value: unknown): void {
  if (
    typeof value !== 'number' ||
    !Number.isFinite(value) ||
    value < 0 ||
    value > MAX_WRITE_DELAY
  ) {
    throw new OptionError(
      `writeDelay must be a number of milliseconds from 0 to ${MAX_WRITE_DELAY}`,
    )
  }
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
  writeDelay: true,
  clientJoin: true,
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
  if (definition.format !== undefined && !isWireFormat(definition.format)) {
    throw new OptionError("format must be 'raw', 'binary' or 'json'")
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
  if (definition.writeDelay !== undefined) checkWriteDelay(definition.writeDelay)
  const { slowConsumer } = definition
  if (slowConsumer !== undefined && slowConsumer !== 'close' && slowConsumer !== 'drop') {
    throw new OptionError("slowConsumer must be 'close' or 'drop'")
  }
  if (anonymous !== undefined && typeof anonymous !== 'boolean') {
    throw new OptionError('anonymous must be a boolean')
  }
  if (definition.clientJoin !== undefined && typeof definition.clientJoin !== 'boolean') {
    throw new OptionError('clientJoin must be a boolean')
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
