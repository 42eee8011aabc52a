import { type ChildProcess, spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'

/** The repository root: children run from here, with relative paths. */
export const ROOT = fileURLToPath(new URL('../../', import.meta.url))

/** Environment variables the CLI and the demo read; removed from children's environment. */
const SETTINGS = [
  'PORT',
  'HOST',
  'REDIS_URL',
  'WSFACILITY_REDIS_CLUSTER',
  'WSFACILITY_WORKERS',
  'WSFACILITY_PREFIX',
  'WS4REDIS_PREFIX',
  'WSFACILITY_EXPIRE',
  'WSFACILITY_HEARTBEAT',
  'WSFACILITY_CLIENT_PUBLISH',
  'WSFACILITY_PATH',
  'WSFACILITY_JWT_SECRET',
  'WSFACILITY_JWKS_URL',
  'WSFACILITY_JWT_ISSUER',
  'WSFACILITY_JWT_AUDIENCE',
  'WSFACILITY_SESSION_SECRET',
  'WSFACILITY_SESSION_COOKIE',
  'WSFACILITY_SESSION_PREFIX',
  'WSFACILITY_REQUIRE_AUTH',
  'WSFACILITY_CONFIG',
  'WSFACILITY_PRESENCE',
  'WSFACILITY_METRICS',
  'WSFACILITY_API_KEY',
  'WSFACILITY_ADMIN',
  'WSFACILITY_ADMIN_PASSWORD',
]

/** How a child ended. */
export interface Exit {
  code: number | null
  signal: NodeJS.Signals | null
}

/** A node process started for a test, with its output collected. */
export interface Child {
  process: ChildProcess
  pid: number
  readonly stdout: string
  readonly stderr: string
  /** Resolves when the process has exited. */
  exited: Promise<Exit>
  /** Resolves to the first match of `pattern` in stdout; rejects if the process exits first. */
  waitForOutput(pattern: RegExp, ms?: number): Promise<RegExpMatchArray>
  /** Sends `signal` to the process by PID and waits for it to exit. */
  signal(signal: NodeJS.Signals): Promise<Exit>
  /** Kills the process (SIGKILL, by PID) if it is still running. */
  kill(): Promise<void>
}

/** Runs `node ...args` from the repository root with `env` on top of a clean environment. */
export function spawnNode(args: string[], env: Record<string, string> = {}): Child {
  const base = { ...process.env }
  for (const name of SETTINGS) delete base[name]
  const child = spawn(process.execPath, args, {
    cwd: ROOT,
    env: { ...base, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  if (child.pid === undefined) throw new Error(`could not start node ${args.join(' ')}`)
  const pid = child.pid
  let stdout = ''
  let stderr = ''
  const watchers = new Set<() => void>()
  child.stdout.setEncoding('utf8').on('data', (d: string) => {
    stdout += d
    for (const w of watchers) w()
  })
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d))
  let ended: Exit | null = null
  const exited = new Promise<Exit>((resolve) =>
    child.once('close', (code, signal) => {
      ended = { code, signal }
      for (const w of watchers) w()
      resolve(ended)
    }),
  )
  const describe = (): string => `stdout: ${stdout}\nstderr: ${stderr}`

  return {
    process: child,
    pid,
    get stdout() {
      return stdout
    },
    get stderr() {
      return stderr
    },
    exited,
    waitForOutput(pattern, ms = 20_000) {
      return new Promise((resolve, reject) => {
        const check = (): void => {
          const match = stdout.match(pattern)
          if (match) done(() => resolve(match))
          else if (ended)
            done(() => reject(new Error(`process exited first (${ended?.code})\n${describe()}`)))
        }
        const timer = setTimeout(
          () => done(() => reject(new Error(`no ${pattern} within ${ms} ms\n${describe()}`))),
          ms,
        )
        const done = (settle: () => void): void => {
          clearTimeout(timer)
          watchers.delete(check)
          settle()
        }
        watchers.add(check)
        check()
      })
    },
    async signal(signal) {
      if (!ended) process.kill(pid, signal)
      return exited
    },
    async kill() {
      if (ended) return
      try {
        process.kill(pid, 'SIGKILL')
      } catch {
        // already gone
      }
      await exited
    },
  }
}

/** The built standalone server, relative to the repository root. */
export const BIN = 'bin/wsfacility.js'
/** The line the standalone server prints when it is ready. */
export const LISTENING = /^listening on http:\/\/127\.0\.0\.1:(\d+)$/m

/**
 * Starts the standalone server with `args` and `env` (no PORT or REDIS_URL unless given),
 * remembering the child in `children` so the test can kill it.
 */
export function startCli(
  children: Child[],
  args: string[],
  env: Record<string, string> = {},
): Child {
  const child = spawnNode([BIN, ...args], env)
  children.push(child)
  return child
}

/** Starts the standalone server and waits for its `listening on` line. */
export async function serveCli(
  children: Child[],
  args: string[],
  env: Record<string, string> = {},
) {
  const child = startCli(children, args, env)
  const [, port] = await child.waitForOutput(LISTENING)
  return { child, port: Number(port), ws: (path: string) => `ws://127.0.0.1:${port}${path}` }
}

/**
 * Resolves when `child` has exited by itself; after `ms` (a deadlock guard, not a speed limit)
 * kills it and rejects, so a process that something keeps alive fails the test instead of hanging.
 */
export async function exitsByItself(child: Child, ms = 30_000): Promise<Exit> {
  let timer: NodeJS.Timeout | undefined
  const stuck = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => {
      void child.kill()
      reject(new Error(`still running after ${ms} ms: something keeps it alive\n${child.stdout}`))
    }, ms)
  })
  try {
    return await Promise.race([child.exited, stuck])
  } finally {
    clearTimeout(timer)
  }
}
