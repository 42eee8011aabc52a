/**
 * Child process: publishes ~100-byte messages carrying their send time to Redis, as a plain
 * PUBLISH on ws4redis channels (wsfacility) or through @socket.io/redis-emitter to rooms.
 */
import { Emitter } from '@socket.io/redis-emitter'
import { createClient } from 'redis'
import { serve } from '../ipc.js'
import { nowMicros } from '../loadgen.js'

/** Bytes of each message (the timestamp, a sequence number, padding). */
export const MESSAGE_BYTES = 100
const BATCH = 200

const client = createClient({ url: process.env.BENCH_REDIS_URL!, name: 'bench-publisher' })
client.on('error', () => {})
await client.connect()
let emitter: Emitter | null = null

function message(seq: number): string {
  const head = `@${String(nowMicros()).padStart(16, '0')}|${seq}|`
  return head.padEnd(MESSAGE_BYTES, 'x')
}

function publishOne(target: string, seq: number): void {
  if (emitter) emitter.to(target).emit('m', message(seq))
  else client.publish(target, message(seq)).catch(() => {})
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

serve({
  init: (a) => {
    emitter = a.kind === 'sio' ? new Emitter(client) : null
  },
  /**
   * Publishes `count` messages round-robin over `targets` (channels or rooms): as fast as Redis
   * takes them when `rate` is 0, else `rate` per second. Resolves with the start time (µs).
   */
  publish: async (a) => {
    const targets = a.targets as string[]
    const count = a.count as number
    const rate = a.rate as number
    const t0 = nowMicros()
    if (rate === 0) {
      for (let i = 0; i < count; i += BATCH) {
        for (let j = i; j < Math.min(count, i + BATCH); j++)
          publishOne(targets[j % targets.length]!, j)
        // Wait for Redis to take the batch: bounded memory here, a steady stream there.
        await client.ping()
      }
    } else {
      const start = Date.now()
      for (let i = 0; i < count; i++) {
        const due = start + (i * 1000) / rate
        const wait = due - Date.now()
        if (wait > 0) await sleep(wait)
        publishOne(targets[i % targets.length]!, i)
      }
      await client.ping()
    }
    return { t0, t1: nowMicros() }
  },
})
