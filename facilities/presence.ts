import type { IncomingMessage, ServerResponse } from 'node:http'
import { type Broker, OptionError, type PresenceEvent, RedisPublisher } from '../src/index.js'

/** Options of the presence facility. */
export interface PresenceFacilityOptions {
  /** Facility name clients connect to: `/ws/presence`. @default 'presence' */
  facility?: string | undefined
  /** Let anonymous connections watch who is online. @default false */
  anonymous?: boolean | undefined
}

/** What watchers receive, inside the JSON envelope's `data`. */
export type PresenceMessage =
  | { event: 'snapshot'; users: { user: string; connections: number }[] }
  | { event: 'join' | 'leave'; user: string; facility: string | null }

/**
 * The presence facility: clients of `/ws/presence` receive the online users when they connect,
 * then one `join` or `leave` per transition, cluster-wide, for any facility (`facility` null: the
 * user's first or last connection anywhere). Needs `createBroker({ presence: true })`.
 * @example presenceFacility(broker); app.use('/api/presence', presenceRouter(broker))
 */
export function presenceFacility(broker: Broker, options: PresenceFacilityOptions = {}) {
  const facility = options.facility ?? 'presence'
  if (!broker.options.presence) {
    throw new OptionError('the presence facility needs createBroker({ presence: true })')
  }
  const watchers = new RedisPublisher({ facility, broadcast: true }, { broker })
  broker.facility(facility, {
    format: 'json',
    subscribe: ['broadcast'],
    autoSubscribe: ['broadcast'],
    publish: [],
    anonymous: options.anonymous ?? false,
    onConnect: async (conn) => {
      const snapshot: PresenceMessage = { event: 'snapshot', users: await broker.presence.list() }
      conn.send(snapshot)
    },
  })
  // Each transition is reported by exactly one process, so publishing it here reaches every
  // watcher once.
  const forward = (event: PresenceEvent): void => {
    const message: PresenceMessage = {
      event: event.type,
      user: event.user,
      facility: event.facility,
    }
    watchers.publishMessage(message, { expire: 0 }).catch(() => {})
  }
  broker.on('presence', forward)
  return {
    facility,
    /** Stops forwarding presence events (the facility stays defined). */
    stop: () => broker.off('presence', forward),
  }
}

/**
 * A request handler answering who is online as JSON, for Express (`app.use('/api/presence',
 * presenceRouter(broker))`) or plain node:http: `GET /` (`?facility=` to narrow) lists
 * `{ users: [{ user, connections }] }`, `GET /<user>` answers `{ user, online, connections }`.
 * Other paths go to `next` (404 without one).
 */
export function presenceRouter(broker: Broker) {
  return (req: IncomingMessage, res: ServerResponse, next?: (err?: unknown) => void): void => {
    const url = new URL(req.url ?? '/', 'http://localhost')
    const parts = url.pathname.split('/').filter(Boolean)
    if (req.method !== 'GET' || parts.length > 1) {
      if (next) return next()
      res.writeHead(404).end()
      return
    }
    const facility = url.searchParams.get('facility') ?? undefined
    const reply = (body: unknown): void => {
      res.writeHead(200, { 'Content-Type': 'application/json; charset=utf-8' })
      res.end(JSON.stringify(body))
    }
    const work =
      parts.length === 0
        ? broker.presence.list(facility).then((users) => reply({ users }))
        : broker.presence
            .count(decodeURIComponent(parts[0]!), facility)
            .then((connections) =>
              reply({ user: decodeURIComponent(parts[0]!), online: connections > 0, connections }),
            )
    work.catch((err: unknown) => {
      if (next) return next(err)
      res.writeHead(503, { 'Content-Type': 'application/json; charset=utf-8' })
      res.end(JSON.stringify({ error: 'presence unavailable' }))
    })
  }
}
