import WebSocket from 'ws'
import type { Connection } from '../connection/connection.js'
import { WsFacilityError } from '../errors.js'

/** What a TestSocket received: text as a string, binary as a Buffer. */
export type TestMessage = string | Buffer

/** How a socket closed. */
export interface CloseInfo {
  code: number
  reason: string
}

/**
 * A testing helper's expectation failed: `WSF_TIMEOUT` when what it waited for did not come in
 * time, `WSF_TEST_EXPECTATION` when a message came where none was expected or the socket closed
 * first. The message says what the socket had received.
 */
export class TestingError extends WsFacilityError {
  constructor(code: 'WSF_TIMEOUT' | 'WSF_TEST_EXPECTATION', message: string) {
    super(code, message)
  }
}

interface Waiter {
  resolve(message: TestMessage): void
  reject(err: Error): void
}

/** A short, printable form of a message for error messages. */
function show(message: TestMessage): string {
  if (typeof message !== 'string') return `<${message.length} bytes ${message.toString('hex')}>`
  return JSON.stringify(message.length > 200 ? `${message.slice(0, 200)}…` : message)
}

/**
 * One WebSocket client of a test broker, connected as the identity it was given. Every message it
 * receives is kept in order: `nextMessage()` hands out the oldest one not handed out yet, so a
 * message that arrives before the test asks for it is never lost. Plain promises, no test
 * framework: works under node:test, Vitest and Jest alike.
 */
/** The part of the `ws` client underneath a TestSocket that a test may use directly. */
export interface TestWebSocket {
  readonly readyState: number
  send(data: string | Uint8Array): void
  close(code?: number, reason?: string): void
  terminate(): void
}

export class TestSocket {
  readonly #ws: WebSocket
  /** What the test broker's socket stands for on the server side. */
  readonly connection: Connection
  readonly #received: TestMessage[]
  readonly #unread: TestMessage[]
  readonly #waiters = new Set<Waiter>()
  readonly #timeout: number
  readonly #label: string
  #closeInfo: CloseInfo | null = null
  readonly #closed: Promise<CloseInfo>

  /** The `ws` client underneath (for what the helpers do not cover). */
  get ws(): TestWebSocket {
    return this.#ws
  }

  /** @internal Made by `TestBroker.connect()` once the socket is open (`socket`: its `ws`
   * WebSocket, typed loosely so that the declarations need no `ws` types). */
  constructor(
    socket: unknown,
    connection: Connection,
    early: TestMessage[],
    timeout: number,
    label: string,
  ) {
    const ws = socket as WebSocket
    this.#ws = ws
    this.connection = connection
    this.#received = [...early]
    this.#unread = [...early]
    this.#timeout = timeout
    this.#label = label
    ws.on('message', (data: Buffer, binary: boolean) => {
      const message = binary ? data : data.toString('utf8')
      this.#received.push(message)
      const [waiter] = this.#waiters
      if (waiter) {
        this.#waiters.delete(waiter)
        waiter.resolve(message)
      } else this.#unread.push(message)
    })
    this.#closed = new Promise((resolve) => {
      ws.once('close', (code: number, reason: Buffer) => {
        this.#closeInfo = { code, reason: reason.toString() }
        for (const waiter of this.#waiters) {
          waiter.reject(this.#fail(`closed with ${code} before a message arrived`))
        }
        this.#waiters.clear()
        resolve(this.#closeInfo)
      })
    })
  }

  /** Every message received so far, in order (including those handed out by nextMessage). */
  get received(): readonly TestMessage[] {
    return this.#received
  }

  /** How the socket closed, or null while it is open. */
  get closeInfo(): CloseInfo | null {
    return this.#closeInfo
  }

