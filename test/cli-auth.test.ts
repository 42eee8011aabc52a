import assert from 'node:assert/strict'
import { after, afterEach, before, describe, it } from 'node:test'
import { RedisStore } from 'connect-redis'
import { exportJWK, generateKeyPair, type JWTPayload } from 'jose'
import { signSessionId, startSessionApp } from './helpers/app.js'
import { LISTENING } from './helpers/child.js'
import { type RedisServer, startRedis } from './helpers/redis.js'
import { Spawned } from './helpers/spawned.js'
import { serveJwks, signToken } from './helpers/token.js'
import { upgradeStatus } from './helpers/ws.js'

// The built CLI, as users run it (test/run.sh builds dist/ first).
const JWT_SECRET = 'jwt secret of the tests'
const SESSION_SECRET = 'session secret of the tests'

let redis: RedisServer
let publisher: Awaited<ReturnType<RedisServer['client']>>
const { cli, serve, client, end } = new Spawned()
const cleanups: (() => Promise<void>)[] = []

before(async () => {
  redis = await startRedis()
  publisher = await redis.client()
})
afterEach(async () => {
  await end()
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})
after(async () => {
  await publisher.close()
  await redis.stop()
})

/** An HS256 token for `sub`, valid for an hour. */
const hsToken = (sub: string, secret = JWT_SECRET, claims: JWTPayload = {}): Promise<string> =>
  signToken({ key: secret, sub, iat: true, exp: '1h', claims })

/**
 * Publishes to alice's user channel, the staff group and `session` on facility `foo`, then
 * `end` on its broadcast channel. One connection keeps the order, so a client that got none of
 * the first ones has exactly `['end']` once `end` arrived.
 */
async function publishAll(session = 'none'): Promise<void> {
  await publisher.publish('user:alice:foo', 'to alice')
  await publisher.publish('group:staff:foo', 'to staff')
  await publisher.publish(`session:${session}:foo`, 'to session')
  await publisher.publish('broadcast:foo', 'end')
}

const ALL = '/ws/foo?subscribe-user&subscribe-group&subscribe-session&subscribe-broadcast'

