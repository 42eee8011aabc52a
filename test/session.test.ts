import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { after, before, describe, it } from 'node:test'
import { RedisStore } from 'connect-redis'
import session from 'express-session'
import {
  anonymous,
  type BrokerOptions,
  type Connection,
  RedisPublisher,
  type SessionOptions,
} from '../src/index.js'
import { identityFromSession, unsignCookie } from '../src/identity/session.js'
import { type Login, type SessionApp, signSessionId, startSessionApp } from './helpers/app.js'
import { type RedisServer, startRedis, type TestRedisClient } from './helpers/redis.js'
import {
  connect,
  startBroker,
  type TestClient,
  type TestServer,
  upgradeStatus,
  fresh,
} from './helpers/ws.js'

const SECRET_A = 'secret A: the one the app signs with'
const SECRET_B = 'secret B: a newer one'
const ALL = 'subscribe-user&subscribe-group&subscribe-session'

let redis: RedisServer
let client: TestRedisClient
let store: RedisStore
let app: SessionApp
before(async () => {
  redis = await startRedis()
  client = await redis.client()
  store = new RedisStore({ client, prefix: 'sess:' })
  app = await startSessionApp({ session: { store, secret: SECRET_A } })
})
after(async () => {
  await app.close()
  await client.close()
  await redis.stop()
})

/** The value of a `name=value` cookie, decoded as express-session reads it. */
const valueOf = (cookie: string): string =>
  decodeURIComponent(cookie.slice(cookie.indexOf('=') + 1))
const asCookie = (value: string, name = 'connect.sid'): string =>
  `${name}=${encodeURIComponent(value)}`

/** `value` with its signature altered (same length, last character changed). */
function tamperSignature(value: string): string {
  const last = value.at(-1) === 'A' ? 'B' : 'A'
  return value.slice(0, -1) + last
}

/** A broker on its own server, reading the app's session cookies. */
function sessionBroker(
  session: Partial<SessionOptions> = {},
  extra: BrokerOptions = {},
): Promise<TestServer> {
  return startBroker({
    redis: redis.url,
    session: { store, secret: SECRET_A, ...session },
    ...extra,
  })
}

/** Opens a WebSocket with `cookie` and returns the broker's side of it too. */
async function open(
  t: TestServer,
  path: string,
  cookie?: string,
): Promise<{ ws: TestClient; conn: Connection }> {
  const accepted = once(t.broker, 'connection') as Promise<[Connection]>
  const ws = await connect(t.url(path), cookie ? { headers: { cookie } } : undefined)
  const [conn] = await accepted
  assert.equal(t.broker.connections.get(conn.id), conn)
  return { ws, conn }
}

describe('unsignCookie', () => {
  let ann: Login
  before(async () => {
    ann = await app.login('ann')
  })

  it('returns the session id of a cookie express-session signed', () => {
    const value = valueOf(ann.cookie)
    assert.ok(value.startsWith('s:'))
    assert.equal(unsignCookie(value, [SECRET_A]), ann.sid)
    // The signer the integration tests use agrees with express-session byte for byte.
    assert.equal(signSessionId(ann.sid, SECRET_A), value)
  })

  it('returns null for a tampered signature or session id', () => {
    const value = valueOf(ann.cookie)
    assert.equal(unsignCookie(tamperSignature(value), [SECRET_A]), null)
    const other = value.slice(0, 2) + (value[2] === 'x' ? 'y' : 'x') + value.slice(3)
    assert.equal(unsignCookie(other, [SECRET_A]), null)
    assert.equal(unsignCookie(`s:${ann.sid}.`, [SECRET_A]), null)
    assert.equal(unsignCookie(`s:${ann.sid}`, [SECRET_A]), null)
  })

  it('returns null for an unsigned value', () => {
    assert.equal(unsignCookie(ann.sid, [SECRET_A]), null)
    assert.equal(unsignCookie(valueOf(ann.cookie).slice(2), [SECRET_A]), null)
  })

  it('returns null under another secret', () => {
    assert.equal(unsignCookie(valueOf(ann.cookie), [SECRET_B]), null)
  })

  it('accepts a cookie signed with any secret of a rotation list', () => {
    assert.equal(unsignCookie(valueOf(ann.cookie), [SECRET_B, SECRET_A]), ann.sid)
    assert.equal(unsignCookie(signSessionId('abc', SECRET_B), [SECRET_B, SECRET_A]), 'abc')
  })
})

