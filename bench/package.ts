/**
 * The bench measures wsfacility as users run it: the package's compiled JavaScript (`dist/`, what
 * `npm pack` ships), not the TypeScript sources through tsx, whose transpiled output adds helpers
 * of its own (a `__name` call per function made). Socket.IO and ws are measured from their
 * published JavaScript too. The entry points build it first (`buildPackage`).
 */
import { execFileSync } from 'node:child_process'

type Package = typeof import('../src/index.js')

/** Builds dist/ (`npm run build`); the bench's entry points call it before starting servers. */
export function buildPackage(): void {
  execFileSync('npm', ['run', '--silent', 'build'], {
    cwd: new URL('..', import.meta.url),
    stdio: 'inherit',
  })
}

/** The built package (dist/src/index.js); run `npm run build` (or the bench) first. */
export async function loadPackage(): Promise<Package> {
  const entry = new URL('../dist/src/index.js', import.meta.url).href
  try {
    return (await import(entry)) as Package
  } catch (err) {
    throw new Error(`cannot load the built package (${entry}): run npm run build first`, {
      cause: err,
    })
  }
}