describe('wsfacility CLI: JWTs', () => {
  it('identifies clients by --jwt-secret tokens and refuses bad ones with 401', async () => {
    const { ws } = await serve(['--port', '0', '--redis', redis.url, '--jwt-secret', JWT_SECRET])
    const alice = await client(ws(`${ALL}&token=${await hsToken('alice')}`))
    const anonymous = await client(ws(ALL))
    await publishAll()
    await alice.waitFor(2)
    await anonymous.waitFor(1)
    assert.deepEqual(alice.texts, ['to alice', 'end'])
    assert.deepEqual(anonymous.texts, ['end'])

    const forged = await hsToken('alice', 'another secret')
    assert.equal((await upgradeStatus(ws(`/ws/foo?subscribe-user&token=${forged}`))).status, 401)
    const garbage = ws('/ws/foo?subscribe-user&token=not.a.jwt')
    assert.equal((await upgradeStatus(garbage)).status, 401)
  })

  it('requires the iss and aud given with --jwt-issuer and --jwt-audience', async () => {
    const { ws } = await serve([
      '--port',
      '0',
      '--redis',
      redis.url,
      '--jwt-secret',
      JWT_SECRET,
      '--jwt-issuer',
      'https://auth.test',
      '--jwt-audience',
      'ws',
    ])
    const url = (token: string): string => ws(`/ws/foo?subscribe-user&token=${token}`)
    const right = { iss: 'https://auth.test', aud: 'ws' }
    const c = await client(url(await hsToken('alice', JWT_SECRET, right)))
    await publisher.publish('user:alice:foo', 'to alice')
    await c.waitFor(1)
    assert.deepEqual(c.texts, ['to alice'])

    for (const claims of [
      { iss: 'https://evil.test', aud: 'ws' },
      { iss: 'https://auth.test', aud: 'other' },
      { aud: 'ws' },
      { iss: 'https://auth.test' },
    ]) {
      const refused = await upgradeStatus(url(await hsToken('alice', JWT_SECRET, claims)))
      assert.equal(refused.status, 401, JSON.stringify(claims))
    }
  })

  it('verifies tokens with the keys of --jwks-url', async () => {
    const { publicKey, privateKey } = await generateKeyPair('RS256')
    const jwk = { ...(await exportJWK(publicKey)), kid: 'key-1', alg: 'RS256', use: 'sig' }
    const jwks = await serveJwks([jwk])
    cleanups.push(() => jwks.close())
    const { ws } = await serve(['--port', '0', '--redis', redis.url, '--jwks-url', jwks.url])
    const rsToken = (key: typeof privateKey): Promise<string> =>
      signToken({
        key,
        alg: 'RS256',
        kid: 'key-1',
        sub: 'alice',
        exp: '1h',
        claims: { groups: ['staff'] },
      })
    const c = await client(ws(`${ALL}&token=${await rsToken(privateKey)}`))
    await publishAll()
    await c.waitFor(3)
    assert.deepEqual(c.texts, ['to alice', 'to staff', 'end'])

    const other = await generateKeyPair('RS256')
    const wrongKey = ws(`/ws/foo?subscribe-user&token=${await rsToken(other.privateKey)}`)
    assert.equal((await upgradeStatus(wrongKey)).status, 401)
    // A JWKS server never makes an HMAC secret out of a public key.
    const hmac = ws(`/ws/foo?subscribe-user&token=${await hsToken('alice')}`)
    assert.equal((await upgradeStatus(hmac)).status, 401)
  })

  it('reads the JWT settings and WSFACILITY_REQUIRE_AUTH from the environment', async () => {
    const { ws } = await serve([], {
      PORT: '0',
      REDIS_URL: redis.url,
      WSFACILITY_JWT_SECRET: JWT_SECRET,
      WSFACILITY_JWT_ISSUER: 'https://auth.test',
      WSFACILITY_JWT_AUDIENCE: 'ws',
      WSFACILITY_REQUIRE_AUTH: 'true',
    })
    const claims = { iss: 'https://auth.test', aud: 'ws' }
    const c = await client(ws(`${ALL}&token=${await hsToken('alice', JWT_SECRET, claims)}`))
    await publishAll()
    await c.waitFor(2)
    assert.deepEqual(c.texts, ['to alice', 'end'])
    assert.equal((await upgradeStatus(ws(ALL))).status, 401)
    const wrongIssuer = await hsToken('alice', JWT_SECRET, { ...claims, iss: 'https://x.test' })
    assert.equal((await upgradeStatus(ws(`${ALL}&token=${wrongIssuer}`))).status, 401)
  })

  it('lets --jwt-secret win over WSFACILITY_JWT_SECRET', async () => {
    const { ws } = await serve(['--port', '0', '--jwt-secret', JWT_SECRET], {
      WSFACILITY_JWT_SECRET: 'secret from the environment',
    })
    await client(ws(`/ws/foo?subscribe-user&token=${await hsToken('alice')}`))
    const fromEnv = await hsToken('alice', 'secret from the environment')
    assert.equal((await upgradeStatus(ws(`/ws/foo?subscribe-user&token=${fromEnv}`))).status, 401)
  })
})

/**
 * An Express app with express-session on connect-redis in the test Redis. `login(user)` logs
 * `user` in (groups: staff) and resolves to the `name=value` cookie it set and the session id.
 */
async function startApp(session: { secret: string | string[]; prefix?: string; name?: string }) {
  const redisClient = await redis.client()
  cleanups.push(() => redisClient.close())
  const store = new RedisStore({
    client: redisClient,
    ...(session.prefix === undefined ? {} : { prefix: session.prefix }),
  })
  const app = await startSessionApp({
    session: { store, secret: session.secret, name: session.name },
  })
  cleanups.push(() => app.close())
  return {
    async login(user: string): Promise<{ cookie: string; id: string }> {
      const { cookie, sid } = await app.login(user, ['staff'])
      return { cookie, id: sid }
    },
  }
}

