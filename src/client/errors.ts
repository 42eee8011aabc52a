/** Stable codes of the errors the client emits or rejects with. */
export type ClientErrorCode =
  /** `send()` while disconnected with `queue.whenDisconnected: 'reject'`. */
  | 'WSF_CLIENT_DISCONNECTED'
  /** `send()` while disconnected and the queue already holds `queue.max` messages. */
  | 'WSF_CLIENT_QUEUE_FULL'
  /** `send()` after `close()`, or after the client gave up. */
  | 'WSF_CLIENT_CLOSED'
  /** The server closed with 1008 (policy violation, e.g. an invalid in-band token). */
  | 'WSF_CLIENT_POLICY'
  /** The server closed with 4001 (token expired) and `token` is a fixed string. */
  | 'WSF_CLIENT_TOKEN_EXPIRED'
  /** The server closed with a code that is not worth retrying as is. */
  | 'WSF_CLIENT_CLOSED_BY_SERVER'
  /**
   * The broker refused the connection for good (`status`: 400, 401, 403…; close 4000 + status):
   * retrying as is would be refused again. A 401 with a token provider is retried once first.
   */
  | 'WSF_CLIENT_REFUSED'
  /** The token provider threw or rejected. */
  | 'WSF_CLIENT_TOKEN'
  /**
   * Refreshing the token of an open connection failed: the provider threw, or gave no token
   * expiring later. The connection goes on until the broker closes it at expiry (4001); the
   * client then reconnects with a token from the provider.
   */
  | 'WSF_CLIENT_TOKEN_REFRESH'
  /** The `WebSocket` constructor threw (bad URL, bad subprotocol). */
  | 'WSF_CLIENT_SOCKET'
  /** `heartbeat.missed` heartbeats in a row got no answer: the connection was replaced. */
  | 'WSF_CLIENT_HEARTBEAT_TIMEOUT'
  /** `reconnect.attempts` reconnection attempts in a row failed. */
  | 'WSF_CLIENT_GAVE_UP'
  /** The broker refused a `client.join()` (the facility's policy, or a bad group or channel);
   * the message ends with the broker's code, e.g. `(WSF_JOIN_REFUSED)`. */
  | 'WSF_CLIENT_JOIN_REFUSED'

/**
 * An error of the browser client; `code` is stable, `closeCode` is set for server closes and
 * `status` for refusals (`WSF_CLIENT_REFUSED`: the HTTP status the broker refused with). The
 * client folder stays self-contained (served as is to browsers), so this does not extend the
 * server's error classes.
 */
export class WsfClientError extends Error {
  readonly code: ClientErrorCode
  /** The WebSocket close code that caused this error, when one did. */
  readonly closeCode: number | undefined
  /** The HTTP status of a refusal (401 for close 4401), when the error is one. */
  readonly status: number | undefined

  constructor(
    code: ClientErrorCode,
    message: string,
    options?: { cause?: unknown; closeCode?: number | undefined; status?: number | undefined },
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause })
    this.name = 'WsfClientError'
    this.code = code
    this.closeCode = options?.closeCode
    this.status = options?.status
  }
}
