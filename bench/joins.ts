/**
 * `npm run bench:joins`: live joins and leaves per second on one process, and the server CPU per
 * operation — wsfacility's `broker.join`/`broker.leave` (one connection by id) against Socket.IO
 * 4.8's `socket.join`/`socket.leave` with @socket.io/redis-adapter — on this machine's own
 * redis-server. Each operation is a server-side call on an idle connected socket; every join
 * makes a new room (a SUBSCRIBE for wsfacility, for the adapter none: it subscribes by pattern),
 * every leave empties it. `--quick` runs a small plan.
 */
import { once } from 'node:events'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { createAdapter } from '@socket.io/redis-adapter'
import { createClient } from 'redis'
import { Server } from 'socket.io'
import WebSocket from 'ws'
import { buildPackage, loadPackage } from './package.js'
import { startRedis } from '../test/helpers/redis.js'

let CLIENTS = 200
let ROUNDS = 20

/** Figures of one server's joins and leaves. */
export interface Figures {
  server: string
  operations: number
  perSec: number
  cpuMicrosPerOp: number
}

/** Runs `round` ROUNDS times (each: every client joins a room of its own, then leaves it). */
async function measure(server: string, round: (r: number) => Promise<void>): Promise<Figures> {
  await round(-1) // warm-up
  const cpu = process.cpuUsage()
  const start = performance.now()
  for (let r = 0; r < ROUNDS; r++) await round(r)
  const seconds = (performance.now() - start) / 1000
  const used = process.cpuUsage(cpu)
  const operations = ROUNDS * CLIENTS * 2
  return {
    server,
    operations,
    perSec: Math.round(operations / seconds),
    cpuMicrosPerOp: Math.round((used.user + used.system) / operations),
  }
}

async function wsfacility(url: string): Promise<Figures> {
  const { createBroker } = await loadPackage()
  const broker = createBroker({ redis: url })
  const server = http.createServer()
  broker.attach(server)
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  await broker.ready()
  const port = (server.address() as AddressInfo).port
  const sockets = await Promise.all(
    Array.from({ length: CLIENTS }, async () => {
      const ws = new WebSocket(`ws://127.0.0.1:${port}/ws/bench`)
      await once(ws, 'open')
      return ws
    }),
  )
  const ids = [...broker.connections.keys()]
  const figures = await measure('wsfacility', async (r) => {
    await Promise.all(ids.map((id, i) => broker.join({ connection: id }, { group: `${r}.${i}` })))
    await Promise.all(ids.map((id, i) => broker.leave({ connection: id }, { group: `${r}.${i}` })))
  })
  for (const ws of sockets) ws.terminate()
  await broker.close()
  server.close()
  return figures
}

async function socketio(url: string): Promise<Figures> {
  const pub = createClient({ url })
  const sub = pub.duplicate()
  await Promise.all([pub.connect(), sub.connect()])
  const server = http.createServer()
  const io = new Server(server, { adapter: createAdapter(pub, sub), transports: ['websocket'] })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const port = (server.address() as AddressInfo).port
  // The Engine.IO/Socket.IO handshake by hand over a plain WebSocket: open, then "40" (connect).
  const clients = await Promise.all(
    Array.from({ length: CLIENTS }, async () => {
      const ws = new WebSocket(`ws://127.0.0.1:${port}/socket.io/?EIO=4&transport=websocket`)
      await new Promise<void>((resolve) =>
        ws.on('message', (data: Buffer) => {
          const text = data.toString()
          if (text.startsWith('0')) ws.send('40')
          else if (text.startsWith('40')) resolve()
          else if (text === '2') ws.send('3')
        }),
      )
      return ws
    }),
  )
  const sockets = [...io.of('/').sockets.values()]
  const figures = await measure('socket.io + redis-adapter', async (r) => {
    await Promise.all(sockets.map((s, i) => s.join(`${r}.${i}`)))
    await Promise.all(sockets.map((s, i) => s.leave(`${r}.${i}`)))
  })
  for (const ws of clients) ws.terminate()
  await new Promise<void>((resolve) => io.close(() => resolve()))
  await Promise.all([pub.quit(), sub.quit()])
  return figures
}

/** Both servers' joins and leaves on the Redis at `redisUrl` (`quick`: a small plan). */
export async function benchJoins(redisUrl: string, quick: boolean): Promise<Figures[]> {
  CLIENTS = quick ? 50 : 200
  ROUNDS = quick ? 4 : 20
  return [await wsfacility(redisUrl), await socketio(redisUrl)]
}

/** The joins table, for the results file. */
export function joinsMarkdown(rows: readonly Figures[]): string[] {
  return [
    'Live joins and leaves on one process (broker.join/leave of one connection vs socket.join/leave):',
    '',
    '| server | operations | joins+leaves/s | server CPU µs/op |',
    '| --- | ---: | ---: | ---: |',
    ...rows.map((f) => `| ${f.server} | ${f.operations} | ${f.perSec} | ${f.cpuMicrosPerOp} |`),
    '',
    `${CLIENTS} connections, ${ROUNDS} rounds; CPU is the bench's own process (server and idle clients).`,
    '',
  ]
}

// Run by itself (npm run bench:joins): its own redis-server, the table on stdout.
if (process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href) {
  buildPackage()
  const redis = await startRedis()
  try {
    const rows = await benchJoins(redis.url, process.argv.includes('--quick'))
    console.log(joinsMarkdown(rows).join('\n'))
  } finally {
    await redis.stop()
  }
}
