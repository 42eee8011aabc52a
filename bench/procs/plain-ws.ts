/**
 * Child process: a plain `ws` server that accepts every upgrade and does nothing else (the floor
 * of the connection storms). Asked for a `burst`, it writes that many bench messages, framed,
 * to every client in one write per socket: the floor of a broadcast fan-out, with no broker, no
 * Redis and nothing to decide per client. Asked to `spread` them, it writes each message, framed,
 * to one client after the other in a write of its own: the floor of one channel per client, where
 * every delivery is a write.
 */
import http from 'node:http'
import type { Socket } from 'node:net'
import { WebSocketServer } from 'ws'
import { serve } from '../ipc.js'
import { benchMessage } from '../loadgen.js'
import { profiler } from './profiler.js'
import { collect, listenLocal } from './server-common.js'

const env = process.env
const server = http.createServer((_req, res) => res.writeHead(404).end())
const wss = new WebSocketServer({ server, perMessageDeflate: false })
const sockets = new Set<Socket>()
wss.on('connection', (ws, req) => {
  ws.on('error', () => {})
  const socket = req.socket
  sockets.add(socket)
  ws.on('close', () => sockets.delete(socket))
})
await listenLocal(server, Number(env.BENCH_PORT))

/** An unmasked text frame of a payload under 126 bytes (RFC 6455 §5.2). */
function textFrame(text: string): Buffer {
  const payload = Buffer.from(text, 'latin1')
  return Buffer.concat([Buffer.from([0x81, payload.length]), payload])
}

serve({
  count: () => wss.clients.size,
  gc: () => collect(),
  stats: () => ({ connections: wss.clients.size }),
  burst: (a) => {
    const count = a.count as number
    const frames = Buffer.concat(
      Array.from({ length: count }, (_, i) => textFrame(benchMessage(i))),
    )
    for (const socket of sockets) socket.write(frames)
    return sockets.size
  },
  spread: (a) => {
    const count = a.count as number
    const list = [...sockets]
    for (let i = 0; i < count; i++) list[i % list.length]!.write(textFrame(benchMessage(i)))
    return list.length
  },
  ...profiler(),
})
