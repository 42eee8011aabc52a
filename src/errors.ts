/**
 * Every code a wsfacility error carries: one registry, a closed union. Tests and callers branch on
 * `code` (stable); the message is for people and may change.
 */
export const ERROR_CODES = {
  /** Redis could not be reached, or refused a command. */
  WSF_REDIS_UNAVAILABLE: 'Redis unreachable or refusing commands',
  /** The broker is closed or closing. */
  WSF_CLOSED: 'the broker is closed',
  /** A value passed to a method is not acceptable. */
  WSF_INVALID_ARGUMENT: 'invalid argument',
  /** An option (broker, facility, close) cannot work. */
  WSF_INVALID_OPTION: 'invalid option',
  /** Something did not finish in the time it was given. */
  WSF_TIMEOUT: 'timed out',
  /** The broker's work for one upgrade took longer than `handshakeTimeout`. */
  WSF_HANDSHAKE_TIMEOUT: 'handshake timed out',
  /** The process holds `maxConnections` connections. */
  WSF_TOO_MANY_CONNECTIONS: 'too many connections',
  /** The user holds `maxConnectionsPerUser` connections on this process. */
  WSF_TOO_MANY_USER_CONNECTIONS: 'too many connections for this user',
  /** The upgrade came from an origin the broker does not accept. */
  WSF_ORIGIN_REFUSED: 'origin refused',
  /** A JWT was missing, malformed, badly signed or for another identity. */
  WSF_TOKEN_INVALID: 'invalid token',
  /** An identity (from a JWT, a session or `identify`) holds a string that is not well-formed
   * Unicode, so it cannot name a channel. */
  WSF_IDENTITY_INVALID: 'identity contains an invalid string',
  /** A JWT expired. */
  WSF_TOKEN_EXPIRED: 'token expired',
  /** The client went away before its upgrade completed (logged, never sent). */
  WSF_CLIENT_GONE: 'client went away',
  /** The `recover` query parameter is not the positions JSON (400). */
  WSF_RECOVER_INVALID: 'invalid recover parameter',
  /** A join the connection's facility does not allow (its `subscribe` list, `clientJoin`, its
   * `authorize` or `allowedChannels` hooks), or a channel the connection's identity cannot fill. */
  WSF_JOIN_REFUSED: 'join refused',
  /** A `wsfacility/testing` expectation failed: a message arrived where none was expected, or
   * the socket closed before what a test waited for. */
  WSF_TEST_EXPECTATION: 'testing expectation not met',
  /** A refusal before the upgrade without a more specific code: `WSF_HTTP_<status>`. */
  WSF_HTTP: 'HTTP refusal',
} as const

/** A code of the registry; HTTP refusals without their own code are `WSF_HTTP_<status>`. */
export type ErrorCode = Exclude<keyof typeof ERROR_CODES, 'WSF_HTTP'> | `WSF_HTTP_${number}`

/** Base class of every error wsfacility raises; `code` is stable, the message is not. */
export class WsFacilityError extends Error {
  /** Stable machine-readable code, e.g. `WSF_REDIS_UNAVAILABLE`. */
  readonly code: ErrorCode

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = new.target.name
    this.code = code
  }
}

/** A request refused before the WebSocket upgrade; carries the HTTP status sent to the client. */
export class HttpError extends WsFacilityError {
  /** HTTP status of the refusal, e.g. 400, 401, 403. */
  readonly status: number
  /** Extra response headers of the refusal (e.g. `Retry-After`). */
  readonly headers: Readonly<Record<string, string>>

  constructor(
    status: number,
    message: string,
    code: ErrorCode = `WSF_HTTP_${status}`,
    headers: Record<string, string> = {},
  ) {
    super(code, message)
    this.status = status
    this.headers = headers
  }
}

/** The engine could not reach Redis, or Redis refused a command. */
export class EngineError extends WsFacilityError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('WSF_REDIS_UNAVAILABLE', message, options)
  }
}

/** The broker is closed or closing and takes no more work. */
export class ClosedError extends WsFacilityError {
  constructor(message = 'broker is closed') {
    super('WSF_CLOSED', message)
  }
}

/** A value passed to the API is not acceptable (bad facility, unknown audience, …). */
export class InvalidArgumentError extends WsFacilityError {
  constructor(message: string) {
    super('WSF_INVALID_ARGUMENT', message)
  }
}

/** An option that cannot work: thrown by `createBroker`, `broker.facility()` and `close()`. */
export class OptionError extends WsFacilityError {
  constructor(message: string) {
    super('WSF_INVALID_OPTION', message)
  }
}

/** Something did not finish in the time it was given. */
export class TimeoutError extends WsFacilityError {
  constructor(ms: number) {
    super('WSF_TIMEOUT', `did not finish within ${ms} ms`)
  }
}

/**
 * A join refused by the facility's policy. For a join of several connections (a user, a session),
 * `joined` counts those that did join (they stay joined) and `refused` those that were refused.
 */
export class JoinRefusedError extends WsFacilityError {
  readonly joined: number
  readonly refused: number

  constructor(
    message: string,
    counts: { joined?: number | undefined; refused?: number | undefined } = {},
  ) {
    super('WSF_JOIN_REFUSED', message)
    this.joined = counts.joined ?? 0
    this.refused = counts.refused ?? 1
  }
}
