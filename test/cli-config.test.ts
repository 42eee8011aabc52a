import assert from 'node:assert/strict'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, afterEach, before, describe, it } from 'node:test'
import { LISTENING } from './helpers/child.js'
import { type RedisServer, startRedis } from './helpers/redis.js'
import { Spawned } from './helpers/spawned.js'
import { signToken } from './helpers/token.js'
import { upgradeStatus } from './helpers/ws.js'

// The built CLI with a config file, as operators run it (test/run.sh builds dist/ first).

let redis: RedisServer
let dir: string
const { cli, serve, client, end } = new Spawned()

/** Writes `config` (an object, or text as it is) to a file of its own; returns its path. */
let files = 0
function configFile(config: unknown): string {
  const path = join(dir, `wsfacility-${++files}.json`)
  writeFileSync(path, typeof config === 'string' ? config : JSON.stringify(config))
  return path
}

/** Runs `wsfacility --check-config` and returns its exit code, stdout and stderr. */
async function checkConfig(args: string[], env: Record<string, string> = {}) {
  const child = cli(['--check-config', ...args], env)
  const { code } = await child.exited
  return { code, stdout: child.stdout, stderr: child.stderr }
}

/** The settings `--check-config` prints for `args` and `env`; asserts it exited 0. */
async function effective(args: string[], env: Record<string, string> = {}) {
  const { code, stdout, stderr } = await checkConfig(args, env)
  assert.equal(code, 0, stderr)
  return JSON.parse(stdout) as Record<string, unknown>
}

/** Starts the CLI on `args` and returns its exit code and stderr, failing if it listens. */
async function refused(args: string[], env: Record<string, string> = {}) {
  const child = cli(['--port', '0', ...args], env)
  const outcome = await Promise.race([
    child.exited,
    child.waitForOutput(LISTENING).then(() => 'listening' as const),
  ])
  assert.deepEqual(outcome, { code: 2, signal: null }, child.stdout)
  return child.stderr
}

before(async () => {
  redis = await startRedis()
  dir = mkdtempSync(join(tmpdir(), 'wsfacility-config-'))
})
afterEach(end)
after(async () => {
  rmSync(dir, { recursive: true, force: true })
  await redis.stop()
})

describe('wsfacility --config: facilities', () => {
  it('keeps the history of a facility from the file and recovers it after a reconnect', async () => {
    const file = configFile({
      port: 0,
      format: 'json',
      clientPublish: ['broadcast'],
      facilities: { chat: { history: { size: 10, ttl: 60 } } },
    })
    const { ws } = await serve(['--config', file, '--redis', redis.url])
    const data = (text: string): string => JSON.stringify({ type: 'data', data: text })
    const a = await client(ws('/ws/chat?subscribe-broadcast'))
    await a.waitFor(1) // the recovered frame with the position
    const stayed = await client(ws('/ws/chat?subscribe-broadcast'))
    const sender = await client(ws('/ws/chat?publish-broadcast'))
    sender.ws.send(data('one'))
    await a.waitFor(2)
    const first = JSON.parse(a.texts[1]!) as { data: unknown; epoch: string; offset: number }
    assert.deepEqual([first.data, first.offset], ['one', 1])
    a.ws.terminate()
    sender.ws.send(data('two'))
    sender.ws.send(data('three'))
    // A client that stayed tells when both were published (so are in the history).
    await stayed.waitFor(4)
    const recover = encodeURIComponent(
      JSON.stringify({ broadcast: { epoch: first.epoch, offset: first.offset } }),
    )
    const b = await client(ws(`/ws/chat?subscribe-broadcast&recover=${recover}`))
    await b.waitFor(3)
    const frames = b.texts.map((t) => JSON.parse(t) as Record<string, unknown>)
    assert.deepEqual(
      frames.map((f) => f.data ?? f.recovered),
      ['two', 'three', true],
    )
  })

  it('refuses anonymous clients with 401 on a facility with anonymous: false, only there', async () => {
    const secret = 'config-test-secret'
    const file = configFile({
      port: 0,
      jwtSecret: secret,
      facilities: { private: { anonymous: false } },
    })
    const { ws } = await serve(['--config', file])
    assert.equal((await upgradeStatus(ws('/ws/private?subscribe-broadcast'))).status, 401)
    await client(ws('/ws/public?subscribe-broadcast'))
    const token = await signToken({ key: secret, sub: 'ann', exp: '10m' })
    await client(ws(`/ws/private?subscribe-user&token=${token}`))
  })

  it('applies a pattern facility room/{id} to /ws/room/7', async () => {
    // Clients may not publish to broadcast (the default), except in rooms.
    const file = configFile({
      port: 0,
      facilities: { 'room/{id}': { publish: ['broadcast'], format: 'binary' } },
    })
    const { ws } = await serve(['--config', file])
    assert.equal((await upgradeStatus(ws('/ws/lobby?publish-broadcast'))).status, 403)
    const listener = await client(ws('/ws/room/7?subscribe-broadcast'))
    const sender = await client(ws('/ws/room/7?publish-broadcast'))
    sender.ws.send('hello')
    const [frame] = await listener.waitFor(1)
    assert.equal(frame!.binary, true)
    assert.equal((frame!.data as Buffer).toString(), 'hello')
  })
})

