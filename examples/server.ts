// The wsfacility examples — chat, notifications, presence — behind one Express server:
// `npm start`, then open the printed URL. In-memory engine and session store by default;
// set REDIS_URL to run on Redis (engine and connect-redis sessions, across processes).
// The app itself is in app.ts, so that tests can serve it around a test broker.
import http from 'node:http'
import { RedisStore } from 'connect-redis'
import expressSession, { type Store } from 'express-session'
import { createClient as createRedisClient } from 'redis'
import { createBroker } from '../src/index.js'
import { createApp, exampleBrokerOptions } from './app.js'
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

const broker = createBroker({
  ...(redisUrl ? { redis: redisUrl } : {}),
  ...exampleBrokerOptions(session),
})
broker.on('error', (err) => console.error(`broker: ${err.message}`))
const server = http.createServer(createApp(broker, session))
broker.attach(server)

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
