/**
 * `npm run bench`: wsfacility against Socket.IO 4.8 + @socket.io/redis-adapter on the same
 * workload, one after the other, on this machine and its own redis-server, then wsfacility's
 * channel-history runs (bench/history.ts). `--quick` runs a small plan; `--only
 * wsfacility|socketio` measures one server (no ratios; history runs with wsfacility);
 * `--only history` the history runs alone; `--only connect` the connection storms alone
 * (bench/connect.ts: wsfacility, Socket.IO and a plain ws server); `--only joins` the live joins
 * (bench/joins.ts, also `npm run bench:joins`). With wsfacility, the largest fan-out is also
 * measured on a plain ws server writing each burst in one write per socket, and one channel per
 * client on one writing each message in a write of its own (bench/floor.ts); wsfacility alone also
 * runs the wide fan-out (Plan.wide: the largest fan-out's clients with a smaller one's burst),
 * beside its own floor.
 */
import { execFileSync } from 'node:child_process'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import { startRedis } from '../test/helpers/redis.js'
import { benchConnect, type ConnectPlan } from './connect.js'
import { benchFloor } from './floor.js'
import { benchHistory, type HistoryPlan } from './history.js'
import { benchJoins } from './joins.js'
import { cpuModel } from './proc.js'
import { type BenchResults, markdown } from './report.js'
import { benchServer, type Plan, type ServerKind } from './scenarios.js'
import { buildPackage } from './package.js'

/** The history runs: facility `hist` keeps 100 messages for 300 s. */
const FULL_HISTORY: HistoryPlan = {
  options: { size: 100, ttl: 300 },
  publish: [
    { clients: 200, messages: 10_000 },
    { clients: 2000, messages: 2000 },
  ],
  rounds: 4,
  memoryChannels: 1000,
  reconnect: { clients: 10_000, missed: 100, concurrency: 500 },
}

const QUICK_HISTORY: HistoryPlan = {
  options: { size: 100, ttl: 300 },
  publish: [{ clients: 200, messages: 10_000 }],
  rounds: 2,
  memoryChannels: 200,
  reconnect: { clients: 1000, missed: 100, concurrency: 200 },
}

/** Connection storms: 10,000 clients connecting 1,000 at a time, three rounds of each variant. */
const FULL_CONNECT: ConnectPlan = { clients: 10_000, concurrency: 1000, warm: 1000, rounds: 3 }
const QUICK_CONNECT: ConnectPlan = { clients: 1000, concurrency: 200, warm: 200, rounds: 1 }

const FULL: Plan = {
  idle: 10_000,
  fanout: [
    { clients: 200, messages: 1500 },
    { clients: 2000, messages: 300 },
    { clients: 10_000, messages: 30 },
  ],
  fixed: { clients: 2000, rate: 20, seconds: 10 },
  users: { clients: 2000, messages: 20_000 },
  wide: { clients: 10_000, messages: 300 },
}

const QUICK: Plan = {
  idle: 1000,
  fanout: [
    { clients: 200, messages: 500 },
    { clients: 1000, messages: 200 },
  ],
  fixed: { clients: 1000, rate: 20, seconds: 3 },
  users: { clients: 1000, messages: 5000 },
}

function commit(): string {
  try {
    return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { stdio: 'pipe' })
      .toString()
      .trim()
  } catch {
    return 'local'
  }
}

const args = process.argv.slice(2)
const quick = args.includes('--quick')
const onlyAt = args.indexOf('--only')
const only =
  onlyAt === -1 ? null : (args[onlyAt + 1] as ServerKind | 'history' | 'connect' | 'joins')
const kinds: ServerKind[] =
  only === 'history' || only === 'connect' || only === 'joins'
    ? []
    : only
      ? [only]
      : ['wsfacility', 'socketio']
const withHistory = only === null || only === 'wsfacility' || only === 'history'
const withConnect = only === null || only === 'connect'
const withJoins = only === null || only === 'joins'
const connectPlan = quick ? QUICK_CONNECT : FULL_CONNECT
const plan = quick ? QUICK : FULL
const historyPlan = quick ? QUICK_HISTORY : FULL_HISTORY
const log = (line: string) => console.log(line)

