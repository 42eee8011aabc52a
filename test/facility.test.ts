import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import type { JWTPayload } from 'jose'
import WebSocket from 'ws'
import { type Broker, type Connection, HttpError, RedisPublisher } from '../src/index.js'
import type { FacilityContext, FacilityDefinition } from '../src/facility/definition.js'
import { FacilityRegistry } from '../src/facility/registry.js'
import { resolveOptions } from '../src/broker/options.js'
import { closeFrame, framesOf, rawClient } from './helpers/raw.js'
import { type RedisServer, type TestRedisClient, startRedis } from './helpers/redis.js'
import { nowSec, signToken } from './helpers/token.js'
import {
  connect,
  eventually,
  sleep,
  startBroker,
  type TestServer,
  upgradeStatus,
  frame,
  frames,
  sendJson,
  closeAll,
  connectionOf,
  fresh,
} from './helpers/ws.js'

const SECRET = new TextEncoder().encode('facility-tests-hmac-secret-0123456789-abcdefghijklmn')
/** No clock tolerance, so a token's `exp` is exactly when its connection expires. */
const JWT = { secret: SECRET, clockTolerance: 0 }

/** Signs an HS256 token for `sub`, expiring at `exp` (seconds) or in ten minutes. */
const mint = (sub = 'alice', exp = nowSec() + 600, claims: JWTPayload = {}): Promise<string> =>
  signToken({ key: SECRET, sub, exp, claims: { groups: ['staff'], ...claims } })

/** `/ws/<facility>?<flags>` with `&token=` when a token is given. */
function path(facility: string, flags = '', token?: string): string {
  const query = [flags, token === undefined ? '' : `token=${encodeURIComponent(token)}`]
    .filter((part) => part !== '')
    .join('&')
  return `/ws/${facility}${query === '' ? '' : `?${query}`}`
}

/** Asserts the upgrade to `url` is refused with `status`. */
async function refused(url: string, status: number): Promise<void> {
  assert.equal((await upgradeStatus(url)).status, status, url)
}

/** Publishes `message` to `user` on `facility` from server code. */
function toUser(broker: Broker, facility: string, user: string, message: string | object) {
  return new RedisPublisher({ facility, users: [user] }, { broker }).publishMessage(
    message as string,
  )
}

/** Publishes `message` on the broadcast channel of `facility`. */
function toAll(broker: Broker, facility: string, message: string | object) {
  return new RedisPublisher({ facility, broadcast: true }, { broker }).publishMessage(
    message as string,
  )
}

/**
 * Resolves once every connection given is closed on the server side: whatever its end calls (the
 * disconnect event, onDisconnect) has been called by then, in the same step.
 */
async function closedSockets(conns: Connection[]): Promise<void> {
  await eventually(() => conns.every((c) => c.state === 'closed'), 10_000)
}

