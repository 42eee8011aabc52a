/** The standalone server's flags (node:util parseArgs), and the config file key of each. */

/** Every flag; each but help, config and check-config also has a key in the config file. */
export const FLAGS = {
  config: { type: 'string' },
  'check-config': { type: 'boolean' },
  port: { type: 'string' },
  host: { type: 'string' },
  redis: { type: 'string' },
  'redis-cluster': { type: 'string' },
  'cluster-plain-publish': { type: 'boolean' },
  workers: { type: 'string' },
  prefix: { type: 'string' },
  expire: { type: 'string' },
  'history-size': { type: 'string' },
  'history-ttl': { type: 'string' },
  format: { type: 'string' },
  heartbeat: { type: 'string' },
  'client-publish': { type: 'string' },
  path: { type: 'string' },
  'jwt-secret': { type: 'string' },
  'jwks-url': { type: 'string' },
  'jwt-issuer': { type: 'string' },
  'jwt-audience': { type: 'string' },
  'session-secret': { type: 'string' },
  'session-cookie': { type: 'string' },
  'session-prefix': { type: 'string' },
  'require-auth': { type: 'boolean' },
  presence: { type: 'boolean' },
  metrics: { type: 'boolean' },
  'api-key': { type: 'string' },
  admin: { type: 'boolean' },
  'admin-password': { type: 'string' },
  'publish-rate': { type: 'string' },
  'publish-burst': { type: 'string' },
  'write-delay': { type: 'string' },
  'max-connections': { type: 'string' },
  'max-user-connections': { type: 'string' },
  'max-payload': { type: 'string' },
  'handshake-timeout': { type: 'string' },
  origins: { type: 'string' },
  refusals: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const

/** A flag's name without the dashes. */
export type Flag = keyof typeof FLAGS

/** The flags that take a value. */
export type StringFlag = {
  [K in Flag]: (typeof FLAGS)[K]['type'] extends 'string' ? K : never
}[Flag]

/** The flags that are switches. */
export type BooleanFlag = Exclude<Flag, StringFlag>

/** Flags that only the command line knows: what to do, not how to serve. */
export const COMMAND_FLAGS = ['config', 'check-config', 'help'] as const satisfies readonly Flag[]

/** A flag that has a config file key. */
export type SettingFlag = Exclude<Flag, (typeof COMMAND_FLAGS)[number]>

/** `kebab-case` to `camelCase`. */
type Camel<S extends string> = S extends `${infer Head}-${infer Tail}`
  ? `${Head}${Capitalize<Camel<Tail>>}`
  : S

/** The config file key of a flag: its name in camelCase (`--max-user-connections` → `maxUserConnections`). */
export type KeyOf<F extends Flag> = Camel<F>

/** The config file key of a flag. */
export function keyOf<F extends Flag>(flag: F): KeyOf<F> {
  return flag.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase()) as KeyOf<F>
}
