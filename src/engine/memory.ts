import { randomBytes } from 'node:crypto'
import { ClosedError } from '../errors.js'
import type { Engine, EngineStatus, MessageHandler } from './types.js'

interface Stored {
  payload: Buffer
  expiresAt: number
}

/**
 * Engine for one process, without Redis: what `npm start` uses when REDIS_URL is unset, and a
 * reference for the engine contract.
 */
export class MemoryEngine implements Engine {
  #handler: MessageHandler = () => 0
  readonly #subscribed = new Set<string>()
  readonly #store = new Map<string, Stored>()
  #closed = false

  readonly connectionCount = 0
  readonly nodeId = randomBytes(6).toString('hex')

  async nodes(): Promise<string[]> {
    this.#check()
    return [this.nodeId]
  }

  async start(): Promise<void> {}

  onMessage(handler: MessageHandler): void {
    this.#handler = handler
  }

  #check(): void {
    if (this.#closed) throw new ClosedError()
  }

  async subscribe(channel: string): Promise<void> {
    this.#check()
    this.#subscribed.add(channel)
  }

  async unsubscribe(channel: string): Promise<void> {
    this.#check()
    this.#subscribed.delete(channel)
  }

  async publish(channel: string, payload: Buffer, expire: number): Promise<number> {
    this.#check()
    if (expire > 0) this.#store.set(channel, { payload, expiresAt: Date.now() + expire * 1000 })
    return this.#subscribed.has(channel) ? this.#handler(channel, payload) : 0
  }

  async get(channels: string[]): Promise<(Buffer | null)[]> {
    this.#check()
    const now = Date.now()
    return channels.map((channel) => {
      const stored = this.#store.get(channel)
      if (!stored) return null
      if (stored.expiresAt <= now) {
        this.#store.delete(channel)
        return null
      }
      return stored.payload
    })
  }

  readonly #presence = new Map<string, Map<string, number>>()

  async presenceJoin(set: string, member: string): Promise<boolean> {
    this.#check()
    let members = this.#presence.get(set)
    if (!members) this.#presence.set(set, (members = new Map()))
    const n = (members.get(member) ?? 0) + 1
    members.set(member, n)
    return n === 1
  }

  async presenceLeave(set: string, member: string): Promise<boolean> {
    this.#check()
    const members = this.#presence.get(set)
    const n = (members?.get(member) ?? 0) - 1
    if (!members || n < 0) return false
    if (n > 0) members.set(member, n)
    else members.delete(member)
    return n === 0
  }

  async presenceList(set: string): Promise<Map<string, number>> {
    this.#check()
    return new Map(this.#presence.get(set))
  }

  async presenceCount(set: string, member: string): Promise<number> {
    this.#check()
    return this.#presence.get(set)?.get(member) ?? 0
  }

  // One process: nothing else can die and leave members behind.
  onPresenceSwept(): void {}

  async barrier(): Promise<void> {}

  get status(): EngineStatus {
    return this.#closed ? 'closed' : 'ready'
  }

  onStatus(): void {}

  onError(): void {}

  async setLocalCount(): Promise<void> {}

  async close(): Promise<void> {
    this.#closed = true
    this.#subscribed.clear()
    this.#store.clear()
  }
}
