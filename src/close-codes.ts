/**
 * Every WebSocket close code the broker sends: one registry. 1000–1015 are RFC 6455's; 4000–4999
 * are wsfacility's own.
 */
export const CloseCode = {
  /** A normal close (`broker.closeConnection(id)` without a code). */
  NORMAL: 1000,
  /** The server is going away (shutdown). */
  GOING_AWAY: 1001,
  /** A frame that is not valid UTF-8 text (sent by `ws`). */
  INVALID_PAYLOAD: 1007,
  /** A message broke a rule (publish without permission, rate limit on a raw facility, bad token). */
  POLICY: 1008,
  /** A frame larger than `maxPayload`, or a client message too large to store. */
  TOO_BIG: 1009,
  /** The server failed (e.g. Redis rejected a publish). */
  INTERNAL: 1011,
  /** The server is restarting (`close({ code: 1012 })`): reconnect soon. */
  SERVICE_RESTART: 1012,
  /** The client did not read fast enough and its queue filled up, or the server is overloaded. */
  TRY_AGAIN_LATER: 1013,
  /** The JWT that authenticated the connection expired and no fresh one arrived in-band. */
  TOKEN_EXPIRED: 4001,
  // Refusals told after accepting the handshake (option `refusals`): 4000 + the HTTP status the
  // refusal has before the upgrade (refusalCode), with its reason. These five are the ones the
  // client acts on; every code from 4400 to 4599 is a refusal.
  /** 400: a bad request (facility name, flags, `recover`). Do not retry as is. */
  REFUSED_BAD_REQUEST: 4400,
  /** 401: no or bad credentials (invalid JWT, `anonymous: false`). */
  REFUSED_UNAUTHORIZED: 4401,
  /** 403: not allowed (origin, `clientPublish`, `allowedChannels`). */
  REFUSED_FORBIDDEN: 4403,
  /** 429: too many connections for this user; the reason says when to retry. */
  REFUSED_TOO_MANY_REQUESTS: 4429,
  /** 503: the server cannot take the connection now (limit, Redis, shutdown); retry later. */
  REFUSED_UNAVAILABLE: 4503,
} as const

/** One of the close codes above. */
export type CloseCodeValue = (typeof CloseCode)[keyof typeof CloseCode]

/**
 * The close code telling a refusal with HTTP `status` after an accepted handshake: 4000 + status
 * for 400–599 (4401 for 401), or null for a status that has none (499, the client's own going).
 */
export function refusalCode(status: number): number | null {
  if (!Number.isInteger(status) || status < 400 || status > 599 || status === 499) return null
  return 4000 + status
}

/**
 * A close reason cut to the 123 bytes a close frame can carry (or to `max`), on a character
 * boundary.
 */
export function closeReason(reason: string, max = 123): string {
  if (Buffer.byteLength(reason) <= max) return reason
  let cut = reason.slice(0, max)
  while (Buffer.byteLength(cut) > max) cut = cut.slice(0, -1)
  return cut
}
