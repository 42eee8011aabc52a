// A tiny chat on wsfacility: `npx tsx examples/demo/server.ts`, then open the printed URL in two browser tabs.
// Runs on the in-memory engine; set REDIS_URL to run on Redis (and across processes).
import { randomUUID } from 'node:crypto'
import { readFileSync } from 'node:fs'
import http from 'node:http'
import { createBroker, RedisPublisher } from '../../src/index.js'
import { listenAndServe } from '../serve.js'

const port = Number(process.env.PORT || 8000)
const host = process.env.HOST || '127.0.0.1'
const redis = process.env.REDIS_URL || undefined
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error(`PORT must be a whole number from 0 to 65535, not ${process.env.PORT}`)
  process.exit(2)
}

// The page is plain HTML with its script inline: no build step, nothing from the internet.
const page = readFileSync(new URL('./page.html', import.meta.url))

const broker = createBroker({
  ...(redis ? { redis } : {}),
  // The page publishes with ?publish-broadcast; only these audiences are allowed from clients.
  clientPublish: ['broadcast', 'session', 'user'],
  // Every broadcast is kept for a minute, so someone who joins sees the last message.
  expire: 60,
})
broker.on('error', (err) => console.error(`broker: ${err.message}`))

// Server-side publishing: what a Django view or an Express route would do.
const announcer = new RedisPublisher({ facility: 'demo', broadcast: true }, { broker })

const MAX_BODY = 16 * 1024

function readBody(req: http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let size = 0
    req.on('data', (chunk: Buffer) => {
      size += chunk.length
      if (size <= MAX_BODY) chunks.push(chunk)
    })
    req.on('end', () =>
      size > MAX_BODY
        ? reject(new Error('body too large'))
        : resolve(Buffer.concat(chunks).toString('utf8')),
    )
    req.on('error', reject)
  })
}

/** The announcement text of a JSON (`{"text": …}`) or form (`text=…`) body. */
function announcementText(req: http.IncomingMessage, body: string): string {
  const type = req.headers['content-type'] ?? ''
  if (type.startsWith('application/json')) {
    const parsed: unknown = JSON.parse(body)
    const text = (parsed as { text?: unknown } | null)?.text
    return typeof text === 'string' ? text.trim() : ''
  }
  return (new URLSearchParams(body).get('text') ?? '').trim()
}

function json(res: http.ServerResponse, status: number, value: unknown): void {
  const body = JSON.stringify(value)
  res.writeHead(status, {
    'Content-Type': 'application/json',
    'Content-Length': Buffer.byteLength(body),
  })
  res.end(body)
}

async function announce(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
  let text: string
  try {
    text = announcementText(req, await readBody(req))
  } catch {
    return json(res, 400, { error: 'send JSON {"text": "..."} of at most 16 KiB' })
  }
  if (text === '' || text.length > 1000) {
    return json(res, 400, { error: 'text must have 1 to 1000 characters' })
  }
  // An object is sent as JSON text; the page shows it like a chat line.
  const receivers = await announcer.publishMessage({
    id: randomUUID(),
    name: 'announcement',
    text,
    kind: 'announcement',
  })
  json(res, 200, { receivers })
}

const server = http.createServer((req, res) => {
  // Plain HTTP on /ws/… is answered with 426 Upgrade Required.
  if (broker.handleRequest(req, res)) return
  const path = (req.url ?? '/').split('?', 1)[0]
  if (path === '/' && (req.method === 'GET' || req.method === 'HEAD')) {
    res.writeHead(200, {
      'Content-Type': 'text/html; charset=utf-8',
      'Content-Length': page.length,
    })
    res.end(req.method === 'HEAD' ? undefined : page)
    return
  }
  if (path === '/api/announce' && req.method === 'POST') {
    announce(req, res).catch((err: unknown) => {
      console.error(`announce failed: ${String(err)}`)
      if (!res.headersSent) json(res, 503, { error: 'could not publish' })
    })
    return
  }
  res.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8' }).end('not found\n')
})
try {
  // With Redis, fail early and clearly instead of serving a page whose socket never connects.
  await broker.ready()
} catch (err) {
  console.error(`cannot connect to REDIS_URL: ${err instanceof Error ? err.message : String(err)}`)
  process.exit(1)
}
broker.attach(server)

listenAndServe(server, broker, {
  host,
  port,
  banner: (actual) =>
    `wsfacility demo on http://${host}:${actual} (engine: ${redis ? 'redis' : 'memory'})`,
})
