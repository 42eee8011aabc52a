import assert from 'node:assert/strict'
import http from 'node:http'
import { after, before, describe, it } from 'node:test'
import { type Broker, type BrokerOptions, createBroker } from '../src/index.js'
import { ServerApi } from '../src/cli/api/index.js'
import { listen, type Listening } from './helpers/http.js'
import { identify } from './helpers/identity.js'
import { type RedisServer, startRedis } from './helpers/redis.js'
import { closeAll, connect, eventually, fresh } from './helpers/ws.js'

const KEY = 'api-key-0123456789abcdef'
const OLD_KEY = 'old-key-0123456789abcdef'

/** A broker on an HTTP server that answers /api/ with the server API. */
interface ApiServer {
  broker: Broker
  api: ServerApi
  http: Listening
  ws(path: string): string
  call(method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<Res>
  close(): Promise<void>
}

interface Res {
  status: number
  headers: Headers
  body: Record<string, unknown>
}

async function startApi(options: BrokerOptions = {}): Promise<ApiServer> {
  const broker = createBroker({ identify, ...options })
  broker.on('error', () => {})
  const api = new ServerApi(broker, { keys: [KEY, OLD_KEY], bodyLimit: 4096 })
  const server = http.createServer((req, res) => {
    if (broker.handleRequest(req, res) || api.handle(req, res)) return
    res.writeHead(404).end()
  })
  broker.attach(server)
  await broker.ready()
  const listening = await listen(server)
  return {
    broker,
    api,
    http: listening,
    ws: (path) => `ws://127.0.0.1:${listening.port}${path}`,
    async call(method, path, body, headers = {}) {
      const res = await fetch(`${listening.base}${path}`, {
        method,
        headers: {
          authorization: `apikey ${KEY}`,
          ...(body !== undefined && { 'content-type': 'application/json' }),
          ...headers,
        },
        ...(body !== undefined && { body: typeof body === 'string' ? body : JSON.stringify(body) }),
      })
      const text = await res.text()
      return { status: res.status, headers: res.headers, body: text ? JSON.parse(text) : {} }
    },
    async close() {
      api.board.stop()
      await broker.close()
      await listening.close()
    },
  }
}

describe('HTTP server API (two brokers on one Redis)', () => {
  let redis: RedisServer
  let a: ApiServer
  let b: ApiServer

  before(async () => {
    redis = await startRedis()
    const options: BrokerOptions = { redis: redis.url, presence: true }
    a = await startApi(options)
    b = await startApi(options)
    a.broker.facility('logbook', { history: { size: 10, ttl: 60 }, format: 'json' })
    b.broker.facility('logbook', { history: { size: 10, ttl: 60 }, format: 'json' })
  })
  after(async () => {
    await a?.close()
    await b?.close()
    await redis?.stop()
  })

  it('refuses a request without a valid key with 401, and takes every configured key', async () => {
    for (const headers of [
      { authorization: '' },
      { authorization: 'apikey wrong-key-0123456789' },
      { authorization: `Bearer ${KEY}` },
      { authorization: `apikey ${KEY}x` },
    ]) {
      const res = await a.call('GET', '/api/info', undefined, headers)
      assert.equal(res.status, 401, JSON.stringify(headers))
      assert.equal(res.headers.get('www-authenticate'), 'apikey')
    }
    assert.equal((await a.call('GET', '/api/info')).status, 200)
    const old = await a.call('GET', '/api/info', undefined, { authorization: `ApiKey ${OLD_KEY}` })
    assert.equal(old.status, 200)
    // Without a key nothing says whether a route exists.
    const unknown = await a.call('GET', '/api/nothing', undefined, { authorization: '' })
    assert.equal(unknown.status, 401)
  })

  it('publishes to a user connected to the other process and counts the receivers', async () => {
    const f = fresh('apipub')
    const ann = await connect(b.ws(`/ws/${f}?subscribe-user&user=ann`))
    const all = await connect(a.ws(`/ws/${f}?subscribe-broadcast&user=bob`))
    try {
      const res = await a.call('POST', '/api/publish', {
        facility: f,
        users: ['ann'],
        data: 'hi ann',
      })
      assert.equal(res.status, 200, JSON.stringify(res.body))
      assert.deepEqual(res.body, { receivers: 1, channels: [`user:ann:${f}`] })
      assert.equal((await ann.waitFor(1))[0]!.data, 'hi ann')

      const json = await a.call('POST', '/api/publish', {
        facility: f,
        broadcast: true,
        users: ['ann'],
        data: { type: 'notice', n: 1 },
      })
      assert.equal(json.body.receivers, 2)
      assert.deepEqual(JSON.parse((await all.waitFor(1))[0]!.data as string), {
        type: 'notice',
        n: 1,
      })

      const bin = await a.call('POST', '/api/publish', {
        facility: f,
        users: ['ann'],
        data: Buffer.from([0, 255, 1]).toString('base64'),
        encoding: 'base64',
      })
      assert.equal(bin.body.receivers, 1)
      const got = (await ann.waitFor(3))[2]!
      assert.equal(got.binary, true)
      assert.deepEqual(got.data, Buffer.from([0, 255, 1]))
    } finally {
      await closeAll(ann, all)
    }
  })

  it('answers a bad body with 400 naming the field, and refuses wrong types and sizes', async () => {
    const bad = async (body: unknown, field: string | undefined, status = 400) => {
      const res = await a.call('POST', '/api/publish', body)
      assert.equal(res.status, status, JSON.stringify(res.body))
      assert.equal(res.body.field, field, JSON.stringify(res.body))
      assert.equal(typeof res.body.error, 'string')
    }
    await bad({ facility: 'chat', usres: ['ann'], data: 'x' }, 'usres')
    await bad({ facility: 'chat', users: ['ann', ''], data: 'x' }, 'users.1')
    await bad({ facility: 'chat', users: 'ann', data: 'x' }, 'users')
    await bad({ facility: 'a:b', users: ['ann'], data: 'x' }, 'facility')
    await bad({ facility: 'chat', users: ['ann'] }, 'data')
    await bad({ facility: 'chat', data: 'x' }, 'broadcast')
    await bad({ facility: 'chat', broadcast: true, data: 'x', expire: -1 }, 'expire')
    await bad({ facility: 'chat', broadcast: true, data: 7, encoding: 'base64' }, 'data')
    await bad('{"facility": "chat",', undefined)
    await bad([1, 2], undefined)

    const plain = await a.call('POST', '/api/publish', 'x', { 'content-type': 'text/plain' })
    assert.equal(plain.status, 415)
    const big = await a.call('POST', '/api/publish', {
      facility: 'chat',
      broadcast: true,
      data: 'x'.repeat(5000),
    })
    assert.equal(big.status, 413)
    assert.equal((await a.call('GET', '/api/publish')).status, 405)
    assert.equal((await a.call('GET', '/api/publish')).headers.get('allow'), 'POST')
    assert.equal((await a.call('GET', '/api/nothing')).status, 404)
    assert.equal((await a.call('GET', '/api/constructor')).status, 404)
  })

  it('publishes with history, gives the offset, and reads the history back from it', async () => {
    const first = await a.call('POST', '/api/publish', {
      facility: 'logbook',
      broadcast: true,
      data: { n: 1 },
    })
    assert.equal(first.status, 200, JSON.stringify(first.body))
    const epoch = first.body.epoch as string
    assert.match(epoch, /^[0-9a-z]+$/)
    assert.equal(typeof first.body.offset, 'number')
    const offset = first.body.offset as number
    assert.deepEqual(first.body.positions, { 'broadcast:logbook': { epoch, offset } })
    const second = await b.call('POST', '/api/publish', {
      facility: 'logbook',
      broadcast: true,
      data: 'two',
    })
    assert.equal(second.body.offset, offset + 1)
    assert.equal(second.body.epoch, epoch)

    const since = await a.call(
      'GET',
      `/api/history?channel=broadcast:logbook&since=${offset - 1}&epoch=${epoch}`,
    )
    assert.equal(since.status, 200, JSON.stringify(since.body))
    assert.deepEqual(since.body, {
      channel: 'broadcast:logbook',
      epoch,
      offset: offset + 1,
      reset: false,
      entries: [
        { offset, data: '{"n":1}' },
        { offset: offset + 1, data: 'two' },
      ],
    })
    const limited = await a.call('GET', `/api/history?channel=broadcast:logbook&since=0&limit=1`)
    assert.equal((limited.body.entries as unknown[]).length, 1)
    const stale = await a.call(
      'GET',
      `/api/history?channel=broadcast:logbook&since=${offset}&epoch=old`,
    )
    assert.equal(stale.body.reset, true)
    assert.equal((stale.body.entries as unknown[]).length, offset + 1)

    const none = await a.call('GET', '/api/history?channel=broadcast:chat&since=0')
    assert.equal(none.status, 404)
    assert.equal((await a.call('GET', '/api/history?since=0')).status, 400)
    assert.equal((await a.call('GET', '/api/history?channel=nothing')).status, 400)
    const badSince = await a.call('GET', '/api/history?channel=broadcast:logbook&since=-1')
    assert.equal(badSince.body.field, 'since')
  })

  it('lists who is online on every process, overall and per facility', async () => {
    const f = fresh('apipresence')
    const clients = [
      await connect(a.ws(`/ws/${f}?subscribe-user&user=cleo`)),
      await connect(b.ws(`/ws/${f}?subscribe-user&user=cleo`)),
      await connect(b.ws(`/ws/${f}?subscribe-user&user=dan`)),
      await connect(b.ws(`/ws/other${f}?subscribe-user&user=eve`)),
    ]
    try {
      await eventually(
        async () => (await a.call('GET', `/api/presence?facility=${f}`)).body.online === 2,
      )
      const list = await a.call('GET', `/api/presence?facility=${f}`)
      assert.deepEqual(list.body, {
        facility: f,
        online: 2,
        connections: 3,
        users: [
          { user: 'cleo', connections: 2 },
          { user: 'dan', connections: 1 },
        ],
      })
      const overall = await a.call('GET', '/api/presence')
      const names = (overall.body.users as { user: string }[]).map((u) => u.user)
      assert.ok(
        ['cleo', 'dan', 'eve'].every((u) => names.includes(u)),
        names.join(),
      )
      const cleo = await b.call('GET', `/api/presence/cleo?facility=${f}`)
      assert.deepEqual(cleo.body, { user: 'cleo', facility: f, online: true, connections: 2 })
      const eve = await b.call('GET', `/api/presence/eve?facility=${f}`)
      assert.deepEqual(eve.body, { user: 'eve', facility: f, online: false, connections: 0 })
      assert.equal((await a.call('POST', '/api/presence/cleo')).status, 405)
      assert.equal((await a.call('GET', '/api/presence?facility=a:b')).status, 400)
    } finally {
      await closeAll(...clients)
    }
  })

  it('disconnects a user on every process, or one connection, with the code asked for', async () => {
    const f = fresh('apidisc')
    const onA = await connect(a.ws(`/ws/${f}?subscribe-user&user=fay`))
    const onB = await connect(b.ws(`/ws/${f}?subscribe-user&user=fay`))
    const other = await connect(b.ws(`/ws/${f}?subscribe-user&user=gus`))
    try {
      const closedA = onA.closedByServer()
      const closedB = onB.closedByServer()
      const res = await a.call('POST', '/api/disconnect', {
        user: 'fay',
        code: 4001,
        reason: 'bye',
      })
      assert.deepEqual(res.body, { user: 'fay', disconnected: true })
      assert.deepEqual(await closedA, { code: 4001, reason: 'bye' })
      assert.deepEqual(await closedB, { code: 4001, reason: 'bye' })
      assert.equal(other.ws.readyState, other.ws.OPEN)

      const id = [...b.broker.connections.values()].find((c) => c.identity.user === 'gus')!.id
      const closedOther = other.closedByServer()
      const one = await a.call('POST', '/api/disconnect', { connection: id })
      assert.deepEqual(one.body, { connection: id, disconnected: true })
      assert.equal((await closedOther).code, 1000)

      const gone = await a.call('POST', '/api/disconnect', { connection: 'nonode.1' })
      assert.equal(gone.body.disconnected, false)
      const both = await a.call('POST', '/api/disconnect', { user: 'fay', connection: id })
      assert.equal(both.status, 400)
      const code = await a.call('POST', '/api/disconnect', { user: 'fay', code: 1006 })
      assert.equal(code.status, 400)
      assert.equal(code.body.field, 'code')
    } finally {
      await closeAll(onA, onB, other)
    }
  })

  it('reports every live process with its connections and channels', async () => {
    a.api.board.start()
    b.api.board.start()
    const f = fresh('apiinfo')
    const clients = [
      await connect(a.ws(`/ws/${f}?subscribe-broadcast&user=hal`)),
      await connect(b.ws(`/ws/${f}?subscribe-broadcast&subscribe-user&user=ivy`)),
    ]
    try {
      await eventually(async () => {
        const res = await a.call('GET', '/api/info')
        return (res.body.nodes as unknown[]).length === 2
      })
      // b's figures reach a through Redis: wait for b's next report, then compare.
      b.api.board.stop()
      b.api.board.start()
      await eventually(async () => (await a.call('GET', '/api/info')).body.connections === 2)
      const res = await a.call('GET', '/api/info')
      assert.equal(res.body.redis, 'ready')
      const nodes = res.body.nodes as {
        id: string
        connections: number
        facilities: Record<string, number>
        top: { channel: string; connections: number }[]
      }[]
      assert.deepEqual(
        nodes.map((n) => n.id),
        [a.broker.engine.nodeId, b.broker.engine.nodeId],
      )
      assert.equal(nodes[1]!.facilities[f], 1)
      assert.deepEqual(nodes[1]!.top.slice(0, 2), [
        { channel: `broadcast:${f}`, connections: 1 },
        { channel: `user:ivy:${f}`, connections: 1 },
      ])
      assert.equal(res.body.channels, a.broker.stats.channels + b.broker.stats.channels)
    } finally {
      await closeAll(...clients)
      a.api.board.stop()
      b.api.board.stop()
    }
  })
})

describe('HTTP server API without Redis or presence', () => {
  it('answers 409 for presence when it is off, and 503 while Redis is down', async () => {
    const redis = await startRedis()
    const s = await startApi({ redis: redis.url })
    try {
      const off = await s.call('GET', '/api/presence')
      assert.equal(off.status, 409)
      assert.match(off.body.error as string, /--presence/)
      await redis.stop()
      await eventually(() => s.broker.engine.status !== 'ready')
      const down = await s.call('POST', '/api/publish', {
        facility: 'f',
        broadcast: true,
        data: 'x',
      })
      assert.equal(down.status, 503, JSON.stringify(down.body))
      assert.equal(down.headers.get('retry-after'), '1')
    } finally {
      await s.close()
      await redis.stop()
    }
  })

  it('refuses keys that are too short to be secret, and without keys answers nothing', () => {
    const broker = createBroker()
    assert.equal(
      new ServerApi(broker, { keys: [] }).handle({ url: '/api/info' } as never, null as never),
      false,
    )
    assert.throws(() => new ServerApi(broker, { keys: ['short'] }), TypeError)
    void broker.close()
  })
})
