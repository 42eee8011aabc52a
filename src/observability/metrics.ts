import type { IncomingMessage, ServerResponse } from 'node:http'
import {
  collectDefaultMetrics,
  Counter,
  Gauge,
  Histogram,
  type Metric,
  Registry,
} from 'prom-client'
import type { EngineTransport } from '../engine/types.js'
import { OptionError } from '../errors.js'
import { unknownKeyMessage } from '../client/unknown-keys.js'

// Seconds; a loopback PUBLISH takes well under a millisecond, a loaded remote Redis tens.
const PUBLISH_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5]

/** The broker option `metrics`. */
export interface MetricsOptions {
  /**
   * A prom-client registry to register the broker's metrics in, so they join the app's own
   * `/metrics`. Process metrics (memory, CPU) are then the app's business:
   * `collectDefaultMetrics({ register: registry })`. @default a registry of the broker's own, with
   * the process metrics
   * @example createBroker({ metrics: { registry: client.register } })
   */
  registry?: Registry | undefined
}

/** Every field name of MetricsOptions; the type makes sure none is missing and none is extra. */
const METRICS_FIELDS = Object.keys({ registry: true } satisfies Record<keyof MetricsOptions, true>)

/** Throws OptionError for a `metrics` option that cannot work; undefined is the default. */
export function validateMetricsOptions(value: unknown): void {
  if (value === undefined) return
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new OptionError('metrics must be an object: { registry }')
  }
  const unknown = unknownKeyMessage(value, METRICS_FIELDS, 'metrics option')
  if (unknown !== null) throw new OptionError(unknown)
  const { registry } = value as MetricsOptions
  if (registry !== undefined && !(registry instanceof Registry)) {
    throw new OptionError('metrics.registry must be a prom-client Registry')
  }
}

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
 * Node's process metrics (memory, CPU, event loop, GC), collected once per process however many
 * brokers it runs: prom-client's collectors start timers and observers that are never stopped.
 */
let processRegistry: Registry | null = null
function processMetrics(): Registry {
  if (!processRegistry) {
    processRegistry = new Registry()
    collectDefaultMetrics({ register: processRegistry })
  }
  return processRegistry
}

/** A metric's name (prom-client's types leave out the field every metric has). */
const nameOf = (metric: Metric): string => (metric as unknown as { name: string }).name

/** A counter whose value is read at scrape time (from counters the broker already keeps). */
function counterOf(name: string, help: string, read: () => number): Counter {
  return new Counter({
    name,
    help,
    registers: [],
    collect() {
      this.reset()
      this.inc(read())
    },
  })
}

/** A gauge whose value is read at scrape time. */
function gaugeOf(name: string, help: string, read: () => number): Gauge {
  return new Gauge({
    name,
    help,
    registers: [],
    collect() {
      this.set(read())
    },
  })
}

/**
 * A broker's metrics as prom-client metrics: counters kept from its creation (a few increments
 * per connection and message); gauges and the broker's own counters read from it at scrape time,
 * so they are never stale.
 */
