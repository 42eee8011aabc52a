import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { type Attempt, ConnectionRegistry } from '../../src/connection/registry.js'

/** The attempts a registry cut for their deadline, in order; `reached(n)` once n were. */
class Cuts {
  readonly names: string[] = []
  #waiting: { n: number; resolve: () => void }[] = []
  add(name: string): void {
    this.names.push(name)
    for (const w of this.#waiting) if (this.names.length >= w.n) w.resolve()
  }
  reached(n: number): Promise<void> {
    if (this.names.length >= n) return Promise.resolve()
    return new Promise((resolve) => this.#waiting.push({ n, resolve }))
  }
}

/** An attempt as the registry sees it, whose deadline is `timeout` ms from now. */
function attempt(registry: ConnectionRegistry, name: string, timeout: number, cuts: Cuts): Attempt {
  const a: Attempt = {
    deadline: performance.now() + timeout,
    timedOut: () => {
      cuts.add(name)
      registry.upgradeEnded(a)
    },
    abortShutdown: () => registry.upgradeEnded(a),
  }
  registry.upgradeStarted(a)
  return a
}

/** Timers this process holds (the registry's deadline timer among them while it is armed). */
const timers = (): number => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length

describe('ConnectionRegistry deadlines', () => {
  it('cuts each upgrade at its own deadline, oldest first, with one timer for all', async () => {
    const registry = new ConnectionRegistry()
    const cuts = new Cuts()
    const before = timers()
    attempt(registry, 'a', 150, cuts)
    attempt(registry, 'b', 150, cuts)
    assert.equal(timers(), before + 1)
    await sleep(100)
    attempt(registry, 'c', 150, cuts)
    assert.equal(timers(), before + 1)
    await cuts.reached(2)
    // a and b went at their deadline; c, 100 ms younger, is still in progress.
    assert.deepEqual(cuts.names, ['a', 'b'])
    assert.equal(registry.upgrading, 1)
    await cuts.reached(3)
    assert.deepEqual(cuts.names, ['a', 'b', 'c'])
    assert.equal(registry.upgrading, 0)
    assert.equal(timers(), before)
  })

  it('does not cut an upgrade that ended before its deadline, and waits for the next one', async () => {
    const registry = new ConnectionRegistry()
    const cuts = new Cuts()
    const a = attempt(registry, 'a', 50, cuts)
    await sleep(20)
    const b = attempt(registry, 'b', 150, cuts)
    registry.upgradeEnded(a)
    await sleep(80)
    // a's deadline has passed, but it had ended: nothing was cut, and b waits for its own.
    assert.deepEqual(cuts.names, [])
    assert.equal(registry.upgrading, 1)
    await cuts.reached(1)
    assert.deepEqual(cuts.names, ['b'])
    assert.ok(performance.now() >= b.deadline)
  })

  it('waits for a deadline with one timer, not by polling', async (t) => {
    const registry = new ConnectionRegistry()
    const cuts = new Cuts()
    const armed = t.mock.method(globalThis, 'setTimeout')
    attempt(registry, 'a', 100, cuts)
    await cuts.reached(1)
    // Armed once for the deadline (and at most once more, should it fire a moment early).
    assert.ok(armed.mock.callCount() <= 2, `${armed.mock.callCount()} timers for one deadline`)
  })

  it('lets go of its timer once no upgrade is in progress', async () => {
    const registry = new ConnectionRegistry()
    const cuts = new Cuts()
    const before = timers()
    const a = attempt(registry, 'a', 10_000, cuts)
    const b = attempt(registry, 'b', 10_000, cuts)
    registry.upgradeEnded(b)
    assert.equal(timers(), before + 1)
    registry.upgradeEnded(a)
    assert.equal(timers(), before)
    // A later upgrade arms it again, for its own deadline.
    attempt(registry, 'c', 20, cuts)
    assert.equal(timers(), before + 1)
    await cuts.reached(1)
    assert.deepEqual(cuts.names, ['c'])
    assert.equal(timers(), before)
  })
})
