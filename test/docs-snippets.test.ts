// Every code block of README.md and docs/*.md is checked, so none can drift from the code: ts and
// js blocks are type-checked with the project's strict settings (one program, against the built
// package), sh blocks parsed by bash, python blocks by Python, json blocks by JSON.parse; `text`
// blocks are not code. A block may be left out only with a reason (`<!-- snippet: skip=… -->`).
// The README's first app is also run as a newcomer would (test/first-app.test.ts).
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import path from 'node:path'
import { describe, it } from 'node:test'
import { ROOT } from './helpers/child.js'
import { typecheckSnippets } from './helpers/snippet-typecheck.js'
import { documentationFiles, type Snippet, snippetsOf } from './helpers/snippets.js'

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
