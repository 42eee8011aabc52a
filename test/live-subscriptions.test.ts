import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import type { Connection, FacilityContext } from '../src/index.js'
import session from 'express-session'
import { signSessionId } from './helpers/app.js'
import { identify } from './helpers/identity.js'
import { type RedisServer, startRedis, type TestRedisClient } from './helpers/redis.js'
import {
  closeAll,
  connect,
  connectionOf,
  eventually,
  fresh,
  startBroker,
  type TestServer,
} from './helpers/ws.js'

/** Subscribers Redis counts for `channel` (PUBSUB NUMSUB). */
async function numSub(client: TestRedisClient, channel: string): Promise<number> {
  return Number((await client.pubSubNumSub([channel]))[channel] ?? 0)
}

describe('broker.join and broker.leave (memory engine)', () => {
  let t: TestServer
  before(async () => {
    t = await startBroker({ identify })
    t.broker.facility('locked', { subscribe: ['broadcast'] })
    t.broker.facility('talk', { publish: ['group'] })
    t.broker.facility('rooms', {
      authorize: ({ join }: FacilityContext) => join?.group !== 'secret',
    })
  })
  after(() => t.close())

  it('joins one connection to a group channel without reconnecting, then leaves it', async () => {
    const f = fresh('live')
    const c = await connect(t.url(`/ws/${f}?user=ann`))
    const conn = connectionOf(t.broker, f)
    assert.equal(await t.broker.publish([`group:r1:${f}`], 'before'), 0)
    assert.equal(await t.broker.join({ connection: conn.id }, { group: 'r1' }), 1)
    assert.deepEqual(conn.channels.subscribe, [`group:r1:${f}`])
    assert.equal(await t.broker.publish([`group:r1:${f}`], 'in'), 1)
    await c.waitFor(1)
    // Joining again changes nothing and still counts the connection.
    assert.equal(await t.broker.join({ user: 'ann' }, { channel: 'group:r1' }), 1)
    assert.equal(t.broker.channelCount, 1)
    assert.equal(await t.broker.leave({ user: 'ann' }, { group: 'r1' }), 1)
    assert.deepEqual(conn.channels.subscribe, [])
    assert.equal(await t.broker.publish([`group:r1:${f}`], 'after'), 0)
    assert.equal(t.broker.channelCount, 0)
    assert.equal(await t.broker.leave({ user: 'ann' }, { group: 'r1' }), 0)
    assert.deepEqual(c.texts, ['in'])
    await c.close()
  })

  it('joins the broadcast, user and session channels by label, and leaves a URL channel', async () => {
    const f = fresh('labels')
    const c = await connect(t.url(`/ws/${f}?subscribe-broadcast&user=bo&session=s9`))
    const conn = connectionOf(t.broker, f)
    assert.equal(await t.broker.join({ session: 's9' }, { channel: 'user' }), 1)
    assert.equal(await t.broker.join({ session: 's9' }, { channel: 'session' }), 1)
    assert.deepEqual(conn.channels.subscribe, [`broadcast:${f}`, `user:bo:${f}`, `session:s9:${f}`])
    assert.equal(await t.broker.leave({ connection: conn.id }, { channel: 'broadcast' }), 1)
    assert.equal(await t.broker.publish([`broadcast:${f}`], 'gone'), 0)
    assert.equal(await t.broker.publish([`user:bo:${f}`], 'mine'), 1)
    await c.waitFor(1)
    assert.deepEqual(c.texts, ['mine'])
    await c.close()
  })

  it('with publish-group, a client publishes on the groups it joined, and not on those it left', async () => {
    const f = 'talk'
    const listener = await connect(t.url(`/ws/${f}?user=li&groups=r`))
    const speaker = await connect(t.url(`/ws/${f}?publish-group&user=sp&groups=r`))
    const [lConn, sConn] = ['li', 'sp'].map((u) =>
      [...t.broker.connections.values()].find((c) => c.identity.user === u)!,
    ) as [Connection, Connection]
    assert.equal(await t.broker.join({ connection: lConn.id }, { group: 'new' }), 1)
    assert.equal(await t.broker.join({ connection: sConn.id }, { group: 'new' }), 1)
    assert.equal(await t.broker.leave({ connection: sConn.id }, { group: 'r' }), 0)
    assert.deepEqual(sConn.channels.publish, [`group:r:${f}`, `group:new:${f}`])
    await speaker.send('to both')
    await listener.waitFor(1)
    // Leaving a group the identity gives stops publishing on it too.
    assert.equal(await t.broker.join({ connection: sConn.id }, { group: 'r' }), 1)
    assert.equal(await t.broker.leave({ connection: sConn.id }, { group: 'r' }), 1)
    assert.deepEqual(sConn.channels.publish, [`group:new:${f}`])
    await closeAll(listener, speaker)
  })

  it('refuses a join the facility does not allow, with a coded error', async () => {
    const a = await connect(t.url('/ws/locked?user=cy'))
    const b = await connect(t.url('/ws/rooms?user=cy'))
    const locked = connectionOf(t.broker, 'locked')
    await assert.rejects(t.broker.join({ connection: locked.id }, { group: 'g' }), {
      code: 'WSF_JOIN_REFUSED',
    })
    assert.deepEqual(locked.channels.subscribe, [])
    // The authorize hook sees the join; the connections it allows stay joined.
    const rooms = connectionOf(t.broker, 'rooms')
    assert.equal(await t.broker.join({ connection: rooms.id }, { group: 'open' }), 1)
    await assert.rejects(t.broker.join({ connection: rooms.id }, { group: 'secret' }), {
      code: 'WSF_JOIN_REFUSED',
    })
    await assert.rejects(t.broker.join({ user: 'cy' }, { group: 'x' }), (err: unknown) => {
      const e = err as { code: string; joined: number; refused: number }
      return e.code === 'WSF_JOIN_REFUSED' && e.joined === 1 && e.refused === 1
    })
    assert.deepEqual(rooms.channels.subscribe, ['group:open:rooms', 'group:x:rooms'])
    // A connection without a user has no user channel to join.
    const anon = await connect(t.url('/ws/rooms'))
    const anonConn = [...t.broker.connections.values()].find((c) => c.identity.user === null)!
    await assert.rejects(t.broker.join({ connection: anonConn.id }, { channel: 'user' }), {
      code: 'WSF_JOIN_REFUSED',
    })
    await closeAll(a, b, anon)
  })

  it('rejects what is not a join with a coded error', async () => {
    const bad: [unknown, unknown, string][] = [
      [{ user: 'x' }, { group: '' }, 'WSF_INVALID_ARGUMENT'],
      [{ user: 'x' }, { channel: 'user:bob' }, 'WSF_INVALID_ARGUMENT'],
      [{ user: 'x' }, { group: 'a', channel: 'broadcast' }, 'WSF_INVALID_ARGUMENT'],
      [{ user: 'x' }, { gruop: 'a' }, 'WSF_INVALID_OPTION'],
      [{ user: 'x' }, { group: 'a', timeout: -1 }, 'WSF_INVALID_OPTION'],
      [{ nobody: 'x' }, { group: 'a' }, 'WSF_INVALID_ARGUMENT'],
      [{ user: 'x', session: 'y' }, { group: 'a' }, 'WSF_INVALID_ARGUMENT'],
      [{ connection: 'no-dot' }, { group: 'a' }, 'WSF_INVALID_ARGUMENT'],
    ]
    for (const [target, options, code] of bad) {
      await assert.rejects(t.broker.join(target as never, options as never), { code })
    }
    // Optional fields take undefined.
    assert.equal(await t.broker.join({ user: 'nobody' }, { group: 'a', timeout: undefined }), 0)
    await assert.rejects(t.broker.refreshIdentity('x', { groups: 'a' as never }), {
      code: 'WSF_INVALID_ARGUMENT',
    })
  })

  it('counts nothing for a connection that closes while its join is in flight', async () => {
    const f = fresh('closing')
    const c = await connect(t.url(`/ws/${f}?user=dee`))
    const conn = connectionOf(t.broker, f)
    const joining = t.broker.join({ connection: conn.id }, { group: 'g' })
    conn.terminate()
    await joining.catch(() => 0)
    await eventually(() => t.broker.connections.size === 0)
    assert.equal(t.broker.channelCount, 0)
    assert.equal(await t.broker.publish([`group:g:${f}`], 'x'), 0)
    await c.close()
  })
})

