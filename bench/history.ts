/**
 * The channel-history runs (issue 12), wsfacility only: what history costs per published message
 * (broker and redis-server CPU, history off vs on, the same publisher path), Redis memory per
 * channel of history, and a mass reconnect that recovers from history against the same clients
 * connecting afresh without it.
 */
import os from 'node:os'
import { frameFor } from '../src/delivery/frame.js'
import type { TestRedisClient } from '../test/helpers/redis.js'
import type { LoadStats, RecoveryStats } from './loadgen.js'
import { type CpuReading, cpuReading, cpuSince, machineMicros } from './proc.js'
import { disconnect, type Group, sleep, startGroup, stopGroup, waitFrames } from './scenarios.js'

/** Sizes of the history runs. */
export interface HistoryPlan {
  /** History of the `hist` facility. */
  options: { size: number; ttl: number }
  /** Publish-cost runs: clients on the channel, messages per run at maximum rate. */
  publish: { clients: number; messages: number }[]
  /** Rounds of each pair (off, on, then on, off, …), summed per side. */
  rounds: number
  /** Memory: channels filled with `options.size` messages each. */
  memoryChannels: number
  /** Mass reconnect: clients, messages published while they are away, handshakes in flight. */
  reconnect: { clients: number; missed: number; concurrency: number }
}

/** How the publisher publishes in a publish-cost run. */
export type PublishVia = 'RedisPublisher' | 'PUBLISH' | 'FCALL'

/** One side (history off or on) of a publish-cost pair, summed over its rounds. */
export interface PublishCostRun {
  clients: number
  via: PublishVia
  history: boolean
  messages: number
  expected: number
  delivered: number
  lost: number
  /** Published messages per second (first publish → last delivery, over the rounds). */
  messagesPerSec: number
  brokerMicrosPerMessage: number
  redisMicrosPerMessage: number
  /** Broker + redis-server: the figure the ≤ 1.5× target is about. */
  serverMicrosPerMessage: number
  publisherMicrosPerMessage: number
  /** Broker + redis-server µs per message of each round, in order. */
  serverMicrosPerRound: number[]
  /** Bytes of one frame the clients get (the same function the broker frames with; with history
   * it carries the channel, epoch and offset). */
  frameBytes: number
  /** CPU the rest of the machine used meanwhile, in cores. */
  otherCores: number
}

/** Redis memory taken by history. */
export interface HistoryMemory {
  channels: number
  size: number
  payloadBytes: number
  published: number
  /** Entries in the streams afterwards (XLEN summed; `MAXLEN ~` may keep more than size). */
  kept: number
  /** Keys added (a stream and a hash per channel). */
  keys: number
  usedMemoryDelta: number
  bytesPerChannel: number
  bytesPerMessage: number
}

/** One mass reconnect. */
export interface ReconnectRun {
  /** `history`: a history facility, each client recovering from its position; `none`: a facility
   * without history, clients connecting afresh (what they missed is lost). */
  mode: 'history' | 'none'
  clients: number
  missedPublished: number
  /** Handshakes completed. */
  ready: number
  /** Clients that got every missed message in order and then `recovered: true`. */
  recovered: number
  failed: number
  /** Missed messages received (all clients). */
  missedFrames: number
  /** Reconnect start → every client back (history: its `recovered` frame; none: its handshake). */
  allBackMs: number
  /** Per client, reconnect start → back. */
  p50Ms: number
  p99Ms: number
  /** Clients that got a live message published after the reconnect. */
  liveAfter: number
  /** total_commands_processed meanwhile (commands inside scripts and MULTI count one each). */
  redisCommands: number
  /** The same by command (INFO commandstats calls), largest first. */
  commands: Record<string, number>
  /** Redis history reads of the broker (broker.stats.historyReads). */
  historyReads: number
  brokerCpuMs: number
  redisCpuMs: number
  /** The load generator's CPU (it parses every frame of these runs). */
  loadgenCpuMs: number
  otherCores: number
}

/** Everything the history runs measured. */
export interface HistoryResults {
  options: { size: number; ttl: number }
  publish: PublishCostRun[]
  memory: HistoryMemory | null
  reconnect: ReconnectRun[]
}

const STALL_MS = 10_000
const RUN_TIMEOUT_MS = 90_000
const PAYLOAD_BYTES = 100

