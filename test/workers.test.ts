import assert from 'node:assert/strict'
import { after, afterEach, before, describe, it } from 'node:test'
import { type Broker, createBroker, RedisPublisher } from '../src/index.js'
import { LISTENING } from './helpers/child.js'
import { type RedisCluster, startCluster } from './helpers/cluster.js'
import { type RedisServer, startRedis } from './helpers/redis.js'
import { Spawned } from './helpers/spawned.js'
import { connect, eventually, type TestClient } from './helpers/ws.js'

const spawned = new Spawned()
afterEach(spawned.end)

/** Starts `wsfacility --workers N` and waits until every worker printed its `listening on` line. */
async function serveWorkers(args: string[], workers: number) {
  const child = spawned.cli(['--port', '0', '--workers', String(workers), ...args])
  const lines = new RegExp(LISTENING.source, 'gm')
  await eventually(() => (child.stdout.match(lines)?.length ?? 0) === workers, 30_000)
  const ports = new Set([...child.stdout.matchAll(lines)].map((m) => Number(m[1])))
  assert.equal(ports.size, 1, 'the workers share one port')
  const [port] = ports
  return { child, ws: (path: string) => `ws://127.0.0.1:${port}${path}` }
}

async function openClients(url: string, n: number): Promise<TestClient[]> {
  const opened: TestClient[] = []
  // One after the other: the primary hands each new connection to the next worker.
  for (let i = 0; i < n; i++) opened.push(await connect(url))
  spawned.clients.push(...opened)
  return opened
}

async function publisherOn(options: Parameters<typeof createBroker>[0]): Promise<Broker> {
  const broker = createBroker(options)
  broker.on('error', () => {})
  await broker.ready()
  return broker
}

describe('wsfacility --workers on Redis', () => {
  let redis: RedisServer
  let publisher: Broker
  before(async () => {
    redis = await startRedis()
    publisher = await publisherOn({ redis: redis.url })
  })
  after(async () => {
    await publisher.close()
    await redis.stop()
  })

  it('spreads clients over the workers; one publish reaches every client; SIGTERM closes them with 1001 and exits 0', async () => {
    const { child, ws } = await serveWorkers(['--redis', redis.url], 2)
    const tabs = await openClients(ws('/ws/news?subscribe-broadcast'), 8)

    // Each worker records in Redis how many of its clients listen on a channel (the counts that
    // make receiver totals cluster-wide): two distinct worker processes must hold clients.
    const raw = await redis.client()
    const perWorker = async (): Promise<Map<string, number>> => {
      const counts = new Map<string, number>()
      for (const id of await raw.sMembers('{wsfacility}:nodes')) {
        const n = Number((await raw.hGet(`{wsfacility}:node:${id}`, 'broadcast:news')) ?? 0)
        if (n > 0) counts.set(id, n)
      }
      return counts
    }
    try {
      await eventually(async () => [...(await perWorker()).values()].reduce((a, b) => a + b) === 8)
      const counts = await perWorker()
      assert.equal(counts.size, 2, `clients per worker: ${JSON.stringify([...counts])}`)
      assert.ok(!counts.has(publisher.engine.nodeId))
    } finally {
      raw.destroy()
    }

    const pub = new RedisPublisher({ facility: 'news', broadcast: true }, { broker: publisher })
    assert.equal(await pub.publishMessage('to every worker'), 8)
    for (const tab of tabs) {
      await tab.waitFor(1)
      assert.deepEqual(tab.texts, ['to every worker'])
    }

    const closes = tabs.map((tab) => tab.closedByServer())
    const exit = await child.signal('SIGTERM')
    for (const close of await Promise.all(closes)) assert.equal(close.code, 1001)
    assert.deepEqual(exit, { code: 0, signal: null })
    assert.match(child.stderr, /SIGTERM: shutting down 2 workers/)
  })

  it('replaces a worker that died, and its clients can come back', async () => {
    const { child, ws } = await serveWorkers(['--redis', redis.url], 2)
    const pids = [...child.stdout.matchAll(/^worker (\d+) started$/gm)].map((m) => Number(m[1]))
    assert.equal(pids.length, 2)
    const tabs = await openClients(ws('/ws/live?subscribe-broadcast'), 4)
    process.kill(pids[0]!, 'SIGKILL')
    await child.waitForOutput(new RegExp(`^worker (?!${pids.join('|')})(\\d+) started$`, 'm'))
    const lines = new RegExp(LISTENING.source, 'gm')
    await eventually(() => child.stdout.match(lines)?.length === 3, 30_000)
    assert.match(
      child.stderr,
      new RegExp(`worker ${pids[0]} exited \\(SIGKILL\\); starting another`),
    )
    // The dead worker's clients lost their connection; the other worker's are still open.
    await eventually(() => tabs.some((tab) => tab.ws.readyState === tab.ws.CLOSED))
    const open = tabs.filter((tab) => tab.ws.readyState === tab.ws.OPEN)
    assert.equal(open.length, 2)
    const back = await openClients(ws('/ws/live?subscribe-broadcast'), 2)
    const pub = new RedisPublisher({ facility: 'live', broadcast: true }, { broker: publisher })
    // The dead worker's counts linger in Redis until its entry expires: at least the 4 live ones.
    assert.ok((await pub.publishMessage('after the restart')) >= 4)
    for (const tab of [...open, ...back]) await tab.waitFor(1)
    assert.deepEqual((await child.signal('SIGTERM')).code, 0)
  })

  it('exits 1 when its workers cannot reach Redis', { timeout: 60_000 }, async () => {
    const own = await startRedis()
    await own.stop()
    const child = spawned.cli(['--port', '0', '--workers', '2', '--redis', own.url])
    const { code } = await child.exited
    assert.equal(code, 1)
    assert.match(child.stderr, /cannot connect to Redis/)
    assert.match(child.stderr, /before listening; stopping/)
  })
})

describe('wsfacility --workers on a Redis Cluster', () => {
  let cluster: RedisCluster
  let publisher: Broker
  before(async () => {
    cluster = await startCluster()
    publisher = await publisherOn({ redisCluster: cluster.urls })
  })
  after(async () => {
    await publisher.close()
    await cluster.stop()
  })

  it('serves clients of two workers from --redis-cluster, reached by a RedisPublisher', async () => {
    const { child, ws } = await serveWorkers(['--redis-cluster', cluster.urls.join(',')], 2)
    const health = await fetch(ws('/health').replace('ws:', 'http:'))
    assert.deepEqual([health.status, await health.json()], [200, { status: 'ok', redis: 'ready' }])
    const tabs = await openClients(ws('/ws/alerts?subscribe-broadcast'), 4)
    await eventually(async () => {
      const pub = new RedisPublisher({ facility: 'alerts', broadcast: true }, { broker: publisher })
      return (await pub.publishMessage('probe')) === 4
    })
    for (const tab of tabs) await tab.waitFor(1)
    assert.equal((await child.signal('SIGTERM')).code, 0)
  })
})