describe('identityFromSession', () => {
  it('takes a string user', () => {
    assert.deepEqual(identityFromSession({ user: 'ann' }, 'sid1'), {
      user: 'ann',
      groups: [],
      sessionKey: 'sid1',
    })
  })

  it("takes an object user's username, else name, else id", () => {
    const user = (u: object) => identityFromSession({ user: u }, 'sid1').user
    assert.equal(user({ username: 'ann', name: 'Ann A.', id: 1 }), 'ann')
    assert.equal(user({ name: 'bob', id: 2 }), 'bob')
    assert.equal(user({ id: 42 }), '42')
    assert.equal(user({ id: 'u-7' }), 'u-7')
  })

  it("takes passport's session.passport.user", () => {
    assert.deepEqual(identityFromSession({ passport: { user: 'pat' } }, 'sid2'), {
      user: 'pat',
      groups: [],
      sessionKey: 'sid2',
    })
    assert.equal(identityFromSession({ passport: { user: 99 } }, 'sid2').user, '99')
  })

  it('takes groups from session.user.groups, else session.groups', () => {
    assert.deepEqual(
      identityFromSession({ user: { username: 'ann', groups: ['red', 'blue'] } }, 's').groups,
      ['red', 'blue'],
    )
    assert.deepEqual(identityFromSession({ user: 'ann', groups: ['green'] }, 's').groups, ['green'])
    assert.deepEqual(
      identityFromSession({ user: { username: 'ann', groups: ['red'] }, groups: ['green'] }, 's')
        .groups,
      ['red'],
    )
  })

  it('gives no groups, and no user, to a session without a user', () => {
    assert.deepEqual(identityFromSession({ groups: ['admins'] }, 'sid3'), {
      user: null,
      groups: [],
      sessionKey: 'sid3',
    })
    assert.deepEqual(identityFromSession({ user: { groups: ['admins'] } }, 'sid3'), {
      user: null,
      groups: [],
      sessionKey: 'sid3',
    })
  })
})

