import assert from 'node:assert/strict'
import { after, afterEach, before, describe, it } from 'node:test'
import express from 'express'
import { publisherMiddleware, SELF } from '../src/integrations/express.js'
import { HttpError, RedisPublisher } from '../src/index.js'
import { createTestBroker, type TestBroker, TestingError } from '../src/testing/index.js'
import { TEST_IDENTITY_HEADER } from '../src/identity/test-identities.js'
import { exitsByItself, spawnNode } from './helpers/child.js'
import { type RedisServer, startRedis } from './helpers/redis.js'
import { signToken } from './helpers/token.js'
import { eventually, startBroker, upgradeStatus } from './helpers/ws.js'

const JWT_SECRET = 'a jwt secret of at least thirty-two bytes'
const ALL = 'subscribe-user&subscribe-group&subscribe-session'

const brokers: TestBroker[] = []
/** A test broker that is closed after the test. */
function testBroker(options: Parameters<typeof createTestBroker>[0] = {}): TestBroker {
  const t = createTestBroker(options)
  brokers.push(t)
  return t
}
afterEach(async () => {
  await Promise.all(brokers.splice(0).map((t) => t.close()))
})

describe('wsfacility/testing: identities', () => {
  it('connects as the given user, groups and session: their channels reach the socket', async () => {
    const t = await testBroker().listen()
    const ann = await t.connect(`room?${ALL}`, {
      user: 'ann',
      groups: ['staff'],
      sessionKey: 's1',
    })
    assert.deepEqual(ann.connection.identity, { user: 'ann', groups: ['staff'], sessionKey: 's1' })
    const pub = (target: object) =>
      new RedisPublisher({ facility: 'room', ...target }, { broker: t.broker })
    assert.equal(await pub({ users: ['ann'] }).publishMessage('to ann'), 1)
    assert.equal(await pub({ groups: ['staff'] }).publishMessage('to staff'), 1)
    assert.equal(await pub({ sessions: ['s1'] }).publishMessage('to s1'), 1)
    assert.equal(await pub({ users: ['bob'] }).publishMessage('to bob'), 0)
    assert.equal(await ann.nextMessage(), 'to ann')
    assert.equal(await ann.nextMessage(), 'to staff')
    assert.equal(await ann.nextMessage(), 'to s1')
  })

  it('lets an identity in where the facility refuses anonymous clients, and not without one', async () => {
    const t = await testBroker().listen()
    t.broker.facility('private', { anonymous: false })
    const refused = await t.refusal('private?subscribe-user')
    assert.equal(refused.status, 401)
    const ann = await t.connect('private?subscribe-user', { user: 'ann' })
    assert.equal(ann.connection.identity.user, 'ann')
  })

  it('refuses a key the registry does not know with 401 instead of going on anonymously', async () => {
    const t = await testBroker().listen()
    const refused = await upgradeStatus(t.wsUrl('news?subscribe-broadcast'), {
      [TEST_IDENTITY_HEADER]: 'made-up',
    })
    assert.equal(refused.status, 401)
    assert.match(refused.body, /unknown test identity/)
  })

  it('is not honoured by a broker made with createBroker, even with a real key', async () => {
    const t = await testBroker().listen()
    const { [TEST_IDENTITY_HEADER]: key } = t.headers({ user: 'root' })
    const production = await startBroker({})
    try {
      production.broker.facility('private', { anonymous: false })
      const seen = await upgradeStatus(production.url('/ws/private?subscribe-user'), {
        [TEST_IDENTITY_HEADER]: key!,
      })
      assert.equal(seen.status, 401)
      const identity = await production.broker.identify({
        headers: { [TEST_IDENTITY_HEADER]: key },
      } as never)
      assert.equal(identity.user, null)
    } finally {
      await production.close()
    }
  })

  it("leaves a socket without an identity to the broker's own authentication (a real JWT)", async () => {
    const t = await testBroker({ jwt: { secret: JWT_SECRET }, anonymous: false }).listen()
    const token = await signToken({ key: JWT_SECRET, sub: 'carol', exp: '10m' })
    const carol = await t.connect('news?subscribe-user', null, {
      protocols: ['wsfacility', `bearer.${token}`],
    })
    assert.equal(carol.connection.identity.user, 'carol')
    assert.equal((await t.refusal('news?subscribe-user')).status, 401)
  })

  it('gives HTTP requests an identity with headers(): SELF in an Express route means it', async () => {
    const t = testBroker()
    const app = express()
    app.use(publisherMiddleware(t.broker))
    app.post('/me', async (req, res) => {
      const receivers = await req.wsfacility!.publish({ facility: 'inbox', users: [SELF] }, 'hi')
      res.json({ receivers, identity: await req.wsfacility!.identity() })
    })
    await t.listen(app)
    const ann = await t.connect('inbox?subscribe-user', { user: 'ann' })
    const res = await fetch(`${t.url}/me`, { method: 'POST', headers: t.headers({ user: 'ann' }) })
    const body = (await res.json()) as { receivers: number; identity: unknown }
    assert.deepEqual(body, {
      receivers: 1,
      identity: { user: 'ann', groups: [], sessionKey: null },
    })
    assert.equal(await ann.nextMessage(), 'hi')
  })
})

