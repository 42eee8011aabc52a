import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { BatchedReads, Coalescer } from '../src/engine/coalesce.js'
import { createBroker } from '../src/index.js'
import { type RedisServer, startRedis } from './helpers/redis.js'
import { closeAll, connect, startBroker, type TestClient } from './helpers/ws.js'

/** A task whose runs end when the test says so. */
function gated() {
  const runs: { started: number; end: (v?: unknown) => void; fail: (e: Error) => void }[] = []
  let started = 0
  const task = () =>
    new Promise<number>((resolve, reject) => {
      const n = ++started
      runs.push({ started: n, end: () => resolve(n), fail: reject })
    })
  return { runs, task }
}
const tick = () => new Promise((r) => setImmediate(r))

describe('Coalescer', () => {
  it('shares a run among the calls of one tick, and starts the next only when it has ended', async () => {
    const { runs, task } = gated()
    const c = new Coalescer(task)
    const a = c.run()
    const b = c.run()
    await tick()
    assert.equal(runs.length, 1)
    // Calls while run 1 is in flight wait for run 2, which starts after run 1 ends: a barrier
    // asked for now must not be answered by a command sent before it was asked for.
    const later = [c.run(), c.run(), c.run()]
    await tick()
    assert.equal(runs.length, 1)
    runs[0]!.end()
    assert.deepEqual(await Promise.all([a, b]), [1, 1])
    await tick()
    assert.equal(runs.length, 2)
    runs[1]!.end()
    assert.deepEqual(await Promise.all(later), [2, 2, 2])
  })

  it('under load starts runs `spacing` ms apart, and a call at idle at once', async () => {
    const starts: number[] = []
    const c = new Coalescer(async () => void starts.push(performance.now()), 60)
    // At idle: started before anything else of the event loop runs.
    const first = c.run()
    await tick()
    assert.equal(starts.length, 1)
    await first
    // Right after: the next run waits out the spacing, and every call meanwhile shares it.
    const shared = [c.run(), c.run()]
    await tick()
    assert.equal(starts.length, 1)
    await Promise.all(shared)
    assert.equal(starts.length, 2)
    // Timers may fire up to a millisecond early against performance.now().
    assert.ok(starts[1]! - starts[0]! >= 58, `${starts[1]! - starts[0]!} ms apart`)
    // Long after the last run: at once again.
    await new Promise((r) => setTimeout(r, 70))
    void c.run()
    await tick()
    assert.equal(starts.length, 3)
  })

  it('marks a shared run handled: a caller may await its failure later', async () => {
    const unhandled: unknown[] = []
    const onUnhandled = (reason: unknown) => unhandled.push(reason)
    process.on('unhandledRejection', onUnhandled)
    try {
      const c = new Coalescer(() => Promise.reject(new Error('down')))
      const late = c.run()
      // Turns of the event loop pass before the caller looks (an upgrade awaits its count last).
      await tick()
      await tick()
      assert.deepEqual(unhandled, [])
      await assert.rejects(late, /down/)
    } finally {
      process.off('unhandledRejection', onUnhandled)
    }
  })

  it('rejects the callers of a failed run and still runs the next', async () => {
    const { runs, task } = gated()
    const c = new Coalescer(task)
    const first = c.run()
    await tick()
    const second = c.run()
    runs[0]!.fail(new Error('down'))
    await assert.rejects(first, /down/)
    await tick()
    runs[1]!.end()
    assert.equal(await second, 2)
  })
})

