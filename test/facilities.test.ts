import assert from 'node:assert/strict'
import http from 'node:http'
import { after, before, describe, it } from 'node:test'
import WebSocket from 'ws'
import { commonChannel, type UserChannel, userChannel } from '../facilities/index.js'
import {
  type Broker,
  type Connection,
  InvalidArgumentError,
  RedisPublisher,
  SELF,
} from '../src/index.js'
import { type RedisServer, startRedis } from './helpers/redis.js'
import { listen } from './helpers/http.js'
import { nowSec, signToken } from './helpers/token.js'
import {
  connect,
  eventually,
  startBroker,
  TestClient,
  type TestServer,
  upgradeStatus,
  frame,
  frames,
  sendJson,
  closeAll,
} from './helpers/ws.js'

const SECRET = new TextEncoder().encode('facilities-tests-hmac-secret-0123456789-abcdefghij')
/** No clock tolerance, so a token's `exp` is exactly when its connection expires. */
const JWT = { secret: SECRET, clockTolerance: 0 }

/** Signs an HS256 token for `sub`, expiring at `exp` (seconds) or in ten minutes. */
const mint = (sub: string, exp = nowSec() + 600): Promise<string> =>
  signToken({ key: SECRET, sub, exp })

/** `/ws/<facility>?token=…` (plus flags), as a bazis-ws client connects. */
const withToken = (facility: string, token: string, flags = ''): string =>
  `/ws/${facility}?${flags === '' ? '' : `${flags}&`}token=${encodeURIComponent(token)}`

const status = async (url: string): Promise<number> => (await upgradeStatus(url)).status

/** Connections of `user` on `facility` of one broker. */
const connectionsOf = (broker: Broker, facility: string, user: string): Connection[] =>
  [...broker.connections.values()].filter(
    (c) => c.facility === facility && c.identity.user === user,
  )

