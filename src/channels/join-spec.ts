import { InvalidArgumentError } from '../errors.js'
import type { Identity } from '../identity/identity.js'
import { type Audience, assertId, channelName } from './naming.js'

/**
 * What a live join or leave names: a group of the connection's facility, or one of its channels
 * by label (`broadcast`, `user`, `session`, `group:<name>`: the names clients know channels by).
 * A connection only ever joins channels of its own facility.
 * @example { group: 'room-42' } // the channel group:room-42:<facility>
 */
export type JoinSpec =
  | { group: string; channel?: undefined }
  | { channel: 'broadcast' | 'user' | 'session' | `group:${string}`; group?: undefined }

/** The label a join names (`group:<name>`, `broadcast`, `user` or `session`); throws
 * InvalidArgumentError for anything else. */
export function labelOf(spec: unknown): string {
  if (typeof spec !== 'object' || spec === null) {
    throw new InvalidArgumentError('a join names { group } or { channel }')
  }
  const { group, channel } = spec as { group?: unknown; channel?: unknown }
  if (group !== undefined && channel !== undefined) {
    throw new InvalidArgumentError('a join names a group or a channel, not both')
  }
  if (group !== undefined) {
    assertId('group', group as string)
    return `group:${group as string}`
  }
  if (typeof channel !== 'string') {
    throw new InvalidArgumentError('a join names { group } or { channel }')
  }
  if (channel === 'broadcast' || channel === 'user' || channel === 'session') return channel
  if (channel.startsWith('group:')) {
    assertId('group', channel.slice(6))
    return channel
  }
  throw new InvalidArgumentError('channel is broadcast, user, session or group:<name>')
}

/** The audience of a label. */
export function audienceOf(label: string): Audience {
  return label.startsWith('group:') ? 'group' : (label as Audience)
}

/** The group a label names, or null. */
export function groupOf(label: string): string | null {
  return label.startsWith('group:') ? label.slice(6) : null
}

/**
 * The channel a label means for a connection to `facility` with `identity`; null when the identity
 * cannot fill it (`user` without a user, `session` without a session).
 */
export function channelOfLabel(
  prefix: string,
  label: string,
  facility: string,
  identity: Identity,
): string | null {
  const group = groupOf(label)
  if (group !== null) return channelName(prefix, 'group', facility, group)
  if (label === 'broadcast') return channelName(prefix, 'broadcast', facility)
  if (label === 'user')
    return identity.user === null ? null : channelName(prefix, 'user', facility, identity.user)
  if (label === 'session') {
    return identity.sessionKey === null
      ? null
      : channelName(prefix, 'session', facility, identity.sessionKey)
  }
  return null
}
