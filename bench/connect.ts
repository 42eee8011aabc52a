/**
 * Connection storms (issue 15): a fresh server process per variant, then `clients` clients
 * connecting `concurrency` at a time from the raw-TCP load generator. Measured: accepted
 * connections per second (first handshake started → last completed) and the server's CPU per
 * accepted connection. Variants: wsfacility on the Redis engine (anonymous; JWT HS256; JWT with
 * presence), Socket.IO 4.8 with the redis adapter (each socket joins a room), and a plain `ws`
 * server that accepts and does nothing (the floor). Each variant storms `rounds` times, the
 * variants taking turns (round 1 of every variant, then round 2, …), so a drift of the machine's
 * speed during the run falls on all of them alike; the report takes each variant's median.
 */
import { SignJWT } from 'jose'
import { freePort } from '../test/helpers/redis.js'
import { Child } from './ipc.js'
import { cpuReading, cpuSince } from './proc.js'
import { sleep } from './scenarios.js'

/** Sizes of one storm. */
export interface StormPlan {
  clients: number
  concurrency: number
  /** Clients connected and closed first, not measured (a fresh process runs unoptimised). */
  warm: number
}

/** Sizes of the storm runs. */
export interface ConnectPlan extends StormPlan {
  /** Storms per variant, the variants taking turns; the report takes each one's median. */
  rounds: number
}

/** Figures of one storm. */
export interface ConnectResult {
  server: string
  /** 1-based; results of runs before rounds existed have none (one round). */
  round?: number
  clients: number
  accepted: number
  seconds: number
  acceptedPerSec: number
  cpuMicrosPerConn: number
}

const JWT_SECRET = 'wsfacility-bench-secret-not-for-production'

export interface Variant {
  name: string
  proc: 'wsfacility' | 'socketio' | 'plain-ws'
  env?: Record<string, string>
  /** Request targets (and Socket.IO auth objects) of `count` clients, numbered from `from`. */
  clients(from: number, count: number): Promise<{ paths: string[]; auths?: object[] }>
}

async function tokens(from: number, count: number): Promise<string[]> {
  const key = new TextEncoder().encode(JWT_SECRET)
  return Promise.all(
    Array.from({ length: count }, (_, i) =>
      new SignJWT({})
        .setProtectedHeader({ alg: 'HS256' })
        .setSubject(`u${from + i}`)
        .sign(key),
    ),
  )
}

const jwtPaths = async (from: number, count: number) => ({
  paths: (await tokens(from, count)).map((t) => `/ws/bench?subscribe-broadcast&token=${t}`),
})

export const VARIANTS: Variant[] = [
  {
    name: 'wsfacility',
    proc: 'wsfacility',
    clients: async (_from, count) => ({
      paths: Array.from({ length: count }, () => '/ws/bench?subscribe-broadcast'),
    }),
  },
  { name: 'wsfacility JWT', proc: 'wsfacility', clients: jwtPaths },
  {
    name: 'wsfacility JWT + presence',
    proc: 'wsfacility',
    env: { BENCH_PRESENCE: '1' },
    clients: jwtPaths,
  },
  {
    name: 'socket.io',
    proc: 'socketio',
    clients: async (_from, count) => ({
      paths: Array.from({ length: count }, () => '/socket.io/?EIO=4&transport=websocket'),
      auths: Array.from({ length: count }, () => ({ room: 'bench' })),
    }),
  },
  {
    name: 'ws',
    proc: 'plain-ws',
    clients: async (_from, count) => ({ paths: Array.from({ length: count }, () => '/') }),
  },
]

async function waitCount(server: Child, count: number): Promise<void> {
  const deadline = Date.now() + 30_000
  while ((await server.call<number>('count')) !== count && Date.now() < deadline) await sleep(50)
}

/** What bench/profile-connect.ts does around the measured storm (a profiler, counters). */
export interface StormProbe {
  /** Just before the measured clients connect. */
  start(server: Child, loadgen: Child): Promise<void>
  /** Right after the last one connected (before they close). */
  stop(server: Child, loadgen: Child, accepted: number): Promise<void>
}

/** One storm against a fresh server process of `variant`. */
export async function storm(
  variant: Variant,
  plan: StormPlan,
  redisUrl: string,
  probe?: StormProbe,
): Promise<ConnectResult> {
  const port = await freePort()
  const env = {
    BENCH_REDIS_URL: redisUrl,
    BENCH_PORT: String(port),
    BENCH_JWT_SECRET: JWT_SECRET,
    ...variant.env,
  }
  const file = (name: string) => new URL(`procs/${name}.ts`, import.meta.url).pathname
  const [server, loadgen] = await Promise.all([
    Child.start(file(variant.proc), ['--expose-gc'], env),
    Child.start(file('loadgen'), [], env),
  ])
  try {
    const protocol = variant.proc === 'socketio' ? 'sio' : 'ws'
    await loadgen.call('init', { port, protocol, sampleEvery: 1_000_000 })
    const { concurrency } = plan
    const warm = await variant.clients(0, plan.warm)
    await loadgen.call('connect', { ...warm, concurrency })
    await loadgen.call('close')
    await waitCount(server, 0)
    await server.call('gc')
    const measured = await variant.clients(plan.warm, plan.clients)
    await probe?.start(server, loadgen)
    const cpu0 = cpuReading(server.pid)
    const t0 = performance.now()
    const accepted = await loadgen.call<number>('connect', { ...measured, concurrency })
    const seconds = (performance.now() - t0) / 1000
    const cpu = cpuSince(cpu0, cpuReading(server.pid))
    await probe?.stop(server, loadgen, accepted)
    await loadgen.call('close')
    await waitCount(server, 0)
    return {
      server: variant.name,
      clients: plan.clients,
      accepted,
      seconds,
      acceptedPerSec: accepted / seconds,
      cpuMicrosPerConn: cpu / Math.max(1, accepted),
    }
  } finally {
    await Promise.all([loadgen.stop(), server.stop()])
  }
}

