import assert from 'node:assert/strict'
import { after, afterEach, before, describe, it } from 'node:test'
import type { Browser, BrowserContext, Page } from 'playwright-core'
import { launchBrowser } from './helpers/browser.js'
import { type Child, spawnNode } from './helpers/child.js'
import { startRedis } from './helpers/redis.js'

const BANNER = /^wsfacility examples on http:\/\/127\.0\.0\.1:(\d+) \(engine: (memory|redis)\)$/m
/** Generous: nothing here measures speed. */
const WAIT = { timeout: 30_000 }

let browser: Browser
const children: Child[] = []
const contexts: BrowserContext[] = []

before(async () => {
  browser = await launchBrowser()
})
afterEach(async () => {
  await Promise.all(contexts.splice(0).map((c) => c.close()))
  await Promise.all(children.splice(0).map((child) => child.kill()))
})
after(async () => {
  await browser.close()
})

/** Runs `npm start`'s server (without the build, which test/run.sh did) on PORT (0: any). */
async function examples(port = '0', env: Record<string, string> = {}) {
  const child = spawnNode(['--import', 'tsx', 'examples/server.ts'], { PORT: port, ...env })
  children.push(child)
  const [, actual, engine] = await child.waitForOutput(BANNER)
  return { child, engine, port: actual!, base: `http://127.0.0.1:${actual}` }
}

/** A fresh browser context (its own cookie jar) logged in as `name`, if given. */
async function visitor(base: string, name?: string): Promise<BrowserContext> {
  const context = await browser.newContext()
  contexts.push(context)
  if (name) {
    const res = await context.request.post(`${base}/login`, { data: { name } })
    assert.equal(res.status(), 200)
  }
  return context
}

/** Opens `path` and waits for the page's `window[name]` client to be open. */
async function openPage(context: BrowserContext, url: string, name = 'client'): Promise<Page> {
  const page = await context.newPage()
  await page.goto(url)
  await waitForStatus(page, 'open', name)
  return page
}

function waitForStatus(page: Page, status: string, name = 'client'): Promise<unknown> {
  return page.waitForFunction(
    ([n, s]) => (globalThis as unknown as Record<string, { status: string }>)[n!]?.status === s,
    [name, status],
    WAIT,
  )
}

/** Waits until the element `selector` contains `text`. */
async function waitForText(page: Page, selector: string, text: string): Promise<void> {
  await page.locator(selector, { hasText: text }).waitFor(WAIT)
}

/** The chat lines a page shows, in order. */
const chatLines = (page: Page): Promise<string[]> => page.locator('#messages li').allTextContents()

/** Waits until the chat page's clients have emitted `n` 'recovered' events (reconnects). */
function waitForRecoveries(page: Page, n: number): Promise<unknown> {
  return page.waitForFunction(
    (count) => (globalThis as unknown as { recoveries: unknown[] }).recoveries.length >= count,
    n,
    WAIT,
  )
}

/** Joins `room` on a chat page and waits for its new client to be open. */
async function join(page: Page, room: string): Promise<void> {
  await page.fill('#join input[name=room]', room)
  await page.click('#join button')
  await page.waitForFunction(
    (r) => {
      const w = globalThis as unknown as { joined?: string[]; client?: { status: string } }
      return w.joined?.includes(r) && w.client?.status === 'open'
    },
    room,
    WAIT,
  )
}

