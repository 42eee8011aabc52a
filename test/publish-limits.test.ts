import assert from 'node:assert/strict'
import type { IncomingMessage } from 'node:http'
import type net from 'node:net'
import { after, before, describe, it } from 'node:test'
import type { BrokerOptions, Connection } from '../src/index.js'
import { ownerOf } from '../src/connection/connection.js'
import type { ConnectionOwner } from '../src/connection/owner.js'
import { PublishBudget } from '../src/connection/publish-budget.js'
import { framesOf, rawClient } from './helpers/raw.js'
import { type RedisServer, startRedis } from './helpers/redis.js'
import {
  connect,
  eventually,
  frames,
  sendJson,
  sleep,
  startBroker,
  type TestClient,
  type TestServer,
} from './helpers/ws.js'

/** Identity from the query: ?user=john (a stand-in for cookies and JWTs). */
const identify = (req: IncomingMessage) => ({
  user: new URL(req.url ?? '/', 'http://x').searchParams.get('user'),
  groups: [],
  sessionKey: null,
})

let redis: RedisServer
/** True while this file's redis-server is stopped with SIGSTOP. */
let stopped = false

/** Freezes this file's own redis-server: it keeps its sockets but answers nothing. */
function stopRedis(): void {
  process.kill(redis.process.pid!, 'SIGSTOP')
  stopped = true
}

/** Lets it run again. */
function continueRedis(): void {
  if (!stopped) return
  process.kill(redis.process.pid!, 'SIGCONT')
  stopped = false
}

before(async () => {
  redis = await startRedis()
})
after(async () => {
  continueRedis()
  await redis.stop()
})

const servers: TestServer[] = []
after(async () => {
  continueRedis()
  await Promise.all(servers.map((t) => t.close()))
})

async function start(options: BrokerOptions = {}): Promise<TestServer> {
  const t = await startBroker({ redis: redis.url, identify, ...options })
  servers.push(t)
  return t
}

/** Every test ends within this, even when a broken feature leaves it waiting for a close. */
const BOUNDED = { timeout: 30_000 }

let facilitySeq = 0
const fresh = (name: string): string => `${name}${++facilitySeq}`

/** The broker's own count of client bytes handed to Redis and not answered yet. */
function budgetOf(t: TestServer): PublishBudget {
  const conn: Connection | undefined = t.broker.connections.values().next().value
  assert.ok(conn, 'an open connection')
  return (ownerOf(conn) as unknown as ConnectionOwner).services.budget
}

/** A masked client frame (text by default); the mask key is 0, so the payload goes as is. */
function clientFrame(data: string | Buffer, opcode = 0x1): Buffer {
  const payload = typeof data === 'string' ? Buffer.from(data, 'latin1') : data
  const len = payload.length
  const head = Buffer.alloc(len < 126 ? 6 : len < 65536 ? 8 : 14)
  head[0] = 0x80 | opcode
  if (len < 126) head[1] = 0x80 | len
  else if (len < 65536) {
    head[1] = 0x80 | 126
    head.writeUInt16BE(len, 2)
  } else {
    head[1] = 0x80 | 127
    head.writeBigUInt64BE(BigInt(len), 2)
  }
  return Buffer.concat([head, payload])
}

/** A raw TCP publisher and the server's end of its connection. */
interface Publisher {
  name: string
  socket: net.Socket
  /** The broker's socket of this connection (from its upgrade request). */
  server: net.Socket
  data(): Buffer
  /** The messages it wrote, in order. */
  sent: string[]
  /** Pings the server sent it. */
  pings(): number
  /** True once its socket closed. */
  gone: boolean
}

/**
 * Connects a publisher that answers as a browser would: a pong for each ping, a close frame for
 * the server's close (both written behind whatever it has not sent yet).
 */
