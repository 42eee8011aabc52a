/** Child process: a plain `ws` server that accepts every upgrade and does nothing else (the floor). */
import http from 'node:http'
import { WebSocketServer } from 'ws'
import { serve } from '../ipc.js'
import { profiler } from './profiler.js'
import { collect, listenLocal } from './server-common.js'

const env = process.env
const server = http.createServer((_req, res) => res.writeHead(404).end())
const wss = new WebSocketServer({ server, perMessageDeflate: false })
wss.on('connection', (ws) => ws.on('error', () => {}))
await listenLocal(server, Number(env.BENCH_PORT))

serve({
  count: () => wss.clients.size,
  gc: () => collect(),
  stats: () => ({ connections: wss.clients.size }),
  ...profiler(),
})
