import type { IncomingMessage } from 'node:http'
import {
  parseRecoverParam,
  type RecoverRequest,
  type Recoveries,
  recoverChannels,
} from '../history/recovery.js'
import { channelLabel } from '../history/wire.js'
import type { Duplex } from 'node:stream'
import type { WebSocket } from 'ws'
import type { ResolvedOptions } from '../broker/options.js'
import type { Flags, RedisSubscriber } from '../channels/redis-subscriber.js'
import { ConnectionOwner } from '../connection/owner.js'
import type { ConnectionServices } from '../connection/services.js'
import type { EngineStorage, EngineTransport } from '../engine/types.js'
import { EngineError, HttpError, type WsFacilityError } from '../errors.js'
import type { FacilityContext } from '../facility/definition.js'
import type { FacilityMatch } from '../facility/registry.js'
import type { FacilitySettings } from '../facility/settings.js'
import type { Authentication, Authenticator } from '../identity/authenticator.js'
import { decideFlags } from './flag-policy.js'
import { redactUrl } from '../observability/redact.js'
import { HandshakeAcceptor } from './accept.js'
import { checkHandshake } from './handshake.js'
import { checkOrigin, isCookieAuthenticated } from './origin.js'
import { type ParsedRequest, parseRequest } from './parse-url.js'
import { openProtocol, refusalProtocol, refusesByClose } from './refusal.js'

/** The stored messages of an upgrade that has none to replay (most): one map for all. */
const NOTHING_STORED: ReadonlyMap<string, Buffer> = new Map()

/** The first of a pair. */
const firstOf = <T>(pair: readonly [T, unknown]): T => pair[0]

/** An engine's `get` as a `read` (for engines without one). */
async function mapped(
  engine: EngineStorage,
  channels: readonly string[],
): Promise<ReadonlyMap<string, Buffer | null>> {
  const values = await engine.get(channels)
  return new Map(channels.map((channel, i) => [channel, values[i] ?? null]))
}

/**
 * What `values` holds for `channels` (NOTHING_STORED for nothing: what was published meanwhile
 * arrives live, in order).
 */
function storedOf(
  values: ReadonlyMap<string, Buffer | null>,
  channels: readonly string[],
): ReadonlyMap<string, Buffer> {
  let stored: Map<string, Buffer> | null = null
  for (const channel of channels) {
    const v = values.get(channel)
    if (v) (stored ??= new Map()).set(channel, v)
  }
  return stored ?? NOTHING_STORED
}

/** `auth`, unless the facility needs a user and it has none (401). */
function admitted(auth: Authentication, settings: FacilitySettings): Authentication {
  if (!settings.anonymous && auth.identity.user === null) {
    throw new HttpError(401, 'authentication required')
  }
  return auth
}

/** An accepted upgrade's channels to subscribe, and what it asked to recover from their history. */
interface Decided {
  channels: readonly string[]
  request: RecoverRequest | null
}

/** What the upgrade pipeline needs from the broker. */
export interface UpgradeHost {
  readonly options: ResolvedOptions
  readonly engine: EngineTransport & EngineStorage
  readonly subscriber: RedisSubscriber
  readonly auth: Authenticator
  /** What the connections share (the owner of each upgrade gets it). */
  readonly services: ConnectionServices
  /** True once the broker is shutting down. */
  closing(): boolean
  /** Connects the engine (the broker's `ready()`). */
  ready(): Promise<void>
  /** True once `ready()` has resolved (nothing left to wait for). */
  started(): boolean
  /** The settings and pattern parameters that apply to a concrete facility name. */
  facilityOf(facility: string): FacilityMatch
  /** Reports a refused upgrade (by HTTP status, or by a close after the handshake). */
  refused(req: IncomingMessage, status: number, reason: string): void
  /** Reports a background failure. */
  error(err: unknown): void
}

/**
 * The HTTP upgrade pipeline: handshake checks, admission, URL, identity, origin, flag policy and
 * subscriptions, ending in a refusal (an HTTP status, or a close right after the handshake when
 * the client can read one: refusal.ts) or in an open connection. Each upgrade
 * has one owner (connection/owner.ts) from its first step; whatever the pipeline takes is taken
 * through it, so every way out — a refusal, `ws` refusing the handshake, the socket closing,
 * the timeout, shutdown — gives it back.
 */
export class Upgrader {
  readonly #host: UpgradeHost
  readonly #open: HandshakeAcceptor
  /** Completes the handshakes of refusals told by a close (refusal.ts). */
  readonly #refusals: HandshakeAcceptor
  #sequence = 0

