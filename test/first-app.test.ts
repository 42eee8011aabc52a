// The README's first app (`id=first-app`) is run as a newcomer would: its own directory with
// wsfacility, express and express-session installed, `node app.mjs`, the page in Chromium, the
// button, the message in the page; in memory, then on Redis. .ci/pack-check.sh runs this file
// again in a project that installed the packed tarball (WSF_FIRST_APP_PROJECT).
import assert from 'node:assert/strict'
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { setTimeout } from 'node:timers/promises'
import path from 'node:path'
import { after, before, describe, it } from 'node:test'
import type { Browser } from 'playwright-core'
import { launchBrowser } from './helpers/browser.js'
import { type Child, ROOT, spawnNode } from './helpers/child.js'
import { freePort, type RedisServer, startRedis } from './helpers/redis.js'
import { snippetById } from './helpers/snippets.js'

describe("the README's first app, run as a newcomer runs it", () => {
  // .ci/pack-check.sh sets this to a project that installed the packed tarball with npm.
  const packed = process.env.WSF_FIRST_APP_PROJECT
  let dir: string
  let browser: Browser
  let redis: RedisServer
  const children: Child[] = []

  before(async () => {
    if (packed) {
      dir = packed
    } else {
      // A fresh project: app.mjs and node_modules with what its first line installs.
      dir = mkdtempSync(path.join(tmpdir(), 'wsf-first-app-'))
      mkdirSync(path.join(dir, 'node_modules'))
      symlinkSync(ROOT, path.join(dir, 'node_modules', 'wsfacility'))
      for (const pkg of ['express', 'express-session']) {
        symlinkSync(path.join(ROOT, 'node_modules', pkg), path.join(dir, 'node_modules', pkg))
      }
    }
    writeFileSync(path.join(dir, 'app.mjs'), snippetById(ROOT, 'README.md', 'first-app').code)
    browser = await launchBrowser()
    redis = await startRedis()
  })
  after(async () => {
    await Promise.all(children.map((c) => c.kill()))
    await browser?.close()
    await redis?.stop()
    if (dir && !packed) rmSync(dir, { recursive: true, force: true })
  })

  // Starts app.mjs, opens its page, presses the button and returns what the page shows.
  async function pressTheButton(env: Record<string, string>): Promise<string> {
    const port = await freePort()
    const app = spawnNode([path.join(dir, 'app.mjs')], { ...env, PORT: String(port) })
    children.push(app)
    await app.waitForOutput(new RegExp(`open http://127\\.0\\.0\\.1:${port}`))
    const page = await browser.newPage()
    try {
      await page.goto(`http://127.0.0.1:${port}/`)
      // Press until the route reports a receiver: a press before the page's socket is open
      // reaches nobody (the route answers { receivers: 0 }).
      let receivers = 0
      for (let i = 0; i < 40 && receivers === 0; i++) {
        if (i > 0) await setTimeout(50)
        const [response] = await Promise.all([
          page.waitForResponse((r) => r.url().endsWith('/hello')),
          page.click('button'),
        ])
        ;({ receivers } = (await response.json()) as { receivers: number })
      }
      assert.equal(receivers, 1, "the route's publish reached no connection")
      await page.waitForFunction("document.getElementById('log').textContent !== ''", null, {
        timeout: 10_000,
      })
      return (await page.textContent('#log')) ?? ''
    } finally {
      await page.close()
      await app.signal('SIGTERM')
    }
  }

  it('shows the route’s message in the page, on the in-memory engine', async () => {
    assert.match(await pressTheButton({}), /^Hello at \d{4}-\d\d-\d\dT/m)
  })

  it('does the same on Redis with REDIS_URL', async () => {
    assert.match(await pressTheButton({ REDIS_URL: redis.url }), /^Hello at \d{4}-/m)
  })
})
