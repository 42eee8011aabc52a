const ignore = (): void => {}

/**
 * Runs a task one at a time and lets callers share runs: a call while no run is waiting joins the
 * next run, which starts once the one in flight (if any) has ended. Under load every caller of a
 * round trip shares it, so N concurrent upgrades cost one Redis command instead of N; alone, a
 * call starts at once (after a microtask, so calls of the same tick share it too).
 *
 * A run that starts after the call is what barrier-like tasks need: its command is sent after
 * the caller asked, so it sees everything the caller did before.
 */
export class Coalescer<T> {
  readonly #task: () => Promise<T>
  #running: Promise<T> | null = null
  #next: Promise<T> | null = null

  constructor(task: () => Promise<T>) {
    this.#task = task
  }

  /** Resolves (or rejects) with the next run that starts after this call. */
  run(): Promise<T> {
    this.#next ??= (this.#running ?? Promise.resolve()).then(ignore, ignore).then(() => {
      this.#next = null
      const run = this.#task()
      this.#running = run
      const done = (): void => {
        if (this.#running === run) this.#running = null
      }
      run.then(done, done)
      return run
    })
    return this.#next
  }
}

/**
 * Batches reads of keys: every key asked for while no read is waiting goes into the next read
 * (one MGET for all), started once the read in flight has ended. Each caller gets its own keys'
 * values, in its order.
 */
export class BatchedReads<V> {
  #pending = new Set<string>()
  readonly #reads: Coalescer<Map<string, V>>

  constructor(read: (keys: string[]) => Promise<V[]>) {
    this.#reads = new Coalescer(async () => {
      const keys = [...this.#pending]
      this.#pending = new Set()
      const values = await read(keys)
      return new Map(keys.map((k, i) => [k, values[i]!]))
    })
  }

  async get(keys: readonly string[]): Promise<V[]> {
    for (const k of keys) this.#pending.add(k)
    const values = await this.#reads.run()
    return keys.map((k) => values.get(k)!)
  }
}
