import { CloseCode } from '../close-codes.js'
import { type MembershipFrame, parseClientFrame, type ServerFrame } from '../delivery/envelope.js'
import { HttpError } from '../errors.js'
import type { WireFormat } from '../facility/definition.js'
import { encodeText } from '../delivery/payload.js'

/** What inbound handling needs from the connection a message came on (its owner). */
export interface InboundTarget {
  readonly format: WireFormat
  /** True when a JWT authenticated the connection (it may refresh its token in-band). */
  readonly tokenAuthenticated: boolean
  sendText(text: string): void
  sendFrame(frame: ServerFrame): void
  close(code: number, reason: string): void
  /** Takes one token of the publish rate limit; false when the bucket is empty. */
  takeToken(): boolean
  /** Accepts a fresh JWT (rejects with a TokenError). */
  refreshToken(token: string): Promise<void>
  /**
   * Offers a client message to the facility's onMessage hook and publishes `payload` on the
   * connection's publish channels unless the hook handled it. The hook sees `message`, decoded as
   * UTF-8 text first when `text` is set (only then: most facilities have no hook).
   */
  offer(message: unknown, payload: Buffer, text?: boolean): void
  /** A client's join or leave frame, answered on the socket (connection/subscribing.ts). */
  membershipFrame(frame: MembershipFrame): void
}

/**
 * Takes a token for one client message; when the bucket is empty the message is refused: a json
 * facility answers `rate_limited` and keeps the connection, a raw one (which has no error frame)
 * closes with 1008.
 */
function rateLimited(target: InboundTarget): boolean {
  if (target.takeToken()) return false
  if (target.format === 'json') {
    target.sendFrame({ type: 'error', code: 'rate_limited', detail: 'too many messages' })
  } else {
    target.close(CloseCode.POLICY, 'rate limit exceeded')
  }
  return true
}

function refresh(target: InboundTarget, token: string): void {
  target.refreshToken(token).catch((err: unknown) => {
    const detail = err instanceof HttpError ? err.message : 'invalid token'
    if (target.format === 'json') {
      const code =
        (err as { code?: string }).code === 'WSF_TOKEN_EXPIRED' ? 'expired_token' : 'invalid_token'
      target.sendFrame({ type: 'error', code, detail })
    }
    target.close(CloseCode.POLICY, detail)
  })
}

/** `{"token": "<jwt>"}` and nothing else, on a JWT connection of a raw facility. */
export function rawTokenOf(data: Buffer): string | null {
  if (data[0] !== 0x7b /* { */ || data.length > 16384) return null
  try {
    const parsed: unknown = JSON.parse(data.toString('utf8'))
    if (typeof parsed !== 'object' || parsed === null || Object.keys(parsed).length !== 1)
      return null
    const token = (parsed as { token?: unknown }).token
    return typeof token === 'string' ? token : null
  } catch {
    return null
  }
}

/** True when `data` is the broker's heartbeat text (answered with itself). */
function isHeartbeat(heartbeat: string | null, data: Buffer, isBinary: boolean): boolean {
  return (
    heartbeat !== null &&
    !isBinary &&
    data.length === Buffer.byteLength(heartbeat) &&
    data.toString() === heartbeat
  )
}

/** One message of a `json` facility: the envelope (ping, token, data) or an error frame. */
function handleEnvelope(target: InboundTarget, data: Buffer, isBinary: boolean): void {
  if (isBinary) {
    // The envelope is JSON text; bytes have no place in it and are never published.
    target.sendFrame({
      type: 'error',
      code: 'invalid_message',
      detail: 'binary frames are not accepted on this facility',
    })
    return
  }
  const parsed = parseClientFrame(data.toString('utf8'))
  if (!parsed.ok) {
    target.sendFrame({ type: 'error', code: 'invalid_message', detail: parsed.detail })
    return
  }
  const frame = parsed.frame
  if (frame.type === 'ping') return target.sendFrame({ type: 'pong' })
  if (frame.type === 'token') {
    if (!target.tokenAuthenticated) {
      target.sendFrame({
        type: 'error',
        code: 'invalid_token',
        detail: 'tokens are not accepted on this connection',
      })
      return
    }
    return refresh(target, frame.token)
  }
  if (rateLimited(target)) return
  if (frame.type !== 'data') return target.membershipFrame(frame as MembershipFrame)
  target.offer(frame.data, encodeText(JSON.stringify(frame.data)))
}

/**
 * Handles one message from a client: heartbeat, in-band token, the JSON envelope of `json`
 * facilities (ping, data, errors for malformed frames), the rate limit, then the facility's
 * onMessage hook and publishing (through `offer`).
 */
export function handleClientMessage(
  target: InboundTarget,
  heartbeat: string | null,
  data: Buffer,
  isBinary: boolean,
): void {
  if (isHeartbeat(heartbeat, data, isBinary)) return target.sendText(heartbeat!)
  if (target.format === 'json') return handleEnvelope(target, data, isBinary)
  if (!isBinary && target.tokenAuthenticated) {
    const token = rawTokenOf(data)
    if (token !== null) return refresh(target, token)
  }
  if (rateLimited(target)) return
  // Published verbatim, text or bytes: Redis carries exactly what the client sent.
  target.offer(data, data, !isBinary)
}
