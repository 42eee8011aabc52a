// history/wire.ts: the history mark on live messages, channel labels, slot tags and key names,
// checked against what the Lua publish script and function library really produce.
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { createClient } from 'redis'
import { loadLibrary } from '../../src/engine/redis-standalone.js'
import { OptionError } from '../../src/errors.js'
import { encodeMessage } from '../../src/delivery/payload.js'
import {
  channelLabel,
  decodeChannelMessage,
  encodeChannelMessage,
  HISTORY_MARK,
  historyKeys,
  resolveHistory,
  slotTag,
} from '../../src/history/wire.js'
import { RedisEngine } from '../../src/engine/redis.js'
import { type RedisServer, startRedis, type TestRedisClient } from '../helpers/redis.js'
import { eventually } from '../helpers/ws.js'

const mark = (rest: string): Buffer => Buffer.concat([HISTORY_MARK, Buffer.from(rest, 'latin1')])

describe('decodeChannelMessage / encodeChannelMessage', () => {
  it('splits a marked message into epoch, offset and the payload (colons in it kept)', () => {
    const m = decodeChannelMessage(mark('1733000000123456:42:{"a":"b:c"}'))
    assert.deepEqual(
      { ...m, payload: m.payload.toString() },
      { payload: '{"a":"b:c"}', epoch: '1733000000123456', offset: 42 },
    )
  })

  it('round-trips any payload, empty and binary ones included', () => {
    for (const payload of [
      Buffer.from(''),
      Buffer.from('plain'),
      Buffer.from('1:2:3'),
      encodeMessage(Buffer.from([0xff, 0x00, 1, 2])),
      HISTORY_MARK,
    ]) {
      const m = decodeChannelMessage(encodeChannelMessage(payload, 'e1', 7))
      assert.equal(m.epoch, 'e1')
      assert.equal(m.offset, 7)
      assert.ok(m.payload.equals(payload))
    }
  })

  it('leaves messages without the mark, or with a malformed one, as they are', () => {
    for (const raw of [
      Buffer.from('hello'),
      Buffer.from(''),
      HISTORY_MARK, // the mark alone
      mark('e'), // no colon
      mark('e:5'), // one colon
      mark('e:0:x'), // offset 0 (offsets start at 1)
      mark('e:-1:x'),
      mark('e:1.5:x'),
      mark('e:abc:x'),
      mark('e::x'),
      mark('e:9007199254740993:x'), // past Number.MAX_SAFE_INTEGER
      Buffer.concat([Buffer.from([0xff, 0x00, 0x77, 0x73, 0x66, 0x00]), Buffer.from('e:1:x')]),
      encodeMessage(Buffer.from([1, 2, 3])), // the binary payload mark is another one
    ]) {
      const m = decodeChannelMessage(raw)
      assert.deepEqual(
        { epoch: m.epoch, offset: m.offset },
        { epoch: null, offset: 0 },
        raw.toString('hex'),
      )
      assert.ok(m.payload.equals(raw))
    }
  })
})

describe('channelLabel', () => {
  it('names each audience without ids the client would otherwise learn', () => {
    assert.equal(channelLabel('', 'broadcast:feed'), 'broadcast')
    assert.equal(channelLabel('', 'user:john:feed'), 'user')
    assert.equal(channelLabel('', 'session:8f2a:feed'), 'session')
    assert.equal(channelLabel('', 'group:admins:feed'), 'group:admins')
  })

  it('strips the prefix, keeps colons inside group names', () => {
    assert.equal(channelLabel('ws4redis:', 'ws4redis:broadcast:feed'), 'broadcast')
    assert.equal(channelLabel('ws4redis:', 'ws4redis:group:a:b:feed'), 'group:a:b')
    assert.equal(channelLabel('ws4redis:', 'ws4redis:user:a:b:feed'), 'user')
    assert.equal(channelLabel('', 'group:{t}:feed{t}'), 'group:{t}')
  })
})

describe('slotTag / historyKeys', () => {
  it("is the channel's {hash tag} as Redis Cluster reads it, else the whole name", () => {
    const cases: [string, string][] = [
      ['broadcast:feed', 'broadcast:feed'],
      ['broadcast:feed{t}', 't'],
      ['group:{g}:feed', 'g'],
      ['a{b}c{d}', 'b'], // the first tag only
      ['a{}b', 'a{}b'], // an empty tag is none
      ['a{b', 'a{b'],
      ['a}b{c}', 'c'],
      ['a{{b}}', '{b'],
      ['{}{x}', '{}{x}'], // Redis looks for '}' after the first '{' only
      ['a}b', 'a}b'], // a '}' without any '{' is no tag
      ['a}{b}', 'b'], // nor is a '}' before the first '{'
    ]
    for (const [channel, tag] of cases) assert.equal(slotTag(channel), tag, channel)
  })

  it('puts the stream and the epoch hash in the tag of the channel', () => {
    assert.deepEqual(historyKeys('broadcast:feed'), {
      stream: '{broadcast:feed}wsfacility:history:broadcast:feed',
      meta: '{broadcast:feed}wsfacility:epoch:broadcast:feed',
    })
    assert.deepEqual(historyKeys('user:u:feed{room}'), {
      stream: '{room}wsfacility:history:user:u:feed{room}',
      meta: '{room}wsfacility:epoch:user:u:feed{room}',
    })
  })
})

