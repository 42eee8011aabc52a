import type { WireFormat } from '../facility/definition.js'
import type { HistoryPosition } from './envelope.js'
import { frameFor } from './frame.js'
import { Run, type RunPlaces } from './run.js'
import type { EngineHistory, EngineMembership, EngineTransport } from '../engine/types.js'
import { ChannelHistory, type HistorySource, type Sequenced } from '../history/channel-history.js'
import {
  channelLabel,
  decodeChannelMessage,
  type HistoryOptions,
  type StreamPosition,
} from '../history/wire.js'

/** What the hub delivers to: one live or pending connection. */
export interface Recipient {
  /**
   * Takes one message of `channel`: `payload` as published (without the history mark), `framed`
   * ready to write, `offset` its place in the channel's history (0 without history) and, on json
   * facilities with history, `position` the one its frame carries.
   */
  deliver(
    channel: string,
    payload: Buffer,
    framed: Buffer,
    offset: number,
    position?: HistoryPosition,
  ): void
  /**
   * Takes consecutive messages of `channel` at once, as `deliver` would one by one (`bytes`: the
   * frames' total length; `places` each message's offset and position, null when none has a
   * place in the channel's history). The arrays are shared by every recipient of the channel and
   * must not be changed. Without it, the hub calls `deliver` for each.
   */
  deliverRun?:
    | ((
        channel: string,
        payloads: readonly Buffer[],
        frames: readonly Buffer[],
        bytes: number,
        places: RunPlaces | null,
      ) => void)
    | undefined
  /** The channel's history was lost; delivery goes on from `position` (`label`: the client's name
   * of the channel). */
  historyLost?: ((channel: string, label: string, position: StreamPosition) => void) | undefined
}

/** What a connection gets from a channel's history as it opens (hub.recover). */
export interface OpenRecovery extends StreamPosition {
  label: string
  recovered: boolean
  /** The missed messages, framed for the channel's facility, oldest first. */
  frames: Buffer[]
}

/** Settles with every one of `work` (one alone is returned as it is); null for none. */
function allOf(work: Promise<void>[]): Promise<void> | null {
  if (work.length <= 1) return work[0] ?? null
  return Promise.all(work).then(() => {})
}

class ChannelState {
  readonly recipients = new Set<Recipient>()
  history: ChannelHistory | null = null
  /** A channel belongs to one facility, so all its recipients want the same wire format. */
  constructor(readonly format: WireFormat) {}
  /** What Redis has confirmed. */
  subscribed = false
  /** The SUBSCRIBE or UNSUBSCRIBE in flight, if any: one at a time per channel. */
  pending: Promise<void> | null = null
}

/**
 * Per process: channel → recipients. Subscribes each channel once however many connections want
 * it, unsubscribes it when the last one leaves, and frames each message once for all of them.
 */