/** The broker's counters (bench/procs/wsfacility.ts `stats`). */
interface BrokerStatsLike {
  connections: number
  historyReads: number
}

async function info(redis: TestRedisClient, ...sections: string[]): Promise<string> {
  return String(await redis.sendCommand(['INFO', ...sections]))
}

function infoField(text: string, field: string): number {
  const m = new RegExp(`^${field}:(\\d+)`, 'm').exec(text)
  return m ? Number(m[1]) : 0
}

function commandCalls(text: string): Map<string, number> {
  const out = new Map<string, number>()
  for (const m of text.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) out.set(m[1]!, Number(m[2]))
  return out
}

const PROCS = ['broker', 'redis', 'publisher', 'loadgen'] as const

/** CPU of the processes that serve a publish (broker, redis-server), the publisher, the load
 * generator, and the machine. */
function cpuOf(g: Group, redisPid: number) {
  const pids = [g.server.pid, redisPid, g.publisher.pid, g.loadgen.pid]
  const readings = Object.fromEntries(PROCS.map((k, i) => [k, cpuReading(pids[i]!)])) as Record<
    (typeof PROCS)[number],
    CpuReading
  >
  return { ...readings, machine: machineMicros() }
}

/** CPU µs each process used between two cpuOf readings. */
function cpuUsed(a: ReturnType<typeof cpuOf>, b: ReturnType<typeof cpuOf>) {
  const used = Object.fromEntries(PROCS.map((k) => [k, cpuSince(a[k], b[k])])) as Record<
    (typeof PROCS)[number],
    number
  >
  const ours = PROCS.reduce((sum, k) => sum + used[k], 0)
  return { ...used, others: otherCores(a.machine, b.machine, ours) }
}

/** Busy cores of the machine besides `used` µs of ours, between two machine readings. */
function otherCores(
  m0: { busy: number; total: number },
  m1: { busy: number; total: number },
  used: number,
) {
  const wall = (m1.total - m0.total) / os.cpus().length || 1
  return Math.max(0, (m1.busy - m0.busy - used) / wall)
}

interface Side {
  target: string
  history: boolean
  via: 'publisher' | 'publish' | 'fcall'
}

/** Sums of one side over its rounds. */
interface Sums {
  messages: number
  expected: number
  delivered: number
  seconds: number
  broker: number
  redis: number
  publisher: number
  other: number
  runs: number
  /** Broker + redis µs per message of each run. */
  perRun: number[]
}

/** Publishes `messages` on one side and waits for every delivery; adds the figures to `sums`. */
async function publishRun(
  g: Group,
  redisPid: number,
  side: Side,
  clients: number,
  messages: number,
  history: HistoryPlan['options'],
  sums: Sums,
): Promise<void> {
  const call = { targets: [side.target], rate: 0, via: side.via, history }
  // Warm-up, not measured (the first messages of a path run unoptimised).
  await g.loadgen.call('reset')
  await g.publisher.call('publish', { ...call, count: 50 })
  await waitFrames(g, 50 * clients, STALL_MS)
  await g.loadgen.call('reset')
  const expected = messages * clients
  const c0 = cpuOf(g, redisPid)
  let published = false
  const pub = g.publisher
    .call<{ t0: number }>('publish', { ...call, count: messages })
    .finally(() => (published = true))
  const start = Date.now()
  let last = -1
  let lastChange = Date.now()
  for (;;) {
    await sleep(50)
    const s = await g.loadgen.call<LoadStats>('stats')
    if (s.frames !== last) [last, lastChange] = [s.frames, Date.now()]
    if (s.frames >= expected && published) break
    if (published && Date.now() - lastChange > STALL_MS) break
    if (Date.now() - start > RUN_TIMEOUT_MS) break
  }
  const c1 = cpuOf(g, redisPid)
  const { t0 } = await pub
  const s = await g.loadgen.call<LoadStats>('stats')
  const used = cpuUsed(c0, c1)
  sums.messages += messages
  sums.expected += expected
  sums.delivered += s.frames
  sums.seconds += Math.max(1e-6, (s.lastFrameAt - t0) / 1e6)
  sums.broker += used.broker
  sums.redis += used.redis
  sums.publisher += used.publisher
  sums.other += used.others
  sums.runs++
  sums.perRun.push((used.broker + used.redis) / messages)
}

