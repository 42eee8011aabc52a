import type { OpenRecovery } from '../delivery/hub.js'
import type { StreamPosition } from '../history/wire.js'
import type { ServerFrame } from '../delivery/envelope.js'

/** How a live join came. */
export interface JoinRequest {
  /** True for a client's join frame (the facility's `clientJoin` must allow it). */
  fromClient?: boolean | undefined
  /** The client's position in the channel's history: what it missed since is sent first. */
  since?: StreamPosition | null | undefined
  /** The frame answering a client's join, sent after what the history read gave and before the
   * live messages of meanwhile. */
  answer?: ((recovery: OpenRecovery | null) => ServerFrame) | undefined
}

/** What a live join did. */
export interface JoinOutcome {
  /** The channel's name in Redis. */
  channel: string
  /** False when the connection was listening to it already. */
  added: boolean
  /** Where the channel's history stands for the connection (channels with history, json). */
  recovery: OpenRecovery | null
}
