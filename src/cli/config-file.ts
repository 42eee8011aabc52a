import { readFileSync } from 'node:fs'
import { configSchema, describeIssues, type FacilityConfig } from './config-schema.js'
import { type BooleanFlag, FLAGS, keyOf, type SettingFlag, type StringFlag } from './flags.js'
import { type Given, UsageError } from './values.js'

/** Reads a file as text (node:fs by default; tests pass their own). */
export type ReadFile = (path: string) => string

const readText: ReadFile = (path) => readFileSync(path, 'utf8')

/**
 * What a config file says, as the lowest layer under the flags and environment variables: each
 * value under the name of its flag, in the form the flag takes, so one set of checks (and of
 * cross-checks: `historySize` needs `historyTtl`, `requireAuth` an identity) applies whichever
 * source a value comes from. Values are named `<file>: <key>` in messages.
 */
export interface ConfigLayer {
  /** The path of the file, as given. */
  file: string
  /** The value of a flag that takes one, or null when the file does not set it. */
  value(flag: StringFlag): Given | null
  /** A switch the file sets, or null. */
  switch(flag: BooleanFlag): { on: boolean; source: string } | null
  /** The `facilities` of the file (none: `{}`). */
  facilities: Record<string, FacilityConfig>
}

const isSetting = (flag: string): flag is SettingFlag =>
  flag !== 'config' && flag !== 'check-config' && flag !== 'help'

/**
 * Reads, parses and validates a config file; throws a UsageError whose message has one line per
 * problem, each naming the path of the value (`facilities.chat.history.size must be …`).
 */
export function loadConfig(file: string, read: ReadFile = readText): ConfigLayer {
  let source: string
  try {
    source = read(file)
  } catch (err) {
    const why = (err as { code?: unknown }).code === 'ENOENT' ? 'no such file' : String(err)
    throw new UsageError(`cannot read the config file ${file}: ${why}`)
  }
  let json: unknown
  try {
    json = JSON.parse(source)
  } catch (err) {
    throw new UsageError(`${file} is not valid JSON: ${err instanceof Error ? err.message : err}`)
  }
  const parsed = configSchema.safeParse(json)
  if (!parsed.success) {
    throw new UsageError(
      describeIssues(parsed.error.issues)
        .map((l) => `${file}: ${l}`)
        .join('\n'),
    )
  }
  const config = parsed.data
  const settings = config as Record<string, unknown>
  const flags = Object.keys(FLAGS).filter(isSetting)
  const given = new Map<string, Given>()
  const switches = new Map<string, { on: boolean; source: string }>()
  for (const flag of flags) {
    const value = settings[keyOf(flag)]
    if (value === undefined) continue
    const where = `${file}: ${keyOf(flag)}`
    if (typeof value === 'boolean') switches.set(flag, { on: value, source: where })
    // Lists are what the flags take comma-separated (the schema keeps commas out of their items).
    else given.set(flag, [Array.isArray(value) ? value.join(',') : String(value), where])
  }
  return {
    file,
    value: (flag) => given.get(flag) ?? null,
    switch: (flag) => switches.get(flag) ?? null,
    facilities: config.facilities ?? {},
  }
}
