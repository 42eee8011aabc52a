import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import type { Connection } from '../../src/connection/connection.js'
import { HttpError } from '../../src/errors.js'
import type { FacilityContext } from '../../src/facility/definition.js'
import { harness, type OwnerHarness, tick } from '../helpers/owner.js'
import { eventually, sleep } from '../helpers/ws.js'

/** A publish the test answers by hand. */
interface Pending {
  channel: string
  payload: Buffer
  resolve: () => void
  reject: (err: Error) => void
}

/** Makes the harness's publishes wait for the test; returns them as they come. */
function holdPublishes(h: OwnerHarness): Pending[] {
  const pending: Pending[] = []
  h.publishImpl = (channel, payload) =>
    new Promise<number>((resolve, reject) =>
      pending.push({ channel, payload, resolve: () => resolve(1), reject }),
    )
  return pending
}

const texts = (h: OwnerHarness): string[] => h.published.map((p) => p.payload.toString())

describe('Publishing', () => {
  let h: OwnerHarness
  before(async () => (h = await harness({ publishRate: 0 })))
  after(() => h.close())
  const reset = (): void => {
    h.published.length = 0
    h.errors.length = 0
    h.received = 0
    h.publishImpl = (channel, payload, expire) => h.engine.publish(channel, payload, expire)
  }

  it('publishes a client message on every publish channel, with the facility expire', async () => {
    reset()
    const a = await h.open({ publish: ['p1', 'p2'], definition: { expire: 7 } }, 'ws')
    await a.ws!.send('hello')
    await eventually(() => h.published.length === 2)
    assert.deepEqual(
      h.published.map((p) => [p.channel, p.payload.toString(), p.expire]),
      [
        ['p1', 'hello', 7],
        ['p2', 'hello', 7],
      ],
    )
    assert.equal(h.received, 1, 'counted once, not per channel')
    a.owner.terminate()
  })

  it('counts a message without publish channels and publishes nothing', async () => {
    reset()
    const a = await h.open({ publish: [] }, 'ws')
    await a.ws!.send('hello')
    await eventually(() => h.received === 1)
    await tick()
    assert.deepEqual(h.published, [])
    assert.equal(h.budget.total, 0)
    a.owner.terminate()
  })

  it('publishes binary messages verbatim, without a mark', async () => {
    reset()
    const a = await h.open({ publish: ['p'] }, 'ws')
    await a.ws!.send(Buffer.from([1, 2]), true)
    await eventually(() => h.published.length === 1)
    assert.deepEqual(h.published[0]!.payload, Buffer.from([1, 2]))
    a.owner.terminate()
  })

  it('takes no message before the connection is open', async () => {
    reset()
    const a = await h.upgrading({ publish: ['p'] })
    a.owner.received(Buffer.from('early'), false)
    await tick()
    assert.deepEqual(h.published, [])
    assert.equal(h.received, 0)
    a.owner.abort(new HttpError(400, 'x'))
  })

  it('takes no message once closing', async () => {
    reset()
    const a = await h.open({ publish: ['p'] })
    a.owner.close(1000, '')
    a.owner.received(Buffer.from('late'), false)
    await tick()
    assert.deepEqual(h.published, [])
    a.owner.terminate()
  })

  describe('onMessage', () => {
    it('hands the hook the connection, the text and the context; publishes what passes', async () => {
      reset()
      const seen: [Connection, unknown, FacilityContext][] = []
      const definition = {
        onMessage: (c: Connection, m: unknown, ctx: FacilityContext) => {
          seen.push([c, m, ctx])
          return m !== 'drop'
        },
      }
      const a = await h.open({ publish: ['p'], definition }, 'ws')
      await a.ws!.send('keep')
      await a.ws!.send('drop')
      await a.ws!.send('more')
      await eventually(() => seen.length === 3)
      await tick()
      assert.deepEqual(texts(h), ['keep', 'more'])
      assert.equal(seen[0]![0], a.owner.connection)
      assert.equal(seen[0]![1], 'keep', 'raw text arrives as a string')
      assert.equal(seen[0]![2].facility, 'f')
      assert.equal(h.received, 2, 'a message the hook handled is not counted as published')
      a.owner.terminate()
    })

    it('publishes when the hook returns nothing', async () => {
      reset()
      const a = await h.open({ publish: ['p'], definition: { onMessage: () => {} } }, 'ws')
      await a.ws!.send('x')
      await eventually(() => h.published.length === 1)
      a.owner.terminate()
    })

    it('hands binary messages to the hook as bytes, json data as the parsed value', async () => {
      reset()
      const seen: unknown[] = []
      const onMessage = (_c: Connection, m: unknown) => void seen.push(m)
      const a = await h.open({ publish: ['p'], definition: { onMessage } }, 'ws')
      await a.ws!.send(Buffer.from([7]), true)
      const j = await h.open({ publish: ['p'], definition: { onMessage, format: 'json' } }, 'ws')
      await j.ws!.send('{"type":"data","data":{"n":1}}')
      await eventually(() => seen.length === 2)
      assert.ok(Buffer.isBuffer(seen[0]))
      assert.deepEqual([...(seen[0] as Buffer)], [7])
      assert.deepEqual(seen[1], { n: 1 })
      await eventually(() => h.published.length === 2)
      assert.equal(h.published[1]!.payload.toString(), '{"n":1}')
      a.owner.terminate()
      j.owner.terminate()
    })

    it('runs an async hook one message at a time, in order', async () => {
      reset()
      let active = 0
      let most = 0
      const onMessage = async (_c: Connection, m: unknown) => {
        active++
        most = Math.max(most, active)
        await sleep(m === 'slow' ? 30 : 1)
        active--
      }
      const a = await h.open({ publish: ['p'], definition: { onMessage } }, 'ws')
      await a.ws!.send('slow')
      await a.ws!.send('fast')
      await a.ws!.send('last')
      await eventually(() => h.published.length === 3)
      assert.deepEqual(texts(h), ['slow', 'fast', 'last'])
      assert.equal(most, 1)
      a.owner.terminate()
    })

    it('chains a message that arrives while an earlier one is still in the hook', async () => {
      reset()
      const gates = new Map<string, () => void>()
      const entered: string[] = []
      const onMessage = (_c: Connection, m: unknown) =>
        new Promise<void>((resolve) => {
          entered.push(m as string)
          gates.set(m as string, resolve)
        })
      const a = await h.open({ publish: ['p'], definition: { onMessage } }, 'ws')
      await a.ws!.send('m1')
      await a.ws!.send('m2')
      await eventually(() => entered.length === 1)
      gates.get('m1')!()
      await eventually(() => entered.length === 2)
      // m1 is done, m2 is in the hook: m3 waits for m2, not for m1's chain alone.
      await a.ws!.send('m3')
      await eventually(() => h.received === 1)
      await sleep(20)
      assert.deepEqual(entered, ['m1', 'm2'])
      gates.get('m2')!()
      await eventually(() => entered.length === 3)
      gates.get('m3')!()
      await eventually(() => h.published.length === 3)
      assert.deepEqual(texts(h), ['m1', 'm2', 'm3'])
      a.owner.terminate()
    })

    it('reports a hook that throws and publishes nothing for that message', async () => {
      reset()
      const onMessage = (_c: Connection, m: unknown) => {
        if (m === 'bad') throw new Error('hook failed')
      }
      const a = await h.open({ publish: ['p'], definition: { onMessage } }, 'ws')
      await a.ws!.send('bad')
      await a.ws!.send('good')
      await eventually(() => h.published.length === 1)
      assert.deepEqual(texts(h), ['good'])
      assert.deepEqual(
        h.errors.map((e) => (e as Error).message),
        ['hook failed'],
      )
      assert.equal(a.owner.state, 'open')
      a.owner.terminate()
    })
  })

  describe('own messages', () => {
    it('expects its own copy back on channels it subscribes, unless echo is on', async () => {
      reset()
      const quiet = await h.open({ subscribe: ['e'], publish: ['e'] }, 'ws')
      const loud = await h.open({ subscribe: ['e2'], publish: ['e2'], echo: true }, 'ws')
      await quiet.ws!.send('q')
      await loud.ws!.send('l')
      await loud.ws!.waitFor(1)
      void h.engine.publish('e', Buffer.from('after'), 0)
      await quiet.ws!.waitFor(1)
      assert.deepEqual(quiet.ws!.texts, ['after'], 'its own copy was not delivered')
      assert.deepEqual(loud.ws!.texts, ['l'])
      quiet.owner.terminate()
      loud.owner.terminate()
    })
  })

  describe('flags', () => {
    it('is token-authenticated as the upgrade decided', async () => {
      const a = await h.open({ tokenAuthenticated: true })
      const b = await h.open({})
      assert.equal(a.owner.tokenAuthenticated, true)
      assert.equal(b.owner.tokenAuthenticated, false)
      a.owner.terminate()
      b.owner.terminate()
    })

    it('is alive when it opens, and again after a message or a pong', async () => {
      const a = await h.open({})
      a.owner.heartbeat()
      assert.equal(a.owner.state, 'open', 'alive from the start')
      a.owner.received(Buffer.from('x'), false)
      a.owner.heartbeat()
      assert.equal(a.owner.state, 'open', 'a message counts')
      a.owner.answered()
      a.owner.heartbeat()
      assert.equal(a.owner.state, 'open', 'a pong counts')
      a.owner.heartbeat()
      assert.equal(a.owner.state, 'closed')
    })
  })

  describe('stored messages', () => {
    it('closes a raw connection with 1009 for a message past maxStoredMessage', async () => {
      reset()
      const definition = { expire: 5, maxStoredMessage: 4 }
      const a = await h.open({ publish: ['p'], definition }, 'ws')
      await a.ws!.send('1234')
      await eventually(() => h.published.length === 1)
      const closed = a.ws!.closedByServer()
      await a.ws!.send('12345')
      assert.deepEqual(await closed, { code: 1009, reason: 'message too large to store' })
      assert.deepEqual(texts(h), ['1234'])
      assert.equal(h.received, 1)
    })

    it('answers message_too_large on a json facility and keeps the connection', async () => {
      reset()
      const definition = { expire: 5, maxStoredMessage: 3, format: 'json' as const }
      const a = await h.open({ publish: ['p'], definition }, 'ws')
      await a.ws!.send('{"type":"data","data":1234}')
      await a.ws!.waitFor(1)
      assert.deepEqual(JSON.parse(a.ws!.texts[0]!), {
        type: 'error',
        code: 'message_too_large',
        detail: 'messages stored on this facility are limited to 3 bytes',
      })
      assert.deepEqual(h.published, [])
      assert.equal(a.owner.state, 'open')
      a.owner.terminate()
    })

    it('does not limit messages on facilities that store nothing', async () => {
      reset()
      const a = await h.open({ publish: ['p'], definition: { maxStoredMessage: 1 } }, 'ws')
      await a.ws!.send('12345')
      await eventually(() => h.published.length === 1)
      a.owner.terminate()
    })
  })

  describe('failures', () => {
    it('closes with 1011 and reports the error when a publish fails', async () => {
      reset()
      const pending = holdPublishes(h)
      const a = await h.open({ publish: ['p'] }, 'ws')
      const closed = a.ws!.closedByServer()
      await a.ws!.send('x')
      await eventually(() => pending.length === 1)
      pending[0]!.reject(new Error('redis said no'))
      assert.deepEqual(await closed, { code: 1011, reason: 'publish failed' })
      assert.deepEqual(
        h.errors.map((e) => (e as Error).message),
        ['redis said no'],
      )
      assert.equal(h.budget.total, 0, 'its bytes given back')
    })
  })

  describe('publish budget', () => {
    it('stops reading a connection past its own budget until Redis answers', async () => {
      const t = await harness({ publishRate: 0, maxInFlightBytes: 10 })
      try {
        const pending = holdPublishes(t)
        const a = await t.open({ publish: ['p'] }, 'ws')
        await a.ws!.send('12345')
        await eventually(() => pending.length === 1)
        assert.equal(t.budget.total, 5)
        await a.ws!.send('67890')
        await eventually(() => pending.length === 2)
        assert.equal(t.budget.total, 10, 'at the budget: paused')
        await a.ws!.send('third')
        await sleep(30)
        assert.equal(pending.length, 2, 'not read while paused')
        pending[0]!.resolve()
        await eventually(() => pending.length === 3)
        assert.equal(pending[2]!.payload.toString(), 'third')
        for (const p of pending.slice(1)) p.resolve()
        await eventually(() => t.budget.total === 0)
        a.owner.terminate()
      } finally {
        await t.close()
      }
    })

    it('stays paused while what is left in flight is still at the budget', async () => {
      const t = await harness({ publishRate: 0, maxInFlightBytes: 10 })
      try {
        const pending = holdPublishes(t)
        const a = await t.open({ publish: ['p'] }, 'ws')
        await a.ws!.send('1234')
        await eventually(() => pending.length === 1)
        await a.ws!.send('0123456789')
        await eventually(() => pending.length === 2)
        await a.ws!.send('third')
        pending[0]!.resolve()
        await sleep(30)
        assert.equal(pending.length, 2, '10 bytes still in flight: still paused')
        pending[1]!.resolve()
        await eventually(() => pending.length === 3)
        // Resumed: past the budget again, it is paused again.
        await a.ws!.send('0123456789')
        await eventually(() => pending.length === 4)
        await a.ws!.send('fifth')
        await sleep(30)
        assert.equal(pending.length, 4, 'paused again')
        pending[2]!.resolve()
        pending[3]!.resolve()
        await eventually(() => pending.length === 5)
        pending[4]!.resolve()
        await eventually(() => t.budget.total === 0)
        a.owner.terminate()
      } finally {
        await t.close()
      }
    })

    it('keeps a publisher paused while the process is past its budget', async () => {
      const t = await harness({ publishRate: 0, maxInFlightBytes: 1000, maxInFlightBytesTotal: 8 })
      try {
        const pending = holdPublishes(t)
        const a = await t.open({ publish: ['p'] }, 'ws')
        const b = await t.open({ publish: ['p'] }, 'ws')
        await a.ws!.send('0123456789')
        await eventually(() => pending.length === 1)
        await b.ws!.send('1234')
        await eventually(() => pending.length === 2)
        await b.ws!.send('b-2')
        pending[1]!.resolve()
        await sleep(30)
        assert.equal(pending.length, 2, "b's answer leaves the process at 10 of 8: b stays paused")
        pending[0]!.resolve()
        await eventually(() => pending.length === 3)
        assert.equal(pending[2]!.payload.toString(), 'b-2')
        pending[2]!.resolve()
        await eventually(() => t.budget.total === 0)
        a.owner.terminate()
        b.owner.terminate()
      } finally {
        await t.close()
      }
    })

    it('counts a message once per publish channel, given back when all answered', async () => {
      const t = await harness({ publishRate: 0, maxInFlightBytes: 100 })
      try {
        const pending = holdPublishes(t)
        const a = await t.open({ publish: ['p1', 'p2', 'p3'] }, 'ws')
        await a.ws!.send('1234')
        await eventually(() => pending.length === 3)
        assert.equal(t.budget.total, 12)
        pending[0]!.resolve()
        pending[1]!.resolve()
        await tick()
        assert.equal(t.budget.total, 12, 'until every channel answered')
        pending[2]!.resolve()
        await eventually(() => t.budget.total === 0)
        a.owner.terminate()
      } finally {
        await t.close()
      }
    })

    it('stops reading every publisher past the process budget, resumes them as it frees', async () => {
      const t = await harness({
        publishRate: 0,
        maxInFlightBytes: 1000,
        maxInFlightBytesTotal: 8,
      })
      try {
        const pending = holdPublishes(t)
        const a = await t.open({ publish: ['p'] }, 'ws')
        const b = await t.open({ publish: ['p'] }, 'ws')
        await a.ws!.send('1234')
        await b.ws!.send('5678')
        await eventually(() => pending.length === 2)
        assert.equal(t.budget.exhausted, true)
        // b published when the process got exhausted: b is paused. a is paused by its next one.
        await a.ws!.send('a-2')
        await eventually(() => pending.length === 3)
        await a.ws!.send('a-3')
        await b.ws!.send('b-2')
        await sleep(30)
        assert.equal(pending.length, 3, 'neither is read')
        pending[0]!.resolve()
        await eventually(() => pending.length === 5)
        assert.deepEqual(
          pending
            .slice(3)
            .map((p) => p.payload.toString())
            .sort(),
          ['a-3', 'b-2'],
        )
        for (const p of pending.slice(1)) p.resolve()
        await eventually(() => t.budget.total === 0)
        a.owner.terminate()
        b.owner.terminate()
      } finally {
        await t.close()
      }
    })

    it('gives back the bytes of a connection released with publishes in flight', async () => {
      const t = await harness({ publishRate: 0, maxInFlightBytes: 4 })
      try {
        const pending = holdPublishes(t)
        const a = await t.open({ publish: ['p'] }, 'ws')
        await a.ws!.send('1234')
        await eventually(() => pending.length === 1)
        a.owner.terminate()
        pending[0]!.resolve()
        await eventually(() => t.budget.total === 0)
      } finally {
        await t.close()
      }
    })
  })

  describe('rate limit', () => {
    it('applies the facility publish rate: a raw client past it is closed with 1008', async () => {
      reset()
      const definition = { publishRate: 1, publishBurst: 2 }
      const a = await h.open({ publish: ['p'], definition }, 'ws')
      const closed = a.ws!.closedByServer()
      await a.ws!.send('1')
      await a.ws!.send('2')
      await a.ws!.send('3')
      assert.deepEqual(await closed, { code: 1008, reason: 'rate limit exceeded' })
      assert.deepEqual(texts(h), ['1', '2'])
    })

    it('takes every message without a publish rate', async () => {
      reset()
      const a = await h.open({ publish: ['p'], definition: { publishRate: 0 } }, 'ws')
      for (let i = 0; i < 30; i++) await a.ws!.send(String(i))
      await eventually(() => h.published.length === 30)
      a.owner.terminate()
    })
  })
})