async function publisher(t: TestServer, name: string, path: string): Promise<Publisher> {
  const accepted = new Promise<net.Socket>((resolve) =>
    t.broker.once('connection', (_conn, req) => resolve(req.socket)),
  )
  const { socket, data } = await rawClient(t.port, path)
  const server = await accepted
  assert.equal(server.remotePort, socket.localPort, 'the server end of this client')
  let answered = 0
  const pub: Publisher = {
    name,
    socket,
    server,
    data,
    sent: [],
    pings: () => framesOf(data()).filter((f) => f.opcode === 0x9).length,
    gone: false,
  }
  // A broker that cuts the connection resets it: that is `gone`, not a failure of the test.
  socket.on('error', () => {})
  socket.on('close', () => (pub.gone = true))
  socket.on('data', () => {
    const control = framesOf(data()).filter((f) => f.opcode === 0x9 || f.opcode === 0x8)
    for (const f of control.slice(answered)) {
      if (!socket.writable) break
      socket.write(clientFrame(f.payload, f.opcode === 0x9 ? 0xa : 0x8))
    }
    answered = control.length
  })
  return pub
}

/**
 * Writes `size`-byte messages from each publisher, one per publisher per event-loop turn (the
 * broker, in this process, reads in between), until each has two messages the kernel would not
 * take any more, or `max` turns went by.
 */
async function flood(pubs: Publisher[], size: number, max: number): Promise<void> {
  for (let i = 0; i < max; i++) {
    const writing = pubs.filter((p) => p.socket.writableLength < 2 * size)
    if (writing.length === 0) return
    for (const p of writing) {
      const text = `${p.name}-${p.sent.length}:`.padEnd(size, 'x')
      p.sent.push(text)
      p.socket.write(clientFrame(text))
    }
    await new Promise(setImmediate)
  }
}

/** Waits until `sample` gives the same numbers three polls in a row (at most ~3 s). */
async function settled(sample: () => number[]): Promise<void> {
  let last = ''
  let same = 0
  for (let i = 0; i < 100 && same < 3; i++) {
    await sleep(30)
    const now = JSON.stringify(sample())
    same = now === last ? same + 1 : 0
    last = now
  }
}

const bytesSent = (p: Publisher): number => p.sent.reduce((n, s) => n + s.length, 0)

/** True when the server sent `p` a close frame. */
const closedByServer = (p: Publisher): boolean => framesOf(p.data()).some((f) => f.opcode === 8)