describe('wsfacility/testing: awaitable helpers', () => {
  it('keeps messages that came before nextMessage() was called, in order, text and binary', async () => {
    const t = await testBroker({ expire: 60 }).listen()
    await t.broker.publish(['broadcast:feed'], 'stored')
    const a = await t.connect('feed?subscribe-broadcast')
    await t.broker.publish(['broadcast:feed'], 'one')
    await t.broker.publish(['broadcast:feed'], Buffer.from([1, 0xff]))
    await t.broker.publish(['broadcast:feed'], { n: 3 })
    await t.broker.engine.barrier()
    assert.equal(await a.nextMessage(), 'stored')
    assert.equal(await a.nextMessage(), 'one')
    assert.deepEqual(await a.nextMessage(), Buffer.from([1, 0xff]))
    assert.deepEqual(await a.nextJson(), { n: 3 })
    assert.equal(a.received.length, 4)
  })

  it('rejects nextMessage() with WSF_TIMEOUT naming what came, and when the socket closes first', async () => {
    const t = await testBroker().listen()
    const a = await t.connect('quiet?subscribe-broadcast')
    await t.broker.publish(['broadcast:quiet'], 'earlier')
    assert.equal(await a.nextMessage(), 'earlier')
    await assert.rejects(a.nextMessage(50), (err: unknown) => {
      assert.ok(err instanceof TestingError)
      assert.equal(err.code, 'WSF_TIMEOUT')
      assert.match(err.message, /"earlier"/)
      return true
    })
    const waiting = a.nextMessage(60_000)
    a.connection.close(4100, 'bye')
    await assert.rejects(waiting, { code: 'WSF_TEST_EXPECTATION' })
  })

  it('waits timeout ms by default, and refuses a timeout or option name that cannot work', async () => {
    const t = await testBroker({ timeout: 30 }).listen()
    const a = await t.connect('slow?subscribe-broadcast', null, { timeout: 10_000 })
    await assert.rejects(a.nextMessage(), (err: unknown) => {
      assert.ok(err instanceof TestingError)
      assert.equal(err.code, 'WSF_TIMEOUT')
      assert.match(err.message, /within 30 ms/)
      return true
    })
    for (const timeout of [0, -1, Number.NaN]) {
      assert.throws(() => createTestBroker({ timeout }), { code: 'WSF_INVALID_OPTION' })
    }
    assert.throws(
      () => createTestBroker({ timout: 5 } as never),
      (err: Error & { code?: string }) =>
        err.code === 'WSF_INVALID_OPTION' && /"timout".*"timeout"/.test(err.message),
    )
  })

  it('nothingWithin() resolves on silence and rejects with the message that arrived', async () => {
    const t = await testBroker().listen()
    const a = await t.connect('calm?subscribe-broadcast')
    await a.nothingWithin(30)
    const waiting = a.nothingWithin(60_000)
    await t.broker.publish(['broadcast:calm'], 'noise')
    await assert.rejects(waiting, (err: unknown) => {
      assert.ok(err instanceof TestingError)
      assert.equal(err.code, 'WSF_TEST_EXPECTATION')
      assert.match(err.message, /"noise"/)
      return true
    })
    await t.broker.publish(['broadcast:calm'], 'unread')
    await t.broker.engine.barrier()
    assert.equal(await a.nextMessage(), 'unread')
    await t.broker.publish(['broadcast:calm'], 'left unread')
    // The broker has it once the barrier resolves; the socket may not yet: nothingWithin(0) is
    // asked until the message is there, and must then fail naming it.
    await t.broker.engine.barrier()
    let failure: unknown = null
    await eventually(async () => {
      failure = await a.nothingWithin(0).then(
        () => null,
        (err: unknown) => err,
      )
      return failure !== null
    })
    assert.match(String(failure), /"left unread"/)
  })

  it('closed() resolves with the code and reason the server closed with', async () => {
    const t = await testBroker().listen()
    t.broker.facility('kick', { onConnect: (conn) => conn.close(4003, 'not today') })
    const a = await t.connect('kick?subscribe-broadcast')
    assert.deepEqual(await a.closed(), { code: 4003, reason: 'not today' })
    assert.deepEqual(a.closeInfo, { code: 4003, reason: 'not today' })
    const b = await t.connect('other?subscribe-broadcast')
    await assert.rejects(b.closed(20), { code: 'WSF_TIMEOUT' })
    assert.equal((await b.close(1000)).code, 1000)
  })

  it("keeps the broker's background errors in errors (a hook that threw)", async () => {
    const t = await testBroker().listen()
    t.broker.facility('faulty', {
      onConnect: () => {
        throw new Error('hook bug')
      },
    })
    assert.equal(t.errors.length, 0)
    await t.connect('faulty?subscribe-broadcast')
    await eventually(() => t.errors.length > 0)
    assert.deepEqual(
      t.errors.map((e) => e.message),
      ['hook bug'],
    )
  })

  it('sends what clients publish to the others', async () => {
    const t = await testBroker({ clientPublish: ['broadcast'] }).listen()
    const reader = await t.connect('talk?subscribe-broadcast')
    const writer = await t.connect('talk?publish-broadcast', { user: 'ann' })
    await writer.send('hello')
    await writer.sendJson({ n: 1 })
    assert.equal(await reader.nextMessage(), 'hello')
    assert.deepEqual(await reader.nextJson(), { n: 1 })
    await writer.nothingWithin(20)
  })

  it('rejects connect() with the HttpError of a refusal; refusal() gives status, reason, headers', async () => {
    const t = await testBroker({ maxConnections: 1 }).listen()
    await t.connect('full?subscribe-broadcast')
    await assert.rejects(t.connect('full?subscribe-broadcast'), (err: unknown) => {
      assert.ok(err instanceof HttpError)
      assert.equal(err.status, 503)
      return true
    })
    const refused = await t.refusal('full?subscribe-broadcast')
    assert.equal(refused.status, 503)
    assert.ok(refused.reason.length > 0)
    assert.ok(refused.headers['retry-after'])
    await assert.rejects(
      testBroker()
        .listen()
        .then((u) => u.refusal('open?subscribe-broadcast')),
      { code: 'WSF_TEST_EXPECTATION' },
    )
  })
})