describe('FacilityRegistry', () => {
  const options = resolveOptions({ expire: 7, publishRate: 3 })
  const registry = () => new FacilityRegistry(options)
  const def = (): FacilityDefinition => ({})

  it('matches exact names only exactly, with no params; other names get the ad hoc settings', () => {
    const r = registry()
    const chat = def()
    r.define('chat', chat)
    assert.equal(r.match('chat').settings.definition, chat)
    assert.deepEqual(r.match('chat').params, {})
    for (const other of ['chat2', 'Chat', 'cha', 'chat/1', 'x/chat'])
      assert.equal(r.match(other).settings, r.adHoc)
  })

  it('matches `room/{id}` on one path segment and returns the param', () => {
    const r = registry()
    const room = def()
    r.define('room/{id}', room)
    assert.equal(r.match('room/42').settings.definition, room)
    assert.deepEqual(r.match('room/42').params, { id: '42' })
    assert.deepEqual(r.match('room/a-b.c').params, { id: 'a-b.c' })
    for (const other of ['room', 'room/', 'room/42/x', 'rooms/42', 'xroom/42', '/room/42']) {
      assert.equal(r.match(other).settings, r.adHoc, other)
    }
  })

  it('matches `{a}/{b}` with both params', () => {
    const r = registry()
    r.define('{a}/{b}', def())
    assert.deepEqual(r.match('x/y').params, { a: 'x', b: 'y' })
    for (const other of ['x', 'x/', '/y', 'x/y/z']) assert.equal(r.match(other).settings, r.adHoc)
  })

  it('treats the literal parts of a pattern literally', () => {
    const r = registry()
    r.define('v1.0+/{id}', def())
    assert.deepEqual(r.match('v1.0+/7').params, { id: '7' })
    assert.equal(r.match('v1x0+/7').settings, r.adHoc)
    assert.equal(r.match('v1.00/7').settings, r.adHoc)
  })

  it('prefers an exact name over a pattern defined before it', () => {
    const r = registry()
    const pattern: FacilityDefinition = { format: 'raw' }
    const exact: FacilityDefinition = { format: 'json' }
    r.define('room/{id}', pattern)
    r.define('room/lobby', exact)
    assert.equal(r.match('room/lobby').settings.definition, exact)
    assert.deepEqual(r.match('room/lobby').params, {})
    assert.equal(r.match('room/42').settings.definition, pattern)
  })

  it('tries patterns in the order they were defined', () => {
    const first = registry()
    const generic = def()
    first.define('{a}/{b}', generic)
    first.define('room/{id}', def())
    assert.equal(first.match('room/1').settings.definition, generic)

    const second = registry()
    const room = def()
    const any = def()
    second.define('room/{id}', room)
    second.define('{a}/{b}', any)
    assert.equal(second.match('room/1').settings.definition, room)
    assert.deepEqual(second.match('room/1').params, { id: '1' })
    assert.equal(second.match('hall/1').settings.definition, any)
  })

  it('resolves each setting once: the definition where set, the broker option otherwise', () => {
    const r = registry()
    r.define('own', { expire: 30, publishRate: 0, format: 'json', anonymous: false })
    const own = r.match('own').settings
    assert.equal(r.match('own').settings, own, 'the same object for every match')
    assert.deepEqual(
      [own.expire, own.publishRate, own.format, own.anonymous],
      [30, 0, 'json', false],
    )
    assert.deepEqual(
      [r.adHoc.expire, r.adHoc.publishRate, r.adHoc.format, r.adHoc.anonymous],
      [7, 3, 'raw', true],
    )
  })

  it('refuses a second definition of the same name or pattern with WSF_INVALID_OPTION', () => {
    const r = registry()
    r.define('chat', def())
    r.define('room/{id}', def())
    assert.throws(() => r.define('chat', def()), { code: 'WSF_INVALID_OPTION' })
    assert.throws(() => r.define('room/{id}', def()), { code: 'WSF_INVALID_OPTION' })
  })

  const bad: [string, string, unknown][] = [
    ['an empty name', '', {}],
    ['a name with ":"', 'a:b', {}],
    ['a non-string name', 42 as unknown as string, {}],
    ['a pattern naming one param twice', '{a}/{a}', {}],
    ['a null definition', 'x', null],
    ['a definition that is not an object', 'x', 'json'],
    ['an unknown audience in subscribe', 'x', { subscribe: ['everyone'] }],
    ['subscribe that is not an array', 'x', { subscribe: 'user' }],
    ['an unknown audience in publish', 'x', { publish: ['all'] }],
    ['an unknown audience in autoSubscribe', 'x', { autoSubscribe: ['users'] }],
    ['an unknown format', 'x', { format: 'xml' }],
    ['a format of the wrong case', 'x', { format: 'Binary' }],
    ['a negative expire', 'x', { expire: -1 }],
    ['a NaN expire', 'x', { expire: Number.NaN }],
    ['an infinite expire', 'x', { expire: Infinity }],
    ['a string expire', 'x', { expire: '60' }],
    ['a negative writeDelay', 'x', { writeDelay: -1 }],
    ['a writeDelay past 10000 ms', 'x', { writeDelay: 10_001 }],
    ['a string writeDelay', 'x', { writeDelay: '20' }],
    ['a non-boolean anonymous', 'x', { anonymous: 'false' }],
    ['an authorize that is not a function', 'x', { authorize: true }],
    ['an authorize array with a non-function', 'x', { authorize: [() => true, 'no'] }],
    ['an onConnect that is not a function', 'x', { onConnect: 'hello' }],
    ['an onMessage that is not a function', 'x', { onMessage: {} }],
    ['an onDisconnect that is not a function', 'x', { onDisconnect: 1 }],
    ['a mistyped hook name', 'x', { onConect: () => {} }],
    ['a field no definition has', 'x', { redis: 'redis://h' }],
  ]
  for (const [what, name, definition] of bad) {
    it(`refuses ${what} with WSF_INVALID_OPTION and registers nothing`, () => {
      const r = registry()
      assert.throws(() => r.define(name, definition as FacilityDefinition), {
        code: 'WSF_INVALID_OPTION',
      })
      if (typeof name === 'string' && name !== '') assert.equal(r.match(name).settings, r.adHoc)
    })
  }

  it('names a mistyped field and the field it probably is', () => {
    assert.throws(
      () => registry().define('x', { onConect: () => {} } as FacilityDefinition),
      (err: Error & { code?: string }) =>
        err.code === 'WSF_INVALID_OPTION' && /"onConect".*"onConnect"/.test(err.message),
    )
  })

  it('is what broker.facility() uses: WSF_INVALID_OPTION there too, expireOf sees it', async () => {
    const t = await startBroker({ expire: 7 })
    try {
      assert.throws(() => t.broker.facility('a:b', {}), { code: 'WSF_INVALID_OPTION' })
      assert.throws(() => t.broker.facility('x', { expire: -5 }), { code: 'WSF_INVALID_OPTION' })
      t.broker.facility('room/{id}', { expire: 30 })
      assert.throws(() => t.broker.facility('room/{id}', {}), { code: 'WSF_INVALID_OPTION' })
      assert.equal(t.broker.expireOf('room/9'), 30)
      assert.equal(t.broker.expireOf('other'), 7)
    } finally {
      await t.close()
    }
  })
})

