import { labelOf } from '../channels/join-spec.js'
import { assertId } from '../channels/naming.js'
import { InvalidArgumentError } from '../errors.js'

/**
 * Whose connections a live join, leave or refresh applies to: one connection (by id), every
 * connection of a user, or every connection of a session — on every process.
 */
export type JoinTarget = { connection: string } | { user: string } | { session: string }

/** One change of live subscriptions, as it travels between processes. */
export type MembershipOp =
  | { type: 'join' | 'leave'; target: JoinTarget; label: string }
  | { type: 'refresh'; user: string; groups?: string[] | undefined }

/** What one process (or all of them, summed) did with an op. */
export interface OpResult {
  /** Connections joined (or already there), left, or refreshed. */
  count: number
  /** Connections whose facility refused the join. */
  refused: number
}

/** Checks a target given to the API; throws InvalidArgumentError. */
export function checkTarget(target: unknown): JoinTarget {
  if (typeof target !== 'object' || target === null) {
    throw new InvalidArgumentError('target is { connection }, { user } or { session }')
  }
  const keys = Object.keys(target).filter(
    (k) => (target as Record<string, unknown>)[k] !== undefined,
  )
  const key = keys[0]
  if (keys.length !== 1 || (key !== 'connection' && key !== 'user' && key !== 'session')) {
    throw new InvalidArgumentError('target is { connection }, { user } or { session }')
  }
  const value = (target as Record<string, unknown>)[key]
  assertId(key, value as string)
  return { [key]: value } as JoinTarget
}

/** Checks a refresh's groups; throws InvalidArgumentError. */
export function checkGroups(groups: unknown): string[] | undefined {
  if (groups === undefined) return undefined
  if (!Array.isArray(groups)) throw new InvalidArgumentError('groups must be an array of strings')
  for (const g of groups) assertId('group', g as string)
  return [...new Set(groups as string[])]
}

/** Parses an op from a control message; null when it is not one. */
export function parseOp(value: unknown): MembershipOp | null {
  if (typeof value !== 'object' || value === null) return null
  const v = value as Record<string, unknown>
  try {
    if (v.type === 'join' || v.type === 'leave') {
      if (typeof v.label !== 'string') return null
      return { type: v.type, target: checkTarget(v.target), label: labelOf({ channel: v.label }) }
    }
    if (v.type === 'refresh' && typeof v.user === 'string' && v.user !== '') {
      const groups = checkGroups(v.groups)
      return groups === undefined
        ? { type: 'refresh', user: v.user }
        : { type: 'refresh', user: v.user, groups }
    }
  } catch {
    return null
  }
  return null
}
