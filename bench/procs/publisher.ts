/**
 * Child process: publishes ~100-byte messages (benchMessage) carrying their send time to Redis: as a plain
 * PUBLISH on ws4redis channels (wsfacility) or through @socket.io/redis-emitter to rooms; for the
 * history runs also through a broker of its own (RedisPublisher or broker.publish, the server-side
 * path, history or not as the facility says) or as `FCALL wsfacility_publish` (any other client).
 */
import { Emitter } from '@socket.io/redis-emitter'
import { createClient } from 'redis'
import type { Broker, RedisPublisher } from '../../src/index.js'
import { loadPackage } from '../package.js'
import { serve } from '../ipc.js'
import { benchMessage as message, nowMicros } from '../loadgen.js'

const BATCH = 200

/** How a publish goes out: see the file comment. */
type Via = 'publish' | 'publisher' | 'broker' | 'fcall'

const { createBroker, RedisPublisher: Publisher } = await loadPackage()
const env = process.env
const client = createClient({ url: env.BENCH_REDIS_URL!, name: 'bench-publisher' })
client.on('error', () => {})
await client.connect()
let emitter: Emitter | null = null
let broker: Broker | null = null
const publishers = new Map<string, RedisPublisher>()

/** Options of one publish call besides its targets. */
interface How {
  via: Via
  /** `broker` and `fcall`: the history to append to ({ size, ttl }), or none. */
  history: { size: number; ttl: number } | null
}

function publishOne(target: string, seq: number, how: How): Promise<unknown> | null {
  if (emitter) {
    emitter.to(target).emit('m', message(seq))
    return null
  }
  switch (how.via) {
    case 'publish':
      client.publish(target, message(seq)).catch(() => {})
      return null
    case 'publisher': {
      // The facility's definition says whether it has history (bench/procs/wsfacility.ts).
      let p = publishers.get(target)
      if (!p)
        publishers.set(
          target,
          (p = new Publisher({ facility: target, broadcast: true }, { broker: broker! })),
        )
      return p.publishMessage(message(seq))
    }
    case 'broker':
      return broker!.publish([target], message(seq), { history: how.history ?? false })
    case 'fcall': {
      const { size, ttl } = how.history!
      const args = [
        'FCALL',
        'wsfacility_publish',
        '1',
        target,
        message(seq),
        String(size),
        String(ttl),
      ]
      return client.sendCommand(args)
    }
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

serve({
  init: async (a) => {
    emitter = a.kind === 'sio' ? new Emitter(client) : null
    if (a.broker === true && !broker) {
      broker = createBroker({ redis: { url: env.BENCH_REDIS_URL!, name: 'bench-publisher' } })
      broker.on('error', () => {})
      if (env.BENCH_HISTORY) {
        broker.facility('plain', { format: 'json' })
        broker.facility('hist', { format: 'json', history: JSON.parse(env.BENCH_HISTORY) })
      }
      await broker.ready()
    }
  },
  /**
   * Publishes `count` messages round-robin over `targets` (channels, rooms, or facilities for
   * `via: 'publisher'`): as fast as Redis takes them when `rate` is 0, else `rate` per second.
   * Resolves with the start time (µs).
   */
  publish: async (a) => {
    const targets = a.targets as string[]
    const count = a.count as number
    const rate = a.rate as number
    const how: How = {
      via: (a.via as Via | undefined) ?? 'publish',
      history: (a.history as How['history'] | undefined) ?? null,
    }
    const t0 = nowMicros()
    if (rate === 0) {
      for (let i = 0; i < count; i += BATCH) {
        const replies: Promise<unknown>[] = []
        for (let j = i; j < Math.min(count, i + BATCH); j++) {
          const r = publishOne(targets[j % targets.length]!, j, how)
          if (r) replies.push(r)
        }
        // Wait for Redis to take the batch: bounded memory here, a steady stream there.
        if (replies.length > 0) await Promise.all(replies)
        else await client.ping()
      }
    } else {
      const start = Date.now()
      const replies: Promise<unknown>[] = []
      for (let i = 0; i < count; i++) {
        const due = start + (i * 1000) / rate
        const wait = due - Date.now()
        if (wait > 0) await sleep(wait)
        const r = publishOne(targets[i % targets.length]!, i, how)
        if (r) replies.push(r)
      }
      await Promise.all(replies)
      await client.ping()
    }
    return { t0, t1: nowMicros() }
  },
})
