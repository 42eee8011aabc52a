import {
  type Broker,
  CloseCode,
  type FacilityContext,
  RedisPublisher,
  type RequestLike,
  SELF,
} from '../src/index.js'
import { jsonText } from './json.js'

/** Options of `userChannel`. */
export interface UserChannelOptions {
  /** Facility name clients connect to: `/ws/<facility>?token=…`. @default 'user' */
  facility?: string | undefined
  /**
   * Checks, once a client is connected, that its user still exists. False sends
   * `{"type":"error","code":"user_not_found"}` and closes with 1008, as bazis-ws does; a throw
   * closes with 1011 and is reported as a broker `error`.
   */
  userExists?: ((user: string, context: FacilityContext) => boolean | Promise<boolean>) | undefined
}

/** Options of one per-user publish. */
export interface UserPublishOptions {
  /** The request (or identity) that `SELF` stands for. */
  request?: RequestLike | undefined
}

/** The per-user channel of a broker. */
export interface UserChannel {
  /** The facility name. */
  readonly facility: string
  /**
   * Sends `data` (any JSON value) to every connection of `user` — every tab, on every process —
   * as `{"type":"data","data":…}`. Resolves to the number of connections that received it.
   */
  publish(user: string | typeof SELF, data: unknown, options?: UserPublishOptions): Promise<number>
}

/**
 * Defines the per-user channel of bazis-ws on `broker`: authenticated clients (a JWT in `?token=`)
 * connect without flags and receive what server code publishes to their user; they may send
 * `{"type":"ping"}` and `{"token":"<fresh jwt>"}`, never publish. Define it on every process.
 * @example
 * const users = userChannel(broker, { userExists: async (id) => (await db.user(id)) !== null })
 * await users.publish('42', { type: 'notification', title: 'New message' })
 */
export function userChannel(broker: Broker, options: UserChannelOptions = {}): UserChannel {
  const facility = options.facility ?? 'user'
  const userExists = options.userExists
  broker.facility(facility, {
    format: 'json',
    anonymous: false,
    subscribe: ['user'],
    autoSubscribe: ['user'],
    publish: [],
    onConnect: userExists
      ? async (conn, context) => {
          let exists: boolean
          try {
            exists = await userExists(conn.identity.user!, context)
          } catch (err) {
            conn.close(CloseCode.INTERNAL, 'cannot check the user')
            throw err
          }
          if (exists) return
          conn.sendFrame({ type: 'error', code: 'user_not_found', detail: 'user not found' })
          conn.close(CloseCode.POLICY, 'user not found')
        }
      : undefined,
  })
  return {
    facility,
    async publish(user, data, { request } = {}) {
      const text = jsonText(data)
      const publisher = new RedisPublisher({ facility, users: [user] }, { broker, request })
      return publisher.publishMessage(text)
    },
  }
}