describe('userChannel and commonChannel on two processes sharing Redis', () => {
  let redis: RedisServer
  let a: TestServer
  let b: TestServer
  let usersA: UserChannel
  let usersB: UserChannel
  before(async () => {
    redis = await startRedis()
    a = await startBroker({ redis: redis.url, jwt: JWT })
    b = await startBroker({ redis: redis.url, jwt: JWT })
    usersA = userChannel(a.broker)
    usersB = userChannel(b.broker)
  })
  after(async () => {
    await a?.close()
    await b?.close()
    await redis?.stop()
  })

  it('delivers a per-user publish to every tab of the user on every process and counts them', async () => {
    const tab1 = await connect(a.url(withToken('user', await mint('alice'))))
    const tab2 = await connect(b.url(withToken('user', await mint('alice'))))
    const tab3 = await connect(a.url(withToken('user', await mint('alice'))))
    const bob = await connect(b.url(withToken('user', await mint('bob'))))
    const data = { type: 'notification', title: 'New message', n: 1 }
    assert.equal(await usersA.publish('alice', data), 3)
    for (const tab of [tab1, tab2, tab3]) {
      assert.deepEqual(await frame(tab, 1), { type: 'data', data })
    }
    // Either process publishes to the same tabs; bob got none of alice's messages.
    assert.equal(await usersB.publish('alice', 'second'), 3)
    assert.equal(await usersB.publish('bob', { for: 'bob' }), 1)
    assert.deepEqual(await frame(bob, 1), { type: 'data', data: { for: 'bob' } })
    for (const tab of [tab1, tab2, tab3]) {
      assert.deepEqual(await frame(tab, 2), { type: 'data', data: 'second' })
    }
    assert.equal(bob.received.length, 1)
    assert.equal(await usersA.publish('nobody', 'lost'), 0)
    await closeAll(tab1, tab2, tab3, bob)
    await eventually(async () => (await usersA.publish('alice', 'gone')) === 0)
  })

  it('publishes to SELF: the user of an identity or of an HTTP request with a bearer token', async () => {
    const tabA = await connect(a.url(withToken('user', await mint('carol'))))
    const tabB = await connect(b.url(withToken('user', await mint('carol'))))
    assert.equal(await usersA.publish(SELF, { via: 'identity' }, { request: { user: 'carol' } }), 2)

    // An Express-like route publishes to the user who called it.
    const api = await listen(
      http.createServer((req, res) => {
        usersB.publish(SELF, { via: 'request' }, { request: req }).then(
          (n) => res.end(String(n)),
          () => res.writeHead(500).end(),
        )
      }),
    )
    try {
      const url = `${api.base}/notify`
      const res = await fetch(url, { headers: { Authorization: `Bearer ${await mint('carol')}` } })
      assert.equal(await res.text(), '2')
      // Without an identity SELF is nobody.
      assert.equal(await (await fetch(url)).text(), '0')
    } finally {
      await api.close()
    }
    assert.equal(await usersA.publish(SELF, 'to nobody', { request: null }), 0)
    for (const tab of [tabA, tabB]) {
      await tab.waitFor(2)
      assert.deepEqual(frames(tab), [
        { type: 'data', data: { via: 'identity' } },
        { type: 'data', data: { via: 'request' } },
      ])
    }
    await closeAll(tabA, tabB)
  })

  it('refuses anonymous clients with 401 and flags beyond the user channel with 403', async () => {
    assert.equal(await status(a.url('/ws/user')), 401)
    const token = await mint('dan')
    assert.equal(await status(a.url(withToken('user', token, 'subscribe-broadcast'))), 403)
    assert.equal(await status(a.url(withToken('user', token, 'publish-user'))), 403)
    // A client cannot publish to its own user channel: data frames go nowhere.
    const tab1 = await connect(a.url(withToken('user', token)))
    const tab2 = await connect(b.url(withToken('user', token)))
    await sendJson(tab1, { type: 'data', data: 'from a client' })
    // The pong proves the data frame was handled before the server publishes.
    await sendJson(tab1, { type: 'ping' })
    assert.deepEqual(await frame(tab1, 1), { type: 'pong' })
    await usersA.publish('dan', 'from the server')
    assert.deepEqual(await frame(tab2, 1), { type: 'data', data: 'from the server' })
    assert.deepEqual(await frame(tab1, 2), { type: 'data', data: 'from the server' })
    assert.equal(tab2.received.length, 1)
    await closeAll(tab1, tab2)
  })

  it('answers ping with pong and accepts an in-band token refresh', async () => {
    const c = await connect(a.url(withToken('user', await mint('erin', nowSec() + 60))))
    await sendJson(c, { type: 'ping' })
    assert.deepEqual(await frame(c, 1), { type: 'pong' })
    const exp = nowSec() + 3600
    await sendJson(c, { token: await mint('erin', exp) })
    const [conn] = connectionsOf(a.broker, 'user', 'erin')
    await eventually(() => conn?.expiresAt === exp * 1000)
    await sendJson(c, { type: 'ping' })
    assert.deepEqual(await frame(c, 2), { type: 'pong' })
    assert.equal(await usersB.publish('erin', 'still here'), 1)
    assert.deepEqual(await frame(c, 3), { type: 'data', data: 'still here' })
    await c.close()
  })

  it('answers an invalid in-band token with invalid_token and closes with 1008', async () => {
    const c = await connect(a.url(withToken('user', await mint('fay'))))
    const closed = c.closedByServer()
    await sendJson(c, { token: await mint('mallory') })
    assert.equal((await closed).code, 1008)
    const [error] = frames(c) as { type: string; code: string; detail: string }[]
    assert.equal(error?.type, 'error')
    assert.equal(error?.code, 'invalid_token')
    assert.equal(typeof error?.detail, 'string')
  })

  it('sends expired_token and closes with 4001 when the token expires', async () => {
    const c = await connect(b.url(withToken('user', await mint('gus', nowSec() + 2))))
    assert.equal((await c.closedByServer()).code, 4001)
    const got = frames(c) as { type: string; code: string }[]
    assert.equal(got.length, 1)
    assert.equal(got[0]?.type, 'error')
    assert.equal(got[0]?.code, 'expired_token')
  })

  it('refuses data that is not JSON with InvalidArgumentError', async () => {
    await assert.rejects(usersA.publish('alice', undefined), InvalidArgumentError)
    await assert.rejects(usersA.publish('alice', { n: 1n }), InvalidArgumentError)
    await assert.rejects(usersA.publish('', 'x'), InvalidArgumentError)
  })

  it('reaches every connection of the common channel on both processes; anonymous ones get 401', async () => {
    const commonA = commonChannel(a.broker)
    const commonB = commonChannel(b.broker)
    assert.equal(commonA.facility, 'common')
    assert.equal(await status(a.url('/ws/common')), 401)
    assert.equal(await status(b.url(withToken('common', await mint('hal'), 'subscribe-user'))), 403)
    const hal = await connect(a.url(withToken('common', await mint('hal'))))
    const ida = await connect(b.url(withToken('common', await mint('ida'))))
    const userTab = await connect(b.url(withToken('user', await mint('hal'))))
    assert.equal(await commonB.publish({ type: 'broadcast', message: 'hello everyone' }), 2)
    for (const c of [hal, ida]) {
      assert.deepEqual(await frame(c, 1), {
        type: 'data',
        data: { type: 'broadcast', message: 'hello everyone' },
      })
    }
    await sendJson(ida, { type: 'ping' })
    assert.deepEqual(await frame(ida, 2), { type: 'pong' })
    // The per-user channel is another facility: common messages do not reach it, nor the reverse.
    assert.equal(await usersA.publish('hal', 'private'), 1)
    assert.deepEqual(await frame(userTab, 1), { type: 'data', data: 'private' })
    assert.equal(await commonA.publish('last'), 2)
    assert.deepEqual(await frame(hal, 2), { type: 'data', data: 'last' })
    assert.deepEqual(frames(userTab), [{ type: 'data', data: 'private' }])
    await closeAll(hal, ida, userTab)
  })

  it('reaches anonymous connections of a common channel configured with anonymous: true', async () => {
    const lobbyA = commonChannel(a.broker, { facility: 'lobby', anonymous: true })
    commonChannel(b.broker, { facility: 'lobby', anonymous: true })
    const anon = await connect(a.url('/ws/lobby'))
    const anonB = await connect(b.url('/ws/lobby'))
    const jo = await connect(b.url(withToken('lobby', await mint('jo'))))
    assert.equal(await lobbyA.publish([1, 2, 3]), 3)
    for (const c of [anon, anonB, jo]) {
      assert.deepEqual(await frame(c, 1), { type: 'data', data: [1, 2, 3] })
    }
    await closeAll(anon, anonB, jo)
  })

  it('keeps what RedisPublisher sends on the user facility in the same envelope', async () => {
    const c = await connect(b.url(withToken('user', await mint('kim'))))
    const pub = new RedisPublisher({ facility: 'user', users: ['kim'] }, { broker: a.broker })
    assert.equal(await pub.publishMessage({ from: 'RedisPublisher' }), 1)
    assert.deepEqual(await frame(c, 1), { type: 'data', data: { from: 'RedisPublisher' } })
    await c.close()
  })
})

