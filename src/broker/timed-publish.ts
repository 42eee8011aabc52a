import type { EngineTransport } from '../engine/types.js'
import type { HistoryOptions, PositionSink } from '../history/wire.js'
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
