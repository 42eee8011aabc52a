import assert from 'node:assert/strict'
import { after, afterEach, before, describe, it } from 'node:test'
import { USAGE } from '../src/cli/usage.js'
import { LISTENING } from './helpers/child.js'
import { freePort, type RedisServer, startRedis } from './helpers/redis.js'
import { Spawned } from './helpers/spawned.js'
import { eventually, TestClient, upgradeStatus } from './helpers/ws.js'

// The built CLI, as users run it (test/run.sh builds dist/ first).

let redis: RedisServer
let publisher: Awaited<ReturnType<RedisServer['client']>>
const { cli, serve, client, end } = new Spawned()

before(async () => {
  redis = await startRedis()
  publisher = await redis.client()
})
afterEach(end)
after(async () => {
  await publisher.close()
  await redis.stop()
})

describe('wsfacility --help text', () => {
  const lines = USAGE.split('\n')

  it('fits 80 columns: no line is longer than 79 characters', () => {
    const long = lines.filter((line) => line.length > 79)
    assert.deepEqual(long, [])
  })

  it('puts every flag on one line with the start of its description, in one column', () => {
    const flags = lines.filter((line) => /^ {2}-/.test(line))
    assert.ok(flags.length >= 30)
    const columns = new Set(flags.map((line) => line.search(/(?<=\S {2,})\S/)))
    assert.deepEqual([...columns], [28], flags.join('\n'))
    assert.ok(
      lines.includes(
        '  --max-user-connections N  connections of one user this process accepts (over',
      ),
    )
    // Continuation lines start in the description column or, for env lines, two further.
    for (const line of lines.filter((l) => /^ {3}/.test(l))) {
      assert.match(line, /^ {28}\S|^ {30}\S/)
    }
  })
})

