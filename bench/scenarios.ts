/**
 * The measured steps of one server: each group starts a fresh server process (so its peak RSS is
 * its own), connects the load generator, publishes, and reads the server's CPU and memory.
 */
import os from 'node:os'
import { SignJWT } from 'jose'
import { freePort, type TestRedisClient } from '../test/helpers/redis.js'
import { Child } from './ipc.js'
import type { LoadStats } from './loadgen.js'
import { cpuMicros, cpuReading, cpuSince, machineMicros, rssBytes, sampleRss } from './proc.js'

/** Which server a run measures. */
export type ServerKind = 'wsfacility' | 'socketio'

/** Sizes of a bench run. */
export interface Plan {
  /** Clients of the idle-memory and largest fan-out group. */
  idle: number
  /** Broadcast fan-out groups: clients and messages published at maximum rate. */
  fanout: { clients: number; messages: number }[]
  /** Fixed-rate latency run (on the fan-out group with the same number of clients). */
  fixed: { clients: number; rate: number; seconds: number }
  /** Many channels: one channel per client, messages spread round-robin at maximum rate. */
  users: { clients: number; messages: number }
  /**
   * wsfacility only: a broadcast fan-out to as many clients as the largest with as many messages as
   * a smaller one (`fan-out <clients> × <messages>`), since a burst's CPU per delivery is a
   * socket's write divided by the messages it carries. Socket.IO would take ~30 s for it.
   */
  wide?: { clients: number; messages: number }
}

/**
 * wsfacility's `writeDelay` in its second channels run (ms): each client's frames of a window
 * go out in one write. Socket.IO has no such option; its channels run is the default's peer.
 */
export const CHANNELS_WRITE_DELAY = 50

/** Figures of one measured run. */
export interface RunResult {
  server: ServerKind
  scenario: string
  clients: number
  messages: number
  expected: number
  delivered: number
  lost: number
  closed: number
  seconds: number
  deliveriesPerSec: number
  cpuMicrosPerDelivery: number
  peakRssMB: number
  /** Peak RSS minus RSS when the run started: what the burst buffered. */
  rssGrowthMB: number
  p50ms: number
  p99ms: number
  maxms: number
  /** CPU the rest of the machine (other helpers, the OS) used meanwhile, in cores. */
  otherCores: number
}

/** Per-server figures that are not runs. */
export interface ServerFacts {
  server: ServerKind
  idleClients: number
  rssPerConnKB: number
  heapPerConnKB: number
  redisConnsAt10: number
  redisConnsAtIdle: number
}

const JWT_SECRET = 'wsfacility-bench-secret-not-for-production'
/** A run ends when no frame arrived for this long (Socket.IO may spend seconds in one burst). */
const STALL_MS = 10_000
const RUN_TIMEOUT_MS = 90_000
const IDLE_SETTLE_MS = 6000
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** The three processes of a group besides Redis. */
export interface Group {
  kind: ServerKind
  server: Child
  loadgen: Child
  publisher: Child
}

/** What the history runs (bench/history.ts) change in a group; the other runs pass nothing. */
export interface GroupOptions {
  /** History of the `hist` facility ({ size, ttl }): defines the `plain` and `hist` facilities. */
  history?: { size: number; ttl: number }
  /** The load generator follows channel positions (LoadGeneratorOptions.track). */
  track?: boolean
  /** The publisher starts a broker of its own (RedisPublisher, broker.publish). */
  broker?: boolean
  /** wsfacility's `writeDelay` (ms); 0 when absent. */
  writeDelay?: number
}

export async function startGroup(
  kind: ServerKind,
  redisUrl: string,
  options: GroupOptions = {},
): Promise<Group> {
  const port = await freePort()
  const env: Record<string, string> = {
    BENCH_REDIS_URL: redisUrl,
    BENCH_PORT: String(port),
    BENCH_JWT_SECRET: JWT_SECRET,
  }
  if (options.history) env.BENCH_HISTORY = JSON.stringify(options.history)
  if (options.writeDelay) env.BENCH_WRITE_DELAY = String(options.writeDelay)
  const here = new URL('.', import.meta.url)
  const file = (name: string) => new URL(`procs/${name}.ts`, here).pathname
  const [server, loadgen, publisher] = await Promise.all([
    Child.start(file(kind), ['--expose-gc'], env),
    Child.start(file('loadgen'), [], env),
    Child.start(file('publisher'), [], env),
  ])
  const protocol = kind === 'wsfacility' ? 'ws' : 'sio'
  await loadgen.call('init', { port, protocol, sampleEvery: 20, track: options.track === true })
  await publisher.call('init', { kind: protocol, broker: options.broker === true })
  return { kind, server, loadgen, publisher }
}

export async function stopGroup(g: Group): Promise<void> {
  await Promise.all([g.loadgen.stop(), g.publisher.stop(), g.server.stop()])
}

