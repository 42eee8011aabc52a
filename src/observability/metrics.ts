import type { IncomingMessage, ServerResponse } from 'node:http'
import type { EngineTransport } from '../engine/types.js'
import {
  type Family,
  formatPrometheus,
  Histogram,
  PROMETHEUS_CONTENT_TYPE,
} from './prometheus-text.js'

// Seconds; a loopback PUBLISH takes well under a millisecond, a loaded remote Redis tens.
const PUBLISH_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5]
const processStart = Date.now() / 1000 - process.uptime()

/** What a connection shows the metrics. */
interface MeteredConnection {
  readonly facility: string
  /** Frames dropped for it under the `drop` slow-consumer policy. */
  readonly dropped: number
}

/**
 * What the metrics read from their broker: its events, its live connections and counters, and the
 * state of its engine. The broker fits it; declared here so the metrics do not depend on it.
 */
export interface MetricsSource {
  on(event: 'connection', listener: () => void): unknown
  on(event: 'disconnect', listener: (connection: MeteredConnection) => void): unknown
  on(event: 'refused', listener: (request: unknown, status: number) => void): unknown
  readonly connections: ReadonlyMap<string, MeteredConnection>
  readonly stats: {
    readonly channels: number
    readonly messages: number
    readonly deliveries: number
  }
  readonly engine: Pick<EngineTransport, 'status'>
}

/**
 * A broker's counters, kept from its creation (a few increments per connection and message),
 * rendered in the Prometheus text format on demand. The gauges are read from the broker at scrape
 * time, so they are never stale.
 */
export class BrokerMetrics {
  readonly #broker: MetricsSource
  /** Messages clients sent on their publish-* channels (one per message, not per channel). */
  messagesIn = 0
  /** Upgrades refused, by HTTP status. */
  readonly #refused = new Map<number, number>()
  #accepted = 0
  #closed = 0
  /** Frames dropped for slow clients that have gone (live ones are read at scrape time). */
  #droppedGone = 0
  /** Clients closed with 1013 because they did not read. */
  slowConsumerCloses = 0
  #publishErrors = 0
  readonly #publish = new Histogram(PUBLISH_BUCKETS)

  constructor(broker: MetricsSource) {
    this.#broker = broker
    broker.on('connection', () => this.#accepted++)
    broker.on('disconnect', (conn) => {
      this.#closed++
      this.#droppedGone += conn.dropped
    })
    broker.on('refused', (_req, status) =>
      this.#refused.set(status, (this.#refused.get(status) ?? 0) + 1),
    )
  }

  /** Records one engine publish round trip that took `seconds` (failed ones counted apart). */
  observePublish(seconds: number, ok: boolean): void {
    if (ok) this.#publish.observe(seconds)
    else this.#publishErrors++
  }

  /** Every metric family, current values. */
  families(): Family[] {
    const broker = this.#broker
    const byFacility = new Map<string, number>()
    let droppedLive = 0
    for (const conn of broker.connections.values()) {
      byFacility.set(conn.facility, (byFacility.get(conn.facility) ?? 0) + 1)
      droppedLive += conn.dropped
    }
    const stats = broker.stats
    const mem = process.memoryUsage()
    const cpu = process.cpuUsage()
    const counter = (name: string, help: string, value: number): Family => ({
      name,
      type: 'counter',
      help,
      samples: [{ value }],
    })
    const gauge = (name: string, help: string, value: number): Family => ({
      name,
      type: 'gauge',
      help,
      samples: [{ value }],
    })
    return [
      {
        name: 'wsfacility_connections',
        type: 'gauge',
        help: 'Open WebSocket connections of this process, by facility.',
        samples: [...byFacility]
          .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
          .map(([facility, value]) => ({ labels: { facility }, value })),
      },
      counter('wsfacility_connections_accepted_total', 'Upgrades accepted.', this.#accepted),
      counter('wsfacility_connections_closed_total', 'Connections that went away.', this.#closed),
      {
        name: 'wsfacility_upgrades_refused_total',
        type: 'counter',
        help: 'Upgrades refused, by HTTP status (also those told by close 4000 + status).',
        samples: [...this.#refused]
          .sort(([a], [b]) => a - b)
          .map(([status, value]) => ({ labels: { status }, value })),
      },
      gauge('wsfacility_channels', 'Channels subscribed for clients.', stats.channels),
      counter(
        'wsfacility_messages_in_total',
        'Messages clients published (publish-* flags).',
        this.messagesIn,
      ),
      counter(
        'wsfacility_messages_received_total',
        'Messages taken from Redis for at least one local client.',
        stats.messages,
      ),
      counter(
        'wsfacility_messages_out_total',
        'Messages handed to clients (one per recipient).',
        stats.deliveries,
      ),
      counter(
        'wsfacility_dropped_frames_total',
        "Frames dropped for clients that did not read (slowConsumer: 'drop').",
        this.#droppedGone + droppedLive,
      ),
      counter(
        'wsfacility_slow_consumer_closes_total',
        'Clients closed with 1013 because their buffer filled up.',
        this.slowConsumerCloses,
      ),
      gauge(
        'wsfacility_redis_up',
        'Whether both Redis connections of this process are ready (1) or not (0).',
        broker.engine.status === 'ready' ? 1 : 0,
      ),
      {
        name: 'wsfacility_publish_duration_seconds',
        type: 'histogram',
        help: 'Round trip of each publish to Redis (PUBLISH + receiver count).',
        samples: this.#publish.samples(),
      },
      counter(
        'wsfacility_publish_errors_total',
        'Publishes that failed (Redis unreachable or refusing).',
        this.#publishErrors,
      ),
      gauge('process_resident_memory_bytes', 'Resident memory size in bytes.', mem.rss),
      gauge('nodejs_heap_size_used_bytes', 'V8 heap used in bytes.', mem.heapUsed),
      gauge('nodejs_heap_size_total_bytes', 'V8 heap size in bytes.', mem.heapTotal),
      counter(
        'process_cpu_seconds_total',
        'User and system CPU time spent, in seconds.',
        (cpu.user + cpu.system) / 1e6,
      ),
      gauge(
        'process_start_time_seconds',
        'Start time of the process (Unix seconds).',
        processStart,
      ),
    ]
  }

  /** The metrics in the Prometheus text exposition format. */
  text(): string {
    return formatPrometheus(this.families())
  }

  /** A node:http (and Express) handler answering with the metrics. */
  handler(): (req: IncomingMessage, res: ServerResponse) => void {
    return (req, res) => {
      const body = this.text()
      res.writeHead(200, {
        'Content-Type': PROMETHEUS_CONTENT_TYPE,
        'Content-Length': Buffer.byteLength(body),
        'Cache-Control': 'no-store',
      })
      res.end(req.method === 'HEAD' ? undefined : body)
    }
  }
}
