/**
 * Bounded soak of the standalone server (not part of the test suite):
 *
 *   npm run soak -- --minutes 5 --clients 2000 [--workers 2] [--rate 20] [--out FILE]
 *
 * Starts its own redis-server on a free port and a wsfacility server process, both on
 * 127.0.0.1, then client processes (bench/soak-worker.ts): a fifth of the clients stay connected
 * for the whole run on broadcast:seq, the rest connect with assorted flags, publish and disconnect
 * in waves. A publisher sends numbered messages on broadcast:seq, so messages lost by the stable
 * clients are counted. The server's RSS is sampled every 5 s; memory should be flat after the
 * warm-up (the first fifth of the run). Everything stops by itself, at the latest a minute after
 * the planned end.
 */
import { type ChildProcess, fork, spawn } from 'node:child_process'
import { once } from 'node:events'
import { writeFileSync } from 'node:fs'
import net from 'node:net'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { createClient } from 'redis'
import type { WorkerReport, WorkerStart } from './soak-worker.js'

const { values } = parseArgs({
  options: {
    minutes: { type: 'string', default: '3' },
    clients: { type: 'string', default: '2000' },
    workers: { type: 'string', default: '2' },
    rate: { type: 'string', default: '20' },
    out: { type: 'string' },
  },
})
const minutes = Number(values.minutes)
const clients = Number(values.clients)
const workers = Number(values.workers)
const rate = Number(values.rate)
if (!(minutes > 0 && minutes <= 60) || !(clients > 0 && clients <= 10_000) || !(workers >= 1)) {
  throw new TypeError('--minutes 0-60, --clients 1-10000, --workers >= 1')
}
const ROOT = fileURLToPath(new URL('../', import.meta.url))
const SECRET = 'soak-secret-soak-secret-soak-secret'
const SAMPLE_MS = 5000
const children: ChildProcess[] = []

function stopAll(): void {
  for (const child of children) if (child.exitCode === null) child.kill('SIGKILL')
}
// A hard deadline: whatever happens, nothing outlives the soak by more than a minute.
const deadline = setTimeout(
  () => {
    console.error('soak: hard deadline reached, stopping everything')
    stopAll()
    process.exit(1)
  },
  (minutes * 60 + 60) * 1000,
)
deadline.unref()
process.on('SIGINT', () => {
  stopAll()
  process.exit(130)
})

async function freePort(): Promise<number> {
  const srv = net.createServer().listen(0, '127.0.0.1')
  await once(srv, 'listening')
  const { port } = srv.address() as net.AddressInfo
  srv.close()
  return port
}

async function startRedis(): Promise<number> {
  const port = await freePort()
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no']
  children.push(spawn('redis-server', args, { stdio: 'ignore' }))
  for (let i = 0; i < 100; i++) {
    const c = createClient({ url: `redis://127.0.0.1:${port}` })
    c.on('error', () => {})
    try {
      await c.connect()
      await c.ping()
      c.destroy()
      return port
    } catch {
      c.destroy()
      await new Promise((r) => setTimeout(r, 100))
    }
  }
  throw new Error('redis-server did not start')
}

async function startServer(redisPort: number): Promise<{ pid: number; url: string }> {
  const args = [
    ...['bin/wsfacility.js', '--port', '0', '--host', '127.0.0.1'],
    ...['--redis', `redis://127.0.0.1:${redisPort}`, '--jwt-secret', SECRET],
    ...['--client-publish', 'broadcast,user,session', '--metrics'],
  ]
  const child = spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] })
  children.push(child)
  let out = ''
  for await (const chunk of child.stdout!) {
    out += String(chunk)
    const m = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(out)
    if (m) return { pid: child.pid!, url: `ws://127.0.0.1:${m[1]}` }
  }
  throw new Error(`server exited: ${out}`)
}

