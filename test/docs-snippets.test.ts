// Every code block of README.md and docs/*.md is checked, so none can drift from the code: ts and
// js blocks are type-checked with the project's strict settings (one program, against the built
// package), sh blocks parsed by bash, python blocks by Python, json blocks by JSON.parse; `text`
// blocks are not code. A block may be left out only with a reason (`<!-- snippet: skip=… -->`).
// The README's first app (`id=first-app`) is run as a newcomer would: its own directory with
// wsfacility, express and express-session installed, `node app.mjs`, the page in Chromium, the
// button, the message in the page; in memory, then on Redis. .ci/pack-check.sh runs that part
// again in a project that installed the packed tarball (WSF_FIRST_APP_PROJECT).
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { setTimeout } from 'node:timers/promises'
import path from 'node:path'
import { after, before, describe, it } from 'node:test'
import type { Browser } from 'playwright-core'
import { launchBrowser } from './helpers/browser.js'
import { type Child, ROOT, spawnNode } from './helpers/child.js'
import { freePort, type RedisServer, startRedis } from './helpers/redis.js'
import { typecheckSnippets } from './helpers/snippet-typecheck.js'
import { documentationFiles, type Snippet, snippetById, snippetsOf } from './helpers/snippets.js'

const snippets = documentationFiles(ROOT).flatMap((file) =>
  snippetsOf(readFileSync(path.join(ROOT, file), 'utf8'), file),
)
const checked = snippets.filter((s) => s.marks.skip === undefined)
const at = (s: Snippet) => `${s.file}:${s.line}`

describe('documentation snippets', () => {
  it('each code block has a language the test checks, or a reason to be left out', () => {
    assert.ok(snippets.length > 40, `only ${snippets.length} code blocks found`)
    const known = new Set(['ts', 'js', 'sh', 'python', 'json', 'jsonl', 'text'])
    const unknown = checked.filter((s) => !known.has(s.lang)).map((s) => `${at(s)} (${s.lang})`)
    assert.deepEqual(unknown, [], 'mark the block with a language, or skip=<reason>')
    const noReason = snippets.filter((s) => s.marks.skip === '').map(at)
    assert.deepEqual(noReason, [], 'skip= needs a reason')
  })

  it('type-checks every ts and js block in one strict program (and would notice a broken one)', () => {
    const code = checked.filter((s) => s.lang === 'ts' || s.lang === 'js')
    // A broken block, checked with the others: the program must report it, or it reports nothing.
    const canary = "import { createBroker } from 'wsfacility'\ncreateBroker({ redsi: 'x' })\n"
    const errors = typecheckSnippets(ROOT, code, { 'canary.ts': canary })
    const [broken, real] = [
      errors.filter((e) => e.where.includes('canary.ts')),
      errors.filter((e) => !e.where.includes('canary.ts')),
    ]
    assert.equal(broken.length, 1, 'the broken canary block was not reported')
    assert.deepEqual(
      real.map((e) => `${e.where}: ${e.message}`),
      [],
    )
  })

  it('parses every sh block with bash -n', () => {
    const bad = checked
      .filter((s) => s.lang === 'sh')
      .flatMap((s) => {
        const r = spawnSync('bash', ['-n'], { input: s.code, encoding: 'utf8' })
        return r.status === 0 ? [] : [`${at(s)}: ${r.stderr.trim()}`]
      })
    assert.deepEqual(bad, [])
  })

  it('parses every python block', () => {
    const python = checked.filter((s) => s.lang === 'python')
    assert.ok(python.length > 0)
    // .ci/run installs python3; a machine without it fails here rather than skipping.
    assert.equal(spawnSync('python3', ['--version']).status, 0, 'these tests need python3')
    const parse = 'import ast, sys\nast.parse(sys.stdin.read())'
    const bad = python.flatMap((s) => {
      const r = spawnSync('python3', ['-c', parse], { input: s.code, encoding: 'utf8' })
      return r.status === 0 ? [] : [`${at(s)}: ${r.stderr.trim().split('\n').at(-1)}`]
    })
    assert.deepEqual(bad, [])
  })

  it('parses every json block, and every line of a jsonl block (frames on the wire)', () => {
    const bad = checked
      .filter((s) => s.lang === 'json' || s.lang === 'jsonl')
      .flatMap((s) => {
        try {
          if (s.lang === 'json') JSON.parse(s.code)
          else for (const line of s.code.split('\n')) if (line.trim()) JSON.parse(line)
          return []
        } catch (err) {
          return [`${at(s)}: ${(err as Error).message}`]
        }
      })
    assert.deepEqual(bad, [])
  })
})

/** GitHub's anchor of a heading: lower case, punctuation dropped, spaces → '-'. */
function anchorOf(heading: string): string {
  return heading
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, '')
    .replace(/\s/g, '-')
}

describe('documentation links', () => {
  it('every relative link of README.md and docs/*.md names a file and a heading that exist', () => {
    const anchors = new Map<string, Set<string>>()
    for (const file of documentationFiles(ROOT)) {
      const text = readFileSync(path.join(ROOT, file), 'utf8').replace(
        /^\s*```[\s\S]*?^\s*```/gm,
        '',
      )
      const headings = [...text.matchAll(/^#{1,6} (.+)$/gm)].map((m) => anchorOf(m[1]!))
      anchors.set(file, new Set(headings))
    }
    const broken: string[] = []
    for (const file of documentationFiles(ROOT)) {
      const text = readFileSync(path.join(ROOT, file), 'utf8')
      for (const [, target = ''] of text.matchAll(/\]\(([^)\s]+)\)/g)) {
        if (/^[a-z]+:/.test(target)) continue // https:, mailto:
        const [to = '', anchor] = target.split('#')
        const dest = to === '' ? file : path.normalize(path.join(path.dirname(file), to))
        if (!existsSync(path.join(ROOT, dest))) broken.push(`${file}: ${target} (no such file)`)
        else if (anchor !== undefined && anchors.has(dest) && !anchors.get(dest)!.has(anchor)) {
          broken.push(`${file}: ${target} (no such heading)`)
        }
      }
    }
    assert.deepEqual(broken, [])
  })
})

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