describe('In-flight publish budget', () => {
  const SIZE = 256 * 1024

  it(
    'stops reading a client past maxInFlightBytes while Redis does not answer, then delivers all in order',
    BOUNDED,
    async () => {
      const facility = fresh('inflight')
      const limit = 1024 * 1024
      const t = await start({ maxInFlightBytes: limit })
      t.broker.facility(facility, {
        publish: ['broadcast'],
        publishRate: 0,
        maxBufferedBytes: 64 * 1024 * 1024,
      })
      const listener = await connect(t.url(`/ws/${facility}?subscribe-broadcast`))
      const pub = await publisher(t, 'a', `/ws/${facility}?publish-broadcast`)
      const budget = budgetOf(t)
      try {
        stopRedis()
        await flood([pub], SIZE, 200)
        await settled(() => [pub.server.bytesRead, pub.socket.writableLength, budget.total])
        // At most one message past the budget triggers the pause, plus one whose last bytes came in
        // the same read; then the socket is not read any more.
        const bound = limit + 2 * SIZE
        assert.ok(budget.total >= limit, `the budget filled up (${budget.total} bytes in flight)`)
        assert.ok(budget.total <= bound, `${budget.total} bytes in flight, bound ${bound}`)
        assert.ok(
          pub.server.bytesRead <= bound + 64 * 1024,
          `the broker read ${pub.server.bytesRead} of ${bytesSent(pub)} bytes sent`,
        )
        assert.ok(pub.socket.writableLength > 0, 'TCP pushes back on the client')
        assert.ok(bytesSent(pub) > 2 * bound, 'the client sent far more than the bound')
        continueRedis()
        await eventually(() => listener.received.length >= pub.sent.length, 20_000)
        assert.equal(listener.texts.length, pub.sent.length)
        assert.ok(
          listener.texts.every((text, i) => text === pub.sent[i]),
          'every message arrived, in order',
        )
        await eventually(() => budget.total === 0)
        // Still open, and read again.
        assert.equal(closedByServer(pub), false)
        assert.equal(t.broker.connections.size, 2)
        pub.socket.write(clientFrame('after'))
        await eventually(() => listener.received.length > pub.sent.length)
        assert.equal(listener.texts.at(-1), 'after')
      } finally {
        continueRedis()
        pub.socket.destroy()
        await listener.close()
      }
    },
  )

  it(
    'pauses every publisher past maxInFlightBytesTotal, then resumes them all',
    BOUNDED,
    async () => {
      const facility = fresh('inflight-total')
      const total = 512 * 1024
      const size = 128 * 1024
      // The per-connection budget is out of reach: only the process's applies.
      const t = await start({ maxInFlightBytes: 64 * 1024 * 1024, maxInFlightBytesTotal: total })
      t.broker.facility(facility, {
        publish: ['broadcast'],
        publishRate: 0,
        maxBufferedBytes: 64 * 1024 * 1024,
      })
      const listener = await connect(t.url(`/ws/${facility}?subscribe-broadcast`))
      const pubs: Publisher[] = []
      for (const name of ['a', 'b', 'c']) {
        pubs.push(await publisher(t, name, `/ws/${facility}?publish-broadcast`))
      }
      const budget = budgetOf(t)
      try {
        stopRedis()
        await flood(pubs, size, 100)
        await settled(() => [
          budget.total,
          ...pubs.flatMap((p) => [p.server.bytesRead, p.socket.writableLength]),
        ])
        const bound = total + pubs.length * 2 * size
        assert.ok(budget.total >= total, `the budget filled up (${budget.total} bytes in flight)`)
        assert.ok(budget.total <= bound, `${budget.total} bytes in flight, bound ${bound}`)
        const read = pubs.reduce((n, p) => n + p.server.bytesRead, 0)
        assert.ok(read <= bound + pubs.length * 64 * 1024, `the broker read ${read} bytes`)
        // Each publisher was stopped being read: the broker read less than it was sent (how much
        // of the rest the kernel's buffers hold, rather than the client's, varies from run to run).
        for (const p of pubs) {
          assert.ok(
            p.server.bytesRead < p.sent.length * size,
            `the broker stopped reading ${p.name}`,
          )
        }
        continueRedis()
        const expected = pubs.reduce((n, p) => n + p.sent.length, 0)
        await eventually(() => listener.received.length >= expected, 20_000)
        assert.equal(listener.texts.length, expected)
        for (const p of pubs) {
          const got = listener.texts.filter((text) => text.startsWith(`${p.name}-`))
          assert.ok(
            got.length === p.sent.length && got.every((text, i) => text === p.sent[i]),
            `every message of ${p.name} arrived, in order`,
          )
          assert.equal(closedByServer(p), false)
        }
        await eventually(() => budget.total === 0)
        assert.equal(t.broker.connections.size, 1 + pubs.length)
      } finally {
        continueRedis()
        for (const p of pubs) p.socket.destroy()
        await listener.close()
      }
    },
  )
  it(
    'keeps a paused publisher through heartbeats: its pongs cannot be read meanwhile',
    BOUNDED,
    async () => {
      const facility = fresh('inflight-ping')
      const t = await start({ pingInterval: 300 })
      t.broker.facility(facility, {
        publish: ['broadcast'],
        publishRate: 0,
        maxBufferedBytes: 64 * 1024 * 1024,
      })
      const listener = await connect(t.url(`/ws/${facility}?subscribe-broadcast`))
      const pub = await publisher(t, 'p', `/ws/${facility}?publish-broadcast`)
      const budget = budgetOf(t)
      try {
        stopRedis()
        await flood([pub], SIZE, 200)
        await settled(() => [pub.server.bytesRead, pub.socket.writableLength])
        assert.ok(pub.socket.writableLength > 0, 'the broker stopped reading')
        // Two heartbeats without a readable pong would drop a client that is not paused.
        const before = pub.pings()
        await eventually(() => pub.pings() >= before + 2 || pub.gone, 5000)
        assert.equal(pub.gone, false, 'not dropped as dead')
        assert.ok(pub.pings() >= before + 2)
        continueRedis()
        await eventually(() => listener.received.length >= pub.sent.length, 20_000)
        assert.ok(listener.texts.every((text, i) => text === pub.sent[i]))
        await eventually(() => budget.total === 0)
        assert.equal(pub.gone, false)
        assert.equal(closedByServer(pub), false)
      } finally {
        continueRedis()
        pub.socket.destroy()
        await listener.close()
      }
    },
  )

  it('completes the close of a paused connection without waiting for Redis', BOUNDED, async () => {
    const facility = fresh('inflight-close')
    const t = await start()
    t.broker.facility(facility, { publish: ['broadcast'], publishRate: 0 })
    const listener = await connect(t.url(`/ws/${facility}?subscribe-broadcast`))
    const pub = await publisher(t, 'q', `/ws/${facility}?publish-broadcast`)
    const budget = budgetOf(t)
    const codes: number[] = []
    t.broker.on('disconnect', (_conn, code) => codes.push(code))
    try {
      stopRedis()
      await flood([pub], SIZE, 200)
      await settled(() => [pub.server.bytesRead, pub.socket.writableLength])
      assert.ok(pub.socket.writableLength > 0, 'the broker stopped reading')
      const id = [...t.broker.connections.values()].find((c) => c.channels.publish.length > 0)!.id
      t.broker.connections.get(id)!.close(4000, 'bye')
      // The client's close frame is behind everything it had not sent yet.
      await eventually(() => codes.length > 0)
      assert.deepEqual(codes, [4000])
      assert.equal(t.broker.connections.has(id), false)
      await eventually(() => pub.gone)
      continueRedis()
      await eventually(() => budget.total === 0)
      // What the broker had taken before the close is published; nothing after it.
      await t.broker.publish([`broadcast:${facility}`], 'end')
      await eventually(() => listener.texts.includes('end'))
      const got = listener.texts.slice(0, -1)
      assert.ok(got.length > 0 && got.length < pub.sent.length, `${got.length} published`)
      assert.ok(got.every((text, i) => text === pub.sent[i]))
    } finally {
      continueRedis()
      pub.socket.destroy()
      await listener.close()
    }
  })

  it('counts messages waiting for an async onMessage against the budget', BOUNDED, async () => {
    const facility = fresh('inflight-hook')
    const limit = 1024 * 1024
    const t = await start({ maxInFlightBytes: limit })
    const hookRedis = await redis.client()
    t.broker.facility(facility, {
      publish: ['broadcast'],
      publishRate: 0,
      maxBufferedBytes: 64 * 1024 * 1024,
      // Waits on Redis, as a hook checking something there would; drops odd messages.
      onMessage: async (_conn, message) => {
        await hookRedis.get('anything')
        return Number(String(message).split(/[-:]/)[1]) % 2 === 0
      },
    })
    const listener = await connect(t.url(`/ws/${facility}?subscribe-broadcast`))
    const pub = await publisher(t, 'h', `/ws/${facility}?publish-broadcast`)
    const budget = budgetOf(t)
    try {
      stopRedis()
      await flood([pub], SIZE, 200)
      await settled(() => [pub.server.bytesRead, pub.socket.writableLength, budget.total])
      const bound = limit + 2 * SIZE
      assert.ok(budget.total >= limit, `the budget filled up (${budget.total} bytes waiting)`)
      assert.ok(budget.total <= bound, `${budget.total} bytes waiting, bound ${bound}`)
      assert.ok(
        pub.server.bytesRead <= bound + 64 * 1024,
        `the broker read ${pub.server.bytesRead} of ${bytesSent(pub)} bytes sent`,
      )
      assert.ok(pub.socket.writableLength > 0, 'TCP pushes back on the client')
      continueRedis()
      const kept = pub.sent.filter((_, i) => i % 2 === 0)
      await eventually(() => listener.received.length >= kept.length, 20_000)
      assert.ok(
        listener.texts.length === kept.length && listener.texts.every((x, i) => x === kept[i]),
        'what the hook kept arrived, in order',
      )
      await eventually(() => budget.total === 0)
      assert.equal(closedByServer(pub), false)
    } finally {
      continueRedis()
      pub.socket.destroy()
      await hookRedis.close()
      await listener.close()
    }
  })
})