describe('wsfacility/testing: cleanup', () => {
  it('close() closes the clients (1001), the broker and the server', async () => {
    const t = testBroker()
    await t.listen()
    const a = await t.connect('bye?subscribe-broadcast', { user: 'ann' })
    const { url } = t
    await t.close()
    assert.equal(a.closeInfo?.code, 1001)
    assert.equal(t.broker.closed, true)
    assert.equal(t.server.listening, false)
    await assert.rejects(fetch(url))
    await assert.rejects(t.connect('bye?subscribe-broadcast'), { code: 'WSF_CLOSED' })
  })

  it('lets the process exit by itself after close() (memory engine)', async () => {
    const child = spawnNode(['--import', 'tsx', 'test/fixtures/testing-close.ts'])
    const exit = await exitsByItself(child)
    assert.equal(exit.code, 0, child.stderr)
    assert.match(child.stdout, /^got hello\nhttp 404\nclosed 1001\n$/)
  })

  describe('on Redis', () => {
    let redis: RedisServer
    before(async () => {
      redis = await startRedis()
    })
    after(() => redis.stop())

    it('runs on a given Redis, and close() leaves no connection of it behind', async () => {
      const inspector = await redis.client()
      try {
        await inspector.clientSetName('inspector')
        const t = await testBroker({ redis: redis.url }).listen()
        const ann = await t.connect('news?subscribe-user', { user: 'ann' })
        // Another process publishing, as ws4redis's RedisPublisher would.
        assert.equal(await inspector.publish('user:ann:news', 'from redis'), 1)
        assert.equal(await ann.nextMessage(), 'from redis')
        const others = async () =>
          (await inspector.clientList()).filter((c) => c.name !== 'inspector').length
        assert.ok((await others()) > 0)
        await t.close()
        assert.equal(await others(), 0)
      } finally {
        await inspector.close()
      }
    })

    it('lets the process exit by itself after close() (Redis)', async () => {
      const child = spawnNode(['--import', 'tsx', 'test/fixtures/testing-close.ts'], {
        REDIS_URL: redis.url,
      })
      const exit = await exitsByItself(child)
      assert.equal(exit.code, 0, child.stderr)
      assert.match(child.stdout, /^got hello\nhttp 404\nclosed 1001\n$/)
    })
  })

  it('is the package entry wsfacility/testing (built)', async () => {
    const entry = 'wsfacility/testing'
    const mod = (await import(entry)) as Record<string, unknown>
    assert.deepEqual(Object.keys(mod).sort(), [
      'TestBroker',
      'TestSocket',
      'TestingError',
      'createTestBroker',
    ])
  })
})
