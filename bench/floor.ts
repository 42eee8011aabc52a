/**
 * The floor of a broadcast fan-out on this machine: a plain `ws` server (bench/procs/plain-ws.ts)
 * writes a burst of `messages` bench messages to each of `clients` sockets in one write per
 * socket, the least any broker can do for a burst that arrives in one read, and the load
 * generator counts them. Measured as the bench's fan-out runs are: warm-up first (20 messages),
 * then the server's CPU per delivery over the burst, on a fresh server process.
 */
import { freePort } from '../test/helpers/redis.js'
import { Child } from './ipc.js'
import type { LoadStats } from './loadgen.js'
import { cpuReading, cpuSince } from './proc.js'
import { waitFrames } from './scenarios.js'

/** Figures of one floor burst. */
export interface FloorResult {
  clients: number
  messages: number
  delivered: number
  cpuMicrosPerDelivery: number
}

const STALL_MS = 10_000

export async function benchFloor(clients: number, messages: number): Promise<FloorResult> {
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
    await loadgen.call('reset')
    await server.call('burst', { count: 20 })
    await waitFrames({ loadgen }, 20 * clients, STALL_MS)
    await loadgen.call('reset')
    const cpu0 = cpuReading(server.pid)
    await server.call('burst', { count: messages })
    await waitFrames({ loadgen }, messages * clients, STALL_MS)
    const used = cpuSince(cpu0, cpuReading(server.pid))
    const delivered = (await loadgen.call<LoadStats>('stats')).frames
    return { clients, messages, delivered, cpuMicrosPerDelivery: used / Math.max(1, delivered) }
  } finally {
    await Promise.all([loadgen.stop(), server.stop()])
  }
}
