import assert from 'node:assert/strict'
import { once } from 'node:events'
import type { IncomingMessage } from 'node:http'
import net from 'node:net'
import { after, describe, it } from 'node:test'
import WebSocket from 'ws'
import {
  type BrokerOptions,
  CloseCode,
  HttpError,
  MemoryEngine,
  OptionError,
} from '../../src/index.js'
import { resolveOptions } from '../../src/broker/options.js'
import {
  openProtocol,
  refusalClose,
  refusalProtocol,
  refusesByClose,
} from '../../src/upgrade/refusal.js'
import { closeFrame, framesOf, rawStatus, SAMPLE_KEY, upgradeRequest } from '../helpers/raw.js'
import { connect, eventually, startBroker, type TestServer, upgradeStatus } from '../helpers/ws.js'

const request = (headers: Record<string, string>): IncomingMessage =>
  ({ headers: { host: 'app.example.com', ...headers } }) as unknown as IncomingMessage

describe('refusesByClose', () => {
  const offering = { 'sec-websocket-protocol': 'wsfacility' }

  it("'http' never, 'close' always, 'auto' when the handshake offers the wsfacility subprotocol", () => {
    const bearer = { 'sec-websocket-protocol': 'bearer.x, wsfacility' }
    assert.equal(refusesByClose(request(offering), 'http', undefined), false)
    assert.equal(refusesByClose(request({}), 'close', undefined), true)
    assert.equal(refusesByClose(request(offering), 'auto', undefined), true)
    assert.equal(refusesByClose(request(bearer), 'auto', undefined), true)
    assert.equal(refusesByClose(request({}), 'auto', undefined), false)
    const other = { 'sec-websocket-protocol': 'wsfacility2, chat' }
    assert.equal(refusesByClose(request(other), 'auto', undefined), false)
  })

  it('keeps HTTP for a request with cookies from an origin the broker does not accept', () => {
    const cookie = 'connect.sid=s%3Aabc'
    const from = (origin: string, withCookie: boolean) =>
      request({ ...offering, origin, ...(withCookie ? { cookie } : {}) })
    for (const mode of ['auto', 'close'] as const) {
      assert.equal(refusesByClose(from('https://evil.example', true), mode, undefined), false)
      assert.equal(refusesByClose(from('https://evil.example', false), mode, undefined), true)
      assert.equal(refusesByClose(from('https://app.example.com', true), mode, undefined), true)
      const listed = ['https://partner.example']
      assert.equal(refusesByClose(from('https://partner.example', true), mode, listed), true)
      assert.equal(refusesByClose(from('https://evil.example', true), mode, listed), false)
    }
  })
})

describe('the refusal subprotocol', () => {
  const set = (...p: string[]) => new Set(p)
  it('answers a refusal with wsfacility.refusal when offered, else as an open connection', () => {
    assert.equal(refusalProtocol(set('wsfacility', 'wsfacility.refusal')), 'wsfacility.refusal')
    assert.equal(refusalProtocol(set('wsfacility')), 'wsfacility')
    assert.equal(refusalProtocol(set('chat')), 'chat')
  })
  it('never answers a connection that opens with it', () => {
    assert.equal(openProtocol(set('wsfacility', 'wsfacility.refusal')), 'wsfacility')
    assert.equal(openProtocol(set('wsfacility.refusal', 'chat')), 'chat')
    assert.equal(openProtocol(set('wsfacility.refusal')), false)
    assert.equal(openProtocol(set('chat')), 'chat')
  })
})

describe('the refusals option', () => {
  it("takes 'http', 'close' and 'auto' (the default), nothing else", () => {
    assert.equal(resolveOptions({}).refusals, 'auto')
    for (const mode of ['http', 'close', 'auto'] as const) {
      assert.equal(resolveOptions({ refusals: mode }).refusals, mode)
    }
    for (const bad of ['sometimes', true, 'HTTP']) {
      assert.throws(
        () => resolveOptions({ refusals: bad as never }),
        (err) => err instanceof OptionError && /refusals must be/.test(err.message),
      )
    }
  })
})

