// The declarations users compile against (dist/, which test/run.sh builds), read as a user's
// compiler reads them from each entry point of package.json: what they import, and whether every
// optional field accepts undefined. .ci/pack-check.sh compiles real code against the packed
// tarball; this test says which declaration is at fault, and runs with the suite.
import assert from 'node:assert/strict'
import { existsSync, readFileSync } from 'node:fs'
import path from 'node:path'
import { describe, it } from 'node:test'
import ts from 'typescript'
import { ROOT } from './helpers/child.js'

interface Manifest {
  exports: Record<string, string | { types: string; default: string }>
  dependencies: Record<string, string>
}
const manifest = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as Manifest

interface Declarations {
  /** Every .d.ts file the entry point reaches, relative to the package. */
  files: string[]
  /** Bare module specifiers imported (or augmented), with the files importing them. */
  modules: Map<string, string[]>
  /** Optional properties whose type does not include undefined: `file:line text`. */
  strictOptional: string[]
}

const includesUndefined = (type: ts.TypeNode | undefined): boolean =>
  type !== undefined &&
  (type.kind === ts.SyntaxKind.UndefinedKeyword ||
    type.kind === ts.SyntaxKind.UnknownKeyword ||
    type.kind === ts.SyntaxKind.AnyKeyword ||
    (ts.isLiteralTypeNode(type) && type.literal.kind === ts.SyntaxKind.UndefinedKeyword) ||
    (ts.isUnionTypeNode(type) && type.types.some(includesUndefined)) ||
    (ts.isParenthesizedTypeNode(type) && includesUndefined(type.type)))

function read(entry: string): Declarations {
  const files = new Set<string>()
  const modules = new Map<string, string[]>()
  const strictOptional: string[] = []
  const queue = [path.join(ROOT, entry)]
  while (queue.length > 0) {
    const file = queue.pop()!
    const name = path.relative(ROOT, file)
    if (files.has(name)) continue
    assert.ok(existsSync(file), `${name} is missing: build first (npm run build)`)
    files.add(name)
    const source = ts.createSourceFile(
      file,
      readFileSync(file, 'utf8'),
      ts.ScriptTarget.Latest,
      true,
    )
    const visit = (node: ts.Node): void => {
      let specifier: string | undefined
      if ((ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) && node.moduleSpecifier) {
        specifier = (node.moduleSpecifier as ts.StringLiteral).text
      } else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument)) {
        specifier = (node.argument.literal as ts.StringLiteral).text
      } else if (ts.isModuleDeclaration(node) && ts.isStringLiteral(node.name)) {
        specifier = node.name.text // `declare module 'x'`: an augmentation needs x's types too
      }
      if (specifier?.startsWith('.')) {
        queue.push(path.resolve(path.dirname(file), specifier.replace(/\.js$/, '.d.ts')))
      } else if (specifier !== undefined) {
        modules.set(specifier, [...new Set([...(modules.get(specifier) ?? []), name])])
      }
      if (
        (ts.isPropertySignature(node) || ts.isPropertyDeclaration(node)) &&
        node.questionToken !== undefined &&
        !includesUndefined(node.type)
      ) {
        const { line } = source.getLineAndCharacterOfPosition(node.getStart())
        strictOptional.push(`${name}:${line + 1} ${node.getText().replace(/\s+/g, ' ')}`)
      }
      if (ts.isMethodSignature(node) && node.questionToken !== undefined) {
        const { line } = source.getLineAndCharacterOfPosition(node.getStart())
        strictOptional.push(`${name}:${line + 1} ${node.getText().replace(/\s+/g, ' ')} (method)`)
      }
      ts.forEachChild(node, visit)
    }
    visit(source)
  }
  return { files: [...files].sort(), modules, strictOptional }
}

const entries = Object.entries(manifest.exports).flatMap(([name, target]) =>
  typeof target === 'object' ? [{ name, declarations: read(target.types) }] : [],
)

/** Dependencies whose own package carries its types: a user has them whenever they have us. */
function typedDependency(name: string): boolean {
  if (!(name in manifest.dependencies)) return false
  const own = JSON.parse(
    readFileSync(path.join(ROOT, 'node_modules', name, 'package.json'), 'utf8'),
  ) as { types?: string; typings?: string; exports?: unknown }
  return (
    own.types !== undefined ||
    own.typings !== undefined ||
    JSON.stringify(own.exports ?? '').includes('"types"')
  )
}

describe('The published declarations', () => {
  it('cover every entry point of package.json', () => {
    assert.deepEqual(
      entries.map((e) => e.name),
      Object.keys(manifest.exports).filter((k) => k !== './package.json'),
    )
  })

  it('import only Node built-ins and dependencies that carry their own types', () => {
    // @types/ws, @types/express-session and the like are devDependencies: a user does not have
    // them, and a fresh project without skipLibCheck would fail on an import of them.
    for (const { name, declarations } of entries) {
      for (const [module, importers] of declarations.modules) {
        if (module.startsWith('node:') || typedDependency(module)) continue
        // wsfacility/express is for Express apps, whose TypeScript users have @types/express
        // (express-serve-static-core is one of its dependencies).
        if (name === './express' && ['express', 'express-serve-static-core'].includes(module)) {
          continue
        }
        assert.fail(`${name}: ${importers.join(', ')} import '${module}'`)
      }
    }
  })

  it('of wsfacility/client need nothing at all: no Node types, no dependency', () => {
    const client = entries.find((e) => e.name === './client')!.declarations
    assert.deepEqual([...client.modules.keys()], [])
    assert.ok(client.files.every((f) => f.startsWith(path.join('dist', 'src', 'client'))))
  })

  it('let every optional field be undefined (exactOptionalPropertyTypes: undefined = the default)', () => {
    const offenders = [...new Set(entries.flatMap((e) => e.declarations.strictOptional))]
    assert.deepEqual(
      offenders,
      [],
      'write `name?: T | undefined` (and ?: ((…) => R) | undefined for functions)',
    )
  })
})
