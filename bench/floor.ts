/**
 * Floors of the bench's deliveries on this machine, measured on a plain `ws` server
 * (bench/procs/plain-ws.ts) that the load generator counts, on a fresh server process, as the
 * bench's runs are: a warm-up first, then the server's CPU per delivery.
 * - `burst` (the largest fan-out): `messages` bench messages to each of `clients` sockets in one
 *   write per socket, the least any broker can do for a burst that arrives in one read; warm-up 20
 *   messages to each.
 * - `spread` (one channel per client): `messages` bench messages in all, each to the next client
 *   round-robin in a write of its own, what a delivery costs when nothing can be coalesced; warm-up
 *   20 to each client, as `measure` warms the channels run.
 */
import { freePort } from '../test/helpers/redis.js'
import { Child } from './ipc.js'
import type { LoadStats } from './loadgen.js'
import { cpuReading, cpuSince } from './proc.js'
import { waitFrames } from './scenarios.js'

/** Figures of one floor burst. */
export interface FloorResult {
  /** Absent in result files written before the `spread` floor existed: `burst`. */
  mode?: FloorMode
  clients: number
  messages: number
  delivered: number
  cpuMicrosPerDelivery: number
}

/** How the plain server writes (see above). */
export type FloorMode = 'burst' | 'spread'

const STALL_MS = 10_000

export async function benchFloor(
  clients: number,
  messages: number,
  mode: FloorMode = 'burst',
): Promise<FloorResult> {
  const port = await freePort()
  const env = { BENCH_PORT: String(port) }
  const file = (name: string) => new URL(`procs/${name}.ts`, import.meta.url).pathname
  const [server, loadgen] = await Promise.all([
    Child.start(file('plain-ws'), ['--expose-gc'], env),
    Child.start(file('loadgen'), [], env),
  ])
  try {
    await loadgen.call('init', { port, protocol: 'ws', sampleEvery: 20 })
    const paths = Array.from({ length: clients }, () => '/')
    const ok = await loadgen.call<number>('connect', { paths })
    if (ok !== clients) throw new Error(`floor: only ${ok} of ${clients} clients connected`)
    // A burst's messages go to every client, spread ones to one client each.
    const per = mode === 'burst' ? clients : 1
    const warm = mode === 'burst' ? 20 : 20 * clients
    await loadgen.call('reset')
    await server.call(mode, { count: warm })
    await waitFrames({ loadgen }, warm * per, STALL_MS)
    await loadgen.call('reset')
    const cpu0 = cpuReading(server.pid)
    await server.call(mode, { count: messages })
    await waitFrames({ loadgen }, messages * per, STALL_MS)
    const used = cpuSince(cpu0, cpuReading(server.pid))
    const delivered = (await loadgen.call<LoadStats>('stats')).frames
    const cpuMicrosPerDelivery = used / Math.max(1, delivered)
    return { mode, clients, messages, delivered, cpuMicrosPerDelivery }
  } finally {
    await Promise.all([loadgen.stop(), server.stop()])
  }
}
