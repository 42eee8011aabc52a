import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { MemoryEngine } from '../src/engine/memory.js'
import { type BrokerOptions, resolveOptions } from '../src/broker/options.js'
import { closestKey } from '../src/client/unknown-keys.js'

/** Resolves options the type system would refuse, as a JavaScript caller could pass them. */
function resolveUntyped(options: Record<string, unknown>): ReturnType<typeof resolveOptions> {
  return resolveOptions(options as BrokerOptions)
}

describe('resolveOptions', () => {
  describe('defaults', () => {
    it('fills every default when called without options', () => {
      const opts = resolveOptions()
      assert.equal(opts.prefix, '')
      assert.equal(opts.channelPrefix, '')
      assert.equal(opts.path, '/ws/')
      assert.equal(opts.expire, 0)
      assert.equal(opts.heartbeat, null)
      assert.deepEqual(opts.clientPublish, ['session', 'user'])
      assert.equal(opts.replay, true)
      assert.equal(opts.pingInterval, 30_000)
      assert.equal(opts.maxFacilityLength, 128)
      assert.equal(opts.maxPayload, 1024 * 1024)
      assert.equal(opts.maxBufferedBytes, 4 * 1024 * 1024)
      assert.equal(opts.slowConsumer, 'close')
      assert.equal(opts.writeDelay, 0)
      assert.equal(opts.publishRate, 20)
      assert.equal(opts.maxStoredMessage, 64 * 1024)
      assert.equal(opts.maxInFlightBytes, 1024 * 1024)
      assert.equal(opts.maxInFlightBytesTotal, 64 * 1024 * 1024)
      assert.equal(opts.publishBurst, 0)
      assert.equal(opts.maxConnections, 0)
      assert.equal(opts.maxConnectionsPerUser, 0)
      assert.equal(opts.maxFlags, 32)
      assert.equal(opts.handshakeTimeout, 10_000)
      assert.equal(opts.origins, undefined)
      assert.equal(opts.redis, undefined)
      assert.equal(opts.engine, undefined)
      assert.equal(opts.history, null)
      assert.equal(opts.format, 'raw')
      assert.equal(opts.clusterPlainPublish, false)
    })

    it('resolves history to { size, ttl }, and false or null to none', () => {
      assert.deepEqual(resolveOptions({ history: { size: 10, ttl: 60 } }).history, {
        size: 10,
        ttl: 60,
      })
      assert.equal(resolveOptions({ history: false }).history, null)
      assert.equal(resolveOptions({ history: null }).history, null)
      assert.equal(resolveOptions({ format: 'json' }).format, 'json')
      assert.equal(resolveOptions({ format: 'binary' }).format, 'binary')
    })

    it('gives the same defaults for an empty object', () => {
      assert.deepEqual(resolveOptions({}), resolveOptions())
    })

    it('treats options set to undefined as absent', () => {
      const opts = resolveOptions({
        prefix: undefined,
        path: undefined,
        expire: undefined,
        heartbeat: undefined,
        clientPublish: undefined,
        slowConsumer: undefined,
        redis: undefined,
        engine: undefined,
      })
      assert.deepEqual(opts, resolveOptions())
    })

    it('hands out a fresh clientPublish array every time', () => {
      const first = resolveOptions()
      first.clientPublish.push('broadcast')
      assert.deepEqual(resolveOptions().clientPublish, ['session', 'user'])
    })

    it('copies a given clientPublish array', () => {
      const mine: BrokerOptions['clientPublish'] = ['user']
      const opts = resolveOptions({ clientPublish: mine })
      opts.clientPublish.push('group')
      assert.deepEqual(mine, ['user'])
    })
  })

  describe('accepted values', () => {
    it('keeps given values', () => {
      const opts = resolveOptions({
        expire: 60,
        heartbeat: '--heartbeat--',
        clientPublish: [],
        slowConsumer: 'drop',
        replay: false,
      })
      assert.equal(opts.expire, 60)
      assert.equal(opts.heartbeat, '--heartbeat--')
      assert.deepEqual(opts.clientPublish, [])
      assert.equal(opts.slowConsumer, 'drop')
      assert.equal(opts.replay, false)
    })

    it('derives the channel prefix from prefix', () => {
      assert.equal(resolveOptions({ prefix: 'ws4redis' }).channelPrefix, 'ws4redis:')
      assert.equal(resolveOptions({ prefix: 'ws4redis:' }).channelPrefix, 'ws4redis:')
    })

    it('adds the trailing slash to a path without one', () => {
      assert.equal(resolveOptions({ path: '/socket' }).path, '/socket/')
      assert.equal(resolveOptions({ path: '/socket/' }).path, '/socket/')
      assert.equal(resolveOptions({ path: '/' }).path, '/')
    })

    it('accepts redis alone or engine alone', () => {
      assert.equal(
        resolveOptions({ redis: 'redis://127.0.0.1:6379' }).redis,
        'redis://127.0.0.1:6379',
      )
      const engine = new MemoryEngine()
      assert.equal(resolveOptions({ engine }).engine, engine)
    })

    it('accepts redisCluster as root node URLs or createCluster options', () => {
      const urls = ['redis://127.0.0.1:7000', 'rediss://127.0.0.1:7001']
      assert.deepEqual(resolveOptions({ redisCluster: urls }).redisCluster, urls)
      const options = { rootNodes: [{ url: 'redis://127.0.0.1:7000' }] }
      assert.equal(resolveOptions({ redisCluster: options }).redisCluster, options)
    })
  })

  describe('refused values', () => {
    const cases: [string, Record<string, unknown>][] = [
      ['negative expire', { expire: -1 }],
      ['NaN expire', { expire: Number.NaN }],
      ['infinite expire', { expire: Number.POSITIVE_INFINITY }],
      ['expire given as a string', { expire: '10' }],
      ['path without a leading "/"', { path: 'ws/' }],
      ['empty path', { path: '' }],
      ['path that is not a string', { path: 42 }],
      ['clientPublish with an unknown audience', { clientPublish: ['user', 'everyone'] }],
      ['clientPublish that is not an array', { clientPublish: 'user' }],
      ['empty heartbeat', { heartbeat: '' }],
      ['heartbeat that is not a string', { heartbeat: 1 }],
      ['both redis and engine', { redis: 'redis://127.0.0.1:6379', engine: new MemoryEngine() }],
      ['both redis and redisCluster', { redis: 'redis://a', redisCluster: ['redis://b'] }],
      ['both redisCluster and engine', { redisCluster: ['redis://b'], engine: new MemoryEngine() }],
      ['empty redisCluster', { redisCluster: [] }],
      ['redisCluster with a URL that is not redis://', { redisCluster: ['http://127.0.0.1:7000'] }],
      ['redisCluster options without rootNodes', { redisCluster: { defaults: {} } }],
      ['redisCluster given as one string', { redisCluster: 'redis://127.0.0.1:7000' }],
      ['unknown slowConsumer policy', { slowConsumer: 'block' }],
      ['prefix with ":" inside', { prefix: 'a:b' }],
      ['prefix that is not a string', { prefix: 1 }],
      ['negative pingInterval', { pingInterval: -1 }],
      ['negative maxPayload', { maxPayload: -1 }],
      ['negative maxBufferedBytes', { maxBufferedBytes: -1 }],
      ['negative writeDelay', { writeDelay: -1 }],
      ['writeDelay past 10000 ms', { writeDelay: 10_001 }],
      ['writeDelay given as a string', { writeDelay: '50' }],
      ['writeDelay that is not finite', { writeDelay: Infinity }],
      ['zero maxFacilityLength', { maxFacilityLength: 0 }],
      ['fractional maxFacilityLength', { maxFacilityLength: 1.5 }],
      ['identify that is not a function', { identify: 'jwt' }],
      ['allowedChannels that is not a function', { allowedChannels: {} }],
      ['negative publishRate', { publishRate: -1 }],
      ['publishBurst given as a string', { publishBurst: '5' }],
      ['negative maxConnections', { maxConnections: -1 }],
      ['fractional maxConnectionsPerUser', { maxConnectionsPerUser: 1.5 }],
      ['zero maxFlags', { maxFlags: 0 }],
      ['zero handshakeTimeout', { handshakeTimeout: 0 }],
      ['origins that is a single string', { origins: 'https://app.example.com' }],
      ['origins without a scheme', { origins: ['app.example.com'] }],
      ['history without a ttl', { history: { size: 10 } }],
      ['history with a zero size', { history: { size: 0, ttl: 10 } }],
      ['history with a fractional ttl', { history: { size: 10, ttl: 1.5 } }],
      ['history given as true', { history: true }],
      ['an unknown format', { format: 'xml' }],
      ['clusterPlainPublish without redisCluster', { clusterPlainPublish: true }],
      [
        'clusterPlainPublish with redis',
        { redis: 'redis://127.0.0.1:1', clusterPlainPublish: true },
      ],
      [
        'clusterPlainPublish that is not a boolean',
        { redisCluster: ['redis://127.0.0.1:1'], clusterPlainPublish: 'yes' },
      ],
    ]
    for (const [name, options] of cases) {
      it(`throws WSF_INVALID_OPTION for ${name}`, () => {
        assert.throws(() => resolveUntyped(options), { code: 'WSF_INVALID_OPTION' })
      })
    }
  })

  describe('unknown option names', () => {
    it('refuses a mistyped name with WSF_INVALID_OPTION, naming it and the likely one', () => {
      for (const [typo, meant] of [
        ['redsi', 'redis'],
        ['expires', 'expire'],
        ['maxpayload', 'maxPayload'],
        ['clientPublsh', 'clientPublish'],
      ] as const) {
        assert.throws(
          () => resolveUntyped({ [typo]: 1 }),
          (err: Error & { code?: string }) => {
            assert.equal(err.code, 'WSF_INVALID_OPTION')
            assert.match(err.message, new RegExp(`"${typo}".*"${meant}"`))
            return true
          },
        )
      }
    })

    it('refuses a name nothing is close to without a guess, and one set to undefined too', () => {
      assert.throws(
        () => resolveUntyped({ colour: 'blue' }),
        (err: Error & { code?: string }) =>
          err.code === 'WSF_INVALID_OPTION' &&
          err.message.includes('"colour"') &&
          !err.message.includes('did you mean'),
      )
      assert.throws(() => resolveUntyped({ redsi: undefined }), { code: 'WSF_INVALID_OPTION' })
    })

    it('refuses options that are not an object', () => {
      for (const value of [null, 'redis://h', ['redis://h']]) {
        assert.throws(() => resolveOptions(value as never), { code: 'WSF_INVALID_OPTION' })
      }
    })
  })
})

describe('closestKey', () => {
  it('finds the name one or two edits away (a swap is one), whatever the case', () => {
    const known = ['redis', 'redisCluster', 'onConnect', 'onMessage', 'maxPayload', 'path']
    assert.equal(closestKey('redsi', known), 'redis')
    assert.equal(closestKey('onConect', known), 'onConnect')
    assert.equal(closestKey('MAXPAYLOAD', known), 'maxPayload')
    assert.equal(closestKey('pth', known), 'path')
    assert.equal(closestKey('pt', known), null)
    assert.equal(closestKey('websocket', known), null)
  })
})
