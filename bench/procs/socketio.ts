/**
 * Child process: Socket.IO 4.8 with @socket.io/redis-adapter, the comparison server. Each socket
 * joins the room its auth names (`bench` for broadcast, its own for the many-channels run).
 */
import http from 'node:http'
import { createAdapter } from '@socket.io/redis-adapter'
import { createClient } from 'redis'
import { Server } from 'socket.io'
import { serve } from '../ipc.js'
import { collect, listenLocal } from './server-common.js'

const env = process.env
const pub = createClient({ url: env.BENCH_REDIS_URL!, name: 'bench-socketio' })
const sub = pub.duplicate()
pub.on('error', () => {})
sub.on('error', () => {})
await Promise.all([pub.connect(), sub.connect()])
const server = http.createServer()
const io = new Server(server, {
  adapter: createAdapter(pub, sub),
  serveClient: false,
  transports: ['websocket'],
})
io.use((socket, next) => {
  const room = (socket.handshake.auth as { room?: unknown }).room
  void socket.join(typeof room === 'string' ? room : 'bench')
  next()
})
await listenLocal(server, Number(env.BENCH_PORT))

serve({
  count: () => io.engine.clientsCount,
  gc: () => collect(),
  stats: () => ({ connections: io.engine.clientsCount }),
})
