/**
 * Request/answer over the IPC channel of the bench's child processes: the parent calls a command,
 * the child's handler answers it. Each child is its own process so its CPU and memory are its own.
 */
import { type ChildProcess, fork } from 'node:child_process'
import { once } from 'node:events'

type Handler = (args: Record<string, unknown>) => unknown

interface Request {
  id: number
  cmd: string
  args: Record<string, unknown>
}

interface Answer {
  id: number
  ok: boolean
  value?: unknown
  error?: string
}

/** In a child: answers the parent's commands with `handlers`; `exit` ends the process. */
export function serve(handlers: Record<string, Handler>): void {
  process.on('message', (raw) => {
    const req = raw as Request
    void (async () => {
      let answer: Answer
      try {
        const handler = req.cmd === 'exit' ? () => null : handlers[req.cmd]
        if (!handler) throw new Error(`unknown command ${req.cmd}`)
        answer = { id: req.id, ok: true, value: await handler(req.args) }
      } catch (err) {
        answer = { id: req.id, ok: false, error: String(err) }
      }
      process.send?.(answer)
      if (req.cmd === 'exit') process.disconnect?.()
    })()
  })
  // The parent going away (Ctrl-C, crash) ends the child: nothing outlives a run.
  process.on('disconnect', () => process.exit(0))
  process.send?.({ id: 0, ok: true, value: 'ready' })
}

/** A bench child process running a TypeScript file with tsx. */
export class Child {
  readonly #proc: ChildProcess
  readonly #waiting = new Map<number, (a: Answer) => void>()
  #seq = 0

  private constructor(proc: ChildProcess) {
    this.#proc = proc
    proc.on('message', (raw) => {
      const a = raw as Answer
      this.#waiting.get(a.id)?.(a)
      this.#waiting.delete(a.id)
    })
    proc.on('exit', () => {
      for (const cb of this.#waiting.values()) cb({ id: -1, ok: false, error: 'child exited' })
      this.#waiting.clear()
    })
  }

  /** Starts `file` (with `execArgv` for node) and waits until it serves commands. */
  static async start(file: string, execArgv: string[] = [], env: NodeJS.ProcessEnv = {}) {
    const proc = fork(file, [], {
      execArgv: ['--import', 'tsx', ...execArgv],
      env: { ...process.env, ...env },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    })
    const child = new Child(proc)
    const ready = new Promise<void>((resolve, reject) => {
      child.#waiting.set(0, (a) => (a.ok ? resolve() : reject(new Error(`${file}: ${a.error}`))))
    })
    await ready
    return child
  }

  get pid(): number {
    return this.#proc.pid!
  }

  /** Runs `cmd` in the child and resolves with its answer. */
  call<T = unknown>(cmd: string, args: Record<string, unknown> = {}): Promise<T> {
    const id = ++this.#seq
    return new Promise<T>((resolve, reject) => {
      this.#waiting.set(id, (a) =>
        a.ok ? resolve(a.value as T) : reject(new Error(`${cmd}: ${a.error}`)),
      )
      this.#proc.send({ id, cmd, args } satisfies Request)
    })
  }

  /** Asks the child to exit, then kills it by PID if it has not gone within 5 s. */
  async stop(): Promise<void> {
    if (this.#proc.exitCode !== null || this.#proc.signalCode !== null) return
    const exited = once(this.#proc, 'exit')
    this.call('exit').catch(() => {})
    const timer = setTimeout(() => this.#proc.kill('SIGKILL'), 5000)
    await exited
    clearTimeout(timer)
  }
}
