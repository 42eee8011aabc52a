/** Base class of every error wsfacility raises; `code` is stable, the message is not. */
export class WsFacilityError extends Error {
  /** Stable machine-readable code, e.g. `WSF_REDIS_UNAVAILABLE`. */
  readonly code: string

  constructor(code: string, message: string, options?: { cause?: unknown }) {
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
    code = `WSF_HTTP_${status}`,
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

/** Something did not finish in the time it was given. */
export class TimeoutError extends WsFacilityError {
  constructor(ms: number) {
    super('WSF_TIMEOUT', `did not finish within ${ms} ms`)
  }
}
