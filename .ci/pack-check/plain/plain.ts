// A user's server code with nothing but wsfacility, typescript and @types/node installed: it must
// compile without skipLibCheck (no @types/ws, @types/express-session or @types/express needed)
// and with exactOptionalPropertyTypes, where optional options are given values that may be
// undefined (undefined means "the default").
import http from 'node:http'
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import {
  createBroker,
  type BrokerOptions,
  type FacilityDefinition,
  type JwtOptions,
  RedisPublisher,
  SELF,
} from 'wsfacility'
import { createClient, type ClientOptions } from 'wsfacility/client'
import { commonChannel, userChannel } from 'wsfacility/facilities'

const env = process.env
const num = (value: string | undefined): number | undefined =>
  value === undefined ? undefined : Number(value)

// Every option from the environment: unset ones are undefined and keep their defaults.
const options: BrokerOptions = {
  redis: env.REDIS_URL, // absent → in-memory engine (one process)
  prefix: env.WS_PREFIX,
  path: env.WS_PATH,
  expire: num(env.WS_EXPIRE),
  heartbeat: env.WS_HEARTBEAT,
  pingInterval: num(env.WS_PING_INTERVAL),
  maxConnections: num(env.WS_MAX_CONNECTIONS),
  publishRate: num(env.WS_PUBLISH_RATE),
  origins: env.WS_ORIGIN === undefined ? undefined : [env.WS_ORIGIN],
  logger: undefined,
  identify: (req) => ({
    user: req.headers['x-user']?.toString() ?? null,
    groups: [],
    sessionKey: null,
  }),
}
const broker = createBroker(options)

const jwt: JwtOptions = {
  secret: env.JWT_SECRET ?? 'not-a-secret',
  issuer: env.JWT_ISSUER,
  audience: env.JWT_AUDIENCE,
  algorithms: undefined,
  clockTolerance: num(env.JWT_CLOCK_TOLERANCE),
}
void jwt

const room: FacilityDefinition = {
  format: env.ROOM_FORMAT === 'json' ? 'json' : undefined,
  expire: num(env.ROOM_EXPIRE),
  history: undefined,
  anonymous: undefined,
  publishRate: undefined,
  slowConsumer: undefined,
  authorize: undefined,
  onConnect: undefined,
}
broker.facility('room/{id}', room)
userChannel(broker, { facility: env.USER_FACILITY, userExists: undefined })
commonChannel(broker, { facility: undefined, anonymous: undefined })

// The browser client's options type-check here too (no DOM lib; not run in this project).
export const clientOptions: ClientOptions = {
  url: env.WS_URL,
  facility: 'notifications',
  subscribe: ['user'],
  token: env.TOKEN,
  reconnect: { base: num(env.RECONNECT_BASE), cap: undefined },
  heartbeat: env.WS_HEARTBEAT === undefined ? undefined : { text: env.WS_HEARTBEAT },
  queue: { max: undefined, whenDisconnected: undefined },
  WebSocket: undefined,
}
export const connectLater = (): unknown => createClient(clientOptions)

const server = http.createServer((req, res) => {
  if (!broker.handleRequest(req, res)) res.writeHead(404).end()
})
broker.attach(server)
server.listen(0, '127.0.0.1')
await once(server, 'listening')
const { port } = server.address() as AddressInfo

const receivers = await new RedisPublisher(
  { facility: 'notifications', users: [SELF], groups: undefined, broadcast: undefined },
  { broker, request: { user: 'alice', groups: [], sessionKey: null } },
).publishMessage('You have mail', { expire: undefined })
if (receivers !== 0) throw new Error(`nobody is connected, yet ${receivers} received it`)

const res = await fetch(`http://127.0.0.1:${port}/ws/notifications`)
if (res.status !== 426) throw new Error(`plain GET under /ws/ answered ${res.status}, not 426`)

await broker.close({ code: undefined, timeout: undefined })
server.close()
console.log('plain: broker on the memory engine attached, published, refused a plain GET, closed')
