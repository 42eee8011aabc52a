import assert from 'node:assert/strict'
import { after, afterEach, before, describe, it } from 'node:test'
import { MemoryEngine } from '../src/engine/memory.js'
import { RedisEngine } from '../src/engine/redis.js'
import type { Engine } from '../src/engine/types.js'
import type { Commands } from '../src/engine/redis-link.js'
import { presenceField, RedisPresence } from '../src/engine/redis-presence.js'
import { engineKeys } from '../src/engine/redis-scripts.js'
import { decodeChannelMessage } from '../src/history/wire.js'
import { ClosedError, EngineError } from '../src/errors.js'
import { type RedisCluster, startCluster } from './helpers/cluster.js'
import { freePort, type RedisServer, startRedis } from './helpers/redis.js'
import { eventually, sleep } from './helpers/ws.js'

/** Every byte value, 0xff first: the payload a text-only transport would damage. */
const ALL_BYTES = Buffer.from([0xff, 0x00, 0xfe, ...Array.from({ length: 256 }, (_, i) => i)])

interface Delivery {
  channel: string
  payload: Buffer
}

/** An engine under test plus what its message handler saw. */
interface Harness {
  engine: Engine
  received: Delivery[]
  /** Records `count` local connections on `channel`, in the engine and in the handler. */
  setCount(channel: string, count: number): Promise<void>
  /** Messages received on `channel`, as UTF-8 text. */
  texts(channel: string): string[]
}

interface Fixture {
  name: string
  setup(): Promise<void>
  teardown(): Promise<void>
  /** A new, started engine. */
  create(): Promise<Engine>
}

const memoryFixture: Fixture = {
  name: 'MemoryEngine',
  setup: async () => {},
  teardown: async () => {},
  async create() {
    const engine = new MemoryEngine()
    await engine.start()
    return engine
  },
}

function redisFixture(): Fixture {
  let server: RedisServer | null = null
  return {
    name: 'RedisEngine',
    async setup() {
      server = await startRedis()
    },
    async teardown() {
      await server?.stop()
    },
    async create() {
      assert.ok(server, 'redis-server started')
      return startRedisEngine(server.url)
    },
  }
}

function clusterFixture(): Fixture {
  let cluster: RedisCluster | null = null
  return {
    name: 'RedisEngine on a 3-master Redis Cluster',
    async setup() {
      cluster = await startCluster()
    },
    async teardown() {
      await cluster?.stop()
    },
    async create() {
      assert.ok(cluster, 'redis cluster started')
      const engine = new RedisEngine({ cluster: cluster.urls, prefix: '' })
      engine.onError(() => {})
      await engine.start()
      return engine
    },
  }
}

async function startRedisEngine(url: string): Promise<RedisEngine> {
  const engine = new RedisEngine({ redis: url, prefix: '' })
  engine.onError(() => {})
  await engine.start()
  return engine
}

/**
 * Wires a handler into `engine` that records deliveries and answers, like the hub, with the
 * number of local connections the test declared for the channel: the memory engine returns that
 * answer from publish, the Redis engine the count recorded with setLocalCount. Both must agree.
 */
function harness(engine: Engine): Harness {
  const received: Delivery[] = []
  const counts = new Map<string, number>()
  engine.onMessage((channel, payload) => {
    received.push({ channel, payload: Buffer.from(payload) })
    return counts.get(channel) ?? 0
  })
  return {
    engine,
    received,
    async setCount(channel, count) {
      counts.set(channel, count)
      await engine.setLocalCount(channel, count)
    },
    texts: (channel) =>
      received.filter((d) => d.channel === channel).map((d) => d.payload.toString('utf8')),
  }
}

let sequence = 0
/** A channel name no other test uses. */
function channel(name = 'chat'): string {
  sequence += 1
  return `broadcast:${name}-${sequence}`
}

/** A presence set (a facility's name) no other test uses. */
function presenceSet(): string {
  sequence += 1
  return `room-${sequence}`
}

/** Users no other test uses: the overall presence set is shared by every test of an engine. */
/** What `RedisPresence` makes of a failed batch in these tests: the error itself. */
function rethrow(err: unknown): never {
  throw err
}

function presenceUsers<const N extends readonly string[]>(...names: N): { [K in keyof N]: string } {
  sequence += 1
  return names.map((name) => `${name}-${sequence}`) as { [K in keyof N]: string }
}

/** A join's or leave's answer that changed both presence sets, or neither. */
const both = (changed: boolean) => ({ overall: changed, facility: changed })