export class BrokerMetrics {
  /** Where the metrics are registered: the one given, or one of the broker's own. */
  readonly registry: Registry
  readonly #own: boolean
  readonly #metrics: Metric[]
  readonly #messagesIn = new Counter({
    name: 'wsfacility_messages_in_total',
    help: 'Messages clients published (publish-* flags).',
    registers: [],
  })
  readonly #slowConsumerCloses = new Counter({
    name: 'wsfacility_slow_consumer_closes_total',
    help: 'Clients closed with 1013 because their buffer filled up.',
    registers: [],
  })
  readonly #publish = new Histogram({
    name: 'wsfacility_publish_duration_seconds',
    help: 'Round trip of each publish to Redis (PUBLISH + receiver count).',
    buckets: PUBLISH_BUCKETS,
    registers: [],
  })
  readonly #publishErrors = new Counter({
    name: 'wsfacility_publish_errors_total',
    help: 'Publishes that failed (Redis unreachable or refusing).',
    registers: [],
  })

  constructor(broker: MetricsSource, options: MetricsOptions = {}) {
    this.#own = options.registry === undefined
    this.registry = options.registry ?? new Registry()
    // Counted as plain numbers, read at scrape time: a connection storm opens thousands a second.
    let acceptedCount = 0
    let closedCount = 0
    const accepted = counterOf(
      'wsfacility_connections_accepted_total',
      'Upgrades accepted.',
      () => acceptedCount,
    )
    const closed = counterOf(
      'wsfacility_connections_closed_total',
      'Connections that went away.',
      () => closedCount,
    )
    const refused = new Counter({
      name: 'wsfacility_upgrades_refused_total',
      help: 'Upgrades refused, by HTTP status (also those told by close 4000 + status).',
      labelNames: ['status'],
      registers: [],
    })
    /** Frames dropped for slow clients that have gone (live ones are read at scrape time). */
    let droppedGone = 0
    broker.on('connection', () => void acceptedCount++)
    broker.on('disconnect', (conn) => {
      closedCount++
      droppedGone += conn.dropped
    })
    broker.on('refused', (_req, status) => refused.inc({ status }))
    const connections = new Gauge({
      name: 'wsfacility_connections',
      help: 'Open WebSocket connections of this process, by facility.',
      labelNames: ['facility'],
      registers: [],
      collect() {
        // Reset first, so a facility whose last client left disappears.
        this.reset()
        for (const conn of broker.connections.values()) this.inc({ facility: conn.facility })
      },
    })
    const droppedLive = (): number => {
      let n = 0
      for (const conn of broker.connections.values()) n += conn.dropped
      return n
    }
    this.#metrics = [
      connections,
      accepted,
      closed,
      refused,
      gaugeOf(
        'wsfacility_channels',
        'Channels subscribed for clients.',
        () => broker.stats.channels,
      ),
      this.#messagesIn,
      counterOf(
        'wsfacility_messages_received_total',
        'Messages taken from Redis for at least one local client.',
        () => broker.stats.messages,
      ),
      counterOf(
        'wsfacility_messages_out_total',
        'Messages handed to clients (one per recipient).',
        () => broker.stats.deliveries,
      ),
      counterOf(
        'wsfacility_dropped_frames_total',
        "Frames dropped for clients that did not read (slowConsumer: 'drop').",
        () => droppedGone + droppedLive(),
      ),
      this.#slowConsumerCloses,
      gaugeOf(
        'wsfacility_redis_up',
        'Whether both Redis connections of this process are ready (1) or not (0).',
        () => (broker.engine.status === 'ready' ? 1 : 0),
      ),
      this.#publish,
      this.#publishErrors,
    ]
    const taken = this.#metrics.map(nameOf).find((n) => this.registry.getSingleMetric(n))
    if (taken !== undefined) {
      throw new OptionError(
        `metrics.registry already holds ${taken}: one registry per broker (another broker, ` +
          'or one not closed, registered there)',
      )
    }
    for (const metric of this.#metrics) this.registry.registerMetric(metric)
  }

  /** Counts one message a client sent on its publish-* channels (one per message). */
  messageIn(): void {
    this.#messagesIn.inc()
  }

  /** Counts one client closed with 1013 because it did not read. */
  slowConsumerClosed(): void {
    this.#slowConsumerCloses.inc()
  }

  /** Records one engine publish round trip that took `seconds` (failed ones counted apart). */
  observePublish(seconds: number, ok: boolean): void {
    if (ok) this.#publish.observe(seconds)
    else this.#publishErrors.inc()
  }

  /** Takes the broker's metrics out of a registry it was given (at close, so a new broker fits). */
  unregister(): void {
    if (this.#own) return
    for (const metric of this.#metrics) {
      const name = nameOf(metric)
      if (this.registry.getSingleMetric(name) === metric) this.registry.removeSingleMetric(name)
    }
  }

  /** What is served: a registry given, whole; else the broker's own with the process metrics. */
  #served(): Registry {
    return this.#own ? Registry.merge([this.registry, processMetrics()]) : this.registry
  }

  /** The metrics in the Prometheus text exposition format (the registry's content type). */
  text(): Promise<string> {
    return this.#served().metrics()
  }

  /** A node:http (and Express) handler answering with the metrics. */
  handler(): (req: IncomingMessage, res: ServerResponse) => void {
    return (req, res) => {
      const registry = this.#served()
      registry.metrics().then(
        (body) => {
          res.writeHead(200, {
            'Content-Type': registry.contentType,
            'Content-Length': Buffer.byteLength(body),
            'Cache-Control': 'no-store',
          })
          res.end(req.method === 'HEAD' ? undefined : body)
        },
        (err: unknown) => {
          const body = `metrics failed: ${err instanceof Error ? err.message : String(err)}\n`
          res.writeHead(500, { 'Content-Type': 'text/plain; charset=utf-8' }).end(body)
        },
      )
    }
  }
}
