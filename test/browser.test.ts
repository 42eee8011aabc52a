import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import http from 'node:http'
import { after, before, describe, it } from 'node:test'
import express from 'express'
import expressSession from 'express-session'
import type { Browser, Page } from 'playwright-core'
import { type Broker, RedisPublisher } from '../src/index.js'
import { wsfacility } from '../src/integrations/express.js'
import { launchBrowser } from './helpers/browser.js'
import { type Listening, listen } from './helpers/http.js'
import { signToken } from './helpers/token.js'
import { eventually } from './helpers/ws.js'

const SECRET = 'browser-test-secret-0123456789abcdef'

// The page opens one WebSocket as told by the test and records what happens to it.
const PAGE = `<!doctype html><meta charset="utf-8"><title>wsfacility test</title><script>
window.events = []
window.open_ = (path, protocols) => {
  const ws = new WebSocket(new URL(path, location.href.replace(/^http/, 'ws')), protocols)
  ws.onopen = () => events.push({ type: 'open', protocol: ws.protocol })
  ws.onmessage = (e) => events.push({ type: 'message', data: String(e.data) })
  ws.onerror = () => events.push({ type: 'error' })
  ws.onclose = (e) => events.push({ type: 'close', code: e.code })
}
</script>`

/** The browser client as `npm run build` compiles it (test/run.sh builds first). */
const CLIENT = new URL('../dist/src/client/', import.meta.url)

// A page with wsfacility/client: start(options) creates a client and records what it emits.
const CLIENT_PAGE = `<!doctype html><meta charset="utf-8"><title>client</title><script type="module">
import { createClient } from '/client/index.js'
window.records = []
window.start = ({ facility, token, provider }) => {
  const rec = { statuses: [], errors: [], closes: [], retries: 0, tokens: 0 }
  records.push(rec)
  const client = createClient({
    url: '/',
    facility,
    subscribe: ['user'],
    reconnect: { base: 20, cap: 50 },
    token: provider ? () => (rec.tokens++, token) : token,
  })
  client.on('status', (s) => rec.statuses.push(s))
  client.on('error', (e) => rec.errors.push({ code: e.code, status: e.status, closeCode: e.closeCode }))
  client.on('close', (c) => rec.closes.push(c.code))
  client.on('retry', () => rec.retries++)
}
</script>`

interface ClientRecord {
  statuses: string[]
  errors: { code: string; status?: number; closeCode?: number }[]
  closes: number[]
  retries: number
  tokens: number
}

interface PageEvent {
  type: string
  data?: string
  protocol?: string
  code?: number
}

const events = (page: Page): Promise<PageEvent[]> =>
  page.evaluate(() => (globalThis as unknown as { events: PageEvent[] }).events)

async function waitForEvent(page: Page, type: string): Promise<PageEvent[]> {
  await eventually(async () => (await events(page)).some((e) => e.type === type), 10_000)
  return events(page)
}