for (const fixture of [memoryFixture, redisFixture(), clusterFixture()]) {
  describe(`Engine contract: ${fixture.name}`, { timeout: 60_000 }, () => {
    const open: Engine[] = []

    before(() => fixture.setup())
    afterEach(async () => {
      await Promise.all(open.splice(0).map((engine) => engine.close()))
    })
    after(() => fixture.teardown())

    async function create(): Promise<Harness> {
      const engine = await fixture.create()
      open.push(engine)
      return harness(engine)
    }

    it('can be started more than once', async () => {
      const { engine } = await create()
      await engine.start()
      await engine.start()
    })

    it('delivers a published message to the handler with its channel and exact bytes', async () => {
      const h = await create()
      const ch = channel()
      await h.engine.subscribe(ch)
      const payload = Buffer.from('{"text":"héllo"}', 'utf8')
      await h.engine.publish(ch, payload, 0)
      await h.engine.barrier()
      assert.equal(h.received.length, 1)
      assert.equal(h.received[0]?.channel, ch)
      assert.deepEqual(h.received[0]?.payload, payload)
    })

    it('delivers nothing and returns 0 for a channel nobody subscribed', async () => {
      const h = await create()
      const listened = channel()
      const unheard = channel()
      await h.engine.subscribe(listened)
      await h.setCount(listened, 1)
      assert.equal(await h.engine.publish(unheard, Buffer.from('lost'), 0), 0)
      await h.engine.barrier()
      assert.deepEqual(h.received, [])
    })

    it('stops delivering after unsubscribe', async () => {
      const h = await create()
      const ch = channel()
      await h.engine.subscribe(ch)
      await h.engine.publish(ch, Buffer.from('first'), 0)
      await h.engine.barrier()
      assert.deepEqual(h.texts(ch), ['first'])

      await h.engine.unsubscribe(ch)
      assert.equal(await h.engine.publish(ch, Buffer.from('second'), 0), 0)
      await h.engine.barrier()
      assert.deepEqual(h.texts(ch), ['first'])
    })

    it('delivers again after subscribing anew', async () => {
      const h = await create()
      const ch = channel()
      await h.engine.subscribe(ch)
      await h.engine.unsubscribe(ch)
      await h.engine.subscribe(ch)
      await h.engine.publish(ch, Buffer.from('back'), 0)
      await h.engine.barrier()
      assert.deepEqual(h.texts(ch), ['back'])
    })

    it('only delivers the channels subscribed', async () => {
      const h = await create()
      const a = channel('a')
      const b = channel('b')
      await h.engine.subscribe(a)
      await h.engine.publish(b, Buffer.from('to b'), 0)
      await h.engine.publish(a, Buffer.from('to a'), 0)
      await h.engine.barrier()
      assert.deepEqual(
        h.received.map((d) => d.channel),
        [a],
      )
    })

    it('returns the number of receivers recorded for the channel', async () => {
      const h = await create()
      const ch = channel()
      await h.engine.subscribe(ch)
      await h.setCount(ch, 3)
      assert.equal(await h.engine.publish(ch, Buffer.from('x'), 0), 3)
      await h.setCount(ch, 1)
      assert.equal(await h.engine.publish(ch, Buffer.from('y'), 0), 1)
      await h.engine.barrier()
      assert.deepEqual(h.texts(ch), ['x', 'y'])
    })

    it('stores the payload under the channel when expire > 0, and lets it expire', async () => {
      const h = await create()
      const ch = channel()
      const payload = Buffer.from('kept for a second')
      await h.engine.publish(ch, payload, 1)
      assert.deepEqual(await h.engine.get([ch]), [payload])
      await sleep(1200)
      assert.deepEqual(await h.engine.get([ch]), [null])
    })

    it('stores the payload even when nobody is subscribed', async () => {
      const h = await create()
      const ch = channel()
      assert.equal(await h.engine.publish(ch, Buffer.from('for later'), 60), 0)
      assert.deepEqual(await h.engine.get([ch]), [Buffer.from('for later')])
    })

    it('keeps only the last stored payload of a channel', async () => {
      const h = await create()
      const ch = channel()
      await h.engine.publish(ch, Buffer.from('old'), 60)
      await h.engine.publish(ch, Buffer.from('new'), 60)
      assert.deepEqual(await h.engine.get([ch]), [Buffer.from('new')])
    })

    it('stores nothing when expire is 0', async () => {
      const h = await create()
      const ch = channel()
      await h.engine.subscribe(ch)
      await h.engine.publish(ch, Buffer.from('live only'), 0)
      await h.engine.barrier()
      assert.deepEqual(h.texts(ch), ['live only'])
      assert.deepEqual(await h.engine.get([ch]), [null])
    })

    it('answers get with null in place of each channel without a stored payload', async () => {
      const h = await create()
      const stored = channel('stored')
      const other = channel('stored')
      await h.engine.publish(stored, Buffer.from('one'), 60)
      await h.engine.publish(other, Buffer.from('two'), 60)
      const result = await h.engine.get([channel('missing'), stored, channel('missing'), other])
      assert.deepEqual(result, [null, Buffer.from('one'), null, Buffer.from('two')])
      assert.deepEqual(await h.engine.get([]), [])
    })

    it('keeps a binary payload with 0xff bytes intact, live and stored', async () => {
      const h = await create()
      const ch = channel()
      await h.engine.subscribe(ch)
      await h.engine.publish(ch, ALL_BYTES, 60)
      await h.engine.barrier()
      assert.equal(h.received.length, 1)
      assert.deepEqual(h.received[0]?.payload, ALL_BYTES)
      const [stored] = await h.engine.get([ch])
      assert.deepEqual(stored, ALL_BYTES)
    })

    it('keeps an empty payload', async () => {
      const h = await create()
      const ch = channel()
      await h.engine.subscribe(ch)
      await h.engine.publish(ch, Buffer.alloc(0), 60)
      await h.engine.barrier()
      assert.equal(h.received.length, 1)
      assert.equal(h.received[0]?.payload.length, 0)
      assert.deepEqual(await h.engine.get([ch]), [Buffer.alloc(0)])
    })

    it('resolves barrier only after every message published before it was handled, in order', async () => {
      const h = await create()
      const ch = channel()
      await h.engine.subscribe(ch)
      const sent = Array.from({ length: 200 }, (_, i) => `message ${i}`)
      await Promise.all(sent.map((text) => h.engine.publish(ch, Buffer.from(text), 0)))
      await h.engine.barrier()
      assert.deepEqual(h.texts(ch), sent)
    })

    it('reports a user online at its first connection on a facility and overall, offline at its last', async () => {
      const { engine } = await create()
      const [room, hall] = [presenceSet(), presenceSet()]
      const [ann] = presenceUsers('ann')
      assert.deepEqual(await engine.presenceJoin(room, ann), both(true))
      assert.deepEqual(await engine.presenceJoin(room, ann), both(false))
      // Online overall already: a join on another facility is only that facility's.
      assert.deepEqual(await engine.presenceJoin(hall, ann), { overall: false, facility: true })
      assert.equal(await engine.presenceCount(room, ann), 2)
      assert.equal(await engine.presenceCount('', ann), 3)
      assert.deepEqual(await engine.presenceList(room), new Map([[ann, 2]]))
      assert.deepEqual(await engine.presenceLeave(room, ann), both(false))
      assert.equal(await engine.presenceCount(room, ann), 1)
      assert.deepEqual(await engine.presenceLeave(room, ann), { overall: false, facility: true })
      // Gone from the listing, not listed at 0; the other set kept its own count.
      assert.equal(await engine.presenceCount(room, ann), 0)
      assert.deepEqual(await engine.presenceList(room), new Map())
      assert.deepEqual(await engine.presenceList(hall), new Map([[ann, 1]]))
      assert.equal((await engine.presenceList('')).get(ann), 1)
      assert.deepEqual(await engine.presenceLeave(hall, ann), both(true))
      assert.equal(await engine.presenceCount('', ann), 0)
      assert.equal((await engine.presenceList('')).has(ann), false)
    })

    it('refuses a presence join or leave without a facility with WSF_INVALID_ARGUMENT', async () => {
      const { engine } = await create()
      const [ann] = presenceUsers('ann')
      const invalid = { name: 'InvalidArgumentError', code: 'WSF_INVALID_ARGUMENT' }
      await assert.rejects(engine.presenceJoin('', ann), invalid)
      await assert.rejects(engine.presenceLeave('', ann), invalid)
      assert.equal(await engine.presenceCount('', ann), 0)
    })

    it('answers the joins and leaves asked for at once in order, as if made one at a time', async () => {
      const { engine } = await create()
      const [room, hall] = [presenceSet(), presenceSet()]
      const [ann, bob, cy] = presenceUsers('ann', 'bob', 'cy')
      // Asked for in one tick: on Redis they share one batch, whose answers must still be each
      // change's own, with a user's changes applied in the order asked.
      const answers = await Promise.all([
        engine.presenceJoin(room, ann),
        engine.presenceJoin(room, ann),
        engine.presenceJoin(room, bob),
        engine.presenceLeave(room, ann),
        engine.presenceJoin(hall, ann),
        engine.presenceLeave(room, ann),
        engine.presenceLeave(hall, ann),
        engine.presenceLeave(room, bob),
        engine.presenceLeave(room, cy),
        engine.presenceJoin(room, cy),
      ])
      assert.deepEqual(
        answers.map((a) => [a.overall, a.facility]),
        [
          [true, true],
          [false, false],
          [true, true],
          [false, false],
          [false, true],
          [false, true],
          [true, true],
          [true, true],
          [false, false],
          [true, true],
        ],
      )
      // cy's leave without a join took nothing: its join afterwards counts from 0, in both sets.
      assert.deepEqual(await engine.presenceList(room), new Map([[cy, 1]]))
      assert.equal(await engine.presenceCount('', cy), 1)
      assert.deepEqual(await engine.presenceLeave(room, cy), both(true))
      assert.equal(await engine.presenceCount(room, cy), 0)
      assert.equal(await engine.presenceCount('', cy), 0)
    })

    describe('history', () => {
      const H = { size: 5, ttl: 60 }

      it('publishes with history marked with the epoch and consecutive offsets from 1', async () => {
        const h = await create()
        const ch = channel('hist')
        await h.engine.subscribe(ch)
        for (const text of ['a', 'b', 'c']) await h.engine.publish(ch, Buffer.from(text), 0, H)
        await h.engine.barrier()
        const live = h.received.map((d) => decodeChannelMessage(d.payload))
        assert.deepEqual(
          live.map((m) => [m.offset, m.payload.toString()]),
          [
            [1, 'a'],
            [2, 'b'],
            [3, 'c'],
          ],
        )
        const epochs = new Set(live.map((m) => m.epoch))
        assert.equal(epochs.size, 1)
        assert.match([...epochs][0]!, /^[0-9a-z]+$/)
      })

      it('reads the position and the entries after an offset, oldest first', async () => {
        const h = await create()
        const ch = channel('hist')
        for (const text of ['a', 'b', 'c']) await h.engine.publish(ch, Buffer.from(text), 0, H)
        const all = await h.engine.readHistory(ch, 0, 100)
        assert.equal(all.offset, 3)
        assert.deepEqual(
          all.entries.map((e) => [e.offset, e.payload.toString()]),
          [
            [1, 'a'],
            [2, 'b'],
            [3, 'c'],
          ],
        )
        const after = await h.engine.readHistory(ch, 2, 100)
        assert.deepEqual(
          after.entries.map((e) => e.payload.toString()),
          ['c'],
        )
        assert.equal(after.epoch, all.epoch)
        const position = await h.engine.readHistory(ch, null, 100)
        assert.deepEqual([position.offset, position.entries.length], [3, 0])
        assert.deepEqual((await h.engine.readHistory(ch, 3, 100)).entries, [])
      })

      it('gives a channel without history an epoch at offset 0 that its first publish keeps', async () => {
        const h = await create()
        const ch = channel('hist')
        const before = await h.engine.readHistory(ch, null, 10)
        assert.equal(before.offset, 0)
        await h.engine.publish(ch, Buffer.from('first'), 0, H)
        const after = await h.engine.readHistory(ch, 0, 10)
        assert.equal(after.epoch, before.epoch)
        assert.deepEqual(
          after.entries.map((e) => [e.offset, e.payload.toString()]),
          [[1, 'first']],
        )
      })

      it('keeps about `size` messages: the oldest are trimmed, offsets go on', async () => {
        const h = await create()
        const ch = channel('hist')
        const small = { size: 2, ttl: 60 }
        for (let i = 1; i <= 300; i++) await h.engine.publish(ch, Buffer.from(`m${i}`), 0, small)
        const read = await h.engine.readHistory(ch, 0, 1000)
        assert.equal(read.offset, 300)
        assert.ok(read.entries.length >= 2 && read.entries.length < 300, `${read.entries.length}`)
        assert.equal(read.entries.at(-1)?.payload.toString(), 'm300')
        assert.equal(read.entries[0]!.offset, 300 - read.entries.length + 1)
      })

      it('keeps binary payloads intact in history and stores the plain payload with expire', async () => {
        const h = await create()
        const ch = channel('hist')
        await h.engine.subscribe(ch)
        await h.engine.publish(ch, ALL_BYTES, 60, H)
        await h.engine.barrier()
        assert.deepEqual(decodeChannelMessage(h.received[0]!.payload).payload, ALL_BYTES)
        assert.deepEqual((await h.engine.readHistory(ch, 0, 10)).entries[0]?.payload, ALL_BYTES)
        assert.deepEqual(await h.engine.get([ch]), [ALL_BYTES])
      })

      it('publishes without history unmarked, and keeps the channels apart', async () => {
        const h = await create()
        const a = channel('hist')
        const b = channel('hist')
        await h.engine.subscribe(a)
        await h.engine.publish(a, Buffer.from('plain'), 0)
        await h.engine.publish(b, Buffer.from('other'), 0, H)
        await h.engine.barrier()
        assert.deepEqual(h.texts(a), ['plain'])
        assert.equal((await h.engine.readHistory(a, 0, 10)).offset, 0)
        assert.equal((await h.engine.readHistory(b, 0, 10)).offset, 1)
      })
    })

    it('can be closed more than once', async () => {
      const { engine } = await create()
      await engine.close()
      await engine.close()
    })

    it('rejects publish after close with code WSF_CLOSED', async () => {
      const { engine } = await create()
      await engine.close()
      await assert.rejects(engine.publish(channel(), Buffer.from('late'), 0), (err: unknown) => {
        assert.ok(err instanceof ClosedError)
        assert.equal(err.code, 'WSF_CLOSED')
        return true
      })
    })
  })
}

