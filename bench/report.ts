/**
 * Formats bench results: the tables and the ratios (with the target lines of issues 6 and 15 from
 * targets.ts), and the channel-history runs with the targets of issue 12, as text and Markdown.
 */
import { type ConnectPlan, type ConnectResult, connectMarkdown } from './connect.js'
import type { FloorResult } from './floor.js'
import type { HistoryResults, PublishCostRun } from './history.js'
import { type Figures as JoinFigures, joinsMarkdown } from './joins.js'
import type { RunResult, ServerFacts } from './scenarios.js'
import { fmt, mark, table } from './format.js'
import { deliveryTargets, targets } from './targets.js'

/** Everything one `npm run bench` measured, with where and when. */
export interface BenchResults {
  date: string
  commit: string
  node: string
  cpu: string
  cores: number
  quick: boolean
  loadBefore: string
  loadAfter: string
  seconds: number
  runs: RunResult[]
  facts: ServerFacts[]
  /** The channel-history runs (wsfacility only), or null when not run. */
  history: HistoryResults | null
  /** The connection storms (bench/connect.ts), or null when not run. */
  connect: { plan: ConnectPlan; runs: ConnectResult[] } | null
  /** Live joins and leaves (bench/joins.ts), or null when not run. */
  joins: JoinFigures[] | null
  /** The largest fan-out on a plain ws server, one write per socket (bench/floor.ts), or null. */
  floor: FloorResult | null
  /**
   * One channel per client on a plain ws server, each message in a write of its own
   * (bench/floor.ts `spread`), or null; absent in result files written before it existed.
   */
  channelsFloor?: FloorResult | null
  /**
   * The wide fan-out (Plan.wide) on a plain ws server, one write per socket, or null; absent in
   * result files written before it existed.
   */
  wideFloor?: FloorResult | null
}

const NAMES = { wsfacility: 'wsfacility', socketio: 'socket.io' } as const

/** The per-run table. */
export function runTable(runs: RunResult[]): string {
  return table(
    [
      'server',
      'scenario',
      'deliveries',
      'lost',
      'closed',
      'deliveries/s',
      'CPU µs/delivery',
      'peak RSS MB',
      'RSS growth MB',
      'p50 ms',
      'p99 ms',
      'max ms',
      'others (cores)',
    ],
    runs.map((r) => [
      NAMES[r.server],
      r.scenario,
      fmt(r.delivered),
      fmt(r.lost),
      fmt(r.closed),
      fmt(r.deliveriesPerSec),
      fmt(r.cpuMicrosPerDelivery, 2),
      fmt(r.peakRssMB, 1),
      fmt(r.rssGrowthMB, 1),
      fmt(r.p50ms, 1),
      fmt(r.p99ms, 1),
      fmt(r.maxms, 1),
      fmt(r.otherCores, 2),
    ]),
  )
}

/** Idle memory and Redis connections. */
export function factTable(facts: ServerFacts[]): string {
  return table(
    ['server', 'idle clients', 'RSS KB/conn', 'heap KB/conn', 'Redis conns at 10', 'at idle N'],
    facts.map((f) => [
      NAMES[f.server],
      fmt(f.idleClients),
      fmt(f.rssPerConnKB, 1),
      fmt(f.heapPerConnKB, 1),
      String(f.redisConnsAt10),
      String(f.redisConnsAtIdle),
    ]),
  )
}

/** wsfacility ÷ Socket.IO per scenario. */
export function ratioTable(runs: RunResult[]): string {
  const rows: string[][] = []
  for (const w of runs.filter((r) => r.server === 'wsfacility')) {
    const s = runs.find((r) => r.server === 'socketio' && r.scenario === w.scenario)
    if (!s) continue
    rows.push([
      w.scenario,
      `${fmt(w.deliveriesPerSec / s.deliveriesPerSec, 2)}×`,
      `${fmt(w.cpuMicrosPerDelivery / s.cpuMicrosPerDelivery, 2)}×`,
      `${fmt(w.peakRssMB / s.peakRssMB, 2)}×`,
      s.p99ms > 0 ? `${fmt(w.p99ms / s.p99ms, 2)}×` : '—',
    ])
  }
  return table(['scenario', 'deliveries/s', 'CPU/delivery', 'peak RSS', 'p99'], rows)
}

/** Publish cost with history off and on, each side summed over its rounds. */
export function publishCostTable(runs: PublishCostRun[]): string {
  return table(
    [
      'clients',
      'publisher',
      'history',
      'messages',
      'lost',
      'frame B',
      'messages/s',
      'broker µs/msg',
      'redis µs/msg',
      'broker+redis µs/msg',
      'publisher µs/msg',
      'others (cores)',
    ],
    runs.map((r) => [
      fmt(r.clients),
      r.via,
      r.history ? 'on' : 'off',
      fmt(r.messages),
      fmt(r.lost),
      fmt(r.frameBytes),
      fmt(r.messagesPerSec),
      fmt(r.brokerMicrosPerMessage, 1),
      fmt(r.redisMicrosPerMessage, 1),
      fmt(r.serverMicrosPerMessage, 1),
      fmt(r.publisherMicrosPerMessage, 1),
      fmt(r.otherCores, 2),
    ]),
  )
}

