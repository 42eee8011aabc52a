/** The speed targets of issues 6 and 15 as the bench reports them, each with its figure. */
import type { FloorResult } from './floor.js'
import { fmt, mark } from './format.js'
import type { RunResult, ServerFacts } from './scenarios.js'

/** The run of `server` whose scenario is `prefix` or starts with it and a space. */
const findRun = (runs: RunResult[], server: string, prefix: string) =>
  runs.find(
    (r) => r.server === server && (r.scenario === prefix || r.scenario.startsWith(`${prefix} `)),
  )

/** The targets of issue 6, each with the measured figure and whether it is met. */
export function targets(runs: RunResult[], facts: ServerFacts[]): string[] {
  const find = (server: string, prefix: string) => findRun(runs, server, prefix)
  const out: string[] = []
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

/** The plain ws floors of the delivery runs (bench/floor.ts), each null when not measured. */
export interface Floors {
  /** The largest fan-out's burst, one write per socket. */
  burst: FloorResult | null
  /** One channel per client, each message in a write of its own. */
  channels: FloorResult | null
  /** The wide fan-out's burst (Plan.wide), one write per socket. */
  wide: FloorResult | null
}

/**
 * The delivery targets of issue 15: one channel per client, the largest fan-out, and the wide
 * fan-out when run (each beside its floor on this machine, when measured), idle memory.
 */
export function deliveryTargets(runs: RunResult[], facts: ServerFacts[], floors: Floors): string[] {
  const { burst: floor, channels: channelsFloor, wide: wideFloor } = floors
  const out: string[] = []
  const ours = runs.filter((r) => r.server === 'wsfacility' && r.scenario.startsWith('channels '))
  const cw = ours.find((r) => !r.scenario.includes('writeDelay'))
  const cd = ours.find((r) => r.scenario.includes('writeDelay'))
  const cs = cw && findRun(runs, 'socketio', cw.scenario)
  if (cw) {
    const us = cw.cpuMicrosPerDelivery
    const ratio = cs ? us / cs.cpuMicrosPerDelivery : NaN
    const vs = cs ? `, ${fmt(ratio, 2)}× Socket.IO's (≤ 0.3)` : ''
    const ok = us <= 8 && (!cs || ratio <= 0.3)
    const beside =
      channelsFloor && channelsFloor.clients === cw.clients
        ? `; a plain ws server writing each message in a write of its own: ${fmt(channelsFloor.cpuMicrosPerDelivery, 2)} µs (${fmt(us / channelsFloor.cpuMicrosPerDelivery, 2)}× that floor)`
        : ''
    out.push(`${cw.scenario}: ${fmt(us, 2)} µs CPU/delivery (≤ 8)${vs}: ${mark(ok)}${beside}`)
  }
  if (cd) {
    // The option's trade: CPU against latency, beside the default run of the same size.
    const us = cd.cpuMicrosPerDelivery
    const ratio = cs && cs.clients === cd.clients ? us / cs.cpuMicrosPerDelivery : NaN
    const vs = Number.isNaN(ratio) ? '' : `, ${fmt(ratio, 2)}× Socket.IO's ${cs!.scenario} (≤ 0.3)`
    const ok = us <= 8 && (Number.isNaN(ratio) || ratio <= 0.3)
    const p99 =
      cw && cw.clients === cd.clients
        ? `; p99 ${fmt(cd.p99ms, 1)} ms (without the delay ${fmt(cw.p99ms, 1)} ms${cs ? `, Socket.IO ${fmt(cs.p99ms, 1)} ms` : ''})`
        : `; p99 ${fmt(cd.p99ms, 1)} ms`
    out.push(`${cd.scenario}: ${fmt(us, 2)} µs CPU/delivery (≤ 8)${vs}: ${mark(ok)}${p99}`)
  }
  // The plan's fan-outs are named by their clients alone; the wide one adds its messages.
  const fanouts = runs.filter(
    (r) => r.server === 'wsfacility' && r.scenario === `fan-out ${r.clients}`,
  )
  const largest = fanouts.reduce<RunResult | null>(
    (a, r) => (!a || r.clients > a.clients ? r : a),
    null,
  )
  const fanoutLine = (run: RunResult, burst: FloorResult | null) => {
    const us = run.cpuMicrosPerDelivery
    const beside =
      burst && burst.clients === run.clients
        ? `; a plain ws server writing the same burst in one write per socket: ${fmt(burst.cpuMicrosPerDelivery, 2)} µs (${fmt(us / burst.cpuMicrosPerDelivery, 2)}× that floor)`
        : ''
    return `${run.scenario}: ${fmt(us, 2)} µs CPU/delivery (≤ 0.2): ${mark(us <= 0.2)}${beside}`
  }
  if (largest) out.push(fanoutLine(largest, floor))
  const wide = runs.find(
    (r) =>
      r.server === 'wsfacility' && r.scenario.includes(' × ') && r.scenario.startsWith('fan-out '),
  )
  if (wide) out.push(fanoutLine(wide, wideFloor))
  const w = facts.find((f) => f.server === 'wsfacility')
  if (w) {
    out.push(
      `idle memory at ${fmt(w.idleClients)}: ${fmt(w.rssPerConnKB, 1)} KB per connection (≤ 6): ${mark(w.rssPerConnKB <= 6)}`,
    )
  }
  return out
}
