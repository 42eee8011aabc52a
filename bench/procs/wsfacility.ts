/** Child process: a standalone wsfacility broker on the Redis engine, as the bench measures it. */
import http from 'node:http'
import { profiler } from './profiler.js'
import { loadPackage } from '../package.js'
import { serve } from '../ipc.js'
import { collect, listenLocal } from './server-common.js'

const { createBroker } = await loadPackage()
const env = process.env
const broker = createBroker({
  redis: { url: env.BENCH_REDIS_URL!, name: 'bench-wsfacility' },
  jwt: { secret: env.BENCH_JWT_SECRET! },
  presence: env.BENCH_PRESENCE === '1',
  // The channels run with a write delay (bench/scenarios.ts), or any run under
  // `BENCH_WRITE_DELAY=<ms> npx tsx bench/profile.ts ...`; 0 otherwise.
  writeDelay: Number(env.BENCH_WRITE_DELAY ?? 0),
})
// The history runs (bench/history.ts): two json facilities alike but for history. The other runs
// use the undefined facility `bench` (raw, no history) and never set this.
if (env.BENCH_HISTORY) {
  broker.facility('plain', { format: 'json' })
  broker.facility('hist', { format: 'json', history: JSON.parse(env.BENCH_HISTORY) })
}
broker.on('error', () => {})
const server = http.createServer((_req, res) => res.writeHead(404).end())
broker.attach(server)
await broker.ready()
await listenLocal(server, Number(env.BENCH_PORT))

serve({
  count: () => broker.connections.size,
  gc: () => collect(),
  stats: () => broker.stats,
  ...profiler(),
})