describe('live subscriptions across two broker processes on Redis', () => {
  let redis: RedisServer
  let a: TestServer
  let b: TestServer
  let inspect: TestRedisClient
  before(async () => {
    redis = await startRedis()
    a = await startBroker({ redis: redis.url, identify, presence: true })
    b = await startBroker({ redis: redis.url, identify, presence: true })
    inspect = await redis.client()
  })
  after(async () => {
    inspect.destroy()
    await a.close()
    await b.close()
    await redis.stop()
  })

  it("joins a user's connections on every process, with exact counts", async () => {
    const f = fresh('cross')
    const onA = await connect(a.url(`/ws/${f}?user=eve`))
    const onB = await connect(b.url(`/ws/${f}?user=eve`))
    const other = await connect(b.url(`/ws/${f}?user=fay`))
    const channel = `group:room:${f}`
    assert.equal(await b.broker.join({ user: 'eve' }, { group: 'room' }), 2)
    // Live once join resolved: subscribed in Redis by each process, counted for publishers.
    assert.equal(await numSub(inspect, channel), 2)
    assert.equal(await a.broker.publish([channel], 'hello'), 2)
    await onA.waitFor(1)
    await onB.waitFor(1)
    assert.equal(await a.broker.presence.count('eve', f), 2)
    // One connection on the other process, by id.
    const fayConn = [...b.broker.connections.values()].find((c) => c.identity.user === 'fay')!
    assert.equal(await a.broker.join({ connection: fayConn.id }, { group: 'room' }), 1)
    assert.equal(await numSub(inspect, channel), 2)
    assert.equal(await a.broker.publish([channel], 'all'), 3)
    assert.equal(await a.broker.leave({ user: 'eve' }, { group: 'room' }), 2)
    assert.equal(await a.broker.publish([channel], 'fay only'), 1)
    await eventually(async () => (await numSub(inspect, channel)) === 1)
    assert.equal(await b.broker.leave({ connection: fayConn.id }, { group: 'room' }), 1)
    await eventually(async () => (await numSub(inspect, channel)) === 0)
    assert.equal(await a.broker.publish([channel], 'nobody'), 0)
    assert.equal(await a.broker.presence.count('eve', f), 2)
    assert.deepEqual(onA.texts, ['hello', 'all'])
    assert.deepEqual(other.texts, ['all', 'fay only'])
    await closeAll(onA, onB, other)
  })

  it('refreshIdentity moves connections to their new group channels on every process', async () => {
    const f = fresh('refresh')
    const onA = await connect(a.url(`/ws/${f}?subscribe-group&user=gus&groups=old`))
    const onB = await connect(b.url(`/ws/${f}?subscribe-group&user=gus&groups=old,kept`))
    assert.equal(await a.broker.publish([`group:old:${f}`], 'one'), 2)
    assert.equal(await b.broker.refreshIdentity('gus', { groups: ['new', 'kept'] }), 2)
    assert.equal(await a.broker.publish([`group:old:${f}`], 'lost'), 0)
    assert.equal(await a.broker.publish([`group:new:${f}`], 'two'), 2)
    assert.equal(await a.broker.publish([`group:kept:${f}`], 'three'), 2)
    assert.deepEqual(connectionOf(a.broker, f).identity.groups, ['new', 'kept'])
    await eventually(async () => (await numSub(inspect, `group:old:${f}`)) === 0)
    assert.equal(await numSub(inspect, `group:new:${f}`), 2)
    await onA.waitFor(3)
    await onB.waitFor(3)
    assert.deepEqual(onA.texts, ['one', 'two', 'three'])
    await closeAll(onA, onB)
  })
})