/** A frame as the broker builds it for a bench message, at a typical position. */
function frameBytes(history: boolean): number {
  const payload = Buffer.from(`@${'0'.repeat(16)}|12345|`.padEnd(PAYLOAD_BYTES, 'x'))
  const position = { channel: 'broadcast', epoch: (1764000000123456).toString(36), offset: 12345 }
  return frameFor('json', payload, history ? position : undefined).length
}

function costRun(clients: number, via: PublishVia, history: boolean, s: Sums): PublishCostRun {
  const per = (v: number) => v / Math.max(1, s.messages)
  return {
    clients,
    via,
    history,
    messages: s.messages,
    expected: s.expected,
    delivered: s.delivered,
    lost: Math.max(0, s.expected - s.delivered),
    messagesPerSec: s.messages / s.seconds,
    brokerMicrosPerMessage: per(s.broker),
    redisMicrosPerMessage: per(s.redis),
    serverMicrosPerMessage: per(s.broker + s.redis),
    publisherMicrosPerMessage: per(s.publisher),
    serverMicrosPerRound: s.perRun,
    frameBytes: frameBytes(history),
    otherCores: s.other / Math.max(1, s.runs),
  }
}

const emptySums = (): Sums => ({
  messages: 0,
  expected: 0,
  delivered: 0,
  seconds: 0,
  broker: 0,
  redis: 0,
  publisher: 0,
  other: 0,
  runs: 0,
  perRun: [],
})

/**
 * History off vs on for `clients` on one broadcast channel: `clients` json clients on `plain` and
 * as many on `hist` (the same facility but for history), both connected throughout; each round
 * publishes on one then the other (order alternating), through the same publisher path.
 */
async function publishCost(
  plan: HistoryPlan,
  size: HistoryPlan['publish'][number],
  redisUrl: string,
  redisPid: number,
  log: (line: string) => void,
): Promise<PublishCostRun[]> {
  const g = await startGroup('wsfacility', redisUrl, { history: plan.options, broker: true })
  const out: PublishCostRun[] = []
  try {
    for (const facility of ['plain', 'hist']) {
      const paths = Array.from(
        { length: size.clients },
        () => `/ws/${facility}?subscribe-broadcast`,
      )
      const ok = await g.loadgen.call<number>('connect', { paths })
      if (ok !== size.clients) throw new Error(`history: ${ok} of ${size.clients} connected`)
    }
    // RedisPublisher (the server-side path: one script per publish either way), then what a
    // publisher in another language would do: plain PUBLISH vs FCALL wsfacility_publish.
    const pairs: { via: PublishVia; off: Side; on: Side }[] = [
      {
        via: 'RedisPublisher',
        off: { target: 'plain', history: false, via: 'publisher' },
        on: { target: 'hist', history: true, via: 'publisher' },
      },
      {
        via: 'FCALL',
        off: { target: 'broadcast:plain', history: false, via: 'publish' },
        on: { target: 'broadcast:hist', history: true, via: 'fcall' },
      },
    ]
    for (const pair of pairs) {
      const sums = { off: emptySums(), on: emptySums() }
      // A fresh path of each process runs unoptimised at first: a quarter run per side, not counted.
      for (const side of ['off', 'on'] as const) {
        const warm = Math.ceil(size.messages / 4)
        await publishRun(g, redisPid, pair[side], size.clients, warm, plan.options, emptySums())
      }
      for (let r = 0; r < plan.rounds; r++) {
        const order = r % 2 === 0 ? (['off', 'on'] as const) : (['on', 'off'] as const)
        for (const side of order) {
          await publishRun(
            g,
            redisPid,
            pair[side],
            size.clients,
            size.messages,
            plan.options,
            sums[side],
          )
        }
      }
      const viaOff: PublishVia = pair.via === 'FCALL' ? 'PUBLISH' : pair.via
      const off = costRun(size.clients, viaOff, false, sums.off)
      const on = costRun(size.clients, pair.via, true, sums.on)
      out.push(off, on)
      log(
        `  history publish ${size.clients} clients, ${viaOff} → ${pair.via}: ` +
          `${off.serverMicrosPerMessage.toFixed(1)} → ${on.serverMicrosPerMessage.toFixed(1)} µs ` +
          `broker+redis CPU/message (${(on.serverMicrosPerMessage / off.serverMicrosPerMessage).toFixed(2)}×), ` +
          `lost ${off.lost}/${on.lost}`,
      )
    }
  } finally {
    await disconnect(g).catch(() => {})
    await stopGroup(g)
  }
  return out
}

