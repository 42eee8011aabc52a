import assert from 'node:assert/strict'
import { once } from 'node:events'
import http from 'node:http'
import WebSocket from 'ws'
import {
  type Broker,
  type BrokerOptions,
  type CloseOptions,
  type Connection,
  createBroker,
} from '../../src/index.js'
import { listen } from './http.js'

/** A broker attached to an HTTP server listening on 127.0.0.1, port 0. */
export interface TestServer {
  broker: Broker
  server: http.Server
  port: number
  /** `ws://127.0.0.1:PORT` + path. */
  url(path: string): string
  /** Closes the broker (with `options`), then the HTTP server. */
  close(options?: CloseOptions): Promise<void>
}

/** Starts an HTTP server with a broker attached, on `listenPort` (0: any free port). */
export async function startBroker(
  options: BrokerOptions = {},
  listenPort = 0,
): Promise<TestServer> {
  const broker = createBroker(options)
  broker.on('error', () => {})
  const server = http.createServer((req, res) => {
    if (!broker.handleRequest(req, res)) res.writeHead(404).end()
  })
  broker.attach(server)
  await broker.ready()
  const listening = await listen(server, listenPort)
  const { port } = listening
  return {
    broker,
    server,
    port,
    url: (path) => `ws://127.0.0.1:${port}${path}`,
    async close(options) {
      await broker.close(options)
      await listening.close()
    },
  }
}

/** A received message. */
export interface Received {
  data: string | Buffer
  binary: boolean
}

/** A WebSocket client that records everything it receives. */
export class TestClient {
  readonly ws: WebSocket
  readonly received: Received[] = []
  #waiters: (() => void)[] = []

  constructor(url: string, options?: WebSocket.ClientOptions) {
    this.ws = new WebSocket(url, options)
    this.ws.on('message', (data: Buffer, binary) => {
      this.received.push({ data: binary ? data : data.toString('utf8'), binary })
      for (const w of this.#waiters.splice(0)) w()
    })
    this.ws.on('error', () => {})
  }

  /** Texts received so far (binary messages as hex). */
  get texts(): string[] {
    return this.received.map((r) =>
      r.binary ? (r.data as Buffer).toString('hex') : (r.data as string),
    )
  }

  /** Resolves when the handshake completed. */
  async opened(): Promise<this> {
    if (this.ws.readyState === WebSocket.OPEN) return this
    await once(this.ws, 'open')
    return this
  }

  /** Resolves once at least `n` messages arrived; rejects after `ms`. */
  async waitFor(n: number, ms = 5000): Promise<Received[]> {
    const deadline = Date.now() + ms
    while (this.received.length < n) {
      const left = deadline - Date.now()
      if (left <= 0)
        throw new Error(
          `expected ${n} messages, got ${this.received.length}: ${JSON.stringify(this.texts)}`,
        )
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left)
        this.#waiters.push(() => {
          clearTimeout(t)
          resolve()
        })
      })
    }
    return this.received
  }

  /** Sends and waits until the frame is written. */
  send(data: string | Buffer, binary?: boolean): Promise<void> {
    return new Promise((resolve, reject) =>
      this.ws.send(data, { binary: binary ?? Buffer.isBuffer(data) }, (err) =>
        err ? reject(err) : resolve(),
      ),
    )
  }

  /** Closes and waits for the close to complete; resolves to the close code seen. */
  async close(code?: number, reason?: string): Promise<number> {
    if (this.ws.readyState === WebSocket.CLOSED) return 1005
    const closed = once(this.ws, 'close') as Promise<[number, Buffer]>
    this.ws.close(code, reason)
    const [c] = await closed
    return c
  }

  /** Resolves to the close code the server sent. */
  async closedByServer(): Promise<{ code: number; reason: string }> {
    if (this.ws.readyState === WebSocket.CLOSED) throw new Error('already closed')
    const [code, reason] = (await once(this.ws, 'close')) as [number, Buffer]
    return { code, reason: reason.toString() }
  }
}

/** Opens a client and waits for the handshake. */
export function connect(url: string, options?: WebSocket.ClientOptions): Promise<TestClient> {
  return new TestClient(url, options).opened()
}

/** Resolves to the HTTP status (and body) an upgrade attempt was refused with. */
export function upgradeStatus(
  url: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers })
    ws.on('unexpected-response', (_req, res) => {
      let body = ''
      res.on('data', (d: Buffer) => (body += d.toString()))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }))
    })
    ws.on('open', () => {
      ws.close()
      reject(new Error('upgrade unexpectedly succeeded'))
    })
    ws.on('error', (err) => {
      if (!String(err).includes('Unexpected server response')) reject(err)
    })
  })
}

/** Waits `ms` milliseconds. */
export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

/** Polls `check` until it returns true, at most `ms`. */
export async function eventually(
  check: () => boolean | Promise<boolean>,
  ms = 5000,
): Promise<void> {
  const deadline = Date.now() + ms
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not met in time')
    await sleep(20)
  }
}

/** Every text frame `client` received, parsed as JSON. */
export const frames = (client: TestClient): unknown[] =>
  client.texts.map((t) => JSON.parse(t) as unknown)

/** Waits for the `n`th message of `client` and returns it parsed as JSON. */
export async function frame(client: TestClient, n: number): Promise<unknown> {
  await client.waitFor(n)
  return JSON.parse(client.texts[n - 1]!) as unknown
}

/** Sends a JSON value as one text frame. */
export const sendJson = (client: TestClient, value: unknown): Promise<void> =>
  client.send(JSON.stringify(value))

let facilitySeq = 0
/** A facility name no other test of this process uses: `name` and a number. */
export const fresh = (name: string): string => `${name}${++facilitySeq}`

/** The one connection of `facility` on `broker` (asserts there is exactly one). */
export function connectionOf(broker: Broker, facility: string): Connection {
  const conns = [...broker.connections.values()].filter((c) => c.facility === facility)
  assert.equal(conns.length, 1, `expected one connection on ${facility}`)
  return conns[0]!
}

/** Closes every client given, whatever state it is in. */
export async function closeAll(...clients: TestClient[]): Promise<void> {
  await Promise.all(clients.map((c) => c.close()))
}
