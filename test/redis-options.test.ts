// RedisEngine's choice of link (src/engine/redis-options.ts): one server for `redis`, a cluster for
// `cluster`, and an OptionError for the combinations that name neither or both. The broker checks
// its own options first (test/options.test.ts); these are the engine's, for code that makes a
// RedisEngine itself. Nothing here connects: a link connects in start().
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { ClusterLink } from '../src/engine/redis-cluster.js'
import { linkFor, type RedisEngineOptions } from '../src/engine/redis-options.js'
import { engineKeys } from '../src/engine/redis-scripts.js'
import { StandaloneLink } from '../src/engine/redis-standalone.js'
import { RedisEngine } from '../src/engine/redis.js'
import { OptionError } from '../src/errors.js'

const URL = 'redis://127.0.0.1:1'
const keys = engineKeys('')

/** Asserts that `options` are refused with an OptionError whose message matches `why`. */
function refused(options: RedisEngineOptions, why: RegExp): void {
  const check = (err: unknown) => {
    assert.ok(err instanceof OptionError, String(err))
    assert.equal(err.code, 'WSF_INVALID_OPTION')
    assert.match(err.message, why)
    return true
  }
  assert.throws(() => linkFor(options, keys), check)
  assert.throws(() => new RedisEngine(options), check)
}

describe('RedisEngine options: the link to Redis', () => {
  it('links one server for `redis`, a URL or node-redis options', () => {
    assert.ok(linkFor({ redis: URL, prefix: '' }, keys) instanceof StandaloneLink)
    const options = { redis: { url: URL }, prefix: '' }
    assert.ok(linkFor(options, keys) instanceof StandaloneLink)
  })

  it('links a cluster for `cluster`, with or without clusterPlainPublish', () => {
    assert.ok(linkFor({ cluster: [URL], prefix: '' }, keys) instanceof ClusterLink)
    const plain = { cluster: [URL], clusterPlainPublish: true, prefix: '' }
    assert.ok(linkFor(plain, keys) instanceof ClusterLink)
  })

  it('refuses options that name neither', () => {
    refused({ prefix: '' }, /^redis or cluster is required$/)
    refused({ redis: undefined, cluster: undefined, prefix: '' }, /^redis or cluster is required$/)
  })

  it('refuses options that name both', () => {
    refused({ redis: URL, cluster: [URL], prefix: '' }, /^give either redis or cluster, not both$/)
  })

  it('refuses clusterPlainPublish on one server', () => {
    refused(
      { redis: URL, clusterPlainPublish: true, prefix: '' },
      /^clusterPlainPublish needs cluster/,
    )
    // false is the default, and allowed anywhere.
    const off = { redis: URL, clusterPlainPublish: false, prefix: '' }
    assert.ok(linkFor(off, keys) instanceof StandaloneLink)
  })
})