  #fail(what: string, code: 'WSF_TIMEOUT' | 'WSF_TEST_EXPECTATION' = 'WSF_TEST_EXPECTATION') {
    const got = this.#received.map(show).join(', ')
    return new TestingError(code, `${this.#label}: ${what} (received so far: [${got}])`)
  }

  /**
   * The oldest message not handed out yet, waiting for one if need be; rejects (`WSF_TIMEOUT`)
   * after `timeout` ms, or (`WSF_TEST_EXPECTATION`) when the socket closes first.
   * @default timeout: the test broker's `timeout`
   */
  nextMessage(timeout = this.#timeout): Promise<TestMessage> {
    const message = this.#unread.shift()
    if (message !== undefined) return Promise.resolve(message)
    if (this.#closeInfo) {
      const { code } = this.#closeInfo
      return Promise.reject(this.#fail(`closed with ${code}, no message left`))
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters.delete(waiter)
        reject(this.#fail(`no message within ${timeout} ms`, 'WSF_TIMEOUT'))
      }, timeout)
      const waiter: Waiter = {
        resolve: (m) => {
          clearTimeout(timer)
          resolve(m)
        },
        reject: (err) => {
          clearTimeout(timer)
          reject(err)
        },
      }
      this.#waiters.add(waiter)
    })
  }

  /** The next message, parsed as JSON (a binary one is rejected). */
  async nextJson<T = unknown>(timeout = this.#timeout): Promise<T> {
    const message = await this.nextMessage(timeout)
    if (typeof message !== 'string') throw this.#fail(`expected JSON text, got ${show(message)}`)
    try {
      return JSON.parse(message) as T
    } catch {
      throw this.#fail(`expected JSON text, got ${show(message)}`)
    }
  }

  /**
   * Resolves when no message arrives for `ms` ms (none left unread either); rejects with
   * `WSF_TEST_EXPECTATION` naming the message otherwise. Closing is not a message.
   */
  nothingWithin(ms: number): Promise<void> {
    const pending = this.#unread[0]
    if (pending !== undefined) {
      return Promise.reject(this.#fail(`expected no message, but ${show(pending)} is unread`))
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters.delete(waiter)
        resolve()
      }, ms)
      const waiter: Waiter = {
        resolve: (m) => {
          clearTimeout(timer)
          // Handed to the test in the rejection, so it is not left unread for the next helper.
          reject(this.#fail(`expected no message within ${ms} ms, got ${show(m)}`))
        },
        reject: () => {
          clearTimeout(timer)
          resolve()
        },
      }
      this.#waiters.add(waiter)
    })
  }

  /** Sends text or bytes; resolves once written to the socket. */
  send(data: string | Buffer | Uint8Array): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#ws.send(data, { binary: typeof data !== 'string' }, (err) =>
        err ? reject(err) : resolve(),
      )
    })
  }

  /** Sends a value as one JSON text frame. */
  sendJson(value: unknown): Promise<void> {
    return this.send(JSON.stringify(value))
  }

  /**
   * Resolves with the close code and reason once the socket is closed (at once if it is), whoever
   * closed it; rejects (`WSF_TIMEOUT`) if it is still open after `timeout` ms.
   */
  closed(timeout = this.#timeout): Promise<CloseInfo> {
    if (this.#closeInfo) return Promise.resolve(this.#closeInfo)
    let timer: NodeJS.Timeout | undefined
    const late = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(
        () => reject(this.#fail(`still open after ${timeout} ms`, 'WSF_TIMEOUT')),
        timeout,
      )
    })
    return Promise.race([this.#closed, late]).finally(() => clearTimeout(timer))
  }

  /** Closes from the client side and resolves with the close the server answered. */
  close(code = 1000, reason = ''): Promise<CloseInfo> {
    if (!this.#closeInfo && this.#ws.readyState !== WebSocket.CLOSING) this.#ws.close(code, reason)
    return this.#closed
  }

  /** Cuts the TCP connection without a close handshake (a client that vanished). */
  terminate(): Promise<CloseInfo> {
    this.#ws.terminate()
    return this.#closed
  }
}
