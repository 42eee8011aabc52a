import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { controlChannel, nodeOf, parseControl } from '../src/cluster/control-channel.js'
import { identify } from './helpers/identity.js'
import { type RedisServer, startRedis } from './helpers/redis.js'
import { connect, eventually, startBroker, type TestServer } from './helpers/ws.js'

describe('parseControl', () => {
  it('reads the three message types and drops anything malformed', () => {
    const p = (v: unknown) =>
      parseControl(Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)))
    assert.deepEqual(p({ type: 'send', id: 'a.1', text: 'hi' }), {
      type: 'send',
      id: 'a.1',
      text: 'hi',
    })
    assert.deepEqual(p({ type: 'close', id: 'a.1', code: 4000, reason: 'r' }), {
      type: 'close',
      id: 'a.1',
      code: 4000,
      reason: 'r',
    })
    assert.equal(p({ type: 'disconnect-user', user: 'u', code: 1000 })?.type, 'disconnect-user')
    for (const bad of [
      'not json',
      'null',
      { type: 'nope' },
      { type: 'send', id: 1, text: 'x' },
      { type: 'send', id: 'a.1' },
      { type: 'close', id: 'a.1', code: 1006 },
      { type: 'close', id: 'a.1', code: 2500 },
    ]) {
      assert.equal(p(bad), null, JSON.stringify(bad))
    }
  })

  it('names one channel per process and finds the process of a connection id', () => {
    assert.equal(controlChannel('ws4redis:', 'abc'), 'ws4redis:wsfacility:control:abc')
    assert.equal(nodeOf('abc.1f'), 'abc')
    assert.equal(nodeOf('no-dot'), null)
  })
})

describe('Connections addressable from any process', () => {
  let redis: RedisServer
  let a: TestServer
  let b: TestServer
  before(async () => {
    redis = await startRedis()
    a = await startBroker({ redis: redis.url, identify })
    b = await startBroker({ redis: redis.url, identify })
  })
  after(async () => {
    await a.close()
    await b.close()
    await redis.stop()
  })

  it('gives every connection an id naming its process', async () => {
    const c = await connect(b.url('/ws/ids?subscribe-broadcast'))
    const [conn] = [...b.broker.connections.values()]
    assert.equal(nodeOf(conn!.id), b.broker.engine.nodeId)
    assert.notEqual(a.broker.engine.nodeId, b.broker.engine.nodeId)
    await c.close()
  })

  it('sends to one connection held by another process, text and binary', async () => {
    const target = await connect(b.url('/ws/send?subscribe-broadcast'))
    const other = await connect(b.url('/ws/send?subscribe-broadcast'))
    const id = [...b.broker.connections.values()].find((c) => c.facility === 'send')!.id
    assert.equal(await a.broker.sendTo(id, 'just you'), true)
    assert.equal(await a.broker.sendTo(id, Buffer.from([1, 2])), true)
    const who = [target, other].find((c) => c.received.length > 0) ?? target
    await who.waitFor(2)
    assert.deepEqual(who.received[0], { data: 'just you', binary: false })
    assert.deepEqual(who.received[1], { data: Buffer.from([1, 2]), binary: true })
    const bystander = who === target ? other : target
    assert.deepEqual(bystander.received, [])
    await Promise.all([target.close(), other.close()])
  })

  it('closes one connection held by another process with a code and reason', async () => {
    const c = await connect(b.url('/ws/close?subscribe-broadcast'))
    const id = [...b.broker.connections.values()].find((x) => x.facility === 'close')!.id
    const closed = c.closedByServer()
    assert.equal(await a.broker.closeConnection(id, 4000, 'kicked'), true)
    assert.deepEqual(await closed, { code: 4000, reason: 'kicked' })
    await eventually(() => ![...b.broker.connections.values()].some((x) => x.facility === 'close'))
  })

  it('disconnects every connection of a user on every process, and no one else', async () => {
    const tabs = await Promise.all([
      connect(a.url('/ws/kick?subscribe-user&user=mallory')),
      connect(b.url('/ws/kick?subscribe-user&user=mallory')),
      connect(b.url('/ws/other?subscribe-user&user=mallory')),
    ])
    const bystander = await connect(b.url('/ws/kick?subscribe-user&user=alice'))
    const closes = tabs.map((t) => t.closedByServer())
    await a.broker.disconnectUser('mallory', 4001, 'banned')
    for (const c of await Promise.all(closes)) assert.deepEqual(c, { code: 4001, reason: 'banned' })
    assert.equal(bystander.ws.readyState, bystander.ws.OPEN)
    await bystander.close()
  })

  it('answers false for a process nobody runs, and rejects malformed ids and codes', async () => {
    assert.equal(await a.broker.sendTo('000000000000.1', 'x'), false)
    await assert.rejects(a.broker.sendTo('nodot', 'x'), { code: 'WSF_INVALID_ARGUMENT' })
    await assert.rejects(a.broker.closeConnection('x.1', 1006), { code: 'WSF_INVALID_ARGUMENT' })
    await assert.rejects(a.broker.disconnectUser(''), { code: 'WSF_INVALID_ARGUMENT' })
    // A close frame carries at most 123 bytes of reason.
    await assert.rejects(a.broker.closeConnection('x.1', 4000, 'x'.repeat(124)), {
      code: 'WSF_INVALID_ARGUMENT',
    })
    await assert.rejects(a.broker.disconnectUser('u', 4000, 'é'.repeat(62)), {
      code: 'WSF_INVALID_ARGUMENT',
    })
  })

  it('does not count its control channel among client channels', async () => {
    assert.equal(a.broker.channelCount, 0)
    const raw = await redis.client()
    const numsub = await raw.pubSubNumSub(controlChannel('', a.broker.engine.nodeId))
    assert.deepEqual(Object.values(numsub), [1])
    raw.destroy()
  })
})

describe('Addressable connections on the memory engine', () => {
  it('sends and closes in one process', async () => {
    const t = await startBroker({ identify })
    try {
      const c = await connect(t.url('/ws/mem?subscribe-broadcast&user=u'))
      const id = [...t.broker.connections.keys()][0]!
      assert.equal(await t.broker.sendTo(id, 'local'), true)
      await c.waitFor(1)
      const closed = c.closedByServer()
      await t.broker.disconnectUser('u', 3000, 'bye')
      assert.equal((await closed).code, 3000)
    } finally {
      await t.close()
    }
  })
})
