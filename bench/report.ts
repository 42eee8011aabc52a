/** Formats bench results: the table, the ratios and the targets of issue 6, as text and Markdown. */
import type { RunResult, ServerFacts } from './scenarios.js'

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
}

const NAMES = { wsfacility: 'wsfacility', socketio: 'socket.io' } as const

function fmt(n: number, digits = 0): string {
  return n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits })
}

function table(head: string[], rows: string[][]): string {
  const lines = [head, head.map(() => '---'), ...rows].map((r) => `| ${r.join(' | ')} |`)
  return lines.join('\n')
}

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

/** The targets of issue 6, each with the measured figure and whether it is met. */
export function targets(runs: RunResult[], facts: ServerFacts[]): string[] {
  const find = (server: string, prefix: string) =>
    runs.find(
      (r) => r.server === server && (r.scenario === prefix || r.scenario.startsWith(`${prefix} `)),
    )
  const out: string[] = []
  const mark = (ok: boolean) => (ok ? 'met' : 'NOT met')
  // The target's fan-out size is the fixed-rate run's (2,000 clients; 1,000 in a quick run).
  const fixedClients = runs.find((r) => r.scenario.startsWith('fixed'))?.clients ?? 2000
  const fw = find('wsfacility', `fan-out ${fixedClients}`)
  const fs = fw && find('socketio', fw.scenario)
  if (fw && fs) {
    const cpu = fw.cpuMicrosPerDelivery / fs.cpuMicrosPerDelivery
    const rate = fw.deliveriesPerSec / fs.deliveriesPerSec
    out.push(
      `${fw.scenario}: CPU/delivery ${fmt(cpu, 2)}× Socket.IO's (≤ 0.33): ${mark(cpu <= 1 / 3)}`,
    )
    out.push(`${fw.scenario}: deliveries/s ${fmt(rate, 2)}× Socket.IO's (≥ 2): ${mark(rate >= 2)}`)
    out.push(
      `${fw.scenario}: peak RSS ${fmt(fw.peakRssMB, 1)} MB vs Socket.IO ${fmt(fs.peakRssMB, 1)} MB`,
    )
  }
  const xw = find('wsfacility', `fixed`)
  const xs = xw && find('socketio', xw.scenario)
  if (xw && xs) {
    const ok = xw.p99ms <= xs.p99ms && xw.lost === 0
    out.push(
      `${xw.scenario}: p99 ${fmt(xw.p99ms, 1)} ms vs ${fmt(xs.p99ms, 1)} ms, lost ${xw.lost}: ${mark(ok)}`,
    )
  }
  const w = facts.find((f) => f.server === 'wsfacility')
  if (w) {
    out.push(
      `memory per idle connection at ${fmt(w.idleClients)}: ${fmt(w.rssPerConnKB, 1)} KB (≤ 8): ${mark(w.rssPerConnKB <= 8)}`,
    )
    const ok = w.redisConnsAt10 === w.redisConnsAtIdle && w.redisConnsAtIdle <= 3
    out.push(
      `Redis connections: ${w.redisConnsAt10} at 10 clients, ${w.redisConnsAtIdle} at ${fmt(w.idleClients)} (constant, ≤ 3): ${mark(ok)}`,
    )
  }
  return out
}

/** The whole report as Markdown (also what the console shows). */
export function markdown(r: BenchResults): string {
  return [
    `# wsfacility vs Socket.IO 4.8 + redis-adapter${r.quick ? ' (quick run)' : ''}`,
    '',
    `${r.date} · commit ${r.commit} · Node ${r.node} · ${r.cpu} × ${r.cores} · ` +
      `load average before ${r.loadBefore}, after ${r.loadAfter} · ${fmt(r.seconds)} s`,
    '',
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
  ].join('\n')
}
