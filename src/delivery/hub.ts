import type { WireFormat } from '../facility/definition.js'
import { frameFor } from './frame.js'
import type { EngineMembership, EngineTransport } from '../engine/types.js'

/** What the hub delivers to: one live or pending connection. */
export interface Recipient {
  /** Takes one message of `channel`: `payload` as read from Redis, `framed` ready to write. */
  deliver(channel: string, payload: Buffer, framed: Buffer): void
}

class ChannelState {
  readonly recipients = new Set<Recipient>()
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
  readonly #engine: EngineTransport & EngineMembership
  readonly #channels = new Map<string, ChannelState>()
  readonly #onError: (err: unknown) => void
  /** Messages received from the engine for at least one local recipient (each framed once). */
  messages = 0
  /** Frames handed to recipients (one per recipient per message). */
  deliveries = 0

  constructor(engine: EngineTransport & EngineMembership, onError: (err: unknown) => void) {
    this.#engine = engine
    this.#onError = onError
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
  ): Promise<void> {
    const work: Promise<void>[] = []
    for (const channel of channels) {
      let state = this.#channels.get(channel)
      if (!state) this.#channels.set(channel, (state = new ChannelState(format)))
      state.recipients.add(recipient)
      work.push(this.#reconcile(channel))
      work.push(this.#engine.setLocalCount(channel, state.recipients.size))
    }
    await Promise.all(work)
  }

  /** Unregisters `recipient`; channels nobody else needs are unsubscribed in the background. */
  remove(recipient: Recipient, channels: readonly string[]): void {
    for (const channel of channels) {
      const state = this.#channels.get(channel)
      if (!state || !state.recipients.delete(recipient)) continue
      this.#engine.setLocalCount(channel, state.recipients.size).catch(this.#onError)
      if (state.recipients.size === 0) this.#reconcile(channel).catch(this.#onError)
    }
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
        if (!want) this.#channels.delete(channel)
        return
      }
      const op = want ? this.#engine.subscribe(channel) : this.#engine.unsubscribe(channel)
      state.pending = op.then(
        () => {
          state.subscribed = want
          state.pending = null
        },
        (err: unknown) => {
          state.pending = null
          throw err
        },
      )
      await state.pending
    }
  }

  #dispatch(channel: string, payload: Buffer): number {
    const state = this.#channels.get(channel)
    if (!state || state.recipients.size === 0) return 0
    const framed = frameFor(state.format, payload)
    this.messages++
    this.deliveries += state.recipients.size
    for (const recipient of state.recipients) recipient.deliver(channel, payload, framed)
    return state.recipients.size
  }
}