describe('refusalClose', () => {
  it('is 4000 + the status with the reason; none for a status without a close code', () => {
    assert.deepEqual(refusalClose(new HttpError(401, 'authentication required')), {
      code: 4401,
      reason: 'authentication required',
    })
    assert.equal(refusalClose(new HttpError(499, 'client went away'))?.code, undefined)
    assert.equal(refusalClose(new HttpError(302, 'elsewhere')), null)
  })

  it("ends the reason with '; retry after N s' for a Retry-After, kept when the message is cut", () => {
    const retry = { 'Retry-After': '5' }
    assert.deepEqual(refusalClose(new HttpError(503, 'full', 'WSF_HTTP_503', retry)), {
      code: 4503,
      reason: 'full; retry after 5 s',
    })
    for (const value of ['12', 'Wed, 21 Oct 2015 07:28:00 GMT', '5 s', 'about 5', '']) {
      const told = refusalClose(
        new HttpError(503, 'full', 'WSF_HTTP_503', { 'Retry-After': value }),
      )
      assert.equal(told?.reason, value === '12' ? 'full; retry after 12 s' : 'full', value)
    }
    assert.equal(refusalClose(new HttpError(400, 'two\r\nlines'))?.reason, 'two lines')
    const long = refusalClose(new HttpError(429, 'é'.repeat(200), 'WSF_HTTP_429', retry))!
    assert.ok(Buffer.byteLength(long.reason) <= 123, 'fits a close frame')
    assert.match(long.reason, /^é+; retry after 5 s$/)
  })
})

/** Identity from the query: ?user=ann; ?deny=<status> refuses with that status. */
function identify(req: IncomingMessage) {
  const q = new URL(req.url ?? '/', 'http://x').searchParams
  const deny = q.get('deny')
  if (deny) throw new HttpError(Number(deny), `denied with ${deny}`)
  return { user: q.get('user'), groups: [], sessionKey: null }
}