describe('wsfacility --config: flags, environment and file', () => {
  it('lets a flag win over the file, and an environment variable too', async () => {
    const file = configFile({ port: 0, prefix: 'file', path: '/file/', metrics: true })
    const fromFile = await effective(['--config', file])
    assert.deepEqual([fromFile.prefix, fromFile.path, fromFile.metrics], ['file', '/file/', true])
    const flagged = await effective(['--config', file, '--prefix', 'flag', '--path', '/flag/'])
    assert.deepEqual([flagged.prefix, flagged.path], ['flag', '/flag/'])
    const env = await effective(['--config', file], {
      WSFACILITY_PREFIX: 'env',
      WSFACILITY_METRICS: '0',
    })
    assert.deepEqual([env.prefix, env.path, env.metrics], ['env', '/file/', false])
    // The flag wins over both.
    const both = await effective(['--config', file, '--prefix', 'flag'], {
      WSFACILITY_PREFIX: 'env',
    })
    assert.equal(both.prefix, 'flag')
  })

  it('takes writeDelay from the file, for the broker and a facility, and the flag over it', async () => {
    const file = configFile({ writeDelay: 40, facilities: { ticker: { writeDelay: 5 } } })
    const fromFile = await effective(['--config', file])
    assert.deepEqual(fromFile.limits, { writeDelay: 40 })
    assert.deepEqual(fromFile.facilities, { ticker: { writeDelay: 5 } })
    const env = await effective(['--config', file], { WSFACILITY_WRITE_DELAY: '25' })
    assert.deepEqual(env.limits, { writeDelay: 25 })
    const flagged = await effective(['--config', file, '--write-delay', '0'], {
      WSFACILITY_WRITE_DELAY: '25',
    })
    assert.deepEqual(flagged.limits, { writeDelay: 0 })
    const stderr = await refused(['--config', configFile({ writeDelay: 20_000 })])
    assert.match(stderr, /writeDelay must be at most 10000/)
  })

  it('serves on the path the flag gives over the one in the file (end to end)', async () => {
    const file = configFile({ port: 0, path: '/file/' })
    const { ws } = await serve(['--config', file, '--path', '/flag/'])
    await client(ws('/flag/chat?subscribe-broadcast'))
    assert.equal((await upgradeStatus(ws('/file/chat?subscribe-broadcast'))).status, 404)
  })

  it('reads the file named by WSFACILITY_CONFIG', async () => {
    const file = configFile({ heartbeat: 'ping', facilities: { chat: { expire: 30 } } })
    const settings = await effective([], { WSFACILITY_CONFIG: file })
    assert.equal(settings.heartbeat, 'ping')
    assert.equal(settings.configFile, file)
    assert.deepEqual(settings.facilities, { chat: { expire: 30 } })
  })

  it('takes API keys (a list, or comma-separated from the environment) and the admin switch', async () => {
    const file = configFile({
      apiKey: ['old-key-0123456789ab', 'new-key-0123456789ab'],
      admin: true,
      adminPassword: 'admin-password',
    })
    const settings = await effective(['--config', file])
    assert.deepEqual(settings.apiKeys, ['REDACTED', 'REDACTED'])
    assert.equal(settings.admin, true)
    const env = await effective(['--config', file], {
      WSFACILITY_API_KEY: 'key-a-0123456789abcd,key-b-0123456789abcd,key-c-0123456789abcd',
    })
    assert.deepEqual(env.apiKeys, ['REDACTED', 'REDACTED', 'REDACTED'])
    const stderr = await refused(['--admin'])
    assert.match(stderr, /^wsfacility: --admin needs --admin-password or --api-key\n/)
  })
})

