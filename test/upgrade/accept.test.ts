import assert from 'node:assert/strict'
import { once } from 'node:events'
import http from 'node:http'
import net, { type AddressInfo } from 'node:net'
import { after, before, describe, it } from 'node:test'
import { WebSocket } from 'ws'
import { eventually } from '../helpers/ws.js'
import {
  createHashAcceptKey,
  DIRECT,
  HandshakeAcceptor,
  hashAcceptKey,
  type ProtocolChoice,
} from '../../src/upgrade/accept.js'

// RFC 6455 §1.3's example: this key is answered with this Sec-WebSocket-Accept.
const KEY = 'dGhlIHNhbXBsZSBub25jZQ=='
const ACCEPT = 's3pPLMBiTxaQ9kYGzzhZRbK+xOo='

const firstOffered: ProtocolChoice = (offered) => [...offered].find((p) => p !== 'no') ?? false

/** The first message and the error of each WebSocket serve() accepted. */
const firstMessages = new WeakMap<WebSocket, Promise<[Buffer]>>()
const errors = new WeakMap<WebSocket, Error>()

/** An HTTP server whose upgrades the acceptor answers. */
async function serve(acceptor: HandshakeAcceptor) {
  const waiting: ((ws: WebSocket | null) => void)[] = []
  const server = http.createServer()
  server.on('upgrade', (req, socket, head) => {
    const ws = acceptor.accept(req, socket, head)
    // A message in the head is emitted before any awaiting test code runs: listen at once.
    if (ws) firstMessages.set(ws, once(ws, 'message') as Promise<[Buffer]>)
    // ws reports a frame past maxPayload as an error before it closes with 1009.
    ws?.on('error', (err) => errors.set(ws, err))
    waiting.shift()?.(ws)
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as AddressInfo
  return {
    port,
    /** The result of the next upgrade's accept(). */
    next: () => new Promise<WebSocket | null>((resolve) => waiting.push(resolve)),
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  }
}

/** Sends `request` (and `extra` in the same write) on a raw socket; resolves to what came back. */
async function raw(port: number, request: string, extra?: Buffer, waitFor = '\r\n\r\n') {
  const socket = net.connect(port, '127.0.0.1')
  await once(socket, 'connect')
  socket.write(extra ? Buffer.concat([Buffer.from(request), extra]) : request)
  let text = ''
  socket.setEncoding('latin1')
  await new Promise<void>((resolve) => {
    socket.on('data', (d: string) => {
      text += d
      if (text.includes(waitFor)) resolve()
    })
    socket.on('close', () => resolve())
  })
  return { text, socket }
}

const request = (port: number, headers = '') =>
  `GET /ws HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
  `Sec-WebSocket-Key: ${KEY}\r\nSec-WebSocket-Version: 13\r\n${headers}\r\n`

/** A masked client text frame of `text` (under 126 bytes). */
function maskedFrame(text: string): Buffer {
  const payload = Buffer.from(text)
  const mask = Buffer.from([1, 2, 3, 4])
  const masked = payload.map((b, i) => b ^ mask[i % 4]!)
  return Buffer.concat([Buffer.from([0x81, 0x80 | payload.length]), mask, masked])
}

it('computes the accept key of RFC 6455 §1.3 both ways (crypto.hash, and createHash before Node 20.12)', () => {
  assert.equal(hashAcceptKey(KEY), ACCEPT)
  assert.equal(createHashAcceptKey(KEY), ACCEPT)
})

it('the installed ws takes a socket directly, so the handshake is answered by the acceptor', () => {
  // When a ws release changes this, the fallback (handleUpgrade) answers, and this test says so.
  assert.equal(DIRECT, true)
})

for (const direct of [true, false]) {
  describe(`HandshakeAcceptor (${direct ? 'direct' : 'through handleUpgrade'})`, () => {
    let s: Awaited<ReturnType<typeof serve>>
    const acceptor = new HandshakeAcceptor(64, firstOffered, direct)
    before(async () => (s = await serve(acceptor)))
    after(() => s.close())

    it('answers 101 with the accept key of RFC 6455 §1.3, no subprotocol when none is offered, no extension', async () => {
      const server = s.next()
      // An offer of compression is never taken: the broker writes pre-built frames.
      const offer = 'Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n'
      const { text, socket } = await raw(s.port, request(s.port, offer))
      socket.destroy()
      const [status, ...headers] = text.split('\r\n\r\n')[0]!.split('\r\n')
      assert.equal(status, 'HTTP/1.1 101 Switching Protocols')
      assert.ok(headers.includes(`Sec-WebSocket-Accept: ${ACCEPT}`), text)
      assert.ok(headers.includes('Upgrade: websocket'), text)
      assert.ok(!text.toLowerCase().includes('sec-websocket-protocol'), text)
      assert.ok(!text.toLowerCase().includes('sec-websocket-extensions'), text)
      const ws = await server
      assert.ok(ws)
      assert.equal(ws.protocol, '')
    })

    it('answers the chosen subprotocol, and the WebSocket knows it', async () => {
      const server = s.next()
      const client = new WebSocket(`ws://127.0.0.1:${s.port}/ws`, ['no', 'chat', 'other'])
      await once(client, 'open')
      assert.equal(client.protocol, 'chat')
      assert.equal((await server)!.protocol, 'chat')
      client.close()
    })

    it('reads the offered subprotocols past the spaces around their commas', async () => {
      const server = s.next()
      const offer = 'Sec-WebSocket-Protocol: no ,  chat\t, other\r\n'
      const { text, socket } = await raw(s.port, request(s.port, offer))
      socket.destroy()
      assert.match(text, /\r\nSec-WebSocket-Protocol: chat\r\n/i)
      assert.equal((await server)!.protocol, 'chat')
    })

    it('answers no subprotocol when the choice is none of those offered', async () => {
      const server = s.next()
      const { text, socket } = await raw(s.port, request(s.port, 'Sec-WebSocket-Protocol: no\r\n'))
      socket.destroy()
      assert.match(text, /^HTTP\/1\.1 101 /)
      assert.ok(!text.toLowerCase().includes('sec-websocket-protocol'), text)
      assert.equal((await server)!.protocol, '')
    })

    it('gives an open WebSocket that sends, receives and answers pings', async () => {
      const next = s.next()
      const client = new WebSocket(`ws://127.0.0.1:${s.port}/ws`)
      const server = (await Promise.all([next, once(client, 'open')]))[0]!
      assert.equal(server.readyState, WebSocket.OPEN)
      client.send('hello')
      assert.equal(String((await firstMessages.get(server)!)[0]), 'hello')
      const back = once(client, 'message')
      server.send('world')
      assert.equal(String((await back)[0]), 'world')
      const pong = once(client, 'pong')
      client.ping('p')
      assert.equal(String((await pong)[0]), 'p')
      client.close()
    })

    it('reads a frame sent in the same packet as the handshake (the head)', async () => {
      const server = s.next()
      const { socket } = await raw(s.port, request(s.port), maskedFrame('early'))
      const [message] = await firstMessages.get((await server)!)!
      assert.equal(String(message), 'early')
      socket.destroy()
    })

    it("waits for the client's answer to a close (ws's closeTimeout, not at once)", async () => {
      const server = s.next()
      const { socket } = await raw(s.port, request(s.port))
      const ws = (await server)!
      let received = Buffer.alloc(0)
      socket.on(
        'data',
        (d: string) => (received = Buffer.concat([received, Buffer.from(d, 'latin1')])),
      )
      ws.close(1000, 'bye')
      await eventually(() => received.length > 0)
      assert.deepEqual([...received.subarray(0, 4)], [0x88, 5, 0x03, 0xe8])
      await new Promise((r) => setTimeout(r, 100))
      assert.equal(socket.destroyed, false, 'the client did not answer: the socket stays')
      assert.equal(ws.readyState, WebSocket.CLOSING)
      socket.destroy()
      await once(ws, 'close')
    })

    it('takes a frame of maxPayload bytes and closes with 1009 at one more', async () => {
      const server = s.next()
      const client = new WebSocket(`ws://127.0.0.1:${s.port}/ws`)
      await Promise.all([server, once(client, 'open')])
      client.send('x'.repeat(64))
      assert.equal(String((await firstMessages.get((await server)!)!)[0]), 'x'.repeat(64))
      client.send('x'.repeat(65))
      const [code] = await once(client, 'close')
      assert.equal(code, 1009)
      assert.match(String(errors.get((await server)!)), /Max payload size exceeded/)
    })
  })
}