describe('userChannel with userExists', () => {
  let t: TestServer
  const checked: string[] = []
  const errors: Error[] = []
  before(async () => {
    t = await startBroker({ jwt: JWT })
    t.broker.on('error', (err) => errors.push(err))
    userChannel(t.broker, {
      facility: 'account',
      userExists: async (user, context) => {
        checked.push(`${user}@${context.facility}`)
        if (user === 'broken') throw new Error('user database down')
        return user !== 'ghost'
      },
    })
  })
  after(() => t.close())

  it('sends user_not_found and closes with 1008 when the user does not exist', async () => {
    const c = new TestClient(t.url(withToken('account', await mint('ghost'))))
    const { code } = await c.closedByServer()
    assert.equal(code, 1008)
    const got = frames(c) as { type: string; code: string; detail: string }[]
    assert.equal(got.length, 1)
    assert.equal(got[0]?.type, 'error')
    assert.equal(got[0]?.code, 'user_not_found')
    assert.equal(typeof got[0]?.detail, 'string')
    assert.ok(checked.includes('ghost@account'))
  })

  it('keeps a user that exists connected', async () => {
    const c = await connect(t.url(withToken('account', await mint('liz'))))
    await eventually(() => checked.includes('liz@account'))
    const users = new RedisPublisher({ facility: 'account', users: ['liz'] }, { broker: t.broker })
    assert.equal(await users.publishMessage('"welcome"'), 1)
    assert.deepEqual(await frame(c, 1), { type: 'data', data: 'welcome' })
    assert.equal(c.ws.readyState, WebSocket.OPEN)
    await c.close()
  })

  it('closes with 1011 and reports the error when the check fails', async () => {
    const c = new TestClient(t.url(withToken('account', await mint('broken'))))
    const { code } = await c.closedByServer()
    assert.equal(code, 1011)
    await eventually(() => errors.some((e) => e.message === 'user database down'))
  })
})
