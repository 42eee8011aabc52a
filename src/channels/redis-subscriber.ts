import { type Audience, channelName, normalizePrefix } from './naming.js'
import type { Identity } from '../identity/identity.js'

/** The flags of one connection, after policy. */
export interface Flags {
  subscribe: Audience[]
  publish: Audience[]
}

/** Channels one connection listens to and publishes to. */
export interface ConnectionChannels {
  subscribe: string[]
  publish: string[]
}

/** Options of RedisSubscriber. */
export interface SubscriberOptions {
  /** Channel prefix as in the broker options (`'ws4redis'` → `ws4redis:`). @default '' */
  prefix?: string | undefined
}

/**
 * Turns a connection's flags plus its identity into channel names (ws4redis's RedisSubscriber).
 * An audience the identity cannot fill is dropped: an anonymous `subscribe-user` yields nothing,
 * never a shared placeholder channel.
 * @example new RedisSubscriber({ prefix: 'ws4redis' }).channels('chat', flags, identity)
 */
export class RedisSubscriber {
  readonly #prefix: string

  constructor(options: SubscriberOptions = {}) {
    this.#prefix = normalizePrefix(options.prefix)
  }

  /** The channel names one audience of `facility` means for `identity`. */
  audienceChannels(facility: string, audience: Audience, identity: Identity): string[] {
    const p = this.#prefix
    switch (audience) {
      case 'broadcast':
        return [channelName(p, 'broadcast', facility)]
      case 'user':
        return identity.user === null ? [] : [channelName(p, 'user', facility, identity.user)]
      case 'group':
        return identity.groups.map((g) => channelName(p, 'group', facility, g))
      case 'session':
        return identity.sessionKey === null
          ? []
          : [channelName(p, 'session', facility, identity.sessionKey)]
    }
  }

  /** Subscribe and publish channels of a connection to `facility`. */
  channels(facility: string, flags: Flags, identity: Identity): ConnectionChannels {
    return {
      subscribe: this.#collect(facility, flags.subscribe, identity),
      publish: this.#collect(facility, flags.publish, identity),
    }
  }

  /** The channels of `audiences`, each once, in order (one audience: its channels as they are). */
  #collect(facility: string, audiences: readonly Audience[], identity: Identity): string[] {
    if (audiences.length === 0) return []
    if (audiences.length === 1 && audiences[0] !== 'group') {
      return this.audienceChannels(facility, audiences[0]!, identity)
    }
    const all = new Set<string>()
    for (const a of audiences)
      for (const ch of this.audienceChannels(facility, a, identity)) all.add(ch)
    return [...all]
  }
}
