// Type-checks documentation snippets as one TypeScript program: each snippet is a virtual module
// under <root>/docs/.snippets/<page>/ (never written), so `wsfacility` resolves as it does for users — by
// the package's own name and its `exports`, to the built declarations in dist/ — and express, ws
// and the others from the repository's node_modules.
import path from 'node:path'
import ts from 'typescript'
import type { Snippet } from './snippets.js'

/** One error of the program, placed in the markdown file it came from. */
export interface SnippetError {
  /** `docs/api.md:12` (the markdown line), or the virtual file name for extra files. */
  where: string
  message: string
}

/** The project's strict settings (tsconfig.json), for code that runs in Node or in a page. */
function compilerOptions(root: string): ts.CompilerOptions {
  const config = ts.readConfigFile(path.join(root, 'tsconfig.json'), (f) => ts.sys.readFile(f))
  if (config.error) throw new Error(ts.flattenDiagnosticMessageText(config.error.messageText, '\n'))
  const { options, errors } = ts.convertCompilerOptionsFromJson(config.config.compilerOptions, root)
  if (errors.length) throw new Error(`tsconfig.json: ${errors.length} errors`)
  return {
    ...options,
    // Browser snippets use the DOM; server snippets Node's types. One program holds both.
    lib: ['lib.es2023.d.ts', 'lib.dom.d.ts', 'lib.dom.iterable.d.ts'],
    types: ['node'],
    moduleDetection: ts.ModuleDetectionKind.Force,
    noEmit: true,
  }
}

/**
 * Type-checks `snippets` (and `extra`: name → code, e.g. a snippet known to be broken) in one
 * program. Returns every error, keyed to the markdown line or the extra file's name.
 */
export function typecheckSnippets(
  root: string,
  snippets: Snippet[],
  extra: Record<string, string> = {},
): SnippetError[] {
  const dir = path.join(root, 'docs', '.snippets')
  const files = new Map<string, { code: string; snippet?: Snippet }>()
  for (const s of snippets) {
    // One folder per markdown file: a snippet marked `file=app.ts` can be imported by the others
    // of its page as './app.js'.
    const name = s.marks.file ?? `L${s.line}.ts`
    files.set(path.join(dir, s.file.replace(/[/.]/g, '_'), name), { code: s.code, snippet: s })
  }
  for (const [name, code] of Object.entries(extra)) files.set(path.join(dir, name), { code })

  const options = compilerOptions(root)
  const host = ts.createCompilerHost(options)
  const { fileExists, readFile, getSourceFile } = host
  host.fileExists = (f) => files.has(f) || fileExists.call(host, f)
  const folders = new Set([...files.keys()].map((f) => path.dirname(f)))
  host.directoryExists = (d) => folders.has(d) || ts.sys.directoryExists(d)
  host.readFile = (f) => files.get(f)?.code ?? readFile.call(host, f)
  host.getSourceFile = (f, language, onError, create) => {
    const virtual = files.get(f)
    if (virtual) return ts.createSourceFile(f, virtual.code, language, true)
    return getSourceFile.call(host, f, language, onError, create)
  }
  const program = ts.createProgram([...files.keys()], options, host)
  const diagnostics = [...program.getOptionsDiagnostics(), ...program.getGlobalDiagnostics()]
  for (const f of files.keys()) {
    const source = program.getSourceFile(f)
    if (source) diagnostics.push(...program.getSyntacticDiagnostics(source))
    if (source) diagnostics.push(...program.getSemanticDiagnostics(source))
  }
  return diagnostics.map((d) => {
    const message = ts.flattenDiagnosticMessageText(d.messageText, '\n')
    if (!d.file || d.start === undefined) return { where: 'program', message }
    const { line } = d.file.getLineAndCharacterOfPosition(d.start)
    const snippet = files.get(d.file.fileName)?.snippet
    const where = snippet
      ? `${snippet.file}:${snippet.line + line}`
      : `${path.relative(root, d.file.fileName)}:${line + 1}`
    return { where, message }
  })
}
