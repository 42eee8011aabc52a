import type { ConnectionChannels } from '../channels/redis-subscriber.js'
import type { ServerFrame } from '../delivery/envelope.js'
import type { Message } from '../delivery/payload.js'
import type { WireFormat } from '../facility/definition.js'
import type { Identity } from '../identity/identity.js'
import type { JoinOutcome, JoinRequest } from './join-types.js'

/** Fixed facts of a connection, decided before the upgrade. */
export interface ConnectionFacts {
  id: string
  facility: string
  /** Values of the facility pattern's `{params}`. */
  params: Record<string, string>
  format: WireFormat
  identity: Identity
  channels: ConnectionChannels
  echo: boolean
}

/** A connection's state, from the first byte of its upgrade to its end. */
export type ConnectionState = 'upgrading' | 'open' | 'closing' | 'closed'

/**
 * What a Connection asks of the object that owns it (connection/owner.ts), and what the broker's
 * own modules may ask through `ownerOf`.
 */
export interface ConnectionHandle {
  readonly state: ConnectionState
  readonly expiresAt: number | null
  readonly tokenAuthenticated: boolean
  readonly dropped: number
  send(message: Message): void
  sendFrame(frame: ServerFrame): void
  close(code: number, reason: string): void
  /** Cuts the connection at once; `code` is what its disconnect reports (1006 by default). */
  terminate(code?: number): void
  /** Accepts a fresh JWT (rejects with a TokenError); the connection then lives until its expiry. */
  refreshToken(token: string): Promise<void>
  /** Forgets the payloads it expects back from its own publishes (after messages were lost). */
  forgetOwn(): void
  /** One liveness round: a connection that answered nothing since the last one is cut. */
  heartbeat(): void
  /** Resolves once the connection is closed and everything it held is released. */
  released(): Promise<void>
  /** Joins a channel of its facility by label (subscribing.ts); rejects when refused or closed. */
  join(label: string, request?: JoinRequest): Promise<JoinOutcome>
  /** Leaves a channel by label; resolves to whether it was listening to it. */
  leave(label: string): Promise<boolean>
  /** Takes a re-read identity of the same user and moves to its channels. */
  refreshIdentity(identity: Identity): Promise<boolean>
}

/** The owner behind a Connection, for the broker's own modules (not exported from the package). */
export let ownerOf: (connection: Connection) => ConnectionHandle

/** Sets a connection's identity and channels after a live join, leave or identity refresh (the
 * owner's, never the package's). */
export let updateConnection: (
  connection: Connection,
  identity: Identity,
  channels: ConnectionChannels,
) => void

/**
 * One client, as hooks, events and `broker.connections` see it: what it is (id, facility, identity,
 * channels) and what may be done with it (send, close). Its state and resources belong to its
 * owner inside the broker; nothing here can change them except through these methods.
 */
export class Connection {
  readonly id: string
  readonly facility: string
  /** Values of the facility pattern's `{params}`. */
  readonly params: Record<string, string>
  /** `raw` or `json`, from the facility definition. */
  readonly format: WireFormat
  #identity: Identity
  #channels: ConnectionChannels
  /** Whether the client receives its own messages back (the `echo` flag). */
  readonly echo: boolean
  /** When the connection was accepted (ms since the epoch). */
  readonly since = Date.now()
  readonly #owner: ConnectionHandle

  static {
    ownerOf = (connection) => connection.#owner
    updateConnection = (connection, identity, channels) => {
      connection.#identity = identity
      connection.#channels = channels
    }
  }

  /** @internal Made by the broker for each upgrade that got this far. */
  constructor(owner: ConnectionHandle, facts: ConnectionFacts) {
    this.#owner = owner
    this.id = facts.id
    this.facility = facts.facility
    this.params = facts.params
    this.format = facts.format
    this.#identity = facts.identity
    this.#channels = facts.channels
    this.echo = facts.echo
  }

  /** Who the client is: as resolved at the upgrade, or as `broker.refreshIdentity` re-read it. */
  get identity(): Identity {
    return this.#identity
  }

  /** The channels it listens to and publishes to now (live joins and leaves included). */
  get channels(): ConnectionChannels {
    return this.#channels
  }

  /** True from the completed handshake until a close starts. */
  get isOpen(): boolean {
    return this.#owner.state === 'open'
  }

  /** `upgrading`, `open`, `closing` (close frame sent) or `closed`. */
  get state(): ConnectionState {
    return this.#owner.state
  }

  /** When the token that authenticated this connection expires (ms since the epoch), or null. */
  get expiresAt(): number | null {
    return this.#owner.expiresAt
  }

  /** True when a JWT authenticated this connection (it may then refresh its token in-band). */
  get tokenAuthenticated(): boolean {
    return this.#owner.tokenAuthenticated
  }

  /** Frames dropped under the `drop` slow-consumer policy. */
  get dropped(): number {
    return this.#owner.dropped
  }

  /**
   * Sends a message to this client only, in the facility's format: text or an object (JSON) as a
   * text frame, on a `json` facility wrapped as `{"type":"data","data":…}`; bytes as a binary
   * frame; on a `binary` facility, everything as a binary frame.
   */
  send(message: Message): void {
    this.#owner.send(message)
  }

  /** Sends one envelope frame as is (`json` facilities: an error, a custom frame). */
  sendFrame(frame: ServerFrame): void {
    this.#owner.sendFrame(frame)
  }

  /** Closes with `code` (1000 or 3000–4999 for your own) after writing what is queued. */
  close(code = 1000, reason = ''): void {
    this.#owner.close(code, reason)
  }

  /** Drops the connection at once, without a close frame. */
  terminate(): void {
    this.#owner.terminate()
  }
}
