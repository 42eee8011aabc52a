import { InvalidArgumentError } from '../errors.js'

/** Who a channel reaches. */
export type Audience = 'broadcast' | 'group' | 'user' | 'session'

/** Every audience, in the order ws4redis's `fetch_message(audience='any')` looks them up. */
export const AUDIENCES: readonly Audience[] = ['session', 'user', 'group', 'broadcast']

/** Every audience, in the order a connection's flags and subscriptions list them. */
export const FLAG_ORDER: readonly Audience[] = ['broadcast', 'group', 'user', 'session']

/** Longest facility name accepted by default. */
export const DEFAULT_MAX_FACILITY_LENGTH = 128

/** True when `value` names an audience. */
export function isAudience(value: unknown): value is Audience {
  return value === 'broadcast' || value === 'group' || value === 'user' || value === 'session'
}

/**
 * Turns the `prefix` option into the string that starts every channel name.
 * @example normalizePrefix('ws4redis') === 'ws4redis:'; normalizePrefix('') === ''
 */
export function normalizePrefix(prefix: string | null | undefined): string {
  if (!prefix) return ''
  return prefix.endsWith(':') ? prefix : `${prefix}:`
}

// Redis names are UTF-8 bytes: every lone surrogate would become U+FFFD there, so two different
// strings would name one channel.
const LONE_SURROGATE = /\p{Cs}/u

/**
 * Why `name` cannot be a facility, or null when it can. Facilities never contain `:` (that keeps
 * channel names unambiguous) nor control characters.
 */
export function facilityProblem(
  name: string,
  maxLength = DEFAULT_MAX_FACILITY_LENGTH,
): string | null {
  if (name.length === 0) return 'facility is empty'
  // Counted in code points: an emoji is one character, as a user would count it.
  if (name.length > maxLength && [...name].length > maxLength)
    return `facility is longer than ${maxLength} characters`
  if (name.includes(':')) return 'facility contains ":"'
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(name)) return 'facility contains a control character'
  if (LONE_SURROGATE.test(name)) return 'facility is not well-formed Unicode'
  return null
}

/** Throws InvalidArgumentError unless `name` is a valid facility. */
export function assertFacility(name: string, maxLength?: number): void {
  const problem = facilityProblem(name, maxLength)
  if (problem) throw new InvalidArgumentError(problem)
}

/** Throws InvalidArgumentError unless `id` can name a user, group or session. */
export function assertId(kind: string, id: string): void {
  if (typeof id !== 'string' || id.length === 0) {
    throw new InvalidArgumentError(`${kind} must be a non-empty string`)
  }
  if (LONE_SURROGATE.test(id)) throw new InvalidArgumentError(`${kind} is not well-formed Unicode`)
}

/**
 * The ws4redis channel name for one audience of a facility.
 * @example channelName('', 'user', 'chat', 'john') === 'user:john:chat'
 */
export function channelName(
  prefix: string,
  audience: Audience,
  facility: string,
  id?: string,
): string {
  if (audience === 'broadcast') return `${prefix}broadcast:${facility}`
  if (id === undefined) throw new InvalidArgumentError(`${audience} channel needs an id`)
  assertId(audience, id)
  return `${prefix}${audience}:${id}:${facility}`
}
