import assert from 'node:assert/strict'
import { once } from 'node:events'
import WebSocket from 'ws'
import type { TestRedisClient } from './redis.js'
import { eventually, sleep } from './ws.js'

/** A position in one channel's history, as data and `recovered` frames carry it. */
export interface Position {
  epoch: string
  offset: number
}

/** A `{"type":"data"}` frame of a facility with history. */
export interface DataFrame {
  type: 'data'
  channel: string
  epoch: string
  offset: number
  data: unknown
}

/** A `{"type":"recovered"}` frame. */
export interface RecoveredFrame {
  type: 'recovered'
  recovered: boolean
  channels: Record<string, { epoch: string; offset: number; recovered: boolean; missed: number }>
}

/** The `recover` query parameter for `positions` (label → position), URL-encoded. */
export function recoverParam(positions: Record<string, Position>): string {
  return `recover=${encodeURIComponent(JSON.stringify(positions))}`
}

/**
 * A json client of a facility with history, over the `ws` package, that reconnects by hand the
 * way an application would: it remembers the position of the last data frame of each channel and
 * builds the `recover` parameter from them. Everything received over all its connections is kept
 * in order (`frames`, `data`), one list per connection too (`connections`).
 */
export class HistoryClient {
  /** Every parsed text frame, over all connections, in arrival order. */
  readonly frames: unknown[] = []
  /** Frames of each connection, in order. */
  readonly connections: unknown[][] = []
  /** Position of the last data frame of each channel label. */
  readonly positions: Record<string, Position> = {}
  ws: WebSocket | null = null
  #waiters = new Set<() => void>()

  /** Data frames received so far. */
  get data(): DataFrame[] {
    return this.frames.filter((f): f is DataFrame => (f as DataFrame).type === 'data')
  }

  /** `recovered` frames received so far. */
  get recovered(): RecoveredFrame[] {
    return this.frames.filter(
      (f): f is RecoveredFrame => (f as RecoveredFrame).type === 'recovered',
    )
  }

  /** Data frames of one channel label. */
  dataOf(label: string): DataFrame[] {
    return this.data.filter((f) => f.channel === label)
  }

  /** `url` with the recover parameter of the positions it has (as is when it has none). */
  recoverUrl(url: string): string {
    if (Object.keys(this.positions).length === 0) return url
    return `${url}${url.includes('?') ? '&' : '?'}${recoverParam(this.positions)}`
  }

  /** Opens a connection to `url` and waits for its handshake. */
  async open(url: string): Promise<this> {
    const ws = new WebSocket(url)
    const mine: unknown[] = []
    this.connections.push(mine)
    this.ws = ws
    ws.on('error', () => {})
    ws.on('message', (raw: Buffer, binary) => {
      if (binary) throw new Error('unexpected binary frame')
      const value = JSON.parse(raw.toString('utf8')) as unknown
      mine.push(value)
      this.frames.push(value)
      const f = value as DataFrame
      if (f.type === 'data' && typeof f.channel === 'string')
        this.positions[f.channel] = { epoch: f.epoch, offset: f.offset }
      for (const w of this.#waiters) w()
    })
    ws.on('close', () => {
      for (const w of this.#waiters) w()
    })
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve())
      ws.once('unexpected-response', (_req, res) =>
        reject(new Error(`upgrade refused: ${res.statusCode}`)),
      )
      ws.once('close', () => reject(new Error('closed before it opened')))
    })
    return this
  }

  /** Opens a connection to `url` with the recover parameter of its positions. */
  reconnect(url: string): Promise<this> {
    return this.open(this.recoverUrl(url))
  }

  /** True while the current connection is open. */
  get isOpen(): boolean {
    return this.ws?.readyState === WebSocket.OPEN
  }

  /** Resolves once the current connection has closed (from either side). */
  async closed(): Promise<void> {
    const ws = this.ws
    if (!ws || ws.readyState === WebSocket.CLOSED) return
    await once(ws, 'close')
  }

  /** Waits (bounded) until `check` holds, re-checking on every frame and close. */
  async until(check: () => boolean, what: string, ms = 15_000): Promise<void> {
    if (check()) return
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters.delete(w)
        reject(
          new Error(
            `${what}: not within ${ms} ms; last frames ${JSON.stringify(this.frames.slice(-5))}`,
          ),
        )
      }, ms)
      const w = (): void => {
        if (!check()) return
        clearTimeout(timer)
        this.#waiters.delete(w)
        resolve()
      }
      this.#waiters.add(w)
    })
  }

  /** Waits for the `n`th `recovered` frame over all connections and returns it. */
  async recoveredFrame(n = 1): Promise<RecoveredFrame> {
    await this.until(() => this.recovered.length >= n, `recovered frame #${n}`)
    return this.recovered[n - 1]!
  }

  /** Waits until `label`'s last data frame is `n` (payloads `{ n }`). */
  async untilN(label: string, n: number): Promise<void> {
    await this.until(
      () => this.dataOf(label).some((f) => (f.data as { n: number }).n === n),
      `${label} n=${n}`,
    )
  }

  /** Terminates the current connection. */
  terminate(): void {
    this.ws?.terminate()
  }
}