describe('RedisEngine on a real redis-server', () => {
  let server: RedisServer
  const open: RedisEngine[] = []

  before(async () => {
    server = await startRedis()
  })
  afterEach(async () => {
    await Promise.all(open.splice(0).map((engine) => engine.close()))
  })
  after(async () => {
    await server.stop()
  })

  async function create(): Promise<Harness & { engine: RedisEngine }> {
    const engine = await startRedisEngine(server.url)
    open.push(engine)
    return { ...harness(engine), engine }
  }

  /** A `RedisPresence` of a fresh process id on a raw client, with a fresh set to join. */
  async function withPresence(
    use: (t: {
      raw: Awaited<ReturnType<RedisServer['client']>>
      keys: ReturnType<typeof engineKeys>
      node: string
      presence: RedisPresence
      room: string
    }) => Promise<void>,
  ): Promise<void> {
    const raw = await server.client()
    try {
      const keys = engineKeys('')
      const node = `node-${presenceSet()}`
      const presence = new RedisPresence(raw as unknown as Commands, keys, node)
      await use({ raw, keys, node, presence, room: presenceSet() })
    } finally {
      await raw.close()
    }
  }

  it('holds exactly two connections once started, and none after close', async () => {
    const engine = new RedisEngine({ redis: server.url, prefix: '' })
    engine.onError(() => {})
    open.push(engine)
    assert.equal(engine.connectionCount, 0)
    await engine.start()
    assert.equal(engine.connectionCount, 2)
    await engine.close()
    assert.equal(engine.connectionCount, 0)
  })

  it('reads what is stored for the reads of one moment in one MGET, into one map', async () => {
    const { engine } = await create()
    const stored = channel('stored')
    const missing = channel('missing')
    await engine.publish(stored, Buffer.from('one'), 60)
    const inspect = await server.client()
    try {
      await inspect.configResetStat()
      const [a, b] = await Promise.all([engine.read([stored]), engine.read([missing, stored])])
      assert.equal(a, b)
      assert.deepEqual(a.get(stored), Buffer.from('one'))
      assert.equal(a.get(missing), null)
      assert.match(await inspect.info('commandstats'), /cmdstat_mget:calls=1,/)
      assert.equal((await engine.read([])).size, 0)
      assert.deepEqual(await engine.get([missing, stored]), [null, Buffer.from('one')])
    } finally {
      await inspect.close()
    }
  })

  it('sums the receivers every process recorded (2 + 3 = 5), whichever publishes', async () => {
    const one = await create()
    const two = await create()
    const ch = channel()
    await Promise.all([one.engine.subscribe(ch), two.engine.subscribe(ch)])
    await one.setCount(ch, 2)
    await two.setCount(ch, 3)
    assert.equal(await one.engine.publish(ch, Buffer.from('from one'), 0), 5)
    assert.equal(await two.engine.publish(ch, Buffer.from('from two'), 0), 5)
    await Promise.all([one.engine.barrier(), two.engine.barrier()])
    assert.deepEqual(one.texts(ch), ['from one', 'from two'])
    assert.deepEqual(two.texts(ch), ['from one', 'from two'])
  })

  it('rejects a receiver count cut by a lost connection with WSF_REDIS_UNAVAILABLE', async () => {
    const { engine } = await create()
    engine.onError(() => {})
    const admin = await server.client()
    try {
      // The count's MULTI … EXEC is held by Redis, then its connection is cut under it.
      await admin.sendCommand(['CLIENT', 'PAUSE', '5000', 'WRITE'])
      const counting = engine.setLocalCount(channel(), 1)
      counting.catch(() => {})
      await sleep(50)
      await admin.sendCommand(['CLIENT', 'KILL', 'TYPE', 'normal'])
      await assert.rejects(counting, (err: unknown) => {
        assert.ok(err instanceof EngineError, String(err))
        assert.equal(err.code, 'WSF_REDIS_UNAVAILABLE')
        return true
      })
    } finally {
      await admin.sendCommand(['CLIENT', 'UNPAUSE'])
      admin.destroy()
    }
  })

  it('shares presence between processes: the first join and the last leave anywhere report it', async () => {
    const one = await create()
    const two = await create()
    const room = presenceSet()
    const [ann] = presenceUsers('ann')
    assert.deepEqual(await one.engine.presenceJoin(room, ann), both(true))
    assert.deepEqual(await two.engine.presenceJoin(room, ann), both(false))
    assert.deepEqual(await one.engine.presenceList(room), new Map([[ann, 2]]))
    assert.equal(await two.engine.presenceCount('', ann), 2)
    assert.deepEqual(await one.engine.presenceLeave(room, ann), both(false))
    assert.equal(await two.engine.presenceCount(room, ann), 1)
    assert.deepEqual(await two.engine.presenceLeave(room, ann), both(true))
    assert.deepEqual(await one.engine.presenceList(room), new Map())
    assert.equal(await one.engine.presenceCount('', ann), 0)
  })

  it("does not take another process's connection for a leave whose entry was swept", async () => {
    const one = await create()
    const two = await create()
    const room = presenceSet()
    const [ann] = presenceUsers('ann')
    assert.deepEqual(await one.engine.presenceJoin(room, ann), both(true))
    // What a live process does for one that stopped refreshing (paused, not dead): its share
    // leaves the cluster-wide counts and its own entry goes.
    const keys = engineKeys('')
    const raw = await server.client()
    try {
      await raw.hDel(keys.presenceNode + one.engine.nodeId, presenceField(room, ann))
      await raw.hDel(keys.presence + room, ann)
      await raw.hDel(keys.presence, ann)
    } finally {
      await raw.close()
    }
    assert.deepEqual(await two.engine.presenceJoin(room, ann), both(true))
    // one's connection closes now: its entry is gone, so two's connection keeps ann online.
    assert.deepEqual(await one.engine.presenceLeave(room, ann), both(false))
    assert.deepEqual(await two.engine.presenceList(room), new Map([[ann, 1]]))
    assert.equal(await two.engine.presenceCount('', ann), 1)
    assert.deepEqual(await two.engine.presenceLeave(room, ann), both(true))
    assert.equal(await one.engine.presenceCount(room, ann), 0)
    assert.equal(await one.engine.presenceCount('', ann), 0)
  })

  it('stops counting a process once it closed', async () => {
    const one = await create()
    const two = await create()
    const ch = channel()
    await Promise.all([one.engine.subscribe(ch), two.engine.subscribe(ch)])
    await one.setCount(ch, 2)
    await two.setCount(ch, 3)
    await two.engine.close()
    assert.equal(await one.engine.publish(ch, Buffer.from('x'), 0), 2)
  })

  it('takes the presence a process still holds out at a graceful close, reporting its leaves there', async () => {
    const one = await create()
    const two = await create()
    const [room, hall] = [presenceSet(), presenceSet()]
    const [ann, bob, cy] = presenceUsers('ann', 'bob', 'cy')
    // ann's (on two facilities) and bob's connections on one were never untracked (their leaves
    // failed, or the engine is closed under them); cy is on both processes.
    for (const [facility, user] of [
      [room, ann],
      [hall, ann],
      [room, bob],
      [room, cy],
    ] as const) {
      await one.engine.presenceJoin(facility, user)
    }
    await two.engine.presenceJoin(room, cy)
    const heard = channel()
    await two.engine.subscribe(heard)
    const names = new Map([
      [room, 'room'],
      [hall, 'hall'],
      ['', 'overall'],
      [ann, 'ann'],
      [bob, 'bob'],
      [cy, 'cy'],
    ])
    const swept: string[] = []
    one.engine.onPresenceSwept((set, user) => {
      const leave = `${names.get(set) ?? set}/${names.get(user) ?? user}`
      swept.push(leave)
      // What the presence facility does with it: publishes the leave, which still goes out.
      void one.engine.publish(heard, Buffer.from(`left ${leave}`), 0)
    })
    const keys = engineKeys('')
    const raw = await server.client()
    try {
      // Without its cached scripts Redis answers the publishes' EVALSHA with NOSCRIPT, and each
      // needs an EVAL after it: close() still lets them finish.
      await raw.scriptFlush()
      await one.engine.close()
      // ann went offline overall once, though two of her facilities' counts fell to 0.
      const leaves = ['hall/ann', 'overall/ann', 'overall/bob', 'room/ann', 'room/bob']
      assert.deepEqual(swept.sort(), leaves)
      assert.deepEqual(await two.engine.presenceList(room), new Map([[cy, 1]]))
      assert.deepEqual(await two.engine.presenceList(hall), new Map())
      assert.equal(await two.engine.presenceCount('', cy), 1)
      assert.equal(await two.engine.presenceCount('', ann), 0)
      await two.engine.barrier()
      assert.deepEqual(
        two.texts(heard).sort(),
        leaves.map((leave) => `left ${leave}`),
      )
      assert.equal(await raw.exists(keys.presenceNode + one.engine.nodeId), 0)
      assert.equal(await raw.exists(keys.node + one.engine.nodeId), 0)
      assert.equal(await raw.sIsMember(keys.nodes, one.engine.nodeId), 0)
    } finally {
      await raw.close()
    }
    await assert.rejects(one.engine.presenceJoin(room, ann), ClosedError)
    // Nothing is left for a sweep to report again.
    assert.deepEqual(await two.engine.presenceLeave(room, cy), both(true))
  })

  it('sweeps up a dead process whose presence hash has fields of the overall set too (0.1.0)', async () => {
    const engine = new RedisEngine({ redis: server.url, prefix: '', nodeTtl: 400 })
    engine.onError(() => {})
    open.push(engine)
    await engine.start()
    const room = presenceSet()
    const [ann, bob] = presenceUsers('ann', 'bob')
    const swept: string[] = []
    engine.onPresenceSwept((set, user) => swept.push(`${set === room ? 'room' : set}/${user}`))
    // bob is online on the live process; ann and bob had a connection each on a dead process of
    // 0.1.0, which kept a field per set, the overall set ('') included.
    await engine.presenceJoin(room, bob)
    const keys = engineKeys('')
    const dead = `old-${ann}`
    const raw = await server.client()
    try {
      await raw.hSet(keys.presenceNode + dead, {
        [presenceField(room, ann)]: 1,
        [presenceField('', ann)]: 1,
        [presenceField(room, bob)]: 1,
        [presenceField('', bob)]: 1,
      })
      for (const user of [ann, bob]) {
        await raw.hIncrBy(keys.presence + room, user, 1)
        await raw.hIncrBy(keys.presence, user, 1)
      }
      await raw.sAdd(keys.nodes, dead)
      // The live process's refresh (every 100 ms with this TTL) finds no entry of the dead one.
      await eventually(async () => (await raw.sIsMember(keys.nodes, dead)) === 0)
      assert.deepEqual(swept.sort(), [`/${ann}`, `room/${ann}`])
      assert.equal(await engine.presenceCount('', ann), 0)
      assert.equal(await engine.presenceCount(room, ann), 0)
      // Each overall share was taken once, not once more for the facility's field.
      assert.equal(await engine.presenceCount('', bob), 1)
      assert.equal(await engine.presenceCount(room, bob), 1)
      assert.equal(await raw.exists(keys.presenceNode + dead), 0)
    } finally {
      await raw.close()
    }
  })

  it('loads the function library once history is used (a publish or a read), never for plain publishes', async () => {
    const raw = await server.client()
    try {
      const libraries = async () =>
        ((await raw.sendCommand(['FUNCTION', 'LIST'])) as unknown[]).length
      await raw.sendCommand(['FUNCTION', 'FLUSH'])
      await raw.configResetStat()
      const writer = await create()
      await writer.engine.publish(channel(), Buffer.from('plain'), 60)
      await writer.engine.barrier()
      assert.equal(await libraries(), 0)
      const H = { size: 10, ttl: 60 }
      await writer.engine.publish(channel('hist'), Buffer.from('one'), 0, H)
      await writer.engine.publish(channel('hist'), Buffer.from('two'), 0, H)
      assert.equal(await libraries(), 1)
      assert.match(await raw.info('commandstats'), /cmdstat_function\|load:calls=1,/)
      // Another process that only reads history loads it too (Redis may have lost it).
      await raw.sendCommand(['FUNCTION', 'FLUSH'])
      const reader = await create()
      await reader.engine.readHistory(channel('hist'), 0, 10)
      await eventually(async () => (await libraries()) === 1)
    } finally {
      await raw.close()
    }
  })

  it('keeps a field per channel with receivers in its entry, none for a count back at 0', async () => {
    const h = await create()
    const [kept, emptied] = [channel(), channel()]
    await h.setCount(kept, 2)
    await h.setCount(emptied, 3)
    const raw = await server.client()
    try {
      const nodeKey = engineKeys('').node + h.engine.nodeId
      assert.equal(await raw.hGet(nodeKey, emptied), '3')
      await h.setCount(emptied, 0)
      assert.equal(await raw.hExists(nodeKey, emptied), 0)
      assert.equal(await raw.hGet(nodeKey, kept), '2')
    } finally {
      await raw.close()
    }
  })

  it('writes its entry and presence again when Redis lost them (a restart without persistence)', async () => {
    const engine = new RedisEngine({ redis: server.url, prefix: '', nodeTtl: 400 })
    engine.onError(() => {})
    open.push(engine)
    await engine.start()
    const h = harness(engine)
    const [kept, emptied, room, hall] = [channel(), channel(), presenceSet(), presenceSet()]
    const [ann, ghost] = presenceUsers('ann', 'ghost')
    const swept: string[] = []
    engine.onPresenceSwept((set, user) => swept.push(`${set === hall ? 'hall' : set}/${user}`))
    await h.setCount(kept, 2)
    await h.setCount(emptied, 1)
    await h.setCount(emptied, 0)
    await engine.presenceJoin(room, ann)
    await engine.presenceJoin(hall, ann)
    const keys = engineKeys('')
    const nodeKey = keys.node + engine.nodeId
    const presenceKey = keys.presenceNode + engine.nodeId
    const raw = await server.client()
    try {
      // What a restarted Redis holds of this process: nothing, but for a connection of ghost's
      // whose leave it never got (written as this process counts it: its field and both sets).
      // In one transaction, as a restart loses it all at once: a refresh between these writes
      // would reconcile before ghost's and find the entry there after them.
      await raw
        .multi()
        .del([nodeKey, presenceKey, keys.presence + room, keys.presence + hall])
        .hDel(keys.presence, ann)
        .hSet(presenceKey, presenceField(hall, ghost), 1)
        .hIncrBy(keys.presence + hall, ghost, 1)
        .hIncrBy(keys.presence, ghost, 1)
        .sRem(keys.nodes, engine.nodeId)
        .exec()
      // The refresh (every 100 ms with this TTL) finds the entry gone and writes it all again.
      await eventually(async () => (await raw.sIsMember(keys.nodes, engine.nodeId)) === 1)
      await eventually(async () => (await engine.presenceCount(room, ann)) === 1)
      assert.deepEqual(await raw.hGetAll(nodeKey), { '.node': '1', [kept]: '2' })
      const ttl = await raw.pTTL(nodeKey)
      assert.ok(ttl > 0 && ttl <= 400, `PTTL ${ttl}`)
      assert.equal(await engine.presenceCount('', ann), 2)
      assert.equal(await engine.presenceCount(hall, ann), 1)
      assert.deepEqual(await raw.hGetAll(presenceKey), {
        [presenceField(room, ann)]: '1',
        [presenceField(hall, ann)]: '1',
      })
      // ghost's connection is not held here: taken out of both sets, and reported.
      assert.equal(await engine.presenceCount(hall, ghost), 0)
      assert.equal(await engine.presenceCount('', ghost), 0)
      assert.deepEqual(swept.sort(), [`/${ghost}`, `hall/${ghost}`])
    } finally {
      await raw.close()
    }
  })

  it("reconciles a process's share before the joins still queued, which then count once", async () => {
    await withPresence(async ({ raw, keys, node, presence, room }) => {
      const [ann, bob] = presenceUsers('ann', 'bob')
      await presence.join(room, ann, rethrow)
      // A batch ran just now: bob's join waits out the spacing, and the reconcile asked for
      // meanwhile (after a reconnect) must not write bob's connection as well as the join does.
      const joined = presence.join(room, bob, rethrow)
      const left = await presence.reconcile()
      assert.deepEqual(await joined, both(true))
      assert.deepEqual(left, [])
      assert.equal(await presence.count(room, bob), 1)
      assert.equal(await presence.count('', bob), 1)
      assert.equal(await presence.count(room, ann), 1)
      // What Redis lost is written back by the next one, from the connections held.
      await raw.del([keys.presenceNode + node, keys.presence + room])
      await raw.hDel(keys.presence, [ann, bob])
      assert.deepEqual(await presence.reconcile(), [])
      assert.deepEqual(
        await presence.list(room),
        new Map([
          [ann, 1],
          [bob, 1],
        ]),
      )
      assert.equal(await presence.count('', ann), 1)
    })
  })

  it('reconciles to exactly the connections held: no field is left for a user who joined and left', async () => {
    await withPresence(async ({ raw, keys, node, presence, room }) => {
      const [ann, bob] = presenceUsers('ann', 'bob')
      await presence.join(room, ann, rethrow)
      await presence.join(room, bob, rethrow)
      await presence.leave(room, ann, rethrow)
      assert.deepEqual(await presence.reconcile(), [])
      assert.deepEqual(await raw.hGetAll(keys.presenceNode + node), {
        [presenceField(room, bob)]: '1',
      })
      assert.deepEqual(await presence.list(room), new Map([[bob, 1]]))
    })
  })

  it('rejects a reconcile that Redis fails, with the error, and runs the next one', async () => {
    await withPresence(async ({ raw, keys, node, presence, room }) => {
      const [ann] = presenceUsers('ann')
      await presence.join(room, ann, rethrow)
      // The process's hash is not a hash now: the script's HGETALL fails.
      await raw.del(keys.presenceNode + node)
      await raw.set(keys.presenceNode + node, 'not a hash')
      await assert.rejects(presence.reconcile(), /WRONGTYPE/)
      await raw.del(keys.presenceNode + node)
      assert.deepEqual(await presence.reconcile(), [])
      assert.deepEqual(await raw.hGetAll(keys.presenceNode + node), {
        [presenceField(room, ann)]: '1',
      })
    })
  })

  it('rejects reads of stored messages and barriers after close with WSF_CLOSED', async () => {
    const { engine } = await create()
    await engine.close()
    await assert.rejects(engine.get([channel()]), ClosedError)
    await assert.rejects(engine.read([channel()]), ClosedError)
    await assert.rejects(engine.barrier(), ClosedError)
  })

  it('reads a payload SET by another Redis client under the channel name (ws4redis layout)', async () => {
    const h = await create()
    const raw = await server.client()
    try {
      await raw.set('ws4redis:user:john:chat', 'stored by Django')
      const [stored] = await h.engine.get(['ws4redis:user:john:chat'])
      assert.equal(stored?.toString('utf8'), 'stored by Django')
    } finally {
      raw.destroy()
    }
  })

  it('stores under exactly the channel name with a TTL of expire seconds', async () => {
    const h = await create()
    const raw = await server.client()
    try {
      const ch = channel()
      await h.engine.publish(ch, Buffer.from('persisted'), 30)
      assert.equal(await raw.get(ch), 'persisted')
      const ttl = await raw.pTTL(ch)
      assert.ok(ttl > 0 && ttl <= 30_000, `PTTL ${ttl}`)

      const short = channel()
      await h.engine.publish(short, Buffer.from('brief'), 1)
      const shortTtl = await raw.pTTL(short)
      assert.ok(shortTtl > 0 && shortTtl <= 1000, `PTTL ${shortTtl}`)
    } finally {
      raw.destroy()
    }
  })

  it('sets no key when expire is 0', async () => {
    const h = await create()
    const raw = await server.client()
    try {
      const ch = channel()
      await h.engine.publish(ch, Buffer.from('live only'), 0)
      assert.equal(await raw.exists(ch), 0)
    } finally {
      raw.destroy()
    }
  })

  it('delivers a message another Redis client PUBLISHed on the channel name', async () => {
    const h = await create()
    const raw = await server.client()
    try {
      await h.engine.subscribe('ws4redis:broadcast:chat')
      assert.equal(await raw.publish('ws4redis:broadcast:chat', 'from RedisPublisher'), 1)
      await h.engine.barrier()
      assert.deepEqual(h.texts('ws4redis:broadcast:chat'), ['from RedisPublisher'])
    } finally {
      raw.destroy()
    }
  })

  it('publishes on exactly the channel name, for any other Redis subscriber', async () => {
    const h = await create()
    const raw = await server.client()
    try {
      const seen: [string, string][] = []
      await raw.subscribe('broadcast:news', (message, ch) => seen.push([ch, message]))
      await h.engine.publish('broadcast:news', Buffer.from('hello'), 0)
      await eventually(() => seen.length === 1)
      assert.deepEqual(seen, [['broadcast:news', 'hello']])
    } finally {
      raw.destroy()
    }
  })

  it(
    'rejects start with code WSF_REDIS_UNAVAILABLE when nothing listens',
    { timeout: 30_000 },
    async () => {
      const port = await freePort()
      const engine = new RedisEngine({ redis: `redis://127.0.0.1:${port}`, prefix: '' })
      engine.onError(() => {})
      open.push(engine)
      await assert.rejects(engine.start(), (err: unknown) => {
        assert.ok(err instanceof EngineError)
        assert.equal(err.code, 'WSF_REDIS_UNAVAILABLE')
        return true
      })
      assert.equal(engine.connectionCount, 0)
    },
  )

  it('starts on a later attempt once Redis is reachable', { timeout: 30_000 }, async () => {
    const own = await startRedis()
    try {
      await own.stop()
      const engine = new RedisEngine({ redis: own.url, prefix: '' })
      engine.onError(() => {})
      open.push(engine)
      await assert.rejects(engine.start(), { code: 'WSF_REDIS_UNAVAILABLE' })
      await own.restart()
      await engine.start()
      assert.equal(engine.connectionCount, 2)
      const h = harness(engine)
      await engine.subscribe('broadcast:late')
      await engine.publish('broadcast:late', Buffer.from('works'), 0)
      await engine.barrier()
      assert.deepEqual(h.texts('broadcast:late'), ['works'])
      await engine.close()
    } finally {
      await own.stop()
    }
  })
})
