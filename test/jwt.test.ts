import assert from 'node:assert/strict'
import { generateKeyPairSync, type KeyObject } from 'node:crypto'
import { once } from 'node:events'
import type { IncomingMessage } from 'node:http'
import { after, before, describe, it } from 'node:test'
import type { JWK, JWTPayload } from 'jose'
import WebSocket from 'ws'
import {
  type Broker,
  CloseCode,
  createBroker,
  type JwtOptions,
  RedisPublisher,
  SELF,
  TokenError,
} from '../src/index.js'
import { JwtVerifier } from '../src/identity/jwt.js'
import { type RedisServer, startRedis } from './helpers/redis.js'
import { type JwksServer, nowSec, serveJwks, signToken } from './helpers/token.js'
import {
  connect,
  eventually,
  sleep,
  startBroker,
  type TestClient,
  type TestServer,
  upgradeStatus,
  connectionOf,
  fresh,
} from './helpers/ws.js'

const SECRET = 'a-long-enough-hmac-secret-for-wsfacility-tests-0123456789'
const SECRET_BYTES = new TextEncoder().encode(SECRET)
const OTHER_SECRET = new TextEncoder().encode(
  'another-secret-that-the-broker-does-not-know-0123456',
)

const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 })
const otherRsa = generateKeyPairSync('rsa', { modulusLength: 2048 })
const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' })
const otherEc = generateKeyPairSync('ec', { namedCurve: 'P-256' })
const pem = (key: KeyObject): string => key.export({ type: 'spki', format: 'pem' }).toString()
const RSA_PEM = pem(rsa.publicKey)
const EC_PEM = pem(ec.publicKey)

interface Mint {
  /** Signing key. @default the HMAC secret */
  key?: KeyObject | Uint8Array
  /** @default 'HS256' */
  alg?: string
  kid?: string
  /** `sub`; null leaves it out. @default 'alice' */
  sub?: string | null
  /** `exp` in seconds since the epoch; null leaves it out. @default now + 10 min */
  exp?: number | null
  nbf?: number
  iss?: string
  aud?: string
  /** More claims. @default groups ['staff', 'ops'], sid 'sess-1' */
  claims?: JWTPayload
}

/** Signs a token with jose. */
function mint(o: Mint = {}): Promise<string> {
  const exp = o.exp === undefined ? nowSec() + 600 : o.exp
  return signToken({
    key: o.key ?? SECRET_BYTES,
    alg: o.alg,
    kid: o.kid || undefined,
    sub: o.sub === null ? undefined : (o.sub ?? 'alice'),
    exp: exp ?? undefined,
    nbf: o.nbf,
    iss: o.iss,
    aud: o.aud,
    claims: { groups: ['staff', 'ops'], sid: 'sess-1', ...o.claims },
  })
}

const b64url = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url')

/** An unsigned token (`alg: none`), crafted by hand: jose refuses to make one. */
function unsignedToken(): string {
  const payload = { sub: 'alice', exp: nowSec() + 600, groups: ['staff'] }
  return `${b64url({ alg: 'none', typ: 'JWT' })}.${b64url(payload)}.`
}

/** `/ws/<facility>?<flags>&token=<token>`. */
const withToken = (facility: string, flags: string, token: string): string =>
  `/ws/${facility}?${flags}&token=${encodeURIComponent(token)}`

/** Publishes to `user` on `facility` from server code. */
function publishTo(broker: Broker, facility: string, user: string, message: string) {
  return new RedisPublisher({ facility, users: [user] }, { broker }).publishMessage(message)
}

