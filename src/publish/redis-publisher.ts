import type { IncomingMessage } from 'node:http'
import type { Broker, PublishOptions } from '../broker/broker.js'
import {
  type Audience,
  AUDIENCES,
  assertFacility,
  channelName,
  isAudience,
} from '../channels/naming.js'
import { InvalidArgumentError } from '../errors.js'
import type { Identity, PartialIdentity } from '../identity/identity.js'
import type { Message, StoredMessage } from '../delivery/payload.js'

/**
 * In `users`, `groups` or `sessions`: "the identity of this request" — its user, all its groups,
 * its session (ws4redis's `SELF`). Dropped when the request has none.
 */
export const SELF: unique symbol = Symbol.for('wsfacility.SELF')

/** A user, group or session name, or SELF. */
export type Target = string | typeof SELF

/** Where a RedisPublisher publishes (ws4redis's constructor arguments). */
export interface PublisherTarget {
  /** The facility to publish on. Required for publishMessage. */
  facility?: string | undefined
  /** Publish on the facility's broadcast channel. */
  broadcast?: boolean | undefined
  /** Users to publish to; SELF is the request's user. */
  users?: readonly Target[] | undefined
  /** Groups to publish to; SELF is every group of the request's user. */
  groups?: readonly Target[] | undefined
  /** Sessions to publish to; SELF is the request's session key. */
  sessions?: readonly Target[] | undefined
}

/** Request, identity or nothing: what SELF and `fetchMessage` resolve against. */
export type RequestLike = IncomingMessage | PartialIdentity | null | undefined

/** Context of a RedisPublisher. */
export interface PublisherContext {
  /** The broker whose engine (Redis) carries the messages. */
  broker: Broker
  /** The request (or identity) SELF refers to. */
  request?: RequestLike | undefined
}

/** Throws InvalidArgumentError for a target whose facility or lists cannot name channels. */
export function checkTarget(target: PublisherTarget): void {
  if (typeof target !== 'object' || target === null) {
    throw new InvalidArgumentError('a publish target is an object')
  }
  if (target.facility !== undefined) assertFacility(target.facility)
  for (const key of ['users', 'groups', 'sessions'] as const) {
    const list = target[key]
    if (list === undefined) continue
    if (!Array.isArray(list)) throw new InvalidArgumentError(`${key} must be an array`)
    for (const item of list) {
      if (item !== SELF && (typeof item !== 'string' || item === '')) {
        throw new InvalidArgumentError(`${key} must hold non-empty strings or SELF`)
      }
    }
  }
}

/** True when `target` names SELF anywhere (so it needs a request's identity). */
export function needsSelf(target: PublisherTarget): boolean {
  return [target.users, target.groups, target.sessions].some((list) => list?.includes(SELF))
}

/**
 * The channel names `target` publishes on under `prefix` (ws4redis's names, without duplicates),
 * SELF meaning `identity`'s user, groups and session (nobody for null).
 */
export function targetChannels(
  prefix: string,
  target: PublisherTarget,
  identity: Identity | null,
): string[] {
  const { facility, broadcast, users = [], groups = [], sessions = [] } = target
  if (facility === undefined) throw new InvalidArgumentError('a facility is needed to publish')
  const resolve = (list: readonly Target[], self: readonly string[]): string[] =>
    list.flatMap((t) => (t === SELF ? self : [t]))
  const out: string[] = []
  if (broadcast) out.push(channelName(prefix, 'broadcast', facility))
  for (const u of resolve(users, identity?.user ? [identity.user] : [])) {
    out.push(channelName(prefix, 'user', facility, u))
  }
  for (const g of resolve(groups, identity?.groups ?? [])) {
    out.push(channelName(prefix, 'group', facility, g))
  }
  for (const s of resolve(sessions, identity?.sessionKey ? [identity.sessionKey] : [])) {
    out.push(channelName(prefix, 'session', facility, s))
  }
  return [...new Set(out)]
}

/**
 * Publishes to the channels of one facility from server code: an Express route, a worker, any
 * process with a broker (attached to a server or not).
 * @example
 * const pub = new RedisPublisher({ facility: 'chat', users: [SELF] }, { broker, request: req })
 * const receivers = await pub.publishMessage('Hello')
 */
export class RedisPublisher {
  readonly #target: PublisherTarget
  readonly #broker: Broker
  readonly #request: RequestLike

  constructor(target: PublisherTarget = {}, context: PublisherContext) {
    if (!context?.broker) throw new InvalidArgumentError('RedisPublisher needs { broker }')
    checkTarget(target)
    this.#target = { ...target }
    this.#broker = context.broker
    this.#request = context.request
  }

  /** The channel names this publisher publishes on, SELF resolved. */
  async channels(): Promise<string[]> {
    const identity = needsSelf(this.#target) ? await this.#broker.identify(this.#request) : null
    return targetChannels(this.#broker.options.channelPrefix, this.#target, identity)
  }

  /**
   * Publishes `message` (text, bytes, or an object sent as JSON) to every target channel and, when
   * `expire` (or the broker's) is > 0, stores it for replay. Resolves to the number of connections
   * that received it, on every process.
   */
  async publishMessage(message: Message, options: PublishOptions = {}): Promise<number> {
    const facility = this.#target.facility ?? ''
    const expire = options.expire ?? this.#broker.expireOf(facility)
    const history =
      options.history === undefined ? this.#broker.historyOf(facility) : options.history
    return this.#broker.publish(await this.channels(), message, { ...options, expire, history })
  }

  /**
   * The stored message of `facility` for a request or identity, or null: a Buffer on a `binary`
   * facility and for bytes that are not UTF-8, a string otherwise. `audience` `any` looks in
   * session, user, group and broadcast order, as ws4redis's `fetch_message`.
   */
  async fetchMessage(
    requestOrIdentity: RequestLike,
    facility: string,
    audience: Audience | 'any' = 'any',
  ): Promise<StoredMessage | null> {
    assertFacility(facility)
    if (audience !== 'any' && !isAudience(audience)) {
      throw new InvalidArgumentError('audience must be broadcast, group, user, session or any')
    }
    const identity = await this.#broker.identify(requestOrIdentity)
    const audiences = audience === 'any' ? AUDIENCES : [audience]
    const channels = audiences.flatMap((a) =>
      this.#broker.subscriber.audienceChannels(facility, a, identity),
    )
    return this.#broker.fetch(channels, this.#broker.formatOf(facility))
  }
}