/** Heap used (MiB) and open connections, from the server's own /metrics. */
async function scrape(url: string): Promise<{ heap: number; connections: number }> {
  let text: string
  try {
    const res = await fetch(`${url.replace('ws:', 'http:')}/metrics`, {
      signal: AbortSignal.timeout(10_000),
    })
    text = await res.text()
  } catch {
    // A server too busy to answer in time: the sample keeps its RSS, heap and count are NaN.
    return { heap: NaN, connections: NaN }
  }
  let heap = 0
  let connections = 0
  for (const line of text.split('\n')) {
    const value = Number(line.slice(line.lastIndexOf(' ') + 1))
    if (line.startsWith('nodejs_heap_size_used_bytes ')) heap = value / 1024 / 1024
    if (line.startsWith('wsfacility_connections{')) connections += value
  }
  return { heap, connections }
}

async function rssMiB(pid: number): Promise<number> {
  const ps = spawn('ps', ['-o', 'rss=', '-p', String(pid)])
  let out = ''
  ps.stdout.on('data', (d: Buffer) => (out += d.toString()))
  await once(ps, 'close')
  return Number(out.trim()) / 1024
}

/** Least-squares slope of y over x. */
function slope(points: [number, number][]): number {
  const n = points.length
  const mx = points.reduce((s, [x]) => s + x, 0) / n
  const my = points.reduce((s, [, y]) => s + y, 0) / n
  const num = points.reduce((s, [x, y]) => s + (x - mx) * (y - my), 0)
  const den = points.reduce((s, [x]) => s + (x - mx) ** 2, 0)
  return den === 0 ? 0 : num / den
}

/** The lowest heap sample of each minute: what survives collections, the leak signal. */
function lowestPerMinute(samples: { t: number; heap: number }[]): string {
  const lows: number[] = []
  for (const s of samples) {
    if (Number.isNaN(s.heap)) continue
    const m = Math.floor(s.t / 60)
    lows[m] = Math.min(lows[m] ?? Infinity, s.heap)
  }
  return lows.map((v, m) => `${m}: ${v.toFixed(1)}`).join(', ')
}

function errorKinds(reports: WorkerReport[]): string {
  const all: Record<string, number> = {}
  for (const r of reports)
    for (const [k, n] of Object.entries(r.errorKinds)) all[k] = (all[k] ?? 0) + n
  const list = Object.entries(all).map(([k, n]) => `${k}: ${n}`)
  return list.length > 0 ? list.join('; ') : 'none'
}

