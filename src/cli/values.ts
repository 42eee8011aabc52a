import { type Audience, isAudience } from '../channels/naming.js'

/** What the CLI's flag and environment values are checked with; each throws a UsageError that
 * names where the value came from. */

/** A command line that cannot work; the CLI prints it and a pointer to --help, and exits 2. */
export class UsageError extends Error {
  readonly code = 'WSF_USAGE'
}

/** Environment variables, as `process.env`. */
export type Env = Readonly<Record<string, string | undefined>>

/** A value and where it came from (`--flag` or the variable's name), for messages. */
export type Given = [value: string, source: string]

/** A boolean environment variable: 1/true/yes/on or 0/false/no/off; unset or empty is false. */
export function flag(env: Env, name: string): boolean {
  const value = env[name]?.trim().toLowerCase()
  if (value === undefined || value === '') return false
  if (['1', 'true', 'yes', 'on'].includes(value)) return true
  if (['0', 'false', 'no', 'off'].includes(value)) return false
  throw new UsageError(`${name} must be 1, true, yes, on, 0, false, no or off`)
}

export function nonEmpty([value, source]: Given): string {
  if (value === '') throw new UsageError(`${source} must not be empty`)
  return value
}

export function wholeNumber([value, source]: Given, max: number): number {
  const n = /^\d+$/.test(value) ? Number(value) : NaN
  if (!(n <= max)) throw new UsageError(`${source} must be a whole number from 0 to ${max}`)
  return n
}

function urlWithProtocol([value, source]: Given, protocols: string[], what: string): string {
  let url: URL | null = null
  try {
    url = new URL(value)
  } catch {
    // reported below
  }
  if (!url || !protocols.includes(url.protocol)) {
    throw new UsageError(`${source} must be ${what} URL`)
  }
  return value
}

export function redisUrl(given: Given): string {
  return urlWithProtocol(given, ['redis:', 'rediss:'], 'a redis:// or rediss://')
}

export function httpUrl(given: Given): string {
  return urlWithProtocol(given, ['http:', 'https:'], 'an http:// or https://')
}

export function audiences([value, source]: Given): Audience[] {
  const out = new Set<Audience>()
  for (const item of value.split(',')) {
    const name = item.trim().toLowerCase()
    if (name === '') continue
    if (!isAudience(name)) {
      throw new UsageError(
        `${source}: unknown audience "${item.trim()}" (use broadcast, group, user, session)`,
      )
    }
    out.add(name)
  }
  return [...out]
}

export function originList([value, source]: Given): string[] {
  const list = value
    .split(',')
    .map((o) => o.trim())
    .filter((o) => o !== '')
  for (const origin of list) {
    let ok = false
    try {
      const url = new URL(origin)
      ok = (url.protocol === 'http:' || url.protocol === 'https:') && url.origin === origin
    } catch {
      // reported below
    }
    if (!ok)
      throw new UsageError(`${source}: "${origin}" is not an origin like https://app.example.com`)
  }
  return list
}
