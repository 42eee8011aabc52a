import assert from 'node:assert/strict'
import { after, before, beforeEach, describe, it } from 'node:test'
import type { Recipient } from '../../src/delivery/hub.js'
import { frame } from '../../src/delivery/frame.js'
import { encodeText } from '../../src/delivery/payload.js'
import { type Attempt, delivered, harness, type OwnerHarness, tick } from '../helpers/owner.js'
import {
  closesAfter,
  framed,
  framesAfterHandshake,
  oneWriteAfter,
  publish,
  texts,
  writesAfterHandshake,
} from '../helpers/outbound.js'
import { eventually } from '../helpers/ws.js'

describe('Outbound', () => {
  describe('while upgrading', () => {
    let h: OwnerHarness
    before(async () => (h = await harness()))
    after(() => h.close())

    it('holds messages until the handshake completes, counting their bytes', async () => {
      const a = await h.upgrading({ subscribe: ['a'], definition: { maxBufferedBytes: 21 } })
      publish(h, 'a', 'one-1')
      publish(h, 'a', 'two-2')
      await delivered()
      assert.equal(h.registry.heldBytes, 2 * framed('one-1'))
      await tick()
      assert.deepEqual(writesAfterHandshake(a), [], 'nothing written before the handshake')
      await a.complete()
      assert.equal(h.registry.heldBytes, 0, 'given back once delivered')
      await eventually(() => texts(a).length === 2)
      assert.deepEqual(texts(a), ['one-1', 'two-2'])
      a.owner.terminate()
    })

    it('holds up to maxBufferedBytes exactly, then drops under the drop policy', async () => {
      const a = await h.upgrading({
        subscribe: ['a'],
        definition: { slowConsumer: 'drop', maxBufferedBytes: 21 },
      })
      for (const t of ['one-1', 'two-2', 'thr-3', 'fou-4']) publish(h, 'a', t)
      await delivered()
      // 3 × 7 bytes = 21 = maxBufferedBytes: the fourth would pass it.
      assert.equal(h.registry.heldBytes, 21)
      assert.equal(a.owner.dropped, 1)
      assert.equal(a.owner.state, 'upgrading')
      assert.equal(h.slowConsumers, 0)
      await a.complete()
      await eventually(() => texts(a).length === 3)
      assert.deepEqual(texts(a), ['one-1', 'two-2', 'thr-3'])
      assert.equal(a.owner.connection!.dropped, 1)
      a.owner.terminate()
    })

    it('refuses the upgrade with 503 past the bound under the close policy', async () => {
      const a = await h.upgrading({
        subscribe: ['a'],
        definition: { slowConsumer: 'close', maxBufferedBytes: 21 },
      })
      for (const t of ['one-1', 'two-2', 'thr-3']) publish(h, 'a', t)
      await delivered()
      assert.equal(a.owner.state, 'upgrading', 'at the bound, not past it')
      publish(h, 'a', 'fou-4')
      await delivered()
      assert.equal(a.owner.state, 'closed')
      assert.equal(a.owner.dropped, 0)
      assert.equal(h.slowConsumers, 1)
      assert.equal(h.registry.heldBytes, 0, 'held bytes given back')
      assert.equal(h.registry.upgrading, 0)
      assert.equal(h.counter.total, 0)
      assert.equal(h.hub.channelCount, 0)
      await eventually(() => a.received().includes('\r\n\r\n'))
      const answer = a.received().toString()
      assert.match(answer, /^HTTP\/1\.1 503 /)
      assert.match(answer, /too many messages before the handshake completed/)
      h.slowConsumers = 0
    })

    it('sends nothing of its own before the handshake', async () => {
      const a = await h.upgrading({ subscribe: ['a'] })
      a.owner.sendText('x')
      a.owner.send('y')
      a.owner.sendFrame({ type: 'pong' })
      await a.complete()
      publish(h, 'a', 'live')
      await eventually(() => texts(a).length === 1)
      await tick()
      assert.deepEqual(texts(a), ['live'])
      a.owner.terminate()
    })

    it('replays stored messages first, skipping those already held, then the held ones', async () => {
      const a = await h.upgrading({ subscribe: ['a', 'b', 'c'] })
      publish(h, 'b', 'dup')
      publish(h, 'a', 'held')
      const stored = new Map([
        ['a', encodeText('old')],
        ['b', encodeText('dup')],
        ['c', encodeText('held')],
      ])
      await a.complete(stored)
      await eventually(() => texts(a).length === 4)
      await tick()
      // c's stored 'held' is another channel's payload: not a duplicate.
      assert.deepEqual(texts(a), ['old', 'held', 'dup', 'held'])
      a.owner.terminate()
    })

    it('frames stored messages in the facility format', async () => {
      const a = await h.upgrading({ subscribe: ['j'], definition: { format: 'json' } })
      await a.complete(new Map([['j', encodeText('{"n":1}')]]))
      await eventually(() => texts(a).length === 1)
      assert.deepEqual(JSON.parse(texts(a)[0]!), { type: 'data', data: { n: 1 } })
      a.owner.terminate()
    })
  })

  describe('once open', () => {
    let h: OwnerHarness
    before(async () => (h = await harness()))
    after(() => h.close())

    it('writes every frame queued in one turn in a single write, in order', async () => {
      const a = await h.open({ subscribe: ['a'] })
      const before = writesAfterHandshake(a).length
      publish(h, 'a', 'one-1')
      publish(h, 'a', 'two-2')
      a.owner.sendText('thr-3')
      assert.equal(writesAfterHandshake(a).length, before, 'nothing written within the turn')
      await tick()
      assert.deepEqual(oneWriteAfter(a, before), ['one-1', 'two-2', 'thr-3'])
      publish(h, 'a', 'fou-4')
      await tick()
      assert.equal(writesAfterHandshake(a).length, before + 2, 'one more write in the next turn')
      a.owner.terminate()
    })

    it('writes frames queued by separate callbacks of one loop phase in a single write', async () => {
      const a = await h.open({ subscribe: [] })
      const before = writesAfterHandshake(a).length
      // Two reads of a socket in one poll are two callbacks, with microtasks run between them.
      setImmediate(() => a.owner.sendText('one-1'))
      setImmediate(() => a.owner.sendText('two-2'))
      await tick()
      assert.deepEqual(oneWriteAfter(a, before), ['one-1', 'two-2'])
      a.owner.terminate()
    })

    it('writes a lone frame as the very buffer the hub framed for every recipient', async () => {
      const a = await h.open({ subscribe: ['a'] })
      const spy: Buffer[] = []
      const recipient: Recipient = { deliver: (_c, _p, f) => void spy.push(f) }
      await h.hub.add(recipient, ['a'])
      publish(h, 'a', 'solo')
      await tick()
      assert.equal(a.writes.at(-1), spy[0], 'no copy of a single frame')
      h.hub.remove(recipient, ['a'])
      a.owner.terminate()
    })

    it('reuses one join for recipients of the same frames in a turn', async () => {
      const a = await h.open({ subscribe: ['a'] })
      const b = await h.open({ subscribe: ['a'] })
      publish(h, 'a', 'one-1')
      publish(h, 'a', 'two-2')
      await tick()
      assert.equal(a.writes.at(-1), b.writes.at(-1))
      a.owner.terminate()
      b.owner.terminate()
    })

    it('sends text, messages and envelope frames', async () => {
      const a = await h.open({ subscribe: [] })
      a.owner.sendText('t')
      a.owner.send({ k: 1 })
      a.owner.sendFrame({ type: 'pong' })
      await eventually(() => texts(a).length === 3)
      assert.deepEqual(texts(a), ['t', '{"k":1}', '{"type":"pong"}'])
      assert.deepEqual(
        framesAfterHandshake(a).map((f) => f.opcode),
        [1, 1, 1],
        'text frames',
      )
      a.owner.terminate()
    })

    it('sends binary messages as binary frames', async () => {
      const a = await h.open({ subscribe: [] })
      a.owner.send(Buffer.from([1, 2]))
      await eventually(() => framesAfterHandshake(a).length === 1)
      const [f] = framesAfterHandshake(a)
      assert.equal(f!.opcode, 2)
      assert.deepEqual([...f!.payload], [1, 2])
      a.owner.terminate()
    })

    it('wraps sent messages in the data envelope on json facilities', async () => {
      const a = await h.open({ subscribe: [], definition: { format: 'json' } })
      assert.equal(a.owner.format, 'json')
      a.owner.send('hi')
      await eventually(() => texts(a).length === 1)
      assert.deepEqual(JSON.parse(texts(a)[0]!), { type: 'data', data: 'hi' })
      a.owner.terminate()
    })

    it('queues up to maxBufferedBytes exactly per turn, then drops under the drop policy', async () => {
      const a = await h.open({
        subscribe: ['a'],
        definition: { slowConsumer: 'drop', maxBufferedBytes: 21 },
      })
      for (const t of ['one-1', 'two-2', 'thr-3', 'fou-4']) publish(h, 'a', t)
      await delivered()
      assert.equal(a.owner.dropped, 1)
      assert.equal(h.slowConsumers, 0)
      await eventually(() => texts(a).length === 3)
      assert.deepEqual(texts(a), ['one-1', 'two-2', 'thr-3'])
      a.owner.terminate()
    })

    /** An open connection (bound 21 bytes, drop policy) whose corked socket holds `first`. */
    const corkedWith = async (first: string[]): Promise<Attempt> => {
      const a = await h.open({
        subscribe: ['a'],
        definition: { slowConsumer: 'drop', maxBufferedBytes: 21 },
      })
      a.socket.cork()
      for (const t of first) publish(h, 'a', t)
      await tick()
      const unwritten = first.reduce((n, t) => n + framed(t), 0)
      assert.equal(a.socket.writableLength, unwritten, 'written, held by the cork')
      return a
    }

    it('counts bytes the socket has not written yet against the bound', async () => {
      const a = await corkedWith(['one-1'])
      publish(h, 'a', 'two-2')
      publish(h, 'a', 'thr-3')
      await delivered()
      assert.equal(a.owner.dropped, 0, '7 unwritten + 14 queued = 21')
      publish(h, 'a', 'fou-4')
      await delivered()
      assert.equal(a.owner.dropped, 1)
      a.socket.uncork()
      await eventually(() => texts(a).length === 3)
      a.owner.terminate()
    })

    it('closes with 1013 past the bound under the close policy, after what was queued', async () => {
      const a = await h.open({
        subscribe: ['a'],
        definition: { slowConsumer: 'close', maxBufferedBytes: 21 },
      })
      // In one read: 3 × 7 bytes = 21 fit (the drop test above), the fourth does not.
      for (const t of ['one-1', 'two-2', 'thr-3', 'fou-4']) publish(h, 'a', t)
      assert.equal(a.owner.state, 'open')
      await delivered()
      assert.equal(a.owner.state, 'closing')
      assert.equal(h.slowConsumers, 1)
      assert.equal(a.owner.dropped, 0)
      await eventually(() => framesAfterHandshake(a).some((f) => f.opcode === 8))
      const frames = framesAfterHandshake(a)
      assert.deepEqual(
        frames.filter((f) => f.opcode === 1).map((f) => f.payload.toString()),
        ['one-1', 'two-2', 'thr-3'],
      )
      const close = frames.find((f) => f.opcode === 8)!
      assert.equal(close.payload.readUInt16BE(0), 1013)
      assert.equal(close.payload.subarray(2).toString(), 'client too slow')
      h.slowConsumers = 0
      a.owner.terminate()
    })

    it('takes nothing once released (not even a drop)', async () => {
      const a = await h.open({
        subscribe: [],
        definition: { slowConsumer: 'drop', maxBufferedBytes: 1 },
      })
      a.owner.terminate()
      a.owner.deliver('a', encodeText('late'), frame(Buffer.from('late'), false), 0)
      assert.equal(a.owner.dropped, 0)
    })

    it('is raw until it knows its facility', async () => {
      const a = await h.begin()
      assert.equal(a.owner.format, 'raw')
      a.owner.terminate()
    })

    it('delivers nothing once closing', async () => {
      const a = await h.open({ subscribe: ['a'] })
      a.owner.close(1000, 'bye')
      publish(h, 'a', 'late')
      a.owner.sendText('late')
      a.owner.send('late')
      await eventually(() => framesAfterHandshake(a).some((f) => f.opcode === 8))
      await tick()
      assert.deepEqual(texts(a), [])
      a.owner.terminate()
    })

    it('takes a run of messages as one queue shared by its recipients, copied to grow', async () => {
      const a = await h.open({ subscribe: ['a', 'b'] })
      const b = await h.open({ subscribe: ['a'] })
      // In one read: a run of 'a' (both take it as their queue), then one of 'b' (a's alone).
      publish(h, 'a', 'one-1')
      publish(h, 'a', 'two-2')
      publish(h, 'b', 'b-only')
      await eventually(() => texts(a).length === 3 && texts(b).length === 2)
      await tick()
      assert.deepEqual(texts(a), ['one-1', 'two-2', 'b-only'])
      assert.deepEqual(texts(b), ['one-1', 'two-2'], "not the other recipient's frame")
      assert.equal(writesAfterHandshake(a).length, 1, 'one write each')
      a.owner.terminate()
      b.owner.terminate()
    })

    it('adds a second run of one turn to what it queued, in one write, the shared frames untouched', async () => {
      const a = await h.open({ subscribe: ['a'] })
      const b = await h.open({ subscribe: ['a'] })
      const before = writesAfterHandshake(a).length
      // Two reads of the subscriber's socket in one poll: two runs of 'a' before the flush.
      setImmediate(() => ['one-1', 'two-2'].forEach((t) => publish(h, 'a', t)))
      setImmediate(() => ['thr-3', 'fou-4'].forEach((t) => publish(h, 'a', t)))
      await tick()
      for (const c of [a, b]) {
        assert.deepEqual(
          oneWriteAfter(c, before, 'one write'),
          ['one-1', 'two-2', 'thr-3', 'fou-4'],
          'each run once, in order',
        )
      }
      a.owner.terminate()
      b.owner.terminate()
    })

    it('adds a run to a single frame it queued this turn', async () => {
      const a = await h.open({ subscribe: ['a'] })
      const before = writesAfterHandshake(a).length
      setImmediate(() => publish(h, 'a', 'one-1'))
      setImmediate(() => ['two-2', 'thr-3'].forEach((t) => publish(h, 'a', t)))
      await tick()
      assert.deepEqual(oneWriteAfter(a, before), ['one-1', 'two-2', 'thr-3'])
      a.owner.terminate()
    })

    it('takes a run while it expects its own copy on another channel', async () => {
      const a = await h.open({ subscribe: ['a', 'b'], publish: ['b'] }, 'ws')
      let release!: () => void
      const gate = new Promise<void>((r) => (release = r))
      h.publishImpl = async (channel, payload, expire) => {
        await gate
        return h.engine.publish(channel, payload, expire)
      }
      await a.ws!.send('mine')
      await eventually(() => h.published.length === 1)
      publish(h, 'a', 'one-1')
      publish(h, 'a', 'two-2')
      await a.ws!.waitFor(2)
      release()
      await tick()
      assert.deepEqual(a.ws!.texts, ['one-1', 'two-2'], 'its own copy on b not sent back')
      h.publishImpl = (channel, payload, expire) => h.engine.publish(channel, payload, expire)
      a.owner.terminate()
    })

    it('holds a run of a channel it is joining until the join gave what history had', async () => {
      const a = await h.open({ subscribe: ['a'] })
      const hold = a.owner as unknown as {
        holdChannel(channel: string): void
        endHold(channel: string, frames: Buffer[], answer: null, offset: number): void
      }
      hold.holdChannel('a')
      publish(h, 'a', 'live-1')
      publish(h, 'a', 'live-2')
      await tick()
      assert.deepEqual(texts(a), [], 'held while the join reads history')
      hold.endHold('a', [frame(Buffer.from('from-history'), false)], null, 0)
      await eventually(() => texts(a).length === 3)
      assert.deepEqual(texts(a), ['from-history', 'live-1', 'live-2'])
      a.owner.terminate()
    })

    it('counts what the socket has not written yet against the bound of a run', async () => {
      const a = await corkedWith(['one-1', 'two-2'])
      // 14 unwritten: of the next run's 14, the first 7 fit (21), the second does not.
      publish(h, 'a', 'thr-3')
      publish(h, 'a', 'fou-4')
      await delivered()
      assert.equal(a.owner.dropped, 1)
      a.socket.uncork()
      await eventually(() => texts(a).length === 3)
      await tick()
      assert.deepEqual(texts(a), ['one-1', 'two-2', 'thr-3'])
      a.owner.terminate()
    })

    it('takes a run that would pass the bound on top of its queue one by one (drop policy)', async () => {
      const a = await h.open({
        subscribe: ['a'],
        definition: { slowConsumer: 'drop', maxBufferedBytes: 21 },
      })
      setImmediate(() => ['one-1', 'two-2'].forEach((t) => publish(h, 'a', t)))
      // 14 bytes queued: of the next run's 14, the first 7 fit (21), the second does not.
      setImmediate(() => ['thr-3', 'fou-4'].forEach((t) => publish(h, 'a', t)))
      await tick()
      await eventually(() => texts(a).length === 3)
      await tick()
      assert.deepEqual(texts(a), ['one-1', 'two-2', 'thr-3'])
      assert.equal(a.owner.dropped, 1)
      a.owner.terminate()
    })

    it('sends its own frames after the messages that arrived before them', async () => {
      const a = await h.open({ subscribe: ['a'] })
      publish(h, 'a', 'one-1')
      publish(h, 'a', 'two-2')
      a.owner.sendText('thr-3')
      await eventually(() => texts(a).length === 3)
      assert.deepEqual(texts(a), ['one-1', 'two-2', 'thr-3'])
      a.owner.terminate()
    })

    it('writes the messages that arrived before a close ahead of its close frame', async () => {
      const a = await h.open({ subscribe: ['a'] })
      publish(h, 'a', 'one-1')
      publish(h, 'a', 'two-2')
      await closesAfter(a, ['one-1', 'two-2'])
    })

    it('writes nothing to a socket that was destroyed before the flush', async () => {
      const a = await h.open({ subscribe: ['a'] })
      const before = a.writes.length
      publish(h, 'a', 'lost')
      a.socket.destroy()
      await tick()
      assert.equal(a.writes.length, before)
    })

    it('writes nothing to a socket that was ended before the flush', async () => {
      const a = await h.open({ subscribe: ['a'] })
      const before = a.writes.length
      publish(h, 'a', 'lost')
      a.socket.end()
      await tick()
      assert.equal(a.writes.length, before)
      a.owner.terminate()
    })
  })

  describe('own messages', () => {
    /** Holds every publish until the returned function is called. */
    const gatePublishes = (h: OwnerHarness): (() => void) => {
      let release!: () => void
      const gate = new Promise<void>((r) => (release = r))
      h.publishImpl = async (channel, payload, expire) => {
        await gate
        return h.engine.publish(channel, payload, expire)
      }
      return release
    }

    let h: OwnerHarness
    before(async () => (h = await harness({ publishRate: 0 })))
    after(() => h.close())
    beforeEach(() => {
      h.published.length = 0
      h.publishImpl = (channel, payload, expire) => h.engine.publish(channel, payload, expire)
    })

    it('never delivers a client its own message back without echo', async () => {
      const me = await h.open({ subscribe: ['a'], publish: ['a'] }, 'ws')
      const other = await h.open({ subscribe: ['a'] }, 'ws')
      await me.ws!.send('mine')
      await other.ws!.waitFor(1)
      publish(h, 'a', 'theirs')
      await me.ws!.waitFor(1)
      assert.deepEqual(me.ws!.texts, ['theirs'])
      assert.deepEqual(other.ws!.texts, ['mine', 'theirs'])
      // The same payload from someone else afterwards is theirs, and delivered.
      publish(h, 'a', 'mine')
      await me.ws!.waitFor(2)
      assert.deepEqual(me.ws!.texts, ['theirs', 'mine'])
      me.owner.terminate()
      other.owner.terminate()
    })

    it('delivers a client its own message back with echo', async () => {
      const me = await h.open({ subscribe: ['a'], publish: ['a'], echo: true }, 'ws')
      await me.ws!.send('mine')
      await me.ws!.waitFor(1)
      assert.deepEqual(me.ws!.texts, ['mine'])
      me.owner.terminate()
    })

    it('suppresses only its own copy on the channel it published to', async () => {
      const me = await h.open({ subscribe: ['a', 'b'], publish: ['a'] }, 'ws')
      const release = gatePublishes(h)
      await me.ws!.send('x')
      await eventually(() => h.published.some((p) => p.payload.toString() === 'x'))
      // Before the own copy comes back: the same payload on another channel, and another one on it.
      publish(h, 'b', 'x')
      publish(h, 'a', 'y')
      release()
      await me.ws!.waitFor(2)
      await tick()
      assert.deepEqual(me.ws!.texts, ['x', 'y'])
      h.publishImpl = (channel, payload, expire) => h.engine.publish(channel, payload, expire)
      me.owner.terminate()
    })

    it('suppresses each own copy once, in order', async () => {
      const me = await h.open({ subscribe: ['a'], publish: ['a'] }, 'ws')
      const release = gatePublishes(h)
      // Both are expected back before either comes back.
      await me.ws!.send('x')
      await me.ws!.send('x')
      await eventually(() => h.published.length === 2)
      release()
      await tick()
      await tick()
      publish(h, 'a', 'x')
      await me.ws!.waitFor(1)
      await tick()
      assert.deepEqual(me.ws!.texts, ['x'], 'two sent, two suppressed, the third delivered')
      me.owner.terminate()
    })

    it('suppresses its own copy inside a run of messages of the channel', async () => {
      const me = await h.open({ subscribe: ['a'], publish: ['a'] }, 'ws')
      const release = gatePublishes(h)
      await me.ws!.send('x')
      await eventually(() => h.published.some((p) => p.payload.toString() === 'x'))
      // The own copy comes right after someone else's message, in the same read: one run [y, x].
      release()
      publish(h, 'a', 'y')
      await me.ws!.waitFor(1)
      publish(h, 'a', 'z')
      await me.ws!.waitFor(2)
      assert.deepEqual(me.ws!.texts, ['y', 'z'])
      h.publishImpl = (channel, payload, expire) => h.engine.publish(channel, payload, expire)
      me.owner.terminate()
    })

    it('moves its position past its own copy inside a run of messages from history', async () => {
      const history = { size: 10, ttl: 60 }
      const definition = { format: 'json', history } as const
      const channel = 'broadcast:t'
      const me = await h.open({ subscribe: [channel], publish: [channel], definition }, 'ws')
      let release!: () => void
      const gate = new Promise<void>((r) => (release = r))
      h.publishImpl = async (c, payload, expire) => {
        await gate
        return h.engine.publish(c, payload, expire, history)
      }
      await me.ws!.send(JSON.stringify({ type: 'data', data: 'x' }))
      await eventually(() => h.published.length === 1)
      // Someone else's message, then the own copy, in the same read: one run [y, x] from history.
      release()
      void h.engine.publish(channel, encodeText('"y"'), 0, history)
      await me.ws!.waitFor(2)
      await tick()
      const [y, x] = me.ws!.texts.map((t) => JSON.parse(t) as Record<string, unknown>)
      const epoch = y!.epoch
      assert.deepEqual(y, { type: 'data', channel: 'broadcast', epoch, offset: 1, data: 'y' })
      assert.deepEqual(x, { type: 'position', channel: 'broadcast', epoch, offset: 2 }, 'no echo')
      assert.equal(me.ws!.texts.length, 2)
      me.owner.terminate()
    })

    it('delivers its own copies after forgetOwn (messages were lost meanwhile)', async () => {
      const me = await h.open({ subscribe: ['a'], publish: ['a'] }, 'ws')
      h.publishImpl = async () => 0
      await me.ws!.send('x')
      await eventually(() => h.published.some((p) => p.payload.toString() === 'x'))
      me.owner.forgetOwn()
      publish(h, 'a', 'x')
      await me.ws!.waitFor(1)
      assert.deepEqual(me.ws!.texts, ['x'])
      h.publishImpl = (channel, payload, expire) => h.engine.publish(channel, payload, expire)
      me.owner.terminate()
    })
  })
})
