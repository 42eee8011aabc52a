import type { Duplex } from 'node:stream'
import type { WebSocket } from 'ws'
import type { Identity } from '../identity/identity.js'
import type { Recipient } from '../delivery/hub.js'
import { type ServerFrame, serverFrame } from '../delivery/envelope.js'
import type { WireFormat } from '../facility/definition.js'
import { encodeMessage, type Message } from '../delivery/payload.js'
import { frame, frameFor } from '../delivery/frame.js'
import type { FlushScheduler } from './flush-scheduler.js'
import type { ConnectionChannels } from '../channels/redis-subscriber.js'

/** What happens to a client whose unread frames pass `maxBufferedBytes`. */
export type SlowConsumerPolicy = 'close' | 'drop'

/** Close codes the broker uses. */
export const CloseCode = {
  /** The server is going away (shutdown). */
  GOING_AWAY: 1001,
  /** A message broke a rule (e.g. publish without permission). */
  POLICY: 1008,
  /** A frame larger than `maxPayload`. */
  TOO_BIG: 1009,
  /** The server failed (e.g. Redis rejected a publish). */
  INTERNAL: 1011,
  /** The server is restarting (`close({ code: 1012 })`): reconnect soon. */
  SERVICE_RESTART: 1012,
  /** The client did not read fast enough and its queue filled up. */
  TRY_AGAIN_LATER: 1013,
  /** The JWT that authenticated the connection expired and no fresh one arrived in-band. */
  TOKEN_EXPIRED: 4001,
} as const

/** How a broker's connections write: the same object for all of them. */
export interface Delivery {
  maxBufferedBytes: number
  slowConsumer: SlowConsumerPolicy
  scheduler: FlushScheduler
  onSlowConsumer: (connection: Connection) => void
}

/** Fixed facts of a connection, decided before the upgrade. */
export interface ConnectionInit {
  id: string
  facility: string
  /** Values of the facility pattern's `{params}`. */
  params: Record<string, string>
  format: WireFormat
  identity: Identity
  channels: ConnectionChannels
  echo: boolean
  /** Shared by every connection of the broker (not one copy each: idle connections add up). */
  delivery: Delivery
}

type State = 'pending' | 'open' | 'closed'

/**
 * One client. Before the handshake completes it holds messages of its already-live subscriptions;
 * once open it queues frames and writes them once per event-loop turn, within a bounded buffer.
 */
export class Connection implements Recipient {
  readonly id: string
  readonly facility: string
  /** Values of the facility pattern's `{params}`. */
  readonly params: Record<string, string>
  /** `raw` or `json`, from the facility definition. */
  readonly format: WireFormat
  readonly identity: Identity
  readonly channels: ConnectionChannels
  readonly echo: boolean
  /** When the connection was accepted (ms since the epoch). */
  readonly since = Date.now()
  readonly #delivery: Delivery
  #state: State = 'pending'
  #ws: WebSocket | null = null
  #socket: Duplex | null = null
  /** Messages that arrived before the handshake completed; created when the first one does. */
  #held: { channel: string; payload: Buffer; framed: Buffer }[] | null = null
  /** Frames waiting for this turn's flush; created by the first one. */
  #queue: Buffer[] | null = null
  #queued = 0
  /** Payloads this connection published and will see again on channels it subscribes (no echo). */
  #own: Map<string, Buffer[]> | null = null
  /** Set on every pong or message, cleared on every ping. */
  alive = true
  /** Frames dropped under the `drop` slow-consumer policy. */
  dropped = 0
  /** True when a JWT authenticated this connection (it may then refresh its token in-band). */
  tokenAuthenticated = false
  /** When the token that authenticated this connection expires (ms since the epoch), or null. */
  expiresAt: number | null = null
  #expiryTimer: NodeJS.Timeout | null = null

  constructor(init: ConnectionInit) {
    this.#delivery = init.delivery
    this.id = init.id
    this.facility = init.facility
    this.params = init.params
    this.format = init.format
    this.identity = init.identity
    this.channels = init.channels
    this.echo = init.echo
  }

  get isOpen(): boolean {
    return this.#state === 'open'
  }

  get ws(): WebSocket | null {
    return this.#ws
  }

