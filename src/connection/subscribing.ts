import { audienceOf, channelOfLabel, groupOf, labelOf } from '../channels/join-spec.js'
import type { Audience } from '../channels/naming.js'
import type { Flags } from '../channels/redis-subscriber.js'
import type { MembershipFrame, ServerFrame } from '../delivery/envelope.js'
import type { OpenRecovery } from '../delivery/hub.js'
import type { JoinOutcome, JoinRequest } from './join-types.js'
import { ClosedError, EngineError, JoinRefusedError, type WsFacilityError } from '../errors.js'
import { checkJoin } from '../facility/join-policy.js'
import type { Identity } from '../identity/identity.js'
import { ChannelSet } from './channel-set.js'
import { updateConnection } from './connection.js'
import { Publishing } from './publishing.js'

/** Where every connection's chain of changes starts (one promise for all of them). */
const NO_CHANGES: Promise<unknown> = Promise.resolve()

/**
 * The live subscriptions of a connection (between its inbound side and its owner): joins and
 * leaves of channels of its facility while it is open, and a refreshed identity moving it to
 * other group channels. Changes of one connection apply one at a time, in the order asked, so a
 * join and a leave of the same channel end as the last one says; each goes through the hub, whose
 * ref-counting keeps receiver counts and Redis subscriptions exact.
 */
export abstract class Subscribing extends Publishing {
  #set: ChannelSet | null = null
  #flags: Flags | null = null
  #identity: Identity | null = null
  #changes: Promise<unknown> = NO_CHANGES
  /** The publish channels the flags give the identity. */
  #derivedPublish: readonly string[] = []
  /** Channels left by hand: not published on either, whatever the flags give. */
  #leftByHand: Set<string> | null = null

  /** Starts the bookkeeping of a connection just accepted with `flags` (owner.accept). */
  protected trackChannels(flags: Flags): void {
    const connection = this.connection!
    this.#flags = flags
    this.#identity = connection.identity
    this.#derivedPublish = connection.channels.publish
  }

  /** The connection's channel bookkeeping, made at its first change (most connections never
   * change: the set would only take memory). Until then its channels are those it opened with. */
  #channels(): ChannelSet {
    return (this.#set ??= new ChannelSet(this.connection!.channels.subscribe))
  }

