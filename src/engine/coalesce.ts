const ignore = (): void => {}

/**
 * Under load, runs of a round trip start at least this many milliseconds apart: every caller
 * meanwhile shares the next one. Measured in a storm of 10,000 upgrades (bench/connect.ts): runs
 * started as soon as the last one ended served ~4 upgrades each (~2,400 count writes and as many
 * reads) at ~150 µs of server CPU per upgrade; 5 ms apart, ~40 each at ~100 µs. An idle broker
 * runs a lone call at once; a call under load waits at most this long.
 */
export const SPACING_MS = 5

/**
 * Runs a task one at a time and lets callers share runs: a call while no run is waiting joins the
 * next run, which starts once the one in flight (if any) has ended and `spacing` ms have passed
 * since the last one started. Under load every caller of a round trip shares it, so N concurrent
 * upgrades cost one Redis command instead of N; alone, a call starts at once (after a microtask,
 * so calls of the same tick share it too).
 *
 * A run that starts after the call is what barrier-like tasks need: its command is sent after
 * the caller asked, so it sees everything the caller did before.
 */
export class Coalescer<T> {
  readonly #task: () => Promise<T>
  readonly #spacing: number
  #running: Promise<T> | null = null
  #next: Promise<T> | null = null
  #lastStart = -Infinity

  constructor(task: () => Promise<T>, spacing = 0) {
    this.#task = task
    this.#spacing = spacing
  }

  /**
   * Resolves (or rejects) with the next run that starts after this call. The run's promise is
   * shared by its callers and marked handled: a caller may await it later without an unhandled
   * rejection meanwhile.
   */
  run(): Promise<T> {
    if (this.#next) return this.#next
    const next = (this.#running ?? Promise.resolve())
      .then(ignore, ignore)
      .then(() => this.#spaced())
      .then(() => this.#start())
    next.catch(ignore)
    return (this.#next = next)
  }

  /** Waits out the rest of the spacing since the last run started (nothing when it is over). */
  #spaced(): Promise<void> | undefined {
    const wait = this.#lastStart + this.#spacing - performance.now()
    return wait > 0 ? new Promise((resolve) => setTimeout(resolve, wait)) : undefined
  }

  #start(): Promise<T> {
    this.#next = null
    this.#lastStart = performance.now()
    const run = this.#task()
    this.#running = run
    const done = (): void => {
      if (this.#running === run) this.#running = null
    }
    run.then(done, done)
    return run
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

  constructor(read: (keys: string[]) => Promise<V[]>, spacing = 0) {
    this.#reads = new Coalescer(async () => {
      const keys = [...this.#pending]
      this.#pending = new Set()
      const values = await read(keys)
      return new Map(keys.map((k, i) => [k, values[i]!]))
    }, spacing)
  }

  get(keys: readonly string[]): Promise<V[]> {
    return this.read(keys).then((values) => keys.map((k) => values.get(k)!))
  }

  /** The values of `keys` and of every key read with them: the read's own map, shared. */
  read(keys: readonly string[]): Promise<ReadonlyMap<string, V>> {
    for (const k of keys) this.#pending.add(k)
    return this.#reads.run()
  }
}
