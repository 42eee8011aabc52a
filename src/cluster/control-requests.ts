import { TimeoutError } from '../errors.js'
import type { OpResult } from './membership-op.js'

interface Pending {
  left: number
  sum: OpResult
  resolve: (result: OpResult) => void
  reject: (err: Error) => void
  timer: NodeJS.Timeout
}

/**
 * Requests sent to other processes on their control channels and waiting for their acks (the
 * control channel itself is fire-and-forget): each request id expects one ack per process it was
 * delivered to, and sums them; past `timeout` ms it rejects with a TimeoutError.
 */
export class ControlRequests {
  readonly #pending = new Map<string, Pending>()
  #sequence = 0

  constructor(readonly nodeId: string) {}

  /** A new request id, unique among the processes (it starts with this one's id). */
  nextId(): string {
    return `${this.nodeId}.${(++this.#sequence).toString(36)}`
  }

  /** Waits for `acks` acks of request `rid`, summing them onto `start`. */
  wait(rid: string, acks: number, start: OpResult, timeout: number): Promise<OpResult> {
    if (acks === 0) return Promise.resolve(start)
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(rid)
        reject(new TimeoutError(timeout))
      }, timeout)
      this.#pending.set(rid, { left: acks, sum: { ...start }, resolve, reject, timer })
    })
  }

  /** Stops waiting for `rid` (its sends failed). */
  forget(rid: string): void {
    const p = this.#pending.get(rid)
    if (p) clearTimeout(p.timer)
    this.#pending.delete(rid)
  }

  /** One process answered `rid`. Acks of unknown or timed-out requests are dropped. */
  ack(rid: string, result: OpResult): void {
    const p = this.#pending.get(rid)
    if (!p) return
    p.sum.count += result.count
    p.sum.refused += result.refused
    if (--p.left > 0) return
    clearTimeout(p.timer)
    this.#pending.delete(rid)
    p.resolve(p.sum)
  }
}
