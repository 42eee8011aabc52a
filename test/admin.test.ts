import assert from 'node:assert/strict'
import { mkdirSync } from 'node:fs'
import http from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import type { Browser, Page } from 'playwright-core'
import { type Broker, createBroker } from '../src/index.js'
import { AdminDashboard } from '../src/cli/admin/index.js'
import { ServerApi } from '../src/cli/api/index.js'
import { launchBrowser } from './helpers/browser.js'
import { listen, type Listening } from './helpers/http.js'
import { identify } from './helpers/identity.js'
import { type RedisServer, startRedis } from './helpers/redis.js'
import { closeAll, connect, type TestClient } from './helpers/ws.js'

const KEY = 'dashboard-api-key-0123456789'
const PASSWORD = 'correct horse battery'

describe('admin dashboard (headless Chromium, real Redis)', () => {
  let redis: RedisServer
  let broker: Broker
  let api: ServerApi
  let web: Listening
  let browser: Browser
  let page: Page
  const problems: string[] = []
  const clients: TestClient[] = []
  const ws = (path: string) => `ws://127.0.0.1:${web.port}${path}`
  const metric = (name: string) => page.locator(`[data-metric="${name}"]`)
  const WAIT = { timeout: 10_000 }
  const exactly = (text: string) => new RegExp(`^${text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`)
  const waitMetric = (name: string, value: string) =>
    page.locator(`[data-metric="${name}"]`, { hasText: exactly(value) }).waitFor(WAIT)
  const waitText = (selector: string, text: string) =>
    page.locator(selector, { hasText: text }).waitFor(WAIT)

  before(async () => {
    redis = await startRedis()
    broker = createBroker({ redis: redis.url, identify, presence: true })
    broker.on('error', () => {})
    api = new ServerApi(broker, { keys: [KEY] })
    const admin = new AdminDashboard({ secrets: [PASSWORD, KEY], api })
    const server = http.createServer((req, res) => {
      if (broker.handleRequest(req, res) || api.handle(req, res) || admin.handle(req, res)) return
      res.writeHead(404).end()
    })
    broker.attach(server)
    await broker.ready()
    web = await listen(server)
    browser = await launchBrowser()
    page = await browser.newPage({ viewport: { width: 1200, height: 1100 } })
    page.on('console', (m) => {
      if (m.type() === 'error') problems.push(`console: ${m.text()}`)
    })
    page.on('pageerror', (err) => problems.push(`page error: ${err.message}`))
  })
  after(async () => {
    await closeAll(...clients)
    await browser?.close()
    api?.board.stop()
    await broker?.close()
    await web?.close()
    await redis?.stop()
  })

  it('refuses a wrong password and logs in with the right one, never putting it in a URL', async () => {
    await page.goto(`${web.base}/admin`)
    assert.equal(new URL(page.url()).pathname, '/admin/')
    await page.fill('input[name=password]', 'wrong password')
    await page.click('button[type=submit]')
    await page.waitForSelector('.error')
    assert.match((await page.textContent('.error')) ?? '', /Wrong password/)
    assert.equal(await metric('connections').count(), 0)
    problems.length = 0 // the 401 of the wrong password is logged by Chromium as a console error

    await page.fill('input[name=password]', PASSWORD)
    await page.click('button[type=submit]')
    await waitMetric('connections', '0')
    assert.ok(!page.url().includes('horse'), page.url())
    const cookie = (await page.context().cookies()).find((c) => c.name === 'wsfacility_admin')
    assert.ok(cookie?.httpOnly)
    assert.equal(cookie?.sameSite, 'Strict')
  })

  it('follows clients that connect and leave, per facility and in the online list', async () => {
    for (const user of ['ann', 'bob', 'cy'])
      clients.push(await connect(ws(`/ws/room?subscribe-broadcast&subscribe-user&user=${user}`)))
    clients.push(await connect(ws('/ws/feed?subscribe-broadcast&user=ann')))
    await waitMetric('connections', '4')
    await waitMetric('online', '3')
    await waitText('#node-table tbody', 'room: 3')
    const top = (await page.textContent('#channel-table tbody')) ?? ''
    assert.match(top, /broadcast:room3/)
    await clients.pop()!.close()
    await waitMetric('connections', '3')
    assert.equal(await metric('redis').textContent(), 'ready')
  })

  it('publishes a message from the form to a client', async () => {
    await page.fill('#publish-form input[name=facility]', 'room')
    await page.selectOption('#publish-form select[name=audience]', 'users')
    await page.fill('#publish-form input[name=names]', 'bob')
    await page.fill('#publish-form textarea[name=data]', 'hello from the dashboard')
    await page.click('#publish-form button')
    await waitText('#publish-result', 'Delivered to 1 connection')
    const bob = clients[1]!
    assert.equal((await bob.waitFor(1))[0]!.data, 'hello from the dashboard')
    assert.equal(clients[0]!.received.length, 0)
  })

  it('disconnects a user from the form', async () => {
    const cy = clients[2]!
    const closed = cy.closedByServer()
    await page.fill('#disconnect-form input[name=target]', 'cy')
    await page.click('#disconnect-form button')
    assert.equal((await closed).code, 1000)
    await waitMetric('connections', '2')
  })

  it('draws both charts without console errors, and a screenshot shows the page', async () => {
    await page.locator('.chart canvas').nth(1).waitFor(WAIT)
    const dir = join(tmpdir(), 'wsfacility-admin')
    mkdirSync(dir, { recursive: true })
    await page.screenshot({ path: join(dir, 'dashboard.png'), fullPage: true })
    assert.deepEqual(problems, [])
  })

  it('shows a refusal of the form (Chromium logs only the 400 itself)', async () => {
    await page.fill('#disconnect-form input[name=target]', 'a:b')
    await page.click('#disconnect-form button')
    await waitText('#disconnect-result', 'Refused: user must not contain')
    assert.equal(problems.length, 1)
    assert.match(problems[0]!, /status of 400/)
  })

  it('keeps its API behind the session cookie and the custom header', async () => {
    const info = (headers: Record<string, string>) =>
      fetch(`${web.base}/admin/api/info`, { headers }).then((r) => r.status)
    const cookies = await page.context().cookies()
    const cookie = cookies.map((c) => `${c.name}=${c.value}`).join('; ')
    assert.equal(await info({ 'x-wsfacility-admin': '1' }), 401)
    assert.equal(await info({ cookie }), 401)
    assert.equal(await info({ cookie, 'x-wsfacility-admin': '1' }), 200)
    const forged = cookie.replace(/=(\d+)\./, (_m, n: string) => `=${Number(n) + 1}.`)
    assert.equal(await info({ cookie: forged, 'x-wsfacility-admin': '1' }), 401)

    await page.click('header button')
    await page.waitForSelector('input[name=password]')
    const after = (await page.context().cookies()).find((c) => c.name === 'wsfacility_admin')
    assert.equal(after, undefined)
  })

  it('logs in with the API key too, and serves uPlot from the package', async () => {
    const res = await fetch(`${web.base}/admin/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ password: KEY }).toString(),
      redirect: 'manual',
    })
    assert.equal(res.status, 303)
    assert.match(res.headers.get('set-cookie') ?? '', /^wsfacility_admin=\d+\./)
    const uplot = await fetch(`${web.base}/admin/uplot.js`)
    assert.equal(uplot.status, 200)
    assert.match(await uplot.text(), /uPlot/)
  })
})