  /** Runs `change` after the ones asked before it. */
  #serial<T>(change: () => Promise<T>): Promise<T> {
    const next = this.#changes.then(change, change)
    this.#changes = next.catch(() => {})
    return next
  }

  #checkOpen(): void {
    if (this.phase !== 'open') throw new ClosedError('connection is not open')
  }

  /**
   * Tells the connection its channels and identity now. It publishes (`publish-*` flags) on what
   * its identity gives but what it left, and on what it joined of the audiences it publishes to:
   * with `publish-group`, on every group it is in.
   */
  #publishState(derivedPublish?: readonly string[]): void {
    if (derivedPublish) this.#derivedPublish = derivedPublish
    const set = this.#channels()
    const prefix = this.services.options.channelPrefix
    const audiences = this.#flags!.publish
    const publish = this.#derivedPublish.filter((ch) => !this.#leftByHand?.has(ch))
    for (const ch of set.joined) {
      const audience = ch.slice(prefix.length, ch.indexOf(':', prefix.length))
      if (audiences.includes(audience as Audience) && !publish.includes(ch)) publish.push(ch)
    }
    updateConnection(this.connection!, this.#identity!, { subscribe: [...set.current], publish })
  }

  /**
   * `work` (hub.add), again after Redis came back when it failed because Redis was away: a join
   * made during an outage is applied when Redis returns. Stops when the connection goes.
   */
  async #whileLive(work: () => Promise<void>): Promise<void> {
    for (;;) {
      try {
        return await work()
      } catch (err) {
        if (!(err instanceof EngineError) || this.phase !== 'open') throw err
        if (!(await this.services.engineReturned())) throw err
        if (this.phase !== 'open') return
      }
    }
  }

  /**
   * Joins the channel `label` names (`group:<name>`, `broadcast`, `user`, `session`) of the
   * connection's facility, once the facility allows it; resolves once the subscription is live.
   * Rejects with a JoinRefusedError, or a ClosedError when the connection is not open.
   */
  join(label: string, request: JoinRequest = {}): Promise<JoinOutcome> {
    return this.#serial(async () => {
      this.#checkOpen()
      const connection = this.connection!
      const settings = this.settings!
      const options = this.services.options
      const identity = this.#identity!
      const channel = channelOfLabel(options.channelPrefix, label, connection.facility, identity)
      if (channel === null) throw new JoinRefusedError(`this connection has no ${label} channel`)
      await checkJoin({
        settings,
        allowedChannels: options.allowedChannels,
        context: this.context,
        facility: connection.facility,
        identity,
        join: {
          label,
          audience: audienceOf(label),
          group: groupOf(label),
          channel,
          fromClient: request.fromClient === true,
        },
      })
      this.#checkOpen()
      const set = this.#channels()
      if (set.has(channel)) return { channel, added: false, recovery: null }
      this.#leftByHand?.delete(channel)
      set.join(channel)
      this.#publishState()
      const { format, history } = settings
      // With history, what the read gives comes before the live messages of meanwhile.
      const positioned = history !== null && format === 'json'
      if (positioned) this.holdChannel(channel)
      let recovery: OpenRecovery | null = null
      try {
        await this.#whileLive(() => this.services.hub.add(this, [channel], format, history))
        if (positioned && this.phase === 'open') {
          const since = request.since ?? null
          recovery = await this.services.hub.recover(
            channel,
            since?.offset ?? null,
            since?.epoch ?? null,
          )
        }
      } catch (err) {
        if (positioned) this.endHold(channel, [], null, 0)
        throw err
      }
      const answer = request.answer?.(recovery) ?? null
      if (recovery) this.endHold(channel, recovery.frames, answer, recovery.offset)
      else if (positioned) this.endHold(channel, [], answer, 0)
      else if (answer) this.sendFrame(answer)
      return { channel, added: true, recovery }
    })
  }

  /** Leaves the channel `label` names; resolves to whether the connection was listening to it. */
  leave(label: string): Promise<boolean> {
    return this.#serial(async () => {
      if (this.phase !== 'open') return false
      const channel = channelOfLabel(
        this.services.options.channelPrefix,
        label,
        this.connection!.facility,
        this.#identity!,
      )
      if (channel === null || !this.#channels().leave(channel)) return false
      ;(this.#leftByHand ??= new Set()).add(channel)
      this.#publishState()
      await this.services.hub.remove(this, [channel])
      return true
    })
  }

  /**
   * Takes a re-read identity of the same user: its channels move to what the connection's flags
   * give the new identity (joined and left channels stay so). Resolves to false when the
   * connection is not open.
   */
  refreshIdentity(identity: Identity): Promise<boolean> {
    return this.#serial(async () => {
      if (this.phase !== 'open') return false
      const connection = this.connection!
      const derived = this.services.subscriber.channels(connection.facility, this.#flags!, identity)
      this.#identity = identity
      const { added, removed } = this.#channels().rederive(derived.subscribe)
      this.#publishState(derived.publish)
      const hub = this.services.hub
      const { format, history } = this.settings!
      await hub.remove(this, removed)
      if (added.length > 0) await this.#whileLive(() => hub.add(this, added, format, history))
      return true
    })
  }

  /**
   * A client's join or leave frame (json facilities): applied as `join`/`leave` with the
   * facility's `clientJoin` policy, answered with `joined`, `left` or `join-refused` (its `id`
   * echoed).
   */
  membershipFrame(frame: MembershipFrame): void {
    const id = frame.id === undefined ? {} : { id: frame.id }
    const refused = (err: unknown, channel?: string): void => {
      if (this.phase !== 'open') return
      const e = err as Partial<WsFacilityError>
      const code = e.code ?? 'WSF_JOIN_REFUSED'
      this.sendFrame({ type: 'join-refused', channel, code, reason: e.message ?? 'refused', ...id })
    }
    let label: string
    try {
      label = labelOf({ group: frame.group, channel: frame.channel })
    } catch (err) {
      return refused(err)
    }
    if (frame.type === 'leave') {
      if (!this.settings!.clientJoin)
        return refused(new JoinRefusedError('this facility takes no leaves from clients'), label)
      this.leave(label).then(
        () => this.phase === 'open' && this.sendFrame({ type: 'left', channel: label, ...id }),
        (err: unknown) => refused(err, label),
      )
      return
    }
    const since = frame.since ?? null
    const answer = (r: OpenRecovery | null): ServerFrame => {
      const position = r
        ? {
            epoch: r.epoch,
            offset: r.offset,
            recovered: since !== null && r.recovered,
            missed: r.frames.length,
          }
        : {}
      return { type: 'joined', channel: label, ...id, ...position }
    }
    this.join(label, { fromClient: true, since, answer }).then(
      // Already joined: nothing was held, the answer goes now.
      (outcome) => !outcome.added && this.sendFrame(answer(null)),
      (err: unknown) => refused(err, label),
    )
  }
}
