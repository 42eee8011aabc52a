// Recovery on the memory engine (a broker without Redis): the same contract as on Redis.
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { RedisPublisher } from '../../src/index.js'
import { assertExactlyOnce, HistoryClient } from '../helpers/history.js'
import { identify } from '../helpers/identity.js'
import { startBroker, type TestServer } from '../helpers/ws.js'

describe('history on the memory engine', () => {
  let t: TestServer
  before(async () => {
    t = await startBroker({ identify })
    // Five messages per channel.
    t.broker.facility('feed', { format: 'json', history: { size: 5, ttl: 60 } })
  })
  after(async () => {
    await t.close()
  })

  let next = 0
  /** Publishes `count` messages `{ n }` (n counting on from the last) to broadcast and group:g. */
  async function publish(count: number): Promise<void> {
    const publisher = new RedisPublisher(
      { facility: 'feed', broadcast: true, groups: ['g'] },
      { broker: t.broker },
    )
    for (let i = 0; i < count; i++) await publisher.publishMessage(JSON.stringify({ n: next++ }))
  }

  const path = '/ws/feed?subscribe-broadcast&subscribe-group&groups=g'

  it('a client reconnecting with its positions gets what it missed on each channel, once, in order', async () => {
    const client = new HistoryClient()
    await client.open(t.url(path))
    await client.recoveredFrame(1)
    await publish(3)
    await client.untilN('group:g', 2)
    client.terminate()
    await client.closed()
    await publish(4) // within the 5 kept
    await client.reconnect(t.url(path))
    const frame = await client.recoveredFrame(2)
    assert.equal(frame.recovered, true)
    for (const label of ['broadcast', 'group:g']) {
      assert.deepEqual(frame.channels[label], {
        epoch: client.positions[label]!.epoch,
        offset: 7,
        recovered: true,
        missed: 4,
      })
    }
    await publish(1)
    await client.untilN('group:g', 7)
    assertExactlyOnce(client.dataOf('broadcast'), 8)
    assertExactlyOnce(client.dataOf('group:g'), 8)
    client.terminate()
  })

  it('missed more than the history keeps: recovered:false, nothing old sent, live goes on', async () => {
    const client = new HistoryClient()
    await client.open(t.url(path))
    await publish(1)
    await client.untilN('broadcast', next - 1)
    client.terminate()
    await client.closed()
    const before = client.positions.broadcast!
    await publish(6) // one more than the 5 kept
    await client.reconnect(t.url(path))
    const frame = await client.recoveredFrame(2)
    assert.equal(frame.recovered, false)
    assert.deepEqual(frame.channels.broadcast, {
      epoch: before.epoch,
      offset: before.offset + 6,
      recovered: false,
      missed: 0,
    })
    assert.equal(client.connections[1]!.length, 1, 'only the recovered frame')
    await publish(1)
    await client.untilN('broadcast', next - 1)
    assert.deepEqual(
      client.connections[1]!.slice(1).map((f) => (f as { offset: number }).offset),
      [before.offset + 7, before.offset + 7],
      'the live message on both channels',
    )
    client.terminate()
  })

  it('exactly as many missed as the history keeps: recovered', async () => {
    const client = new HistoryClient()
    await client.open(t.url(path))
    await publish(1)
    await client.untilN('broadcast', next - 1)
    client.terminate()
    await client.closed()
    const from = next
    await publish(5)
    await client.reconnect(t.url(path))
    const frame = await client.recoveredFrame(2)
    assert.equal(frame.recovered, true)
    assert.equal(frame.channels.broadcast!.missed, 5)
    const missed = client.connections[1]!.slice(0, 10) as { channel: string; data: { n: number } }[]
    for (const label of ['broadcast', 'group:g']) {
      assert.deepEqual(
        missed.filter((f) => f.channel === label).map((f) => f.data.n),
        [0, 1, 2, 3, 4].map((i) => from + i),
        label,
      )
    }
    client.terminate()
  })

  it('client messages on a history facility get offsets; a publish without history is delivered live without one', async () => {
    t.broker.facility('talk', {
      format: 'json',
      history: { size: 10, ttl: 60 },
      publish: ['broadcast'],
    })
    const talkPath = '/ws/talk?subscribe-broadcast&publish-broadcast&echo'
    const speaker = await new HistoryClient().open(t.url(talkPath))
    const listener = await new HistoryClient().open(t.url('/ws/talk?subscribe-broadcast'))
    for (const i of [0, 1]) await speaker.ws!.send(JSON.stringify({ type: 'data', data: { n: i } }))
    await listener.untilN('broadcast', 1)
    // Published without history (as a plain PUBLISH would be): live, no position, not counted.
    await t.broker.publish(['broadcast:talk'], '{"plain":true}', { history: false })
    await listener.until(() => listener.frames.length === 4, 'plain frame')
    await speaker.ws!.send(JSON.stringify({ type: 'data', data: { n: 2 } }))
    await listener.untilN('broadcast', 2)
    const positioned = listener.dataOf('broadcast')
    assert.deepEqual(listener.frames.slice(1), [
      { ...positioned[0], data: { n: 0 } },
      { ...positioned[1], data: { n: 1 } },
      { type: 'data', data: { plain: true } },
      { ...positioned[2], data: { n: 2 } },
    ])
    assertExactlyOnce(listener.dataOf('broadcast'), 3)
    // The echoing speaker sees its own messages with their positions too, and recovers from them.
    await speaker.untilN('broadcast', 2)
    speaker.terminate()
    await speaker.closed()
    await t.broker.publish(['broadcast:talk'], JSON.stringify({ n: 3 }), {
      history: { size: 10, ttl: 60 },
    })
    await speaker.reconnect(t.url(talkPath))
    const frame = await speaker.recoveredFrame(2)
    assert.equal(frame.recovered, true)
    assert.equal(frame.channels.broadcast!.missed, 1)
    assertExactlyOnce(speaker.dataOf('broadcast'), 4)
    speaker.terminate()
    listener.terminate()
  })

  it('with expire, a recovering client is not replayed the stored message it already has; a new one is', async () => {
    const history = { size: 10, ttl: 60 }
    t.broker.facility('kept', { format: 'json', history, expire: 60 })
    const keptPath = '/ws/kept?subscribe-broadcast'
    const client = await new HistoryClient().open(t.url(keptPath))
    for (const n of [0, 1])
      await t.broker.publish(['broadcast:kept'], JSON.stringify({ n }), { history, expire: 60 })
    await client.untilN('broadcast', 1)
    client.terminate()
    await client.closed()
    await client.reconnect(t.url(keptPath))
    const frame = await client.recoveredFrame(2)
    assert.equal(frame.recovered, true)
    await t.broker.publish(['broadcast:kept'], JSON.stringify({ n: 2 }), { history, expire: 60 })
    await client.untilN('broadcast', 2)
    assertExactlyOnce(client.dataOf('broadcast'), 3)
    assert.deepEqual(
      client.connections[1]!.map((f) => (f as { type: string }).type),
      ['recovered', 'data'],
      'no replayed copy of {n: 1}',
    )
    // Without a recover parameter, the stored message is replayed (as a data frame without a
    // position: it comes from the store, not from history).
    const newcomer = await new HistoryClient().open(t.url(keptPath))
    await newcomer.until(() => newcomer.frames.length >= 2, 'replay and recovered frame')
    assert.deepEqual(newcomer.frames[0], { type: 'data', data: { n: 2 } })
    client.terminate()
    newcomer.terminate()
  })
  it("broker.publish without history or expire options uses the channel's facility's", async () => {
    t.broker.facility('own', { format: 'json', history: { size: 3, ttl: 60 }, expire: 60 })
    const ownPath = '/ws/own?subscribe-broadcast'
    const client = await new HistoryClient().open(t.url(ownPath))
    await client.recoveredFrame(1)
    for (const n of [0, 1, 2, 3]) await t.broker.publish(['broadcast:own'], JSON.stringify({ n }))
    await client.untilN('broadcast', 3)
    const offsets = client.dataOf('broadcast').map((f) => f.offset)
    assert.deepEqual(offsets, [1, 2, 3, 4], 'appended to the facility history')
    // Reconnecting from its position: recovered from the facility's history, nothing missed.
    client.terminate()
    await client.closed()
    await client.reconnect(t.url(ownPath))
    const frame = await client.recoveredFrame(2)
    assert.equal(frame.recovered, true)
    assert.equal(frame.channels.broadcast!.offset, 4)
    // The facility's expire stored the last message: a newcomer is replayed it.
    assert.equal(await t.broker.fetch(['broadcast:own']), JSON.stringify({ n: 3 }))
    // An explicit history: false still publishes live without a position.
    await t.broker.publish(['broadcast:own'], '{"plain":true}', { history: false })
    await client.until(
      () => client.frames.some((f) => (f as { data?: { plain?: boolean } }).data?.plain === true),
      'plain',
    )
    client.terminate()
  })
})