/** Rejects when `promise` has not settled within `ms` (so a missing close fails, not hangs). */
async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what}: nothing within ${ms} ms`)), ms)
      }),
    ])
  } finally {
    clearTimeout(timer)
  }
}

/** Asserts that an upgrade to `url` is refused with 401 and a reason in the body. */
async function assertRefused(url: string, headers: Record<string, string> = {}): Promise<void> {
  const { status, body } = await upgradeStatus(url, headers)
  assert.equal(status, 401, `expected 401, got ${status} (${body.trim()})`)
  assert.ok(body.trim().length > 0, 'the 401 carries a reason')
}

/**
 * Asserts that `token` opens a `subscribe-user` connection as `user` that receives what is
 * published to that user (and not what is published to someone else).
 */
async function assertAccepted(t: TestServer, token: string, user = 'alice'): Promise<void> {
  const f = fresh('ok')
  const c = await connect(t.url(withToken(f, 'subscribe-user', token)))
  assert.equal(connectionOf(t.broker, f).identity.user, user)
  await publishTo(t.broker, f, `not-${user}`, 'for someone else')
  await publishTo(t.broker, f, user, `for ${user}`)
  await c.waitFor(1)
  assert.deepEqual(c.texts, [`for ${user}`])
  assert.equal(c.ws.readyState, WebSocket.OPEN)
  await c.close()
}

/** Opens a raw client offering `protocols` (how browsers send a token). */
async function connectWithProtocols(url: string, protocols: string[]): Promise<WebSocket> {
  const ws = new WebSocket(url, protocols)
  ws.on('error', () => {})
  await once(ws, 'open')
  return ws
}

describe('JWT verification at the upgrade', () => {
  let hs: TestServer
  let rs: TestServer
  let rs256Only: TestServer
  let claims: TestServer
  before(async () => {
    hs = await startBroker({ jwt: { secret: SECRET } })
    rs = await startBroker({ jwt: { publicKey: RSA_PEM } })
    rs256Only = await startBroker({ jwt: { publicKey: RSA_PEM, algorithms: ['RS256'] } })
    claims = await startBroker({
      jwt: { secret: SECRET, issuer: 'https://issuer.test', audience: 'wsfacility-tests' },
    })
  })
  after(async () => {
    await Promise.all([hs.close(), rs.close(), rs256Only.close(), claims.close()])
  })

  it('accepts a valid HS256 token: sub → user channel, groups → groups, sid → session key', async () => {
    const f = fresh('hs')
    const token = await mint({ claims: { groups: ['staff', 'ops'], sid: 'sess-42' } })
    const c = await connect(hs.url(withToken(f, 'subscribe-user&subscribe-group', token)))
    const conn = connectionOf(hs.broker, f)
    assert.deepEqual(conn.identity, {
      user: 'alice',
      groups: ['staff', 'ops'],
      sessionKey: 'sess-42',
    })
    assert.equal(conn.expiresAt !== null, true)
    await publishTo(hs.broker, f, 'bob', 'for bob')
    await publishTo(hs.broker, f, 'alice', 'for alice')
    await new RedisPublisher(
      { facility: f, groups: ['ops'] },
      { broker: hs.broker },
    ).publishMessage('for ops')
    await c.waitFor(2)
    await sleep(50)
    assert.deepEqual(c.texts, ['for alice', 'for ops'])
    await c.close()
  })

  it('refuses an expired token with 401', async () => {
    await assertRefused(
      hs.url(withToken(fresh('exp'), 'subscribe-user', await mint({ exp: nowSec() - 60 }))),
    )
  })

  it('refuses a token whose nbf is a minute in the future with 401', async () => {
    await assertRefused(
      hs.url(withToken(fresh('nbf'), 'subscribe-user', await mint({ nbf: nowSec() + 60 }))),
    )
  })

  it('accepts exp just past and nbf just ahead within clockTolerance, and keeps the connection usable', async () => {
    await assertAccepted(hs, await mint({ exp: nowSec() - 1 }))
    await assertAccepted(hs, await mint({ nbf: nowSec() + 2 }))
  })

  it('refuses a token signed with another secret with 401', async () => {
    await assertRefused(
      hs.url(withToken(fresh('key'), 'subscribe-user', await mint({ key: OTHER_SECRET }))),
    )
  })

  it('refuses alg none with 401, whatever key the broker has', async () => {
    for (const t of [hs, rs]) {
      await assertRefused(t.url(withToken(fresh('none'), 'subscribe-user', unsignedToken())))
    }
  })

  it('refuses HS256 signed with the RSA public key PEM as HMAC secret (key confusion) with 401', async () => {
    // The same broker accepts a genuine RS256 token.
    await assertAccepted(rs, await mint({ alg: 'RS256', key: rsa.privateKey }))
    const forged = await mint({ alg: 'HS256', key: new TextEncoder().encode(RSA_PEM) })
    await assertRefused(rs.url(withToken(fresh('confused'), 'subscribe-user', forged)))
  })

  it('refuses an RS256 token when the broker only has an HMAC secret with 401', async () => {
    const token = await mint({ alg: 'RS256', key: rsa.privateKey })
    await assertRefused(hs.url(withToken(fresh('rs-on-hs'), 'subscribe-user', token)))
  })

  it('refuses an algorithm outside the allow-list with 401, even with the right key', async () => {
    const rs512 = await mint({ alg: 'RS512', key: rsa.privateKey })
    // Without an allow-list the key type admits RS512; with ['RS256'] it is refused.
    await assertAccepted(rs, rs512)
    await assertAccepted(rs256Only, await mint({ alg: 'RS256', key: rsa.privateKey }))
    await assertRefused(rs256Only.url(withToken(fresh('rs512'), 'subscribe-user', rs512)))
  })

  it('checks iss and aud: wrong or missing ones get 401, the right ones connect', async () => {
    const iss = 'https://issuer.test'
    const aud = 'wsfacility-tests'
    await assertAccepted(claims, await mint({ iss, aud }))
    for (const token of [
      await mint({ iss, aud: 'someone-else' }),
      await mint({ iss: 'https://evil.test', aud }),
      await mint({ aud }),
      await mint({ iss }),
    ]) {
      await assertRefused(claims.url(withToken(fresh('claims'), 'subscribe-user', token)))
    }
  })

  it('refuses garbage tokens with 401 instead of connecting anonymously', async () => {
    const long = (n: number): string => `${'a'.repeat(n)}.${'b'.repeat(n)}.${'c'.repeat(n)}`
    // The query stays under the 4096-character URL limit (beyond it the answer is 414).
    for (const garbage of ['garbage', 'a.b.c', '', long(1200)]) {
      await assertRefused(hs.url(withToken(fresh('garbage'), 'subscribe-user', garbage)))
    }
    for (const garbage of ['garbage', 'a.b.c', '', long(3000)]) {
      await assertRefused(hs.url(`/ws/${fresh('garbage')}?subscribe-user`), {
        Authorization: `Bearer ${garbage}`,
      })
    }
  })

  it('refuses a token without sub with 401', async () => {
    await assertRefused(
      hs.url(withToken(fresh('nosub'), 'subscribe-user', await mint({ sub: null }))),
    )
    await assertRefused(
      hs.url(withToken(fresh('nosub'), 'subscribe-user', await mint({ sub: '' }))),
    )
  })
})

describe('JwtVerifier', () => {
  it('rejects with a TokenError (401) coded WSF_TOKEN_EXPIRED or WSF_TOKEN_INVALID', async () => {
    const verifier = new JwtVerifier({ secret: SECRET, clockTolerance: 0 })
    const exp = nowSec() + 60
    const ok = await verifier.verify(await mint({ exp }))
    assert.deepEqual(ok.identity, { user: 'alice', groups: ['staff', 'ops'], sessionKey: 'sess-1' })
    assert.equal(ok.expiresAt, exp * 1000)
    // With a tolerance, a token is good (and a connection lives) until exp + tolerance.
    const tolerant = new JwtVerifier({ secret: SECRET, clockTolerance: 5 })
    assert.equal((await tolerant.verify(await mint({ exp }))).expiresAt, (exp + 5) * 1000)
    const expired = await mint({ exp: nowSec() - 60 })
    await assert.rejects(
      async () => verifier.verify(expired),
      (err) => err instanceof TokenError && err.code === 'WSF_TOKEN_EXPIRED' && err.status === 401,
    )
    for (const bad of ['garbage', await mint({ key: OTHER_SECRET }), unsignedToken()]) {
      await assert.rejects(
        async () => verifier.verify(bad),
        (err) =>
          err instanceof TokenError && err.code === 'WSF_TOKEN_INVALID' && err.status === 401,
      )
    }
  })
})

describe('Token sources', () => {
  let t: TestServer
  let strict: TestServer
  before(async () => {
    t = await startBroker({ jwt: { secret: SECRET } })
    strict = await startBroker({ jwt: { secret: SECRET }, anonymous: false })
  })
  after(async () => {
    await Promise.all([t.close(), strict.close()])
  })

  it('reads the token from ?token=', async () => {
    await assertAccepted(t, await mint({ sub: 'query-user' }), 'query-user')
  })

  it('reads the token from Authorization: Bearer', async () => {
    const f = fresh('header')
    const token = await mint({ sub: 'header-user' })
    const c = await connect(t.url(`/ws/${f}?subscribe-user`), {
      headers: { Authorization: `Bearer ${token}` },
    })
    assert.equal(connectionOf(t.broker, f).identity.user, 'header-user')
    await publishTo(t.broker, f, 'header-user', 'via header')
    await c.waitFor(1)
    assert.deepEqual(c.texts, ['via header'])
    await c.close()
    await assertRefused(t.url(`/ws/${fresh('header')}?subscribe-user`), {
      Authorization: `Bearer ${await mint({ key: OTHER_SECRET })}`,
    })
  })

  it('reads the token from the subprotocol bearer.<jwt> and answers with the wsfacility subprotocol', async () => {
    const token = await mint({ sub: 'proto-user' })
    // Whatever the order, the answer is `wsfacility`: the token is never echoed back.
    for (const protocols of [
      ['wsfacility', `bearer.${token}`],
      [`bearer.${token}`, 'wsfacility'],
    ]) {
      const f = fresh('proto')
      const ws = await connectWithProtocols(t.url(`/ws/${f}?subscribe-user`), protocols)
      assert.equal(ws.protocol, 'wsfacility')
      assert.equal(connectionOf(t.broker, f).identity.user, 'proto-user')
      const got = once(ws, 'message') as Promise<[Buffer, boolean]>
      await publishTo(t.broker, f, 'proto-user', 'via subprotocol')
      const [data] = await within(got, 5000, 'message over the subprotocol connection')
      assert.equal(data.toString(), 'via subprotocol')
      const closed = once(ws, 'close')
      ws.close()
      await closed
    }
    const bad = `bearer.${await mint({ key: OTHER_SECRET })}`
    await assertRefused(t.url(`/ws/${fresh('proto')}?subscribe-user`), {
      'Sec-WebSocket-Protocol': bad,
    })
    // Beside `wsfacility` the refusal is told by a close a browser can read (refusals: 'auto').
    const refused = new WebSocket(t.url(`/ws/${fresh('proto')}?subscribe-user`), [
      'wsfacility',
      bad,
    ])
    refused.on('error', () => {})
    const [code] = (await once(refused, 'close')) as [number, Buffer]
    assert.equal(code, CloseCode.REFUSED_UNAUTHORIZED)
  })

  it('with anonymous: false refuses a request without a token with 401 and accepts one with a token', async () => {
    await assertRefused(strict.url(`/ws/${fresh('strict')}?subscribe-user`))
    await assertAccepted(strict, await mint())
  })

  it('with anonymous: true connects a request without a token anonymously, without a user channel', async () => {
    const f = fresh('anon')
    const c = await connect(t.url(`/ws/${f}?subscribe-user`))
    const conn = connectionOf(t.broker, f)
    assert.deepEqual(conn.identity, { user: null, groups: [], sessionKey: null })
    assert.deepEqual(conn.channels.subscribe, [])
    assert.equal(conn.expiresAt, null)
    await c.close()
  })
})

describe('Key forms', () => {
  const servers: TestServer[] = []
  let jwks: JwksServer
  before(async () => {
    const jwk = {
      ...rsa.publicKey.export({ format: 'jwk' }),
      kid: 'key-1',
      alg: 'RS256',
      use: 'sig',
    }
    jwks = await serveJwks([jwk as JWK])
  })
  after(async () => {
    await Promise.all(servers.map((s) => s.close()))
    await jwks.close()
  })
  const start = async (jwt: JwtOptions): Promise<TestServer> => {
    const s = await startBroker({ jwt })
    servers.push(s)
    return s
  }

  it('verifies RS256 with a PEM public key', async () => {
    const t = await start({ publicKey: RSA_PEM })
    await assertAccepted(t, await mint({ alg: 'RS256', key: rsa.privateKey }))
    const other = await mint({ alg: 'RS256', key: otherRsa.privateKey })
    await assertRefused(t.url(withToken(fresh('pem'), 'subscribe-user', other)))
  })

  it('verifies ES256 with a PEM public key', async () => {
    const t = await start({ publicKey: EC_PEM })
    await assertAccepted(t, await mint({ alg: 'ES256', key: ec.privateKey }))
    const other = await mint({ alg: 'ES256', key: otherEc.privateKey })
    await assertRefused(t.url(withToken(fresh('ec'), 'subscribe-user', other)))
  })

  it('verifies with a JWK object', async () => {
    const t = await start({ publicKey: rsa.publicKey.export({ format: 'jwk' }) })
    await assertAccepted(t, await mint({ alg: 'RS256', key: rsa.privateKey }))
    const other = await mint({ alg: 'RS256', key: otherRsa.privateKey })
    await assertRefused(t.url(withToken(fresh('jwk'), 'subscribe-user', other)))
  })

  it('verifies with a KeyObject', async () => {
    const t = await start({ publicKey: ec.publicKey })
    await assertAccepted(t, await mint({ alg: 'ES256', key: ec.privateKey }))
    const other = await mint({ alg: 'ES256', key: otherEc.privateKey })
    await assertRefused(t.url(withToken(fresh('keyobject'), 'subscribe-user', other)))
  })

  it('verifies with a JWKS URL: a matching kid connects, an unknown kid or another key gets 401', async () => {
    const t = await start({ jwksUrl: jwks.url })
    await assertAccepted(t, await mint({ alg: 'RS256', key: rsa.privateKey, kid: 'key-1' }))
    assert.ok(jwks.requests > 0, 'the JWKS document was fetched')
    const unknownKid = await mint({ alg: 'RS256', key: rsa.privateKey, kid: 'key-2' })
    await assertRefused(t.url(withToken(fresh('jwks'), 'subscribe-user', unknownKid)))
    const wrongKey = await mint({ alg: 'RS256', key: otherRsa.privateKey, kid: 'key-1' })
    await assertRefused(t.url(withToken(fresh('jwks'), 'subscribe-user', wrongKey)))
  })
})

describe('JWT options that cannot work', () => {
  const cases: [string, JwtOptions][] = [
    ['no key', {}],
    ['a secret and a public key', { secret: SECRET, publicKey: RSA_PEM }],
    ['a public key and a JWKS URL', { publicKey: RSA_PEM, jwksUrl: 'http://127.0.0.1:1/jwks' }],
    ["algorithms containing 'none'", { secret: SECRET, algorithms: ['HS256', 'none'] }],
    ["algorithms ['None']", { publicKey: RSA_PEM, algorithms: ['None'] }],
    ['HS256 allowed with a public key', { publicKey: RSA_PEM, algorithms: ['HS256'] }],
    ['RS256 allowed with a secret', { secret: SECRET, algorithms: ['RS256'] }],
  ]
  for (const [name, jwt] of cases) {
    it(`throws WSF_INVALID_OPTION for ${name}`, () => {
      assert.throws(() => new JwtVerifier(jwt), { code: 'WSF_INVALID_OPTION' })
      assert.throws(() => createBroker({ jwt }), { code: 'WSF_INVALID_OPTION' })
    })
  }

  it('accepts the same keys alone with fitting algorithms', async () => {
    for (const jwt of [
      { secret: SECRET, algorithms: ['HS256'] },
      { publicKey: RSA_PEM, algorithms: ['RS256'] },
      { jwksUrl: 'http://127.0.0.1:1/jwks' },
    ]) {
      assert.ok(new JwtVerifier(jwt))
      await createBroker({ jwt }).close()
    }
  })
})

describe('Token expiry and in-band refresh', () => {
  let t: TestServer
  before(async () => {
    t = await startBroker({ jwt: { secret: SECRET, clockTolerance: 0 } })
  })
  after(async () => {
    await t.close()
  })

  it('closes the connection with 4001 when its token expires', async () => {
    const f = fresh('expire')
    const c = await connect(
      t.url(withToken(f, 'subscribe-user', await mint({ exp: nowSec() + 2 }))),
    )
    const closed = c.closedByServer()
    await publishTo(t.broker, f, 'alice', 'before expiry')
    await c.waitFor(1)
    const { code } = await within(closed, 15_000, 'close at expiry')
    assert.equal(code, CloseCode.TOKEN_EXPIRED)
    assert.equal(code, 4001)
    await eventually(() => ![...t.broker.connections.values()].some((x) => x.facility === f))
  })

  it('keeps the connection open past the first exp after {"token": fresh}, and does not publish the token', async () => {
    const f = fresh('refresh')
    const exp1 = nowSec() + 2
    const tab1 = await connect(
      t.url(withToken(f, 'subscribe-user&publish-user', await mint({ exp: exp1 }))),
    )
    const tab2 = await connect(t.url(withToken(f, 'subscribe-user', await mint())))
    const conn = [...t.broker.connections.values()].find(
      (x) => x.facility === f && x.expiresAt === exp1 * 1000,
    )
    assert.ok(conn)
    let closedCode: number | null = null
    tab1.ws.on('close', (code) => (closedCode = code))
    const exp2 = nowSec() + 60
    await tab1.send(JSON.stringify({ token: await mint({ exp: exp2 }) }))
    await eventually(() => conn.expiresAt === exp2 * 1000)
    await sleep(Math.max(0, exp1 * 1000 + 1500 - Date.now()))
    assert.equal(closedCode, null)
    assert.equal(tab1.ws.readyState, WebSocket.OPEN)
    await publishTo(t.broker, f, 'alice', 'after the first exp')
    await tab1.waitFor(1)
    assert.deepEqual(tab1.texts, ['after the first exp'])
    // The refresh was not published to the user's other tab; a plain message is.
    await tab1.send('plain')
    await tab2.waitFor(2)
    await sleep(50)
    assert.deepEqual(tab2.texts, ['after the first exp', 'plain'])
    await Promise.all([tab1.close(), tab2.close()])
  })

  it('takes {"token": …} as a refresh on a connection whose token has no exp, never publishing it', async () => {
    const f = fresh('noexp')
    const tab1 = await connect(
      t.url(withToken(f, 'subscribe-user&publish-user', await mint({ exp: null }))),
    )
    const tab2 = await connect(t.url(withToken(f, 'subscribe-user', await mint())))
    await tab1.send(JSON.stringify({ token: await mint({ exp: nowSec() + 60 }) }))
    await tab1.send('after refresh')
    await tab2.waitFor(1)
    await sleep(50)
    assert.deepEqual(tab2.texts, ['after refresh'])
    await Promise.all([tab1.close(), tab2.close()])
  })

  it("closes with 1008 on a refresh with another user's token", async () => {
    const c = await connect(t.url(withToken(fresh('other'), 'subscribe-user', await mint())))
    const closed = c.closedByServer()
    await c.send(JSON.stringify({ token: await mint({ sub: 'mallory' }) }))
    const { code } = await within(closed, 5000, 'close after refresh for another user')
    assert.equal(code, CloseCode.POLICY)
  })

  it('closes with 1008 on a refresh with a garbage, expired or wrongly signed token', async () => {
    for (const bad of [
      'garbage',
      '',
      await mint({ exp: nowSec() - 60 }),
      await mint({ key: OTHER_SECRET }),
      unsignedToken(),
    ]) {
      const c = await connect(t.url(withToken(fresh('badrefresh'), 'subscribe-user', await mint())))
      const closed = c.closedByServer()
      await c.send(JSON.stringify({ token: bad }))
      const { code } = await within(closed, 5000, `close after refresh with ${bad.slice(0, 20)}`)
      assert.equal(code, CloseCode.POLICY, `refresh with ${JSON.stringify(bad.slice(0, 20))}`)
    }
  })

  it('publishes messages that are not exactly {"token": "<string>"} instead of taking them as refresh', async () => {
    const f = fresh('notoken')
    const tab1 = await connect(t.url(withToken(f, 'publish-user&subscribe-user', await mint())))
    const tab2 = await connect(t.url(withToken(f, 'subscribe-user', await mint())))
    const messages = [
      '{"token": 5}',
      '{"token":"x","other":1}',
      'hello',
      '["token"]',
      ' {"token":"x"}',
    ]
    for (const m of messages) await tab1.send(m)
    await tab2.waitFor(messages.length)
    await sleep(50)
    assert.deepEqual(tab2.texts, messages)
    assert.equal(tab1.ws.readyState, WebSocket.OPEN)
    await Promise.all([tab1.close(), tab2.close()])
  })

  it('lets server code refresh a connection with broker.refreshToken', async () => {
    const f = fresh('api')
    const c = await connect(
      t.url(withToken(f, 'subscribe-user', await mint({ exp: nowSec() + 60 }))),
    )
    const conn = connectionOf(t.broker, f)
    const exp = nowSec() + 120
    await t.broker.refreshToken(conn, await mint({ exp }))
    assert.equal(conn.expiresAt, exp * 1000)
    await assert.rejects(
      t.broker.refreshToken(conn, await mint({ sub: 'mallory' })),
      (err) => err instanceof TokenError && err.code === 'WSF_TOKEN_INVALID',
    )
    await c.close()
  })
})

describe('Express-style requests', () => {
  let broker: Broker
  before(() => {
    broker = createBroker({ jwt: { secret: SECRET } })
  })
  after(async () => {
    await broker.close()
  })
  const request = (authorization: string): IncomingMessage =>
    ({ headers: { authorization }, url: '/notify' }) as unknown as IncomingMessage

  it('identify(req) resolves the identity of a bearer token', async () => {
    const token = await mint({ sub: 'carol', claims: { groups: ['admins'], sid: 'sess-9' } })
    assert.deepEqual(await broker.identify(request(`Bearer ${token}`)), {
      user: 'carol',
      groups: ['admins'],
      sessionKey: 'sess-9',
    })
    const pub = new RedisPublisher(
      { facility: 'notes', users: [SELF] },
      { broker, request: request(`Bearer ${token}`) },
    )
    assert.deepEqual(await pub.channels(), ['user:carol:notes'])
  })

  it('identify(req) rejects a bad bearer token with WSF_TOKEN_INVALID', async () => {
    for (const bad of ['garbage', await mint({ key: OTHER_SECRET }), unsignedToken()]) {
      await assert.rejects(
        broker.identify(request(`Bearer ${bad}`)),
        (err) => err instanceof TokenError && err.code === 'WSF_TOKEN_INVALID',
      )
    }
    await assert.rejects(
      broker.identify(request(`Bearer ${await mint({ exp: nowSec() - 60 })}`)),
      (err) => err instanceof TokenError && err.code === 'WSF_TOKEN_EXPIRED',
    )
  })
})

describe('JWTs on the Redis engine', () => {
  let redis: RedisServer
  let t: TestServer
  before(async () => {
    redis = await startRedis()
    t = await startBroker({ redis: redis.url, jwt: { secret: SECRET, clockTolerance: 0 } })
  })
  after(async () => {
    await t.close()
    await redis.stop()
  })

  it('connects a valid token to its user channel in Redis and refuses a bad one with 401', async () => {
    await assertAccepted(t, await mint({ sub: 'redis-user' }), 'redis-user')
    const f = fresh('redis')
    const c = await connect(t.url(withToken(f, 'subscribe-user', await mint({ sub: 'dave' }))))
    const client = await redis.client()
    try {
      assert.equal(await client.publish(`user:dave:${f}`, 'straight from redis'), 1)
    } finally {
      await client.close()
    }
    await c.waitFor(1)
    assert.deepEqual(c.texts, ['straight from redis'])
    await c.close()
    await assertRefused(
      t.url(withToken(fresh('redis'), 'subscribe-user', await mint({ key: OTHER_SECRET }))),
    )
  })

  it('closes with 4001 at expiry', async () => {
    const c: TestClient = await connect(
      t.url(withToken(fresh('redis-exp'), 'subscribe-user', await mint({ exp: nowSec() + 2 }))),
    )
    const { code } = await within(c.closedByServer(), 15_000, 'close at expiry')
    assert.equal(code, 4001)
  })
})
