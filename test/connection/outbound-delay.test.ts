import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { delivered, harness, type OwnerHarness, tick } from '../helpers/owner.js'
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

// Outbound with writeDelay: a connection's frames wait for the end of its delay's window.

describe('Outbound', () => {
  describe('with a write delay', () => {
    let h: OwnerHarness
    before(async () => (h = await harness()))
    after(() => h.close())

    it('keeps what later turns queue for the window, then writes it all in one write', async () => {
      const a = await h.open({ subscribe: ['a'], definition: { writeDelay: 80 } })
      const before = writesAfterHandshake(a).length
      publish(h, 'a', 'one-1')
      await tick()
      assert.equal(writesAfterHandshake(a).length, before, 'not at the end of the turn')
      // A run in a later turn is added to the frame waiting, and so is a frame of the connection's.
      publish(h, 'a', 'two-2')
      publish(h, 'a', 'thr-3')
      a.owner.sendText('fou-4')
      await tick()
      assert.equal(writesAfterHandshake(a).length, before, 'still waiting')
      await eventually(() => writesAfterHandshake(a).length > before)
      assert.deepEqual(oneWriteAfter(a, before), ['one-1', 'two-2', 'thr-3', 'fou-4'])
      a.owner.terminate()
    })

    it('keeps a run that starts the queue for the window too', async () => {
      const a = await h.open({ subscribe: ['a'], definition: { writeDelay: 80 } })
      const before = writesAfterHandshake(a).length
      publish(h, 'a', 'one-1')
      publish(h, 'a', 'two-2')
      await tick()
      assert.equal(writesAfterHandshake(a).length, before, 'not at the end of the turn')
      publish(h, 'a', 'thr-3')
      await eventually(() => writesAfterHandshake(a).length > before)
      assert.deepEqual(oneWriteAfter(a, before), ['one-1', 'two-2', 'thr-3'])
      a.owner.terminate()
    })

    it('writes at the end of the turn for a facility without a delay, beside one with', async () => {
      const slow = await h.open({ subscribe: ['a'], definition: { writeDelay: 80 } })
      const fast = await h.open({ subscribe: ['a'] })
      const before = [slow, fast].map((c) => writesAfterHandshake(c).length)
      publish(h, 'a', 'one-1')
      await tick()
      assert.equal(writesAfterHandshake(fast).length, before[1]! + 1)
      assert.equal(writesAfterHandshake(slow).length, before[0])
      await eventually(() => writesAfterHandshake(slow).length > before[0]!)
      assert.deepEqual(oneWriteAfter(slow, before[0]!), ['one-1'])
      slow.owner.terminate()
      fast.owner.terminate()
    })

    it('writes what waits ahead of the close frame at once when the connection closes', async () => {
      const a = await h.open({ subscribe: ['a'], definition: { writeDelay: 10_000 } })
      publish(h, 'a', 'one-1')
      a.owner.sendText('two-2')
      await tick()
      await closesAfter(a, ['one-1', 'two-2'])
    })

    it('counts what waits for the window against maxBufferedBytes', async () => {
      const a = await h.open({
        subscribe: ['a'],
        definition: {
          writeDelay: 10_000,
          slowConsumer: 'drop',
          maxBufferedBytes: 2 * framed('one-1'),
        },
      })
      publish(h, 'a', 'one-1')
      await tick()
      publish(h, 'a', 'two-2')
      await tick()
      publish(h, 'a', 'thr-3')
      await delivered()
      assert.equal(a.owner.dropped, 1, 'the third passes the bound while two wait')
      a.owner.close(1000, 'bye')
      await eventually(() => framesAfterHandshake(a).some((f) => f.opcode === 8))
      assert.deepEqual(texts(a), ['one-1', 'two-2'])
      a.owner.terminate()
    })
  })
})
