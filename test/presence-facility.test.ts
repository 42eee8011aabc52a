import assert from 'node:assert/strict'
import http from 'node:http'
import { after, before, describe, it } from 'node:test'
import express from 'express'
import { presenceFacility, presenceRouter } from '../facilities/presence.js'
import { createBroker } from '../src/index.js'
import { listen } from './helpers/http.js'
import { identify } from './helpers/identity.js'
import { type RedisServer, startRedis } from './helpers/redis.js'
import {
  connect,
  eventually,
  sleep,
  startBroker,
  type TestServer,
  upgradeStatus,
} from './helpers/ws.js'

const data = (texts: string[]) =>
  texts.map((t) => JSON.parse(t) as { type: string; data: Record<string, unknown> })

describe('The presence facility', () => {
  let redis: RedisServer
  let a: TestServer
  let b: TestServer
  before(async () => {
    redis = await startRedis()
    a = await startBroker({ redis: redis.url, identify, presence: true })
    b = await startBroker({ redis: redis.url, identify, presence: true })
    presenceFacility(a.broker)
    presenceFacility(b.broker)
  })
  after(async () => {
    await a.close()
    await b.close()
    await redis.stop()
  })

  it('sends watchers a snapshot, then each join and leave once, from any process', async () => {
    const watcher = await connect(a.url('/ws/presence?user=watch'))
    await watcher.waitFor(1)
    const [snapshot] = data(watcher.texts)
    assert.equal(snapshot!.type, 'data')
    assert.equal(snapshot!.data.event, 'snapshot')
    const user = await connect(b.url('/ws/chat?user=xena'))
    await watcher.waitFor(3)
    await user.close()
    await watcher.waitFor(5)
    await sleep(200)
    const events = data(watcher.texts)
      .slice(1)
      .map((m) => [m.data.event, m.data.user, m.data.facility])
    assert.deepEqual(
      events.filter(([, u]) => u === 'xena'),
      [
        ['join', 'xena', null],
        ['join', 'xena', 'chat'],
        ['leave', 'xena', null],
        ['leave', 'xena', 'chat'],
      ],
    )
    await watcher.close()
  })

  it('refuses anonymous watchers unless configured, and client publishing', async () => {
    assert.equal((await upgradeStatus(a.url('/ws/presence'))).status, 401)
    assert.equal((await upgradeStatus(a.url('/ws/presence?user=w&publish-broadcast'))).status, 403)
  })

  it('answers the list and one user’s status as JSON over an Express router', async () => {
    const app = express()
    app.use('/api/presence', presenceRouter(a.broker))
    const server = await listen(http.createServer(app))
    const base = `${server.base}/api/presence`
    const tab = await connect(b.url('/ws/chat?user=yuri'))
    try {
      await eventually(() => a.broker.presence.isOnline('yuri'))
      const list = (await (await fetch(base)).json()) as { users: { user: string }[] }
      assert.ok(list.users.some((u) => u.user === 'yuri'))
      const chat = (await (await fetch(`${base}?facility=chat`)).json()) as { users: unknown[] }
      assert.deepEqual(chat.users, [{ user: 'yuri', connections: 1 }])
      assert.deepEqual(await (await fetch(`${base}/yuri`)).json(), {
        user: 'yuri',
        online: true,
        connections: 1,
      })
      assert.deepEqual(await (await fetch(`${base}/nobody`)).json(), {
        user: 'nobody',
        online: false,
        connections: 0,
      })
    } finally {
      await tab.close()
      await server.close()
    }
  })

  it('needs a broker created with presence: true', () => {
    assert.throws(() => presenceFacility(createBroker()), { code: 'WSF_INVALID_OPTION' })
  })
})
