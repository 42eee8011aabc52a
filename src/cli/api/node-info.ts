import type { Broker } from '../../broker/broker.js'

/** What one broker process reports of itself (`GET /api/info`, the dashboard). */
export interface NodeInfo {
  id: string
  /** Open connections, and per facility. */
  connections: number
  facilities: Record<string, number>
  /** Channels subscribed for clients. */
  channels: number
  /** Messages taken from Redis for local clients, and frames delivered (counters since start). */
  messages: number
  deliveries: number
  /** The channels with the most local connections, most first (names without the prefix). */
  top: { channel: string; connections: number }[]
  /** Seconds since the process started. */
  uptime: number
  /** When this was taken (ms since the epoch). */
  at: number
}

// Each process rewrites its entry every REPORT_MS; an entry not rewritten for TTL_S is a dead
// process's. The key lives under wsfacility's own namespace, so it cannot collide with channels.
const REPORT_MS = 5000
const TTL_S = 15
const TOP = 10

/** This process's figures, read from the broker now. */
export function localInfo(broker: Broker): NodeInfo {
  const facilities: Record<string, number> = {}
  const perChannel = new Map<string, number>()
  const prefix = broker.options.channelPrefix.length
  for (const conn of broker.connections.values()) {
    facilities[conn.facility] = (facilities[conn.facility] ?? 0) + 1
    for (const ch of conn.channels.subscribe) {
      const name = ch.slice(prefix)
      perChannel.set(name, (perChannel.get(name) ?? 0) + 1)
    }
  }
  const top = [...perChannel]
    .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))
    .slice(0, TOP)
    .map(([channel, connections]) => ({ channel, connections }))
  const { connections, channels, messages, deliveries } = broker.stats
  return {
    id: broker.engine.nodeId,
    connections,
    facilities,
    channels,
    messages,
    deliveries,
    top,
    uptime: Math.round(process.uptime()),
    at: Date.now(),
  }
}

/**
 * Every process's figures, cluster-wide: each process writes its own to Redis (as the last message
 * of a key of its own, expiring after TTL_S) every few seconds, and a read gathers those of the
 * live processes, this one's taken fresh.
 */
export class NodeBoard {
  readonly #broker: Broker
  #timer: NodeJS.Timeout | null = null

  constructor(broker: Broker) {
    this.#broker = broker
  }

  #key(id: string): string {
    return `${this.#broker.options.channelPrefix}wsfacility:node-info:${id}`
  }

  /** Starts reporting this process (at once, then every few seconds) until `stop()`. */
  start(): void {
    if (this.#timer) return
    const report = (): void => {
      const info = localInfo(this.#broker)
      // A report lost to a Redis outage is replaced by the next one.
      this.#broker.engine
        .publish(this.#key(info.id), Buffer.from(JSON.stringify(info)), TTL_S)
        .catch(() => {})
    }
    report()
    this.#timer = setInterval(report, REPORT_MS)
    this.#timer.unref()
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer)
    this.#timer = null
  }

  /** The live processes' figures, this one's first. */
  async read(): Promise<NodeInfo[]> {
    const self = localInfo(this.#broker)
    const others = (await this.#broker.engine.nodes()).filter((id) => id !== self.id)
    const stored =
      others.length > 0 ? await this.#broker.engine.get(others.map((id) => this.#key(id))) : []
    const out = [self]
    for (const raw of stored) {
      if (raw === null) continue
      try {
        out.push(JSON.parse(raw.toString('utf8')) as NodeInfo)
      } catch {
        // Not ours: skipped.
      }
    }
    return out
  }
}
