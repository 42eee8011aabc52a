import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import http from 'node:http'
import { after, before, describe, it } from 'node:test'
import type { Browser, Page } from 'playwright-core'
import { type Broker, createBroker, RedisPublisher } from '../src/index.js'
import { launchBrowser } from './helpers/browser.js'
import { type Listening, listen } from './helpers/http.js'

/** Generous: nothing here measures speed. */
const WAIT = { timeout: 30_000 }
/** The browser client as `npm run build` compiles it (test/run.sh builds first). */
const CLIENT = new URL('../dist/src/client/', import.meta.url)

// The page loads wsfacility/client from dist, keeps its positions in sessionStorage (so a reload
// resumes), and records what it gets. `hold()` makes the next reconnect wait for `release()`.
const PAGE = `<!doctype html><meta charset="utf-8"><title>recovery</title><script type="module">
import { createClient } from '/client/index.js'
window.got = []
window.recoveries = []
window.statuses = []
let gate = null
window.hold = () => {
  let release
  const wait = new Promise((resolve) => (release = resolve))
  gate = { wait, release }
}
window.release = () => gate?.release()
const keep = () => sessionStorage.setItem('positions', JSON.stringify(client.positions))
const saved = sessionStorage.getItem('positions')
const client = createClient({
  url: '/',
  facility: 'feed',
  subscribe: ['broadcast'],
  positions: saved ? JSON.parse(saved) : null,
  reconnect: { base: 20, cap: 200 },
  token: async () => {
    await gate?.wait
    return null
  },
})
window.client = client
client.on('status', (s) => statuses.push(s))
client.on('message', (m) => {
  got.push(JSON.parse(m).data)
  keep()
})
client.on('recovered', (event) => {
  recoveries.push(event)
  keep()
})
</script>`

interface PageState {
  got: { n: number }[]
  recoveries: { recovered: boolean; channels: Record<string, { missed: number }> }[]
  statuses: string[]
}

const state = (page: Page): Promise<PageState> =>
  page.evaluate(() => {
    const w = globalThis as unknown as PageState
    return { got: w.got, recoveries: w.recoveries, statuses: w.statuses }
  })

/** Waits until the page's state satisfies `check` (evaluated in the page). */
function waitInPage(page: Page, check: string): Promise<unknown> {
  return page.waitForFunction(check, undefined, WAIT)
}

describe('wsfacility/client recovery in a real browser (headless Chromium)', () => {
  let browser: Browser
  let site: Listening
  let broker: Broker
  before(async () => {
    browser = await launchBrowser()
    broker = createBroker({ history: { size: 100, ttl: 300 } })
    broker.on('error', () => {})
    broker.facility('feed', { format: 'json' })
    const server = http.createServer((req, res) => {
      const file = /^\/client\/([a-z-]+\.js)$/.exec(req.url ?? '')?.[1]
      if (req.url === '/') {
        res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' }).end(PAGE)
      } else if (file) {
        readFile(new URL(file, CLIENT)).then(
          (js) => res.writeHead(200, { 'Content-Type': 'text/javascript' }).end(js),
          () => res.writeHead(404).end(),
        )
      } else {
        res.writeHead(404).end()
      }
    })
    broker.attach(server)
    await broker.ready()
    site = await listen(server)
  })
  after(async () => {
    await browser?.close()
    await broker?.close()
    await site?.close()
  })

  const pub = () => new RedisPublisher({ facility: 'feed', broadcast: true }, { broker })
  const publish = async (...ns: number[]) => {
    for (const n of ns) assert.equal(await pub().publishMessage(JSON.stringify({ n })), 1)
  }
  const publishUnseen = async (...ns: number[]) => {
    for (const n of ns) await pub().publishMessage(JSON.stringify({ n }))
  }

  it('gets the messages it missed while disconnected, once and in order, and resumes after a reload', async () => {
    const page = await browser.newPage()
    try {
      await page.goto(`${site.base}/`)
      await waitInPage(page, `window.client?.status === 'open'`)
      await publish(1, 2)
      await waitInPage(page, 'window.got.length === 2')

      // The server drops the socket; messages are published before the client is back.
      await page.evaluate(() => (globalThis as unknown as { hold(): void }).hold())
      const [conn] = [...broker.connections.values()]
      conn!.close(1012, 'restart')
      await waitInPage(page, `window.statuses.includes('reconnecting')`)
      await publishUnseen(3, 4)
      await page.evaluate(() => (globalThis as unknown as { release(): void }).release())
      await waitInPage(page, 'window.recoveries.length === 1')
      await publish(5)
      await waitInPage(page, 'window.got.length === 5')
      let seen = await state(page)
      assert.deepEqual(
        seen.got.map((m) => m.n),
        [1, 2, 3, 4, 5],
      )
      assert.equal(seen.recoveries[0]!.recovered, true)
      assert.equal(seen.recoveries[0]!.channels.broadcast!.missed, 2)
      // The first 'connecting' reaches the listener attached right after createClient.
      assert.deepEqual(seen.statuses, ['connecting', 'open', 'reconnecting', 'open'])

      // A reload: the new page's client starts from the positions kept in sessionStorage.
      await page.evaluate(() =>
        (globalThis as unknown as { client: { close(): void } }).client.close(),
      )
      await publishUnseen(6, 7)
      await page.reload()
      await waitInPage(page, 'window.recoveries?.length === 1')
      await publish(8)
      await waitInPage(page, 'window.got.length === 3')
      seen = await state(page)
      assert.deepEqual(
        seen.got.map((m) => m.n),
        [6, 7, 8],
      )
      assert.equal(seen.recoveries[0]!.recovered, true)
      assert.equal(seen.recoveries[0]!.channels.broadcast!.missed, 2)
    } finally {
      await page.close()
    }
  })
})
