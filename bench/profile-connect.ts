/**
 * `tsx bench/profile-connect.ts [variant] [rounds]`: the connection storm of bench/connect.ts for
 * one variant (`wsfacility`, `wsfacility JWT`, `wsfacility JWT + presence`, `socket.io`, `ws`),
 * `rounds` times with a fresh server process each. Prints per round the accepted connections per
 * second and the CPU per accepted connection of the server, the load generator and redis-server
 * (they share the machine), the Redis commands the storm sent, and the reads Redis processed
 * (about one per write of the server's: commands written together share one). With
 * `PROFILE=cpu` the storm runs under V8's sampling profiler (top functions by self time; the
 * profile goes to bench/.work/profile-connect.cpuprofile), with `PROFILE=alloc` under its
 * allocation sampling.
 * A profiled storm runs slower: compare its shares, and time the unprofiled rounds.
 */
import { mkdirSync } from 'node:fs'
import { startRedis } from '../test/helpers/redis.js'
import { type StormProbe, storm, VARIANTS } from './connect.js'
import { buildPackage } from './package.js'
import { cpuReading, cpuSince } from './proc.js'

const [which = 'wsfacility', roundsArg] = process.argv.slice(2)
const variant = VARIANTS.find((v) => v.name === which)
if (!variant) {
  console.error(`variants: ${VARIANTS.map((v) => v.name).join(', ')}`)
  process.exit(2)
}
const mode = process.env.PROFILE
const dir = new URL('.work/', import.meta.url)
mkdirSync(dir, { recursive: true })

buildPackage()
const redis = await startRedis()
try {
  const control = await redis.client()
  for (let round = 0; round < Number(roundsArg ?? 3); round++) {
    let others: ReturnType<typeof cpuReading>[] = []
    const pids = (loadgen: { pid: number }) => [loadgen.pid, redis.process.pid!]
    const probe: StormProbe = {
      start: async (server, loadgen) => {
        await control.sendCommand(['CONFIG', 'RESETSTAT'])
        if (mode === 'cpu') await server.call('profileStart')
        if (mode === 'alloc') await server.call('allocStart')
        others = pids(loadgen).map(cpuReading)
      },
      stop: async (server, loadgen, accepted) => {
        const [lg, rd] = pids(loadgen).map((pid, i) => cpuSince(others[i]!, cpuReading(pid)))
        const per = (micros: number) => (micros / Math.max(1, accepted)).toFixed(0)
        console.log(`  load generator ${per(lg!)} µs/connection, redis-server ${per(rd!)}`)
        const reads = String(await control.sendCommand(['INFO', 'stats'])).match(
          /total_reads_processed:(\d+)/,
        )?.[1]
        console.log(`  redis reads processed: ${reads}`)
        const stats = String(await control.sendCommand(['INFO', 'commandstats']))
        const calls = [...stats.matchAll(/cmdstat_([^:]+):calls=(\d+)/g)]
          .filter(([, name]) => !name!.startsWith('config'))
          .map(([, name, n]) => `${name} ${n}`)
        console.log(`  redis commands: ${calls.join(', ') || 'none'}`)
        if (mode === 'cpu') {
          const path = new URL('profile-connect.cpuprofile', dir).pathname
          console.log((await server.call<string[]>('profileStop', { path, top: 40 })).join('\n'))
        }
        if (mode === 'alloc') {
          console.log((await server.call<string[]>('allocStop', { top: 40 })).join('\n'))
        }
      },
    }
    const r = await storm(
      variant,
      { clients: 10_000, concurrency: 1000, warm: 1000 },
      redis.url,
      probe,
    )
    console.log(
      `${r.server}: ${Math.round(r.acceptedPerSec)} accepted/s, ` +
        `${r.cpuMicrosPerConn.toFixed(0)} µs server CPU/connection (${r.accepted}/${r.clients})`,
    )
  }
  await control.quit()
} finally {
  await redis.stop()
}
