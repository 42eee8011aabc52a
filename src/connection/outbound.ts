import type { Duplex } from 'node:stream'
import { CloseCode } from '../close-codes.js'
import { type HistoryPosition, type ServerFrame, serverFrame } from '../delivery/envelope.js'
import { frame, frameFor, messageFrame } from '../delivery/frame.js'
import type { Recipient } from '../delivery/hub.js'
import type { RunPlaces } from '../delivery/run.js'
import type { Message } from '../delivery/payload.js'
import type { WireFormat } from '../facility/definition.js'
import type { FacilitySettings } from '../facility/settings.js'
import type { Connection, ConnectionState } from './connection.js'
import type { Flushable } from './flush-scheduler.js'
import type { ConnectionServices } from './services.js'
import { lostFrame, type Recoveries, recoveredFrame } from '../history/recovery.js'
import type { StreamPosition } from '../history/wire.js'

/** A message that arrived before the handshake completed. */
interface Held {
  channel: string
  payload: Buffer
  framed: Buffer
  /** Its offset in the channel's history (0 without history). */
  offset: number
  /** Not a message: the channel's history was lost here; delivery goes on from `position`. */
  lost?: { label: string; position: StreamPosition }
}

const NOTHING = Buffer.alloc(0)

/**
 * The outbound side of a connection (the base of its owner): messages held while it upgrades, the
 * frames queued in one event-loop turn and written in one go, within a bounded buffer, and the
 * bookkeeping that keeps a client's own messages from coming back to it.
 */
export abstract class Outbound implements Recipient, Flushable {
  readonly services: ConnectionServices
  protected readonly socket: Duplex
  protected phase: ConnectionState = 'upgrading'
  /** The public face of this connection, once the upgrade knows who it is. */
  connection: Connection | null = null
  protected settings: FacilitySettings | null = null
  /** Messages that arrived before the handshake completed; created when the first one does. */
  #held: Held[] | null = null
  #heldBytes = 0
  /**
   * Frames waiting for this turn's flush: the first one as it is (most turns queue one frame for a
   * socket when each client has a channel of its own), an array from the second on.
   */
  #queue: Buffer | Buffer[] | null = null
  /** `#queue` is a run's frames, shared with the channel's other recipients (copied to grow). */
  #queueShared = false
  #queued = 0
  /** The flush scheduler's mark (flush-scheduler.ts). */
  flushPending = false
  /** Payloads this connection published and will see again on channels it subscribes (no echo). */
  #own: Map<string, Buffer[]> | null = null
  #dropped = 0
  /** Messages of channels joined live, held while their history is read (holdChannel). */
  #joining: Map<string, Held[]> | null = null

  constructor(services: ConnectionServices, socket: Duplex) {
    this.services = services
    this.socket = socket
  }

  /** Closes the connection (the owner's close; a slow consumer is closed with 1013). */
  abstract close(code: number, reason: string): void

  /** Ends an upgrade whose held messages passed the bound under the `close` policy. */
  protected abstract overflowWhileUpgrading(): void

  get format(): WireFormat {
    return this.settings?.format ?? 'raw'
  }

  /** Frames dropped under the `drop` slow-consumer policy. */
  get dropped(): number {
    return this.#dropped
  }

