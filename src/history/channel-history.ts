import type { HistoryEntry, HistoryOptions, HistoryRead, StreamPosition } from './wire.js'

/** What a channel's history reads from: the engine, and its pub/sub barrier. */
export interface HistorySource {
  readHistory(channel: string, since: number | null, limit: number): Promise<HistoryRead>
  /** Resolves once every message published before the call has been dispatched. */
  barrier(): Promise<void>
}

/** A live message with history, in channel order once accepted. */
export interface Sequenced {
  payload: Buffer
  epoch: string
  offset: number
}

/** What a ChannelHistory hands on. */
export interface HistorySink {
  /** One message, in offset order, each once. */
  deliver(message: Sequenced): void
  /** The history was lost (a new epoch, or trimmed past what the process had): recipients are
   * told, and delivery goes on from `position`. */
  lost(position: StreamPosition): void
  error(err: unknown): void
}

/** What one connection gets from history when it opens. */
export interface Recovery extends StreamPosition {
  /** Missed messages, oldest first (empty unless recovered). */
  entries: readonly TailEntry[]
  /** True when the connection asked from a position and everything since is here. */
  recovered: boolean
}

/** A message kept for recoveries; `framed` is filled by the first connection that needs it. */
export interface TailEntry extends HistoryEntry {
  framed?: Buffer
}

/** How long the recent messages of a channel are kept in memory after the last recovery. */
const TAIL_IDLE_MS = 30_000

interface Waiter {
  since: number | null
  epoch: string | null
  resolve: (r: Recovery) => void
  reject: (err: unknown) => void
}

/**
 * The history side of one subscribed channel, in one process: it puts live messages in offset
 * order, each once; fills a jump in the offsets (a message lost between Redis and this process)
 * from history; catches up after the process's subscription broke; and answers the recoveries
 * of connecting clients — from the channel's recent messages in memory when it can, else from
 * one Redis read shared by every client that asked meanwhile.
 */
export class ChannelHistory {
  readonly channel: string
  readonly label: string
  readonly options: HistoryOptions
  readonly #source: HistorySource
  readonly #sink: HistorySink
  /** Null until the first message or read: nothing is known of the channel's history yet. */
  #epoch: string | null = null
  /** Offset of the last message handed on. */
  #offset = 0
  /** While a repair read is in flight: live messages held until it is done. */
  #held: Sequenced[] | null = null
  /** Recent messages, contiguous up to #offset (offsets > #tailFrom), or null. */
  #tail: TailEntry[] | null = null
  #tailFrom = 0
  #tailUsed = 0
  /** Recoveries waiting for the next read, and whether a read is in flight. */
  #waiting: Waiter[] = []
  #reading = false
  #closed = false
  /** Redis reads made (for the benchmark and tests). */
  reads = 0

  constructor(
    channel: string,
    label: string,
    options: HistoryOptions,
    source: HistorySource,
    sink: HistorySink,
  ) {
    this.channel = channel
    this.label = label
    this.options = options
    this.#source = source
    this.#sink = sink
  }

  /** The position of the last message handed on, or null while unknown. */
  get position(): StreamPosition | null {
    return this.#epoch === null ? null : { epoch: this.#epoch, offset: this.#offset }
  }

