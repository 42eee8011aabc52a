// History on a Redis Cluster (three masters): publishing with history (RedisPublisher, and
// FCALL wsfacility_spublish on the channel's master) and recovery on another broker, for a
// plain channel and for channels named with a {hash tag}.
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { RedisPublisher } from '../../src/index.js'
import { historyKeys } from '../../src/history/wire.js'
import { type RedisCluster, startCluster } from '../helpers/cluster.js'
import { createClient } from 'redis'
import {
  assertExactlyOnce,
  fcallPublish,
  HistoryClient,
  libraryLoaded,
} from '../helpers/history.js'
import { identify } from '../helpers/identity.js'
import { eventually, startBroker, type TestServer } from '../helpers/ws.js'

const HISTORY = { size: 1000, ttl: 300 }

describe('history on a Redis Cluster', () => {
  let cluster: RedisCluster
  const brokers: TestServer[] = []
  before(async () => {
    cluster = await startCluster()
    for (let i = 0; i < 2; i++) {
      const t = await startBroker({ redisCluster: cluster.urls, identify })
      t.broker.facility('feed', { format: 'json', history: HISTORY })
      t.broker.facility('room{name}', { format: 'json', history: HISTORY })
      brokers.push(t)
    }
  })
  after(async () => {
    await Promise.all(brokers.map((t) => t.close()))
    await cluster.stop()
  })

  const slot = async (key: string): Promise<number> =>
    Number(await cluster.command(cluster.ports[0]!, ['CLUSTER', 'KEYSLOT', key]))

  it(
    'publishes with history and recovers on another broker, plain and {tagged} channels',
    { timeout: 60_000 },
    async () => {
      const [a, b] = brokers as [TestServer, TestServer]
      const tagged = ['broadcast:room{lobby}', 'group:g:room{lobby}']
      // The history keys live in their channel's slot; the tagged channels share the tag's.
      for (const channel of ['broadcast:feed', ...tagged]) {
        const { stream, meta } = historyKeys(channel)
        const s = await slot(channel)
        assert.deepEqual([await slot(stream), await slot(meta)], [s, s], channel)
      }
      for (const channel of tagged) assert.equal(await slot(channel), await slot('lobby'))

      const feedPath = '/ws/feed?subscribe-broadcast'
      const roomPath = `/ws/${encodeURIComponent('room{lobby}')}?subscribe-broadcast&subscribe-group&groups=g`
      const feed = await new HistoryClient().open(a.url(feedPath))
      const room = await new HistoryClient().open(a.url(roomPath))
      await feed.recoveredFrame(1)
      assert.deepEqual(Object.keys((await room.recoveredFrame(1)).channels).sort(), [
        'broadcast',
        'group:g',
      ])

      // feed: FCALL on the master of its channel (the brokers load the library on every master).
      const master = await cluster.ownerOf('broadcast:feed')
      await eventually(async () => {
        for (const port of cluster.ports) {
          const list = (await cluster.command(port, [
            'FUNCTION',
            'LIST',
            'LIBRARYNAME',
            'wsfacility',
          ])) as unknown[]
          if (list.length === 0) return false
        }
        return true
      }, 20_000)
      let n = 0
      const publishFeed = async (count: number) => {
        for (let i = 0; i < count; i++) {
          const payload = JSON.stringify({ n: n++ })
          const args = ['broadcast:feed', payload, String(HISTORY.size), String(HISTORY.ttl)]
          await cluster.command(master, ['FCALL', 'wsfacility_spublish', '1', ...args])
        }
      }
      // room{lobby}: a RedisPublisher on broadcast and the group, each a channel with history.
      const publisher = new RedisPublisher(
        { facility: 'room{lobby}', broadcast: true, groups: ['g'] },
        { broker: b.broker },
      )
      let m = 0
      const publishRoom = async (count: number) => {
        for (let i = 0; i < count; i++) await publisher.publishMessage(JSON.stringify({ n: m++ }))
      }

      await publishFeed(5)
      await publishRoom(5)
      await feed.untilN('broadcast', 4)
      await room.untilN('group:g', 4)
      for (const c of [feed, room]) {
        c.terminate()
        await c.closed()
      }
      await publishFeed(5)
      await publishRoom(5)
      // Back on the other broker, with the positions of the last data frames.
      await feed.reconnect(b.url(feedPath))
      await room.reconnect(b.url(roomPath))
      const feedFrame = await feed.recoveredFrame(2)
      const roomFrame = await room.recoveredFrame(2)
      assert.equal(feedFrame.recovered, true)
      assert.deepEqual(feedFrame.channels.broadcast, {
        ...feed.positions.broadcast!,
        offset: 10,
        recovered: true,
        missed: 5,
      })
      assert.equal(roomFrame.recovered, true)
      for (const label of ['broadcast', 'group:g']) {
        assert.equal(roomFrame.channels[label]!.recovered, true, label)
        assert.equal(roomFrame.channels[label]!.missed, 5, label)
        assert.equal(roomFrame.channels[label]!.offset, 10, label)
      }
      await publishFeed(1)
      await publishRoom(1)
      await feed.untilN('broadcast', 10)
      await room.untilN('broadcast', 10)
      await room.untilN('group:g', 10)
      assertExactlyOnce(feed.dataOf('broadcast'), 11)
      assertExactlyOnce(room.dataOf('broadcast'), 11)
      assertExactlyOnce(room.dataOf('group:g'), 11)
      feed.terminate()
      room.terminate()
    },
  )

  it(
    'CLIENT KILL TYPE pubsub on a master while publishing: the broker catches up, the open client gets all 300',
    { timeout: 60_000 },
    async () => {
      const t = brokers[0]!
      const statuses: string[] = []
      t.broker.on('engine', (s) => statuses.push(s))
      const client = await new HistoryClient().open(t.url('/ws/room%7Bkill%7D?subscribe-broadcast'))
      await client.recoveredFrame(1)
      const channel = 'broadcast:room{kill}'
      const port = await cluster.ownerOf(channel)
      const admin = createClient({ url: `redis://127.0.0.1:${port}` })
      admin.on('error', () => {})
      await admin.connect()
      try {
        await libraryLoaded(admin)
        const publish = (n: number) =>
          fcallPublish(admin, channel, JSON.stringify({ n }), HISTORY, 'wsfacility_spublish')
        // One pipeline on the channel's master: 100 messages, the kill of the broker's sharded
        // subscriber connection there, 200 more, all before it can be back.
        const sent: Promise<unknown>[] = []
        for (let n = 0; n < 100; n++) sent.push(publish(n))
        sent.push(admin.sendCommand(['CLIENT', 'KILL', 'TYPE', 'pubsub']))
        for (let n = 100; n < 300; n++) sent.push(publish(n))
        const replies = (await Promise.all(sent)).map(Number)
        assert.ok(replies[100]! >= 1, 'a subscriber connection killed')
        assert.equal(replies[300], 0, 'the last one reached nobody live')
        // The engine says it lost a connection and got it back; nothing else is published until
        // the client has all 300: only the catch-up can bring them.
        await client.untilN('broadcast', 299)
        assert.deepEqual(statuses.slice(0, 2), ['reconnecting', 'ready'])
        assertExactlyOnce(client.dataOf('broadcast'), 300)
        assert.equal(client.recovered.length, 1)
      } finally {
        admin.destroy()
        client.terminate()
      }
    },
  )
})