async function tokens(count: number): Promise<string[]> {
  const key = new TextEncoder().encode(JWT_SECRET)
  return Promise.all(
    Array.from({ length: count }, (_, i) =>
      new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject(`u${i}`).sign(key),
    ),
  )
}

/** Connects `count` clients, on one broadcast channel or each on its own; returns the targets. */
export async function connect(g: Group, count: number, perUser: boolean): Promise<string[]> {
  let paths: string[]
  let auths: (object | null)[] = []
  let targets: string[]
  if (g.kind === 'wsfacility') {
    if (perUser) {
      const jwts = await tokens(count)
      paths = jwts.map((t) => `/ws/bench?subscribe-user&token=${t}`)
      targets = jwts.map((_, i) => `user:u${i}:bench`)
    } else {
      paths = Array.from({ length: count }, () => '/ws/bench?subscribe-broadcast')
      targets = ['broadcast:bench']
    }
  } else {
    paths = Array.from({ length: count }, () => '/socket.io/?EIO=4&transport=websocket')
    auths = Array.from({ length: count }, (_, i) => ({ room: perUser ? `u${i}` : 'bench' }))
    targets = perUser ? auths.map((a) => (a as { room: string }).room) : ['bench']
  }
  const ok = await g.loadgen.call<number>('connect', { paths, auths })
  if (ok !== count) throw new Error(`${g.kind}: only ${ok} of ${count} clients connected`)
  return targets
}

export async function disconnect(g: Group): Promise<void> {
  await g.loadgen.call('close')
  const deadline = Date.now() + 30_000
  while ((await g.server.call<number>('count')) > 0 && Date.now() < deadline) await sleep(100)
}

/** Waits until the load generator counted `frames`, or none came for `stallMs`. */
export async function waitFrames(
  g: Pick<Group, 'loadgen'>,
  frames: number,
  stallMs: number,
): Promise<void> {
  let last = -1
  let lastChange = Date.now()
  for (;;) {
    const s = await g.loadgen.call<LoadStats>('stats')
    if (s.frames >= frames) return
    if (s.frames !== last) [last, lastChange] = [s.frames, Date.now()]
    else if (Date.now() - lastChange > stallMs) return
    await sleep(50)
  }
}

/** Publishes and waits until every delivery arrived or deliveries stopped for a while. */
export async function measure(
  g: Group,
  scenario: string,
  clients: number,
  targets: string[],
  messages: number,
  rate: number,
  perMessage: number,
): Promise<RunResult> {
  const pid = g.server.pid
  // Warm-up, not measured: a fresh server process runs its first messages unoptimised, and the
  // first messages to a socket cost more than the next ones (with one channel per client, 50
  // messages reached 50 of the 2,000 clients; a fan-out to 10,000 warmed with 2 messages measured
  // its first 30-message burst at 0.23–0.33 µs per delivery where the next ones cost 0.13–0.2):
  // every target, and every client, gets 20 first.
  const perTarget = targets.length > 1 ? 20 * targets.length : 0
  const warm = Math.max(20, Math.min(50, Math.floor(20_000 / perMessage)), perTarget)
  await g.loadgen.call('reset')
  await g.publisher.call('publish', { targets, count: warm, rate: 0 })
  await waitFrames(g, warm * perMessage, STALL_MS)
  const expected = messages * perMessage
  await g.loadgen.call('reset')
  const rssStart = rssBytes(pid)
  const rss = sampleRss(pid)
  // The scheduler's count, to the µs: a burst to 10,000 clients takes 5–10 ticks of 10 ms.
  const cpu0 = cpuReading(pid)
  const ours0 = [g.loadgen.pid, g.publisher.pid].map(cpuMicros)
  const m0 = machineMicros()
  let published = false
  const pub = g.publisher
    .call<{ t0: number; t1: number }>('publish', { targets, count: messages, rate })
    .finally(() => (published = true))
  const start = Date.now()
  let last = -1
  let lastChange = Date.now()
  for (;;) {
    await sleep(50)
    const s = await g.loadgen.call<LoadStats>('stats')
    if (s.frames !== last) {
      last = s.frames
      lastChange = Date.now()
    }
    if (s.frames >= expected && published) break
    if (published && Date.now() - lastChange > STALL_MS) break
    if (Date.now() - start > RUN_TIMEOUT_MS) break
  }
  const used = cpuSince(cpu0, cpuReading(pid))
  const m1 = machineMicros()
  const ours1 = [g.loadgen.pid, g.publisher.pid].map(cpuMicros)
  const peak = rss.stop()
  const { t0 } = await pub
  const s = await g.loadgen.call<LoadStats>('stats', { latency: true })
  const seconds = Math.max(1e-6, (s.lastFrameAt - t0) / 1e6)
  const wall = (m1.total - m0.total) / os.cpus().length || 1
  const oursUsed = used + ours1.reduce((a, v, i) => a + v - ours0[i]!, 0)
  return {
    server: g.kind,
    scenario,
    clients,
    messages,
    expected,
    delivered: s.frames,
    lost: Math.max(0, expected - s.frames),
    closed: s.closedByServer,
    seconds,
    deliveriesPerSec: s.frames / seconds,
    cpuMicrosPerDelivery: used / Math.max(1, s.frames),
    peakRssMB: peak / 2 ** 20,
    rssGrowthMB: (peak - rssStart) / 2 ** 20,
    p50ms: s.latency.p50 / 1000,
    p99ms: s.latency.p99 / 1000,
    maxms: s.latency.max / 1000,
    // Machine busy time minus the server, load generator and publisher (Redis counts as other).
    otherCores: Math.max(0, (m1.busy - m0.busy - oursUsed) / wall),
  }
}