describe('wsfacility CLI: express-session cookies', () => {
  it('identifies clients by the sessions an Express app stored with connect-redis', async () => {
    const app = await startApp({ secret: SESSION_SECRET })
    const { cookie, id } = await app.login('alice')
    assert.match(cookie, /^connect\.sid=/)
    assert.ok(await publisher.exists(`sess:${id}`))
    const { ws } = await serve([
      '--port',
      '0',
      '--redis',
      redis.url,
      '--session-secret',
      SESSION_SECRET,
    ])
    const alice = await client(ws(ALL), { cookie })
    await publishAll(id)
    await alice.waitFor(4)
    assert.deepEqual(alice.texts, ['to alice', 'to staff', 'to session', 'end'])
  })

  it('treats a cookie with a forged signature as anonymous', async () => {
    const app = await startApp({ secret: SESSION_SECRET })
    const { id } = await app.login('alice')
    const { ws } = await serve([
      '--port',
      '0',
      '--redis',
      redis.url,
      '--session-secret',
      SESSION_SECRET,
    ])
    const forged = `connect.sid=${encodeURIComponent(signSessionId(id, 'a guessed secret'))}`
    const c = await client(ws(ALL), { cookie: forged })
    await publishAll(id)
    await c.waitFor(1)
    assert.deepEqual(c.texts, ['end'])
  })

  it('refuses clients without a session user with 401 under --require-auth', async () => {
    const app = await startApp({ secret: SESSION_SECRET })
    const { cookie, id } = await app.login('alice')
    const { ws } = await serve([
      '--port',
      '0',
      '--redis',
      redis.url,
      '--session-secret',
      SESSION_SECRET,
      '--require-auth',
    ])
    const forged = `connect.sid=${encodeURIComponent(signSessionId(id, 'a guessed secret'))}`
    assert.equal((await upgradeStatus(ws(ALL), { cookie: forged })).status, 401)
    assert.equal((await upgradeStatus(ws(ALL))).status, 401)
    const alice = await client(ws(ALL), { cookie })
    await publishAll(id)
    await alice.waitFor(4)
    assert.deepEqual(alice.texts, ['to alice', 'to staff', 'to session', 'end'])
  })

  it('reads sessions of an app with its own --session-prefix and --session-cookie', async () => {
    const app = await startApp({ secret: SESSION_SECRET, prefix: 'myapp:', name: 'sid' })
    const { cookie, id } = await app.login('alice')
    assert.match(cookie, /^sid=/)
    assert.ok(await publisher.exists(`myapp:${id}`))
    const { ws } = await serve([
      '--port',
      '0',
      '--redis',
      redis.url,
      '--session-secret',
      SESSION_SECRET,
      '--session-prefix',
      'myapp:',
      '--session-cookie',
      'sid',
    ])
    const alice = await client(ws(ALL), { cookie })
    await publishAll(id)
    await alice.waitFor(4)
    assert.deepEqual(alice.texts, ['to alice', 'to staff', 'to session', 'end'])
  })

  it('reads the session settings from the environment, with rotated secrets', async () => {
    // The app still signs with the old secret; the server already knows the new one too.
    const app = await startApp({ secret: 'old secret', prefix: 'env:', name: 'env.sid' })
    const { cookie, id } = await app.login('alice')
    const { ws } = await serve([], {
      PORT: '0',
      REDIS_URL: redis.url,
      WSFACILITY_SESSION_SECRET: 'new secret,old secret',
      WSFACILITY_SESSION_PREFIX: 'env:',
      WSFACILITY_SESSION_COOKIE: 'env.sid',
      WSFACILITY_REQUIRE_AUTH: '1',
    })
    const alice = await client(ws(ALL), { cookie })
    await publishAll(id)
    await alice.waitFor(4)
    assert.deepEqual(alice.texts, ['to alice', 'to staff', 'to session', 'end'])
    assert.equal((await upgradeStatus(ws(ALL))).status, 401)
  })

  it('exits 0 on SIGTERM with its sessions connection open', async () => {
    const { child } = await serve([
      '--port',
      '0',
      '--redis',
      redis.url,
      '--session-secret',
      SESSION_SECRET,
    ])
    const { code, signal } = await child.signal('SIGTERM')
    assert.deepEqual({ code, signal }, { code: 0, signal: null })
  })
})