  /** A live message of the channel. */
  receive(message: Sequenced): void {
    if (this.#closed) return
    if (this.#held) {
      this.#held.push(message)
      return
    }
    if (this.#epoch === null) return this.#accept(message)
    if (message.epoch === this.#epoch) {
      if (message.offset <= this.#offset) return // already handed on (from history)
      if (message.offset === this.#offset + 1) return this.#accept(message)
    }
    // A jump, or a new epoch: what came before it is read from history first.
    this.#repair([message])
  }

  /** After the process's subscription broke and came back: reads what it missed meanwhile. */
  catchUp(): void {
    if (this.#closed || this.#epoch === null || this.#held) return
    this.#repair([], true)
  }

  /** Stops all work (the channel was unsubscribed). */
  close(): void {
    this.#closed = true
    this.#tail = null
    this.#held = null
    for (const w of this.#waiting.splice(0)) w.reject(new Error('channel closed'))
  }

  #accept(message: Sequenced): void {
    if (this.#epoch !== message.epoch) this.#tail = null
    this.#epoch = message.epoch
    this.#offset = message.offset
    this.#keep(message.offset, message.payload)
    this.#sink.deliver(message)
  }

  /** Adds a handed-on message to the tail (while recoveries use it). */
  #keep(offset: number, payload: Buffer): void {
    const tail = this.#tail
    if (!tail) return
    if (Date.now() - this.#tailUsed > TAIL_IDLE_MS) {
      this.#tail = null
      return
    }
    tail.push({ offset, payload })
    if (tail.length > this.options.size) {
      const cut = tail.length - this.options.size
      this.#tailFrom = tail[cut - 1]!.offset
      tail.splice(0, cut)
    }
  }

  /** Holds live messages, reads from the last offset handed on, and hands on what was missed.
   * One repair at a time: live messages are held in `#held` until it is done. */
  #repair(held: Sequenced[], afterResubscribe = false): void {
    this.#held = held
    const since = this.#offset
    const epoch = this.#epoch
    void (async () => {
      // After a resubscription, the barrier makes sure the SUBSCRIBE is in effect before the read:
      // what is published after the read then arrives live.
      if (afterResubscribe) await this.#source.barrier()
      this.reads++
      const read = await this.#source.readHistory(this.channel, since, readLimit(this.options))
      if (read.epoch === epoch || since === 0) return read
      // Another epoch: its offsets start again at 1, and the read skipped those up to `since`.
      // What it has is read from its start, to be handed on after the loss.
      this.reads++
      return this.#source.readHistory(this.channel, 0, readLimit(this.options))
    })().then(
      (read) => {
        if (this.#closed) return
        // The entries are those after `since` (after 0 for another epoch), oldest first.
        const { entries } = read
        if (read.epoch !== epoch || !contiguous(entries, since, read.offset)) {
          // Lost: a new epoch, or trimmed past our offset, or Redis went back (an older
          // snapshot). Delivery goes on from what history still has.
          this.#epoch = read.epoch
          this.#offset = entries.length > 0 ? entries[0]!.offset - 1 : read.offset
          this.#tail = null
          this.#sink.lost({ epoch: read.epoch, offset: this.#offset })
        }
        // Each one follows the last handed on: live messages wait in #held meanwhile.
        for (const e of entries) {
          this.#accept({ payload: e.payload, epoch: read.epoch, offset: e.offset })
        }
        this.#drain(this.#offset !== since || this.#epoch !== epoch)
      },
      (err: unknown) => {
        // Redis cannot be read: what was held is handed on as it is, gaps and all.
        if (this.#closed) return
        this.#sink.error(err)
        // What is still held: nothing if the sink closed the channel.
        const rest = this.#held ?? []
        this.#held = null
        for (const m of rest) {
          if (m.epoch === this.#epoch && m.offset <= this.#offset) continue
          this.#accept(m)
        }
        this.#serveWaiting()
      },
    )
  }

  /** Hands on the messages held during a repair, repairing again at the next jump. */
  #drain(progressed = true): void {
    const held = this.#held ?? []
    this.#held = null
    for (let i = 0; i < held.length; i++) {
      const m = held[i]!
      // Already handed on, or of an epoch that history has left behind.
      if (m.epoch !== this.#epoch || m.offset <= this.#offset) continue
      if (m.offset !== this.#offset + 1) {
        // A repair that got nothing new: what lies before this message is not in history (Redis
        // went back to an older snapshot). Reading again would find nothing more: it is lost.
        if (progressed) return this.#repair(held.slice(i))
        this.#offset = m.offset - 1
        this.#tail = null
        this.#sink.lost({ epoch: this.#epoch, offset: this.#offset })
      }
      this.#accept(m)
      progressed = true
    }
    this.#serveWaiting()
  }

  /**
   * What a connection registered on this channel gets when it opens: from `since` (of `epoch`)
   * what it missed, or just the current position (`since` null). Called after its registration,
   * so that everything after the answer reaches it live.
   */
  recover(since: number | null, epoch: string | null): Promise<Recovery> {
    if (this.#closed) return Promise.reject(new Error('channel closed'))
    // Answered at once from memory when it can (#serveWaiting), else with the next read.
    return new Promise((resolve, reject) => {
      this.#waiting.push({ since, epoch, resolve, reject })
      this.#serveWaiting()
    })
  }

  /** The answer from what this process knows, or null when Redis must be read. */
  #fromMemory(since: number | null, epoch: string | null): Recovery | null {
    const position = { epoch: this.#epoch!, offset: this.#offset }
    if (since === null) return { ...position, entries: [], recovered: false }
    // Ahead of what this process has handed on: the client saw messages (through another
    // process) whose live copies are still on their way here. Only Redis knows.
    if (epoch === this.#epoch && since > this.#offset) return null
    if (epoch !== this.#epoch) return { ...position, entries: [], recovered: false }
    if (since === this.#offset) return { ...position, entries: [], recovered: true }
    const tail = this.#tail
    if (!tail || since < this.#tailFrom) return null
    this.#tailUsed = Date.now()
    return { ...position, entries: tail.slice(since - this.#tailFrom), recovered: true }
  }

  /** Keeps the entries of a read from `from` (of the current epoch, up to the current offset) as
   * the tail, unless the tail already reaches further back. */
  #seed(read: HistoryRead, from: number): void {
    if (this.#tail && this.#tailFrom <= from) return
    const entries = read.entries
    const start = entries.length > 0 ? entries[0]!.offset - 1 : read.offset
    if (!contiguous(entries, start, read.offset)) return
    this.#tail = entries
    this.#tailFrom = start
    this.#tailUsed = Date.now()
  }

  /** Answers waiting recoveries from memory where possible, else with one shared read. */
  #serveWaiting(): void {
    if (this.#reading || this.#held || this.#waiting.length === 0 || this.#closed) return
    if (this.#epoch !== null) {
      this.#waiting = this.#waiting.filter((w) => {
        const answer = this.#fromMemory(w.since, w.epoch)
        if (answer) w.resolve(answer)
        return !answer
      })
      if (this.#waiting.length === 0) return
    }
    const batch = this.#waiting.splice(0)
    let since = Infinity
    for (const w of batch) if (w.since !== null) since = Math.min(since, w.since)
    const from = since === Infinity ? null : since
    this.#reading = true
    this.reads++
    const known = this.#epoch !== null
    void (async () => {
      const read = await this.#source.readHistory(this.channel, from, readLimit(this.options))
      // Every message up to the read's top must have been dispatched before the answer: the
      // connections asking are registered on the channel, and hold what arrives while they
      // upgrade, skipping what their answer already has. A message still on its way once one
      // of them opened would reach it twice. At first sight of the channel, this also makes the
      // read's top where live delivery stands.
      if (read.epoch !== this.#epoch || read.offset > this.#offset) await this.#source.barrier()
      return read
    })().then(
      (read) => {
        this.#reading = false
        if (this.#closed) {
          for (const w of batch) w.reject(new Error('channel closed'))
          return
        }
        if (this.#held) {
          // Messages up to the top are held by a repair, not handed on yet: the batch is answered
          // once it is done (#drain serves the waiting).
          this.#waiting.unshift(...batch)
          return
        }
        if (!known && (this.#epoch === null || this.#epoch === read.epoch)) {
          // Every message up to the read's top has been dispatched (the barrier), and later
          // ones follow live.
          if (from !== null && this.#offset <= read.offset) this.#seed(read, from)
          this.#epoch = read.epoch
          this.#offset = Math.max(this.#offset, read.offset)
        } else if (from !== null && this.#epoch === read.epoch && this.#offset === read.offset) {
          this.#seed(read, from)
        }
        for (const w of batch) w.resolve(answerFrom(read, w))
        this.#serveWaiting()
      },
      (err: unknown) => {
        this.#reading = false
        for (const w of batch) w.reject(err)
        this.#serveWaiting()
      },
    )
  }
}

/** Entries one read asks for: `MAXLEN ~` keeps somewhat more than `size`. */
const readLimit = (options: HistoryOptions): number => options.size * 2 + 100

/** One waiter's answer from a read of its batch: made from the oldest `since` asked, so from this
 * waiter's `since` or an older one. */
function answerFrom(read: HistoryRead, w: Waiter): Recovery {
  const position = { epoch: read.epoch, offset: read.offset }
  const since = w.since
  if (since === null || w.epoch !== read.epoch)
    return { ...position, entries: [], recovered: false }
  const entries = read.entries.filter((e) => e.offset > since)
  const recovered = contiguous(entries, since, read.offset)
  return { ...position, entries: recovered ? entries : [], recovered }
}

/** True when `entries` are exactly the offsets after `since` up to `top`: entries read from
 * `since` are distinct offsets in (since, top], so as many as top - since are all of them (none
 * missing, trimmed, expired or left out by a read's limit). */
function contiguous(entries: readonly HistoryEntry[], since: number, top: number): boolean {
  return entries.length === top - since
}
