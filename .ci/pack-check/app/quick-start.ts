// README's quick start, run for real: a broker on the memory engine attached to an http server,
// wsfacility/client connecting with the `ws` package, RedisPublisher publishing to SELF, the
// message received; then the same with the global WebSocket where the runtime has one (the DOM-lib
// code of browser.ts).
import http from 'node:http'
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import { pathToFileURL } from 'node:url'
import WebSocket from 'ws'
import { createBroker, RedisPublisher, SELF } from 'wsfacility'
import { createClient, type WsfClient } from 'wsfacility/client'

const deadline = setTimeout(() => {
  console.error('quick-start: timed out')
  process.exit(1)
}, 15_000)

const broker = createBroker({
  redis: process.env.REDIS_URL, // absent → in-memory engine (one process)
  expire: 60,
  identify: (req) => ({
    user: new URL(req.url ?? '/', 'http://localhost').searchParams.get('user'),
    groups: [],
    sessionKey: null,
  }),
})
const server = http.createServer()
broker.attach(server) // handles upgrades under /ws/
server.listen(0, '127.0.0.1')
await once(server, 'listening')
const base = `ws://127.0.0.1:${(server.address() as AddressInfo).port}/`

function received(client: WsfClient): Promise<unknown> {
  return new Promise((resolve, reject) => {
    client.on('message', resolve)
    client.on('error', reject)
  })
}
function opened(client: WsfClient): Promise<void> {
  return new Promise((resolve) => client.on('status', (s) => s === 'open' && resolve()))
}

const client = createClient({
  url: base,
  facility: 'notifications',
  subscribe: ['user'],
  query: { user: 'alice' },
  token: process.env.TOKEN,
  reconnect: { base: undefined, cap: 1000 },
  WebSocket,
})
const message = received(client)
await opened(client)
const receivers = await new RedisPublisher(
  { facility: 'notifications', users: [SELF] },
  { broker, request: { user: 'alice', groups: [], sessionKey: null } },
).publishMessage('You have mail')
const data = await message
if (receivers !== 1 || data !== 'You have mail') {
  throw new Error(`expected 1 receiver of 'You have mail', got ${receivers} and ${String(data)}`)
}
client.close()
console.log('quick-start: ws client received the RedisPublisher message to SELF')

if ('WebSocket' in globalThis) {
  // browser.ts is compiled with lib: ["dom"]; imported by URL so that it is not type-checked here.
  const browser = (await import(pathToFileURL('./build/browser.js').href)) as {
    connect(url: string): WsfClient
  }
  const viaGlobal = browser.connect(base)
  const broadcast = received(viaGlobal)
  await opened(viaGlobal)
  await new RedisPublisher(
    { facility: 'notifications', broadcast: true },
    { broker },
  ).publishMessage('to everyone')
  if ((await broadcast) !== 'to everyone') throw new Error('global WebSocket client got nothing')
  viaGlobal.close()
  console.log('quick-start: globalThis.WebSocket client (browser.ts) received a broadcast')
} else {
  console.log('quick-start: no globalThis.WebSocket in this runtime; browser.ts only type-checked')
}

await broker.close()
server.close()
clearTimeout(deadline)
