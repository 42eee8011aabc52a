import { STATUS_CODES, type IncomingMessage, type ServerResponse } from 'node:http'
import type { Duplex } from 'node:stream'
import { HttpError } from '../errors.js'

/**
 * Answers an upgrade request with an HTTP error and closes the socket: clients and load balancers
 * see a real status and a one-line reason instead of an open-then-close.
 */
export function refuseUpgrade(
  socket: Duplex,
  status: number,
  reason: string,
  headers: Record<string, string> = {},
): void {
  if (socket.destroyed) return
  if (!socket.writable) {
    socket.destroy()
    return
  }
  const body = `${reason.replace(/[\r\n]+/g, ' ')}\n`
  const extra = Object.entries(headers)
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join('')
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}\r\n` +
      'Connection: close\r\n' +
      'Content-Type: text/plain; charset=utf-8\r\n' +
      `Content-Length: ${Buffer.byteLength(body)}\r\n` +
      extra +
      '\r\n' +
      body,
  )
}

/**
 * Checks that an upgrade request is a well-formed WebSocket handshake (RFC 6455 §4.2.1); throws
 * HttpError 400, or 426 with the supported version, before any work is done for it.
 */
export function checkHandshake(req: IncomingMessage): void {
  if (req.method !== 'GET') throw new HttpError(405, 'WebSocket handshake must use GET')
  const upgrade = req.headers.upgrade
  if (typeof upgrade !== 'string' || upgrade.toLowerCase() !== 'websocket') {
    throw new HttpError(400, 'not a WebSocket request (Upgrade: websocket missing)')
  }
  const key = req.headers['sec-websocket-key']
  if (typeof key !== 'string' || !/^[+/0-9A-Za-z]{22}==$/.test(key.trim())) {
    throw new HttpError(400, 'missing or invalid Sec-WebSocket-Key')
  }
  const protocols = req.headers['sec-websocket-protocol']
  if (protocols !== undefined && !validProtocolList(protocols)) {
    throw new HttpError(400, 'invalid Sec-WebSocket-Protocol header')
  }
  const version = req.headers['sec-websocket-version']
  if (version !== '13' && version !== '8') {
    throw new HttpError(426, 'unsupported Sec-WebSocket-Version (use 13)', 'WSF_HTTP_426', {
      'Sec-WebSocket-Version': '13',
    })
  }
}

// RFC 7230 token characters, which subprotocol names are made of (RFC 6455 §4.1).
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/

/**
 * True for a `Sec-WebSocket-Protocol` value `ws` accepts: tokens separated by commas and optional
 * spaces, none empty, none twice. `ws` answers anything else with 400 on its own.
 */
export function validProtocolList(value: string): boolean {
  const names = value.split(',').map((part) => part.replace(/^[ \t]+|[ \t]+$/g, ''))
  return names.every((name) => TOKEN.test(name)) && new Set(names).size === names.length
}

/** Answers a plain HTTP request under the WebSocket path: 426 Upgrade Required. */
export function answerUpgradeRequired(res: ServerResponse): void {
  res.writeHead(426, {
    'Content-Type': 'text/plain; charset=utf-8',
    Upgrade: 'websocket',
    Connection: 'Upgrade',
  })
  res.end('this URL accepts WebSocket connections only\n')
}
