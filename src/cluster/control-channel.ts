import type { Connection } from '../connection/connection.js'
import type { EngineMembership, EngineTransport } from '../engine/types.js'
import { InvalidArgumentError } from '../errors.js'
import type { Recipient } from '../delivery/hub.js'
import { ControlRequests } from './control-requests.js'
import { type MembershipOp, type OpResult, parseOp } from './membership-op.js'

/**
 * Messages between processes on each process's control channel, one discriminated union parsed
 * once at the boundary; a malformed one is dropped.
 */
export type ControlMessage =
  | { type: 'send'; id: string; text?: string | undefined; binary?: string | undefined }
  | { type: 'close'; id: string; code: number; reason: string }
  | { type: 'disconnect-user'; user: string; code: number; reason: string }
  /** A live join, leave or refresh for this process's connections; answered by an ack. */
  | { type: 'op'; rid: string; from: string; op: MembershipOp }
  | { type: 'ack'; rid: string; count: number; refused: number }

const NOTHING: OpResult = { count: 0, refused: 0 }

const isCount = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0

/** The control channel of process `nodeId`. */
export function controlChannel(prefix: string, nodeId: string): string {
  return `${prefix}wsfacility:control:${nodeId}`
}

/** The process a connection id belongs to (ids are `<nodeId>.<n>`). */
export function nodeOf(connectionId: string): string | null {
  const dot = connectionId.indexOf('.')
  return dot > 0 ? connectionId.slice(0, dot) : null
}

function isCode(value: unknown): value is number {
  return (
    typeof value === 'number' &&
    Number.isInteger(value) &&
    (value === 1000 || (value >= 3000 && value <= 4999))
  )
}

/** Parses a control payload; null when it is not one. */
export function parseControl(payload: Buffer): ControlMessage | null {
  let v: Record<string, unknown>
  try {
    const parsed: unknown = JSON.parse(payload.toString('utf8'))
    if (typeof parsed !== 'object' || parsed === null) return null
    v = parsed as Record<string, unknown>
  } catch {
    return null
  }
  const reason = typeof v.reason === 'string' ? v.reason : ''
  switch (v.type) {
    case 'send':
      if (typeof v.id !== 'string') return null
      if (typeof v.text === 'string') return { type: 'send', id: v.id, text: v.text }
      if (typeof v.binary === 'string') return { type: 'send', id: v.id, binary: v.binary }
      return null
    case 'close':
      return typeof v.id === 'string' && isCode(v.code)
        ? { type: 'close', id: v.id, code: v.code, reason }
        : null
    case 'disconnect-user':
      return typeof v.user === 'string' && isCode(v.code)
        ? { type: 'disconnect-user', user: v.user, code: v.code, reason }
        : null
    case 'op': {
      const op = parseOp(v.op)
      return typeof v.rid === 'string' && typeof v.from === 'string' && op
        ? { type: 'op', rid: v.rid, from: v.from, op }
        : null
    }
    case 'ack':
      return typeof v.rid === 'string' && isCount(v.count) && isCount(v.refused)
        ? { type: 'ack', rid: v.rid, count: v.count, refused: v.refused }
        : null
    default:
      return null
  }
}

function checkClose(code: number, reason: string): void {
  if (!isCode(code)) throw new InvalidArgumentError('code must be 1000 or 3000-4999')
  if (typeof reason !== 'string' || Buffer.byteLength(reason) > 123) {
    throw new InvalidArgumentError('reason must be a string of at most 123 bytes')
  }
}

function nodeOrThrow(connectionId: string): string {
  const node = typeof connectionId === 'string' ? nodeOf(connectionId) : null
  if (node === null) throw new InvalidArgumentError('not a connection id')
  return node
}

/**
 * Addressable connections: sends and closes for connections on any process travel on the owning
 * process's one control channel (never one channel per connection). It is also the hub recipient
 * of this process's control channel.
 */
export class ControlPlane implements Recipient {
  readonly #engine: EngineTransport & EngineMembership
  readonly #prefix: string
  readonly #connections: ReadonlyMap<string, Connection>
  readonly #applyOp: (op: MembershipOp) => Promise<OpResult>
  readonly #requests: ControlRequests
  readonly #onError: (err: unknown) => void
  /** Settles once the last request made has been applied here and sent to the others. */
  #turn: Promise<void> = Promise.resolve()

  constructor(
    engine: EngineTransport & EngineMembership,
    prefix: string,
    connections: ReadonlyMap<string, Connection>,
    applyOp: (op: MembershipOp) => Promise<OpResult> = () => Promise.resolve(NOTHING),
    onError: (err: unknown) => void = () => {},
  ) {
    this.#engine = engine
    this.#prefix = prefix
    this.#connections = connections
    this.#applyOp = applyOp
    this.#requests = new ControlRequests(engine.nodeId)
    this.#onError = onError
  }