/** Fills `channels` channels with `size` ~100-byte messages each and reads Redis's used_memory. */
async function memory(
  plan: HistoryPlan,
  redisUrl: string,
  redis: TestRedisClient,
  log: (line: string) => void,
): Promise<HistoryMemory> {
  const g = await startGroup('wsfacility', redisUrl, { history: plan.options, broker: true })
  const { size, ttl } = plan.options
  const channels = Array.from({ length: plan.memoryChannels }, (_, i) => `broadcast:histmem${i}`)
  const keysOf = (ch: string) => [
    `{${ch}}wsfacility:history:${ch}`,
    `{${ch}}wsfacility:epoch:${ch}`,
  ]
  try {
    // Scripts loaded, one channel's worth of allocator warm-up, then removed again.
    const warm = 'broadcast:histmem-warm'
    const history = { size, ttl }
    await g.publisher.call('publish', {
      targets: [warm],
      count: size,
      rate: 0,
      via: 'broker',
      history,
    })
    await redis.unlink(keysOf(warm))
    await sleep(200)
    const before = await info(redis, 'memory')
    const keys0 = Number(await redis.dbSize())
    const published = channels.length * size
    await g.publisher.call('publish', {
      targets: channels,
      count: published,
      rate: 0,
      via: 'broker',
      history,
    })
    await sleep(200)
    const after = await info(redis, 'memory')
    const keys = Number(await redis.dbSize()) - keys0
    let kept = 0
    for (let i = 0; i < channels.length; i += 500) {
      const lens = await Promise.all(
        channels.slice(i, i + 500).map((ch) => redis.xLen(keysOf(ch)[0]!)),
      )
      kept += lens.reduce((a, b) => a + Number(b), 0)
    }
    const delta = infoField(after, 'used_memory') - infoField(before, 'used_memory')
    for (let i = 0; i < channels.length; i += 500)
      await redis.unlink(channels.slice(i, i + 500).flatMap(keysOf))
    const m: HistoryMemory = {
      channels: channels.length,
      size,
      payloadBytes: PAYLOAD_BYTES,
      published,
      kept,
      keys,
      usedMemoryDelta: delta,
      bytesPerChannel: delta / channels.length,
      bytesPerMessage: delta / Math.max(1, kept),
    }
    log(
      `  history memory: ${channels.length} channels × ${size} messages: ` +
        `${(m.bytesPerChannel / 1024).toFixed(1)} KB per channel, ${m.bytesPerMessage.toFixed(0)} B per message`,
    )
    return m
  } finally {
    await stopGroup(g)
  }
}

/**
 * `clients` json clients on one broadcast channel, dropped at once (the load generator destroys
 * its sockets), `missed` messages published while they are away, then all reconnect:
 * with `history`, each from its own last position (`?recover=`); else to a facility without
 * history, afresh. A fresh broker process per mode.
 */
