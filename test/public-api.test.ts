import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import * as api from '../src/index.js'
import type { Connection, ResolvedBrokerOptions } from '../src/index.js'
import { connect, startBroker } from './helpers/ws.js'

// What src/index.ts exports at run time: the README's API, nothing internal.
const DOCUMENTED = [
  'AUDIENCES',
  'Broker',
  'CloseCode',
  'ClosedError',
  'ERROR_CODES',
  'EngineError',
  'HttpError',
  'InvalidArgumentError',
  'JoinRefusedError',
  'MemoryEngine',
  'OptionError',
  'Publisher',
  'RedisEngine',
  'RedisPublisher',
  'RedisSubscriber',
  'SELF',
  'TimeoutError',
  'TokenError',
  'WsFacilityError',
  'anonymous',
  'channelName',
  'createBroker',
  'createPublisher',
  'redactUrl',
]

describe('The public API', () => {
  it('exports exactly the documented values, none of the internal ones', () => {
    assert.deepEqual(Object.keys(api).sort(), [...DOCUMENTED].sort())
    for (const internal of [
      'parseRequest',
      'unsignCookie',
      'tokenOf',
      'Authenticator',
      'JwtVerifier',
      'SessionReader',
      'identityFromSession',
      'normalizePrefix',
      'Connection',
    ]) {
      assert.equal(internal in api, false, internal)
    }
  })

  it('gives every error code and close code one entry of its registry', () => {
    for (const code of Object.keys(api.ERROR_CODES)) assert.match(code, /^WSF_[A-Z0-9_]+$/)
    const closeCodes = Object.values(api.CloseCode)
    assert.equal(new Set(closeCodes).size, closeCodes.length, 'close codes are distinct')
    assert.ok(new api.OptionError('x') instanceof api.WsFacilityError)
    assert.equal(new api.OptionError('x').code, 'WSF_INVALID_OPTION')
  })

  it('refuses perMessageDeflate: frames are written pre-built', () => {
    assert.throws(
      () => api.createBroker({ perMessageDeflate: true } as never),
      (err) => err instanceof api.OptionError && err.code === 'WSF_INVALID_OPTION',
    )
  })

  it('types broker.options with an exported type', () => {
    const options: ResolvedBrokerOptions = api.createBroker({ expire: 5 }).options
    assert.equal(options.expire, 5)
  })

  it('hands hooks and events a Connection with the documented API only', async () => {
    const t = await startBroker({})
    try {
      const seen: Connection[] = []
      t.broker.facility('api', { onConnect: (conn) => void seen.push(conn) })
      t.broker.on('connection', (conn) => seen.push(conn))
      const c = await connect(t.url('/ws/api?subscribe-broadcast'))
      const deadline = Date.now() + 5000
      while (seen.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10))
      assert.equal(seen.length, 2)
      const conn = seen[0]!
      assert.equal(seen[1], conn, 'the hook and the event see the same object')
      assert.equal(t.broker.connections.get(conn.id), conn)
      for (const internal of [
        'deliver',
        'flush',
        'markClosed',
        'open',
        'release',
        'ws',
        'alive',
        'expectOwn',
        'setExpiry',
        'sendText',
      ]) {
        assert.equal(internal in conn, false, internal)
      }
      assert.equal(conn.state, 'open')
      assert.throws(() => {
        ;(conn as { expiresAt: number | null }).expiresAt = 1
      }, TypeError)
      assert.throws(() => {
        ;(conn as { state: string }).state = 'closed'
      }, TypeError)
      assert.equal(conn.expiresAt, null)
      await c.close()
      const end = Date.now() + 5000
      const state = (): string => conn.state
      while (state() !== 'closed' && Date.now() < end) await new Promise((r) => setTimeout(r, 10))
      assert.equal(state(), 'closed')
    } finally {
      await t.close()
    }
  })
})