/** `plan.rounds` rounds of every variant's storm, the variants taking turns, logging each. */
export async function benchConnect(
  plan: ConnectPlan,
  redisUrl: string,
  log: (line: string) => void,
): Promise<ConnectResult[]> {
  const results: ConnectResult[] = []
  for (let round = 1; round <= plan.rounds; round++) {
    for (const variant of VARIANTS) {
      const r = { ...(await storm(variant, plan, redisUrl)), round }
      results.push(r)
      log(
        `  round ${round}, ${r.server}: ${Math.round(r.acceptedPerSec)} accepted/s, ` +
          `${r.cpuMicrosPerConn.toFixed(0)} µs CPU/connection (${r.accepted}/${r.clients})`,
      )
    }
  }
  return results
}

/** One variant's rounds and their medians. */
interface StormSummary {
  server: string
  rounds: ConnectResult[]
  /** The fewest accepted of any round. */
  accepted: number
  clients: number
  acceptedPerSec: number
  cpuMicrosPerConn: number
}

/** The middle value (the mean of the two middle ones for an even count). */
function median(values: readonly number[]): number {
  const v = [...values].sort((a, b) => a - b)
  const mid = v.length >> 1
  return v.length % 2 === 1 ? v[mid]! : (v[mid - 1]! + v[mid]!) / 2
}

/** The storms grouped by variant, in the order the variants first ran, with their medians. */
function summarizeStorms(results: readonly ConnectResult[]): StormSummary[] {
  const groups = new Map<string, ConnectResult[]>()
  for (const r of results) {
    const group = groups.get(r.server)
    if (group) group.push(r)
    else groups.set(r.server, [r])
  }
  return [...groups].map(([server, rounds]) => ({
    server,
    rounds,
    accepted: Math.min(...rounds.map((r) => r.accepted)),
    clients: rounds[0]!.clients,
    acceptedPerSec: median(rounds.map((r) => r.acceptedPerSec)),
    cpuMicrosPerConn: median(rounds.map((r) => r.cpuMicrosPerConn)),
  }))
}

const fmt = (n: number, digits = 0) =>
  n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits })

/**
 * The storm table (each variant's median accepted/s and CPU per connection over its rounds, every
 * round's figures beside them, the medians' ratios to Socket.IO and to plain ws), and each
 * wsfacility variant's target line.
 */
export function connectMarkdown(results: readonly ConnectResult[], plan: ConnectPlan): string[] {
  const summaries = summarizeStorms(results)
  const by = (name: string) => summaries.find((r) => r.server === name)
  const sio = by('socket.io')
  const ws = by('ws')
  const ratio = (a: number, b: number | undefined) => (b ? `${(a / b).toFixed(2)}×` : '—')
  const rounds = Math.max(...summaries.map((s) => s.rounds.length))
  const each = (s: StormSummary, pick: (r: ConnectResult) => number) =>
    s.rounds.map((r) => fmt(pick(r))).join(', ')
  const lines = [
    `Connection storms: ${fmt(plan.clients)} clients connecting ${fmt(plan.concurrency)} at a ` +
      'time, Redis engine, one fresh server process each' +
      (rounds > 1
        ? `; ${rounds} rounds, the variants taking turns, and each variant's median (the ` +
          'ratios are of medians):'
        : ':'),
    '',
    '| server | accepted (fewest) | accepted/s | CPU µs/connection | accepted/s, each round | CPU µs/connection, each round | ÷ Socket.IO (rate) | ÷ ws (rate) | CPU ÷ Socket.IO | CPU ÷ ws |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
  ]
  for (const s of summaries) {
    lines.push(
      `| ${s.server} | ${fmt(s.accepted)} | ${fmt(s.acceptedPerSec)} | ${fmt(s.cpuMicrosPerConn)} | ` +
        `${each(s, (r) => r.acceptedPerSec)} | ${each(s, (r) => r.cpuMicrosPerConn)} | ` +
        `${ratio(s.acceptedPerSec, sio?.acceptedPerSec)} | ` +
        `${ratio(s.acceptedPerSec, ws?.acceptedPerSec)} | ` +
        `${ratio(s.cpuMicrosPerConn, sio?.cpuMicrosPerConn)} | ` +
        `${ratio(s.cpuMicrosPerConn, ws?.cpuMicrosPerConn)} |`,
    )
  }
  lines.push('')
  const targets = summaries.filter((s) => s.server.startsWith('wsfacility'))
  for (const s of targets) {
    const vsSio = sio ? s.acceptedPerSec / sio.acceptedPerSec : NaN
    const vsWs = ws ? s.acceptedPerSec / ws.acceptedPerSec : NaN
    const all = s.accepted === s.clients
    const met = vsSio >= 1.5 && vsWs >= 0.8 && all
    const short = all ? '' : `, ${fmt(s.accepted)} of ${fmt(s.clients)} accepted`
    lines.push(
      `- ${s.server}: ${vsSio.toFixed(2)}× Socket.IO's rate (≥ 1.5), ${vsWs.toFixed(2)}× ws's ` +
        `(≥ 0.8)${short}: ${met ? 'met' : 'NOT met'}`,
    )
  }
  lines.push('')
  return lines
}