/** Sends `n` data messages at once, then a ping; resolves once the pong came back. */
async function burst(speaker: TestClient, n: number): Promise<void> {
  for (let i = 0; i < n; i++) void sendJson(speaker, { type: 'data', data: i })
  await sendJson(speaker, { type: 'ping' })
  await eventually(() => frames(speaker).some((f) => (f as { type?: string }).type === 'pong'))
}

/** The listener's data after a marker published after everything else reached it. */
async function dataUntilMarker(t: TestServer, listener: TestClient, channel: string) {
  await t.broker.publish([channel], JSON.stringify('end'))
  await eventually(() => listener.texts.some((x) => x.includes('"end"')))
  return frames(listener)
    .map((f) => (f as { data: unknown }).data)
    .filter((d) => d !== 'end')
}

describe('Default publish rate', () => {
  const N = 60

  it(
    'json facility: 20 messages/s with a burst of 20; the excess gets rate_limited and the connection stays',
    BOUNDED,
    async () => {
      const facility = fresh('rate')
      const t = await start()
      t.broker.facility(facility, { format: 'json', publish: ['broadcast'] })
      const listener = await connect(t.url(`/ws/${facility}?subscribe-broadcast`))
      const speaker = await connect(t.url(`/ws/${facility}?publish-broadcast`))
      const began = Date.now()
      await burst(speaker, N)
      const seconds = (Date.now() - began) / 1000
      const errors = frames(speaker).filter((f) => (f as { type?: string }).type === 'error')
      for (const e of errors) {
        assert.deepEqual(e, { type: 'error', code: 'rate_limited', detail: 'too many messages' })
      }
      const delivered = await dataUntilMarker(t, listener, `broadcast:${facility}`)
      assert.equal(delivered.length + errors.length, N, 'each message published or refused')
      // The burst passes whole; past it, only what the rate refilled while the messages came in.
      assert.deepEqual(
        delivered.slice(0, 20),
        Array.from({ length: 20 }, (_, i) => i),
      )
      assert.ok(
        delivered.length <= 20 + Math.ceil(seconds * 20),
        `${delivered.length} delivered in ${seconds} s`,
      )
      assert.ok(errors.length > 0)
      assert.equal(t.broker.connections.size, 2, 'still open')
      await listener.close()
      await speaker.close()
    },
  )

  it('raw facility: past the default burst, closes 1008', BOUNDED, async () => {
    const facility = fresh('rawrate')
    const t = await start()
    const listener = await connect(t.url(`/ws/${facility}?subscribe-user&user=u`))
    const speaker = await connect(t.url(`/ws/${facility}?publish-user&user=u`))
    const closed = speaker.closedByServer()
    for (let i = 0; i < N; i++) speaker.ws.send(`m${i}`)
    assert.deepEqual(await closed, { code: 1008, reason: 'rate limit exceeded' })
    await t.broker.publish([`user:u:${facility}`], 'end')
    await listener.waitFor(21)
    const got = listener.texts.slice(0, listener.texts.indexOf('end'))
    assert.ok(got.length >= 20 && got.length < N, `${got.length} delivered`)
    assert.deepEqual(
      got,
      got.map((_, i) => `m${i}`),
    )
    await listener.close()
  })

  it('publishRate: 0 lifts it, per facility and for the whole broker', BOUNDED, async () => {
    const lifted = fresh('lifted')
    const t = await start()
    t.broker.facility(lifted, { format: 'json', publish: ['broadcast'], publishRate: 0 })
    const everywhere = await start({ publishRate: 0 })
    const open = fresh('open')
    everywhere.broker.facility(open, { format: 'json', publish: ['broadcast'] })
    for (const [server, facility] of [
      [t, lifted],
      [everywhere, open],
    ] as const) {
      const listener = await connect(server.url(`/ws/${facility}?subscribe-broadcast`))
      const speaker = await connect(server.url(`/ws/${facility}?publish-broadcast`))
      await burst(speaker, N)
      assert.deepEqual(frames(speaker), [{ type: 'pong' }], 'no rate_limited')
      const delivered = await dataUntilMarker(server, listener, `broadcast:${facility}`)
      assert.deepEqual(
        delivered,
        Array.from({ length: N }, (_, i) => i),
      )
      await listener.close()
      await speaker.close()
    }
    // Raw: no close either.
    const raw = fresh('rawlifted')
    t.broker.facility(raw, { publishRate: 0 })
    const c = await connect(t.url(`/ws/${raw}?publish-user&subscribe-user&echo&user=v`))
    for (let i = 0; i < N; i++) c.ws.send(`c${i}`)
    await c.waitFor(N)
    assert.deepEqual(
      c.texts,
      Array.from({ length: N }, (_, i) => `c${i}`),
    )
    await c.close()
  })
})

