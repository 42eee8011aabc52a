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
} as const

/** One of the close codes above. */
export type CloseCodeValue = (typeof CloseCode)[keyof typeof CloseCode]

/** A close reason cut to the 123 bytes a close frame can carry, on a character boundary. */
export function closeReason(reason: string): string {
  if (Buffer.byteLength(reason) <= 123) return reason
  let cut = reason.slice(0, 123)
  while (Buffer.byteLength(cut) > 123) cut = cut.slice(0, -1)
  return cut
}
