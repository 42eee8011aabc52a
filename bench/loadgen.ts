/**
 * A light WebSocket load generator: raw TCP sockets that complete the handshake (and, for
 * Socket.IO, its Engine.IO open and Socket.IO connect packets), then parse only frame headers and
 * count data frames. A sample of sockets also reads the send timestamp a message carries, for
 * latency. No WebSocket library on the receive side, so its CPU per delivery stays far below a
 * server's and "deliveries/s" measures the server.
 *
 * With `track` (json facilities with history, the reconnect runs only) each socket also reads its
 * text frames whole: it keeps the channel position of the last data frame (or `recovered` frame),
 * can reconnect with it as `?recover=`, and checks that it got every missed message in order
 * before the `recovered` frame.
 */
import { randomBytes } from 'node:crypto'
import net from 'node:net'

/** What the sockets speak: plain WebSocket (wsfacility) or Socket.IO 4 over the websocket transport. */
export type Protocol = 'ws' | 'sio'

/** Options of LoadGenerator. */
export interface LoadGeneratorOptions {
  /** Port of the server on 127.0.0.1 (the only host ever used: load stays on this machine). */
  port: number
  protocol: Protocol
  /** One socket in `sampleEvery` reads timestamps for latency. @default 20 */
  sampleEvery?: number
  /** Read json frames whole to follow channel positions and recoveries (ws only). @default false */
  track?: boolean
}

/** Counters since the last `reset()`. */
export interface LoadStats {
  /** Sockets whose handshake completed and that are still open. */
  open: number
  /** Sockets closed by the server (close frame or end of stream) since the last reset. */
  closedByServer: number
  /** Data frames received (Socket.IO: event packets only). */
  frames: number
  /** When the last data frame arrived (µs, process.hrtime clock, shared by all processes). */
  lastFrameAt: number
  /** Latency samples publish→receive in µs, sorted summary. */
  latency: { count: number; p50: number; p99: number; max: number }
}

const SAMPLE_LIMIT = 1_000_000
/** Every read of the process lands here and is parsed before the next one (one thread). */
const READ_BUFFER = Buffer.allocUnsafe(256 * 1024)
/** Bytes of a data frame's start kept for its timestamp; control frames keep up to 125. */
const CAPTURE = 48
/** Bytes of a data frame kept when tracking positions (a bench frame with its position is ~170). */
const TRACK_CAPTURE = 1024
const OFFSET_KEY = Buffer.from('"offset":')
const EPOCH_KEY = Buffer.from('"epoch":"')

/** Where a tracked socket stands in its channel's history. */
export interface Position {
  epoch: string | null
  offset: number
}

/** Summary of durations in µs. */
export interface Durations {
  count: number
  p50: number
  p99: number
  max: number
}

/** Figures of the last `reconnect()` (tracked sockets). */
export interface RecoveryStats {
  /** When the reconnect started (µs, the shared monotonic clock). */
  startedAt: number
  /** Sockets whose handshake completed. */
  ready: number
  /** When the last handshake completed (µs). */
  lastReadyAt: number
  /** Sockets that got a `recovered: true` frame after exactly the missed messages, in order. */
  recovered: number
  /** Sockets whose `recovered` frame said false, or that missed or reordered a message. */
  failed: number
  /** Data frames received before the `recovered` frame, all sockets together. */
  missedFrames: number
  /** When the last `recovered` frame arrived (µs). */
  lastRecoveredAt: number
  /** Per socket: connect start → handshake done. */
  readyTime: Durations
  /** Per socket: connect start → `recovered` frame. */
  recoveryTime: Durations
}

function summary(values: number[]): Durations {
  if (values.length === 0) return { count: 0, p50: 0, p99: 0, max: 0 }
  const s = Float64Array.from(values).sort()
  const at = (q: number): number => s[Math.min(s.length - 1, Math.floor(q * s.length))]!
  return { count: s.length, p50: at(0.5), p99: at(0.99), max: s[s.length - 1]! }
}

interface RecoveredFrame {
  recovered?: boolean
  channels?: Record<string, { epoch: string; offset: number; missed: number }>
}