describe('BatchedReads', () => {
  it('reads every key asked for meanwhile in one read, and gives each caller its own keys', async () => {
    const reads: string[][] = []
    const gate: (() => void)[] = []
    const batched = new BatchedReads<string>(async (keys) => {
      reads.push(keys)
      await new Promise<void>((r) => gate.push(r))
      return keys.map((k) => `v:${k}`)
    })
    const a = batched.get(['x', 'y'])
    await tick()
    const b = batched.get(['y', 'z'])
    const c = batched.get(['w'])
    await tick()
    gate.shift()!()
    assert.deepEqual(await a, ['v:x', 'v:y'])
    await tick()
    assert.deepEqual(reads, [
      ['x', 'y'],
      ['y', 'z', 'w'],
    ])
    gate.shift()!()
    assert.deepEqual(await Promise.all([b, c]), [['v:y', 'v:z'], ['v:w']])
  })
  it('gives the callers of one read its one map, holding every key read with theirs', async () => {
    const reads: string[][] = []
    const batched = new BatchedReads<string>(async (keys) => {
      reads.push(keys)
      return keys.map((k) => `v:${k}`)
    })
    const a = batched.read(['x', 'y'])
    const b = batched.read(['y', 'z'])
    const [ma, mb] = await Promise.all([a, b])
    assert.equal(ma, mb)
    assert.deepEqual(
      [...ma],
      [
        ['x', 'v:x'],
        ['y', 'v:y'],
        ['z', 'v:z'],
      ],
    )
    // A read asked for once that one is done is a read of its own.
    const mc = await batched.read(['w'])
    assert.notEqual(mc, ma)
    assert.deepEqual([...mc], [['w', 'v:w']])
    assert.deepEqual(reads, [['x', 'y', 'z'], ['w']])
  })
})

describe('a connection storm on Redis', () => {
  it('shares count flushes, replay reads, barriers and presence writes among concurrent upgrades', async () => {
    const redis: RedisServer = await startRedis()
    const server = await startBroker({
      redis: redis.url,
      presence: true,
      identify: (req) => ({ user: new URL(req.url!, 'http://x').searchParams.get('u') }),
    })
    const inspect = await redis.client()
    // Calls per command name (INFO commandstats), counted from a reset.
    const calls = async (name: string) =>
      Number(
        new RegExp(`cmdstat_${name}:calls=(\\d+)`).exec(await inspect.info('commandstats'))?.[1] ??
          0,
      )
    const clients: TestClient[] = []
    try {
      const n = 300
      // A stored message to replay: each upgrade then needs the barrier after its read too.
      await server.broker.publish(['broadcast:storm'], 'kept', { expire: 60 })
      await inspect.configResetStat()
      // Redis holds every command for a moment, as a loaded one would: all upgrades arrive while
      // the first ones' round trips are out, so what they ask for must be shared.
      await inspect.sendCommand(['CLIENT', 'PAUSE', '300', 'ALL'])
      clients.push(
        ...(await Promise.all(
          Array.from({ length: n }, (_, i) =>
            connect(server.url(`/ws/storm?subscribe-broadcast&subscribe-user&u=u${i}`)),
          ),
        )),
      )
      // One at a time, each upgrade would send a count flush (MULTI … EXEC), an MGET of the
      // persisted messages, a barrier PING (something stored is replayed) and two presence
      // scripts; shared, far fewer go out.
      const sent = {
        multi: await calls('multi'),
        mget: await calls('mget'),
        ping: await calls('ping'),
        evalsha: await calls('evalsha'),
      }
      for (const [name, count] of Object.entries(sent))
        assert.ok(count < n / 10, `${count} ${name} for ${n} upgrades: ${JSON.stringify(sent)}`)
      assert.ok(sent.mget > 0 && sent.evalsha > 0 && sent.ping > 0, JSON.stringify(sent))
      // Still exact: every user online once, every count right.
      assert.equal((await server.broker.presence.list('storm')).length, n)
      const receivers = await server.broker.publish(['broadcast:storm'], 'hello')
      assert.equal(receivers, n)
      for (const c of clients) await c.waitFor(2)
      for (const c of clients) assert.deepEqual(c.texts, ['kept', 'hello'])
    } finally {
      await closeAll(...clients)
      await inspect.close()
      await server.close()
      await redis.stop()
    }
  })

  it('keeps the memory engine unchanged (no batching needed there)', async () => {
    const broker = createBroker()
    await broker.ready()
    assert.deepEqual(await broker.engine.get(['nothing']), [null])
    await broker.close()
  })
})