describe('wsfacility CLI', () => {
  it('prints the address it listens on, with the real port for --port 0', async () => {
    const { child, port } = await serve(['--port', '0'])
    assert.ok(port > 0)
    assert.match(child.stdout, /in-memory engine/)
    const res = await fetch(`http://127.0.0.1:${port}/health`)
    assert.equal(res.status, 200)
  })

  it('prints the usage on stdout and exits 0 for --help and -h', async () => {
    for (const flag of ['--help', '-h']) {
      const child = cli([flag])
      const { code } = await child.exited
      assert.equal(code, 0)
      assert.match(child.stdout, /Usage: wsfacility/)
      assert.match(child.stdout, /--client-publish/)
    }
  })

  it('delivers a raw PUBLISH on broadcast:<facility> in Redis to subscribed clients', async () => {
    const { ws } = await serve(['--port', '0', '--redis', redis.url])
    const c = await client(ws('/ws/raw?subscribe-broadcast'))
    await publisher.publish('broadcast:raw', 'hello')
    await c.waitFor(1)
    assert.deepEqual(c.texts, ['hello'])
  })

  it('sends every message as a binary frame with --format binary', async () => {
    const { ws } = await serve(['--port', '0', '--redis', redis.url, '--format', 'binary'])
    const c = await client(ws('/ws/bin?subscribe-broadcast'))
    await publisher.publish('broadcast:bin', 'text from django')
    await c.waitFor(1)
    assert.deepEqual(c.received, [{ data: Buffer.from('text from django'), binary: true }])
  })

  it('uses the ws4redis channel names with --prefix ws4redis', async () => {
    const { ws } = await serve(['--port', '0', '--redis', redis.url, '--prefix', 'ws4redis'])
    const c = await client(ws('/ws/pre?subscribe-broadcast'))
    // Published first on the same connection: it would arrive first if the prefix were ignored.
    await publisher.publish('broadcast:pre', 'unprefixed')
    await publisher.publish('ws4redis:broadcast:pre', 'prefixed')
    await c.waitFor(1)
    assert.deepEqual(c.texts, ['prefixed'])
  })

  it('answers the heartbeat given as --heartbeat=--heartbeat--', async () => {
    const { ws } = await serve(['--port', '0', '--heartbeat=--heartbeat--'])
    const c = await client(ws('/ws/hb?subscribe-broadcast'))
    await c.send('--heartbeat--')
    await c.waitFor(1)
    assert.deepEqual(c.texts, ['--heartbeat--'])
  })

  it('stores what clients publish for --expire seconds when --client-publish allows it', async () => {
    const { ws } = await serve([
      '--port',
      '0',
      '--redis',
      redis.url,
      '--expire',
      '10',
      '--client-publish',
      'broadcast',
    ])
    const c = await client(ws('/ws/exp?publish-broadcast'))
    await c.send('kept')
    await eventually(async () => (await publisher.get('broadcast:exp')) === 'kept', 10_000)
    const ttl = await publisher.ttl('broadcast:exp')
    assert.ok(ttl > 0 && ttl <= 10, `ttl ${ttl}`)
  })

  it('keeps channel history with --history-size/--history-ttl and speaks json with --format json', async () => {
    const { ws } = await serve([
      '--port',
      '0',
      '--redis',
      redis.url,
      '--format',
      'json',
      '--history-size',
      '5',
      '--history-ttl',
      '60',
    ])
    const a = await client(ws('/ws/hist?subscribe-broadcast'))
    await a.waitFor(1) // the recovered frame with the position
    const publish = (text: string) =>
      publisher.sendCommand(['FCALL', 'wsfacility_publish', '1', 'broadcast:hist', text, '5', '60'])
    await eventually(async () => {
      const libs = (await publisher.sendCommand(['FUNCTION', 'LIST'])) as unknown[]
      return libs.length > 0
    }, 10_000)
    await publish('"one"')
    await a.waitFor(2)
    const first = JSON.parse(a.texts[1]!) as { offset: number; epoch: string; data: unknown }
    assert.deepEqual([first.data, first.offset], ['one', 1])
    const stream = await publisher.sendCommand([
      'XLEN',
      '{broadcast:hist}wsfacility:history:broadcast:hist',
    ])
    assert.equal(stream, 1)
    // Missed while away, recovered on reconnect, in order, with the recovered frame after them.
    await a.close()
    await publish('"two"')
    await publish('"three"')
    const recover = encodeURIComponent(
      JSON.stringify({ broadcast: { epoch: first.epoch, offset: first.offset } }),
    )
    const b = await client(ws(`/ws/hist?subscribe-broadcast&recover=${recover}`))
    await b.waitFor(3)
    const frames = b.texts.map((t) => JSON.parse(t) as Record<string, unknown>)
    assert.deepEqual(
      frames.map((f) => f.data ?? f.recovered),
      ['two', 'three', true],
    )
  })

  it('refuses client publishing to audiences --client-publish does not list', async () => {
    const { port } = await serve(['--port', '0', '--client-publish', 'user'])
    const refused = await upgradeStatus(`ws://127.0.0.1:${port}/ws/cp?publish-broadcast`)
    assert.equal(refused.status, 403)
  })

  it('tells refusals by a close with --refusals close (WSFACILITY_REFUSALS too); HTTP by default', async () => {
    const plain = await serve(['--port', '0', '--client-publish', 'user'])
    const url = (port: number) => `ws://127.0.0.1:${port}/ws/cp?publish-broadcast`
    assert.equal((await upgradeStatus(url(plain.port))).status, 403)
    for (const [args, env] of [
      [['--refusals', 'close'], {}],
      [[], { WSFACILITY_REFUSALS: 'close' }],
    ] as const) {
      const { port } = await serve(['--port', '0', '--client-publish', 'user', ...args], env)
      const refused = new TestClient(url(port))
      assert.deepEqual(await refused.closedByServer(), {
        code: 4403,
        reason: 'clients may not publish to broadcast',
      })
    }
  })

  it('reads every setting from the environment', async () => {
    const { ws } = await serve([], {
      PORT: '0',
      REDIS_URL: redis.url,
      WS4REDIS_PREFIX: 'ws4redis',
      WSFACILITY_EXPIRE: '10',
      WSFACILITY_HEARTBEAT: '--hb--',
      WSFACILITY_CLIENT_PUBLISH: 'broadcast,session',
      WSFACILITY_PATH: '/sock',
    })
    const c = await client(ws('/sock/env?subscribe-broadcast&publish-broadcast&echo'))
    await c.send('--hb--')
    await c.waitFor(1)
    await publisher.publish('ws4redis:broadcast:env', 'raw')
    await c.waitFor(2)
    await c.send('from client')
    await c.waitFor(3)
    assert.deepEqual(c.texts, ['--hb--', 'raw', 'from client'])
    assert.equal(await publisher.get('ws4redis:broadcast:env'), 'from client')
    const ttl = await publisher.ttl('ws4redis:broadcast:env')
    assert.ok(ttl > 0 && ttl <= 10, `ttl ${ttl}`)
  })

  it('lets a flag win over its environment variable', async () => {
    const { port, ws } = await serve(['--port', '0', '--prefix', 'flag'], {
      PORT: '1',
      REDIS_URL: redis.url,
      WSFACILITY_PREFIX: 'env',
    })
    assert.notEqual(port, 1)
    const c = await client(ws('/ws/win?subscribe-broadcast'))
    await publisher.publish('env:broadcast:win', 'from env prefix')
    await publisher.publish('flag:broadcast:win', 'from flag prefix')
    await c.waitFor(1)
    assert.deepEqual(c.texts, ['from flag prefix'])
  })

  it('applies the limit flags and their environment variables', async () => {
    const { ws } = await serve(
      ['--port', '0', '--max-connections', '2', '--publish-rate', '1', '--publish-burst', '2'],
      {
        WSFACILITY_MAX_PAYLOAD: '64',
        WSFACILITY_ORIGINS: 'https://app.example.com',
        WSFACILITY_CLIENT_PUBLISH: 'broadcast',
      },
    )
    const a = await client(ws('/ws/lim?publish-broadcast'))
    const b = await client(ws('/ws/lim?subscribe-broadcast'))
    assert.equal((await upgradeStatus(ws('/ws/lim?subscribe-broadcast'))).status, 503)
    const limited = a.closedByServer()
    for (let i = 0; i < 3; i++) a.ws.send(`m${i}`)
    assert.equal((await limited).code, 1008)
    // Once a's socket is gone its slot is free: the origin check answers instead of the limit.
    await eventually(async () => {
      const foreign = await upgradeStatus(ws('/ws/lim?subscribe-broadcast'), {
        origin: 'https://evil.example',
      })
      return foreign.status === 403
    })
    const tooBig = b.closedByServer()
    b.ws.send('x'.repeat(65))
    assert.equal((await tooBig).code, 1009)
  })

  const bad: { name: string; args: string[]; env?: Record<string, string> }[] = [
    { name: 'an unknown flag', args: ['--bogus'] },
    { name: 'a positional argument', args: ['serve'] },
    { name: 'a non-numeric port', args: ['--port', 'abc'] },
    { name: 'a port above 65535', args: ['--port', '65536'] },
    { name: 'a negative port', args: ['--port=-1'] },
    { name: 'a non-numeric PORT', args: [], env: { PORT: 'http' } },
    { name: 'a negative expire', args: ['--expire=-5'] },
    { name: 'a non-numeric expire', args: ['--expire', 'soon'] },
    { name: 'an unknown audience', args: ['--client-publish', 'broadcast,everyone'] },
    { name: '--history-size without --history-ttl', args: ['--history-size', '10'] },
    { name: '--history-ttl without --history-size', args: ['--history-ttl', '10'] },
    { name: 'a zero --history-size', args: ['--history-size', '0', '--history-ttl', '10'] },
    { name: 'an unknown --format', args: ['--format', 'xml'] },
    { name: 'a missing value', args: ['--redis'] },
    { name: 'a dash value without =', args: ['--heartbeat', '--heartbeat--'] },
    { name: 'a redis URL of another scheme', args: ['--redis', 'http://127.0.0.1:6379'] },
    { name: 'a prefix with ":" inside', args: ['--prefix', 'a:b'] },
    { name: 'a non-numeric --publish-rate', args: ['--publish-rate', 'fast'] },
    { name: 'a zero --max-payload', args: ['--max-payload', '0'] },
    { name: 'a --write-delay past 10000', args: ['--write-delay', '10001'] },
    {
      name: 'a non-numeric WSFACILITY_WRITE_DELAY',
      args: [],
      env: { WSFACILITY_WRITE_DELAY: 'soon' },
    },
    {
      name: 'a zero WSFACILITY_HANDSHAKE_TIMEOUT',
      args: [],
      env: { WSFACILITY_HANDSHAKE_TIMEOUT: '0' },
    },
    { name: 'an origin without a scheme', args: ['--origins', 'app.example.com'] },
    { name: 'an unknown --refusals', args: ['--refusals', 'sometimes'] },
    { name: '--workers without Redis', args: ['--workers', '2'] },
    { name: 'WSFACILITY_WORKERS without Redis', args: [], env: { WSFACILITY_WORKERS: '3' } },
    { name: 'zero workers', args: ['--workers', '0', '--redis', 'redis://127.0.0.1:1'] },
    {
      name: '--redis and --redis-cluster together',
      args: ['--redis', 'redis://127.0.0.1:1', '--redis-cluster', 'redis://127.0.0.1:2'],
    },
    {
      name: 'a cluster URL of another scheme',
      args: ['--redis-cluster', 'redis://a:1,http://b:2'],
    },
    {
      name: '--cluster-plain-publish without --redis-cluster',
      args: ['--redis', 'redis://127.0.0.1:1', '--cluster-plain-publish'],
    },
    {
      name: 'WSFACILITY_CLUSTER_PLAIN_PUBLISH without a cluster',
      args: [],
      env: { WSFACILITY_CLUSTER_PLAIN_PUBLISH: '1' },
    },
  ]
  for (const { name, args, env } of bad) {
    it(`exits 2 with the reason and a pointer to --help on stderr for ${name}`, async () => {
      // --port 0 keeps a CLI that wrongly accepted the line off port 8000 (unless PORT is tested).
      const child = cli(env?.PORT ? args : ['--port', '0', ...args], env)
      const outcome = await Promise.race([
        child.exited,
        child.waitForOutput(LISTENING).then(() => 'listening' as const),
      ])
      assert.deepEqual(outcome, { code: 2, signal: null })
      // The error and a pointer to --help, nothing that would push the error off the screen.
      assert.match(child.stderr, /^wsfacility: .+\nRun 'wsfacility --help' for the options\.\n$/)
      assert.equal(child.stdout, '')
    })
  }

  it('names the flag an unknown one probably is', async () => {
    const child = cli(['--port', '0', '--redsi', 'redis://127.0.0.1:1'])
    assert.equal((await child.exited).code, 2)
    assert.match(child.stderr, /^wsfacility: unknown option --redsi \(did you mean --redis\?\)\n/)
    const far = cli(['--port', '0', '--colour'])
    assert.equal((await far.exited).code, 2)
    assert.match(far.stderr, /^wsfacility: unknown option --colour\n/)
  })

  it('answers plain HTTP: 426 under the ws path, /health, 404 elsewhere', async () => {
    const { port } = await serve(['--port', '0'])
    const base = `http://127.0.0.1:${port}`
    const ws = await fetch(`${base}/ws/foo?subscribe-broadcast`)
    assert.equal(ws.status, 426)
    await ws.body?.cancel()
    const health = await fetch(`${base}/health`)
    assert.equal(health.status, 200)
    assert.deepEqual(await health.json(), { status: 'ok', redis: 'memory' })
    const other = await fetch(`${base}/elsewhere`)
    assert.equal(other.status, 404)
    await other.body?.cancel()
    // Metrics are opt-in (--metrics).
    const metrics = await fetch(`${base}/metrics`)
    assert.equal(metrics.status, 404)
    await metrics.body?.cancel()
  })

  it('answers /health with 503 while Redis is down and 200 once it is back', async () => {
    const own = await startRedis()
    try {
      const { port } = await serve(['--port', '0', '--redis', own.url])
      const health = async (): Promise<string> => {
        const res = await fetch(`http://127.0.0.1:${port}/health`)
        assert.equal(res.headers.get('content-type'), 'application/json')
        return `${res.status} ${JSON.stringify(await res.json())}`
      }
      assert.equal(await health(), '200 {"status":"ok","redis":"ready"}')
      await own.stop()
      await eventually(
        async () => (await health()) === '503 {"status":"unavailable","redis":"reconnecting"}',
        15_000,
      )
      await own.restart()
      await eventually(
        async () => (await health()) === '200 {"status":"ok","redis":"ready"}',
        15_000,
      )
    } finally {
      await own.stop()
    }
  })

  it('serves Prometheus metrics at /metrics with --metrics, counting real traffic', async () => {
    const { port, ws } = await serve(['--port', '0', '--redis', redis.url, '--metrics'])
    const c = await client(ws('/ws/metered?subscribe-broadcast'))
    await publisher.publish('broadcast:metered', 'counted')
    await c.waitFor(1)
    const res = await fetch(`http://127.0.0.1:${port}/metrics`)
    assert.equal(res.status, 200)
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/)
    const text = await res.text()
    assert.match(text, /^wsfacility_connections\{facility="metered"\} 1$/m)
    assert.match(text, /^wsfacility_messages_out_total 1$/m)
    assert.match(text, /^wsfacility_redis_up 1$/m)
  })

  it('closes clients with 1001 and exits 0 on SIGTERM', async () => {
    const { child, ws } = await serve(['--port', '0', '--redis', redis.url])
    const c = await client(ws('/ws/bye?subscribe-broadcast'))
    const closed = c.closedByServer()
    const { code, signal } = await child.signal('SIGTERM')
    assert.equal((await closed).code, 1001)
    assert.deepEqual({ code, signal }, { code: 0, signal: null })
  })

  it('exits 0 on SIGINT', async () => {
    const { child } = await serve(['--port', '0'])
    const { code, signal } = await child.signal('SIGINT')
    assert.deepEqual({ code, signal }, { code: 0, signal: null })
  })

  it('exits 1 without listening when Redis is unreachable', async () => {
    const port = await freePort()
    const child = cli(['--port', '0', '--redis', `redis://127.0.0.1:${port}`])
    const { code } = await child.exited
    assert.equal(code, 1)
    assert.match(child.stderr, /cannot connect to Redis/)
    assert.doesNotMatch(child.stdout, /listening/)
  })
})