/** Microseconds on the monotonic clock every process of the machine shares. */
export function nowMicros(): number {
  return Number(process.hrtime.bigint() / 1000n)
}

/** Bytes of each bench message (the timestamp, a sequence number, padding). */
export const MESSAGE_BYTES = 100

/** A bench message: its send time (read for latency), `seq`, padding to MESSAGE_BYTES. */
export function benchMessage(seq: number): string {
  const head = `@${String(nowMicros()).padStart(16, '0')}|${seq}|`
  return head.padEnd(MESSAGE_BYTES, 'x')
}

/** A masked client→server frame (RFC 6455 §5.3: clients must mask). */
export function clientFrame(opcode: number, payload: Buffer): Buffer {
  const len = payload.length
  const ext = len < 126 ? 0 : 2
  const out = Buffer.allocUnsafe(2 + ext + 4 + len)
  out[0] = 0x80 | opcode
  out[1] = 0x80 | (ext ? 126 : len)
  if (ext) out.writeUInt16BE(len, 2)
  const mask = randomBytes(4)
  mask.copy(out, 2 + ext)
  for (let i = 0; i < len; i++) out[2 + ext + 4 + i] = payload[i]! ^ mask[i & 3]!
  return out
}

/**
 * The send timestamp a bench message carries: `@` and 16 digits of µs, found in the first bytes
 * of the payload (Socket.IO wraps it as `42["m","@…`).
 */
export function readStamp(bytes: Buffer, length: number): number {
  const at = bytes.indexOf(0x40)
  if (at === -1 || at + 17 > length) return -1
  let v = 0
  for (let i = at + 1; i < at + 17; i++) v = v * 10 + (bytes[i]! - 48)
  return v
}

class Client {
  readonly #gen: LoadGenerator
  readonly socket: net.Socket
  readonly #sampled: boolean
  #handshake: Buffer | null = Buffer.alloc(0)
  #ready = false
  #onReady: ((ok: boolean) => void) | null
  readonly #hdr = Buffer.alloc(14)
  #hdrLen = 0
  #remaining = 0
  #opcode = 0
  #capture: Buffer | null = null
  #captured = 0
  #frameLen = 0
  closed = false
  /** Tracking: position of the last data or `recovered` frame. */
  readonly position: Position = { epoch: null, offset: 0 }
  /** Tracking: whether this socket is recovering (until its `recovered` frame), and its progress. */
  #recovering: boolean
  #missed = 0
  #inOrder = true
  readonly startedAt = nowMicros()