// The load generator and the server each hold one socket per client.
const limit = /Max open files\s+(\d+)/.exec(readFileSync('/proc/self/limits', 'latin1'))
const most = Math.max(
  plan.idle,
  withHistory ? historyPlan.reconnect.clients : 0,
  withConnect ? connectPlan.clients + connectPlan.warm : 0,
)
if (limit && Number(limit[1]) < most + 1000) {
  console.error(
    `open-file limit ${limit[1]} is too low for ${most} clients: raise it ` +
      `(ulimit -n ${most * 2}) or run npm run bench -- --quick`,
  )
  process.exit(1)
}
const began = Date.now()
const loadBefore = readFileSync('/proc/loadavg', 'latin1').split(' ').slice(0, 3).join(' ')

// wsfacility as users run it: the compiled package (bench/package.ts).
buildPackage()
const redis = await startRedis()
// Ctrl-C or a kill still stops the redis-server this run started (children follow their parent).
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    redis.process.kill('SIGTERM')
    process.exit(130)
  })
}
const control = await redis.client()
const results: BenchResults = {
  date: new Date().toISOString(),
  commit: commit(),
  node: process.version,
  cpu: cpuModel(),
  cores: os.cpus().length,
  quick,
  loadBefore,
  loadAfter: '',
  seconds: 0,
  runs: [],
  facts: [],
  history: null,
  connect: null,
  joins: null,
  floor: null,
  channelsFloor: null,
  wideFloor: null,
}
try {
  for (const kind of kinds) {
    log(`${kind}:`)
    const { runs, facts } = await benchServer(kind, plan, redis.url, control, log)
    results.runs.push(...runs)
    results.facts.push(facts)
  }
  if (kinds.includes('wsfacility')) {
    const largest = plan.fanout.reduce((a, f) => (f.clients > a.clients ? f : a))
    log(`fan-out floor (plain ws, one write per socket):`)
    results.floor = await benchFloor(largest.clients, largest.messages)
    log(`  ${results.floor.cpuMicrosPerDelivery.toFixed(2)} µs CPU/delivery`)
    if (plan.wide) {
      log(
        `fan-out ${plan.wide.clients} × ${plan.wide.messages} floor (plain ws, one write per socket):`,
      )
      results.wideFloor = await benchFloor(plan.wide.clients, plan.wide.messages)
      log(`  ${results.wideFloor.cpuMicrosPerDelivery.toFixed(2)} µs CPU/delivery`)
    }
    const { clients, messages } = plan.users
    log(`channels floor (plain ws, one write per message):`)
    results.channelsFloor = await benchFloor(clients, messages, 'spread')
    log(`  ${results.channelsFloor.cpuMicrosPerDelivery.toFixed(2)} µs CPU/delivery`)
  }
  if (withConnect) {
    log('connection storms:')
    results.connect = { plan: connectPlan, runs: await benchConnect(connectPlan, redis.url, log) }
  }
  if (withJoins) {
    log('live joins:')
    results.joins = await benchJoins(redis.url, quick)
  }
  if (withHistory) {
    log('wsfacility history:')
    const pid = redis.process.pid!
    results.history = await benchHistory(historyPlan, redis.url, control, pid, log)
  }
} finally {
  await control.close().catch(() => {})
  await redis.stop()
}
results.loadAfter = readFileSync('/proc/loadavg', 'latin1').split(' ').slice(0, 3).join(' ')
results.seconds = (Date.now() - began) / 1000

const md = markdown(results)
console.log(`\n${md}`)
const dir = new URL('results/', import.meta.url)
mkdirSync(dir, { recursive: true })
// A partial run (--quick, --only) never overwrites the full run of the same commit and day.
const name = `${results.date.slice(0, 10)}-${results.commit}${quick ? '-quick' : ''}${only ? `-${only}` : ''}`
writeFileSync(new URL(`${name}.md`, dir), md)
writeFileSync(new URL(`${name}.json`, dir), `${JSON.stringify(results, null, 2)}\n`)
console.log(`results: bench/results/${name}.md and .json`)