  deliver(channel: string, payload: Buffer, framed: Buffer): void {
    if (this.#state === 'closed') return
    const own = this.#own?.get(channel)
    if (own && own.length > 0 && own[0]!.equals(payload)) {
      own.shift()
      return
    }
    if (this.#state === 'pending') (this.#held ??= []).push({ channel, payload, framed })
    else this.#enqueue(framed)
  }

  /**
   * Completes the connection: stored messages first (skipping any the live stream already
   * carried), then what arrived while pending, then live traffic.
   */
  open(ws: WebSocket, socket: Duplex, stored: ReadonlyMap<string, Buffer>): void {
    if (this.#state !== 'pending') return
    this.#ws = ws
    this.#socket = socket
    this.#state = 'open'
    const held = this.#held ?? []
    this.#held = null
    for (const [channel, payload] of stored) {
      if (held.some((h) => h.channel === channel && h.payload.equals(payload))) continue
      this.#enqueue(frameFor(this.format, payload))
    }
    for (const h of held) this.#enqueue(h.framed)
  }

  /** Queues one text frame as is (a heartbeat answer, an envelope frame). */
  sendText(text: string): void {
    if (this.#state === 'open') this.#enqueue(frame(Buffer.from(text, 'utf8'), false))
  }

  /**
   * Sends a message to this client only, in the facility's format: text, bytes, or an object
   * (JSON); on a `json` facility wrapped as `{"type":"data","data":…}`.
   */
  send(message: Message): void {
    if (this.#state === 'open') this.#enqueue(frameFor(this.format, encodeMessage(message)))
  }

  /** Sends one envelope frame (`json` facilities: pong, error, join/leave). */
  sendFrame(value: ServerFrame): void {
    this.sendText(serverFrame(value))
  }

  /**
   * Notes a payload this connection is about to publish on `channel`, so that its own copy is not
   * delivered back to it. Returns a function that forgets it again (when the publish failed).
   */
  expectOwn(channel: string, payload: Buffer): () => void {
    this.#own ??= new Map()
    let list = this.#own.get(channel)
    if (!list) this.#own.set(channel, (list = []))
    list.push(payload)
    return () => {
      const i = list.indexOf(payload)
      if (i !== -1) list.splice(i, 1)
    }
  }

  /** Forgets expected own payloads (after the subscriber connection lost messages). */
  forgetOwn(): void {
    this.#own = null
  }

  #enqueue(framed: Buffer): void {
    const socket = this.#socket
    if (!socket) return
    const delivery = this.#delivery
    if (this.#queued + socket.writableLength + framed.length > delivery.maxBufferedBytes) {
      if (delivery.slowConsumer === 'drop') {
        this.dropped++
        return
      }
      delivery.onSlowConsumer(this)
      return
    }
    this.#queued += framed.length
    if (this.#queue) this.#queue.push(framed)
    else {
      this.#queue = [framed]
      delivery.scheduler.schedule(this)
    }
  }

  /** Writes every queued frame in one go. */
  flush(): void {
    const socket = this.#socket
    const queue = this.#queue
    if (!queue) return
    this.#queue = null
    this.#queued = 0
    if (!socket || socket.destroyed || !socket.writable) return
    // One write per turn: each write to a socket costs a syscall and stream bookkeeping, whatever
    // its size.
    socket.write(queue.length === 1 ? queue[0]! : this.#delivery.scheduler.joined(queue))
  }

  /** Closes with `code` after writing what is queued. */
  close(code: number, reason = ''): void {
    if (this.#state === 'closed') return
    this.flush()
    this.#ws?.close(code, closeReason(reason))
    this.markClosed()
  }

  /** Drops the connection at once (dead peer). */
  terminate(): void {
    this.#ws?.terminate()
    this.#socket?.destroy()
    this.markClosed()
  }

  /** Calls `onExpire` at `expiresAt` (replacing an earlier expiry); null cancels. */
  setExpiry(expiresAt: number | null, onExpire: (connection: Connection) => void): void {
    if (this.#expiryTimer) clearTimeout(this.#expiryTimer)
    this.#expiryTimer = null
    this.expiresAt = expiresAt
    if (expiresAt === null || this.#state === 'closed') return
    // setTimeout holds at most ~24.8 days; longer expiries re-arm when that fires.
    const delay = Math.min(Math.max(0, expiresAt - Date.now()), 2 ** 31 - 1)
    this.#expiryTimer = setTimeout(() => {
      if (Date.now() >= expiresAt) onExpire(this)
      else this.setExpiry(expiresAt, onExpire)
    }, delay)
    this.#expiryTimer.unref()
  }

  /** Stops all delivery; idempotent. */
  markClosed(): void {
    if (this.#expiryTimer) clearTimeout(this.#expiryTimer)
    this.#expiryTimer = null
    this.#state = 'closed'
    this.#held = null
    this.#queue = null
    this.#queued = 0
    this.#own = null
  }
}

/** A close reason cut to the 123 bytes a close frame can carry, on a character boundary. */
export function closeReason(reason: string): string {
  if (Buffer.byteLength(reason) <= 123) return reason
  let cut = reason.slice(0, 123)
  while (Buffer.byteLength(cut) > 123) cut = cut.slice(0, -1)
  return cut
}
