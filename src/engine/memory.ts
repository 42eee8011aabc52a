import { randomBytes } from 'node:crypto'
import { ClosedError } from '../errors.js'
import { facilityMissing, OVERALL } from './presence-sets.js'
import {
  encodeChannelMessage,
  type HistoryOptions,
  type HistoryRead,
  META_TTL,
  type PositionSink,
} from '../history/wire.js'
import type { Engine, EngineStatus, MessageHandler, PresenceChange } from './types.js'

/** One channel's history: its epoch, top offset and retained entries, as the Redis stream. */
interface Stream {
  epoch: string
  top: number
  entries: { offset: number; payload: Buffer }[]
  /** When the entries expire (ttl after the last publish), and the epoch (META_TTL). */
  entriesUntil: number
  until: number
}

let epochs = 0

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

  async publish(
    channel: string,
    payload: Buffer,
    expire: number,
    history?: HistoryOptions | null,
    position?: PositionSink,
  ): Promise<number> {
    this.#check()
    const now = Date.now()
    if (expire > 0) this.#store.set(channel, { payload, expiresAt: now + expire * 1000 })
    let message = payload
    if (history) {
      const stream = this.#stream(channel, now)
      stream.top += 1
      stream.entries.push({ offset: stream.top, payload })
      if (stream.entries.length > history.size)
        stream.entries.splice(0, stream.entries.length - history.size)
      stream.entriesUntil = now + history.ttl * 1000
      stream.until = now + Math.max(history.ttl, META_TTL) * 1000
      message = encodeChannelMessage(payload, stream.epoch, stream.top)
      position?.({ epoch: stream.epoch, offset: stream.top })
    }
    return this.#subscribed.has(channel) ? this.#handler(channel, message) : 0
  }

  readonly #streams = new Map<string, Stream>()

  /** The channel's stream, expired parts dropped; a new epoch where none is alive. */
  #stream(channel: string, now: number): Stream {
    let stream = this.#streams.get(channel)
    if (stream && stream.until <= now) stream = undefined
    if (!stream) {
      stream = {
        epoch: (now * 1000 + (++epochs % 1000)).toString(36),
        top: 0,
        entries: [],
        entriesUntil: 0,
        until: now + META_TTL * 1000,
      }
      this.#streams.set(channel, stream)
    }
    if (stream.entriesUntil <= now) stream.entries = []
    return stream
  }

  async readHistory(channel: string, since: number | null, limit: number): Promise<HistoryRead> {
    this.#check()
    const now = Date.now()
    const stream = this.#stream(channel, now)
    stream.until = Math.max(stream.until, now + META_TTL * 1000)
    const entries =
      since === null || since >= stream.top
        ? []
        : stream.entries.filter((e) => e.offset > since).slice(0, limit)
    return { epoch: stream.epoch, offset: stream.top, entries }
  }

  async get(channels: readonly string[]): Promise<(Buffer | null)[]> {
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

  async presenceJoin(facility: string, user: string): Promise<PresenceChange> {
    this.#check()
    if (facility === OVERALL) throw facilityMissing()
    return { overall: this.#move(OVERALL, user, 1), facility: this.#move(facility, user, 1) }
  }

  async presenceLeave(facility: string, user: string): Promise<PresenceChange> {
    this.#check()
    if (facility === OVERALL) throw facilityMissing()
    // A leave without its join takes nothing, in either set.
    if (!this.#presence.get(facility)?.has(user)) return { overall: false, facility: false }
    return { overall: this.#move(OVERALL, user, -1), facility: this.#move(facility, user, -1) }
  }

  /** Moves a member's count in a set by ±1; true when it went from 0 or to 0. */
  #move(set: string, member: string, by: 1 | -1): boolean {
    let members = this.#presence.get(set)
    if (!members) this.#presence.set(set, (members = new Map()))
    const n = (members.get(member) ?? 0) + by
    if (n > 0) members.set(member, n)
    else members.delete(member)
    return by === 1 ? n === 1 : n === 0
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
    this.#streams.clear()
  }
}
