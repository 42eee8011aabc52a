import type { WebSocket } from 'ws'
import { CloseCode } from '../close-codes.js'
import type { MembershipFrame } from '../delivery/envelope.js'
import type { FacilityContext } from '../facility/definition.js'
import { handleClientMessage, type InboundTarget } from './inbound.js'
import { Outbound } from './outbound.js'
import type { PausedReader } from './publish-budget.js'
import { bucketFor, type TokenBucket } from './rate-limit.js'

/**
 * The inbound side of a connection (between its outbound base and its owner): what the client
 * sends goes through the protocol (connection/inbound.ts), the rate limit and the facility's
 * onMessage — one message at a time, in order — and is published on the connection's publish
 * channels within the publish budget: past it, the socket is not read until Redis answers (and
 * the heartbeat does not take the client for dead meanwhile).
 */
export abstract class Publishing extends Outbound implements InboundTarget, PausedReader {
  protected ws: WebSocket | null = null
  protected context: FacilityContext | null = null
  /**
   * The publish rate's bucket, made by the first client message (a bucket starts full and fills
   * up to full, so one made then holds what one made at the upgrade would): most connections
   * never send, and cost nothing for it. Null: no rate limit.
   */
  #bucket: TokenBucket | null | undefined = undefined
  protected alive = true
  #tokenAuthenticated = false
  /** The client messages going through an async onMessage, one at a time, in order. */
  #inbound: Promise<void> | null = null
  #inFlight = 0
  #paused = false

  /** Accepts a fresh JWT (rejects with a TokenError). */
  abstract refreshToken(token: string): Promise<void>

  /** A client's join or leave frame (subscribing.ts). */
  abstract membershipFrame(frame: MembershipFrame): void

  get tokenAuthenticated(): boolean {
    return this.#tokenAuthenticated
  }

  protected set tokenAuthenticated(value: boolean) {
    this.#tokenAuthenticated = value
  }

  /** A message from the client. */
  received(data: Buffer, isBinary: boolean): void {
    this.alive = true
    if (this.phase !== 'open') return
    handleClientMessage(this, this.services.options.heartbeat, data, isBinary)
  }

  /** A pong from the client. */
  answered(): void {
    this.alive = true
  }

  takeToken(): boolean {
    let bucket = this.#bucket
    if (bucket === undefined) {
      const settings = this.settings!
      bucket = this.#bucket = bucketFor(settings.publishRate, settings.publishBurst)
    }
    return bucket === null || bucket.take()
  }

  offer(message: unknown, payload: Buffer, text = false): void {
    const hook = this.settings!.definition?.onMessage
    if (!hook) return this.#publish(payload)
    const connection = this.connection!
    const context = this.context!
    // A message waiting for the hook counts against the budget too, until it is published (then
    // its publish counts) or dropped: an async hook that waits on something slow would otherwise
    // queue the client's messages without bound.
    const held = payload.length
    this.#hold(held)
    const step = async (): Promise<void> => {
      let pass: boolean
      try {
        const value = text ? (message as Buffer).toString('utf8') : message
        pass = (await hook(connection, value, context)) !== false
      } catch (err) {
        this.services.error(err)
        pass = false
      }
      try {
        if (pass) this.#publish(payload)
      } finally {
        this.#release(held)
      }
    }
    const next = (this.#inbound ?? Promise.resolve()).then(step)
    this.#inbound = next
    void next.then(() => {
      if (this.#inbound === next) this.#inbound = null
    })
    if (this.#over()) this.#pause()
  }

  /** Publishes a client message on the connection's publish channels (never echoing it without
   * `echo`), counting its bytes in flight until Redis answered for every channel. */
  #publish(payload: Buffer): void {
    const services = this.services
    const settings = this.settings!
    const connection = this.connection!
    const { expire, history } = settings
    if ((expire > 0 || history) && payload.length > settings.maxStoredMessage) {
      const detail = `messages stored on this facility are limited to ${settings.maxStoredMessage} bytes`
      if (this.format === 'json')
        this.sendFrame({ type: 'error', code: 'message_too_large', detail })
      else this.close(CloseCode.TOO_BIG, 'message too large to store')
      return
    }
    services.received()
    const channels = connection.channels.publish
    if (channels.length === 0) return
    const cost = payload.length * channels.length
    this.#hold(cost)
    let left = channels.length
    const done = (): void => {
      if (--left > 0) return
      this.#release(cost)
    }
    for (const channel of channels) {
      const forget =
        !connection.echo && connection.channels.subscribe.includes(channel)
          ? this.expectOwn(channel, payload)
          : null
      services.publish(channel, payload, expire, history).then(done, (err: unknown) => {
        forget?.()
        services.error(err)
        this.close(CloseCode.INTERNAL, 'publish failed')
        done()
      })
    }
    if (this.#over()) this.#pause()
  }

  /** Counts `bytes` of this connection's messages in flight, here and in the process's budget. */
  #hold(bytes: number): void {
    this.#inFlight += bytes
    this.services.budget.take(bytes)
  }

  /** Gives `bytes` back (answered, or dropped) and resumes reading if the budgets allow. */
  #release(bytes: number): void {
    this.#inFlight -= bytes
    this.services.budget.give(bytes)
    this.maybeResume()
  }

  /** True while this connection, or the whole process, is past its budget. */
  #over(): boolean {
    const budget = this.services.budget
    return this.#inFlight >= budget.perConnection || budget.exhausted
  }

  #pause(): void {
    if (this.#paused || this.phase !== 'open') return
    this.#paused = true
    this.services.budget.wait(this)
    this.ws?.pause()
  }

  /** Resumes reading once under budget; a connection that is closing reads again at once, so
   * that the client's close frame behind its unread messages can complete the close. */
  maybeResume(): void {
    if (!this.#paused) return
    if (this.phase === 'open' && this.#over()) return
    this.#paused = false
    this.services.budget.unwait(this)
    // Pongs could not be read while paused: the heartbeat gives the client a full interval again.
    this.alive = true
    this.ws?.resume()
  }

  /** True while the socket is not read because of the budget (pongs cannot arrive meanwhile). */
  protected get readingPaused(): boolean {
    return this.#paused
  }

  /** Leaves the budget's waiting list for good (the connection is released). */
  protected stopReading(): void {
    if (this.#paused) this.services.budget.unwait(this)
    this.#paused = false
  }
}