  /** This process's control channel. */
  get channel(): string {
    return controlChannel(this.#prefix, this.#engine.nodeId)
  }

  deliver(_channel: string, payload: Buffer): void {
    const message = parseControl(payload)
    if (message) this.#apply(message)
  }

  #apply(message: ControlMessage): void {
    if (message.type === 'ack') return this.#requests.ack(message.rid, message)
    if (message.type === 'op') {
      const { rid, from } = message
      void this.#applyOp(message.op)
        .catch(() => NOTHING)
        .then(({ count, refused }) => {
          const ack: ControlMessage = { type: 'ack', rid, count, refused }
          const payload = Buffer.from(JSON.stringify(ack))
          return this.#engine.publish(controlChannel(this.#prefix, from), payload, 0)
        })
        .catch(this.#onError)
      return
    }
    if (message.type === 'disconnect-user') {
      for (const conn of this.#connections.values()) {
        if (conn.identity.user === message.user) conn.close(message.code, message.reason)
      }
      return
    }
    const conn = this.#connections.get(message.id)
    if (!conn) return
    if (message.type === 'close') conn.close(message.code, message.reason)
    else if (message.text !== undefined) conn.send(message.text)
    else if (message.binary !== undefined) conn.send(Buffer.from(message.binary, 'base64'))
  }

  /** Delivers a control message to process `nodeId`; resolves to whether one listened. */
  async #toNode(nodeId: string, message: ControlMessage): Promise<boolean> {
    if (nodeId === this.#engine.nodeId) {
      this.#apply(message)
      return true
    }
    const payload = Buffer.from(JSON.stringify(message))
    return (await this.#engine.publish(controlChannel(this.#prefix, nodeId), payload, 0)) > 0
  }

  sendTo(connectionId: string, message: string | Buffer): Promise<boolean> {
    const node = nodeOrThrow(connectionId)
    const msg: ControlMessage = Buffer.isBuffer(message)
      ? { type: 'send', id: connectionId, binary: message.toString('base64') }
      : { type: 'send', id: connectionId, text: String(message) }
    return this.#toNode(node, msg)
  }

  closeConnection(connectionId: string, code: number, reason: string): Promise<boolean> {
    const node = nodeOrThrow(connectionId)
    checkClose(code, reason)
    return this.#toNode(node, { type: 'close', id: connectionId, code, reason })
  }

  async disconnectUser(user: string, code: number, reason: string): Promise<void> {
    if (typeof user !== 'string' || user === '') {
      throw new InvalidArgumentError('user must be a non-empty string')
    }
    checkClose(code, reason)
    const message: ControlMessage = { type: 'disconnect-user', user, code, reason }
    await Promise.all((await this.#engine.nodes()).map((node) => this.#toNode(node, message)))
  }

  /**
   * Applies a live join, leave or refresh on every process holding connections it targets, and
   * sums what each did: this one directly, the others through their control channels and acks.
   * Requests made here take effect in the order they were made, on this process's connections
   * and (one Redis connection carrying them) on the others'. Rejects with a TimeoutError when a
   * process that took the request has not answered in `timeout` ms.
   */
  async request(op: MembershipOp, timeout: number): Promise<OpResult> {
    const self = this.#engine.nodeId
    const target = op.type === 'refresh' ? null : op.target
    const listed =
      target && 'connection' in target
        ? Promise.resolve([nodeOrThrow(target.connection)])
        : this.#engine.nodes()
    // This request's turn comes once the one made before it has been applied here and sent.
    const before = this.#turn
    let sent!: () => void
    this.#turn = new Promise((resolve) => (sent = resolve))
    let nodes: string[]
    try {
      ;[nodes] = await Promise.all([listed, before])
    } catch (err) {
      sent()
      throw err
    }
    const local = nodes.includes(self) ? this.#applyOp(op) : Promise.resolve(NOTHING)
    const remote = nodes.filter((n) => n !== self)
    const rid = this.#requests.nextId()
    // Waiting before sending: an ack may come back before the publish's own answer.
    const acks = this.#requests.wait(rid, remote.length, { ...NOTHING }, timeout)
    acks.catch(() => {})
    // Only for other processes: a join of a local connection by id sends nothing.
    const payload =
      remote.length > 0 ? Buffer.from(JSON.stringify({ type: 'op', rid, from: self, op })) : null
    // Each PUBLISH is issued before the next request's turn (map runs every send at once).
    const sends = remote.map(async (node) => {
      const listeners = await this.#engine.publish(controlChannel(this.#prefix, node), payload!, 0)
      // Nobody listens there (the process just went): no ack will come.
      if (listeners === 0) this.#requests.ack(rid, NOTHING)
    })
    sent()
    try {
      await Promise.all(sends)
    } catch (err) {
      this.#requests.forget(rid)
      await local.catch(() => {})
      throw err
    }
    const [mine, theirs] = await Promise.all([local, acks])
    return { count: mine.count + theirs.count, refused: mine.refused + theirs.refused }
  }
}