async function main(): Promise<void> {
  const redisPort = await startRedis()
  const server = await startServer(redisPort)
  const stablePerWorker = Math.round(clients / 5 / workers)
  const churnPerWorker = Math.round(clients / workers) - stablePerWorker
  const reports: WorkerReport[] = []
  const procs = Array.from({ length: workers }, (_, worker) => {
    const child = fork(fileURLToPath(new URL('soak-worker.ts', import.meta.url)), [], {
      execArgv: ['--import', 'tsx'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    })
    children.push(child)
    const start: WorkerStart = {
      url: server.url,
      secret: SECRET,
      worker,
      stable: stablePerWorker,
      churn: churnPerWorker,
    }
    const ready = new Promise<void>((resolve, reject) => {
      child.on('message', (msg: { type: string; report?: WorkerReport }) => {
        if (msg.type === 'ready') resolve()
        else if (msg.type === 'report' && msg.report) reports.push(msg.report)
        else if (msg.type === 'failed') reject(new Error(JSON.stringify(msg)))
      })
    })
    child.send({ type: 'start', start })
    return { child, ready }
  })
  await Promise.all(procs.map((p) => p.ready))

  const publisher = createClient({ url: `redis://127.0.0.1:${redisPort}` })
  publisher.on('error', () => {})
  await publisher.connect()
  let seq = 0
  const pubTimer = setInterval(() => {
    void publisher.publish('broadcast:seq', String(seq++)).catch(() => {})
  }, 1000 / rate)

  const started = Date.now()
  const samples: { t: number; rss: number; heap: number; connections: number }[] = []
  const sample = async (): Promise<void> => {
    const t = (Date.now() - started) / 1000
    samples.push({ t, rss: await rssMiB(server.pid), ...(await scrape(server.url)) })
    const s = samples.at(-1)!
    console.log(
      `t=${s.t.toFixed(0)}s rss=${s.rss.toFixed(1)} MiB heap=${s.heap.toFixed(1)} MiB ` +
        `connections=${s.connections} published=${seq}`,
    )
  }
  await sample()
  while (Date.now() - started < minutes * 60_000) {
    await new Promise((r) => setTimeout(r, SAMPLE_MS))
    await sample()
  }
  clearInterval(pubTimer)
  const published = seq
  // Let the last messages arrive before the workers count them.
  await new Promise((r) => setTimeout(r, 1000))
  for (const p of procs) p.child.send({ type: 'stop' })
  await Promise.all(procs.map((p) => once(p.child, 'exit')))
  await publisher.quit()
  stopAll()

  const warm = samples.filter((s) => s.t >= (minutes * 60) / 5)
  const perMin = slope(warm.map((s) => [s.t / 60, s.rss]))
  const heapPerMin = slope(warm.filter((s) => !Number.isNaN(s.heap)).map((s) => [s.t / 60, s.heap]))
  const received = reports.flatMap((r) => r.received)
  const lost = received.reduce((n, r) => n + (published - r.count), 0)
  const sum = (k: keyof WorkerReport): number => reports.reduce((n, r) => n + Number(r[k]), 0)
  const lines = [
    `# Soak ${new Date(started).toISOString().slice(0, 10)}`,
    '',
    `${minutes} min, ${clients} clients (${received.length} stable on broadcast:seq, ` +
      `${churnPerWorker * workers} churning) in ${workers} worker processes, ` +
      `publisher ${rate} msg/s; one wsfacility server process, one redis-server, 127.0.0.1.`,
    '',
    '| | |',
    '| --- | --- |',
    `| sequence messages published | ${published} |`,
    `| stable clients still open at the end | ${sum('stableOpen')} of ${received.length} |`,
    `| messages lost by stable clients (total) | ${lost} |`,
    `| duplicates / out of order | ${received.reduce((n, r) => n + r.duplicates, 0)} / ${received.reduce((n, r) => n + r.outOfOrder, 0)} |`,
    `| churn: connects / disconnects (until the stop) | ${sum('connects')} / ${sum('disconnects')} |`,
    `| refused upgrades / client errors | ${sum('refused')} / ${sum('errors')} |`,
    `| client publishes / churn messages received | ${sum('published')} / ${sum('messages')} |`,
    `| client errors by kind | ${errorKinds(reports)} |`,
    `| RSS first / last after warm-up (MiB) | ${warm[0]?.rss.toFixed(1)} / ${warm.at(-1)?.rss.toFixed(1)} |`,
    `| RSS min / max after warm-up (MiB) | ${Math.min(...warm.map((s) => s.rss)).toFixed(1)} / ${Math.max(...warm.map((s) => s.rss)).toFixed(1)} |`,
    `| RSS slope after warm-up | ${perMin.toFixed(2)} MiB/min |`,
    `| heap used first / last after warm-up (MiB) | ${warm[0]?.heap.toFixed(1)} / ${warm.at(-1)?.heap.toFixed(1)} |`,
    `| heap used slope after warm-up | ${heapPerMin.toFixed(2)} MiB/min |`,
    `| heap used, lowest sample of each minute (MiB) | ${lowestPerMinute(samples)} |`,
    '',
    'RSS over time (sampled every 5 s, later when the machine is busy):',
    '',
    '| t (s) | RSS (MiB) | heap used (MiB) | server connections |',
    '| ---: | ---: | ---: | ---: |',
    ...samples.map(
      (s) =>
        `| ${s.t.toFixed(0)} | ${s.rss.toFixed(1)} | ${s.heap.toFixed(1)} | ${s.connections} |`,
    ),
    '',
  ]
  const report = lines.join('\n')
  console.log(`\n${report}`)
  if (values.out) writeFileSync(values.out, report)
  clearTimeout(deadline)
}

main().catch((err: unknown) => {
  console.error(err)
  stopAll()
  process.exit(1)
})