describe('Stored client message limit', () => {
  const LIMIT = 64 * 1024

  /** A json data message whose published payload (its JSON text) is `bytes` long. */
  const jsonOfSize = (bytes: number) => ({ type: 'data', data: 'x'.repeat(bytes - 2) })

  it(
    'json facility with expire: message_too_large past maxStoredMessage, nothing stored; up to it is stored',
    BOUNDED,
    async () => {
      const facility = fresh('stored')
      const channel = `broadcast:${facility}`
      const t = await start()
      t.broker.facility(facility, {
        format: 'json',
        publish: ['broadcast'],
        expire: 60,
        publishRate: 0,
      })
      const listener = await connect(t.url(`/ws/${facility}?subscribe-broadcast`))
      const speaker = await connect(t.url(`/ws/${facility}?publish-broadcast`))
      const client = await redis.client()
      try {
        await sendJson(speaker, jsonOfSize(LIMIT))
        await listener.waitFor(1)
        const stored = await client.get(channel)
        assert.equal(
          stored,
          JSON.stringify(jsonOfSize(LIMIT).data),
          'a message of the limit is stored',
        )
        await sendJson(speaker, jsonOfSize(LIMIT + 1))
        await sendJson(speaker, { type: 'ping' })
        await speaker.waitFor(2)
        const [error, pong] = frames(speaker) as { type: string; code?: string }[]
        assert.equal(error?.type, 'error')
        assert.equal(error?.code, 'message_too_large')
        assert.deepEqual(pong, { type: 'pong' }, 'the connection stays')
        // A message published after the refused one reaches the listener: the refused one never did.
        await sendJson(speaker, { type: 'data', data: 'small' })
        await listener.waitFor(2)
        assert.deepEqual(frames(listener)[1], { type: 'data', data: 'small' })
        assert.equal(listener.received.length, 2)
        assert.equal(await client.get(channel), '"small"')
      } finally {
        await client.close()
      }
      await listener.close()
      await speaker.close()
    },
  )

  it('json facility: the refused message is never stored', BOUNDED, async () => {
    const facility = fresh('unstored')
    const t = await start()
    t.broker.facility(facility, {
      format: 'json',
      publish: ['broadcast'],
      expire: 60,
      publishRate: 0,
    })
    const speaker = await connect(t.url(`/ws/${facility}?publish-broadcast`))
    const client = await redis.client()
    try {
      await sendJson(speaker, jsonOfSize(LIMIT + 1))
      await speaker.waitFor(1)
      assert.equal((frames(speaker)[0] as { code: string }).code, 'message_too_large')
      // Anything the broker had sent to Redis before this GET would be answered first.
      await t.broker.publish([`broadcast:other-${facility}`], 'sync')
      assert.equal(await client.get(`broadcast:${facility}`), null)
    } finally {
      await client.close()
    }
    await speaker.close()
  })

  it(
    'raw facility with expire: closes 1009 past maxStoredMessage, stores nothing',
    BOUNDED,
    async () => {
      const facility = fresh('rawstored')
      const t = await start()
      t.broker.facility(facility, { expire: 60, publishRate: 0 })
      const speaker = await connect(t.url(`/ws/${facility}?publish-user&user=r`))
      const client = await redis.client()
      try {
        const closed = speaker.closedByServer()
        speaker.ws.send('y'.repeat(LIMIT + 1))
        assert.deepEqual(await closed, { code: 1009, reason: 'message too large to store' })
        await t.broker.publish([`user:r:other-${facility}`], 'sync')
        assert.equal(await client.get(`user:r:${facility}`), null)
        assert.equal(t.broker.connections.size, 0)
      } finally {
        await client.close()
      }
    },
  )

  it('does not apply without expire, and follows maxStoredMessage', BOUNDED, async () => {
    const plain = fresh('plain')
    const t = await start({ maxStoredMessage: 1000 })
    t.broker.facility(plain, { format: 'json', publish: ['broadcast'], publishRate: 0 })
    const listener = await connect(t.url(`/ws/${plain}?subscribe-broadcast`))
    const speaker = await connect(t.url(`/ws/${plain}?publish-broadcast`))
    await sendJson(speaker, jsonOfSize(4 * LIMIT))
    await listener.waitFor(1)
    assert.equal(
      (frames(listener)[0] as { data: string }).data.length,
      4 * LIMIT - 2,
      'a big message passes where nothing is stored',
    )
    await listener.close()
    await speaker.close()
    // With expire, the broker's maxStoredMessage applies.
    const kept = fresh('kept')
    t.broker.facility(kept, { format: 'json', publish: ['broadcast'], expire: 60, publishRate: 0 })
    const c = await connect(t.url(`/ws/${kept}?publish-broadcast&subscribe-broadcast&echo`))
    await sendJson(c, jsonOfSize(1001))
    await sendJson(c, jsonOfSize(1000))
    await c.waitFor(2)
    const [error, echoed] = frames(c) as { type: string; code?: string; data?: string }[]
    assert.equal(error?.code, 'message_too_large')
    assert.equal(echoed?.data?.length, 998)
    await c.close()
  })
})

describe('PublishBudget', () => {
  const reader = () => {
    const r = { offers: 0, maybeResume: () => void r.offers++ }
    return r
  }

  it(
    'offers every paused reader a resume once the process is under budget, not before',
    BOUNDED,
    () => {
      const budget = new PublishBudget(100, 1000)
      const [a, b] = [reader(), reader()]
      budget.take(1200)
      assert.equal(budget.exhausted, true)
      budget.wait(a)
      budget.wait(b)
      budget.give(200)
      assert.equal(budget.total, 1000)
      assert.equal(budget.exhausted, true, 'at the budget is past it')
      assert.deepEqual([a.offers, b.offers], [0, 0])
      budget.give(1)
      assert.deepEqual([a.offers, b.offers], [1, 1])
      budget.unwait(a)
      budget.give(1)
      assert.deepEqual([a.offers, b.offers], [1, 2], 'a reader that left is not offered')
      assert.equal(budget.total, 998)
    },
  )
})