/** The off/on pairs of the publish-cost runs (each on side follows its off side). */
function costPairs(runs: PublishCostRun[]): [PublishCostRun, PublishCostRun][] {
  const out: [PublishCostRun, PublishCostRun][] = []
  for (let i = 0; i + 1 < runs.length; i += 2) out.push([runs[i]!, runs[i + 1]!])
  return out
}

/** History on ÷ off per pair. */
export function publishRatioTable(runs: PublishCostRun[]): string {
  return table(
    ['clients', 'publisher (off → on)', 'broker+redis', 'each round', 'broker', 'redis'],
    costPairs(runs).map(([off, on]) => [
      fmt(on.clients),
      `${off.via} → ${on.via}`,
      `${fmt(on.serverMicrosPerMessage / off.serverMicrosPerMessage, 2)}×`,
      on.serverMicrosPerRound
        .map((v, i) => `${fmt(v / off.serverMicrosPerRound[i]!, 2)}×`)
        .join(' '),
      `${fmt(on.brokerMicrosPerMessage / off.brokerMicrosPerMessage, 2)}×`,
      `${fmt(on.redisMicrosPerMessage / off.redisMicrosPerMessage, 2)}×`,
    ]),
  )
}

/** The mass reconnects, without and with history. */
export function reconnectTable(h: HistoryResults): string {
  return table(
    [
      'mode',
      'clients',
      'missed',
      'back',
      'recovered',
      'missed frames',
      'all back s',
      'p50 s',
      'p99 s',
      'live after',
      'Redis commands',
      'history reads',
      'broker CPU s',
      'redis CPU s',
      'load generator CPU s',
      'others (cores)',
    ],
    h.reconnect.map((r) => [
      r.mode === 'history' ? 'history, ?recover=' : 'no history, fresh',
      fmt(r.clients),
      fmt(r.missedPublished),
      fmt(r.ready),
      r.mode === 'history' ? `${fmt(r.recovered)} (failed ${fmt(r.failed)})` : '—',
      fmt(r.missedFrames),
      fmt(r.allBackMs / 1000, 2),
      fmt(r.p50Ms / 1000, 2),
      fmt(r.p99Ms / 1000, 2),
      fmt(r.liveAfter),
      fmt(r.redisCommands),
      fmt(r.historyReads),
      fmt(r.brokerCpuMs / 1000, 2),
      fmt(r.redisCpuMs / 1000, 2),
      fmt(r.loadgenCpuMs / 1000, 2),
      fmt(r.otherCores, 2),
    ]),
  )
}

/** The targets of issue 12, each with the measured figure (and, where there is one, whether met). */
export function historyTargets(h: HistoryResults): string[] {
  const out: string[] = []
  for (const [off, on] of costPairs(h.publish)) {
    const ratio = on.serverMicrosPerMessage / off.serverMicrosPerMessage
    const text =
      `publish cost with history, ${fmt(on.clients)} clients, ${off.via} → ${on.via}: ` +
      `broker+redis CPU/message ${fmt(ratio, 2)}× without (${fmt(off.serverMicrosPerMessage, 1)} → ` +
      `${fmt(on.serverMicrosPerMessage, 1)} µs)`
    // The target is about wsfacility's own publish path; FCALL vs a bare PUBLISH is for reference.
    out.push(on.via === 'RedisPublisher' ? `${text} (≤ 1.5): ${mark(ratio <= 1.5)}` : text)
  }
  const m = h.memory
  if (m) {
    out.push(
      `Redis memory per channel of history (${fmt(m.size)} × ${m.payloadBytes} B messages, ` +
        `${fmt(m.channels)} channels): ${fmt(m.bytesPerChannel / 1024, 1)} KB, ` +
        `${fmt(m.bytesPerMessage)} B per message kept`,
    )
  }
  const w = h.reconnect.find((r) => r.mode === 'history')
  const n = h.reconnect.find((r) => r.mode === 'none')
  if (w) {
    const ok = w.recovered === w.clients && w.missedFrames === w.clients * w.missedPublished
    out.push(
      `mass reconnect of ${fmt(w.clients)}: ${fmt(w.recovered)} recovered all ${w.missedPublished} ` +
        `missed messages in order (${fmt(w.missedFrames)} frames): ${mark(ok)}`,
    )
    const vs = n
      ? ` vs ${fmt(n.allBackMs / 1000, 2)} s, ${fmt(n.redisCommands)} commands and ` +
        `${fmt((n.brokerCpuMs + n.redisCpuMs) / 1000, 2)} s of broker+redis CPU connecting afresh without history`
      : ''
    out.push(
      `mass reconnect of ${fmt(w.clients)} with history: all back in ${fmt(w.allBackMs / 1000, 2)} s, ` +
        `${fmt(w.redisCommands)} Redis commands (${fmt(w.historyReads)} history reads), ` +
        `${fmt((w.brokerCpuMs + w.redisCpuMs) / 1000, 2)} s of broker+redis CPU${vs}`,
    )
  }
  return out
}

