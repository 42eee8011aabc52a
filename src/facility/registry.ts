import type { ResolvedOptions } from '../broker/options.js'
import { OptionError } from '../errors.js'
import { type FacilityDefinition, validateDefinition } from './definition.js'
import { type FacilitySettings, resolveSettings } from './settings.js'

/** A registered facility: its compiled pattern and its settings, worked out once. */
interface FacilityEntry {
  pattern: string
  settings: FacilitySettings
  params: string[]
  regex: RegExp | null
}

/** The facility a concrete name resolves to. */
export interface FacilityMatch {
  settings: FacilitySettings
  /** Values of the pattern's `{params}`, e.g. `{ id: '42' }`. */
  params: Record<string, string>
}

const PARAM = /\{([A-Za-z_][A-Za-z0-9_]*)\}/g
const NO_PARAMS: Record<string, string> = Object.freeze({}) as Record<string, string>

/**
 * Facility definitions by exact name or by pattern with `{params}` (one path segment each, as
 * Panther's `/ws/<user_id>/<room_id>/` or Channels' `url_route` kwargs). Exact names win; patterns
 * are tried in the order they were defined; other names are ad hoc and get the broker's defaults.
 */
export class FacilityRegistry {
  readonly #options: ResolvedOptions
  readonly #exact = new Map<string, FacilityEntry>()
  readonly #patterns: FacilityEntry[] = []
  /** The settings of facilities nobody defined. */
  readonly adHoc: FacilitySettings

  constructor(options: ResolvedOptions) {
    this.#options = options
    this.adHoc = resolveSettings(null, options)
  }

  /** Adds a definition; a second definition of the same name or pattern is an error. */
  define(pattern: string, definition: FacilityDefinition): void {
    validateDefinition(pattern, definition)
    const params = [...pattern.matchAll(PARAM)].map((m) => m[1]!)
    if (new Set(params).size !== params.length) {
      throw new OptionError(`facility pattern ${pattern} names a parameter twice`)
    }
    if (this.#exact.has(pattern) || this.#patterns.some((p) => p.pattern === pattern)) {
      throw new OptionError(`facility ${pattern} is already defined`)
    }
    const settings = resolveSettings(definition, this.#options)
    if (params.length === 0) {
      this.#exact.set(pattern, { pattern, settings, params, regex: null })
      return
    }
    const source = pattern
      .split(PARAM)
      .map((part, i) => (i % 2 === 1 ? '([^/]+)' : part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')))
      .join('')
    this.#patterns.push({ pattern, settings, params, regex: new RegExp(`^${source}$`) })
  }

  /** The settings and parameters that apply to a concrete facility name. */
  match(facility: string): FacilityMatch {
    const exact = this.#exact.get(facility)
    if (exact) return { settings: exact.settings, params: NO_PARAMS }
    for (const entry of this.#patterns) {
      const m = entry.regex!.exec(facility)
      if (!m) continue
      const params: Record<string, string> = {}
      entry.params.forEach((name, i) => (params[name] = m[i + 1]!))
      return { settings: entry.settings, params }
    }
    return { settings: this.adHoc, params: NO_PARAMS }
  }

  /** The settings of the facility a channel name belongs to (its last segment); null for a name
   * that is not `{prefix}<audience>:…:<facility>`. */
  ofChannel(prefix: string, channel: string): FacilitySettings | null {
    const colon = channel.lastIndexOf(':')
    if (!channel.startsWith(prefix) || colon < prefix.length) return null
    return this.match(channel.slice(colon + 1)).settings
  }
}