async function redisConns(redis: TestRedisClient, kind: ServerKind): Promise<number> {
  const list = await redis.clientList()
  return list.filter((c) => c.name === `bench-${kind}`).length
}

/** Runs every group of `plan` against one server kind, one after the other. */
export async function benchServer(
  kind: ServerKind,
  plan: Plan,
  redisUrl: string,
  redis: TestRedisClient,
  log: (line: string) => void,
): Promise<{ runs: RunResult[]; facts: ServerFacts }> {
  const runs: RunResult[] = []
  const done = (r: RunResult) => {
    runs.push(r)
    log(
      `  ${kind} ${r.scenario}: ${Math.round(r.deliveriesPerSec)} deliveries/s, ` +
        `${r.cpuMicrosPerDelivery.toFixed(2)} µs CPU/delivery, lost ${r.lost}`,
    )
  }
  // The fixed-rate run goes first on its group, before a burst has grown the server's heap.
  const fanout = async (g: Group, f: Plan['fanout'][number], targets: string[]) => {
    if (f.clients === plan.fixed.clients) {
      const { rate, seconds } = plan.fixed
      const name = `fixed ${f.clients} × ${rate}/s`
      done(await measure(g, name, f.clients, targets, rate * seconds, rate, f.clients))
    }
    done(await measure(g, `fan-out ${f.clients}`, f.clients, targets, f.messages, 0, f.clients))
  }
  const largest = plan.fanout.reduce((a, f) => (f.clients > a.clients ? f : a))

  // Group 1: Redis connections at 10 clients, idle memory and fan-out at the largest size.
  let g = await startGroup(kind, redisUrl)
  await connect(g, 10, false)
  const redisConnsAt10 = await redisConns(redis, kind)
  await disconnect(g)
  const before = await g.server.call<NodeJS.MemoryUsage>('gc')
  const rssBefore = rssBytes(g.server.pid)
  const targets = await connect(g, plan.idle, false)
  // Idle means idle: node-redis keeps each command's 5 s timeout timer alive until it fires.
  await sleep(IDLE_SETTLE_MS)
  const after = await g.server.call<NodeJS.MemoryUsage>('gc')
  const rssAfter = rssBytes(g.server.pid)
  const facts: ServerFacts = {
    server: kind,
    idleClients: plan.idle,
    rssPerConnKB: (rssAfter - rssBefore) / plan.idle / 1024,
    heapPerConnKB:
      (after.heapUsed + after.external - before.heapUsed - before.external) / plan.idle / 1024,
    redisConnsAt10,
    redisConnsAtIdle: await redisConns(redis, kind),
  }
  log(`  ${kind} idle: ${facts.rssPerConnKB.toFixed(1)} KB RSS per connection`)
  if (largest.clients === plan.idle) await fanout(g, largest, targets)
  await disconnect(g)
  await stopGroup(g)

  // One fresh server per fan-out size, so each burst's peak RSS is its own.
  for (const f of plan.fanout) {
    if (f === largest && largest.clients === plan.idle) continue
    g = await startGroup(kind, redisUrl)
    await fanout(g, f, await connect(g, f.clients, false))
    await disconnect(g)
    await stopGroup(g)
  }

  g = await startGroup(kind, redisUrl)
  const { clients, messages } = plan.users
  const users = await connect(g, clients, true)
  done(await measure(g, `channels ${clients}`, clients, users, messages, 0, 1))
  await disconnect(g)
  await stopGroup(g)

  if (kind === 'wsfacility' && plan.wide) {
    const w = plan.wide
    g = await startGroup(kind, redisUrl)
    const name = `fan-out ${w.clients} × ${w.messages}`
    const wide = await connect(g, w.clients, false)
    done(await measure(g, name, w.clients, wide, w.messages, 0, w.clients))
    await disconnect(g)
    await stopGroup(g)
  }

  if (kind === 'wsfacility') {
    // The same run with writeDelay: fewer, larger writes per client, at up to that much latency.
    g = await startGroup(kind, redisUrl, { writeDelay: CHANNELS_WRITE_DELAY })
    const delayed = await connect(g, clients, true)
    const name = `channels ${clients} + writeDelay ${CHANNELS_WRITE_DELAY} ms`
    done(await measure(g, name, clients, delayed, messages, 0, 1))
    await disconnect(g)
    await stopGroup(g)
  }
  return { runs, facts }
}