/** A gate the memory engine's `get` (after the subscriptions, before the open) waits at. */
class HeldEngine extends MemoryEngine {
  #reached!: () => void
  readonly reached = new Promise<void>((resolve) => (this.#reached = resolve))
  #open!: () => void
  readonly #opened = new Promise<void>((resolve) => (this.#open = resolve))

  override async get(channels: string[]): Promise<(Buffer | null)[]> {
    this.#reached()
    await this.#opened
    return super.get(channels)
  }
  release(): void {
    this.#open()
  }
}

/** How a `ws` client offering `protocols` was closed, and whether it had opened. */
async function closeOf(
  url: string,
  protocols: string[] = ['wsfacility'],
  headers: Record<string, string> = {},
): Promise<{ protocol: string | null; code: number; reason: string }> {
  const ws = new WebSocket(url, protocols, { headers })
  ws.on('error', () => {})
  let protocol: string | null = null
  ws.on('open', () => (protocol = ws.protocol))
  const [code, reason] = (await once(ws, 'close')) as [number, Buffer]
  return { protocol, code, reason: reason.toString() }
}

/**
 * A client written by hand that offers `wsfacility` and never answers a close: what it received
 * after the server's 101, and when its socket closed.
 */
function silentClient(port: number, path: string) {
  const socket = net.connect(port, '127.0.0.1')
  let bytes = Buffer.alloc(0)
  let closed = false
  socket.on('data', (d: Buffer) => (bytes = Buffer.concat([bytes, d])))
  socket.on('error', () => {})
  const gone = new Promise<void>((resolve) =>
    socket.once('close', () => {
      closed = true
      resolve()
    }),
  )
  socket.write(
    `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\n` +
      `Connection: Upgrade\r\nSec-WebSocket-Key: ${SAMPLE_KEY}\r\nSec-WebSocket-Version: 13\r\n` +
      'Sec-WebSocket-Protocol: wsfacility\r\n\r\n',
  )
  const end = (): number => bytes.indexOf('\r\n\r\n')
  return {
    socket,
    gone,
    isClosed: () => closed,
    status: () => Number(/^HTTP\/1\.1 (\d{3})/.exec(bytes.toString('latin1', 0, 16))?.[1] ?? 0),
    /** Frames after the handshake answer: opcode, close code, text. */
    frames: () =>
      end() === -1
        ? []
        : framesOf(bytes.subarray(end() + 4)).map(({ opcode, payload }) =>
            opcode === 8
              ? { opcode, code: payload.readUInt16BE(0), text: payload.subarray(2).toString() }
              : { opcode, code: null, text: payload.toString() },
          ),
  }
}

describe('Refusals told by a close (option refusals)', () => {
  const servers: TestServer[] = []
  after(async () => {
    await Promise.all(servers.map((t) => t.close()))
  })
  async function serve(options: BrokerOptions = {}): Promise<TestServer> {
    const t = await startBroker({ identify, pingInterval: 0, ...options })
    servers.push(t)
    return t
  }

  it('keeps HTTP statuses for clients that do not offer wsfacility, and for all with refusals: http', async () => {
    const auto = await serve()
    // The ws package, curl, a load balancer's probe: what they always saw.
    assert.deepEqual(await upgradeStatus(auto.url('/ws/f?deny=401')), {
      status: 401,
      body: 'denied with 401\n',
    })
    const http = await serve({ refusals: 'http' })
    const offering = { 'Sec-WebSocket-Protocol': 'wsfacility' }
    assert.equal((await upgradeStatus(http.url('/ws/f?deny=401'), offering)).status, 401)
  })

  it('tells a refusal to a client offering wsfacility by close 4000 + status, with the reason', async () => {
    const t = await serve({ clientPublish: ['user'] })
    const refused: number[] = []
    t.broker.on('refused', (_req, status) => refused.push(status))
    const cases: [path: string, code: number, reason: string][] = [
      ['/ws/f?deny=401', CloseCode.REFUSED_UNAUTHORIZED, 'denied with 401'],
      ['/ws/f?deny=403', CloseCode.REFUSED_FORBIDDEN, 'denied with 403'],
      ['/ws/f?publish-broadcast', 4403, 'clients may not publish to broadcast'],
      ['/ws/a:b', CloseCode.REFUSED_BAD_REQUEST, 'facility contains ":"'],
      ['/ws/f?deny=418', 4418, 'denied with 418'],
    ]
    for (const [path, code, reason] of cases) {
      const seen = await closeOf(t.url(path))
      assert.deepEqual({ code: seen.code, reason: seen.reason }, { code, reason }, path)
    }
    assert.deepEqual(refused, [401, 403, 403, 400, 418])
    assert.equal(t.broker.stats.connections, 0)
  })

  it('answers a refusal with the wsfacility.refusal subprotocol when offered, never an open connection', async () => {
    const t = await serve()
    const both = ['wsfacility', 'wsfacility.refusal']
    assert.equal((await closeOf(t.url('/ws/f?deny=401'), both)).protocol, 'wsfacility.refusal')
    assert.equal((await closeOf(t.url('/ws/f?deny=401'))).protocol, 'wsfacility')
    const ws = new WebSocket(t.url('/ws/f'), both)
    await once(ws, 'open')
    assert.equal(ws.protocol, 'wsfacility')
    ws.close()
    await once(ws, 'close')
  })

  it('reads nothing but a close from a refused client: a larger frame cuts it at once', async () => {
    const t = await serve({ handshakeTimeout: 60_000 })
    const raw = silentClient(t.port, '/ws/f?deny=401')
    try {
      await eventually(() => raw.frames().length > 0)
      const payload = Buffer.alloc(1000, 'x')
      const head = Buffer.from([0x81, 0x80 | 126, 0, 0, 0, 0, 0, 0])
      head.writeUInt16BE(payload.length, 2)
      raw.socket.write(Buffer.concat([head, payload]))
      await eventually(() => raw.isClosed())
    } finally {
      raw.socket.destroy()
    }
  })

  it("with refusals: 'close' tells every well-formed handshake by a close; a malformed one by HTTP", async () => {
    const t = await serve({ refusals: 'close' })
    const plain = await closeOf(t.url('/ws/f?deny=401'), [])
    assert.deepEqual(
      { code: plain.code, reason: plain.reason },
      { code: 4401, reason: 'denied with 401' },
    )
    const badVersion = upgradeRequest('/ws/f?deny=401').replace('Version: 13', 'Version: 12')
    assert.equal(await rawStatus(t.port, badVersion), 426)
  })

  it('ends the reason of a 503 or a 429 with the Retry-After the HTTP refusal carries', async () => {
    const full = await serve({ maxConnections: 1 })
    const holder = await connect(full.url('/ws/f'))
    const limited = await closeOf(full.url('/ws/f'))
    assert.deepEqual(
      { code: limited.code, reason: limited.reason },
      {
        code: CloseCode.REFUSED_UNAVAILABLE,
        reason: 'too many connections on this server; retry after 5 s',
      },
    )
    await holder.close()

    const perUser = await serve({ maxConnectionsPerUser: 1 })
    const ann = await connect(perUser.url('/ws/f?user=ann'))
    const again = await closeOf(perUser.url('/ws/f?user=ann'))
    assert.deepEqual(
      { code: again.code, reason: again.reason },
      {
        code: CloseCode.REFUSED_TOO_MANY_REQUESTS,
        reason: 'too many connections for this user; retry after 5 s',
      },
    )
    const headers = await new Promise<IncomingMessage['headers']>((resolve) => {
      const ws = new WebSocket(perUser.url('/ws/f?user=ann'))
      ws.on('error', () => {})
      ws.on('unexpected-response', (_req, res) => {
        resolve(res.headers)
        res.resume()
      })
    })
    assert.equal(headers['retry-after'], '5', 'the HTTP 429 carries Retry-After too')
    await ann.close()
  })

  it('a refusal after the subscriptions registers nothing and delivers nothing while its socket lives', async () => {
    const engine = new HeldEngine()
    const t = await serve({ engine, handshakeTimeout: 300 })
    const announced: string[] = []
    t.broker.on('connection', () => announced.push('connection'))
    t.broker.on('disconnect', () => announced.push('disconnect'))
    const raw = silentClient(t.port, '/ws/f?subscribe-broadcast')
    try {
      await engine.reached
      assert.equal(t.broker.channelCount, 1, 'subscribed, waiting for the stored messages')
      assert.equal(await t.broker.publish(['broadcast:f'], 'held for the upgrade'), 1)
      // The handshake timeout refuses it (503) by a close; the client never answers the close.
      await eventually(() => raw.frames().length > 0)
      assert.equal(raw.status(), 101)
      assert.deepEqual(raw.frames(), [{ opcode: 8, code: 4503, text: 'handshake timed out' }])
      assert.equal(raw.isClosed(), false, 'the refused socket is still there')
      const { connections, upgrading, heldBytes, channels } = t.broker.stats
      assert.deepEqual(
        { connections, upgrading, heldBytes, channels },
        { connections: 0, upgrading: 0, heldBytes: 0, channels: 0 },
      )
      assert.equal(await t.broker.publish(['broadcast:f'], 'after the refusal'), 0)
      assert.equal(t.broker.connections.size, 0)
      // Not answered within handshakeTimeout: the broker cuts it.
      await raw.gone
      assert.deepEqual(
        raw.frames().map((f) => f.opcode),
        [8],
        'nothing but the close frame was ever sent',
      )
      assert.deepEqual(announced, [])
    } finally {
      engine.release()
      raw.socket.destroy()
    }
  })

  it('counts against maxConnections while the refused socket lives, and not after', async () => {
    const t = await serve({ maxConnections: 1, handshakeTimeout: 60_000 })
    const raw = silentClient(t.port, '/ws/f?deny=401')
    try {
      await eventually(() => raw.frames().length > 0)
      assert.deepEqual(raw.frames(), [{ opcode: 8, code: 4401, text: 'denied with 401' }])
      assert.equal((await upgradeStatus(t.url('/ws/f'))).status, 503, 'its slot is taken')
      raw.socket.write(closeFrame(4401))
      await raw.gone
      const c = await connect(t.url('/ws/f'))
      await c.close()
    } finally {
      raw.socket.destroy()
    }
  })

  it('cuts a refused socket whose client does not answer the close within handshakeTimeout', async () => {
    const t = await serve({ handshakeTimeout: 200 })
    const raw = silentClient(t.port, '/ws/f?deny=403')
    try {
      await eventually(() => raw.isClosed())
      assert.deepEqual(raw.frames(), [{ opcode: 8, code: 4403, text: 'denied with 403' }])
    } finally {
      raw.socket.destroy()
    }
  })

  it('cuts refused sockets still closing when the broker closes', async () => {
    const t = await startBroker({ identify, pingInterval: 0, handshakeTimeout: 60_000 })
    const raw = silentClient(t.port, '/ws/f?deny=401')
    try {
      await eventually(() => raw.frames().length > 0)
      await t.broker.close()
      await eventually(() => raw.isClosed())
    } finally {
      raw.socket.destroy()
      await t.close()
    }
  })

  it('keeps HTTP for a request with cookies from an origin it does not accept, even offering wsfacility', async () => {
    const t = await serve()
    const offering = { 'Sec-WebSocket-Protocol': 'wsfacility' }
    const foreign = { cookie: 'sid=victim', origin: 'https://evil.example' }
    // A foreign page reads close codes, not statuses: it learns nothing from the victim's cookies.
    assert.equal(
      (await upgradeStatus(t.url('/ws/f?deny=401'), { ...offering, ...foreign })).status,
      401,
    )
    const own = await closeOf(t.url('/ws/f?deny=401'), ['wsfacility'], {
      cookie: 'sid=mine',
      origin: `http://127.0.0.1:${t.port}`,
    })
    assert.equal(own.code, 4401)
    const noCookie = await closeOf(t.url('/ws/f?deny=401'), ['wsfacility'], {
      origin: 'https://evil.example',
    })
    assert.equal(noCookie.code, 4401)
  })

  it('names the refused origin and points to the origins option in the close reason', async () => {
    const t = await serve({ origins: ['https://app.example.com'] })
    const seen = await closeOf(t.url('/ws/f'), ['wsfacility'], { origin: 'https://evil.example' })
    assert.deepEqual(
      { code: seen.code, reason: seen.reason },
      {
        code: 4403,
        reason: 'origin https://evil.example not allowed: add it to the origins option (--origins)',
      },
    )
  })
})
