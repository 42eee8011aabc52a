import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import WebSocket from 'ws'
import { createClient, type WsfClient } from '../src/client/index.js'
import { type FacilityContext, type HistoryRead, MemoryEngine } from '../src/index.js'
import { identify } from './helpers/identity.js'
import {
  connect,
  connectionOf,
  eventually,
  frames,
  sendJson,
  startBroker,
  type TestClient,
  type TestServer,
} from './helpers/ws.js'

/** Waits for a frame of `type` (and `id`, when given) and returns it. */
async function answer(c: TestClient, type: string, id?: unknown): Promise<Record<string, unknown>> {
  let found: Record<string, unknown> | undefined
  await eventually(() => {
    found = (frames(c) as Record<string, unknown>[]).find(
      (f) => f.type === type && (id === undefined || f.id === id),
    )
    return found !== undefined
  })
  return found!
}

describe('join and leave frames of json facilities', () => {
  let t: TestServer
  before(async () => {
    t = await startBroker({ identify })
    t.broker.facility('lobby', {
      format: 'json',
      clientJoin: true,
      authorize: ({ join }: FacilityContext) => join?.group !== 'vip',
    })
    t.broker.facility('fixed', { format: 'json' })
    t.broker.facility('feed', { format: 'json', clientJoin: true, history: { size: 10, ttl: 60 } })
  })
  after(() => t.close())

  it('joins a group when the client asks, answers with the id, then leaves it', async () => {
    const c = await connect(t.url('/ws/lobby?user=ida'))
    await sendJson(c, { type: 'join', group: 'r1', id: 7 })
    assert.deepEqual(await answer(c, 'joined', 7), { type: 'joined', channel: 'group:r1', id: 7 })
    assert.equal(await t.broker.publish(['group:r1:lobby'], 'hi'), 1)
    await answer(c, 'data')
    await sendJson(c, { type: 'leave', channel: 'group:r1', id: 'x' })
    assert.deepEqual(await answer(c, 'left', 'x'), { type: 'left', channel: 'group:r1', id: 'x' })
    assert.equal(await t.broker.publish(['group:r1:lobby'], 'gone'), 0)
    await c.close()
  })

  it('refuses what the facility does not allow, with a code and a reason', async () => {
    const c = await connect(t.url('/ws/lobby?user=ida'))
    await sendJson(c, { type: 'join', group: 'vip', id: 1 })
    const vip = await answer(c, 'join-refused', 1)
    assert.equal(vip.code, 'WSF_JOIN_REFUSED')
    assert.equal(vip.channel, 'group:vip')
    await sendJson(c, { type: 'join', channel: 'user:bob', id: 2 })
    assert.equal((await answer(c, 'join-refused', 2)).code, 'WSF_INVALID_ARGUMENT')
    await sendJson(c, { type: 'join', group: 'a', id: { no: 1 } })
    assert.equal((await answer(c, 'error')).code, 'invalid_message')
    assert.deepEqual(connectionOf(t.broker, 'lobby').channels.subscribe, [])
    const d = await connect(t.url('/ws/fixed?user=ida'))
    await sendJson(d, { type: 'join', group: 'a', id: 3 })
    assert.equal((await answer(d, 'join-refused', 3)).code, 'WSF_JOIN_REFUSED')
    // broker.join is not a client's join: clientJoin does not apply to it.
    assert.equal(
      await t.broker.join({ connection: connectionOf(t.broker, 'fixed').id }, { group: 'a' }),
      1,
    )
    await Promise.all([c.close(), d.close()])
  })

  it('with history, a join with a position gets what it missed first, then live messages', async () => {
    const first = await connect(t.url('/ws/feed?user=jo'))
    await sendJson(first, { type: 'join', group: 'news', id: 1 })
    const joined = await answer(first, 'joined', 1)
    assert.equal(joined.offset, 0)
    assert.equal(joined.recovered, false)
    for (const n of [1, 2, 3]) await t.broker.publish(['group:news:feed'], { n })
    await eventually(
      () => frames(first).filter((f) => (f as { type: string }).type === 'data').length === 3,
    )
    await first.close()
    const second = await connect(t.url('/ws/feed?user=jo'))
    const since = { epoch: joined.epoch, offset: 1 }
    await sendJson(second, { type: 'join', group: 'news', id: 2, since })
    const again = await answer(second, 'joined', 2)
    assert.deepEqual(
      { offset: again.offset, recovered: again.recovered, missed: again.missed },
      { offset: 3, recovered: true, missed: 2 },
    )
    await t.broker.publish(['group:news:feed'], { n: 4 })
    await eventually(() => frames(second).length === 4)
    const got = frames(second) as { type: string; data?: { n: number }; offset?: number }[]
    assert.deepEqual(
      got.map((f) => (f.type === 'data' ? f.data!.n : f.type)),
      [2, 3, 'joined', 4],
    )
    await second.close()
  })
})

/** The memory engine, with history reads that wait for `open()` while a gate is set. */
class GatedEngine extends MemoryEngine {
  gate: Promise<void> | null = null
  reading: (() => void) | null = null

  override async readHistory(
    channel: string,
    since: number | null,
    limit: number,
  ): Promise<HistoryRead> {
    if (this.gate) {
      this.reading?.()
      await this.gate
    }
    return super.readHistory(channel, since, limit)
  }