describe('examples (npm start), in a real browser', () => {
  it('serves the home page linking to the three examples, and the browser client', async () => {
    const { base, engine } = await examples()
    assert.equal(engine, 'memory')
    const html = await (await fetch(`${base}/`)).text()
    for (const link of ['/chat/', '/notifications/', '/presence/']) {
      assert.ok(html.includes(`href="${link}"`), link)
    }
    assert.match(html, /action="\/login"/)
    const client = await fetch(`${base}/client/index.js`)
    assert.equal(client.status, 200)
    assert.match(client.headers.get('content-type') ?? '', /^text\/javascript/)
  })

  it('chat: a message sent over the socket and one posted through the route reach the room', async () => {
    const { base } = await examples()
    const pages: Page[] = []
    for (const name of ['ann', 'bob']) {
      const page = await openPage(await visitor(base, name), `${base}/chat/`)
      await page.fill('#join input[name=room]', 'lobby')
      await page.click('#join button')
      await page.waitForFunction(() => {
        const w = globalThis as unknown as { joined?: string[]; client?: { status: string } }
        return w.joined?.includes('lobby') && w.client?.status === 'open'
      }, WAIT)
      pages.push(page)
    }
    const [ann, bob] = pages as [Page, Page]

    await ann.fill('#send input[name=text]', 'hello over the socket')
    await ann.click('#send button')
    await waitForText(bob, '#messages', 'ann: hello over the socket')
    await waitForText(ann, '#messages', 'ann: hello over the socket')

    await bob.selectOption('#post select[name=room]', 'lobby')
    await bob.fill('#post input[name=text]', 'hello through the route')
    await bob.click('#post button')
    for (const page of pages)
      await waitForText(page, '#messages', '[lobby] bob: hello through the route')

    // A newcomer joins the room live: no reconnect, and what is posted from then on reaches it.
    const carl = await openPage(await visitor(base, 'carl'), `${base}/chat/`)
    await join(carl, 'lobby')
    await bob.fill('#post input[name=text]', 'after the join')
    await bob.click('#post button')
    await waitForText(carl, '#messages', 'bob: after the join')
    // Joining another room keeps the same socket and the lobby.
    await join(carl, 'annex')
    await ann.fill('#send input[name=text]', 'to the lobby')
    await ann.click('#send button')
    await waitForText(carl, '#messages', 'ann: to the lobby')
    assert.deepEqual(await chatLines(carl), [
      '[lobby] bob: after the join',
      '[lobby] ann: to the lobby',
    ])
    const statuses = await carl.evaluate(
      () => (globalThis as unknown as { statuses: string[] }).statuses,
    )
    assert.deepEqual(statuses, ['connecting', 'open'])
  })

  it('chat: after the server restarts the page shows each message once, the missed ones too', async () => {
    const redis = await startRedis()
    try {
      const env = { REDIS_URL: redis.url }
      const one = await examples('0', env)
      const two = await examples('0', env)
      const annPage = await openPage(await visitor(one.base, 'ann'), `${one.base}/chat/`)
      await join(annPage, 'lobby')
      // bob posts through process two (sessions and history live in Redis).
      const bob = await visitor(two.base, 'bob')
      const post = async (text: string) => {
        const res = await bob.request.post(`${two.base}/chat/rooms/lobby/messages`, {
          data: { text },
        })
        assert.equal(res.status(), 200)
      }
      assert.equal(
        (await bob.request.post(`${two.base}/chat/join`, { data: { room: 'lobby' } })).status(),
        200,
      )
      await post('before the restart')
      await waitForText(annPage, '#messages', 'bob: before the restart')

      await one.child.kill()
      await annPage.waitForFunction(
        () => (globalThis as unknown as { client: { status: string } }).client.status !== 'open',
        undefined,
        WAIT,
      )
      // Two: the last message alone would also come back by `expire`'s replay.
      await post('while ann was away (1)')
      await post('while ann was away (2)')
      await examples(one.port, env)
      await waitForRecoveries(annPage, 1)
      await post('after the restart')
      await waitForText(annPage, '#messages', 'bob: after the restart')
      assert.deepEqual(await chatLines(annPage), [
        '[lobby] bob: before the restart',
        '[lobby] bob: while ann was away (1)',
        '[lobby] bob: while ann was away (2)',
        '[lobby] bob: after the restart',
      ])
      const recovered = await annPage.evaluate(
        () => (globalThis as unknown as { recoveries: { recovered: boolean }[] }).recoveries,
      )
      assert.deepEqual(
        recovered.map((r) => r.recovered),
        [true],
      )
    } finally {
      await Promise.all(children.splice(0).map((child) => child.kill()))
      await redis.stop()
    }
  })

  it('notifications: a user is notified on all their tabs, and nobody else is', async () => {
    const { base } = await examples()
    const annContext = await visitor(base, 'ann')
    const bobContext = await visitor(base, 'bob')
    const annTabs = [
      await openPage(annContext, `${base}/notifications/`),
      await openPage(annContext, `${base}/notifications/`),
    ]
    const bobTab = await openPage(bobContext, `${base}/notifications/`)

    const res = await bobContext.request.post(`${base}/notifications/user/ann`, {
      data: { text: 'for ann only' },
    })
    assert.equal(res.status(), 200)
    assert.deepEqual(await res.json(), { receivers: 2 })
    for (const tab of annTabs) await waitForText(tab, '#notifications', 'bob: for ann only')

    // bob's own notification arrives; ann's never did.
    const mine = await bobContext.request.post(`${base}/notifications/me`, {
      data: { text: 'for bob' },
    })
    assert.deepEqual(await mine.json(), { receivers: 1 })
    await waitForText(bobTab, '#notifications', 'bob: for bob')
    assert.doesNotMatch((await bobTab.textContent('#notifications')) ?? '', /for ann only/)
  })

  it('presence: a watcher lists ann while her page is open, and not after it closes', async () => {
    const { base } = await examples()
    const watcher = await openPage(await visitor(base), `${base}/presence/`)
    const annPage = await openPage(await visitor(base, 'ann'), `${base}/chat/`)
    await watcher.waitForSelector('#online li[data-user="ann"]', WAIT)
    const api = (await (await fetch(`${base}/presence/api/`)).json()) as {
      users: { user: string }[]
    }
    assert.deepEqual(
      api.users.map((u) => u.user),
      ['ann'],
    )
    await annPage.close()
    await watcher.waitForSelector('#online li[data-user="ann"]', { ...WAIT, state: 'detached' })
  })

  it('reconnect: after a server restart on the same port the page reconnects by itself', async () => {
    const first = await examples()
    const page = await openPage(await visitor(first.base), `${first.base}/`, 'news')
    await first.child.kill()
    await page.waitForFunction(
      () => (globalThis as unknown as { news: { status: string } }).news.status !== 'open',
      undefined,
      WAIT,
    )

    const second = await examples(first.port)
    assert.equal(second.port, first.port)
    await waitForStatus(page, 'open', 'news')
    const res = await fetch(`${second.base}/news`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ text: 'we are back' }),
    })
    assert.deepEqual(await res.json(), { receivers: 1 })
    await waitForText(page, '#news', 'we are back')
    const statuses = await page.evaluate(
      () => (globalThis as unknown as { newsStatuses: string[] }).newsStatuses,
    )
    assert.ok(statuses.includes('reconnecting'), statuses.join(' '))
  })

  it('runs on Redis when REDIS_URL is set: connect-redis sessions, the Redis engine, across processes', async () => {
    const redis = await startRedis()
    try {
      const one = await examples('0', { REDIS_URL: redis.url })
      const two = await examples('0', { REDIS_URL: redis.url })
      assert.equal(one.engine, 'redis')
      // Logged in on process one; the session lives in Redis, so process two knows ann too.
      const ann = await visitor(one.base, 'ann')
      const raw = await redis.client()
      try {
        assert.ok((await raw.keys('sess:*')).length > 0)
      } finally {
        raw.destroy()
      }
      const tab = await openPage(ann, `${two.base}/notifications/`)
      const res = await ann.request.post(`${one.base}/notifications/me`, {
        data: { text: 'across processes' },
      })
      assert.deepEqual(await res.json(), { receivers: 1 })
      await waitForText(tab, '#notifications', 'ann: across processes')
    } finally {
      await Promise.all(children.splice(0).map((child) => child.kill()))
      await redis.stop()
    }
  })
})
