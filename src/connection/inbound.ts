import type { Connection } from './connection.js'
import { parseClientFrame } from '../delivery/envelope.js'
import { HttpError } from '../errors.js'
import type { FacilityContext, FacilityDefinition } from '../facility/definition.js'
import type { TokenBucket } from './rate-limit.js'
import { encodeBinary, encodeText } from '../delivery/payload.js'

/** What inbound message handling needs from the broker. */
export interface ProtocolHost {
  heartbeat: string | null
  /** Publishes a payload on the connection's publish channels. */
  publish(conn: Connection, payload: Buffer): void
  /** Accepts a fresh JWT for the connection (rejects with a TokenError). */
  refreshToken(conn: Connection, token: string): Promise<void>
  /** Reports a failure of user code (a hook) without crashing. */
  error(err: unknown): void
}

/** The definition and context a connection was accepted with. */
export interface Accepted {
  definition: FacilityDefinition | null
  context: FacilityContext
  /** The connection's publish rate limit, or null when unlimited. */
  bucket: TokenBucket | null
}

/**
 * Takes a token for one client message; when the bucket is empty the message is refused: a json
 * facility answers `rate_limited` and keeps the connection, a raw one (which has no error frame)
 * closes with 1008.
 */
function rateLimited(conn: Connection, accepted: Accepted): boolean {
  if (accepted.bucket === null || accepted.bucket.take()) return false
  if (conn.format === 'json') {
    conn.sendFrame({ type: 'error', code: 'rate_limited', detail: 'too many messages' })
  } else {
    conn.close(1008, 'rate limit exceeded')
  }
  return true
}

function refresh(host: ProtocolHost, conn: Connection, token: string): void {
  host.refreshToken(conn, token).catch((err: unknown) => {
    const detail = err instanceof HttpError ? err.message : 'invalid token'
    if (conn.format === 'json') {
      const code =
        (err as { code?: string }).code === 'WSF_TOKEN_EXPIRED' ? 'expired_token' : 'invalid_token'
      conn.sendFrame({ type: 'error', code, detail })
    }
    conn.close(1008, detail)
  })
}

/** `{"token": "<jwt>"}` and nothing else, on a JWT connection of a raw facility. */
function rawTokenOf(conn: Connection, data: Buffer): string | null {
  if (!conn.tokenAuthenticated || data[0] !== 0x7b /* { */ || data.length > 16384) return null
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

// Messages of one connection go through an async onMessage one at a time, so they are published
// in the order the client sent them.
const inbound = new WeakMap<Connection, Promise<void>>()

function inOrder(conn: Connection, step: () => Promise<void>): void {
  const next = (inbound.get(conn) ?? Promise.resolve()).then(step)
  inbound.set(conn, next)
}

/** Runs the facility's onMessage; resolves to false when it handled the message itself. */
async function offer(
  host: ProtocolHost,
  conn: Connection,
  accepted: Accepted,
  message: unknown,
): Promise<boolean> {
  const hook = accepted.definition?.onMessage
  if (!hook) return true
  try {
    return (await hook(conn, message, accepted.context)) !== false
  } catch (err) {
    host.error(err)
    return false
  }
}

/**
 * Handles one message from a client: heartbeat, in-band token, the JSON envelope of `json`
 * facilities (ping, data, errors for malformed frames), the facility's onMessage hook, then
 * publishing on the connection's publish-* channels.
 */
export function handleClientMessage(
  host: ProtocolHost,
  conn: Connection,
  accepted: Accepted,
  data: Buffer,
  isBinary: boolean,
): void {
  const heartbeat = host.heartbeat
  if (
    heartbeat !== null &&
    !isBinary &&
    data.length === Buffer.byteLength(heartbeat) &&
    data.toString() === heartbeat
  ) {
    conn.sendText(heartbeat)
    return
  }
  if (conn.format === 'json' && isBinary) {
    // The envelope is JSON text; bytes have no place in it and are never published.
    conn.sendFrame({
      type: 'error',
      code: 'invalid_message',
      detail: 'binary frames are not accepted on this facility',
    })
    return
  }
  if (conn.format === 'json') {
    const parsed = parseClientFrame(data.toString('utf8'))
    if (!parsed.ok) {
      conn.sendFrame({ type: 'error', code: 'invalid_message', detail: parsed.detail })
      return
    }
    const frame = parsed.frame
    if (frame.type === 'ping') return conn.sendFrame({ type: 'pong' })
    if (frame.type === 'token') {
      if (!conn.tokenAuthenticated) {
        conn.sendFrame({
          type: 'error',
          code: 'invalid_token',
          detail: 'tokens are not accepted on this connection',
        })
        return
      }
      return refresh(host, conn, frame.token)
    }
    if (rateLimited(conn, accepted)) return
    const payload = encodeText(JSON.stringify(frame.data))
    if (!accepted.definition?.onMessage) return host.publish(conn, payload)
    inOrder(conn, async () => {
      if (await offer(host, conn, accepted, frame.data)) host.publish(conn, payload)
    })
    return
  }
  if (!isBinary) {
    const token = rawTokenOf(conn, data)
    if (token !== null) return refresh(host, conn, token)
  }
  if (rateLimited(conn, accepted)) return
  if (!accepted.definition?.onMessage) {
    host.publish(conn, isBinary ? encodeBinary(data) : data)
    return
  }
  inOrder(conn, async () => {
    if (await offer(host, conn, accepted, isBinary ? data : data.toString('utf8'))) {
      host.publish(conn, isBinary ? encodeBinary(data) : data)
    }
  })
}
