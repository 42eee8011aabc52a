import type { BrokerOptions } from '../broker/options.js'
import { resolveOptions } from '../broker/options.js'
import { OptionError } from '../errors.js'
import type { FacilityDefinition } from '../facility/definition.js'
import { FacilityRegistry } from '../facility/registry.js'
import type { SessionOptions } from '../identity/session.js'
import { REDACTED, redactPassword } from '../observability/redact.js'
import type { CliConfig } from './options.js'
import { UsageError } from './values.js'

/** What the standalone server's config means for its broker (facilities apart). */
export function brokerOptionsOf(config: CliConfig, session?: SessionOptions): BrokerOptions {
  return {
    redis: config.redis ?? undefined,
    redisCluster: config.redisCluster ?? undefined,
    clusterPlainPublish: config.clusterPlainPublish,
    prefix: config.prefix,
    path: config.path,
    expire: config.expire,
    history: config.history,
    format: config.format,
    heartbeat: config.heartbeat,
    clientPublish: config.clientPublish,
    jwt: config.jwt ?? undefined,
    session,
    presence: config.presence,
    anonymous: !config.requireAuth,
    origins: config.origins,
    refusals: config.refusals,
    ...config.limits,
  }
}

/** The facilities of the config file as `broker.facility()` definitions, in the file's order. */
export function facilityDefinitions(config: CliConfig): [string, FacilityDefinition][] {
  return Object.entries(config.facilities).map(([name, f]) => [name, f as FacilityDefinition])
}

/**
 * Checks the config as the broker will (its options and every facility definition), without
 * connecting anything; throws a UsageError naming the facility of a definition it refuses.
 */
export function checkSettings(config: CliConfig): void {
  const where = config.configFile === null ? '' : `${config.configFile}: `
  let options
  try {
    options = resolveOptions(brokerOptionsOf(config))
  } catch (err) {
    if (err instanceof OptionError) throw new UsageError(`${where}${err.message}`)
    throw err
  }
  const registry = new FacilityRegistry(options)
  for (const [name, definition] of facilityDefinitions(config)) {
    try {
      registry.define(name, definition)
    } catch (err) {
      if (err instanceof OptionError) {
        throw new UsageError(`${where}facilities.${name}: ${err.message}`)
      }
      throw err
    }
  }
}

/**
 * The effective settings as `--check-config` prints them: every field of the config, secrets
 * (JWT secret, session secrets, API keys, admin password, Redis passwords) replaced by REDACTED.
 */
export function effectiveSettings(config: CliConfig): Record<string, unknown> {
  const { jwt, session, facilities, ...rest } = config
  const settings: Record<string, unknown> = { ...rest }
  // What the command is, not how the server serves.
  delete settings.help
  delete settings.checkConfig
  return {
    ...settings,
    redis: config.redis === null ? null : redactPassword(config.redis),
    redisCluster: config.redisCluster?.map(redactPassword) ?? null,
    jwt: jwt && { ...jwt, ...('secret' in jwt ? { secret: REDACTED } : {}) },
    session: session && { ...session, secrets: session.secrets.map(() => REDACTED) },
    apiKeys: config.apiKeys.map(() => REDACTED),
    adminPassword: config.adminPassword === null ? null : REDACTED,
    // JSON has no undefined: a default left to the broker shows as null.
    clientPublish: config.clientPublish ?? null,
    origins: config.origins ?? null,
    refusals: config.refusals ?? null,
    facilities,
  }
}
