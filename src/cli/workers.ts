import cluster, { type Worker } from 'node:cluster'
import type { Env } from './options.js'

/** The IPC message the primary sends a worker to make it shut down as on SIGTERM. */
export const SHUTDOWN = 'wsfacility:shutdown'

/** Where the primary reports (the CLI's output). */
export interface PrimaryOutput {
  out(line: string): void
  err(line: string): void
}

/** What the primary runs. */
export interface PrimaryOptions {
  /** The CLI module each worker runs. */
  exec: string
  /** The command line, passed to every worker unchanged. */
  argv: readonly string[]
  /** The environment the command line was read with. */
  env: Env
  /** Number of workers. */
  workers: number
  output: PrimaryOutput
}

/**
 * The primary of `--workers N` (node:cluster): forks N workers that run the CLI with the same
 * command line and share its port (the primary hands out connections; a WebSocket is one TCP
 * connection and all shared state is in Redis, so no sticky sessions are needed). A worker that
 * dies after it listened is replaced; one that dies before stops them all (Redis unreachable, port
 * taken: as a single server would exit 1). SIGTERM or SIGINT asks every worker to close its
 * clients with 1001 and resolves once they exited: 0 if all exited 0, else 1.
 */
export function runPrimary(options: PrimaryOptions): Promise<number> {
  const { output } = options
  const env = Object.fromEntries(
    Object.entries(options.env).filter((e): e is [string, string] => e[1] !== undefined),
  )
  cluster.setupPrimary({ exec: options.exec, args: [...options.argv] })
  const live = new Set<Worker>()
  const listened = new Set<Worker>()
  let stopping = false
  let failed = false
  let signals = 0

  return new Promise<number>((resolve) => {
    const fork = (): void => {
      const worker = cluster.fork(env)
      live.add(worker)
      output.out(`worker ${worker.process.pid} started`)
    }
    const stop = (): void => {
      stopping = true
      for (const worker of live) if (worker.isConnected()) worker.send(SHUTDOWN)
    }
    const onSignal = (signal: NodeJS.Signals): void => {
      signals += 1
      if (signals > 1) {
        output.err(`${signal} again: killing the workers`)
        for (const worker of live) worker.process.kill('SIGKILL')
        failed = true
        return
      }
      output.err(`${signal}: shutting down ${live.size} workers`)
      stop()
    }
    const onListening = (worker: Worker): void => {
      listened.add(worker)
    }
    const onExit = (worker: Worker, code: number | null, signal: string | null): void => {
      live.delete(worker)
      const how = signal ?? `code ${code}`
      if (stopping) {
        if (code !== 0) failed = true
      } else if (listened.has(worker)) {
        output.err(`worker ${worker.process.pid} exited (${how}); starting another`)
        fork()
      } else {
        output.err(`worker ${worker.process.pid} exited (${how}) before listening; stopping`)
        failed = true
        stop()
      }
      listened.delete(worker)
      if (live.size > 0) return
      process.off('SIGTERM', onSignal)
      process.off('SIGINT', onSignal)
      cluster.off('listening', onListening)
      cluster.off('exit', onExit)
      resolve(failed ? 1 : 0)
    }
    process.on('SIGTERM', onSignal)
    process.on('SIGINT', onSignal)
    cluster.on('listening', onListening)
    cluster.on('exit', onExit)
    output.out(`primary ${process.pid}: starting ${options.workers} workers`)
    for (let i = 0; i < options.workers; i++) fork()
  })
}