export class Hub {
  readonly #engine: EngineTransport & EngineMembership & EngineHistory
  readonly #channels = new Map<string, ChannelState>()
  readonly #onError: (err: unknown) => void
  readonly #prefix: string
  readonly #source: HistorySource
  /** Reads of channel history from the engine (recoveries, repairs, catch-ups). */
  historyReads = 0
  /** Messages received from the engine for at least one local recipient (each framed once). */
  messages = 0
  /** Frames handed to recipients (one per recipient per message). */
  deliveries = 0
  /**
   * Messages of one channel received (or, with history, put in order) one after the other,
   * delivered together once the engine's read is done (a microtask) or as soon as anything else
   * could tell the difference (`settle`): a burst of M messages to N recipients costs N calls,
   * not N × M.
   */
  #run: Run<ChannelState> | null = null
  #settleQueued = false
  readonly #settleTask = (): void => {
    this.#settleQueued = false
    this.settle()
  }

  constructor(
    engine: EngineTransport & EngineMembership & EngineHistory,
    onError: (err: unknown) => void,
    prefix = '',
  ) {
    this.#engine = engine
    this.#onError = onError
    this.#prefix = prefix
    this.#source = {
      readHistory: (channel, since, limit) => {
        this.historyReads++
        return engine.readHistory(channel, since, limit)
      },
      barrier: () => engine.barrier(),
    }
    engine.onMessage((channel, payload) => this.#dispatch(channel, payload))
    engine.onStatus((status) => status === 'ready' && this.#resync())
  }

  /**
   * After Redis came back. node-redis has already resubscribed, in one SUBSCRIBE, every channel
   * whose SUBSCRIBE it had confirmed (exactly the channels marked `subscribed` here), so nothing
   * needed is subscribed twice. What failed during the outage is redone: an UNSUBSCRIBE rejected
   * while Redis was down (the last recipient left then) leaves the channel subscribed, and it is
   * unsubscribed now; a failed SUBSCRIBE still wanted is sent again.
   */
  #resync(): void {
    for (const [channel, state] of this.#channels) {
      // Channels with history catch up on what was published while the subscription was away.
      if (state.subscribed && state.recipients.size > 0) state.history?.catchUp()
      if (state.pending || state.subscribed === state.recipients.size > 0) continue
      this.#reconcile(channel).catch(this.#onError)
    }
  }

  /** Number of channels with at least one local recipient. */
  get channelCount(): number {
    let n = 0
    for (const state of this.#channels.values()) if (state.recipients.size > 0) n++
    return n
  }

  /**
   * Registers `recipient` on `channels` and resolves once every one is subscribed in Redis and
   * counted for publishers everywhere. Messages reach the recipient from the moment it is registered.
   */
  async add(
    recipient: Recipient,
    channels: readonly string[],
    format: WireFormat = 'raw',
    history: HistoryOptions | null = null,
  ): Promise<void> {
    const { subscribed, counted } = this.register(recipient, channels, format, history)
    await Promise.all([subscribed, counted])
  }

  /**
   * `add` in two parts: `subscribed` resolves once every channel is subscribed in Redis (what a
   * read of stored messages must wait for; null when all of them already are), `counted` once the
   * receiver counts are written (an upgrade reads while they are). Both must be awaited; a
   * rejection of either is the caller's (`counted` is marked handled: it may be awaited last).
   */
  register(
    recipient: Recipient,
    channels: readonly string[],
    format: WireFormat = 'raw',
    history: HistoryOptions | null = null,
  ): { subscribed: Promise<void> | null; counted: Promise<void> } {
    // What arrived before the recipient came is not its to receive.
    this.settle()
    const subscribing: Promise<void>[] = []
    const counting: Promise<void>[] = []
    for (const channel of channels) {
      let state = this.#channels.get(channel)
      if (!state) {
        this.#channels.set(channel, (state = new ChannelState(format)))
        if (history) state.history = this.#history(channel, state, history)
      }
      state.recipients.add(recipient)
      // Already subscribed with nothing in flight: nothing to wait for.
      if (!state.subscribed || state.pending) subscribing.push(this.#reconcile(channel))
      counting.push(this.#engine.setLocalCount(channel, state.recipients.size))
    }
    const counted = allOf(counting) ?? Promise.resolve()
    // Awaited by the caller after the rest: until then a failure must not go unhandled. The
    // registrations of one moment share one count write, and so one handler.
    if (counted !== this.#lastCounted) {
      counted.catch(() => {})
      this.#lastCounted = counted
    }
    return { subscribed: allOf(subscribing), counted }
  }

  /** The last count write `register` marked handled. */
  #lastCounted: Promise<void> | null = null

  /**
   * Unregisters `recipient` at once; channels nobody else needs are unsubscribed in the
   * background. Resolves once the new receiver counts are visible to publishers everywhere
   * (failures are reported, never thrown: Redis gets the counts again when it comes back).
   */
  remove(recipient: Recipient, channels: readonly string[]): Promise<void> {
    this.settle()
    const counted: Promise<void>[] = []
    for (const channel of channels) {
      const state = this.#channels.get(channel)
      if (!state || !state.recipients.delete(recipient)) continue
      counted.push(this.#engine.setLocalCount(channel, state.recipients.size).catch(this.#onError))
      if (state.recipients.size === 0) this.#reconcile(channel).catch(this.#onError)
    }
    return Promise.all(counted).then(() => {})
  }

  /**
   * Brings Redis in line with what recipients want, one operation at a time: a SUBSCRIBE is never
   * sent while an UNSUBSCRIBE of the same channel is pending, or the other way round.
   */
  async #reconcile(channel: string): Promise<void> {
    for (;;) {
      const state = this.#channels.get(channel)
      if (!state) return
      if (state.pending) {
        await state.pending.catch(() => {})
        continue
      }
      const want = state.recipients.size > 0
      if (want === state.subscribed) {
        if (!want) {
          this.#channels.delete(channel)
          state.history?.close()
        }
        return
      }
      const op = want ? this.#engine.subscribe(channel) : this.#engine.unsubscribe(channel)
      state.pending = op.then(
        () => {
          state.subscribed = want
          state.pending = null
          // Subscribed again while its history lived on (the UNSUBSCRIBE was in flight when a
          // recipient came, or a SUBSCRIBE failed during an outage): what was published while
          // unsubscribed is read from history. A channel not seen yet has nothing to catch up.
          if (want) state.history?.catchUp()
        },
        (err: unknown) => {
          state.pending = null
          throw err
        },
      )
      await state.pending
    }
  }

  #dispatch(channel: string, raw: Buffer): number {
    const state = this.#channels.get(channel)
    if (!state || state.recipients.size === 0) return 0
    if (state.history) {
      const message = decodeChannelMessage(raw)
      // With a position it goes through the channel's history (order, gaps); a plain PUBLISH
      // (a Django publisher, redis-cli) is delivered live as it is.
      if (message.epoch !== null) {
        state.history.receive(message as Sequenced)
        return state.recipients.size
      }
      raw = message.payload
    }
    this.#add(channel, state, raw, frameFor(state.format, raw), 0, undefined)
    return state.recipients.size
  }

  /** Adds a message to the run of its channel (after delivering that of another channel). */
  #add(
    channel: string,
    state: ChannelState,
    payload: Buffer,
    framed: Buffer,
    offset: number,
    position: HistoryPosition | undefined,
  ): void {
    const run = this.#run
    if (run !== null && run.state === state) return run.push(payload, framed, offset, position)
    this.settle()
    this.#run = new Run(channel, state, payload, framed, offset, position)
    if (!this.#settleQueued) {
      this.#settleQueued = true
      queueMicrotask(this.#settleTask)
    }
  }

  /**
   * Delivers the messages received and not delivered yet. The hub calls it before anything that
   * changes who receives what or in which order (recipients coming and going, a message of another
   * channel, a channel's history lost); a connection calls it before it queues a frame of its own,
   * closes or opens.
   */
  settle(): void {
    const run = this.#run
    if (run === null) return
    this.#run = null
    const { channel, state, payloads, frames, places } = run
    const count = payloads.length
    this.messages += count
    this.deliveries += count * state.recipients.size
    if (count === 1) {
      const payload = payloads[0]!
      const framed = frames[0]!
      const offset = places ? places.offsets[0]! : 0
      const position = places?.positions[0]
      for (const recipient of state.recipients)
        recipient.deliver(channel, payload, framed, offset, position)
      return
    }
    for (const recipient of state.recipients) {
      if (recipient.deliverRun) recipient.deliverRun(channel, payloads, frames, run.bytes, places)
      else
        for (let i = 0; i < count; i++) {
          const offset = places ? places.offsets[i]! : 0
          recipient.deliver(channel, payloads[i]!, frames[i]!, offset, places?.positions[i])
        }
    }
  }

  /** The history side of a new channel state, delivering to its recipients. */
  #history(channel: string, state: ChannelState, options: HistoryOptions): ChannelHistory {
    const label = channelLabel(this.#prefix, channel)
    const json = state.format === 'json'
    return new ChannelHistory(channel, label, options, this.#source, {
      deliver: (m) => {
        const position = json ? { channel: label, epoch: m.epoch, offset: m.offset } : undefined
        const framed = frameFor(state.format, m.payload, position)
        this.#add(channel, state, m.payload, framed, m.offset, position)
      },
      lost: (position) => {
        this.settle()
        for (const r of state.recipients) r.historyLost?.(channel, label, position)
      },
      error: this.#onError,
    })
  }

  /**
   * What a connection registered on `channel` gets from its history as it opens: what it missed
   * since `since` of `epoch` (or only the position, with `since` null), framed. Null when the
   * channel has no history.
   */
  async recover(
    channel: string,
    since: number | null,
    epoch: string | null,
  ): Promise<OpenRecovery | null> {
    const state = this.#channels.get(channel)
    const history = state?.history
    if (!state || !history) return null
    const r = await history.recover(since, epoch)
    const json = state.format === 'json'
    const label = history.label
    const frames = r.entries.map(
      (e) =>
        (e.framed ??= frameFor(
          state.format,
          e.payload,
          json ? { channel: label, epoch: r.epoch, offset: e.offset } : undefined,
        )),
    )
    return { label, epoch: r.epoch, offset: r.offset, recovered: r.recovered, frames }
  }
}
