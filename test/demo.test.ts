import assert from 'node:assert/strict'
import { after, afterEach, before, describe, it } from 'node:test'
import { spawnNode } from './helpers/child.js'
import { type RedisServer, startRedis } from './helpers/redis.js'
import { Spawned } from './helpers/spawned.js'
import { connect } from './helpers/ws.js'

const BANNER = /^wsfacility demo on http:\/\/127\.0\.0\.1:(\d+) \(engine: (memory|redis)\)$/m

let redis: RedisServer
const { children, clients, end } = new Spawned()

before(async () => {
  redis = await startRedis()
})
afterEach(end)
after(async () => {
  await redis.stop()
})

/** Runs `npm start`'s command with PORT=0; resolves once the demo printed its address. */
async function demo(env: Record<string, string> = {}) {
  const child = spawnNode(['--import', 'tsx', 'examples/demo/server.ts'], { PORT: '0', ...env })
  children.push(child)
  const [, port, engine] = await child.waitForOutput(BANNER)
  return { child, engine, base: `http://127.0.0.1:${port}`, ws: `ws://127.0.0.1:${port}` }
}

async function announce(base: string, text: string): Promise<{ status: number; body: unknown }> {
  const res = await fetch(`${base}/api/announce`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ text }),
  })
  return { status: res.status, body: await res.json() }
}

describe('demo (npm start)', () => {
  it('serves the chat page, which connects to the demo facility', async () => {
    const { base, engine } = await demo()
    assert.equal(engine, 'memory')
    const res = await fetch(`${base}/`)
    assert.equal(res.status, 200)
    assert.match(res.headers.get('content-type') ?? '', /^text\/html/)
    const html = await res.text()
    assert.match(html, /\/ws\/demo\?subscribe-broadcast&amp;publish-broadcast&amp;echo/)
    assert.match(html, /\/api\/announce/)
  })

  it('publishes POST /api/announce to the clients of the demo facility', async () => {
    const { base, ws } = await demo()
    const c = await connect(`${ws}/ws/demo?subscribe-broadcast`)
    clients.push(c)
    const { status, body } = await announce(base, 'hello everyone')
    assert.equal(status, 200)
    assert.deepEqual(body, { receivers: 1 })
    await c.waitFor(1)
    const received = JSON.parse(c.texts[0]!) as { text: string; kind: string }
    assert.equal(received.text, 'hello everyone')
    assert.equal(received.kind, 'announcement')
  })

  it('lets the page publish on broadcast and replays the last message to newcomers', async () => {
    const { ws } = await demo()
    const alice = await connect(`${ws}/ws/demo?subscribe-broadcast&publish-broadcast&echo`)
    clients.push(alice)
    await alice.send(JSON.stringify({ id: '1', name: 'alice', text: 'hi' }))
    await alice.waitFor(1)
    const bob = await connect(`${ws}/ws/demo?subscribe-broadcast`)
    clients.push(bob)
    await bob.waitFor(1)
    assert.deepEqual(bob.texts, alice.texts)
  })

  it('rejects an empty announcement with 400', async () => {
    const { base } = await demo()
    const { status } = await announce(base, '   ')
    assert.equal(status, 400)
  })

  it('runs on Redis when REDIS_URL is set', async () => {
    const { ws, engine } = await demo({ REDIS_URL: redis.url })
    assert.equal(engine, 'redis')
    const c = await connect(`${ws}/ws/demo?subscribe-broadcast`)
    clients.push(c)
    const r = await redis.client()
    try {
      await r.publish('broadcast:demo', 'from redis-cli')
    } finally {
      await r.close()
    }
    await c.waitFor(1)
    assert.deepEqual(c.texts, ['from redis-cli'])
  })

  it('exits 0 on SIGTERM', async () => {
    const { child } = await demo()
    const { code, signal } = await child.signal('SIGTERM')
    assert.deepEqual({ code, signal }, { code: 0, signal: null })
  })
})
