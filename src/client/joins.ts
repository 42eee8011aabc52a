import { WsfClientError } from './errors.js'
import type { ChannelPosition } from './positions.js'

/** What `client.join()` and `client.leave()` name: a group of the facility, or one of its
 * channels by label (`broadcast`, `user`, `session`, `group:<name>`). */
export type JoinTarget = { group: string } | { channel: string }

/** The broker's answer to a join: the channel's label and, with history, where it stands. */
export interface JoinResult {
  channel: string
  epoch?: string | undefined
  offset?: number | undefined
  /** True when the join gave a position (after a reconnect) and got everything missed since. */
  recovered?: boolean | undefined
  /** Messages sent from the channel's history before the answer. */
  missed?: number | undefined
}

interface Waiting {
  kind: 'join' | 'leave'
  label: string
  target: JoinTarget
  resolve: (result: JoinResult) => void
  reject: (err: WsfClientError) => void
}

interface Answer {
  type: 'joined' | 'left' | 'join-refused'
  channel?: string
  id?: number
  code?: string
  reason?: string
  epoch?: string | undefined
  offset?: number | undefined
  recovered?: boolean
  missed?: number
}

/** What the joins need from their client. */
export interface JoinsHost {
  /** Sends a text frame when the socket is open; false (nothing sent) otherwise. */
  send(text: string): boolean
  /** The client's position in a channel (joins after a reconnect recover from it). */
  position(label: string): ChannelPosition | undefined
  /** The answer to a join told where the channel stands. */
  positioned(label: string, position: ChannelPosition): void
  /** A re-join after a reconnect was refused (the channel is not joined any more). */
  refused(error: WsfClientError): void
}

function labelOf(target: JoinTarget): string {
  const t = target as { group?: unknown; channel?: unknown }
  if (typeof t.group === 'string' && t.group !== '' && t.channel === undefined)
    return `group:${t.group}`
  if (typeof t.channel === 'string' && t.group === undefined) {
    const c = t.channel
    if (c === 'broadcast' || c === 'user' || c === 'session' || /^group:./.test(c)) return c
  }
  throw new TypeError(
    'join { group: <name> } or { channel: broadcast | user | session | group:<name> }',
  )
}

const ANSWER = /^\{"type":"(joined|left|join-refused)"/

/**
 * The client's live joins: join and leave frames with an id, their answers, and the channels
 * joined, which are joined again (from the client's position, with history) after every
 * reconnect.
 */
export class Joins {
  readonly #host: JoinsHost
  /** Joined (or being joined), by label: asked again on every open. */
  readonly #wanted = new Map<string, JoinTarget>()
  readonly #waiting = new Map<number, Waiting>()
  #sequence = 0

  constructor(host: JoinsHost) {
    this.#host = host
  }

  /** Rejects with a TypeError for a target that is not a group or a channel label. */
  async join(target: JoinTarget): Promise<JoinResult> {
    const label = labelOf(target)
    this.#wanted.set(label, target)
    return this.#ask('join', label, target)
  }

  async leave(target: JoinTarget): Promise<void> {
    const label = labelOf(target)
    this.#wanted.delete(label)
    await this.#ask('leave', label, target)
  }

  #ask(kind: 'join' | 'leave', label: string, target: JoinTarget): Promise<JoinResult> {
    const id = ++this.#sequence
    return new Promise((resolve, reject) => {
      this.#waiting.set(id, { kind, label, target, resolve, reject })
      this.#send(kind, id, label, target)
    })
  }

  #send(kind: 'join' | 'leave', id: number, label: string, target: JoinTarget): void {
    const since = kind === 'join' ? this.#host.position(label) : undefined
    const frame = since ? { type: kind, ...target, id, since } : { type: kind, ...target, id }
    this.#host.send(JSON.stringify(frame))
  }

  /** After every open: the questions still unanswered, then every channel joined before. */
  opened(): void {
    const asked = new Set<string>()
    for (const [id, w] of this.#waiting) {
      this.#send(w.kind, id, w.label, w.target)
      asked.add(w.label)
    }
    for (const [label, target] of this.#wanted) {
      if (!asked.has(label)) this.#send('join', ++this.#sequence, label, target)
    }
  }

  /** A frame from the broker: true when it was the answer to a join or leave. */
  receive(data: unknown): boolean {
    if (typeof data !== 'string' || !ANSWER.test(data)) return false
    let a: Answer
    try {
      a = JSON.parse(data) as Answer
    } catch {
      return false
    }
    const label = a.channel
    if (a.type === 'joined' && label && typeof a.epoch === 'string' && typeof a.offset === 'number')
      this.#host.positioned(label, { epoch: a.epoch, offset: a.offset })
    const waiting = a.id === undefined ? undefined : this.#waiting.get(a.id)
    if (waiting) this.#waiting.delete(a.id!)
    if (a.type === 'join-refused') {
      const error = new WsfClientError(
        'WSF_CLIENT_JOIN_REFUSED',
        `${a.reason ?? 'join refused'} (${a.code ?? 'WSF_JOIN_REFUSED'})`,
      )
      // Only a join's refusal ends the wish to be there; a refused leave leaves it as it was.
      if (label && (!waiting || waiting.kind === 'join')) this.#wanted.delete(label)
      if (waiting) waiting.reject(error)
      else this.#host.refused(error)
      return true
    }
    if (waiting) {
      const result: JoinResult = { channel: label ?? waiting.label }
      if (typeof a.epoch === 'string') result.epoch = a.epoch
      if (typeof a.offset === 'number') result.offset = a.offset
      if (typeof a.recovered === 'boolean') result.recovered = a.recovered
      if (typeof a.missed === 'number') result.missed = a.missed
      waiting.resolve(result)
    }
    return true
  }

  /** The client stopped for good: what is unanswered rejects, and nothing is joined again. */
  stopped(): void {
    const error = new WsfClientError('WSF_CLIENT_CLOSED', 'client is closed')
    for (const w of this.#waiting.values()) w.reject(error)
    this.#waiting.clear()
    this.#wanted.clear()
  }
}