describe('wsfacility CLI: identity usage errors', () => {
  // `names` must appear in the message: node's "Unknown option" for a flag the CLI does not
  // know would fail the test, as would an error about something else.
  const bad: { name: string; args: string[]; env?: Record<string, string>; names: RegExp }[] = [
    {
      name: '--jwt-secret with --jwks-url',
      args: ['--jwt-secret', 's', '--jwks-url', 'https://auth.test/jwks.json'],
      names: /--jwt-secret.*--jwks-url/,
    },
    {
      name: 'WSFACILITY_JWT_SECRET with WSFACILITY_JWKS_URL',
      args: [],
      env: { WSFACILITY_JWT_SECRET: 's', WSFACILITY_JWKS_URL: 'https://auth.test/jwks.json' },
      names: /WSFACILITY_JWT_SECRET.*WSFACILITY_JWKS_URL/,
    },
    {
      name: '--jwt-issuer without a key',
      args: ['--jwt-issuer', 'https://auth.test'],
      names: /--jwt-issuer.*--jwt-secret/,
    },
    {
      name: '--jwt-audience without a key',
      args: ['--jwt-audience', 'ws'],
      names: /--jwt-audience.*--jwt-secret/,
    },
    {
      name: 'WSFACILITY_JWT_ISSUER without a key',
      args: [],
      env: { WSFACILITY_JWT_ISSUER: 'https://auth.test' },
      names: /WSFACILITY_JWT_ISSUER/,
    },
    {
      name: 'a --jwks-url of another scheme',
      args: ['--jwks-url', 'ftp://auth.test/jwks.json'],
      names: /--jwks-url.*http/,
    },
    { name: 'a --jwks-url that is no URL', args: ['--jwks-url', 'jwks.json'], names: /--jwks-url/ },
    { name: 'an empty --jwt-secret', args: ['--jwt-secret='], names: /--jwt-secret/ },
    {
      name: '--session-secret without --redis',
      args: ['--session-secret', 's'],
      names: /--session-secret.*--redis/,
    },
    {
      name: 'WSFACILITY_SESSION_SECRET without Redis',
      args: [],
      env: { WSFACILITY_SESSION_SECRET: 's' },
      names: /WSFACILITY_SESSION_SECRET.*--redis/,
    },
    {
      name: '--session-cookie without a secret',
      args: ['--redis', 'redis://127.0.0.1:6379', '--session-cookie', 'sid'],
      names: /--session-cookie.*--session-secret/,
    },
    {
      name: '--session-prefix without a secret',
      args: ['--redis', 'redis://127.0.0.1:6379', '--session-prefix', 'myapp:'],
      names: /--session-prefix.*--session-secret/,
    },
    {
      name: 'WSFACILITY_SESSION_COOKIE without a secret',
      args: ['--redis', 'redis://127.0.0.1:6379'],
      env: { WSFACILITY_SESSION_COOKIE: 'sid' },
      names: /WSFACILITY_SESSION_COOKIE/,
    },
    {
      name: 'an empty secret in the --session-secret list',
      args: ['--redis', 'redis://127.0.0.1:6379', '--session-secret', 'new,,old'],
      names: /--session-secret/,
    },
    {
      name: 'a --session-cookie that is no cookie name',
      args: ['--redis', 'redis://127.0.0.1:6379', '--session-secret', 's', '--session-cookie=a b'],
      names: /--session-cookie/,
    },
    {
      name: '--require-auth without a JWT or session option',
      args: ['--require-auth'],
      names: /--require-auth/,
    },
    {
      name: 'a WSFACILITY_REQUIRE_AUTH that is no boolean',
      args: ['--jwt-secret', 's'],
      env: { WSFACILITY_REQUIRE_AUTH: 'maybe' },
      names: /WSFACILITY_REQUIRE_AUTH/,
    },
  ]
  for (const { name, args, env, names } of bad) {
    it(`exits 2 with the reason and a pointer to --help on stderr for ${name}`, async () => {
      // --port 0 keeps a CLI that wrongly accepted the line off port 8000.
      const child = cli(['--port', '0', ...args], env)
      const outcome = await Promise.race([
        child.exited,
        child.waitForOutput(LISTENING).then(() => 'listening' as const),
      ])
      assert.deepEqual(outcome, { code: 2, signal: null })
      const [first = ''] = child.stderr.split('\n', 1)
      assert.match(first, /^wsfacility: /)
      assert.doesNotMatch(first, /unknown option/i)
      assert.match(first, names)
      assert.equal(child.stderr, `${first}\nRun 'wsfacility --help' for the options.\n`)
      assert.equal(child.stdout, '')
    })
  }
})
