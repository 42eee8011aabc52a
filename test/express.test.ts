import assert from 'node:assert/strict'
import http from 'node:http'
import { after, before, describe, it } from 'node:test'
import { RedisStore } from 'connect-redis'
import express, { type NextFunction, type Request, type Response, Router } from 'express'
import { SELF, wsfacility } from '../src/integrations/express.js'
import { type Broker, type PublisherTarget, RedisPublisher } from '../src/index.js'
import { type SessionApp, type SharedSession, startSessionApp } from './helpers/app.js'
import { type RedisServer, startRedis, type TestRedisClient } from './helpers/redis.js'
import { listen } from './helpers/http.js'
import { signToken } from './helpers/token.js'
import { connect, type TestClient, fresh } from './helpers/ws.js'

const SECRET = 'keyboard cat'
const JWT_SECRET = 'a jwt secret of at least thirty-two bytes'
const ALL = 'subscribe-user&subscribe-group&subscribe-session'
const AUDIENCES = ['users', 'groups', 'sessions'] as const
type To = (typeof AUDIENCES)[number]

/** A passport stand-in: deserializeUser put this user on the request. */
function asNeo(req: Request, _res: Response, next: NextFunction): void {
  ;(req as Request & { user?: unknown }).user = { id: 7, username: 'neo' }
  next()
}

/** Answers a route's error with its status (a TokenError is a 401), without logging it. */
function errorStatus(err: { status?: number }, _req: Request, res: Response, _next: NextFunction) {
  res.status(err.status ?? 500).end()
}

/** Routes that publish to, and read for, SELF. */
function selfRoutes(): Router {
  const routes = Router()
  routes.post('/publish/:facility', async (req, res) => {
    const { to, message, expire } = req.body as { to: To[]; message: string; expire?: number }
    const target: PublisherTarget = { facility: req.params.facility as string }
    for (const audience of to) target[audience] = [SELF]
    const options = expire === undefined ? undefined : { expire }
    const receivers =
      req.query.api === 'publisher'
        ? await req.wsfacility!.publisher(target).publishMessage(message, options)
        : await req.wsfacility!.publish(target, message, options)
    res.json({ receivers })
  })
  // Logs in and greets in one request: SELF must come from req.session, the store has nothing yet.
  routes.post('/login-and-greet/:facility/:user', async (req, res) => {
    const session = req.session as unknown as Record<string, unknown>
    session.user = { username: req.params.user, groups: [] }
    const target: PublisherTarget = {
      facility: req.params.facility as string,
      users: [SELF],
      sessions: [SELF],
    }
    const receivers = await req.wsfacility!.publish(target, 'welcome')
    res.json({ receivers, sid: req.sessionID })
  })
  routes.get('/identity', async (req, res) => {
    res.json(await req.wsfacility!.identity())
  })
  routes.get('/fetch/:facility', async (req, res) => {
    const message = await req.wsfacility!.fetchMessage(req.params.facility as string, 'any')
    res.json({ message: message === null ? null : message.toString() })
  })
  routes.get('/hello', (_req, res) => {
    res.send('hello')
  })
  return routes
}

let redis: RedisServer
let client: TestRedisClient
let shared: SharedSession
let site: SessionApp
let broker: Broker
before(async () => {
  redis = await startRedis()
  client = await redis.client()
  // Configure once: express-session and the broker share the store and the secret.
  shared = { store: new RedisStore({ client, prefix: 'sess:' }), secret: SECRET }
  site = await startSessionApp({
    session: shared,
    setup: (app, server) => {
      broker = wsfacility(app, server, {
        redis: redis.url,
        session: shared,
        jwt: { secret: JWT_SECRET },
      })
    },
    routes: (app) => {
      app.use(selfRoutes())
      app.use('/as-neo', asNeo, selfRoutes())
      app.use(errorStatus)
    },
  })
  await broker.ready()
})
after(async () => {
  await broker.close()
  await site.close()
  await client.close()
  await redis.stop()
})

const headersOf = (cookie?: string, bearer?: string): Record<string, string> => ({
  ...(cookie ? { cookie } : {}),
  ...(bearer ? { authorization: `Bearer ${bearer}` } : {}),
})

/** POSTs to a SELF-publishing route; resolves to the receiver count it answered. */
async function publishSelf(
  path: string,
  body: { to: To[]; message: string; expire?: number },
  auth: { cookie?: string; bearer?: string } = {},
): Promise<number> {
  const res = await fetch(site.base + path, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headersOf(auth.cookie, auth.bearer) },
    body: JSON.stringify(body),
  })
  assert.equal(res.status, 200, await res.clone().text())
  return ((await res.json()) as { receivers: number }).receivers
}

