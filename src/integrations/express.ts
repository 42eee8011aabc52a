import type { Server } from 'node:http'
import type { Application, NextFunction, Request, RequestHandler, Response } from 'express'
import { type Broker, type PublishOptions, createBroker } from '../broker/broker.js'
import type { Audience } from '../channels/naming.js'
import type { Identity } from '../identity/identity.js'
import type { Message, StoredMessage } from '../delivery/payload.js'
import type { BrokerOptions } from '../broker/options.js'
import { type PublisherTarget, RedisPublisher } from '../publish/redis-publisher.js'

/** What the middleware puts on `req.wsfacility`: the broker, bound to this request. */
export interface RequestBroker {
  broker: Broker
  /** The request's identity (session, passport user or bearer JWT). */
  identity(): Promise<Identity>
  /** A RedisPublisher whose SELF means this request. */
  publisher(target: PublisherTarget): RedisPublisher
  /** Shorthand for `publisher(target).publishMessage(message, options)`. */
  publish(target: PublisherTarget, message: Message, options?: PublishOptions): Promise<number>
  /** `fetchMessage(req, facility, audience)` for this request. */
  fetchMessage(facility: string, audience?: Audience | 'any'): Promise<StoredMessage | null>
}

declare module 'express-serve-static-core' {
  interface Request {
    /** Set by wsfacility's middleware. */
    wsfacility?: RequestBroker | undefined
  }
}

/**
 * Middleware giving routes `req.wsfacility`: a publisher bound to the request, so `users: [SELF]`,
 * `groups: [SELF]` and `sessions: [SELF]` mean the request's user, groups and session. Mount it
 * after express-session (and passport) so their `req.session` / `req.user` are there.
 */
export function publisherMiddleware(broker: Broker): RequestHandler {
  return (req: Request, _res: Response, next: NextFunction) => {
    const publisher = (target: PublisherTarget) =>
      new RedisPublisher(target, { broker, request: req })
    req.wsfacility = {
      broker,
      identity: () => broker.identify(req),
      publisher,
      publish: (target, message, options) => publisher(target).publishMessage(message, options),
      fetchMessage: (facility, audience) =>
        new RedisPublisher({}, { broker }).fetchMessage(req, facility, audience),
    }
    next()
  }
}

/**
 * Wires a broker into an Express app and its `http.Server` in one call: WebSocket upgrades under
 * `path`, 426 for plain requests there, and `req.wsfacility` for routes. Pass the same `session`
 * store and secret as express-session so cookie-authenticated sockets know their user.
 * @example
 * const session = { store: new RedisStore({ client }), secret: 'keyboard cat' }
 * app.use(expressSession({ ...session, resave: false, saveUninitialized: false }))
 * const broker = wsfacility(app, server, { redis: process.env.REDIS_URL, session })
 */
export function wsfacility(app: Application, server: Server, options: BrokerOptions = {}): Broker {
  const broker = createBroker(options)
  broker.attach(server)
  app.use((req: Request, res: Response, next: NextFunction) => {
    if (!broker.handleRequest(req, res)) next()
  })
  app.use(publisherMiddleware(broker))
  return broker
}

export { SELF, RedisPublisher } from '../publish/redis-publisher.js'
