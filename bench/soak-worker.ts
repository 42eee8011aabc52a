/**
 * One client process of the soak (started by bench/soak.ts over IPC, never on its own): opens
 * `stable` clients that stay for the whole run on the sequence channel, and `churn` clients that
 * connect with assorted flags, publish, and disconnect (cleanly or abruptly) in waves.
 */
import { SignJWT } from 'jose'
import WebSocket from 'ws'

/** What the parent sends to start a worker. */
export interface WorkerStart {
  url: string
  secret: string
  worker: number
  stable: number
  churn: number
}

/** What a worker reports when asked to stop. */
export interface WorkerReport {
  stableOpen: number
  /** Sequence numbers each stable client received (distinct), first and last seen. */
  received: { count: number; first: number; last: number; duplicates: number; outOfOrder: number }[]
  stableClosedEarly: number
  connects: number
  disconnects: number
  refused: number
  errors: number
  published: number
  messages: number
  /** Client errors by message. */
  errorKinds: Record<string, number>
}

const FACILITIES = ['chat', 'news', 'seq', 'room-1', 'room-2']
const FLAGS = [
  'subscribe-broadcast',
  'subscribe-user',
  'subscribe-broadcast&subscribe-user&publish-user',
  'subscribe-user&publish-user&echo',
  'subscribe-broadcast&publish-broadcast',
  'subscribe-session&publish-session',
]

const rand = (lo: number, hi: number): number => lo + Math.floor(Math.random() * (hi - lo))
const pick = <T>(list: readonly T[]): T => list[rand(0, list.length)]!

async function token(secret: Uint8Array, user: string): Promise<string> {
  return new SignJWT({ sid: `s-${user}` })
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(user)
    .setExpirationTime('2h')
    .sign(secret)
}

async function run(start: WorkerStart): Promise<void> {
  const secret = new TextEncoder().encode(start.secret)
  const counters = { connects: 0, disconnects: 0, refused: 0, errors: 0, published: 0, messages: 0 }
  const errorKinds: Record<string, number> = {}
  const failed = (err: Error): void => {
    counters.errors++
    const kind = err.message.replace(/\d+/g, 'N').slice(0, 80)
    errorKinds[kind] = (errorKinds[kind] ?? 0) + 1
  }
  let stopping = false
  const live = new Set<WebSocket>()

  // Stable clients: anonymous, broadcast on `seq`, connected before the publisher starts.
  const stable = await Promise.all(
    Array.from({ length: start.stable }, async () => {
      const seen = { count: 0, first: -1, last: -1, duplicates: 0, outOfOrder: 0, closed: false }
      const got = new Set<number>()
      const ws = new WebSocket(`${start.url}/ws/seq?subscribe-broadcast`)
      ws.on('message', (data) => {
        // Churn clients may publish on broadcast:seq too; only the publisher's numbers count.
        const text = String(data)
        if (!/^\d+$/.test(text)) return
        const n = Number(text)
        if (got.has(n)) seen.duplicates++
        else got.add(n)
        if (n < seen.last) seen.outOfOrder++
        if (seen.first === -1) seen.first = n
        seen.last = Math.max(seen.last, n)
        seen.count = got.size
      })
      ws.on('close', () => (seen.closed = true))
      ws.on('error', failed)
      await new Promise<void>((resolve, reject) => {
        ws.once('open', () => resolve())
        ws.once('unexpected-response', () => reject(new Error('stable client refused')))
      })
      return { ws, seen }
    }),
  )

  // Churn clients: each slot connects, lives 10-40 s, publishes now and then, leaves, repeats.
  const slot = async (i: number): Promise<void> => {
    await new Promise((r) => setTimeout(r, rand(0, 10_000)))
    while (!stopping) {
      const user = `w${start.worker}u${rand(0, 200)}`
      const jwt = await token(secret, user)
      const url = `${start.url}/ws/${pick(FACILITIES)}?${pick(FLAGS)}&token=${jwt}`
      await new Promise<void>((resolve) => {
        const ws = new WebSocket(url)
        let timer: NodeJS.Timeout | undefined
        let publisher: NodeJS.Timeout | undefined
        ws.on('unexpected-response', (_req, res) => {
          counters.refused++
          res.resume()
          resolve()
        })
        ws.on('error', (err) => {
          failed(err)
          resolve()
        })
        ws.on('open', () => {
          counters.connects++
          live.add(ws)
          publisher = setInterval(
            () => {
              ws.send(`hello from ${user} #${i}`)
              counters.published++
            },
            rand(5000, 15_000),
          )
          timer = setTimeout(
            () => (Math.random() < 0.2 ? ws.terminate() : ws.close(1000)),
            rand(10_000, 40_000),
          )
        })
        ws.on('message', () => counters.messages++)
        ws.on('close', () => {
          if (live.delete(ws)) counters.disconnects++
          clearTimeout(timer)
          clearInterval(publisher)
          resolve()
        })
      })
      if (!stopping) await new Promise((r) => setTimeout(r, rand(100, 2000)))
    }
  }
  const slots = Array.from({ length: start.churn }, (_, i) => slot(i))

  process.on('message', (msg: { type: string }) => {
    if (msg.type !== 'stop') return
    stopping = true
    for (const ws of live) ws.close(1000)
    const report: WorkerReport = {
      stableOpen: stable.filter((s) => s.ws.readyState === WebSocket.OPEN).length,
      received: stable.map(({ seen }) => ({ ...seen })),
      stableClosedEarly: stable.filter((s) => s.seen.closed).length,
      ...counters,
      errorKinds,
    }
    for (const s of stable) s.ws.close(1000)
    void Promise.race([Promise.all(slots), new Promise((r) => setTimeout(r, 5000))]).then(() => {
      process.send?.({ type: 'report', report }, () => process.exit(0))
    })
  })
  process.send?.({ type: 'ready' })
}

process.once('message', (msg: { type: string; start: WorkerStart }) => {
  if (msg.type === 'start') {
    run(msg.start).catch((err: unknown) => {
      process.send?.({ type: 'failed', error: String(err) }, () => process.exit(1))
    })
  }
})
// The parent going away ends the worker too: nothing outlives the soak.
process.on('disconnect', () => process.exit(0))
