// The wsfacility examples — chat, notifications, presence — behind one Express server:
// `npm start`, then open the printed URL. In-memory engine and session store by default;
// set REDIS_URL to run on Redis (engine and connect-redis sessions, across processes).
import http from 'node:http'
import { fileURLToPath } from 'node:url'
import { RedisStore } from 'connect-redis'
import express, { type NextFunction, type Request, type Response } from 'express'
import expressSession, { type Store } from 'express-session'
import { createClient as createRedisClient } from 'redis'
import { wsfacility } from '../src/integrations/express.js'
import { chatRoutes } from './chat/routes.js'
import { currentUser, field, messageText, NAME, servePage } from './common.js'
import { notificationRoutes } from './notifications/routes.js'
import { presenceRoutes } from './presence/routes.js'
import { listenAndServe } from './serve.js'

const port = Number(process.env.PORT || 8000)
const host = process.env.HOST || '127.0.0.1'
const redisUrl = process.env.REDIS_URL || undefined
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error(`PORT must be a whole number from 0 to 65535, not ${process.env.PORT}`)
  process.exit(2)
}

// Sessions: connect-redis beside the Redis engine, express-session's MemoryStore otherwise.
let redisClient: ReturnType<typeof createRedisClient> | null = null
let store: Store
if (redisUrl) {
  redisClient = createRedisClient({ url: redisUrl })
  redisClient.on('error', (err: Error) => console.error(`session redis: ${err.message}`))
  try {
    await redisClient.connect()
  } catch (err) {
    console.error(
      `cannot connect to REDIS_URL: ${err instanceof Error ? err.message : String(err)}`,
    )
    process.exit(1)
  }
  store = new RedisStore({ client: redisClient })
} else {
  store = new expressSession.MemoryStore()
}
// A fixed secret keeps cookies valid across restarts; set SESSION_SECRET in real deployments.
const session = { store, secret: process.env.SESSION_SECRET || 'wsfacility examples secret' }

const app = express()
app.use(express.json({ limit: '16kb' }))
app.use(express.urlencoded({ extended: false, limit: '16kb' }))
app.use(expressSession({ ...session, resave: false, saveUninitialized: false }))

const server = http.createServer(app)
const broker = wsfacility(app, server, {
  ...(redisUrl ? { redis: redisUrl } : {}),
  session,
  // The last message of each channel is kept a minute and replayed to newcomers.
  expire: 60,
  presence: true,
  clientPublish: ['group', 'user', 'session'],
})
broker.on('error', (err) => console.error(`broker: ${err.message}`))

// The browser client, straight from the build (`npm run build`): no bundler, no CDN.
const js = { setHeaders: (res: Response) => res.type('text/javascript; charset=utf-8') }
const dist = new URL('../dist/src/', import.meta.url)
app.use('/client', express.static(fileURLToPath(new URL('client/', dist)), js))
// Login: a name in a form or JSON; the groups (chat rooms) start empty.
app.post('/login', (req, res, next) => {
  const username = field(req, 'name')
  if (!NAME.test(username)) {
    res.status(400).json({ error: 'name: 1 to 32 letters, digits, _ . -' })
    return
  }
  // A new session id for the new user, so a cookie seen before login is worth nothing.
  req.session.regenerate((err) => {
    if (err) return next(err)
    req.session.user = { username, groups: [] }
    req.session.save((err) => {
      if (err) return next(err)
      if (req.is('application/json')) res.json({ user: username, groups: [] })
      else res.redirect(303, safeNext(field(req, 'next')))
    })
  })
})

app.post('/logout', (req, res, next) => {
  req.session.destroy((err) => {
    if (err) return next(err)
    if (req.is('application/json')) res.json({ user: null })
    else res.redirect(303, safeNext(field(req, 'next')))
  })
})

app.get('/me', (req, res) => {
  const user = currentUser(req)
  res.json({ user: user?.username ?? null, groups: user?.groups ?? [] })
})

/** A same-site path to go back to after a form post. */
function safeNext(next: string): string {
  return next.startsWith('/') && !next.startsWith('//') ? next : '/'
}

// News: a broadcast anyone may watch (the home page does), published from a route.
app.post('/news', async (req, res, next) => {
  const text = messageText(req)
  if (text === null) {
    res.status(400).json({ error: 'text must have 1 to 1000 characters' })
    return
  }
  try {
    const receivers = await req.wsfacility!.publish({ facility: 'news', broadcast: true }, text)
    res.json({ receivers })
  } catch (err) {
    next(err)
  }
})
broker.facility('news', { subscribe: ['broadcast'], publish: [] })

servePage(app, ['/'], new URL('./home.html', import.meta.url))
// The pages' shared look.
app.get('/style.css', (_req, res) =>
  res.sendFile(fileURLToPath(new URL('./style.css', import.meta.url)), {
    headers: { 'Content-Type': 'text/css; charset=utf-8' },
  }),
)
chatRoutes(app, broker)
notificationRoutes(app, broker)
presenceRoutes(app, broker)

app.use((req: Request, res: Response) => {
  res.status(404).type('text').send('not found\n')
})
app.use((err: Error, _req: Request, res: Response, _next: NextFunction) => {
  console.error(`request failed: ${err.message}`)
  if (!res.headersSent) res.status(500).json({ error: 'internal error' })
})

try {
  // With Redis, fail early and clearly instead of serving pages whose sockets never connect.
  await broker.ready()
} catch (err) {
  console.error(`cannot connect to REDIS_URL: ${err instanceof Error ? err.message : String(err)}`)
  process.exit(1)
}

listenAndServe(server, broker, {
  host,
  port,
  banner: (actual) =>
    `wsfacility examples on http://${host}:${actual} (engine: ${redisUrl ? 'redis' : 'memory'})`,
  onStop: async () => {
    await redisClient?.quit()
  },
})