  deliver(
    channel: string,
    payload: Buffer,
    framed: Buffer,
    offset: number,
    position?: HistoryPosition,
  ): void {
    const phase = this.phase
    if (phase === 'closed' || phase === 'closing') return
    const own = this.#own?.get(channel)
    if (own && own.length > 0 && own[0]!.equals(payload)) {
      own.shift()
      // Not echoed, but the client's position moves past it: a recovery after a reconnect must
      // not send the client its own message back.
      if (position && phase === 'open') this.sendFrame({ type: 'position', ...position })
      return
    }
    if (phase === 'upgrading') this.#hold(channel, payload, framed, offset)
    else if (this.#joining?.has(channel))
      this.#joining.get(channel)!.push({ channel, payload, framed, offset })
    else this.#enqueue(framed)
  }

  deliverRun(
    channel: string,
    payloads: readonly Buffer[],
    frames: readonly Buffer[],
    bytes: number,
    places: RunPlaces | null,
  ): void {
    // The common case at once: an open connection with nothing of its own to expect and room for
    // all of it takes the shared frames as its queue, or adds them to what it queued this turn.
    if (
      this.phase === 'open' &&
      this.#joining?.has(channel) !== true &&
      (this.#own?.get(channel)?.length ?? 0) === 0 &&
      this.#queued + this.socket.writableLength + bytes <= this.settings!.maxBufferedBytes
    ) {
      const queue = this.#queue
      this.#queued += bytes
      if (queue === null) {
        this.#queue = frames as Buffer[]
        this.#queueShared = true
        this.services.scheduler.schedule(this, this.settings!.writeDelay)
        return
      }
      // Several reads of one turn each gave a run (the flush waits for the loop's I/O).
      const list = !Array.isArray(queue) ? [queue] : this.#queueShared ? queue.slice() : queue
      for (let i = 0; i < frames.length; i++) list.push(frames[i]!)
      this.#queue = list
      this.#queueShared = false
      return
    }
    for (let i = 0; i < payloads.length; i++) {
      const offset = places ? places.offsets[i]! : 0
      this.deliver(channel, payloads[i]!, frames[i]!, offset, places?.positions[i])
    }
  }

  /**
   * Holds live messages of `channel`, just joined, until `endHold`: its history is read meanwhile,
   * and what it gives must come first.
   */
  protected holdChannel(channel: string): void {
    ;(this.#joining ??= new Map()).set(channel, [])
  }

  /**
   * Sends what a join's history read gave (`frames`), then `answer`, then the live messages held
   * meanwhile that come after `offset` (or carry none).
   */
  protected endHold(
    channel: string,
    frames: readonly Buffer[],
    answer: ServerFrame | null,
    offset: number,
  ): void {
    const held = this.#joining?.get(channel) ?? []
    this.#joining?.delete(channel)
    if (this.phase !== 'open') return
    for (const f of frames) this.#enqueue(f)
    if (answer) this.sendFrame(answer)
    for (const h of held) if (h.offset === 0 || h.offset > offset) this.#enqueue(h.framed)
  }

  /** A json client is told when a channel's history was lost while it was connected. */
  historyLost(channel: string, label: string, position: StreamPosition): void {
    if (this.format !== 'json') return
    if (this.phase === 'open') this.sendFrame(lostFrame(label, position))
    // While upgrading, the loss takes its place among the held messages (startDelivery).
    else if (this.phase === 'upgrading')
      (this.#held ??= []).push({
        channel,
        payload: NOTHING,
        framed: NOTHING,
        offset: 0,
        lost: { label, position },
      })
  }

  /** Keeps a message for after the handshake, within the same bound as unsent frames. */
  #hold(channel: string, payload: Buffer, framed: Buffer, offset: number): void {
    const settings = this.settings!
    if (this.#heldBytes + framed.length > settings.maxBufferedBytes) {
      if (settings.slowConsumer === 'drop') {
        this.#dropped++
        return
      }
      this.services.slowConsumerClosed()
      this.overflowWhileUpgrading()
      return
    }
    ;(this.#held ??= []).push({ channel, payload, framed, offset })
    this.#heldBytes += framed.length
    this.services.registry.heldBytes += framed.length
  }

  /**
   * Queues what the connection starts with once open: stored messages first (skipping any the
   * live stream already carried), then what it missed from history and, on json facilities, the
   * `recovered` frame with its positions, then what arrived while upgrading (but what history
   * already gave). A history lost while upgrading is told there, in its place (unless the
   * recovery was answered after it), and the messages after it are all sent: their offsets are
   * of the new epoch.
   */
  protected startDelivery(
    stored: ReadonlyMap<string, Buffer>,
    recoveries: Recoveries | null,
  ): void {
    const held = this.#held ?? []
    this.dropHeld()
    for (const [channel, payload] of stored) {
      if (held.some((h) => !h.lost && h.channel === channel && h.payload.equals(payload))) continue
      this.#enqueue(frameFor(this.format, payload))
    }
    const recovered = recoveries?.channels
    if (recovered && recovered.size > 0) {
      for (const r of recovered.values()) for (const f of r.frames) this.#enqueue(f)
      if (this.format === 'json') this.sendFrameNow(recoveredFrame(recoveries))
    }
    let lost: Set<string> | null = null
    for (const h of held) {
      const r = recovered?.get(h.channel)
      if (h.lost) {
        const p = h.lost.position
        // Answered after the loss: the recovered frame already stands in the new epoch.
        if (r && r.epoch === p.epoch && r.offset >= p.offset) continue
        ;(lost ??= new Set()).add(h.channel)
        this.sendFrameNow(lostFrame(h.lost.label, p))
        continue
      }
      if (r?.recovered && h.offset !== 0 && h.offset <= r.offset && !lost?.has(h.channel)) continue
      this.#enqueue(h.framed)
    }
  }

  /** Queues an envelope frame whatever the phase (the connection is about to open). */
  protected sendFrameNow(value: ServerFrame): void {
    this.#enqueue(frame(Buffer.from(serverFrame(value), 'utf8'), false))
  }

  /** Forgets held messages and gives their bytes back to the registry's count. */
  protected dropHeld(): void {
    this.services.registry.heldBytes -= this.#heldBytes
    this.#heldBytes = 0
    this.#held = null
  }

  /** Forgets queued frames and expected own payloads (the connection is closing). */
  protected dropQueue(): void {
    this.#queue = null
    this.#queueShared = false
    this.#queued = 0
    this.#own = null
    this.#joining = null
  }

  /** Queues one text frame as is (a heartbeat answer, an envelope frame). */
  sendText(text: string): void {
    if (this.phase === 'open') this.#enqueue(frame(Buffer.from(text, 'utf8'), false))
  }

  send(message: Message): void {
    if (this.phase === 'open') this.#enqueue(messageFrame(this.format, message))
  }

  sendFrame(value: ServerFrame): void {
    this.sendText(serverFrame(value))
  }

  #enqueue(framed: Buffer): void {
    // Messages the hub has not delivered yet came first (a no-op while it delivers).
    this.services.hub.settle()
    const settings = this.settings!
    if (this.#queued + this.socket.writableLength + framed.length > settings.maxBufferedBytes) {
      if (settings.slowConsumer === 'drop') {
        this.#dropped++
        return
      }
      this.services.slowConsumerClosed()
      this.close(CloseCode.TRY_AGAIN_LATER, 'client too slow')
      return
    }
    this.#queued += framed.length
    const queue = this.#queue
    if (queue === null) {
      this.#queue = framed
      this.services.scheduler.schedule(this, settings.writeDelay)
    } else if (!Array.isArray(queue)) this.#queue = [queue, framed]
    else if (this.#queueShared) {
      this.#queue = [...queue, framed]
      this.#queueShared = false
    } else queue.push(framed)
  }

  /** Writes every queued frame in one go. */
  flush(): void {
    const queue = this.#queue
    if (!queue) return
    this.#queue = null
    this.#queueShared = false
    this.#queued = 0
    const socket = this.socket
    if (socket.destroyed || !socket.writable) return
    // One write per turn: each write to a socket costs a syscall and stream bookkeeping, whatever
    // its size. The frames are written under `ws`, which is why permessage-deflate stays off.
    socket.write(Array.isArray(queue) ? this.services.scheduler.joined(queue) : queue)
  }

  /**
   * Notes a payload this connection is about to publish on `channel`, so that its own copy is not
   * delivered back to it. Returns a function that forgets it again (when the publish failed).
   */
  protected expectOwn(channel: string, payload: Buffer): () => void {
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
}
