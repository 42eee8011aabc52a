// The fenced code blocks of the README and docs/*.md, with what an HTML comment right above a
// block says of it: `<!-- snippet: id=first-app run -->`, `<!-- snippet: skip=<reason> -->`.
// Also a command for scripts: `tsx test/helpers/snippets.ts <file.md> <id>` prints one snippet.
import { readdirSync, readFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

/** One fenced block of a markdown file. */
export interface Snippet {
  /** The markdown file, relative to the repository root (`docs/api.md`). */
  file: string
  /** 1-based line of the first line of code (the line after the opening fence). */
  line: number
  /** The fence's info string: `ts`, `js`, `sh`, `python`, `json`, `text`, or '' when none. */
  lang: string
  /** The code, without the fence's indentation. */
  code: string
  /**
   * The annotation's keys: `id`, `file` (its module name for the page's other snippets), `skip`
   * (the reason it is not checked), `run`; empty without an annotation.
   */
  marks: Record<string, string>
}

const ANNOTATION = /^\s*<!--\s*snippet:(.*?)-->\s*$/
const FENCE = /^(\s*)(`{3,})([^`\s]*)\s*$/

/** `id=first-app skip=a reason with spaces run` → { id: 'first-app', skip: '…', run: '' }. */
function parseMarks(text: string): Record<string, string> {
  const marks: Record<string, string> = {}
  // A value runs until the next ` key=` or ` key` at the end; `skip=` takes the rest of the line.
  const skip = text.match(/\bskip=(.*)$/)
  if (skip) {
    marks.skip = skip[1]!.trim()
    text = text.slice(0, skip.index)
  }
  for (const word of text.trim().split(/\s+/).filter(Boolean)) {
    const [key, ...value] = word.split('=')
    marks[key!] = value.join('=')
  }
  return marks
}

/** Every fenced block of `markdown`; `file` is only recorded. */
export function snippetsOf(markdown: string, file: string): Snippet[] {
  const lines = markdown.split('\n')
  const out: Snippet[] = []
  for (let i = 0; i < lines.length; i++) {
    const open = lines[i]!.match(FENCE)
    if (!open) continue
    const [, indent = '', ticks = '', lang = ''] = open
    const body: string[] = []
    let j = i + 1
    for (; j < lines.length; j++) {
      const line = lines[j]!
      if (line.trim() === ticks && line.startsWith(indent)) break
      body.push(line.startsWith(indent) ? line.slice(indent.length) : line.trimStart())
    }
    if (j === lines.length) throw new Error(`${file}:${i + 1}: fence never closed`)
    const above = lines[i - 1]?.match(ANNOTATION)
    out.push({
      file,
      line: i + 2,
      lang,
      code: body.join('\n') + '\n',
      marks: above ? parseMarks(above[1]!) : {},
    })
    i = j
  }
  return out
}

/** The markdown files whose snippets are checked: README.md and docs/*.md (not the drafts). */
export function documentationFiles(root: string): string[] {
  const docs = readdirSync(path.join(root, 'docs'))
    .filter((f) => f.endsWith('.md'))
    .sort()
    .map((f) => `docs/${f}`)
  return ['README.md', ...docs]
}

/** The snippet with annotation `id=<id>` in `file` (relative to `root`); throws when absent. */
export function snippetById(root: string, file: string, id: string): Snippet {
  const found = snippetsOf(readFileSync(path.join(root, file), 'utf8'), file).filter(
    (s) => s.marks.id === id,
  )
  if (found.length !== 1) throw new Error(`${file}: ${found.length} snippets with id=${id}`)
  return found[0]!
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  const [file, id] = process.argv.slice(2)
  if (!file || !id) {
    console.error('usage: tsx test/helpers/snippets.ts <file.md> <id>')
    process.exit(2)
  }
  const root = fileURLToPath(new URL('../../', import.meta.url))
  process.stdout.write(snippetById(root, file, id).code)
}