describe('resolveHistory', () => {
  it('accepts { size, ttl } (frozen); none for undefined, null and false', () => {
    const h = resolveHistory('history', { size: 10, ttl: 60 })
    assert.deepEqual(h, { size: 10, ttl: 60 })
    assert.ok(Object.isFrozen(h))
    for (const none of [undefined, null, false]) assert.equal(resolveHistory('history', none), null)
    assert.deepEqual(resolveHistory('h', { size: 1_000_000, ttl: 31_536_000 }), {
      size: 1_000_000,
      ttl: 31_536_000,
    })
    assert.deepEqual(resolveHistory('h', { size: 1, ttl: 1 }), { size: 1, ttl: 1 })
  })

  it('says what it wants for a value that is not an object', () => {
    for (const bad of [true, 1, 'x', []]) {
      assert.throws(() => resolveHistory('feed.history', bad), {
        message: 'feed.history must be { size, ttl } or false',
      })
    }
  })

  it('throws OptionError naming the option for anything else', () => {
    for (const bad of [
      true,
      1,
      'x',
      [],
      {},
      { size: 0, ttl: 1 },
      { size: 1.5, ttl: 1 },
      { size: 1_000_001, ttl: 1 },
      { size: '10', ttl: 1 },
      { size: 1, ttl: 0 },
      { size: 1, ttl: 31_536_001 },
      { size: 1, ttl: 2.5 },
      { size: 1 },
    ]) {
      assert.throws(
        () => resolveHistory('feed.history', bad),
        (err: unknown) => {
          assert.ok(err instanceof OptionError, JSON.stringify(bad))
          assert.match(err.message, /^feed\.history/)
          return true
        },
      )
    }
  })
})

describe('what Redis publishes with history', () => {
  let redis: RedisServer
  let admin: TestRedisClient
  before(async () => {
    redis = await startRedis()
    admin = await redis.client()
  })
  after(async () => {
    admin.destroy()
    await redis.stop()
  })

  it('the publish script and the function library send marked messages that decode, with the offsets of history', async () => {
    const engine = new RedisEngine({ redis: redis.url, prefix: '' })
    engine.onError(() => {})
    await engine.start()
    const sub = createClient({ url: redis.url })
    sub.on('error', () => {})
    await sub.connect()
    try {
      const raw: Buffer[] = []
      await sub.subscribe('broadcast:wire', (message) => raw.push(message), true)
      const history = { size: 10, ttl: 60 }
      await engine.publish('broadcast:wire', Buffer.from('one'), 0, history)
      await loadLibrary(admin)
      await admin.sendCommand([
        'FCALL',
        'wsfacility_publish',
        '1',
        'broadcast:wire',
        'two:2',
        '10',
        '60',
      ])
      await engine.publish('broadcast:wire', Buffer.from('plain'), 0)
      await eventually(() => raw.length === 3)
      const decoded = raw.map(decodeChannelMessage)
      const epoch = (await admin.hGet(historyKeys('broadcast:wire').meta, 'e'))!
      assert.deepEqual(
        decoded.map((m) => [m.epoch, m.offset, m.payload.toString()]),
        [
          [epoch, 1, 'one'],
          [epoch, 2, 'two:2'],
          [null, 0, 'plain'],
        ],
      )
      const read = await engine.readHistory('broadcast:wire', 0, 10)
      assert.deepEqual(
        read.entries.map((e) => [e.offset, e.payload.toString()]),
        [
          [1, 'one'],
          [2, 'two:2'],
        ],
      )
    } finally {
      sub.destroy()
      await engine.close()
    }
  })

  it("the function library finds a channel's keys where historyKeys() puts them", async () => {
    await loadLibrary(admin)
    for (const channel of [
      'broadcast:lib',
      'broadcast:lib{t}',
      'group:{g}:lib',
      'broadcast:lib{}x',
      'broadcast:a{b}c{d}',
      'broadcast:a}b{c}',
      'broadcast:a{{b}}',
    ]) {
      await admin.sendCommand(['FCALL', 'wsfacility_publish', '1', channel, 'x', '10', '60'])
      const { stream, meta } = historyKeys(channel)
      assert.equal(await admin.xLen(stream), 1, `stream of ${channel}`)
      assert.equal(await admin.hGet(meta, 's'), '1', `meta of ${channel}`)
    }
  })

  it('FCALL refuses a size or ttl below 1', async () => {
    await loadLibrary(admin)
    for (const [size, ttl] of [
      ['0', '60'],
      ['10', '0'],
      ['x', '60'],
    ]) {
      await assert.rejects(
        admin.sendCommand(['FCALL', 'wsfacility_publish', '1', 'broadcast:bad', 'x', size!, ttl!]),
        /size and ttl must be numbers >= 1/,
      )
    }
    assert.equal(await admin.exists(historyKeys('broadcast:bad').stream), 0)
  })
})