async function reconnect(
  plan: HistoryPlan,
  mode: ReconnectRun['mode'],
  redisUrl: string,
  redis: TestRedisClient,
  redisPid: number,
  log: (line: string) => void,
): Promise<ReconnectRun> {
  const { clients, missed, concurrency } = plan.reconnect
  const facility = mode === 'history' ? 'hist' : 'plain'
  const path = `/ws/${facility}?subscribe-broadcast`
  const g = await startGroup('wsfacility', redisUrl, {
    history: plan.options,
    broker: true,
    track: true,
  })
  try {
    const ok = await g.loadgen.call<number>('connect', {
      paths: Array.from({ length: clients }, () => path),
    })
    if (ok !== clients) throw new Error(`reconnect: ${ok} of ${clients} connected`)
    // Every client sees a few messages first: its position, and a warmed-up delivery path.
    const pub = { targets: [facility], rate: 0, via: 'publisher' }
    await g.loadgen.call('reset')
    await g.publisher.call('publish', { ...pub, count: 10 })
    await waitFrames(g, 10 * clients, STALL_MS)
    // Dropped at once; the broker sees them all go (and unsubscribes the channel).
    await disconnect(g)
    await sleep(500)
    await g.publisher.call('publish', { ...pub, count: missed })

    const s0 = await g.server.call<BrokerStatsLike>('stats')
    const info0 = await info(redis, 'stats', 'commandstats')
    const c0 = cpuOf(g, redisPid)
    await g.loadgen.call('reset')
    await g.loadgen.call<number>('reconnect', { path, recover: mode === 'history', concurrency })
    let r: RecoveryStats
    let last = -1
    let lastChange = Date.now()
    const start = Date.now()
    for (;;) {
      r = await g.loadgen.call<RecoveryStats>('recovery')
      const done = mode === 'history' ? r.recovered + r.failed : r.ready
      if (done >= clients) break
      if (done !== last) [last, lastChange] = [done, Date.now()]
      else if (Date.now() - lastChange > STALL_MS) break
      if (Date.now() - start > RUN_TIMEOUT_MS) break
      await sleep(20)
    }
    const c1 = cpuOf(g, redisPid)
    const info1 = await info(redis, 'stats', 'commandstats')
    const s1 = await g.server.call<BrokerStatsLike>('stats')
    // And live delivery goes on: one message after the reconnect reaches everyone.
    await g.loadgen.call('reset')
    await g.publisher.call('publish', { ...pub, count: 1 })
    await waitFrames(g, clients, 5000)
    const live = await g.loadgen.call<LoadStats>('stats')

    const calls0 = commandCalls(info0)
    const calls = [...commandCalls(info1)]
      .map(([cmd, n]) => [cmd, n - (calls0.get(cmd) ?? 0)] as const)
      .filter(([cmd, n]) => n > 0 && cmd !== 'info')
      .sort((a, b) => b[1] - a[1])
    const infos = (commandCalls(info1).get('info') ?? 0) - (calls0.get('info') ?? 0)
    const back = mode === 'history' ? r.lastRecoveredAt : r.lastReadyAt
    const per = mode === 'history' ? r.recoveryTime : r.readyTime
    const used = cpuUsed(c0, c1)
    const run: ReconnectRun = {
      mode,
      clients,
      missedPublished: missed,
      ready: r.ready,
      recovered: r.recovered,
      failed: r.failed,
      missedFrames: r.missedFrames,
      allBackMs: back > 0 ? (back - r.startedAt) / 1000 : 0,
      p50Ms: per.p50 / 1000,
      p99Ms: per.p99 / 1000,
      liveAfter: live.frames,
      redisCommands:
        infoField(info1, 'total_commands_processed') -
        infoField(info0, 'total_commands_processed') -
        infos,
      commands: Object.fromEntries(calls),
      historyReads: s1.historyReads - s0.historyReads,
      brokerCpuMs: used.broker / 1000,
      redisCpuMs: used.redis / 1000,
      loadgenCpuMs: used.loadgen / 1000,
      otherCores: used.others,
    }
    log(
      `  reconnect ${clients} (${mode === 'history' ? 'history, recover' : 'no history, fresh'}): ` +
        `all back in ${(run.allBackMs / 1000).toFixed(2)} s, recovered ${run.recovered}/${clients}, ` +
        `${run.redisCommands} Redis commands, ${run.historyReads} history reads, ` +
        `broker CPU ${run.brokerCpuMs.toFixed(0)} ms, redis ${run.redisCpuMs.toFixed(0)} ms`,
    )
    return run
  } finally {
    await disconnect(g).catch(() => {})
    await stopGroup(g)
  }
}

/** Every history run of `plan`, one after the other, on the bench's Redis (`redisPid`). */
export async function benchHistory(
  plan: HistoryPlan,
  redisUrl: string,
  redis: TestRedisClient,
  redisPid: number,
  log: (line: string) => void,
): Promise<HistoryResults> {
  const results: HistoryResults = {
    options: plan.options,
    publish: [],
    memory: null,
    reconnect: [],
  }
  for (const size of plan.publish)
    results.publish.push(...(await publishCost(plan, size, redisUrl, redisPid, log)))
  results.memory = await memory(plan, redisUrl, redis, log)
  for (const mode of ['none', 'history'] as const)
    results.reconnect.push(await reconnect(plan, mode, redisUrl, redis, redisPid, log))
  return results
}