describe('refreshIdentity from the session store', () => {
  it('re-reads the session: new groups are joined, a session gone closes with 4401', async () => {
    const store = new session.MemoryStore()
    const secret = 'live subscriptions'
    const t = await startBroker({ session: { store, secret } })
    const put = (sid: string, value: Record<string, unknown>) =>
      new Promise<void>((resolve, reject) =>
        store.set(sid, { cookie: { originalMaxAge: null }, ...value } as never, (err) =>
          err ? reject(err as Error) : resolve(),
        ),
      )
    const cookie = (sid: string) => `connect.sid=${encodeURIComponent(signSessionId(sid, secret))}`
    await put('sid-1', { user: { username: 'hal', groups: ['a'] } })
    await put('sid-2', { user: { username: 'hal', groups: ['a'] } })
    const one = await connect(t.url('/ws/sess?subscribe-group'), {
      headers: { cookie: cookie('sid-1') },
    })
    const two = await connect(t.url('/ws/sess?subscribe-group'), {
      headers: { cookie: cookie('sid-2') },
    })
    await put('sid-1', { user: { username: 'hal', groups: ['b'] } })
    await new Promise<void>((resolve) => store.destroy('sid-2', () => resolve()))
    const closed = two.closedByServer()
    assert.equal(await t.broker.refreshIdentity('hal'), 2)
    assert.equal((await closed).code, 4401)
    assert.equal(await t.broker.publish(['group:b:sess'], 'b'), 1)
    await eventually(() => t.broker.connections.size === 1)
    assert.equal(await t.broker.publish(['group:a:sess'], 'a'), 0)
    await one.waitFor(1)
    assert.deepEqual(one.texts, ['b'])
    await one.close()
    await t.close()
  })
})