  constructor(host: UpgradeHost) {
    this.#host = host
    this.#open = new HandshakeAcceptor(host.options.maxPayload, openProtocol)
    // Nothing but a close is read from a refused client: a larger frame cuts it.
    this.#refusals = new HandshakeAcceptor(125, refusalProtocol)
  }

  /**
   * Runs one upgrade: every refusal happens here, before the connection opens, with an HTTP
   * status or (refusal.ts) a close code after the handshake. The decisions are taken
   * synchronously where nothing has to be awaited (most upgrades); the subscriptions and reads
   * that follow await the engine, batched with the other upgrades of the moment.
   */
  async handle(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const host = this.#host
    const owner = new ConnectionOwner(host.services, socket)
    // ws gets the socket once, to open the connection or to tell a refusal by a close.
    let handed = false
    const complete = (refusal: boolean): WebSocket | null => {
      if (handed) return null
      handed = true
      owner.handingOver()
      return (refusal ? this.#refusals : this.#open).accept(req, socket, head)
    }
    try {
      const decided = this.#decide(req, owner, complete)
      const { channels, request } = decided instanceof Promise ? await decided : decided
      const { subscribed, counted } = owner.subscribe()
      let stored = NOTHING_STORED
      let recoveries: Recoveries | null = null
      try {
        if (subscribed) await owner.step(subscribed)
        let replayed = channels
        if (request) {
          const label = this.#label
          const work = recoverChannels(host.services.hub, channels, request, label)
          recoveries = await owner.step(work)
          // A channel the client recovers is not replayed its last message again (it has it).
          replayed = replayed.filter((ch) => !request.has(label(ch)))
        }
        // The read and the count write (from subscribe) go out together, and are awaited as one.
        if (host.options.replay && replayed.length > 0) {
          const engine = host.engine
          const read = engine.read?.(replayed) ?? mapped(engine, replayed)
          stored = storedOf(await owner.step(this.#both(read, counted)), replayed)
          // Whatever was published before the read must reach the connection's held messages
          // before what was read is replayed, so that one already there is not replayed twice.
          if (stored !== NOTHING_STORED) await owner.step(engine.barrier())
        } else await owner.step(counted)
      } catch (err) {
        throw this.#engineFailure(err)
      }
      owner.check()
      if (host.closing()) throw new HttpError(503, 'server is shutting down')
      const ws = complete(false)
      // The socket was half-closed (or ws, answering the handshake itself without
      // accept.ts's DIRECT, refused a header): the attempt is over.
      if (!ws) throw new HttpError(400, 'handshake refused')
      owner.open(ws, stored, req, recoveries)
    } catch (err) {
      const refusal = err instanceof HttpError ? err : this.#unexpected(err)
      owner.abort(refusal)
      host.options.logger?.info?.(
        { status: refusal.status, reason: refusal.message, url: redactUrl(req.url ?? '') },
        'upgrade refused',
      )
      host.refused(req, refusal.status, refusal.message)
    }
  }

  /** The client's name of a channel (its label in history positions). */
  readonly #label = (channel: string): string =>
    channelLabel(this.#host.options.channelPrefix, channel)

  #unexpected(err: unknown): HttpError {
    this.#host.error(err)
    return new HttpError(500, 'internal error')
  }

  /** Cuts the upgrades still in progress and closes the WebSocket server (on broker shutdown). */
  close(): void {
    this.#host.services.registry.abortUpgrades()
    this.#open.close()
    this.#refusals.close()
  }

  /**
   * The broker's decisions on one upgrade, each through the owner: admission, parsing, then
   * (once the engine has started) identity, origin and policy, ending in the accepted connection's
   * channels. At once when no step has to be awaited; throws or rejects a refusal.
   */
  #decide(
    req: IncomingMessage,
    owner: ConnectionOwner,
    complete: (refusal: boolean) => WebSocket | null,
  ): Decided | Promise<Decided> {
    const host = this.#host
    const options = host.options
    if (host.closing()) throw new HttpError(503, 'server is shutting down')
    checkHandshake(req)
    // Only a well-formed handshake can be completed to tell a refusal by a close.
    if (refusesByClose(req, options.refusals, options.origins)) {
      owner.refuseByClose(() => complete(true))
    }
    owner.admit()
    const parsed = parseRequest(req.url ?? '', options.path, {
      maxFacilityLength: options.maxFacilityLength,
      maxFlags: options.maxFlags,
    })
    // Started once, the engine's status tells the rest (#identify).
    if (host.started()) return this.#identify(req, owner, parsed)
    const ready = host.ready().catch((err: unknown) => {
      throw new HttpError(503, 'message broker unavailable', (err as WsFacilityError).code)
    })
    return owner.step(ready).then(() => this.#identify(req, owner, parsed))
  }

  /** Who the request is, then (#accept) what it may do. */
  #identify(
    req: IncomingMessage,
    owner: ConnectionOwner,
    parsed: ParsedRequest,
  ): Decided | Promise<Decided> {
    // While Redis is away a connection would miss messages without knowing; refuse it instead
    // (even when its channels are already subscribed and nothing else would touch Redis).
    if (this.#host.engine.status !== 'ready') {
      throw new HttpError(503, 'message broker unavailable', 'WSF_REDIS_UNAVAILABLE')
    }
    const match = this.#host.facilityOf(parsed.facility)
    const request = match.settings.history ? parseRecoverParam(parsed.query.get('recover')) : null
    const auth = this.#authenticate(req, match.settings, parsed.token)
    if (!(auth instanceof Promise)) return this.#accept(req, owner, parsed, match, request, auth)
    return owner.step(auth).then((a) => this.#accept(req, owner, parsed, match, request, a))
  }

  /** Origin and policy for an identified request; the connection is accepted with its flags. */
  #accept(
    req: IncomingMessage,
    owner: ConnectionOwner,
    parsed: ParsedRequest,
    { settings, params }: FacilityMatch,
    request: RecoverRequest | null,
    auth: Authentication,
  ): Decided | Promise<Decided> {
    const options = this.#host.options
    const identity = auth.identity
    checkOrigin(req, options.origins, isCookieAuthenticated(req, auth))
    if (identity.user !== null) owner.admitUser(identity.user)
    const context: FacilityContext = { facility: parsed.facility, params, identity, request: req }
    const accepted = (flags: Flags): Decided => {
      const channels = this.#host.subscriber.channels(parsed.facility, flags, identity)
      owner.accept({
        facts: {
          id: `${this.#host.engine.nodeId}.${(++this.#sequence).toString(36)}`,
          facility: parsed.facility,
          params,
          format: settings.format,
          identity,
          channels,
          echo: parsed.echo,
        },
        settings,
        context,
        tokenAuthenticated: auth.via === 'jwt',
        expiresAt: auth.expiresAt,
        flags,
      })
      return { channels: channels.subscribe, request }
    }
    const flags = decideFlags(parsed, settings, options.allowedChannels, context)
    return flags instanceof Promise ? owner.step(flags).then(accepted) : accepted(flags)
  }

  /** An engine step's failure as the upgrade's refusal: 503 (reported), or the cut's own. */
  #engineFailure(err: unknown): HttpError {
    if (err instanceof HttpError) return err
    this.#host.error(err)
    return new HttpError(503, 'message broker unavailable')
  }

  /** Who the request is (at once when nothing has to be awaited); throws or rejects a refusal. */
  #authenticate(
    req: IncomingMessage,
    settings: FacilitySettings,
    queryToken: string | null,
  ): Authentication | Promise<Authentication> {
    let auth: Authentication | Promise<Authentication>
    try {
      auth = this.#host.auth.authenticateNow(req, queryToken)
    } catch (err) {
      throw this.#authFailure(err)
    }
    if (!(auth instanceof Promise)) return admitted(auth, settings)
    return auth.then(
      (a) => admitted(a, settings),
      (err: unknown) => {
        throw this.#authFailure(err)
      },
    )
  }

  #authFailure(err: unknown): HttpError {
    if (err instanceof HttpError) return err
    this.#host.error(err)
    // A session store that cannot answer is an outage, not a bad credential.
    if (err instanceof EngineError) return new HttpError(503, 'session store unavailable')
    return new HttpError(401, 'cannot identify this request')
  }

  /**
   * The last upgrade's replay read and count write, and the one promise of both: the upgrades of
   * one moment share one read and one count write (engine/coalesce.ts), and so this promise.
   */
  #joint: {
    read: Promise<ReadonlyMap<string, Buffer | null>>
    counted: Promise<void>
    both: Promise<ReadonlyMap<string, Buffer | null>>
  } | null = null

  /** Settles once `read` and `counted` have, with what `read` gave; shared while they are. */
  #both(
    read: Promise<ReadonlyMap<string, Buffer | null>>,
    counted: Promise<void>,
  ): Promise<ReadonlyMap<string, Buffer | null>> {
    const joint = this.#joint
    if (joint !== null && joint.read === read && joint.counted === counted) return joint.both
    const both = Promise.all([read, counted]).then(firstOf)
    both.catch(() => {})
    this.#joint = { read, counted, both }
    return both
  }
}