describe('Facility policy', () => {
  let t: TestServer
  before(async () => {
    t = await startBroker({ jwt: JWT })
  })
  after(() => t.close())

  it('refuses subscribe-* flags beyond the subscribe allow-list with 403 and accepts those within', async () => {
    const f = fresh('feed')
    t.broker.facility(f, { subscribe: ['broadcast', 'user'] })
    const token = await mint()
    await refused(t.url(path(f, 'subscribe-group', token)), 403)
    await refused(t.url(path(f, 'subscribe-broadcast&subscribe-session', token)), 403)
    const c = await connect(t.url(path(f, 'subscribe-broadcast&subscribe-user', token)))
    assert.equal(await toAll(t.broker, f, 'to all'), 1)
    assert.equal(await toUser(t.broker, f, 'alice', 'to alice'), 1)
    await c.waitFor(2)
    assert.deepEqual(c.texts, ['to all', 'to alice'])
    // An undefined facility keeps the broker's default: every audience may be subscribed.
    const other = await connect(t.url(path(fresh('plain'), 'subscribe-group', token)))
    await closeAll(c, other)
  })

  it('refuses publish-* flags beyond the publish allow-list with 403, and allows what the broker would refuse', async () => {
    const f = fresh('shout')
    t.broker.facility(f, { publish: ['broadcast'] })
    const token = await mint()
    await refused(t.url(path(f, 'publish-user', token)), 403)
    await refused(t.url(path(f, 'publish-session', token)), 403)
    // The broker's default clientPublish (session, user) refuses broadcast on other facilities.
    await refused(t.url(path(fresh('plain'), 'publish-broadcast', token)), 403)
    const listener = await connect(t.url(path(f, 'subscribe-broadcast')))
    const speaker = await connect(t.url(path(f, 'publish-broadcast', token)))
    await speaker.send('hello all')
    await listener.waitFor(1)
    assert.deepEqual(listener.texts, ['hello all'])
    await closeAll(listener, speaker)
  })

  it('refuses every client publish when publish is empty', async () => {
    const f = fresh('readonly')
    t.broker.facility(f, { publish: [] })
    await refused(t.url(path(f, 'publish-user', await mint())), 403)
  })

  it('autoSubscribe gives a connection without flags its user channel', async () => {
    const f = fresh('inbox')
    t.broker.facility(f, { autoSubscribe: ['user'] })
    const c = await connect(t.url(path(f, '', await mint('bob'))))
    assert.deepEqual(connectionOf(t.broker, f).channels.subscribe, [`user:bob:${f}`])
    assert.equal(await toUser(t.broker, f, 'bob', 'for bob'), 1)
    await c.waitFor(1)
    assert.deepEqual(c.texts, ['for bob'])
    // Without the definition, the same connection subscribes nothing.
    const g = fresh('noauto')
    const bare = await connect(t.url(path(g, '', await mint('bob'))))
    assert.deepEqual(connectionOf(t.broker, g).channels.subscribe, [])
    assert.equal(await toUser(t.broker, g, 'bob', 'lost'), 0)
    // An anonymous connection has no user channel to subscribe.
    const anon = await connect(t.url(path(f)))
    const anonConn = [...t.broker.connections.values()].find(
      (x) => x.facility === f && x.identity.user === null,
    )
    assert.deepEqual(anonConn?.channels.subscribe, [])
    await closeAll(c, bare, anon)
  })

  it('anonymous: false on one facility refuses anonymous clients with 401 while others accept them', async () => {
    const f = fresh('private')
    t.broker.facility(f, { anonymous: false })
    await refused(t.url(path(f, 'subscribe-broadcast')), 401)
    const open = await connect(t.url(path(fresh('public'), 'subscribe-broadcast')))
    const authed = await connect(t.url(path(f, 'subscribe-broadcast', await mint())))
    await closeAll(open, authed)
  })

  it('anonymous: true on one facility accepts anonymous clients on a broker that refuses them', async () => {
    const strict = await startBroker({ jwt: JWT, anonymous: false })
    try {
      const f = fresh('lobby')
      strict.broker.facility(f, { anonymous: true })
      await refused(strict.url(path(fresh('members'), 'subscribe-broadcast')), 401)
      const c = await connect(strict.url(path(f, 'subscribe-broadcast')))
      await c.close()
    } finally {
      await strict.close()
    }
  })

  it("stores client publishes for the facility's expire and replays them", async () => {
    const f = fresh('news')
    t.broker.facility(f, { publish: ['broadcast'], expire: 60 })
    const listener = await connect(t.url(path(f, 'subscribe-broadcast')))
    const speaker = await connect(t.url(path(f, 'publish-broadcast', await mint())))
    await speaker.send('kept')
    await listener.waitFor(1)
    const pub = new RedisPublisher({}, { broker: t.broker })
    assert.equal(await pub.fetchMessage(null, f, 'broadcast'), 'kept')
    const late = await connect(t.url(path(f, 'subscribe-broadcast')))
    await late.waitFor(1)
    assert.deepEqual(late.texts, ['kept'])
    // The broker's expire (0) applies where no facility says otherwise.
    const g = fresh('chatter')
    const token = await mint()
    const tab1 = await connect(t.url(path(g, 'subscribe-user', token)))
    const tab2 = await connect(t.url(path(g, 'publish-user', token)))
    await tab2.send('not kept')
    await tab1.waitFor(1)
    assert.equal(await pub.fetchMessage({ user: 'alice' }, g, 'user'), null)
    await closeAll(listener, speaker, late, tab1, tab2)
  })

  it("stores RedisPublisher publishes for the facility's expire", async () => {
    const f = fresh('kept')
    t.broker.facility(f, { expire: 60 })
    const pub = new RedisPublisher({}, { broker: t.broker })
    await toAll(t.broker, f, 'stored')
    assert.equal(await pub.fetchMessage(null, f, 'broadcast'), 'stored')
    const g = fresh('unkept')
    await toAll(t.broker, g, 'dropped')
    assert.equal(await pub.fetchMessage(null, g, 'broadcast'), null)
  })

  it('runs a single authorize with params and identity; false → 403', async () => {
    const seen: FacilityContext[] = []
    const p = fresh('room')
    t.broker.facility(`${p}/{id}`, {
      authorize: (ctx) => {
        seen.push(ctx)
        return ctx.params.id !== 'secret'
      },
    })
    const c = await connect(t.url(path(`${p}/42`, 'subscribe-broadcast', await mint('carol'))))
    assert.equal(seen.length, 1)
    assert.equal(seen[0]!.facility, `${p}/42`)
    assert.deepEqual(seen[0]!.params, { id: '42' })
    assert.equal(seen[0]!.identity.user, 'carol')
    assert.equal(seen[0]!.request.url?.startsWith(`/ws/${p}/42?`), true)
    assert.deepEqual(connectionOf(t.broker, `${p}/42`).params, { id: '42' })
    await refused(t.url(path(`${p}/secret`, 'subscribe-broadcast', await mint('carol'))), 403)
    assert.equal(seen.length, 2)
    await c.close()
  })

  it('runs every authorize of an array: any false, throw or rejection → 403', async () => {
    const cases: [string, FacilityDefinition['authorize'], number][] = [
      ['all true', [() => true, async () => true], 101],
      ['one false', [() => true, () => false], 403],
      ['one async false', [async () => false, () => true], 403],
      [
        'one throwing',
        [
          () => true,
          () => {
            throw new Error('nope')
          },
        ],
        403,
      ],
      ['one rejecting', [() => Promise.reject(new Error('nope'))], 403],
      ['a single async true', async ({ identity }) => identity.user === 'alice', 101],
      ['a single false', () => false, 403],
    ]
    for (const [what, authorize, status] of cases) {
      const f = fresh('perm')
      t.broker.facility(f, { authorize })
      const url = t.url(path(f, 'subscribe-broadcast', await mint()))
      if (status === 403) assert.equal((await upgradeStatus(url)).status, 403, what)
      else await (await connect(url)).close()
    }
  })

  it('passes an HttpError thrown by authorize through with its status', async () => {
    const f = fresh('gone')
    t.broker.facility(f, {
      authorize: () => {
        throw new HttpError(404, 'no such room')
      },
    })
    await refused(t.url(path(f, 'subscribe-broadcast')), 404)
  })

  it('keeps ws4redis behaviour on undefined facilities', async () => {
    const f = fresh('legacy')
    const token = await mint()
    // Broker defaults: anonymous accepted, any subscribe flag, publish only to session and user.
    await refused(t.url(path(f, 'publish-broadcast', token)), 403)
    const tab1 = await connect(t.url(path(f, 'subscribe-user&subscribe-group', token)))
    const tab2 = await connect(t.url(path(f, 'publish-user', token)))
    // No envelope: a ping is an ordinary message, published as is and never answered.
    await tab2.send('{"type":"ping"}')
    await tab1.waitFor(1)
    await toUser(t.broker, f, 'alice', { a: 1 })
    await tab1.waitFor(2)
    assert.deepEqual(tab1.texts, ['{"type":"ping"}', '{"a":1}'])
    assert.deepEqual(tab2.texts, [])
    await closeAll(tab1, tab2)
  })
})

