import { z } from 'zod'
import { AUDIENCES } from '../channels/naming.js'
import { closestKey } from '../client/unknown-keys.js'
import { MAX_WRITE_DELAY, WIRE_FORMATS } from '../facility/definition.js'
import type { KeyOf, SettingFlag } from './flags.js'

/** The schema of the standalone server's config file (zod): every flag's camelCase key, plus
 * `facilities`. Messages are written to follow the path of the value: `… must be …`. */

const int = (min: number, max = Number.MAX_SAFE_INTEGER): z.ZodInt => {
  const low = min === 1 ? 'must be a positive integer' : `must be an integer >= ${min}`
  return z
    .int({ error: low })
    .min(min, { error: low })
    .max(max, { error: `must be at most ${max}` })
}
const text = z.string({ error: 'must be a string' })
const nonEmpty = text.min(1, { error: 'must not be empty' })
const bool = z.boolean({ error: 'must be true or false' })
const oneOf = <T extends string>(values: readonly [T, ...T[]]) =>
  z.enum(values, { error: `must be ${values.slice(0, -1).join(', ')} or ${values.at(-1)}` })
const audiences = z.array(oneOf(AUDIENCES as [string, ...string[]]), {
  error: 'must be a list of audiences: broadcast, group, user, session',
})
/** One item of a list that the environment variable gives comma-separated. */
const listItem = nonEmpty.refine((s) => !s.includes(','), { error: 'must not contain ","' })
/** One value or several (rotation: every one is accepted). */
const oneOrMore = z.union([listItem, z.array(listItem).min(1, { error: 'must not be empty' })], {
  error: 'must be a string or a list of strings',
})

/** `history` of a facility: `{ size, ttl }`, or false for none. */
const history = z.union(
  [
    z.literal(false),
    z.strictObject(
      { size: int(1, 1_000_000), ttl: int(1, 31_536_000) },
      { error: 'must be { size, ttl } or false' },
    ),
  ],
  { error: 'must be { size, ttl } or false' },
)

/** What `broker.facility()` takes that can be written as data. */
export const facilitySchema = z.strictObject(
  {
    format: oneOf(WIRE_FORMATS as [string, ...string[]]).optional(),
    history: history.optional(),
    expire: int(0).optional(),
    anonymous: bool.optional(),
    subscribe: audiences.optional(),
    publish: audiences.optional(),
    autoSubscribe: audiences.optional(),
    publishRate: int(0).optional(),
    publishBurst: int(0).optional(),
    maxStoredMessage: int(0).optional(),
    maxBufferedBytes: int(0).optional(),
    slowConsumer: oneOf(['close', 'drop']).optional(),
    writeDelay: int(0, MAX_WRITE_DELAY).optional(),
  },
  { error: 'must be an object of facility options' },
)

const PARAM = /\{([A-Za-z_][A-Za-z0-9_]*)\}/g

/** A facility name (`chat`) or pattern (`room/{id}`): no ":", no parameter twice. */
const facilityName = z
  .string()
  .min(1, { error: 'a facility name must not be empty' })
  .refine((name) => !name.includes(':'), { error: 'a facility name must not contain ":"' })
  .refine(
    (name) => {
      const params = [...name.matchAll(PARAM)].map((m) => m[1])
      return new Set(params).size === params.length
    },
    { error: 'a facility pattern must not name a parameter twice' },
  )

const settings = {
  port: int(0, 65535),
  host: nonEmpty,
  redis: nonEmpty,
  redisCluster: z.union([nonEmpty, z.array(listItem).min(1)], {
    error: 'must be a redis:// URL or a list of them',
  }),
  clusterPlainPublish: bool,
  workers: int(1, 256),
  prefix: text,
  expire: int(0),
  historySize: int(1, 1_000_000),
  historyTtl: int(1, 31_536_000),
  format: oneOf(WIRE_FORMATS as [string, ...string[]]),
  heartbeat: nonEmpty,
  clientPublish: audiences,
  path: text.startsWith('/', { error: 'must start with "/"' }),
  jwtSecret: nonEmpty,
  jwksUrl: nonEmpty,
  jwtIssuer: nonEmpty,
  jwtAudience: nonEmpty,
  sessionSecret: oneOrMore,
  sessionCookie: nonEmpty,
  sessionPrefix: text,
  requireAuth: bool,
  presence: bool,
  metrics: bool,
  apiKey: oneOrMore,
  admin: bool,
  adminPassword: nonEmpty,
  publishRate: int(0),
  publishBurst: int(0),
  writeDelay: int(0, MAX_WRITE_DELAY),
  maxConnections: int(0),
  maxUserConnections: int(0),
  maxPayload: int(1),
  handshakeTimeout: int(1),
  origins: z.array(listItem, { error: 'must be a list of origins' }),
  refusals: oneOf(['http', 'close', 'auto']),
} satisfies Record<KeyOf<SettingFlag>, z.ZodType>

/** The config file: every setting optional, unknown keys refused. */
export const configSchema = z.strictObject(
  {
    ...(Object.fromEntries(Object.entries(settings).map(([k, v]) => [k, v.optional()])) as {
      [K in keyof typeof settings]: z.ZodOptional<(typeof settings)[K]>
    }),
    facilities: z
      .record(facilityName, facilitySchema, { error: 'must be an object: name → options' })
      .optional(),
  },
  { error: 'must be a JSON object' },
)

/** A config file, validated. */
export type FileConfig = z.infer<typeof configSchema>

/** One facility of the config file, validated. */
export type FacilityConfig = z.infer<typeof facilitySchema>

/** The keys an object at `path` accepts, for "did you mean" hints. */
function knownKeys(path: readonly PropertyKey[]): readonly string[] {
  if (path.length === 0) return Object.keys(configSchema.shape)
  if (path.length === 2 && path[0] === 'facilities') return Object.keys(facilitySchema.shape)
  if (path.length === 3 && path[0] === 'facilities' && path[2] === 'history') return ['size', 'ttl']
  return []
}

const pathText = (path: readonly PropertyKey[]): string => path.map(String).join('.')

/** One line per problem: the path of the value, then what is wrong with it. */
export function describeIssues(
  issues: readonly z.core.$ZodIssue[],
  base: PropertyKey[] = [],
): string[] {
  const lines: string[] = []
  for (const issue of issues) {
    const path = [...base, ...issue.path]
    if (issue.code === 'unrecognized_keys') {
      const known = knownKeys(path)
      for (const key of issue.keys) {
        const close = closestKey(key, known)
        const where = path.length === 0 ? '' : ` in ${pathText(path)}`
        lines.push(
          `unknown key "${key}"${where}${close === null ? '' : ` (did you mean ${close}?)`}`,
        )
      }
    } else if (issue.code === 'invalid_union') {
      // The branch the value was meant for is the one that got past the value's type: report its
      // problems (history.size), not the union's summary.
      const inner = issue.errors.find((branch) => branch.some((i) => i.path.length > 0))
      if (inner) lines.push(...describeIssues(inner, path))
      else lines.push(`${pathText(path)} ${issue.message}`)
    } else if (issue.code === 'invalid_key') {
      lines.push(
        `facilities: "${String(path.at(-1))}": ${issue.issues[0]?.message ?? issue.message}`,
      )
    } else {
      lines.push(
        path.length === 0 ? `the file ${issue.message}` : `${pathText(path)} ${issue.message}`,
      )
    }
  }
  return lines
}
