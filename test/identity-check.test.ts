import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import type { IncomingMessage } from 'node:http'
import { after, before, describe, it } from 'node:test'
import { RedisStore } from 'connect-redis'
import type { SessionData } from 'express-session'
import { type JWTPayload, SignJWT } from 'jose'
import { anonymous, HttpError, type Identity } from '../src/index.js'
import { checkIdentity } from '../src/identity/identity-check.js'
import { signSessionId } from './helpers/app.js'
import { type RedisServer, startRedis, type TestRedisClient } from './helpers/redis.js'
import { connect, startBroker, type TestServer, upgradeStatus } from './helpers/ws.js'

const SECRET = 'a-long-enough-hmac-secret-for-wsfacility-tests-0123456789'
const SESSION_SECRET = 'the session secret of the identity-check tests'
const ALL = 'subscribe-user&subscribe-group&subscribe-session'
/** A valid id with a character outside the BMP (a surrogate pair): accepted as before. */
const ASTRAL = 'ann\u{1F600}'

/** An HS256 token with `sub` and more claims. */
function mint(sub: string, claims: JWTPayload = {}): Promise<string> {
  return new SignJWT(claims)
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(sub)
    .setExpirationTime('10m')
    .sign(new TextEncoder().encode(SECRET))
}

/** Asserts that an upgrade is refused with 401 and the invalid-identity reason. */
async function assertInvalidIdentity(url: string, headers: Record<string, string> = {}) {
  const { status, body } = await upgradeStatus(url, headers)
  assert.equal(status, 401, body)
  assert.match(body, /identity contains an invalid string/)
}

describe('checkIdentity', () => {
  const identity = (over: Partial<Identity>): Identity => ({ ...anonymous(), ...over })
  const refused = (value: Identity) =>
    assert.throws(
      () => checkIdentity(value),
      (err) =>
        err instanceof HttpError && err.status === 401 && err.code === 'WSF_IDENTITY_INVALID',
    )

  it('refuses a lone surrogate in the user, a group or the session key', () => {
    for (const lone of ['\uD800', '\uDFFF', 'x\uD800', '\uDC00\uD800']) {
      refused(identity({ user: lone }))
      refused(identity({ user: 'ann', groups: ['staff', lone] }))
      refused(identity({ sessionKey: lone }))
    }
  })

  it('returns a well-formed identity unchanged', () => {
    const value = identity({ user: ASTRAL, groups: ['staff', 'a:b'], sessionKey: 's 1' })
    assert.equal(checkIdentity(value), value)
    assert.deepEqual(checkIdentity(anonymous()), anonymous())
  })
})

describe('Upgrades whose identity contains a lone surrogate', () => {
  let redis: RedisServer
  let client: TestRedisClient
  let store: RedisStore
  const servers: TestServer[] = []
  before(async () => {
    redis = await startRedis()
    client = await redis.client()
    store = new RedisStore({ client, prefix: 'sess:' })
  })
  after(async () => {
    for (const t of servers) await t.close()
    await client.close()
    await redis.stop()
  })
  const broker = async (options: Parameters<typeof startBroker>[0]) => {
    const t = await startBroker({ redis: redis.url, ...options })
    servers.push(t)
    return t
  }

  it('are refused with 401 for a signed JWT whose sub, group or sid has one', async () => {
    const t = await broker({ jwt: { secret: SECRET } })
    const url = (token: string) => t.url(`/ws/chat?${ALL}&token=${token}`)
    await assertInvalidIdentity(url(await mint('\uD800x')))
    await assertInvalidIdentity(url(await mint('ann', { groups: ['staff', '\uDC00'] })))
    await assertInvalidIdentity(url(await mint('ann', { sid: 'x\uD800' })))
    // Wherever the token travels; and also when no user channel is subscribed.
    await assertInvalidIdentity(t.url('/ws/chat?subscribe-broadcast'), {
      Authorization: `Bearer ${await mint('\uD800x')}`,
    })
    const ok = await connect(url(await mint(ASTRAL, { groups: ['staff'] })))
    await ok.close()
  })

  it('are refused with 401 when an identify hook returns one', async () => {
    const from = (req: IncomingMessage) => new URL(req.url ?? '/', 'http://x').searchParams
    const t = await broker({
      identify: (req) => ({
        user: from(req).get('user') === 'lone' ? '\uD800' : ASTRAL,
        groups: from(req).get('group') === 'lone' ? ['\uDBFF'] : [],
      }),
    })
    await assertInvalidIdentity(t.url(`/ws/chat?${ALL}&user=lone`))
    await assertInvalidIdentity(t.url(`/ws/chat?subscribe-broadcast&group=lone`))
    const ok = await connect(t.url(`/ws/chat?${ALL}`))
    await ok.close()
  })

  it('are refused with 401 for an express-session session whose user or groups have one', async () => {
    const save = async (data: Record<string, unknown>): Promise<string> => {
      const sid = randomBytes(12).toString('hex')
      const session = { cookie: { originalMaxAge: 60_000 }, ...data } as unknown as SessionData
      await new Promise<void>((resolve, reject) =>
        store.set(sid, session, (err) => (err ? reject(err as Error) : resolve())),
      )
      return `connect.sid=${encodeURIComponent(signSessionId(sid, SESSION_SECRET))}`
    }
    const t = await broker({ session: { store, secret: SESSION_SECRET } })
    const url = t.url(`/ws/chat?${ALL}`)
    await assertInvalidIdentity(url, { cookie: await save({ user: { username: '\uD800x' } }) })
    await assertInvalidIdentity(url, {
      cookie: await save({ user: { username: 'ann', groups: ['\uDFFF'] } }),
    })
    await assertInvalidIdentity(url, { cookie: await save({ passport: { user: 'x\uDC00' } }) })
    const ok = await connect(url, {
      headers: { cookie: await save({ user: { username: ASTRAL, groups: ['staff'] } }) },
    })
    await ok.close()

    // The same through the session's own identity mapping.
    const mapped = await broker({
      session: {
        store,
        secret: SESSION_SECRET,
        identity: (session) => ({ user: 'ann', groups: [String(session.team)] }),
      },
    })
    await assertInvalidIdentity(mapped.url(`/ws/chat?${ALL}`), {
      cookie: await save({ team: '\uD800' }),
    })
  })
})