describe('Facility hooks', () => {
  let t: TestServer
  const errors: Error[] = []
  before(async () => {
    t = await startBroker({ jwt: JWT })
    t.broker.on('error', (err) => errors.push(err))
  })
  after(() => t.close())

  it('onConnect fires once the client is open and can send it a welcome', async () => {
    const p = fresh('welcome')
    const calls: { open: boolean; listed: boolean; ctx: FacilityContext }[] = []
    t.broker.facility(`${p}/{id}`, {
      authorize: ({ params }) => params.id !== 'closed',
      onConnect: (conn, ctx) => {
        calls.push({ open: conn.isOpen, listed: t.broker.connections.has(conn.id), ctx })
        conn.send({ welcome: ctx.identity.user, room: ctx.params.id })
      },
    })
    const c = await connect(t.url(path(`${p}/7`, '', await mint('dave'))))
    await c.waitFor(1)
    assert.deepEqual(JSON.parse(c.texts[0]!), { welcome: 'dave', room: '7' })
    assert.equal(calls.length, 1)
    assert.equal(calls[0]!.open, true)
    assert.equal(calls[0]!.listed, true)
    assert.deepEqual(calls[0]!.ctx.params, { id: '7' })
    // A refused connection never reaches onConnect.
    await refused(t.url(path(`${p}/closed`)), 403)
    assert.equal(calls.length, 1)
    await c.close()
  })

  it('a failing onConnect is reported as an error and leaves the connection open', async () => {
    const f = fresh('badconnect')
    t.broker.facility(f, {
      autoSubscribe: ['broadcast'],
      onConnect: async () => {
        throw new Error('onConnect failed')
      },
    })
    const c = await connect(t.url(path(f)))
    await eventually(() => errors.some((e) => e.message === 'onConnect failed'))
    assert.equal(await toAll(t.broker, f, 'still here'), 1)
    await c.waitFor(1)
    assert.equal(c.ws.readyState, WebSocket.OPEN)
    await c.close()
  })

  it('onMessage sees text as a string and binary as a Buffer on raw facilities; false stops publishing', async () => {
    const f = fresh('filter')
    const seen: unknown[] = []
    t.broker.facility(f, {
      publish: ['broadcast'],
      onMessage: (_conn, message) => {
        seen.push(message)
        return message !== 'private'
      },
    })
    const listener = await connect(t.url(path(f, 'subscribe-broadcast')))
    const speaker = await connect(t.url(path(f, 'publish-broadcast', await mint())))
    await speaker.send('public')
    await speaker.send('private')
    await speaker.send(Buffer.from([1, 2, 0xff]))
    await listener.waitFor(2)
    assert.deepEqual(seen.slice(0, 2), ['public', 'private'])
    await eventually(() => seen.length === 3)
    assert.ok(Buffer.isBuffer(seen[2]), 'binary reaches onMessage as a Buffer')
    assert.deepEqual(seen[2], Buffer.from([1, 2, 0xff]))
    assert.deepEqual(listener.received, [
      { data: 'public', binary: false },
      { data: Buffer.from([1, 2, 0xff]), binary: true },
    ])
    await closeAll(listener, speaker)
  })

  it('a throwing or rejecting onMessage does not kill the connection or the broker', async () => {
    const f = fresh('fragile')
    t.broker.facility(f, {
      publish: ['broadcast'],
      onMessage: (_conn, message) => {
        if (message === 'boom') throw new Error('onMessage threw')
        if (message === 'bang') return Promise.reject(new Error('onMessage rejected'))
      },
    })
    const listener = await connect(t.url(path(f, 'subscribe-broadcast')))
    const speaker = await connect(t.url(path(f, 'publish-broadcast', await mint())))
    await speaker.send('boom')
    await speaker.send('bang')
    await speaker.send('fine')
    await listener.waitFor(1)
    assert.deepEqual(listener.texts, ['fine'])
    assert.ok(errors.some((e) => e.message === 'onMessage threw'))
    assert.ok(errors.some((e) => e.message === 'onMessage rejected'))
    assert.equal(speaker.ws.readyState, WebSocket.OPEN)
    const another = await connect(t.url(path(f, 'subscribe-broadcast')))
    await speaker.send('again')
    await another.waitFor(1)
    assert.deepEqual(another.texts, ['again'])
    await closeAll(listener, speaker, another)
  })

  it('onDisconnect fires once with the close code', async () => {
    const own = await startBroker()
    const f = fresh('bye')
    const calls: [string, number, string][] = []
    const ended: Connection[] = []
    own.broker.facility(f, {
      onDisconnect: (conn, code, ctx) => {
        calls.push([conn.id, code, ctx.facility])
        ended.push(conn)
      },
    })
    try {
      const c = await connect(own.url(path(f)))
      const id = connectionOf(own.broker, f).id
      await c.close(4321)
      await eventually(() => calls.length > 0)
      assert.deepEqual(calls, [[id, 4321, f]])

      // A client whose close is still under way when the broker shuts down: the end of its socket
      // and the shutdown both end the connection, and the hook still fires once.
      const raw = await rawClient(own.port, path(f), { allowHalfOpen: true })
      raw.socket.on('error', () => {})
      const rawId = connectionOf(own.broker, f).id
      raw.socket.write(closeFrame(4000))
      await eventually(() => framesOf(raw.data()).some((fr) => fr.opcode === 0x8))
      assert.equal(calls.length, 1, 'the server waits for the client to end its side')
      // A client on another facility shows when the shutdown has started closing connections.
      const witness = await connect(own.url(path(fresh('witness'))))
      const closing = own.close()
      await witness.closedByServer()
      raw.socket.end()
      await closing
      await closedSockets(ended)
      assert.deepEqual(calls, [
        [id, 4321, f],
        [rawId, 4000, f],
      ])
    } finally {
      await own.close()
    }
  })

  it('onDisconnect fires once with 1001 when the broker shuts down, and not for refused clients', async () => {
    const own = await startBroker()
    const calls: number[] = []
    const ended: Connection[] = []
    const f = fresh('shutdown')
    own.broker.facility(f, {
      authorize: ({ request }) => !request.url?.includes('deny'),
      onDisconnect: (conn, code) => {
        calls.push(code)
        ended.push(conn)
      },
    })
    await refused(own.url(path(f, 'deny')), 403)
    // One client answers the close; one never does and is cut when the shutdown times out.
    const c = await connect(own.url(path(f)))
    const deaf = await rawClient(own.port, path(f))
    deaf.socket.on('error', () => {})
    const closed = c.closedByServer()
    await own.close({ timeout: 200 })
    assert.equal((await closed).code, 1001)
    await closedSockets(ended)
    assert.deepEqual(calls, [1001, 1001])
  })
})