describe('wsfacility --check-config', () => {
  it('prints every setting as JSON with the secrets redacted and exits 0', async () => {
    const file = configFile({
      redis: 'redis://:hunter2@127.0.0.1:6399/0',
      jwtSecret: 'jwt-secret-value',
      apiKey: 'api-key-value-0123456789',
      admin: true,
      adminPassword: 'admin-password-value',
      historySize: 50,
      historyTtl: 600,
      maxUserConnections: 3,
      facilities: { 'room/{id}': { subscribe: ['broadcast'], slowConsumer: 'drop' } },
    })
    const { code, stdout } = await checkConfig(['--config', file], {
      WSFACILITY_SESSION_SECRET: 'session-secret-value',
    })
    assert.equal(code, 0)
    for (const secret of ['hunter2', 'jwt-secret-value', 'api-key-value', 'admin-password']) {
      assert.equal(stdout.includes(secret), false, secret)
    }
    assert.equal(stdout.includes('session-secret-value'), false)
    const settings = JSON.parse(stdout) as Record<string, unknown>
    assert.equal(settings.redis, 'redis://:REDACTED@127.0.0.1:6399/0')
    assert.deepEqual(settings.jwt, { secret: 'REDACTED' })
    assert.deepEqual(settings.session, {
      secrets: ['REDACTED'],
      cookie: 'connect.sid',
      prefix: 'sess:',
    })
    assert.equal(settings.adminPassword, 'REDACTED')
    assert.deepEqual(settings.history, { size: 50, ttl: 600 })
    assert.deepEqual(settings.limits, { maxConnectionsPerUser: 3 })
    assert.deepEqual(settings.facilities, {
      'room/{id}': { subscribe: ['broadcast'], slowConsumer: 'drop' },
    })
    assert.equal('help' in settings, false)
  })

  it('accepts the full example of docs/config.md', async () => {
    const doc = readFileSync(new URL('../docs/config.md', import.meta.url), 'utf8')
    const example = /```json\n([\s\S]*?)```/.exec(doc)![1]!
    const settings = await effective(['--config', configFile(example)])
    const facilities = (JSON.parse(example) as { facilities: object }).facilities
    assert.deepEqual(settings.facilities, facilities)
    assert.equal(Object.keys(facilities).length, 4)
  })

  it('exits 2 for settings that cannot work, a cross-check between file and flags included', async () => {
    const file = configFile({ historySize: 5 })
    const { code, stdout, stderr } = await checkConfig(['--config', file])
    assert.equal(code, 2)
    assert.equal(stdout, '')
    assert.equal(
      stderr,
      `wsfacility: ${file}: historySize needs --history-ttl\n` +
        "Run 'wsfacility --help' for the options.\n",
    )
    assert.equal((await checkConfig(['--config', file, '--history-ttl', '9'])).code, 0)
  })
})

describe('wsfacility --config: bad files', () => {
  it('names the path of every bad value, one line each, then points at --help (exit 2)', async () => {
    const file = configFile({
      workers: 0,
      facilities: {
        chat: { history: { size: 0, ttl: 60 }, format: 'xml' },
        news: { subscribe: ['everyone'], expire: -1 },
      },
    })
    const stderr = await refused(['--config', file])
    const lines = stderr.trimEnd().split('\n')
    assert.equal(lines.at(-1), "Run 'wsfacility --help' for the options.")
    assert.deepEqual(lines.slice(0, -1).sort(), [
      `wsfacility: ${file}: facilities.chat.format must be raw, binary or json`,
      `wsfacility: ${file}: facilities.chat.history.size must be a positive integer`,
      `wsfacility: ${file}: facilities.news.expire must be an integer >= 0`,
      `wsfacility: ${file}: facilities.news.subscribe.0 must be session, user, group or broadcast`,
      `wsfacility: ${file}: workers must be a positive integer`,
    ])
  })

  it('refuses unknown keys, at the top and in a facility, with the key they probably are', async () => {
    const file = configFile({ prot: 8000, facilities: { chat: { histroy: false, colour: 1 } } })
    const stderr = await refused(['--config', file])
    assert.match(stderr, /: unknown key "prot" \(did you mean port\?\)\n/)
    assert.match(stderr, /: unknown key "histroy" in facilities\.chat \(did you mean history\?\)\n/)
    assert.match(stderr, /: unknown key "colour" in facilities\.chat\n/)
    // The command-line-only keys are not settings of the file.
    const help = configFile({ help: true, checkConfig: true })
    assert.match(await refused(['--config', help]), /unknown key "help"/)
  })

  it('refuses bad facility names, a file that is not JSON, and a file that is not there', async () => {
    const names = configFile({ facilities: { 'a:b': {}, 'r/{x}/{x}': {} } })
    const stderr = await refused(['--config', names])
    assert.match(stderr, /facilities: "a:b": a facility name must not contain ":"/)
    assert.match(
      stderr,
      /facilities: "r\/\{x\}\/\{x\}": a facility pattern must not name a parameter twice/,
    )
    const broken = configFile('{"port": 1,')
    assert.match(await refused(['--config', broken]), /is not valid JSON/)
    assert.match(
      await refused(['--config', join(dir, 'missing.json')]),
      /^wsfacility: cannot read the config file .*missing\.json: no such file\n/,
    )
    assert.match(await refused(['--config', configFile([1, 2])]), /the file must be a JSON object/)
  })

  it('checks values from the file as it checks flags, naming the key', async () => {
    const file = configFile({ redis: 'http://nope', requireAuth: true })
    assert.match(
      await refused(['--config', file]),
      new RegExp(`^wsfacility: ${file}: redis must be a redis:// or rediss:// URL\\n`),
    )
    const auth = configFile({ requireAuth: true })
    assert.match(
      await refused(['--config', auth]),
      /: requireAuth needs --jwt-secret, --jwks-url or --session-secret/,
    )
  })
})
