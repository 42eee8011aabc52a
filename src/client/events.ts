/** The client's statuses and events (client.ts emits them). */
import type { WsfClientError } from './errors.js'
import type { RecoveredEvent } from './positions.js'

/** Where the client is: connecting the first time, open, lost and retrying, or stopped. */
export type ClientStatus = 'connecting' | 'open' | 'reconnecting' | 'closed'

/** A received message: text as a string, binary as an ArrayBuffer (a Uint8Array with some sockets). */
export type ClientMessage = string | ArrayBuffer | Uint8Array

/** Events of `WsfClient`. */
export interface ClientEvents {
  /** The status changed. */
  status: ClientStatus
  /** A message for the application (heartbeat answers, pongs and `recovered` frames are not). */
  message: ClientMessage
  /**
   * After a reconnect that gave the broker positions (and after a first connect with the
   * `positions` option): whether every channel was recovered, and where each stands. Also when
   * the broker finds a channel's history lost mid-connection. json facilities with `history` only.
   */
  recovered: RecoveredEvent
  /** Something the application should know about; `code` is stable. */
  error: WsfClientError
  /** One underlying socket closed. */
  close: { code: number; reason: string }
  /** A reconnection attempt is scheduled in `delay` ms (`attempt` counts from 1). */
  retry: { attempt: number; delay: number }
}
