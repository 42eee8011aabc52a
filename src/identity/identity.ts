import type { IncomingMessage } from 'node:http'
import { InvalidArgumentError } from '../errors.js'

/** Who a connection or request is: decides its user, group and session channels. */
export interface Identity {
  /** User name, or null when anonymous. */
  user: string | null
  /** Groups the user belongs to. */
  groups: string[]
  /** Session key, or null when the request has no session. */
  sessionKey: string | null
}

/**
 * An identity as hooks may return it and as `SELF` may be given: absent or undefined fields are
 * anonymous (no user, no groups, no session).
 */
export interface PartialIdentity {
  user?: string | null | undefined
  groups?: string[] | undefined
  sessionKey?: string | null | undefined
}

/** Resolves the identity of an HTTP request (the upgrade, or an Express route's `req`). */
export type IdentifyHook = (
  request: IncomingMessage,
) => PartialIdentity | null | undefined | Promise<PartialIdentity | null | undefined>

/** The identity of a connection nobody has vouched for. */
export function anonymous(): Identity {
  return { user: null, groups: [], sessionKey: null }
}

function optionalId(kind: string, value: unknown): string | null {
  if (value === null || value === undefined || value === '') return null
  if (typeof value === 'number' || typeof value === 'bigint') return String(value)
  if (typeof value !== 'string') throw new InvalidArgumentError(`identity ${kind} must be a string`)
  return value
}

/**
 * Checks and completes what an `identify` hook returned. Empty strings count as absent, so an
 * anonymous request can never map onto a shared placeholder channel such as `user::chat`.
 */
export function normalizeIdentity(value: PartialIdentity | null | undefined): Identity {
  if (value === null || value === undefined) return anonymous()
  if (typeof value !== 'object') throw new InvalidArgumentError('identity must be an object')
  const user = optionalId('user', value.user)
  const sessionKey = optionalId('sessionKey', value.sessionKey)
  const rawGroups: unknown = value.groups ?? []
  if (!Array.isArray(rawGroups)) throw new InvalidArgumentError('identity groups must be an array')
  // Most identities have no groups: no Set and no arrays to make for them.
  const groups =
    rawGroups.length === 0
      ? []
      : [...new Set(rawGroups.map((g) => optionalId('group', g)).filter((g) => g !== null))]
  return { user, groups, sessionKey }
}

/** True when `value` looks like an Identity rather than a request object. */
export function isIdentity(value: unknown): value is PartialIdentity {
  return (
    typeof value === 'object' &&
    value !== null &&
    !('headers' in value) &&
    ('user' in value || 'groups' in value || 'sessionKey' in value)
  )
}