/**
 * Asserts that `frames` carry payloads `{ n: 0 }` … `{ n: count - 1 }` in order, each once, with
 * consecutive offsets of one epoch.
 */
export function assertExactlyOnce(frames: readonly DataFrame[], count: number): void {
  const ns = frames.map((f) => (f.data as { n: number }).n)
  const expected = Array.from({ length: count }, (_, i) => i)
  if (ns.length !== count || ns.some((n, i) => n !== i)) {
    const dupes = ns.filter((n, i) => ns.indexOf(n) !== i)
    const missing = expected.filter((n) => !ns.includes(n))
    assert.fail(
      `expected n = 0..${count - 1} once each in order; got ${ns.length} frames, ` +
        `duplicates ${JSON.stringify(dupes.slice(0, 20))}, missing ${JSON.stringify(missing.slice(0, 20))}`,
    )
  }
  for (let i = 1; i < frames.length; i++) {
    assert.equal(frames[i]!.epoch, frames[0]!.epoch, 'one epoch')
    assert.equal(
      frames[i]!.offset,
      frames[i - 1]!.offset + 1,
      `offset after ${frames[i - 1]!.offset}`,
    )
  }
}

/** Publishes `payload` on `channel` with history through the `wsfacility` Redis function. */
export async function fcallPublish(
  redis: TestRedisClient,
  channel: string,
  payload: string,
  options: { size: number; ttl: number },
  fn = 'wsfacility_publish',
): Promise<number> {
  const args = [channel, payload, String(options.size), String(options.ttl)]
  return Number(await redis.sendCommand(['FCALL', fn, '1', ...args]))
}

/** Waits until the broker has loaded the `wsfacility` function library on `redis`. */
export async function libraryLoaded(redis: TestRedisClient): Promise<void> {
  await eventually(async () => {
    const list = (await redis.sendCommand([
      'FUNCTION',
      'LIST',
      'LIBRARYNAME',
      'wsfacility',
    ])) as unknown[]
    return list.length > 0
  }, 10_000)
}

/**
 * Publishes `{ n: 0 }`, `{ n: 1 }`, … one after the other with `publish` until `stop()`, which
 * resolves to how many were published. Each publish is awaited; `pause` ms between them keeps the
 * stream going while a test cuts and restores things.
 */
export function keepPublishing(
  publish: (payload: string, n: number) => Promise<unknown>,
  pause = 2,
): { readonly count: number; stop(): Promise<number> } {
  let n = 0
  let stopped = false
  const loop = (async () => {
    while (!stopped) {
      await publish(JSON.stringify({ n }), n)
      n++
      await sleep(pause)
    }
  })()
  // Seen by stop(); not an unhandled rejection meanwhile.
  loop.catch(() => {})
  return {
    get count() {
      return n
    },
    async stop() {
      stopped = true
      await loop
      return n
    },
  }
}
