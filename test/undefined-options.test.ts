// Optional options set to undefined mean "the default", as their types (`T | undefined`, for
// users with exactOptionalPropertyTypes) promise: `createBroker({ redis: process.env.REDIS_URL })`.
// Each object below sets every optional field of its type to undefined; `Unset<T>` makes the
// compiler list them all, so an option added later without being covered here fails to compile.
import assert from 'node:assert/strict'
import type { IncomingMessage } from 'node:http'
import { describe, it } from 'node:test'
import expressSession from 'express-session'
import WebSocket from 'ws'
import {
  type BrokerOptions,
  type CloseOptions,
  createBroker,
  type FacilityDefinition,
  type JwtOptions,
  type Logger,
  type NarrowedFlags,
  type PartialIdentity,
  type PublisherTarget,
  type PublishOptions,
  RedisEngine,
  type RedisEngineOptions,
  RedisPublisher,
  RedisSubscriber,
  type SessionOptions,
  type SubscriberOptions,
} from '../src/index.js'
import {
  buildUrl,
  type ClientOptions,
  type HeartbeatOptions,
  type QueueOptions,
  type ReconnectOptions,
  type UrlOptions,
  type WebSocketConstructor,
  WsfClientError,
} from '../src/client/index.js'
import { resolveOptions as resolveClientOptions } from '../src/client/options.js'
import { resolveOptions } from '../src/broker/options.js'
import type { MetricsOptions } from '../src/observability/metrics.js'
import { resolveCloseOptions } from '../src/broker/close.js'
import { resolveSettings } from '../src/facility/settings.js'
import { validateDefinition } from '../src/facility/definition.js'
import { JwtVerifier } from '../src/identity/jwt.js'
import { SessionReader } from '../src/identity/session.js'
import { normalizeIdentity } from '../src/identity/identity.js'
import {
  commonChannel,
  type CommonChannelOptions,
  presenceFacility,
  type PresenceFacilityOptions,
  userChannel,
  type UserChannelOptions,
} from '../facilities/index.js'
import { signSessionId } from './helpers/app.js'
import { signToken } from './helpers/token.js'
import { connect, eventually, startBroker } from './helpers/ws.js'

/** The keys of T that may be left out. */
type OptionalKeys<T> = { [K in keyof T]-?: object extends Pick<T, K> ? K : never }[keyof T]
/** Every optional field of T, set to undefined (and nothing else). */
type Unset<T> = { [K in OptionalKeys<T>]-?: undefined }

const brokerUnset: Unset<BrokerOptions> = {
  redis: undefined,
  redisCluster: undefined,
  clusterPlainPublish: undefined,
  refusals: undefined,
  engine: undefined,
  prefix: undefined,
  path: undefined,
  expire: undefined,
  history: undefined,
  format: undefined,
  replay: undefined,
  heartbeat: undefined,
  clientPublish: undefined,
  allowedChannels: undefined,
  identify: undefined,
  jwt: undefined,
  session: undefined,
  presence: undefined,
  anonymous: undefined,
  pingInterval: undefined,
  maxFacilityLength: undefined,
  maxPayload: undefined,
  maxBufferedBytes: undefined,
  slowConsumer: undefined,
  publishRate: undefined,
  publishBurst: undefined,
  maxStoredMessage: undefined,
  maxInFlightBytes: undefined,
  maxInFlightBytesTotal: undefined,
  maxConnections: undefined,
  maxConnectionsPerUser: undefined,
  maxFlags: undefined,
  handshakeTimeout: undefined,
  writeDelay: undefined,
  origins: undefined,
  logger: undefined,
  metrics: undefined,
}

const facilityUnset: Unset<FacilityDefinition> = {
  subscribe: undefined,
  clientJoin: undefined,
  publish: undefined,
  autoSubscribe: undefined,
  anonymous: undefined,
  expire: undefined,
  writeDelay: undefined,
  format: undefined,
  history: undefined,
  publishRate: undefined,
  publishBurst: undefined,
  maxStoredMessage: undefined,
  maxBufferedBytes: undefined,
  slowConsumer: undefined,
  authorize: undefined,
  onConnect: undefined,
  onMessage: undefined,
  onDisconnect: undefined,
}

const urlUnset: Unset<UrlOptions> = {
  url: undefined,
  path: undefined,
  subscribe: undefined,
  publish: undefined,
  echo: undefined,
  query: undefined,
}
const clientUnset: Unset<ClientOptions> = {
  ...urlUnset,
  token: undefined,
  tokenIn: undefined,
  tokenRefresh: undefined,
  positions: undefined,
  reconnect: undefined,
  heartbeat: undefined,
  queue: undefined,
  WebSocket: undefined,
  binaryType: undefined,
  autoConnect: undefined,
  random: undefined,
}
const reconnectUnset: Unset<ReconnectOptions> = {
  base: undefined,
  cap: undefined,
  attempts: undefined,
}
const queueUnset: Unset<QueueOptions> = { max: undefined, whenDisconnected: undefined }
const heartbeatUnset: Omit<Unset<HeartbeatOptions>, 'json' | 'text'> = {
  interval: undefined,
  missed: undefined,
}

