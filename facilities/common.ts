import { type Broker, RedisPublisher } from '../src/index.js'
import { jsonText } from './json.js'

/** Options of `commonChannel`. */
export interface CommonChannelOptions {
  /** Facility name clients connect to: `/ws/<facility>`. @default 'common' */
  facility?: string | undefined
  /** Accept clients without identity (false → 401). @default false */
  anonymous?: boolean | undefined
}

/** The common channel of a broker. */
export interface CommonChannel {
  /** The facility name. */
  readonly facility: string
  /**
   * Sends `data` (any JSON value) to every connection of the facility, on every process, as
   * `{"type":"data","data":…}`. Resolves to the number of connections that received it.
   */
  publish(data: unknown): Promise<number>
}

/**
 * Defines the common channel of bazis-ws on `broker`: every client of the facility receives what
 * server code publishes to it, without flags; clients may send `{"type":"ping"}` and in-band
 * tokens, never publish. Define it on every process.
 * @example
 * const common = commonChannel(broker, { anonymous: true })
 * await common.publish({ type: 'maintenance', at: '22:00' })
 */
export function commonChannel(
  broker: Broker,
  { facility = 'common', anonymous = false }: CommonChannelOptions = {},
): CommonChannel {
  broker.facility(facility, {
    format: 'json',
    anonymous,
    subscribe: ['broadcast'],
    autoSubscribe: ['broadcast'],
    publish: [],
  })
  const publisher = new RedisPublisher({ facility, broadcast: true }, { broker })
  return {
    facility,
    publish: (data) => publisher.publishMessage(jsonText(data)),
  }
}