describe('JSON facilities', () => {
  let t: TestServer
  before(async () => {
    t = await startBroker({ jwt: JWT })
  })
  after(() => t.close())

  /** Defines a JSON facility where clients may publish to and subscribe the broadcast channel. */
  function jsonFacility(extra: FacilityDefinition<Connection> = {}): string {
    const f = fresh('json')
    t.broker.facility(f, { format: 'json', publish: ['broadcast', 'user'], ...extra })
    return f
  }

  it('answers {"type":"ping"} with {"type":"pong"} and publishes nothing', async () => {
    const f = jsonFacility()
    const listener = await connect(t.url(path(f, 'subscribe-broadcast')))
    const c = await connect(t.url(path(f, 'publish-broadcast', await mint())))
    await sendJson(c, { type: 'ping' })
    assert.deepEqual(await frame(c, 1), { type: 'pong' })
    await sendJson(c, { type: 'data', data: 'after ping' })
    assert.deepEqual(await frame(listener, 1), { type: 'data', data: 'after ping' })
    assert.equal(listener.received.length, 1)
    await closeAll(listener, c)
  })

  it('publishes {"type":"data","data":…} and delivers it as {"type":"data","data":…}', async () => {
    const f = jsonFacility()
    const listener = await connect(t.url(path(f, 'subscribe-broadcast')))
    const speaker = await connect(
      t.url(path(f, 'publish-broadcast&subscribe-broadcast', await mint())),
    )
    await sendJson(speaker, { type: 'data', data: { text: 'hi', n: [1, 2] } })
    await listener.waitFor(1)
    assert.equal(listener.texts[0], '{"type":"data","data":{"text":"hi","n":[1,2]}}')
    // Without echo the speaker does not get its own message back.
    await toAll(t.broker, f, { from: 'server' })
    assert.deepEqual(await frame(speaker, 1), { type: 'data', data: { from: 'server' } })
    await closeAll(listener, speaker)
  })

  it('delivers every JSON value a client sends as the same value', async () => {
    const f = jsonFacility()
    const listener = await connect(t.url(path(f, 'subscribe-broadcast')))
    const speaker = await connect(t.url(path(f, 'publish-broadcast', await mint())))
    const values = ['text', '{"looks":"like json"}', 42, -1.5, true, false, null, [1, 'a'], {}]
    for (const data of values) await sendJson(speaker, { type: 'data', data })
    await listener.waitFor(values.length)
    assert.deepEqual(
      frames(listener),
      values.map((data) => ({ type: 'data', data })),
    )
    await closeAll(listener, speaker)
  })

  it('wraps what server code publishes and sends: objects embedded, text as a string', async () => {
    const f = jsonFacility({ onConnect: (conn) => conn.send({ welcome: true }) })
    const c = await connect(t.url(path(f, 'subscribe-user', await mint())))
    assert.deepEqual(await frame(c, 1), { type: 'data', data: { welcome: true } })
    await toUser(t.broker, f, 'alice', 'plain text')
    await toUser(t.broker, f, 'alice', { n: 1 })
    await toUser(t.broker, f, 'alice', '[1,2]')
    await c.waitFor(4)
    assert.deepEqual(frames(c).slice(1), [
      { type: 'data', data: 'plain text' },
      { type: 'data', data: { n: 1 } },
      { type: 'data', data: [1, 2] },
    ])
    await c.close()
  })

  it('gives onMessage the parsed data; false stops publishing', async () => {
    const seen: unknown[] = []
    const f = jsonFacility({
      onMessage: (_conn, message) => {
        seen.push(message)
        return !(message as { private?: boolean }).private
      },
    })
    const listener = await connect(t.url(path(f, 'subscribe-broadcast')))
    const speaker = await connect(t.url(path(f, 'publish-broadcast', await mint())))
    await sendJson(speaker, { type: 'data', data: { private: true, n: 1 } })
    await sendJson(speaker, { type: 'data', data: { n: 2 } })
    await listener.waitFor(1)
    assert.deepEqual(seen, [{ private: true, n: 1 }, { n: 2 }])
    assert.deepEqual(frames(listener), [{ type: 'data', data: { n: 2 } }])
    await closeAll(listener, speaker)
  })

  it('answers malformed JSON and unknown types with invalid_message and stays open', async () => {
    const f = jsonFacility()
    const listener = await connect(t.url(path(f, 'subscribe-broadcast')))
    const c = await connect(t.url(path(f, 'publish-broadcast', await mint())))
    const bad = [
      '{not json',
      '[1,2]',
      '"just a string"',
      '42',
      '{"type":"shout","data":1}',
      '{"type":"data"}',
      '{"data":1}',
      '{"type":"token","token":5}',
    ]
    for (const text of bad) await c.send(text)
    await c.waitFor(bad.length)
    for (const [i, got] of frames(c).entries()) {
      const f = got as { type: string; code: string; detail: unknown }
      assert.equal(f.type, 'error', bad[i])
      assert.equal(f.code, 'invalid_message', bad[i])
      assert.equal(typeof f.detail, 'string')
    }
    assert.equal(c.ws.readyState, WebSocket.OPEN)
    await sendJson(c, { type: 'ping' })
    assert.deepEqual(await frame(c, bad.length + 1), { type: 'pong' })
    await sendJson(c, { type: 'data', data: 'ok' })
    assert.deepEqual(await frame(listener, 1), { type: 'data', data: 'ok' })
    assert.equal(listener.received.length, 1)
    await closeAll(listener, c)
  })

  it('refuses an in-band token on a connection without a JWT with invalid_token and stays open', async () => {
    const f = jsonFacility()
    const c = await connect(t.url(path(f, 'subscribe-broadcast')))
    await sendJson(c, { token: await mint() })
    const got = (await frame(c, 1)) as { type: string; code: string }
    assert.equal(got.type, 'error')
    assert.equal(got.code, 'invalid_token')
    await sendJson(c, { type: 'ping' })
    assert.deepEqual(await frame(c, 2), { type: 'pong' })
    await c.close()
  })

  it('{"token": fresh} extends a JWT connection past its first expiry and is not published', async () => {
    const f = jsonFacility()
    const exp1 = nowSec() + 2
    const token = await mint('erin', exp1)
    const listener = await connect(t.url(path(f, 'subscribe-user', await mint('erin'))))
    const kept = await connect(t.url(path(f, 'publish-user', token)))
    const expiring = await connect(t.url(path(f, '', token)))
    const expired = expiring.closedByServer()
    const exp2 = nowSec() + 600
    await sendJson(kept, { token: await mint('erin', exp2) })
    const conns = [...t.broker.connections.values()].filter((c) => c.facility === f)
    await eventually(() => conns.some((c) => c.expiresAt === exp2 * 1000))
    // The typed form works as well.
    const exp3 = exp2 + 60
    await sendJson(kept, { type: 'token', token: await mint('erin', exp3) })
    await eventually(() => conns.some((c) => c.expiresAt === exp3 * 1000))
    // The connection that did not refresh is closed at exp1; the one that did stays.
    assert.equal((await expired).code, 4001)
    await sleep(100)
    await sendJson(kept, { type: 'ping' })
    assert.deepEqual(await frame(kept, 1), { type: 'pong' })
    assert.equal(kept.ws.readyState, WebSocket.OPEN)
    await sendJson(kept, { type: 'data', data: 'after refresh' })
    await listener.waitFor(1)
    assert.deepEqual(frames(listener), [{ type: 'data', data: 'after refresh' }])
    await closeAll(listener, kept)
  })

  it('sends expired_token, then closes with 4001, when the token expires', async () => {
    const f = jsonFacility()
    const c = await connect(t.url(path(f, 'subscribe-user', await mint('frank', nowSec() + 2))))
    const { code } = await c.closedByServer()
    assert.equal(code, 4001)
    const got = frames(c) as { type: string; code: string }[]
    assert.equal(got.length, 1)
    assert.equal(got[0]!.type, 'error')
    assert.equal(got[0]!.code, 'expired_token')
  })

  for (const [what, token, code] of [
    ['a garbage token', async () => 'not.a.jwt', 'invalid_token'],
    ["another user's token", () => mint('mallory'), 'invalid_token'],
    [
      'a token signed with another secret',
      () =>
        signToken({
          key: 'some-other-secret-of-sufficient-length-0123456789',
          sub: 'alice',
          exp: nowSec() + 600,
        }),
      'invalid_token',
    ],
    ['an expired token', () => mint('alice', nowSec() - 60), 'expired_token'],
  ] as const) {
    it(`answers an in-band refresh with ${what} with ${code}, then closes with 1008`, async () => {
      const f = jsonFacility()
      const c = await connect(t.url(path(f, 'subscribe-user', await mint())))
      const closed = c.closedByServer()
      await sendJson(c, { token: await token() })
      assert.equal((await closed).code, 1008)
      const got = frames(c) as { type: string; code: string }[]
      assert.equal(got.length, 1)
      assert.equal(got[0]!.type, 'error')
      assert.equal(got[0]!.code, code)
    })
  }
})

