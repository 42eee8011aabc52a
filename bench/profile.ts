/**
 * `tsx bench/profile.ts channels|fanout [clients] [messages] [rounds]`: one wsfacility delivery
 * scenario of bench/scenarios.ts, measured `rounds` times on one server (CPU µs per delivery
 * each), then once more under V8's CPU profiler, whose top functions by self time it prints. The
 * profile is written to bench/.work/profile-<scenario>.cpuprofile (open it in Chrome DevTools).
 * For comparing a change: run it before and after, back to back, on the same machine state.
 */
import { mkdirSync, readdirSync, readFileSync } from 'node:fs'
import { startRedis } from '../test/helpers/redis.js'
import { connect, disconnect, measure, startGroup, stopGroup } from './scenarios.js'
import { buildPackage } from './package.js'

const [which = 'channels', clientsArg, messagesArg, roundsArg] = process.argv.slice(2)
if (which !== 'channels' && which !== 'fanout') {
  console.error('usage: tsx bench/profile.ts channels|fanout [clients] [messages] [rounds]')
  process.exit(2)
}
const perUser = which === 'channels'
const clients = Number(clientsArg ?? (perUser ? 2000 : 10_000))
const messages = Number(messagesArg ?? (perUser ? 20_000 : 30))
const rounds = Number(roundsArg ?? 3)

/** User and system CPU ticks of each thread of `pid`, by thread name. */
function threads(pid: number): Map<string, [number, number]> {
  const out = new Map<string, [number, number]>()
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'latin1')
    const name = `${stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'))}#${tid}`
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    const [u, s] = out.get(name) ?? [0, 0]
    out.set(name, [u + Number(f[11]), s + Number(f[12])])
  }
  return out
}

/**
 * The write system calls `pid` made so far (its /proc io counter; IPC writes included). A round's
 * count spans measure()'s warm-up too: with one channel per client, 20 messages per client before
 * the measured ones.
 */
function writeCalls(pid: number): number {
  const io = readFileSync(`/proc/${pid}/io`, 'latin1')
  return Number(/^syscw: (\d+)/m.exec(io)?.[1] ?? NaN)
}

// wsfacility as users run it: the compiled package (bench/package.ts).
buildPackage()
const redis = await startRedis()
try {
  const g = await startGroup('wsfacility', redis.url)
  const targets = await connect(g, clients, perUser)
  const name = `${which} ${clients}`
  const per = perUser ? 1 : clients
  for (let i = 0; i < rounds; i++) {
    const t0 = threads(g.server.pid)
    const w0 = writeCalls(g.server.pid)
    const r = await measure(g, name, clients, targets, messages, 0, per)
    const writes = (writeCalls(g.server.pid) - w0) / clients
    console.log(
      `${name}: ${r.cpuMicrosPerDelivery.toFixed(3)} µs CPU/delivery, ` +
        `${Math.round(r.deliveriesPerSec)}/s, lost ${r.lost}, other load ${r.otherCores.toFixed(2)} cores, ` +
        `${writes.toFixed(2)} write calls per client (with measure()'s warm-up messages)`,
    )
    // Per thread, µs per delivery in user and kernel mode (from 10 ms ticks: use long rounds).
    const us = (ticks: number) => ((ticks * 10_000) / Math.max(1, r.delivered)).toFixed(2)
    const ticks = [...threads(g.server.pid)].map(([name, [u, s]]) => {
      const [u0, s0] = t0.get(name) ?? [0, 0]
      return u === u0 && s === s0 ? '' : `${name} user ${us(u - u0)} sys ${us(s - s0)}`
    })
    console.log(`  per thread: ${ticks.filter((t) => t !== '').join(', ')}`)
  }
  const dir = new URL('.work/', import.meta.url)
  mkdirSync(dir, { recursive: true })
  const path = new URL(`profile-${which}.cpuprofile`, dir).pathname
  if (process.env.PERFSTAT) {
    // Instructions per delivery of one more round, user and kernel apart: much steadier than CPU
    // time on a loaded machine, so small changes show in an A/B run.
    const { spawn } = await import('node:child_process')
    const out = new URL('perf-stat.txt', dir).pathname
    const args = ['stat', '-x', ',', '-e', 'instructions:u,instructions:k', '-o', out]
    const ps = spawn('perf', [...args, '-p', String(g.server.pid)], { stdio: 'ignore' })
    await new Promise((r) => setTimeout(r, 300))
    const r = await measure(g, name, clients, targets, messages, 0, per)
    ps.kill('SIGINT')
    await new Promise((res) => ps.once('exit', res))
    const counts = readFileSync(out, 'utf8')
      .split('\n')
      .filter((l) => l.includes('instructions'))
      .map(
        (l) => `${l.split(',')[2]} ${(Number(l.split(',')[0]) / r.delivered).toFixed(0)}/delivery`,
      )
    console.log(
      `${name}: instructions ${counts.join(', ')} (${r.cpuMicrosPerDelivery.toFixed(3)} µs)`,
    )
  }
  if (process.env.STRACE) {
    // Syscall counts of one more round (strace slows the server: only the counts mean anything).
    const { spawn } = await import('node:child_process')
    const out = new URL('strace.txt', dir).pathname
    const st = spawn('strace', ['-c', '-f', '-o', out, '-p', String(g.server.pid)])
    await new Promise((r) => setTimeout(r, 500))
    await measure(g, name, clients, targets, messages, 0, per)
    st.kill('SIGINT')
    await new Promise((r) => st.once('exit', r))
    console.log(readFileSync(out, 'utf8'))
  }
  if (process.env.PERF) {
    // perf's view of one more round, kernel included (run the harness with NODE_OPTIONS=--perf-basic-prof).
    const { spawn } = await import('node:child_process')
    const out = new URL('perf.data', dir).pathname
    const pf = spawn(
      'perf',
      ['record', '-F', '2000', '-g', '-o', out, '-p', String(g.server.pid)],
      { stdio: 'ignore' },
    )
    await new Promise((r) => setTimeout(r, 500))
    await measure(g, name, clients, targets, messages, 0, per)
    pf.kill('SIGINT')
    await new Promise((r) => pf.once('exit', r))
    console.log(`perf data: ${out}`)
  }
  if (process.env.ALLOC) {
    // Bytes allocated per function over one more round, garbage included (what the GC clears).
    await g.server.call('allocStart')
    await measure(g, name, clients, targets, messages, 0, per)
    console.log((await g.server.call<string[]>('allocStop', { top: 40 })).join('\n'))
  }
  await g.server.call('profileStart')
  await measure(g, name, clients, targets, messages, 0, per)
  const top = await g.server.call<string[]>('profileStop', { path, top: 40 })
  console.log(top.join('\n'))
  await disconnect(g)
  await stopGroup(g)
} finally {
  await redis.stop()
}
