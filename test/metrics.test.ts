import assert from 'node:assert/strict'
import { once } from 'node:events'
import http from 'node:http'
import { after, before, describe, it } from 'node:test'
import { type BrokerOptions, createBroker, type Logger, RedisPublisher } from '../src/index.js'
import { Counter, Registry } from 'prom-client'
import { identify } from './helpers/identity.js'
import { type RedisServer, startRedis } from './helpers/redis.js'
import { connect, eventually, startBroker, type TestServer, upgradeStatus } from './helpers/ws.js'

/** Samples of a Prometheus text exposition: `name{labels}` → value. */
function parse(text: string): Map<string, number> {
  const out = new Map<string, number>()
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const i = line.lastIndexOf(' ')
    out.set(line.slice(0, i), Number(line.slice(i + 1)))
  }
  return out
}

/** A logger that records every call (a real object, not a stand-in for Redis). */
class RecordingLogger implements Logger {
  readonly calls: { level: string; obj: Record<string, unknown>; msg: string | undefined }[] = []
  #record = (level: string) => (obj: object, msg?: string) =>
    this.calls.push({ level, obj: obj as Record<string, unknown>, msg })
  debug = this.#record('debug')
  info = this.#record('info')
  warn = this.#record('warn')
  error = this.#record('error')
  at(level: string): string[] {
    return this.calls.filter((c) => c.level === level).map((c) => c.msg ?? '')
  }
}

/** A broker with its metrics mounted at /metrics of the same HTTP server. */
async function startWithMetrics(
  options: BrokerOptions,
): Promise<TestServer & { scrape(): Promise<Map<string, number>> }> {
  const t = await startBroker(options)
  const handler = t.broker.metricsHandler()
  t.server.removeAllListeners('request')
  t.server.on('request', (req, res) => {
    if (req.url === '/metrics') handler(req, res)
    else res.writeHead(404).end()
  })
  return {
    ...t,
    async scrape() {
      const res = await fetch(`http://127.0.0.1:${t.port}/metrics`)
      assert.equal(res.status, 200)
      assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/)
      return parse(await res.text())
    },
  }
}