async function getJson<T>(path: string, auth: { cookie?: string; bearer?: string } = {}) {
  const res = await fetch(site.base + path, { headers: headersOf(auth.cookie, auth.bearer) })
  assert.equal(res.status, 200)
  return (await res.json()) as T
}

const tab = (path: string, headers: Record<string, string>): Promise<TestClient> =>
  connect(site.ws(path), { headers })

const token = (sub: string, groups: string[]): Promise<string> =>
  signToken({ key: JWT_SECRET, sub, iat: true, exp: '10m', claims: { groups } })

describe('wsfacility(app, server) with express-session on Redis', () => {
  it("publishes SELF to the request's user (every tab), groups and session only", async () => {
    const f = fresh('self')
    const ann1 = await site.login('ann', ['red', 'blue'])
    const ann2 = await site.login('ann', ['red', 'blue'])
    const bob = await site.login('bob', ['green'])
    assert.notEqual(ann1.sid, ann2.sid)
    const [a1, a1b, a2, b] = await Promise.all([
      tab(`/ws/${f}?${ALL}`, { cookie: ann1.cookie }),
      tab(`/ws/${f}?${ALL}`, { cookie: ann1.cookie }),
      tab(`/ws/${f}?${ALL}`, { cookie: ann2.cookie }),
      tab(`/ws/${f}?${ALL}`, { cookie: bob.cookie }),
    ])
    const path = `/publish/${f}`
    const as = { cookie: ann1.cookie }
    // Three tabs are ann's; two of them share the request's session.
    assert.equal(await publishSelf(path, { to: ['users'], message: 'user' }, as), 3)
    // One delivery per tab and group: red and blue.
    assert.equal(await publishSelf(path, { to: ['groups'], message: 'group' }, as), 6)
    assert.equal(await publishSelf(path, { to: ['sessions'], message: 'session' }, as), 2)
    const end = new RedisPublisher({ facility: f, users: ['ann', 'bob'] }, { broker })
    assert.equal(await end.publishMessage('end'), 4)

    await Promise.all([a1.waitFor(5), a1b.waitFor(5), a2.waitFor(4), b.waitFor(1)])
    assert.deepEqual(a1.texts, ['user', 'group', 'group', 'session', 'end'])
    assert.deepEqual(a1b.texts, ['user', 'group', 'group', 'session', 'end'])
    assert.deepEqual(a2.texts, ['user', 'group', 'group', 'end'])
    assert.deepEqual(b.texts, ['end'])
    await Promise.all([a1, a1b, a2, b].map((c) => c.close()))
  })

  it('publishes SELF of an anonymous or forged-cookie request to nobody', async () => {
    const f = fresh('anon')
    const ann = await site.login('ann', ['red'])
    const [a, anon] = await Promise.all([
      tab(`/ws/${f}?${ALL}`, { cookie: ann.cookie }),
      tab(`/ws/${f}?${ALL}&subscribe-broadcast`, {}),
    ])
    const path = `/publish/${f}`
    const everything = { to: [...AUDIENCES], message: 'to nobody' }
    assert.equal(await publishSelf(path, everything), 0)
    const forged = ann.cookie.slice(0, -1) + (ann.cookie.endsWith('A') ? 'B' : 'A')
    assert.equal(await publishSelf(path, everything, { cookie: forged }), 0)
    // The same route with ann's real cookie does reach her.
    assert.equal(await publishSelf(path, { to: ['users'], message: 'to ann' }, ann), 1)
    await a.waitFor(1)
    assert.deepEqual(a.texts, ['to ann'])
    assert.deepEqual(anon.texts, [])
    await Promise.all([a.close(), anon.close()])
  })

  it('fetchMessage returns what was published to the user with expire', async () => {
    const f = fresh('fetch')
    const ann = await site.login('ann', ['red'])
    const bob = await site.login('bob', ['green'])
    const kept = { to: ['users'] as To[], message: 'kept for ann', expire: 60 }
    assert.equal(await publishSelf(`/publish/${f}`, kept, ann), 0)
    assert.deepEqual(await getJson(`/fetch/${f}`, ann), { message: 'kept for ann' })
    assert.deepEqual(await getJson(`/fetch/${f}`, bob), { message: null })
    assert.deepEqual(await getJson(`/fetch/${f}`), { message: null })
    // Without expire nothing is stored.
    const g = fresh('fetch')
    await publishSelf(`/publish/${g}`, { to: ['users'], message: 'gone' }, ann)
    assert.deepEqual(await getJson(`/fetch/${g}`, ann), { message: null })
  })

  it('resolves SELF from req.session before the store has the session', async () => {
    const f = fresh('fresh')
    const earlier = await site.login('eve')
    const ws = await tab(`/ws/${f}?${ALL}`, { cookie: earlier.cookie })
    const res = await fetch(`${site.base}/login-and-greet/${f}/eve`, { method: 'POST' })
    const { receivers, sid } = (await res.json()) as { receivers: number; sid: string }
    // Eve's other session hears it on her user channel; the new session has no socket yet.
    assert.equal(receivers, 1)
    assert.notEqual(sid, earlier.sid)
    await ws.waitFor(1)
    assert.deepEqual(ws.texts, ['welcome'])
    await ws.close()
  })

  it("identity() is the request's session identity", async () => {
    const ann = await site.login('ann', ['red', 'blue'])
    assert.deepEqual(await getJson('/identity', ann), {
      user: 'ann',
      groups: ['red', 'blue'],
      sessionKey: ann.sid,
    })
    const nobody = await getJson<{ user: string | null; groups: string[] }>('/identity')
    assert.equal(nobody.user, null)
    assert.deepEqual(nobody.groups, [])
  })

  it("resolves SELF to a bearer JWT's sub (no cookie)", async () => {
    const f = fresh('jwt')
    const jwt = await token('jay', ['jwt-group'])
    const jay = await tab(`/ws/${f}?${ALL}`, { authorization: `Bearer ${jwt}` })
    const ann = await site.login('ann', ['jwt-group'])
    const a = await tab(`/ws/${f}?subscribe-user`, { cookie: ann.cookie })
    assert.deepEqual(await getJson('/identity', { bearer: jwt }), {
      user: 'jay',
      groups: ['jwt-group'],
      sessionKey: null,
    })
    const body = { to: ['users'] as To[], message: 'for jay' }
    assert.equal(await publishSelf(`/publish/${f}?api=publisher`, body, { bearer: jwt }), 1)
    await jay.waitFor(1)
    assert.deepEqual(jay.texts, ['for jay'])
    // A token that does not verify fails the route with 401 and publishes nothing.
    const res = await fetch(`${site.base}/publish/${f}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${jwt}x` },
      body: JSON.stringify(body),
    })
    assert.equal(res.status, 401)
    assert.equal(
      await new RedisPublisher({ facility: f, users: ['ann'] }, { broker }).publishMessage('end'),
      1,
    )
    await a.waitFor(1)
    assert.deepEqual(a.texts, ['end'])
    assert.deepEqual(jay.texts, ['for jay'])
    await Promise.all([jay.close(), a.close()])
  })

  it("resolves SELF to passport's req.user", async () => {
    const f = fresh('passport')
    const neo = await site.login('neo')
    const ws = await tab(`/ws/${f}?subscribe-user`, { cookie: neo.cookie })
    const identity = await getJson<{ user: string | null }>('/as-neo/identity')
    assert.equal(identity.user, 'neo')
    assert.equal(await publishSelf(`/as-neo/publish/${f}`, { to: ['users'], message: 'hi neo' }), 1)
    await ws.waitFor(1)
    assert.deepEqual(ws.texts, ['hi neo'])
    await ws.close()
  })

  it('answers a plain GET under /ws/ with 426 and leaves other routes alone', async () => {
    const res = await fetch(`${site.base}/ws/x`)
    assert.equal(res.status, 426)
    assert.equal(res.headers.get('upgrade'), 'websocket')
    await res.arrayBuffer()
    const hello = await fetch(`${site.base}/hello`)
    assert.equal(hello.status, 200)
    assert.equal(await hello.text(), 'hello')
  })
})

describe('wsfacility(app, server) with passport but no express-session', () => {
  it('resolves SELF to req.user', async () => {
    const app = express()
    const server = http.createServer(app)
    app.use(express.json())
    app.use(asNeo)
    const b = wsfacility(app, server, { jwt: { secret: JWT_SECRET } })
    app.use(selfRoutes())
    app.use(errorStatus)
    const { port, close } = await listen(server)
    try {
      const f = fresh('nosession')
      const jwt = await token('neo', [])
      const ws = await connect(`ws://127.0.0.1:${port}/ws/${f}?subscribe-user`, {
        headers: { authorization: `Bearer ${jwt}` },
      })
      const res = await fetch(`http://127.0.0.1:${port}/publish/${f}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ to: ['users'], message: 'hi neo' }),
      })
      assert.deepEqual(await res.json(), { receivers: 1 })
      await ws.waitFor(1)
      assert.deepEqual(ws.texts, ['hi neo'])
      await ws.close()
    } finally {
      await b.close()
      await close()
    }
  })
})
