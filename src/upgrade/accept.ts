import * as crypto from 'node:crypto'
import type { IncomingMessage } from 'node:http'
import type { Duplex } from 'node:stream'
import { WebSocket, WebSocketServer } from 'ws'

/** RFC 6455 §1.3: appended to the client's key before hashing it into Sec-WebSocket-Accept. */
const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11'

/** Picks the subprotocol to answer from those offered (false for none). */
export type ProtocolChoice = (offered: Set<string>) => string | false

/**
 * What ws's WebSocketServer uses of its WebSocket class and its own resolved options to complete a
 * handshake (completeUpgrade): `new WebSocket(null, undefined, options)` for the server side, the
 * chosen subprotocol, and `setSocket(socket, head, options)` with the limits of those options
 * (maxPayload and, in ws 8.23, maxBufferedChunks and maxFragments).
 */
interface ServerSide {
  _protocol: string
  setSocket(socket: Duplex, head: Buffer, options: object): void
}
type ServerWebSocketClass = new (
  address: null,
  protocols: undefined,
  options: object,
) => WebSocket & ServerSide

/**
 * True when the installed `ws` hands a socket to a WebSocket as its WebSocketServer does, with
 * `setSocket(socket, head, options)` (ws 8): the handshake is then answered here. Otherwise it is
 * left to WebSocketServer.handleUpgrade.
 */
export const DIRECT = typeof (WebSocket.prototype as Partial<ServerSide>).setSocket === 'function'

/** Sec-WebSocket-Accept for `key`: sha1(key + GUID) in base64, by crypto.hash (no Hash object). */
export const hashAcceptKey = (key: string): string => crypto.hash('sha1', key + GUID, 'base64')

/** The same by createHash, for Node before 20.12 (no crypto.hash). */
export const createHashAcceptKey = (key: string): string =>
  crypto
    .createHash('sha1')
    .update(key + GUID)
    .digest('base64')

const acceptKey = typeof crypto.hash === 'function' ? hashAcceptKey : createHashAcceptKey

/**
 * Answers WebSocket handshakes that checkHandshake passed (RFC 6455 §4.2.2): the 101 in one write,
 * then the socket given to a `ws` WebSocket as ws's WebSocketServer gives it, without checking
 * again what checkHandshake checked or making a Hash object per key. In a connection storm that
 * is ~5–8 µs less per connection than handleUpgrade (bench/profile-connect.ts). No extension is
 * ever negotiated: the broker writes pre-built frames (connection/owner.ts), which a compressed
 * connection could not take.
 */
export class HandshakeAcceptor {
  readonly #choose: ProtocolChoice
  readonly #direct: boolean
  /**
   * Holds the options ws resolves (its defaults for every limit not set here, whatever the
   * release), which each WebSocket is made and given its socket with; answers the handshakes
   * itself when not direct.
   */
  readonly #server: WebSocketServer
  /** ws's resolved options of #server, with the WebSocket class it makes. */
  readonly #options: { WebSocket: ServerWebSocketClass }
  #closed = false

  /**
   * `maxPayload`: the largest frame a client may send; `choose`: the subprotocol answered;
   * `direct`: answer here (DIRECT) or leave it to handleUpgrade.
   */
  constructor(maxPayload: number, choose: ProtocolChoice, direct = DIRECT) {
    this.#choose = choose
    this.#direct = direct
    this.#server = new WebSocketServer({
      noServer: true,
      clientTracking: false,
      perMessageDeflate: false,
      maxPayload,
      handleProtocols: choose,
    })
    this.#options = (
      this.#server as unknown as { options: { WebSocket: ServerWebSocketClass } }
    ).options
  }

  /**
   * The open WebSocket of an upgrade; null after close(), when the socket is already half-closed
   * (it is then destroyed) or, not direct, when ws refused the handshake itself.
   */
  accept(req: IncomingMessage, socket: Duplex, head: Buffer): WebSocket | null {
    if (this.#closed) return null
    if (!this.#direct) return this.#handleUpgrade(req, socket, head)
    // The client sent its FIN already: nothing can be answered.
    if (!socket.readable || !socket.writable) {
      socket.destroy()
      return null
    }
    const options = this.#options
    const ws = new options.WebSocket(null, undefined, options)
    let response =
      'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
      `Sec-WebSocket-Accept: ${acceptKey(String(req.headers['sec-websocket-key']))}\r\n`
    const offered = req.headers['sec-websocket-protocol']
    if (offered !== undefined) {
      const protocol = this.#choose(protocolSet(offered))
      if (protocol !== false) {
        response += `Sec-WebSocket-Protocol: ${protocol}\r\n`
        ws._protocol = protocol
      }
    }
    socket.write(`${response}\r\n`)
    ws.setSocket(socket, head, options)
    return ws
  }

  /** Stops answering handshakes (shutdown). */
  close(): void {
    this.#closed = true
  }

  #handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): WebSocket | null {
    let accepted: WebSocket | null = null
    this.#server.handleUpgrade(req, socket, head, (ws) => (accepted = ws))
    return accepted
  }
}

/** The subprotocols of a Sec-WebSocket-Protocol value checkHandshake accepted (validProtocolList). */
function protocolSet(value: string): Set<string> {
  const names = new Set<string>()
  for (const part of value.split(',')) names.add(part.trim())
  return names
}