describe('Metrics', () => {
  let redis: RedisServer
  const open: TestServer[] = []
  before(async () => {
    redis = await startRedis()
  })
  after(async () => {
    for (const t of open) await t.close()
    await redis.stop()
  })

  it('counts connections, messages, refusals and publish latency after real traffic, and Redis state across a restart', async () => {
    const logger = new RecordingLogger()
    const t = await startWithMetrics({
      redis: redis.url,
      identify,
      clientPublish: ['broadcast'],
      logger,
    })
    open.push(t)
    const chat = await Promise.all(
      [1, 2, 3].map(() => connect(t.url('/ws/chat?subscribe-broadcast'))),
    )
    const sender = await connect(t.url('/ws/chat?publish-broadcast'))
    const news = await connect(t.url('/ws/news?subscribe-broadcast'))
    assert.equal((await upgradeStatus(t.url('/ws/a:b?subscribe-broadcast'))).status, 400)
    assert.equal((await upgradeStatus(t.url('/ws/chat?publish-user&user=ann'))).status, 403)
    assert.equal((await upgradeStatus(t.url('/ws/chat?publish-session'))).status, 403)
    await sender.send('one')
    await sender.send('two')
    await Promise.all(chat.map((c) => c.waitFor(2)))
    await new RedisPublisher(
      { facility: 'news', broadcast: true },
      { broker: t.broker },
    ).publishMessage('hi')
    await news.waitFor(1)

    const m = await t.scrape()
    assert.equal(m.get('wsfacility_connections{facility="chat"}'), 4)
    assert.equal(m.get('wsfacility_connections{facility="news"}'), 1)
    assert.equal(m.get('wsfacility_connections_accepted_total'), 5)
    assert.equal(m.get('wsfacility_upgrades_refused_total{status="400"}'), 1)
    assert.equal(m.get('wsfacility_upgrades_refused_total{status="403"}'), 2)
    assert.equal(m.get('wsfacility_messages_in_total'), 2)
    assert.equal(m.get('wsfacility_messages_received_total'), 3)
    assert.equal(m.get('wsfacility_messages_out_total'), 3 * 2 + 1)
    assert.equal(m.get('wsfacility_channels'), 2)
    assert.equal(m.get('wsfacility_redis_up'), 1)
    assert.equal(m.get('wsfacility_publish_duration_seconds_count'), 3)
    assert.equal(m.get('wsfacility_publish_duration_seconds_bucket{le="+Inf"}'), 3)
    assert.ok((m.get('wsfacility_publish_duration_seconds_sum') ?? 0) > 0)
    assert.ok((m.get('process_resident_memory_bytes') ?? 0) > 0)

    await news.close()
    await eventually(
      async () => (await t.scrape()).get('wsfacility_connections_closed_total') === 1,
    )
    assert.equal((await t.scrape()).has('wsfacility_connections{facility="news"}'), false)

    await redis.kill()
    await eventually(async () => (await t.scrape()).get('wsfacility_redis_up') === 0, 10_000)
    await assert.rejects(t.broker.publish(['broadcast:chat'], 'lost'), {
      code: 'WSF_REDIS_UNAVAILABLE',
    })
    assert.equal((await upgradeStatus(t.url('/ws/chat?subscribe-broadcast'))).status, 503)
    const down = await t.scrape()
    assert.equal(down.get('wsfacility_publish_errors_total'), 1)
    assert.equal(down.get('wsfacility_upgrades_refused_total{status="503"}'), 1)
    await redis.restart()
    await eventually(async () => (await t.scrape()).get('wsfacility_redis_up') === 1, 15_000)

    // The same story in the logs.
    assert.ok(
      logger.calls.some(
        (c) => c.level === 'debug' && c.msg === 'connection accepted' && c.obj.facility === 'chat',
      ),
    )
    assert.ok(
      logger.calls.some(
        (c) => c.level === 'debug' && c.msg === 'connection closed' && c.obj.facility === 'news',
      ),
    )
    assert.deepEqual(
      logger.calls.filter((c) => c.msg === 'upgrade refused').map((c) => c.obj.status),
      [400, 403, 403, 503],
    )
    assert.ok(logger.calls.every((c) => c.msg !== 'upgrade refused' || c.level === 'info'))
    assert.deepEqual(
      logger.calls.filter((c) => c.obj.redis !== undefined).map((c) => [c.level, c.obj.redis]),
      [
        ['info', 'ready'],
        ['warn', 'reconnecting'],
        ['info', 'ready'],
      ],
    )
    // Background failures (the lost Redis connections) are errors, with the error attached.
    assert.ok(logger.at('error').length > 0)
    assert.ok(
      logger.calls.filter((c) => c.level === 'error').every((c) => c.obj.err instanceof Error),
    )
    await Promise.all([...chat, sender].map((c) => c.close()))
  })

  it('counts frames dropped for, and clients closed as, slow consumers', async () => {
    // A buffer smaller than one frame: every frame overflows it, without needing a client that
    // really stops reading (that scenario has its own tests).
    const drop = await startWithMetrics({ maxBufferedBytes: 4, slowConsumer: 'drop' })
    const close = await startWithMetrics({ maxBufferedBytes: 4, slowConsumer: 'close' })
    open.push(drop, close)
    const d = await connect(drop.url('/ws/slow?subscribe-broadcast'))
    const c = await connect(close.url('/ws/slow?subscribe-broadcast'))
    const closed = c.closedByServer()
    for (let i = 0; i < 3; i++)
      await drop.broker.publish(['broadcast:slow'], 'more than four bytes')
    await close.broker.publish(['broadcast:slow'], 'more than four bytes')
    assert.equal((await closed).code, 1013)
    assert.equal((await drop.scrape()).get('wsfacility_dropped_frames_total'), 3)
    assert.equal((await close.scrape()).get('wsfacility_slow_consumer_closes_total'), 1)
    await d.close()
    // Drops of a client that has gone still count.
    await eventually(
      async () => (await drop.scrape()).get('wsfacility_connections_closed_total') === 1,
    )
    assert.equal((await drop.scrape()).get('wsfacility_dropped_frames_total'), 3)
  })

  it('serves the same text from broker.metrics() and answers HEAD without a body', async () => {
    const t = await startWithMetrics({})
    open.push(t)
    assert.match(await t.broker.metrics(), /^# HELP wsfacility_connections /m)
    const res = await new Promise<http.IncomingMessage>((resolve) => {
      http
        .request({ port: t.port, host: '127.0.0.1', path: '/metrics', method: 'HEAD' }, resolve)
        .end()
    })
    assert.equal(res.statusCode, 200)
    res.resume()
    await once(res, 'end')
  })

  it("registers in the app's registry with metrics.registry, beside the app's own metrics", async () => {
    const registry = new Registry()
    const appCounter = new Counter({
      name: 'app_orders_total',
      help: 'Orders.',
      registers: [registry],
    })
    appCounter.inc(2)
    const t = await startBroker({ metrics: { registry } })
    open.push(t)
    const c = await connect(t.url('/ws/chat?subscribe-broadcast'))
    const m = parse(await registry.metrics())
    assert.equal(m.get('app_orders_total'), 2)
    assert.equal(m.get('wsfacility_connections{facility="chat"}'), 1)
    assert.equal(m.get('wsfacility_connections_accepted_total'), 1)
    // The process metrics are the app's to register (collectDefaultMetrics): not added.
    assert.equal(m.has('process_cpu_seconds_total'), false)
    // broker.metrics() serves the registry it was given.
    assert.equal(parse(await t.broker.metrics()).get('app_orders_total'), 2)
    await c.close()
  })

  it('keeps two brokers of one process apart; one registry for two brokers is refused until the first closes', async () => {
    const a = await startWithMetrics({})
    const b = await startWithMetrics({})
    open.push(a, b)
    const clients = await Promise.all([
      connect(a.url('/ws/one?subscribe-broadcast')),
      connect(a.url('/ws/one?subscribe-broadcast')),
      connect(b.url('/ws/two?subscribe-broadcast')),
    ])
    const [ma, mb] = [await a.scrape(), await b.scrape()]
    assert.equal(ma.get('wsfacility_connections_accepted_total'), 2)
    assert.equal(mb.get('wsfacility_connections_accepted_total'), 1)
    assert.equal(ma.has('wsfacility_connections{facility="two"}'), false)
    assert.ok((mb.get('process_resident_memory_bytes') ?? 0) > 0)
    await Promise.all(clients.map((c) => c.close()))

    const registry = new Registry()
    const first = createBroker({ metrics: { registry } })
    assert.throws(() => createBroker({ metrics: { registry } }), {
      code: 'WSF_INVALID_OPTION',
      message: /metrics\.registry already holds wsfacility_/,
    })
    await first.close()
    const second = createBroker({ metrics: { registry } })
    assert.match(await registry.metrics(), /^wsfacility_redis_up 1$/m)
    await second.close()
  })

  it('refuses a metrics option that cannot work', () => {
    for (const metrics of [{ regsitry: new Registry() }, { registry: {} }, 'yes', null]) {
      assert.throws(
        () => createBroker({ metrics } as unknown as BrokerOptions),
        { code: 'WSF_INVALID_OPTION' },
        JSON.stringify(metrics),
      )
    }
    assert.throws(() => createBroker({ metrics: { regsitry: 1 } } as unknown as BrokerOptions), {
      message: /registry/,
    })
  })
})