  constructor(
    gen: LoadGenerator,
    path: string,
    sampled: boolean,
    onReady: (ok: boolean) => void,
    recoverFrom: Position | null = null,
  ) {
    this.#gen = gen
    this.#sampled = sampled
    this.#onReady = onReady
    this.#recovering = recoverFrom !== null
    if (recoverFrom) Object.assign(this.position, recoverFrom)
    // `onread` hands each read to us in one reused buffer: no Buffer and no stream event per read,
    // the biggest cost of a receiver that only counts frames.
    this.socket = net.connect({
      port: gen.port,
      host: '127.0.0.1',
      onread: {
        buffer: READ_BUFFER,
        callback: (n: number, buf: Uint8Array) => {
          this.#onData(Buffer.from(buf.buffer, buf.byteOffset, n))
          return true
        },
      },
    })
    this.socket.setNoDelay(true)
    this.socket.on('connect', () => {
      const key = randomBytes(16).toString('base64')
      this.socket.write(
        `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${gen.port}\r\nUpgrade: websocket\r\n` +
          `Connection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
      )
    })
    this.socket.on('error', () => {})
    this.socket.on('close', () => this.#onClose())
  }

  #settle(ok: boolean): void {
    const cb = this.#onReady
    this.#onReady = null
    cb?.(ok)
  }

  #onClose(): void {
    if (this.closed) return
    this.closed = true
    this.#settle(false)
    this.#gen.onClosed(this, this.#ready)
  }

  #onData(chunk: Buffer): void {
    let i = 0
    if (this.#handshake) {
      const all = Buffer.concat([this.#handshake, chunk])
      const end = all.indexOf('\r\n\r\n')
      if (end === -1) {
        this.#handshake = all
        return
      }
      this.#handshake = null
      if (!all.subarray(0, 13).toString('latin1').startsWith('HTTP/1.1 101')) {
        this.socket.destroy()
        return
      }
      if (this.#gen.protocol === 'ws') this.#markReady()
      chunk = all.subarray(end + 4)
    }
    const hdr = this.#hdr
    while (i < chunk.length) {
      if (this.#remaining > 0) {
        const take = Math.min(this.#remaining, chunk.length - i)
        const cap = this.#capture
        const limit = this.#opcode >= 8 ? 125 : this.#gen.capture
        if (cap && this.#captured < limit) {
          const n = Math.min(take, limit - this.#captured)
          chunk.copy(cap, this.#captured, i, i + n)
          this.#captured += n
        }
        i += take
        this.#remaining -= take
        if (this.#remaining === 0) this.#endFrame()
        continue
      }
      hdr[this.#hdrLen++] = chunk[i++]!
      if (this.#hdrLen < 2) continue
      const len7 = hdr[1]! & 0x7f
      const need = 2 + (len7 === 126 ? 2 : len7 === 127 ? 8 : 0) + (hdr[1]! & 0x80 ? 4 : 0)
      if (this.#hdrLen < need) continue
      this.#opcode = hdr[0]! & 0x0f
      this.#frameLen =
        len7 === 126 ? hdr.readUInt16BE(2) : len7 === 127 ? Number(hdr.readBigUInt64BE(2)) : len7
      this.#remaining = this.#frameLen
      this.#hdrLen = 0
      // Control frames and every Socket.IO packet need their first bytes; data frames only on
      // sampled sockets.
      const gen = this.#gen
      const wantBytes = this.#opcode >= 8 || gen.protocol === 'sio' || this.#sampled || gen.track
      this.#capture = wantBytes
        ? (this.#capture ?? Buffer.allocUnsafe(Math.max(125, gen.capture)))
        : null
      this.#captured = 0
      if (this.#remaining === 0) this.#endFrame()
    }
  }

  #markReady(): void {
    this.#ready = true
    this.#gen.onReady(this)
    this.#settle(true)
  }

  /** A text frame of a json facility, read whole: its position, or the `recovered` frame. */
  #trackFrame(cap: Buffer, n: number): void {
    // `{"type":"` is 9 bytes: the type's first letter tells `recovered` frames from data frames.
    if (cap[9] === 0x72) return this.#onRecovered(JSON.parse(cap.toString('utf8', 0, n)))
    const at = cap.indexOf(OFFSET_KEY)
    if (at !== -1 && at < n) {
      let v = 0
      for (let i = at + OFFSET_KEY.length; i < n; i++) {
        const c = cap[i]!
        if (c < 48 || c > 57) break
        v = v * 10 + c - 48
      }
      if (this.#recovering) {
        if (v !== this.position.offset + 1) this.#inOrder = false
        this.#missed++
      }
      this.position.offset = v
      if (this.position.epoch === null) {
        const e = cap.indexOf(EPOCH_KEY)
        const end = e === -1 ? -1 : cap.indexOf(0x22, e + EPOCH_KEY.length)
        if (end !== -1 && end < n)
          this.position.epoch = cap.toString('latin1', e + EPOCH_KEY.length, end)
      }
    }
    this.#gen.onFrame(this.#sampled ? readStamp(cap, n) : -1)
  }

  #onRecovered(frame: RecoveredFrame): void {
    const ch = frame.channels ? Object.values(frame.channels)[0] : undefined
    if (this.#recovering) {
      this.#recovering = false
      const ok =
        frame.recovered === true &&
        this.#inOrder &&
        ch !== undefined &&
        ch.missed === this.#missed &&
        ch.offset === this.position.offset
      this.#gen.onRecovered(this, ok, this.#missed)
    }
    if (ch) {
      this.position.epoch = ch.epoch
      this.position.offset = ch.offset
    }
  }

  #endFrame(): void {
    const op = this.#opcode
    const cap = this.#capture
    if (op === 0x9) {
      // Ping → pong with the same payload (the broker drops clients that miss one).
      this.socket.write(clientFrame(0xa, Buffer.from(cap!.subarray(0, this.#captured))))
      return
    }
    if (op === 0x8) {
      this.socket.end()
      return
    }
    if (op !== 0x1 && op !== 0x2) return
    if (this.#gen.track && op === 0x1) return this.#trackFrame(cap!, this.#captured)
    if (this.#gen.protocol === 'sio') {
      const c0 = cap![0]
      if (c0 === 0x32 && this.#frameLen === 1) {
        // Engine.IO ping "2" → pong "3", or the server drops the client after pingTimeout.
        this.socket.write(clientFrame(0x1, Buffer.from('3')))
        return
      }
      if (c0 === 0x30) {
        // Engine.IO open packet → Socket.IO connect to the main namespace (with auth).
        this.socket.write(clientFrame(0x1, Buffer.from(`40${this.#gen.auth(this)}`)))
        return
      }
      if (c0 !== 0x34) return
      if (cap![1] === 0x30) {
        if (!this.#ready) this.#markReady()
        return
      }
      if (cap![1] !== 0x32) return
    }
    this.#gen.onFrame(this.#sampled ? readStamp(cap!, this.#captured) : -1)
  }
}

/** Many raw WebSocket clients to one server on 127.0.0.1, with counters for the bench. */
export class LoadGenerator {
  readonly port: number
  readonly protocol: Protocol
  /** @internal */
  readonly track: boolean
  /** @internal Bytes kept of each data frame that is read. */
  readonly capture: number
  readonly #sampleEvery: number
  readonly #clients: Client[] = []
  readonly #auth = new Map<Client, string>()
  #open = 0
  #closedByServer = 0
  #closing = false
  #frames = 0
  #lastFrameAt = 0
  #samples: number[] = []
  /** Positions of the sockets `closeAll()` closed (tracking), for `reconnect()`. */
  #dropped: Position[] = []
  #recovery = LoadGenerator.#freshRecovery()
  #readyTimes: number[] = []
  #recoveryTimes: number[] = []

  constructor(options: LoadGeneratorOptions) {
    this.port = options.port
    this.protocol = options.protocol
    this.track = options.track === true && options.protocol === 'ws'
    this.capture = this.track ? TRACK_CAPTURE : CAPTURE
    this.#sampleEvery = options.sampleEvery ?? 20
  }

  static #freshRecovery() {
    return {
      startedAt: 0,
      ready: 0,
      lastReadyAt: 0,
      recovered: 0,
      failed: 0,
      missedFrames: 0,
      lastRecoveredAt: 0,
    }
  }

  /**
   * Opens `count` sockets, `concurrency` handshakes at a time; `path(i)` is the request target of
   * socket i and `auth(i)` its Socket.IO auth object (JSON). Resolves with how many completed.
   */
  async connect(
    count: number,
    path: (i: number) => string,
    auth: (i: number) => object | null = () => null,
    concurrency = 100,
    recoverFrom: (i: number) => Position | null = () => null,
  ): Promise<number> {
    let next = 0
    let ok = 0
    const base = this.#clients.length
    const worker = async (): Promise<void> => {
      while (next < count) {
        const i = next++
        const done = await new Promise<boolean>((resolve) => {
          const sampled = (base + i) % this.#sampleEvery === 0
          const c = new Client(this, path(i), sampled, resolve, recoverFrom(i))
          const a = auth(i)
          if (a) this.#auth.set(c, JSON.stringify(a))
          this.#clients.push(c)
        })
        if (done) ok++
      }
    }
    await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker))
    return ok
  }

  /** @internal Socket.IO auth payload of a client. */
  auth(client: Client): string {
    return this.#auth.get(client) ?? ''
  }

  /**
   * Tracking: opens again as many sockets as `closeAll()` closed, on `path` (a broadcast
   * subscription); with `recover`, each asks for what it missed since its own last position
   * (`&recover=` {"broadcast": {epoch, offset}}) and checks what it gets. Resolves with how many
   * handshakes completed; `recoveryStats()` says how the recoveries went.
   */
  reconnect(path: string, recover: boolean, concurrency = 100): Promise<number> {
    const positions = this.#dropped
    this.#dropped = []
    this.#recovery = LoadGenerator.#freshRecovery()
    this.#recovery.startedAt = nowMicros()
    this.#readyTimes = []
    this.#recoveryTimes = []
    const from = (i: number): Position | null =>
      recover && positions[i]!.epoch !== null ? positions[i]! : null
    return this.connect(
      positions.length,
      (i) => {
        const p = from(i)
        if (!p) return path
        const param = JSON.stringify({ broadcast: { epoch: p.epoch, offset: p.offset } })
        return `${path}&recover=${encodeURIComponent(param)}`
      },
      () => null,
      concurrency,
      (i) => (from(i) ? { ...positions[i]! } : null),
    )
  }

  /** Figures of the last reconnect (tracking). */
  recoveryStats(): RecoveryStats {
    return {
      ...this.#recovery,
      readyTime: summary(this.#readyTimes),
      recoveryTime: summary(this.#recoveryTimes),
    }
  }

  /** @internal */
  onReady(client: Client): void {
    this.#open++
    if (!this.track) return
    const now = nowMicros()
    this.#recovery.ready++
    this.#recovery.lastReadyAt = now
    this.#readyTimes.push(now - client.startedAt)
  }

  /** @internal A tracked socket's recovery ended: `ok` when complete and in order. */
  onRecovered(client: Client, ok: boolean, missed: number): void {
    const now = nowMicros()
    const r = this.#recovery
    if (ok) r.recovered++
    else r.failed++
    r.missedFrames += missed
    r.lastRecoveredAt = now
    this.#recoveryTimes.push(now - client.startedAt)
  }

  /** @internal */
  onClosed(client: Client, wasReady: boolean): void {
    if (wasReady) this.#open--
    if (!this.#closing) this.#closedByServer++
    this.#auth.delete(client)
  }

  /** @internal One data frame; `stamp` is its send time (µs) or -1 when not read. */
  onFrame(stamp: number): void {
    this.#frames++
    const now = nowMicros()
    this.#lastFrameAt = now
    if (stamp >= 0 && this.#samples.length < SAMPLE_LIMIT) this.#samples.push(now - stamp)
  }

  /** Zeroes the frame counters and latency samples. */
  reset(): void {
    this.#frames = 0
    this.#lastFrameAt = 0
    this.#closedByServer = 0
    this.#samples = []
  }

  /** Counters since the last reset; `withLatency` sorts the samples (costly: call it once at the end). */
  stats(withLatency = false): LoadStats {
    let latency = { count: this.#samples.length, p50: 0, p99: 0, max: 0 }
    if (withLatency && this.#samples.length > 0) {
      const s = Float64Array.from(this.#samples).sort()
      const at = (q: number): number => s[Math.min(s.length - 1, Math.floor(q * s.length))]!
      latency = { count: s.length, p50: at(0.5), p99: at(0.99), max: s[s.length - 1]! }
    }
    return {
      open: this.#open,
      closedByServer: this.#closedByServer,
      frames: this.#frames,
      lastFrameAt: this.#lastFrameAt,
      latency,
    }
  }

  /** Destroys every socket and waits until all are closed (tracking: keeps their positions). */
  async closeAll(): Promise<void> {
    this.#closing = true
    const all = this.#clients.splice(0)
    if (this.track) this.#dropped = all.map((c) => ({ ...c.position }))
    await Promise.all(
      all.map(
        (c) =>
          new Promise<void>((resolve) => {
            if (c.closed) return resolve()
            c.socket.once('close', () => resolve())
            c.socket.destroy()
          }),
      ),
    )
    this.#closing = false
    this.#open = 0
  }
}