describe('session cookies on WebSocket upgrades', () => {
  let t: TestServer
  before(async () => {
    t = await sessionBroker()
  })
  after(async () => {
    await t.close()
  })

  it("opens the user, group and session channels of the cookie's user only", async () => {
    const f = fresh('login')
    const ann = await app.login('ann', ['red', 'blue'])
    const bob = await app.login('bob', ['green'])
    // The session really lives in Redis, where connect-redis put it.
    assert.equal(await client.exists(`sess:${ann.sid}`), 1)
    const a = await open(t, `/ws/${f}?${ALL}`, ann.cookie)
    const b = await open(t, `/ws/${f}?${ALL}`, bob.cookie)
    assert.deepEqual(a.conn.identity, { user: 'ann', groups: ['red', 'blue'], sessionKey: ann.sid })
    assert.deepEqual(b.conn.identity, { user: 'bob', groups: ['green'], sessionKey: bob.sid })

    const publish = (target: object, message: string) =>
      new RedisPublisher({ facility: f, ...target }, { broker: t.broker }).publishMessage(message)
    assert.equal(await publish({ users: ['ann'] }, 'to ann'), 1)
    assert.equal(await publish({ groups: ['red'] }, 'to red'), 1)
    assert.equal(await publish({ groups: ['blue'] }, 'to blue'), 1)
    assert.equal(await publish({ sessions: [ann.sid] }, 'to ann session'), 1)
    assert.equal(await publish({ users: ['bob'] }, 'to bob'), 1)
    await a.ws.waitFor(4)
    await b.ws.waitFor(1)
    assert.deepEqual(a.ws.texts, ['to ann', 'to red', 'to blue', 'to ann session'])
    // Messages on one Redis connection arrive in order: bob got nothing before his own.
    assert.deepEqual(b.ws.texts, ['to bob'])
    await Promise.all([a.ws.close(), b.ws.close()])
  })

  describe('treats as anonymous', () => {
    let ann: Login
    before(async () => {
      ann = await app.login('ann', ['red'])
    })
    const cases: [string, () => string | undefined][] = [
      ['no cookie', () => undefined],
      ['a forged cookie (signature changed)', () => asCookie(tamperSignature(valueOf(ann.cookie)))],
      ['an unsigned cookie (the raw session id)', () => `connect.sid=${ann.sid}`],
      [
        'a correctly signed cookie for a session not in the store',
        () => asCookie(signSessionId(randomBytes(18).toString('base64url'), SECRET_A)),
      ],
      ['a valid cookie under another name', () => `other.sid=${ann.cookie.split('=')[1]}`],
    ]
    for (const [what, cookie] of cases) {
      it(what, async () => {
        const f = fresh('anon')
        const { ws, conn } = await open(t, `/ws/${f}?${ALL}`, cookie())
        assert.deepEqual(conn.identity, anonymous())
        assert.deepEqual(conn.channels.subscribe, [])
        await ws.close()
      })
    }
  })

  describe('with anonymous: false', () => {
    let strict: TestServer
    let ann: Login
    before(async () => {
      strict = await sessionBroker({}, { anonymous: false })
      ann = await app.login('ann', ['red'])
    })
    after(async () => {
      await strict.close()
    })

    it('accepts a valid session cookie', async () => {
      const { ws, conn } = await open(strict, `/ws/${fresh('strict')}?${ALL}`, ann.cookie)
      assert.equal(conn.identity.user, 'ann')
      await ws.close()
    })

    it('refuses missing, forged, unsigned, unknown and misnamed cookies with 401', async () => {
      const url = strict.url(`/ws/${fresh('strict')}?${ALL}`)
      const cookies = [
        asCookie(tamperSignature(valueOf(ann.cookie))),
        `connect.sid=${ann.sid}`,
        asCookie(signSessionId(randomBytes(18).toString('base64url'), SECRET_A)),
        `other.sid=${ann.cookie.split('=')[1]}`,
      ]
      assert.equal((await upgradeStatus(url)).status, 401)
      for (const cookie of cookies) {
        assert.equal((await upgradeStatus(url, { cookie })).status, 401, cookie)
      }
      assert.equal(strict.broker.connections.size, 0)
    })
  })

  it('accepts a cookie signed with an old secret still in the rotation list', async () => {
    const ann = await app.login('ann', ['red'])
    const rotated = await sessionBroker({ secret: [SECRET_B, SECRET_A] })
    const onlyNew = await sessionBroker({ secret: [SECRET_B] })
    try {
      const f = fresh('rotate')
      const r = await open(rotated, `/ws/${f}?${ALL}`, ann.cookie)
      assert.deepEqual(r.conn.identity, { user: 'ann', groups: ['red'], sessionKey: ann.sid })
      const n = await open(onlyNew, `/ws/${f}?${ALL}`, ann.cookie)
      assert.deepEqual(n.conn.identity, anonymous())
      await Promise.all([r.ws.close(), n.ws.close()])
    } finally {
      await rotated.close()
      await onlyNew.close()
    }
  })

  it('maps sessions with a custom identity function', async () => {
    const seen: { session: Record<string, unknown>; sid: string }[] = []
    const custom = await sessionBroker({
      identity: (session, sid) => {
        seen.push({ session, sid })
        const user = session.user as { username: string }
        return { user: `staff-${user.username}`, groups: ['mapped'], sessionKey: `k-${sid}` }
      },
    })
    try {
      const ann = await app.login('ann', ['red'])
      const f = fresh('custom')
      const { ws, conn } = await open(custom, `/ws/${f}?${ALL}`, ann.cookie)
      assert.deepEqual(conn.identity, {
        user: 'staff-ann',
        groups: ['mapped'],
        sessionKey: `k-${ann.sid}`,
      })
      assert.equal(seen.length, 1)
      assert.equal(seen[0]!.sid, ann.sid)
      assert.deepEqual(seen[0]!.session.user, { username: 'ann', groups: ['red'] })
      const pub = new RedisPublisher(
        { facility: f, users: ['staff-ann'] },
        { broker: custom.broker },
      )
      assert.equal(await pub.publishMessage('mapped'), 1)
      await ws.waitFor(1)
      assert.deepEqual(ws.texts, ['mapped'])
      await ws.close()
    } finally {
      await custom.close()
    }
  })

  it("maps passport's session.passport.user", async () => {
    const pat = await app.passportLogin('pat')
    const { ws, conn } = await open(t, `/ws/${fresh('passport')}?${ALL}`, pat.cookie)
    assert.deepEqual(conn.identity, { user: 'pat', groups: [], sessionKey: pat.sid })
    await ws.close()
  })

  it('is anonymous again once the user logged out', async () => {
    const carol = await app.login('carol', ['red'])
    const f = fresh('logout')
    const first = await open(t, `/ws/${f}?${ALL}`, carol.cookie)
    assert.equal(first.conn.identity.user, 'carol')
    await first.ws.close()
    await app.logout(carol.cookie)
    assert.equal(await client.exists(`sess:${carol.sid}`), 0)
    const afterwards = await open(t, `/ws/${f}?${ALL}`, carol.cookie)
    assert.deepEqual(afterwards.conn.identity, anonymous())
    assert.deepEqual(afterwards.conn.channels.subscribe, [])
    await afterwards.ws.close()
  })

  it("works with express-session's MemoryStore", async () => {
    const memory = new session.MemoryStore()
    const memApp = await startSessionApp({ session: { store: memory, secret: SECRET_A } })
    const memBroker = await startBroker({ session: { store: memory, secret: SECRET_A } })
    try {
      const dora = await memApp.login('dora', ['teal'])
      const f = fresh('memory')
      const { ws, conn } = await open(memBroker, `/ws/${f}?${ALL}`, dora.cookie)
      assert.deepEqual(conn.identity, { user: 'dora', groups: ['teal'], sessionKey: dora.sid })
      const pub = new RedisPublisher(
        { facility: f, groups: ['teal'] },
        { broker: memBroker.broker },
      )
      assert.equal(await pub.publishMessage('teal news'), 1)
      await ws.waitFor(1)
      assert.deepEqual(ws.texts, ['teal news'])
      const forged = await open(
        memBroker,
        `/ws/${f}?${ALL}`,
        asCookie(tamperSignature(valueOf(dora.cookie))),
      )
      assert.deepEqual(forged.conn.identity, anonymous())
      await Promise.all([ws.close(), forged.ws.close()])
    } finally {
      await memBroker.close()
      await memApp.close()
    }
  })
})