describe('Facilities on Redis', () => {
  let redis: RedisServer
  let raw: TestRedisClient
  let t: TestServer
  before(async () => {
    redis = await startRedis()
    raw = await redis.client()
    t = await startBroker({ redis: redis.url, jwt: JWT, expire: 30 })
  })
  after(async () => {
    await t?.close()
    await raw?.close()
    await redis?.stop()
  })

  it('delivers a raw PUBLISH of plain text as a string and of JSON text as a value', async () => {
    const f = fresh('jsonredis')
    t.broker.facility(f, { format: 'json', subscribe: ['broadcast'] })
    const c = await connect(t.url(path(f, 'subscribe-broadcast')))
    assert.equal(await raw.publish(`broadcast:${f}`, 'plain text from Django'), 1)
    await raw.publish(`broadcast:${f}`, '{"type":"notification","n":[1,2]}')
    await raw.publish(`broadcast:${f}`, '{broken json')
    await c.waitFor(3)
    assert.deepEqual(frames(c), [
      { type: 'data', data: 'plain text from Django' },
      { type: 'data', data: { type: 'notification', n: [1, 2] } },
      { type: 'data', data: '{broken json' },
    ])
    await refused(t.url(path(f, 'subscribe-user', await mint())), 403)
    await c.close()
  })

  it("stores client and server publishes for the facility's expire, not the broker's", async () => {
    const long = fresh('long')
    const none = fresh('none')
    t.broker.facility(long, { format: 'json', publish: ['broadcast'], expire: 120 })
    t.broker.facility(none, { publish: ['broadcast'], expire: 0 })
    const plain = fresh('plain')

    await toAll(t.broker, long, { from: 'server' })
    const serverTtl = await raw.ttl(`broadcast:${long}`)
    assert.ok(serverTtl > 30 && serverTtl <= 120, `TTL ${serverTtl}`)
    await toAll(t.broker, none, 'not stored')
    assert.equal(await raw.exists(`broadcast:${none}`), 0)
    await toAll(t.broker, plain, 'broker expire')
    const plainTtl = await raw.ttl(`broadcast:${plain}`)
    assert.ok(plainTtl > 0 && plainTtl <= 30, `TTL ${plainTtl}`)

    const listener = await connect(t.url(path(long, 'subscribe-broadcast')))
    assert.deepEqual(await frame(listener, 1), { type: 'data', data: { from: 'server' } })
    const speaker = await connect(t.url(path(long, 'publish-broadcast', await mint())))
    await sendJson(speaker, { type: 'data', data: { from: 'client' } })
    assert.deepEqual(await frame(listener, 2), { type: 'data', data: { from: 'client' } })
    const clientTtl = await raw.ttl(`broadcast:${long}`)
    assert.ok(clientTtl > 30 && clientTtl <= 120, `TTL ${clientTtl}`)
    const pub = new RedisPublisher({}, { broker: t.broker })
    assert.equal(await pub.fetchMessage(null, long, 'broadcast'), '{"from":"client"}')

    const noneListener = await connect(t.url(path(none, 'subscribe-broadcast')))
    const noneSpeaker = await connect(t.url(path(none, 'publish-broadcast', await mint())))
    await noneSpeaker.send('still not stored')
    await noneListener.waitFor(1)
    assert.equal(await raw.exists(`broadcast:${none}`), 0)
    await closeAll(listener, speaker, noneListener, noneSpeaker)
  })

  it('applies allow-lists, autoSubscribe and anonymous: false over Redis', async () => {
    const f = fresh('inboxredis')
    t.broker.facility(f, { autoSubscribe: ['user'], subscribe: ['user'], anonymous: false })
    await refused(t.url(path(f)), 401)
    await refused(t.url(path(f, 'subscribe-broadcast', await mint())), 403)
    const c = await connect(t.url(path(f, '', await mint('gina'))))
    assert.equal(await toUser(t.broker, f, 'gina', 'hello gina'), 1)
    await c.waitFor(1)
    assert.deepEqual(c.texts, ['hello gina'])
    await c.close()
  })
})