describe('HandshakeAcceptor refuses what cannot be answered', () => {
  it('destroys a socket whose client already sent its FIN, and gives no WebSocket', async () => {
    const acceptor = new HandshakeAcceptor(64, firstOffered)
    const server = http.createServer()
    const results: (WebSocket | null)[] = []
    server.on('upgrade', (req, socket, head) => {
      // The client's FIN arrives before the acceptor runs.
      socket.once('end', () => {
        results.push(acceptor.accept(req, socket, head))
        assert.equal(socket.destroyed, true)
        server.emit('done')
      })
      socket.resume()
    })
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    const { port } = server.address() as AddressInfo
    const socket = net.connect(port, '127.0.0.1')
    await once(socket, 'connect')
    socket.end(request(port))
    await once(server, 'done')
    assert.deepEqual(results, [null])
    socket.destroy()
    await new Promise<void>((resolve) => server.close(() => resolve()))
  })

  for (const direct of [true, false]) {
    it(`gives no WebSocket once closed (${direct ? 'direct' : 'handleUpgrade'}), writing nothing`, async () => {
      const acceptor = new HandshakeAcceptor(64, firstOffered, direct)
      acceptor.close()
      const server = http.createServer()
      const results: [WebSocket | null, number][] = []
      server.on('upgrade', (req, socket: net.Socket, head) => {
        results.push([acceptor.accept(req, socket, head), socket.bytesWritten])
        socket.destroy()
      })
      server.listen(0, '127.0.0.1')
      await once(server, 'listening')
      const { port } = server.address() as AddressInfo
      const { text } = await raw(port, request(port))
      assert.equal(text, '')
      assert.deepEqual(results, [[null, 0]])
      await new Promise<void>((resolve) => server.close(() => resolve()))
    })
  }
})