  /** Holds the next history reads: `reading` resolves once one waits, `open` lets them all go. */
  hold(): { open: () => void; reading: Promise<void> } {
    let release!: () => void
    this.gate = new Promise((resolve) => (release = resolve))
    const reading = new Promise<void>((resolve) => (this.reading = resolve))
    const open = () => {
      this.gate = null
      release()
    }
    return { open, reading }
  }
}

/** A broker on a GatedEngine with the json facility `ticker` (history, client joins). */
async function gatedTicker(): Promise<{ engine: GatedEngine; t: TestServer }> {
  const engine = new GatedEngine()
  const t = await startBroker({ identify, engine })
  t.broker.facility('ticker', { format: 'json', clientJoin: true, history: { size: 10, ttl: 60 } })
  return { engine, t }
}

describe('a join with history while messages keep coming', () => {
  it('sends what the history read gave, then the answer, then live messages, each once', async () => {
    const { engine, t } = await gatedTicker()
    const c = await connect(t.url('/ws/ticker?user=lu'))
    await t.broker.publish(['group:t:ticker'], { n: 1 })
    const { open, reading } = engine.hold()
    await sendJson(c, { type: 'join', group: 't', id: 1, since: { epoch: 'old', offset: 0 } })
    await reading
    // Published while the join reads the channel's history: delivered live to the connection,
    // and also in what the read returns.
    await t.broker.publish(['group:t:ticker'], { n: 2 })
    open()
    await answer(c, 'joined', 1)
    await t.broker.publish(['group:t:ticker'], { n: 3 })
    await eventually(() => frames(c).length >= 2)
    const got = frames(c) as { type: string; data?: { n: number } }[]
    // The epoch the client gave is not the channel's: nothing old; the answer's position covers
    // the message published during the read, so it is not sent again; live from there.
    assert.deepEqual(
      got.map((f) => (f.type === 'data' ? f.data!.n : f.type)),
      ['joined', 3],
    )
    await c.close()
    await t.close()
  })
})

describe('a join with history while plain publishes come', () => {
  it('holds consecutive plain messages of the channel until the answer, then sends them in order', async () => {
    const { engine, t } = await gatedTicker()
    const c = await connect(t.url('/ws/ticker?user=lu'))
    try {
      const { open, reading } = engine.hold()
      await sendJson(c, { type: 'join', group: 'p', id: 1 })
      await reading
      // Two PUBLISHes without a position (a Django publisher, redis-cli) in one read: one run.
      void engine.publish('group:p:ticker', Buffer.from('{"n":"p1"}'), 0)
      void engine.publish('group:p:ticker', Buffer.from('{"n":"p2"}'), 0)
      open()
      await eventually(() => frames(c).length >= 3)
      const got = frames(c) as { type: string; data?: { n: string } }[]
      assert.deepEqual(
        got.map((f) => (f.type === 'data' ? f.data!.n : f.type)),
        ['joined', 'p1', 'p2'],
      )
    } finally {
      await c.close()
      await t.close()
    }
  })
})

describe('client.join and client.leave (wsfacility/client)', () => {
  let t: TestServer
  const clients: WsfClient[] = []
  before(async () => {
    t = await startBroker({ identify })
    t.broker.facility('chat', {
      format: 'json',
      clientJoin: true,
      authorize: ({ join }: FacilityContext) => join?.group !== 'vip',
    })
  })
  after(async () => {
    await Promise.all(clients.map((c) => c.close()))
    await t.close()
  })

  const open = () => {
    const client = createClient({
      WebSocket: WebSocket as never,
      url: t.url(''),
      facility: 'chat',
      query: { user: 'kim' },
      reconnect: { base: 10, cap: 20, attempts: 50 },
    })
    clients.push(client)
    return client
  }

  it('resolves once joined, rejects a refusal with a code, and re-joins after a reconnect', async () => {
    const client = open()
    const messages: unknown[] = []
    client.on('message', (m) => messages.push(JSON.parse(m as string)))
    // Asked before the socket is open: sent once it is.
    assert.deepEqual(await client.join({ group: 'room' }), { channel: 'group:room' })
    await assert.rejects(client.join({ group: 'vip' }), { code: 'WSF_CLIENT_JOIN_REFUSED' })
    assert.equal(await t.broker.publish(['group:room:chat'], 'one'), 1)
    await eventually(() => messages.length === 1)
    // The broker restarts the connection: the client reconnects and joins the room again.
    const before = connectionOf(t.broker, 'chat')
    before.close(1012, 'restart')
    await eventually(() => {
      const now = [...t.broker.connections.values()].find((c) => c.facility === 'chat')
      return (
        now !== undefined && now !== before && now.channels.subscribe.includes('group:room:chat')
      )
    })
    assert.equal(await t.broker.publish(['group:room:chat'], 'two'), 1)
    await eventually(() => messages.length === 2)
    await client.leave({ group: 'room' })
    assert.equal(await t.broker.publish(['group:room:chat'], 'three'), 0)
    await assert.rejects(client.join({ group: '' }), TypeError)
    await assert.rejects(client.join({ channel: 'user:bob' } as never), TypeError)
    assert.deepEqual(messages, [
      { type: 'data', data: 'one' },
      { type: 'data', data: 'two' },
    ])
    await client.close()
    await assert.rejects(client.join({ group: 'room' }), { code: 'WSF_CLIENT_CLOSED' })
    await assert.rejects(client.leave({ group: 'room' }), { code: 'WSF_CLIENT_CLOSED' })
  })
})
