import { z } from 'zod'
import { ApiError } from './http.js'

const name = (what: string) =>
  z
    .string({ error: `must be a ${what} (a string)` })
    .min(1, { error: 'must not be empty' })
    .refine((v) => !v.includes(':'), { error: 'must not contain ":"' })

const names = (what: string) => z.array(name(what), { error: `must be a list of ${what}s` })

const closeCode = z
  .number({ error: 'must be a number' })
  .int({ error: 'must be an integer' })
  .refine((c) => c === 1000 || (c >= 3000 && c <= 4999), { error: 'must be 1000 or 3000–4999' })

/** `POST /api/publish`: ws4redis's publisher arguments, the message and its options. */
export const PublishBody = z.strictObject({
  facility: name('facility name'),
  broadcast: z.boolean({ error: 'must be true or false' }).optional(),
  users: names('user').optional(),
  groups: names('group').optional(),
  sessions: names('session key').optional(),
  /** A string is sent as it is; any other JSON value as its JSON text. */
  data: z.json({ error: 'must be a JSON value' }),
  /** `base64`: `data` is a base64 string of the message's bytes (sent as a binary frame). */
  encoding: z.enum(['utf8', 'base64'], { error: 'must be "utf8" or "base64"' }).optional(),
  expire: z
    .number({ error: 'must be a number of seconds' })
    .int({ error: 'must be a whole number of seconds' })
    .nonnegative({ error: 'must be >= 0' })
    .optional(),
})
export type PublishBody = z.infer<typeof PublishBody>

/** `POST /api/disconnect`: one user's connections (every process) or one connection. */
export const DisconnectBody = z.union(
  [
    z.strictObject({
      user: name('user'),
      code: closeCode.optional(),
      reason: z.string().max(123).optional(),
    }),
    z.strictObject({
      connection: z
        .string({ error: 'must be a connection id' })
        .min(1, { error: 'must not be empty' }),
      code: closeCode.optional(),
      reason: z.string().max(123).optional(),
    }),
  ],
  { error: 'give either "user" or "connection"' },
)
export type DisconnectBody = z.infer<typeof DisconnectBody>

/** Parses `value` with `schema`, or throws a 400 naming the first wrong field. */
export function parseBody<T>(schema: z.ZodType<T>, value: unknown): T {
  const result = schema.safeParse(value)
  if (result.success) return result.data
  const issue = pickIssue(result.error.issues)
  const path = issue.code === 'unrecognized_keys' ? [...issue.path, issue.keys[0]!] : issue.path
  const field = path.map(String).join('.')
  const message =
    issue.code === 'unrecognized_keys' ? 'is not a field of this request' : issue.message
  throw new ApiError(400, field === '' ? message : `${field} ${message}`, field || undefined)
}

/** An unknown key is the likeliest typo, so it is named first; then the first issue. */
function pickIssue(issues: z.core.$ZodIssue[]): z.core.$ZodIssue {
  const unknownKeys = issues.find((i) => i.code === 'unrecognized_keys')
  if (unknownKeys) return unknownKeys
  const union = issues.find((i) => i.code === 'invalid_union')
  if (union && union.code === 'invalid_union' && union.errors.length > 0) {
    // Report the branch that got furthest: the one with the fewest issues.
    const best = [...union.errors].sort((a, b) => a.length - b.length)[0]!
    if (best.length > 0 && best.every((i) => i.code !== 'invalid_type' || i.path.length > 0))
      return pickIssue(best)
  }
  return issues[0]!
}
