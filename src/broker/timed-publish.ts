import type { EngineTransport } from '../engine/types.js'
import { encodeMessage, type Message } from '../delivery/payload.js'
import { OptionError } from '../errors.js'
import { type HistoryOptions, type PositionSink, resolveHistory } from '../history/wire.js'
import type { PublishOptions } from './events.js'
import type { BrokerMetrics } from '../observability/metrics.js'

/** Publishes through the engine. */
export type PublishFn = (
  channel: string,
  payload: Buffer,
  expire: number,
  history: HistoryOptions | null,
  position?: PositionSink,
) => Promise<number>

/** engine.publish, timed for the publish latency histogram of `metrics`. */
export function timedPublish(engine: EngineTransport, metrics: BrokerMetrics): PublishFn {
  return async (channel, payload, expire, history, position) => {
    const start = performance.now()
    try {
      const n = await engine.publish(channel, payload, expire, history, position)
      metrics.observePublish((performance.now() - start) / 1000, true)
      return n
    } catch (err) {
      metrics.observePublish(0, false)
      throw err
    }
  }
}

/** Where and how long a channel's messages are kept: its facility's settings. */
export type ChannelSettings = (channel: string) => {
  expire: number
  history: HistoryOptions | null
}

/**
 * broker.publish: checks the options, waits for `ready`, then publishes `message` on every channel with the call's
 * `expire` and `history`, or else the channel's facility's; resolves to the receivers summed.
 */
export async function publishToChannels(
  publish: PublishFn,
  settingsOf: ChannelSettings,
  ready: () => Promise<void>,
  channels: readonly string[],
  message: Message,
  options: PublishOptions,
): Promise<number> {
  const { expire, positions } = options
  if (
    expire !== undefined &&
    (typeof expire !== 'number' || !Number.isFinite(expire) || expire < 0)
  ) {
    throw new OptionError('expire must be a number >= 0')
  }
  const history =
    options.history === undefined ? undefined : resolveHistory('history', options.history)
  const payload = encodeMessage(message)
  await ready()
  const counts = await Promise.all(
    channels.map((ch) => {
      const settings = settingsOf(ch)
      return publish(
        ch,
        payload,
        expire ?? settings.expire,
        history === undefined ? settings.history : history,
        positions && ((p) => positions.set(ch, p)),
      )
    }),
  )
  return counts.reduce((a, b) => a + b, 0)
}
