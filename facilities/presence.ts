import { Router } from 'express'
import { type Broker, type PresenceEvent, RedisPublisher } from '../src/index.js'

/** Options of the presence facility. */
export interface PresenceFacilityOptions {
  /** Facility name clients connect to: `/ws/presence`. @default 'presence' */
  facility?: string
  /** Let anonymous connections watch who is online. @default false */
  anonymous?: boolean
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
    throw new TypeError('the presence facility needs createBroker({ presence: true })')
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
 * An Express router answering who is online as JSON: `GET /` (`?facility=` to narrow) lists
 * `{ users: [{ user, connections }] }`, `GET /:user` answers `{ user, online, connections }`.
 */
export function presenceRouter(broker: Broker): Router {
  const router = Router()
  router.get('/', async (req, res, next) => {
    try {
      const facility = typeof req.query.facility === 'string' ? req.query.facility : undefined
      res.json({ users: await broker.presence.list(facility) })
    } catch (err) {
      next(err)
    }
  })
  router.get('/:user', async (req, res, next) => {
    try {
      const facility = typeof req.query.facility === 'string' ? req.query.facility : undefined
      const connections = await broker.presence.count(req.params.user, facility)
      res.json({ user: req.params.user, online: connections > 0, connections })
    } catch (err) {
      next(err)
    }
  })
  return router
}