const jwtUnset: Unset<JwtOptions> = {
  secret: undefined,
  publicKey: undefined,
  jwksUrl: undefined,
  algorithms: undefined,
  issuer: undefined,
  audience: undefined,
  clockTolerance: undefined,
}
const sessionUnset: Unset<SessionOptions> = { name: undefined, identity: undefined }
const targetUnset: Unset<PublisherTarget> = {
  facility: undefined,
  broadcast: undefined,
  users: undefined,
  groups: undefined,
  sessions: undefined,
}
const publishUnset: Unset<PublishOptions> = {
  expire: undefined,
  history: undefined,
  positions: undefined,
}
const closeUnset: Unset<CloseOptions> = { code: undefined, timeout: undefined }
const loggerUnset: Unset<Logger> = {
  debug: undefined,
  info: undefined,
  warn: undefined,
  error: undefined,
}

const WS = WebSocket as unknown as WebSocketConstructor
const SECRET = 'undefined-options-secret-0123456789'

describe('Options set to undefined keep their defaults', () => {
  it('createBroker / resolveOptions: every broker option', () => {
    assert.deepEqual(resolveOptions(brokerUnset), resolveOptions({}))
    const broker = createBroker(brokerUnset) // and no "give only one of redis, engine"
    assert.equal(broker.options.path, '/ws/')
  })

  it('createBroker: metrics with registry undefined keeps a registry of its own', async () => {
    const unset: Unset<MetricsOptions> = { registry: undefined }
    const broker = createBroker({ metrics: unset })
    // The broker's own registry serves the process metrics too.
    assert.match(await broker.metrics(), /^process_cpu_seconds_total /m)
    await broker.close()
  })

  it('broker.facility: every field of a definition', () => {
    validateDefinition('room/{id}', facilityUnset)
    const options = resolveOptions({ expire: 7, format: 'json', publishRate: 3 })
    const unset = { ...resolveSettings(facilityUnset, options), definition: null }
    const none = { ...resolveSettings({}, options), definition: null }
    assert.deepEqual(unset, none)
    assert.equal(unset.expire, 7)
  })

  it('createClient: every client option, and those of reconnect, queue and heartbeat', () => {
    const base = { url: 'ws://127.0.0.1:1/', facility: 'chat', WebSocket: WS }
    const unset = resolveClientOptions({
      ...clientUnset,
      ...base,
      reconnect: reconnectUnset,
      queue: queueUnset,
      heartbeat: { text: '--heartbeat--', ...heartbeatUnset },
    })
    const none = resolveClientOptions({ ...base, heartbeat: { text: '--heartbeat--' } })
    assert.deepEqual(
      { ...unset, random: null, url: buildUrl(unset.url) },
      { ...none, random: null, url: buildUrl(none.url) },
    )
    assert.equal(unset.reconnect.base, 500)
    assert.equal(unset.queue.max, 100)
    assert.equal(unset.heartbeat?.interval, 25_000)
    const json = resolveClientOptions({ ...base, heartbeat: { json: true, text: undefined } })
    assert.equal(json.heartbeat?.answer, 'json')
  })

  it('buildUrl: every URL option', () => {
    const url = 'ws://127.0.0.1:1/'
    assert.equal(
      buildUrl({ ...urlUnset, url, facility: 'chat' }),
      buildUrl({ url, facility: 'chat' }),
    )
  })

  it('WsfClientError: closeCode', () => {
    assert.equal(
      new WsfClientError('WSF_CLIENT_POLICY', 'x', { closeCode: undefined }).closeCode,
      undefined,
    )
  })

  it('jwt: every field besides the key', async () => {
    const token = await signToken({ key: SECRET, sub: 'alice', exp: '5m' })
    const verified = await new JwtVerifier({ ...jwtUnset, secret: SECRET }).verify(token)
    assert.equal(verified.identity.user, 'alice')
  })

  it('session: name and identity', async () => {
    const store = new expressSession.MemoryStore()
    await new Promise<void>((resolve, reject) =>
      store.set(
        'sid-1',
        {
          cookie: { originalMaxAge: 60_000 },
          user: 'ann',
        } as unknown as expressSession.SessionData,
        (err) => (err ? reject(err as Error) : resolve()),
      ),
    )
    const reader = new SessionReader({ ...sessionUnset, store, secret: SECRET })
    const cookie = `connect.sid=${encodeURIComponent(signSessionId('sid-1', SECRET))}`
    const identity = await reader.identify({ headers: { cookie } } as IncomingMessage)
    assert.equal(identity?.user, 'ann')
  })

  it('RedisPublisher: every target field besides facility and users; publish and close options', async () => {
    const broker = createBroker({ expire: 60 })
    try {
      const self = { user: 'alice', groups: undefined, sessionKey: undefined }
      const publisher = new RedisPublisher(
        { ...targetUnset, facility: 'notes', users: ['bob'] },
        { broker, request: self },
      )
      assert.deepEqual(await publisher.channels(), ['user:bob:notes'])
      await publisher.publishMessage('kept', publishUnset) // the broker's expire applies
      const stored = await new RedisPublisher({}, { broker, request: undefined }).fetchMessage(
        { user: 'bob' },
        'notes',
        'user',
      )
      assert.equal(stored, 'kept')
    } finally {
      await broker.close(closeUnset)
    }
    assert.deepEqual(resolveCloseOptions(closeUnset), resolveCloseOptions({}))
  })

  it('RedisEngine: cluster and nodeTtl beside redis', async () => {
    const unset: Unset<RedisEngineOptions> = {
      redis: undefined,
      cluster: undefined,
      clusterPlainPublish: undefined,
      nodeTtl: undefined,
    }
    const engine = new RedisEngine({ ...unset, redis: 'redis://127.0.0.1:1', prefix: '' })
    await engine.close() // never started: nothing to connect to
    assert.throws(() => new RedisEngine({ ...unset, prefix: '' }), /redis or cluster is required/)
  })

  it('identities from hooks: user, groups and sessionKey', () => {
    const unset: Unset<PartialIdentity> = {
      user: undefined,
      groups: undefined,
      sessionKey: undefined,
    }
    assert.deepEqual(normalizeIdentity(unset), normalizeIdentity({}))
    assert.deepEqual(normalizeIdentity({ ...unset, user: 'ann' }), {
      user: 'ann',
      groups: [],
      sessionKey: null,
    })
  })

  it('allowedChannels: a list left undefined keeps every requested flag', async () => {
    const narrowed: Unset<NarrowedFlags> = { subscribe: undefined, publish: undefined }
    const t = await startBroker({
      clientPublish: ['broadcast'],
      allowedChannels: () => ({ ...narrowed, publish: [] }),
    })
    try {
      const opened: string[][] = []
      t.broker.on('connection', (conn) =>
        opened.push(conn.channels.subscribe, conn.channels.publish),
      )
      const c = await connect(t.url('/ws/narrow?subscribe-broadcast&publish-broadcast'))
      await eventually(() => opened.length === 2)
      assert.deepEqual(opened, [['broadcast:narrow'], []])
      await c.close()
    } finally {
      await t.close()
    }
  })

  it('RedisSubscriber: prefix', () => {
    const unset: Unset<SubscriberOptions> = { prefix: undefined }
    const identity = { user: 'u', groups: [], sessionKey: null }
    const flags = { subscribe: ['user' as const], publish: [] }
    assert.deepEqual(
      new RedisSubscriber(unset).channels('chat', flags, identity),
      new RedisSubscriber().channels('chat', flags, identity),
    )
  })

  it('the built-in facilities: facility, anonymous, userExists, request', async () => {
    const broker = createBroker({ presence: true })
    try {
      const users = userChannel(broker, {
        facility: undefined,
        userExists: undefined,
      } satisfies Unset<UserChannelOptions>)
      assert.equal(users.facility, 'user')
      assert.equal(await users.publish('alice', { hi: 1 }, { request: undefined }), 0)
      const common = commonChannel(broker, {
        facility: undefined,
        anonymous: undefined,
      } satisfies Unset<CommonChannelOptions>)
      assert.equal(common.facility, 'common')
      const presence = presenceFacility(broker, {
        facility: undefined,
        anonymous: undefined,
      } satisfies Unset<PresenceFacilityOptions>)
      assert.equal(presence.facility, 'presence')
      presence.stop()
    } finally {
      await broker.close()
    }
  })

  it('logger: a logger whose members are all undefined logs nothing and breaks nothing', async () => {
    const t = await startBroker({ logger: loggerUnset })
    try {
      const errors: unknown[] = []
      t.broker.on('error', (err) => errors.push(err))
      t.broker.facility('boom', {
        onConnect: () => {
          throw new Error('hook failed') // reported as an error event, logged with logger.error
        },
      })
      const c = await connect(t.url('/ws/boom?subscribe-broadcast'))
      await eventually(() => errors.length === 1)
      await c.close()
    } finally {
      await t.close()
    }
  })
})
