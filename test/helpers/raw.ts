import assert from 'node:assert/strict'
import net from 'node:net'
import { eventually } from './ws.js'

/** The `Sec-WebSocket-Key` of RFC 6455's example handshake. */
export const SAMPLE_KEY = 'dGhlIHNhbXBsZSBub25jZQ=='

/** A WebSocket upgrade request for `path`, written by hand. */
export function upgradeRequest(path: string): string {
  return (
    `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
    `Sec-WebSocket-Key: ${SAMPLE_KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n`
  )
}

/** Sends `request` as is and resolves to the status of the answer, once the server closed. */
export function rawStatus(port: number, request: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => socket.write(request))
    let answer = ''
    socket.on('data', (d: Buffer) => (answer += d.toString('latin1')))
    socket.on('close', () => resolve(Number(answer.split(' ')[1])))
    socket.on('error', reject)
  })
}

/** A raw TCP client that completes the handshake, then reads only when told to. */
export async function rawClient(
  port: number,
  path: string,
  options: {
    /** Keeps the client's side open after the server ended its own (a half-closed TCP socket). */
    allowHalfOpen?: boolean
  } = {},
): Promise<{ socket: net.Socket; data: () => Buffer }> {
  const socket = net.connect({ port, host: '127.0.0.1', allowHalfOpen: options.allowHalfOpen })
  let buf = Buffer.alloc(0)
  socket.on('data', (d: Buffer) => (buf = Buffer.concat([buf, d])))
  socket.write(upgradeRequest(path))
  await eventually(() => buf.includes('\r\n\r\n'))
  assert.match(buf.toString('latin1'), /^HTTP\/1\.1 101/)
  return { socket, data: () => buf.subarray(buf.indexOf('\r\n\r\n') + 4) }
}

/** The frames (opcode, payload) in bytes a server sent (unmasked). */
export function framesOf(bytes: Buffer): { opcode: number; payload: Buffer }[] {
  const out = []
  let at = 0
  while (at + 2 <= bytes.length) {
    const opcode = bytes[at]! & 0x0f
    let len = bytes[at + 1]! & 0x7f
    let head = 2
    if (len === 126) {
      len = bytes.readUInt16BE(at + 2)
      head = 4
    } else if (len === 127) {
      len = Number(bytes.readBigUInt64BE(at + 2))
      head = 10
    }
    if (at + head + len > bytes.length) break
    out.push({ opcode, payload: bytes.subarray(at + head, at + head + len) })
    at += head + len
  }
  return out
}

/** A masked client close frame carrying `code` (RFC 6455 §5.5.1); mask 0 keeps the bytes readable. */
export function closeFrame(code: number): Buffer {
  const body = Buffer.alloc(2)
  body.writeUInt16BE(code)
  return Buffer.concat([Buffer.from([0x88, 0x80 | body.length, 0, 0, 0, 0]), body])
}
