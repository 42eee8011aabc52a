import { type JoinSpec, labelOf } from '../channels/join-spec.js'
import { unknownKeyMessage } from '../client/unknown-keys.js'
import { ControlPlane } from '../cluster/control-channel.js'
import {
  checkGroups,
  checkTarget,
  type JoinTarget,
  type MembershipOp,
  type OpResult,
} from '../cluster/membership-op.js'
import { CloseCode } from '../close-codes.js'
import { type Connection, ownerOf } from '../connection/connection.js'
import { InvalidArgumentError, JoinRefusedError, OptionError } from '../errors.js'
import type { EngineMembership, EngineTransport } from '../engine/types.js'
import type { Authenticator } from '../identity/authenticator.js'
import { type Identity, normalizeIdentity } from '../identity/identity.js'

export type { JoinTarget } from '../cluster/membership-op.js'

/** Options of `broker.join` and `broker.leave`: what to join, and how long to wait. */
export type JoinOptions = JoinSpec & {
  /** Milliseconds to wait for the other processes' answers. @default 5000 */
  timeout?: number | undefined
}

/** Options of `broker.refreshIdentity`. */
export interface RefreshOptions {
  /** The user's groups now; without it, each connection's session is read again from the store. */
  groups?: string[] | undefined
  /** Milliseconds to wait for the other processes' answers. @default 5000 */
  timeout?: number | undefined
}

const DEFAULT_TIMEOUT = 5000
const JOIN_KEYS = ['group', 'channel', 'timeout']
const REFRESH_KEYS = ['groups', 'timeout']

function timeoutOf(value: unknown): number {
  if (value === undefined) return DEFAULT_TIMEOUT
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0)
    throw new OptionError('timeout must be a number > 0')
  return value
}

function checkOptions(options: unknown, known: readonly string[], what: string): object {
  if (typeof options !== 'object' || options === null)
    throw new InvalidArgumentError(`${what} options must be an object`)
  const unknown = unknownKeyMessage(options, known, `${what} option`)
  if (unknown !== null) throw new OptionError(unknown)
  return options
}

/**
 * Live subscriptions across processes, as the broker's API has them: checks what the caller gave,
 * sends the op through the control channel, and turns the summed answers into a count (or a
 * JoinRefusedError).
 */
export async function changeMembership(
  plane: ControlPlane,
  type: 'join' | 'leave',
  target: JoinTarget,
  options: JoinOptions,
): Promise<number> {
  const { timeout, ...spec } = checkOptions(options, JOIN_KEYS, type) as JoinOptions
  const op: MembershipOp = { type, target: checkTarget(target), label: labelOf(spec) }
  const result = await plane.request(op, timeoutOf(timeout))
  if (result.refused > 0) {
    throw new JoinRefusedError(`the facility refused the join of ${result.refused} connection(s)`, {
      joined: result.count,
      refused: result.refused,
    })
  }
  return result.count
}

/** `broker.refreshIdentity`: every process re-reads the identity of `user`'s connections. */
export async function refreshMembership(
  plane: ControlPlane,
  user: string,
  options: RefreshOptions,
): Promise<number> {
  checkOptions(options, REFRESH_KEYS, 'refreshIdentity')
  checkTarget({ user })
  const groups = checkGroups(options.groups)
  const op: MembershipOp =
    groups === undefined ? { type: 'refresh', user } : { type: 'refresh', user, groups }
  return (await plane.request(op, timeoutOf(options.timeout))).count
}

/**
 * Applies ops to this process's connections (the control plane hands it those addressed here).
 * `reidentify` reads a connection's identity again (its session from the store); undefined keeps
 * the one it has, null means it has none any more (the session is gone).
 */
export class Membership {
  readonly #connections: ReadonlyMap<string, Connection>
  readonly #reidentify: (connection: Connection) => Promise<Identity | null | undefined>

  constructor(
    connections: ReadonlyMap<string, Connection>,
    reidentify: (connection: Connection) => Promise<Identity | null | undefined>,
  ) {
    this.#connections = connections
    this.#reidentify = reidentify
  }

  #targets(target: JoinTarget): Connection[] {
    if ('connection' in target) {
      const c = this.#connections.get(target.connection)
      return c ? [c] : []
    }
    const out: Connection[] = []
    for (const c of this.#connections.values()) {
      const id = c.identity
      if ('user' in target ? id.user === target.user : id.sessionKey === target.session) out.push(c)
    }
    return out
  }

  /** Applies `op` to the local connections it targets. */
  async apply(op: MembershipOp): Promise<OpResult> {
    if (op.type === 'refresh') return this.#refresh(op.user, op.groups)
    const targets = this.#targets(op.target)
    const settled = await Promise.allSettled(
      targets.map((c) =>
        op.type === 'join'
          ? ownerOf(c)
              .join(op.label)
              .then(() => true)
          : ownerOf(c).leave(op.label),
      ),
    )
    const result: OpResult = { count: 0, refused: 0 }
    for (const s of settled) {
      if (s.status === 'fulfilled') result.count += s.value ? 1 : 0
      // A connection that closed meanwhile is simply not counted.
      else if (s.reason instanceof JoinRefusedError) result.refused++
    }
    return result
  }

  async #refresh(user: string, groups: string[] | undefined): Promise<OpResult> {
    const targets = this.#targets({ user })
    const done = await Promise.all(
      targets.map(async (c) => {
        const now =
          groups === undefined
            ? await this.#reidentify(c).catch(() => undefined)
            : normalizeIdentity({ ...c.identity, groups })
        if (now === undefined) return ownerOf(c).refreshIdentity(c.identity)
        if (now === null || now.user !== user) {
          // Its channels were chosen for a user it no longer is.
          c.close(CloseCode.REFUSED_UNAUTHORIZED, 'identity changed')
          return true
        }
        return ownerOf(c).refreshIdentity(now)
      }),
    )
    return { count: done.filter(Boolean).length, refused: 0 }
  }
}

/**
 * The control plane of a broker's live subscriptions: ops addressed to this process apply to its
 * `connections` (a refresh re-reads a connection's session through `auth`).
 */
export function controlPlaneFor(
  engine: EngineTransport & EngineMembership,
  prefix: string,
  connections: ReadonlyMap<string, Connection>,
  auth: Authenticator,
  onError: (err: unknown) => void,
): ControlPlane {
  const membership = new Membership(connections, async (conn) => {
    const key = conn.identity.sessionKey
    return key === null ? undefined : auth.sessionIdentity(key)
  })
  return new ControlPlane(engine, prefix, connections, (op) => membership.apply(op), onError)
}