describe('A real browser (headless Chromium)', () => {
  let browser: Browser
  let site: Listening
  let broker: Broker
  let base: string
  before(async () => {
    browser = await launchBrowser()
    const app = express()
    const session = { store: new expressSession.MemoryStore(), secret: SECRET }
    app.use(expressSession({ ...session, resave: false, saveUninitialized: false }))
    const server = http.createServer(app)
    broker = wsfacility(app, server, { session, jwt: { secret: SECRET } })
    app.get('/', (_req, res) => res.type('html').send(PAGE))
    app.get('/client-page', (_req, res) => res.type('html').send(CLIENT_PAGE))
    app.get('/client/:file', (req, res) => {
      const file = /^[a-z-]+\.js$/.test(req.params.file) ? req.params.file : null
      if (!file) return void res.status(404).end()
      readFile(new URL(file, CLIENT)).then(
        (js) => res.type('text/javascript').send(js),
        () => res.status(404).end(),
      )
    })
    app.post('/login/:user', (req, res) => {
      ;(req.session as unknown as { user: string }).user = req.params.user
      req.session.save(() => res.json({ ok: true }))
    })
    site = await listen(server)
    base = `${site.base}/`
  })
  after(async () => {
    await browser.close()
    await broker.close()
    await site.close()
  })

  it('authenticates with a JWT in the subprotocol; the answer names wsfacility, not the token', async () => {
    const token = await signToken({ key: SECRET, sub: 'carol', exp: '5m' })
    const page = await browser.newPage()
    try {
      await page.goto(base)
      await page.evaluate(
        ([p, t]) =>
          (globalThis as unknown as { open_: (a: string, b: string[]) => void }).open_(p!, [
            'wsfacility',
            `bearer.${t}`,
          ]),
        ['/ws/notes?subscribe-user', token],
      )
      const opened = await waitForEvent(page, 'open')
      assert.equal(opened.find((e) => e.type === 'open')!.protocol, 'wsfacility')
      const n = await new RedisPublisher(
        { facility: 'notes', users: ['carol'] },
        { broker },
      ).publishMessage('hi carol')
      assert.equal(n, 1)
      const got = await waitForEvent(page, 'message')
      assert.deepEqual(
        got.filter((e) => e.type === 'message').map((e) => e.data),
        ['hi carol'],
      )
    } finally {
      await page.close()
    }
  })

  it('sends the session cookie with the upgrade: each browser context gets only its own user’s messages', async () => {
    const contexts = await Promise.all([browser.newContext(), browser.newContext()])
    try {
      const pages = await Promise.all(contexts.map((c) => c.newPage()))
      for (const [page, user] of [
        [pages[0]!, 'ann'],
        [pages[1]!, 'bob'],
      ] as const) {
        await page.goto(base)
        await page.evaluate(async (u) => {
          await fetch(`/login/${u}`, { method: 'POST' })
          ;(globalThis as unknown as { open_: (a: string) => void }).open_(
            '/ws/inbox?subscribe-user',
          )
        }, user)
        await waitForEvent(page, 'open')
      }
      await new RedisPublisher({ facility: 'inbox', users: ['ann'] }, { broker }).publishMessage(
        'for ann',
      )
      await waitForEvent(pages[0]!, 'message')
      await new RedisPublisher({ facility: 'inbox', users: ['bob'] }, { broker }).publishMessage(
        'for bob',
      )
      await waitForEvent(pages[1]!, 'message')
      const messages = async (p: Page) =>
        (await events(p)).filter((e) => e.type === 'message').map((e) => e.data)
      assert.deepEqual(await messages(pages[0]!), ['for ann'])
      assert.deepEqual(await messages(pages[1]!), ['for bob'])
    } finally {
      await Promise.all(contexts.map((c) => c.close()))
    }
  })

  it('refuses a cookie-authenticated WebSocket opened by a page of another origin (403 before the upgrade)', async () => {
    // The attacker's page: same host, other port — another origin whose requests still carry the
    // victim's cookies for 127.0.0.1 (cookies ignore ports).
    const evil = await listen(
      http.createServer((_req, res) =>
        res.writeHead(200, { 'Content-Type': 'text/html' }).end(PAGE),
      ),
    )
    const evilBase = `${evil.base}/`
    const context = await browser.newContext()
    const refused: [string, number, string][] = []
    const onRefused = (req: http.IncomingMessage, status: number, reason: string): void => {
      refused.push([String(req.headers.origin), status, reason])
    }
    broker.on('refused', onRefused)
    try {
      const page = await context.newPage()
      await page.goto(base)
      await page.evaluate(() => fetch('/login/victim', { method: 'POST' }))
      await page.goto(evilBase)
      await page.evaluate(
        (url) => (globalThis as unknown as { open_: (a: string) => void }).open_(url),
        `${base.replace(/^http/, 'ws')}ws/inbox?subscribe-user`,
      )
      const seen = await waitForEvent(page, 'close')
      assert.equal(
        seen.some((e) => e.type === 'open'),
        false,
      )
      assert.deepEqual(refused, [
        [
          evilBase.slice(0, -1),
          403,
          `origin ${evilBase.slice(0, -1)} not allowed: add it to the origins option (--origins)`,
        ],
      ])
      // Offering wsfacility changes nothing for it: a close code would tell the foreign page what
      // the victim's cookie is worth, so the refusal stays an HTTP status (1006 for the page).
      await page.evaluate(
        (url) =>
          (globalThis as unknown as { open_: (a: string, b: string[]) => void }).open_(url, [
            'wsfacility',
          ]),
        `${base.replace(/^http/, 'ws')}ws/inbox?subscribe-user`,
      )
      await eventually(
        async () => (await events(page)).filter((e) => e.type === 'close').length === 2,
        10_000,
      )
      assert.deepEqual(
        (await events(page)).filter((e) => e.type !== 'error'),
        [
          { type: 'close', code: 1006 },
          { type: 'close', code: 1006 },
        ],
      )
      assert.equal(refused.length, 2)
      // The same browser, on the app's own page, connects with that cookie.
      await page.goto(base)
      await page.evaluate(() =>
        (globalThis as unknown as { open_: (a: string) => void }).open_('/ws/inbox?subscribe-user'),
      )
      await waitForEvent(page, 'open')
    } finally {
      broker.off('refused', onRefused)
      await context.close()
      await evil.close()
    }
  })

  it('sees a refused upgrade (bad token) as a failed connection, never an open one', async () => {
    const page = await browser.newPage()
    try {
      await page.goto(base)
      await page.evaluate(() =>
        (globalThis as unknown as { open_: (a: string) => void }).open_(
          '/ws/notes?subscribe-user&token=garbage',
        ),
      )
      const seen = await waitForEvent(page, 'close')
      assert.equal(
        seen.some((e) => e.type === 'open'),
        false,
      )
      assert.equal(seen.find((e) => e.type === 'close')!.code, 1006)
    } finally {
      await page.close()
    }
  })

  it('wsfacility/client with a bad token gets a coded error (4401) and stops reconnecting', async () => {
    const refused: [string, number][] = []
    const onRefused = (req: http.IncomingMessage, status: number): void => {
      refused.push([(req.url ?? '').split('?')[0]!, status])
    }
    broker.on('refused', onRefused)
    const page = await browser.newPage()
    type Start = (o: { facility: string; token: string; provider: boolean }) => void
    const start = (o: Parameters<Start>[0]) =>
      page.evaluate((options) => (globalThis as unknown as { start: Start }).start(options), o)
    const records = () =>
      page.evaluate(() => (globalThis as unknown as { records: ClientRecord[] }).records)
    try {
      await page.goto(`${base}client-page`)
      await page.waitForFunction(() => 'start' in globalThis)
      // A provider giving a bad token: one retry with a fresh one, then a coded error.
      await start({ facility: 'denied', token: 'garbage', provider: true })
      await page.waitForFunction(
        () => (globalThis as unknown as { records: ClientRecord[] }).records[0]!.errors.length > 0,
        undefined,
        { timeout: 10_000 },
      )
      const [bad] = await records()
      assert.deepEqual(bad!.errors, [{ code: 'WSF_CLIENT_REFUSED', status: 401, closeCode: 4401 }])
      assert.deepEqual(bad!.closes, [4401, 4401])
      assert.equal(bad!.tokens, 2)
      assert.equal(bad!.retries, 1)
      // ('connecting' left out: whether start() sees the first one is not this test's business.)
      const statuses = (r: ClientRecord) => r.statuses.filter((x) => x !== 'connecting')
      assert.deepEqual(statuses(bad!), ['reconnecting', 'closed'], 'never open')
      // A client with a good token on the same page connects; the refused one has not come back.
      const token = await signToken({ key: SECRET, sub: 'dora', exp: '5m' })
      await start({ facility: 'allowed', token, provider: false })
      await page.waitForFunction(
        () =>
          (globalThis as unknown as { records: ClientRecord[] }).records[1]!.statuses.includes(
            'open',
          ),
        undefined,
        { timeout: 10_000 },
      )
      assert.deepEqual(refused, [
        ['/ws/denied', 401],
        ['/ws/denied', 401],
      ])
      assert.deepEqual(statuses((await records())[0]!), ['reconnecting', 'closed'])
    } finally {
      broker.off('refused', onRefused)
      await page.close()
    }
  })
})
