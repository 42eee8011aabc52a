import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { SignJWT } from 'jose'
import { type Child, ROOT, serveCli } from './helpers/child.js'
import { type RedisServer, startRedis } from './helpers/redis.js'
import { closeAll, connect, eventually } from './helpers/ws.js'

// The standalone server as operators run it (test/run.sh builds dist/ first): the example config
// file of examples/server-api, an API key from the environment, and the example Python backend
// driving it with nothing but `requests`.
const EXAMPLE = join(ROOT, 'examples/server-api')
const KEY = 'server-api-cli-key-0123456789'

function runPython(script: string, args: string[], env: Record<string, string>) {
  return new Promise<{ code: number | null; out: string; err: string }>((resolve, reject) => {
    const child = spawn('python3', [script, ...args], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let out = ''
    let err = ''
    child.stdout.on('data', (d: Buffer) => (out += d.toString()))
    child.stderr.on('data', (d: Buffer) => (err += d.toString()))
    child.on('error', reject)
    child.on('exit', (code) => resolve({ code, out, err }))
  })
}

describe('standalone server: the HTTP API from a Python backend, and --admin', () => {
  let redis: RedisServer
  let dir: string
  const children: Child[] = []

  before(async () => {
    redis = await startRedis()
    dir = mkdtempSync(join(tmpdir(), 'wsfacility-api-'))
  })
  after(async () => {
    await Promise.all(children.map((c) => c.kill()))
    await redis?.stop()
    rmSync(dir, { recursive: true, force: true })
  })

  it('lets examples/server-api/backend.py publish to a user, list who is online and disconnect them', async () => {
    // The example file as it is, but for the port and Redis of this test.
    const config = JSON.parse(readFileSync(join(EXAMPLE, 'wsfacility.json'), 'utf8')) as Record<
      string,
      unknown
    >
    const file = join(dir, 'wsfacility.json')
    writeFileSync(file, JSON.stringify({ ...config, port: 0, host: '127.0.0.1', redis: redis.url }))
    const server = await serveCli(children, ['--config', file], { WSFACILITY_API_KEY: KEY })
    const secret = new TextEncoder().encode(config.jwtSecret as string)
    const token = await new SignJWT({})
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject('ann')
      .sign(secret)
    const ann = await connect(server.ws('/ws/notifications?subscribe-user'), {
      headers: { authorization: `Bearer ${token}` },
    })
    try {
      const closed = ann.closedByServer()
      const py = await runPython(join(EXAMPLE, 'backend.py'), ['ann'], {
        WSFACILITY_URL: `http://127.0.0.1:${server.port}`,
        WSFACILITY_API_KEY: KEY,
      })
      assert.equal(py.code, 0, py.err)
      assert.match(py.out, /^receivers: 1$/m)
      assert.match(py.out, /^online: \{'ann': 1\}$/m)
      assert.match(py.out, /^disconnected: ann$/m)
      // A history facility first tells a new client where it stands ({type: recovered}).
      const frames = (await ann.waitFor(2)).map(
        (r) => JSON.parse(r.data as string) as { type: string; data: unknown; offset: number },
      )
      assert.equal(frames[0]!.type, 'recovered')
      const message = frames[1]!
      assert.equal(message.type, 'data')
      assert.deepEqual(message.data, { type: 'notice', text: 'Your report is ready' })
      assert.equal(message.offset, 1)
      assert.equal((await closed).code, 1000)

      // The old key of the example's rotation pair still works; a wrong one gets 401.
      const old = await fetch(`http://127.0.0.1:${server.port}/api/info`, {
        headers: { authorization: `apikey ${(config.apiKey as string[])[1]}` },
      })
      assert.equal(old.status, 401, 'WSFACILITY_API_KEY replaces the file’s keys')
      const info = await fetch(`http://127.0.0.1:${server.port}/api/info`, {
        headers: { authorization: `apikey ${KEY}` },
      })
      const body = (await info.json()) as { nodes: unknown[]; redis: string }
      assert.equal(body.nodes.length, 1)
      assert.equal(body.redis, 'ready')
    } finally {
      await closeAll(ann)
    }
  })

  it('has no /api route without a key, and serves the dashboard login with --admin', async () => {
    const plain = await serveCli(children, ['--port', '0', '--redis', redis.url])
    const none = await fetch(`http://127.0.0.1:${plain.port}/api/info`)
    assert.equal(none.status, 404)
    assert.equal((await fetch(`http://127.0.0.1:${plain.port}/admin/`)).status, 404)

    const admin = await serveCli(children, ['--port', '0', '--redis', redis.url, '--admin'], {
      WSFACILITY_ADMIN_PASSWORD: 'a long admin password',
    })
    const base = `http://127.0.0.1:${admin.port}`
    const login = await fetch(`${base}/admin/`)
    assert.equal(login.status, 200)
    assert.match(await login.text(), /name="password"/)
    // Only the dashboard's login reaches the API routes: no key, so no /api/.
    assert.equal((await fetch(`${base}/api/info`)).status, 404)
    const res = await fetch(`${base}/admin/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'password=a+long+admin+password',
      redirect: 'manual',
    })
    assert.equal(res.status, 303)
    const cookie = (res.headers.get('set-cookie') ?? '').split(';', 1)[0]!
    const info = await fetch(`${base}/admin/api/info`, {
      headers: { cookie, 'x-wsfacility-admin': '1' },
    })
    assert.equal(info.status, 200)
    await eventually(async () => {
      const page = await fetch(`${base}/admin/`, { headers: { cookie } })
      return (await page.text()).includes('data-metric="connections"')
    })
  })
})