/** The channel-history section. */
export function historyMarkdown(h: HistoryResults): string[] {
  const lines = [
    `## Channel history (issue 12): size ${fmt(h.options.size)}, ttl ${fmt(h.options.ttl)} s`,
    '',
    'Publish cost, history off then on: ~100-byte messages at maximum rate to one broadcast channel ' +
      'of two json facilities alike but for history (the clients of both connected throughout), ' +
      'rounds alternating off/on; CPU of the broker process and of redis-server per published ' +
      'message. RedisPublisher (the target): the same publisher process and broker path both ways, ' +
      'one script per publish (PUBLISH + receiver count, or append to history + PUBLISH + receiver ' +
      'count). PUBLISH → FCALL: a publisher outside Node, bare PUBLISH vs FCALL wsfacility_publish.',
    '',
    publishCostTable(h.publish),
    '',
    'History on ÷ off:',
    '',
    publishRatioTable(h.publish),
    '',
  ]
  const m = h.memory
  if (m) {
    lines.push(
      `Redis memory: ${fmt(m.channels)} channels × ${fmt(m.size)} messages of ${m.payloadBytes} B ` +
        `(${fmt(m.published)} published, ${fmt(m.kept)} kept, ${fmt(m.keys)} keys): used_memory ` +
        `+${fmt(m.usedMemoryDelta / 2 ** 20, 1)} MB, ${fmt(m.bytesPerChannel / 1024, 1)} KB per channel, ` +
        `${fmt(m.bytesPerMessage)} B per message.`,
      '',
    )
  }
  if (h.reconnect.length > 0) {
    lines.push(
      'Mass reconnect: json clients on one broadcast channel, all dropped at once (the load ' +
        'generator destroys its sockets), messages published while they are away, then all ' +
        'reconnect (handshakes in flight bounded): with history each from its own last position ' +
        '(?recover=), "back" once it got every missed message in order and then recovered: true; ' +
        'without history afresh, "back" at its handshake. Redis commands: total_commands_processed ' +
        'meanwhile (commands inside scripts and MULTI count one each).',
    )
    lines.push('', reconnectTable(h), '')
    for (const r of h.reconnect) {
      const top = Object.entries(r.commands)
        .map(([cmd, calls]) => `${cmd} ${fmt(calls)}`)
        .join(', ')
      lines.push(`- Redis commands, ${r.mode === 'history' ? 'history' : 'no history'}: ${top}`)
    }
    lines.push('')
  }
  lines.push('Targets (issue 12):', '', ...historyTargets(h).map((t) => `- ${t}`), '')
  return lines
}

/** The whole report as Markdown (also what the console shows). */
export function markdown(r: BenchResults): string {
  const head = [
    `# wsfacility vs Socket.IO 4.8 + redis-adapter${r.quick ? ' (quick run)' : ''}`,
    '',
    `${r.date} · commit ${r.commit} · Node ${r.node} · ${r.cpu} × ${r.cores} · ` +
      `load average before ${r.loadBefore}, after ${r.loadAfter} · ${fmt(r.seconds)} s`,
    '',
  ]
  const servers =
    r.runs.length === 0
      ? []
      : [
          runTable(r.runs),
          '',
          factTable(r.facts),
          '',
          'wsfacility ÷ Socket.IO (same run, same load generator):',
          '',
          ratioTable(r.runs),
          '',
          'Targets (issue 6):',
          '',
          ...targets(r.runs, r.facts).map((t) => `- ${t}`),
          '',
          'Targets (issue 15, deliveries):',
          '',
          ...deliveryTargets(r.runs, r.facts, {
            burst: r.floor,
            channels: r.channelsFloor ?? null,
            wide: r.wideFloor ?? null,
          }).map((t) => `- ${t}`),
          '',
        ]
  const storms = r.connect ? connectMarkdown(r.connect.runs, r.connect.plan) : []
  storms.push(...(r.joins ? joinsMarkdown(r.joins) : []))
  return [...head, ...servers, ...storms, ...(r.history ? historyMarkdown(r.history) : [])].join(
    '\n',
  )
}
