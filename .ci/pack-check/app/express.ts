// README's Express integration, run for real: express-session cookies identify the WebSocket, a
// route publishes to SELF through req.wsfacility, the `ws` client with the cookie receives it.
import http from 'node:http'
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import express from 'express'
import expressSession from 'express-session'
import WebSocket from 'ws'
import { wsfacility } from 'wsfacility/express'
import { SELF } from 'wsfacility'

declare module 'express-session' {
  interface SessionData {
    user: string
  }
}

const deadline = setTimeout(() => {
  console.error('express: timed out')
  process.exit(1)
}, 15_000)

const app = express()
const store = new expressSession.MemoryStore()
const session = { store, secret: process.env.SESSION_SECRET ?? 'keyboard cat' }
app.use(expressSession({ ...session, resave: false, saveUninitialized: false }))
const server = http.createServer(app)
const broker = wsfacility(app, server, { redis: process.env.REDIS_URL, session, expire: 60 })

app.post('/login', (req, res) => {
  req.session.user = 'alice'
  res.sendStatus(204)
})
app.post('/notify', async (req, res) => {
  const receivers = await req.wsfacility!.publish(
    { facility: 'notifications', users: [SELF] },
    'Hi',
  )
  res.json({ receivers })
})
server.listen(0, '127.0.0.1')
await once(server, 'listening')
const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`

const login = await fetch(`${origin}/login`, { method: 'POST' })
const cookie = login.headers.get('set-cookie')?.split(';')[0]
if (login.status !== 204 || cookie === undefined) throw new Error('no session cookie')

const ws = new WebSocket(`${origin.replace('http', 'ws')}/ws/notifications?subscribe-user`, {
  headers: { cookie, origin },
})
const message = new Promise<string>((resolve, reject) => {
  ws.on('message', (data) => resolve(String(data)))
  ws.on('error', reject)
})
await once(ws, 'open')
const notify = await fetch(`${origin}/notify`, { method: 'POST', headers: { cookie } })
const { receivers } = (await notify.json()) as { receivers: number }
const data = await message
if (receivers !== 1 || data !== 'Hi') {
  throw new Error(`expected 1 receiver of 'Hi', got ${receivers} and ${data}`)
}
ws.close()
await broker.close()
server.close()
clearTimeout(deadline)
console.log('express: session-cookie WebSocket received the route’s publish to SELF')
