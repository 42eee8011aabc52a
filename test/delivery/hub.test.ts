import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { frame, frameFor } from '../../src/delivery/frame.js'
import type { HistoryPosition } from '../../src/delivery/envelope.js'
import { Hub, type Recipient } from '../../src/delivery/hub.js'
import type { RunPlaces } from '../../src/delivery/run.js'
import { encodeText } from '../../src/delivery/payload.js'
import { encodeChannelMessage } from '../../src/history/wire.js'
import type { Engine, EngineStatus, MessageHandler } from '../../src/engine/types.js'

interface Op {
  op: 'subscribe' | 'unsubscribe'
  channel: string
  resolve: () => void
  reject: (err: Error) => void
}

/**
 * Only the engine members the hub uses. SUBSCRIBE and UNSUBSCRIBE stay pending until the test
 * settles them (or at once with `auto`), so every interleaving can be set up by hand.
 */
class FakeEngine {
  handler: MessageHandler = () => 0
  statusListener: (status: EngineStatus) => void = () => {}
  readonly ops: Op[] = []
  readonly counts: [string, number][] = []
  auto = false
  failCount: Error | null = null

  onMessage(handler: MessageHandler): void {
    this.handler = handler
  }
  onStatus(listener: (status: EngineStatus) => void): void {
    this.statusListener = listener
  }
  #op(op: Op['op'], channel: string): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.ops.push({ op, channel, resolve, reject })
      if (this.auto) resolve()
    })
  }
  subscribe(channel: string): Promise<void> {
    return this.#op('subscribe', channel)
  }
  unsubscribe(channel: string): Promise<void> {
    return this.#op('unsubscribe', channel)
  }
  async setLocalCount(channel: string, count: number): Promise<void> {
    this.counts.push([channel, count])
    if (this.failCount) throw this.failCount
  }
  /** The operations sent so far, as `subscribe a` strings. */
  get sent(): string[] {
    return this.ops.map((o) => `${o.op} ${o.channel}`)
  }
  /** The last operation sent on `channel`. */
  last(channel: string): Op {
    const op = this.ops.findLast((o) => o.channel === channel)
    assert.ok(op, `no operation on ${channel}`)
    return op
  }
}

/** A recipient that records what it got. */
class Sink implements Recipient {
  readonly got: {
    channel: string
    payload: Buffer
    framed: Buffer
    offset: number
    position: HistoryPosition | undefined
  }[] = []
  deliver(...[channel, payload, framed, offset, position]: Parameters<Recipient['deliver']>) {
    this.got.push({ channel, payload, framed, offset, position })
  }
}

/** A recipient that takes runs: each call's frames, and the arrays it was given. */
class RunSink extends Sink {
  readonly runs: {
    payloads: readonly Buffer[]
    frames: readonly Buffer[]
    bytes: number
    places: RunPlaces | null
  }[] = []
  deliverRun(
    channel: string,
    payloads: readonly Buffer[],
    frames: readonly Buffer[],
    bytes: number,
    places: RunPlaces | null,
  ) {
    this.runs.push({ payloads, frames, bytes, places })
    for (let i = 0; i < payloads.length; i++) {
      const offset = places ? places.offsets[i]! : 0
      this.deliver(channel, payloads[i]!, frames[i]!, offset, places?.positions[i])
    }
  }
}

const texts = (s: Sink): string[] => s.got.map((g) => `${g.channel}:${g.payload.toString()}`)

/** Lets every pending promise callback run. */
const settle = async (): Promise<void> => {
  for (let i = 0; i < 10; i++) await Promise.resolve()
  await new Promise((r) => setImmediate(r))
}

/** Lets the hub deliver what the engine gave it in this turn (once the engine's read is done). */
const read = (): Promise<void> => new Promise((r) => queueMicrotask(r))

function setup(auto = true): { engine: FakeEngine; hub: Hub; errors: unknown[] } {
  const engine = new FakeEngine()
  engine.auto = auto
  const errors: unknown[] = []
  const hub = new Hub(engine as unknown as Engine, (err) => errors.push(err))
  return { engine, hub, errors }
}

describe('Hub', () => {
  it('subscribes a channel once per process however many recipients want it', async () => {
    const { engine, hub } = setup()
    await hub.add(new Sink(), ['a', 'b'])
    await hub.add(new Sink(), ['a'])
    await hub.add(new Sink(), ['b', 'a'])
    assert.deepEqual(engine.sent, ['subscribe a', 'subscribe b'])
    assert.equal(hub.channelCount, 2)
  })

  it('resolves add only once Redis confirmed the SUBSCRIBE', async () => {
    const { engine, hub } = setup(false)
    let done = false
    const added = hub.add(new Sink(), ['a']).then(() => (done = true))
    await settle()
    assert.equal(done, false)
    engine.last('a').resolve()
    await added
    assert.equal(done, true)
  })

  it('register: subscribed once every channel is, counted apart (and without waiting for it)', async () => {
    const { engine, hub } = setup(false)
    let subscribed = false
    const parts = hub.register(new Sink(), ['a', 'b'])
    assert.ok(parts.subscribed, 'two SUBSCRIBEs to wait for')
    void parts.subscribed.then(() => (subscribed = true))
    // The counts are written while the SUBSCRIBEs are out: an upgrade reads meanwhile.
    await parts.counted
    assert.deepEqual(engine.counts, [
      ['a', 1],
      ['b', 1],
    ])
    engine.last('a').resolve()
    await settle()
    assert.equal(subscribed, false, 'b is not subscribed yet')
    engine.last('b').resolve()
    await parts.subscribed
    // Already subscribed: a second recipient has no SUBSCRIBE part to wait for, and none is sent.
    assert.equal(hub.register(new Sink(), ['b', 'a']).subscribed, null)
    assert.deepEqual(engine.sent, ['subscribe a', 'subscribe b'])
  })

  it('register: counted waits for the count of every channel and fails with any', async () => {
    const { engine, hub } = setup()
    engine.failCount = new Error('count failed')
    const parts = hub.register(new Sink(), ['a', 'b'])
    await parts.subscribed
    await assert.rejects(parts.counted, /count failed/)
  })

  it('rejects add when the SUBSCRIBE fails, and retries it for the next recipient', async () => {
    const { engine, hub } = setup(false)
    const first = hub.add(new Sink(), ['a'])
    await settle()
    engine.last('a').reject(new Error('redis down'))
    await assert.rejects(first, /redis down/)
    const second = hub.add(new Sink(), ['a'])
    await settle()
    assert.deepEqual(engine.sent, ['subscribe a', 'subscribe a'])
    engine.last('a').resolve()
    await second
  })

  it('reports receiver counts per channel as recipients come and go', async () => {
    const { engine, hub } = setup()
    const r1 = new Sink()
    const r2 = new Sink()
    await hub.add(r1, ['a'])
    await hub.add(r2, ['a'])
    hub.remove(r1, ['a'])
    hub.remove(r2, ['a'])
    await settle()
    assert.deepEqual(engine.counts, [
      ['a', 1],
      ['a', 2],
      ['a', 1],
      ['a', 0],
    ])
  })

  it('waits for the receiver count to be visible before add resolves', async () => {
    const { engine, hub } = setup()
    engine.failCount = new Error('count failed')
    await assert.rejects(hub.add(new Sink(), ['a']), /count failed/)
  })

  it('reports a failed receiver count on remove through onError', async () => {
    const { engine, hub, errors } = setup()
    const r = new Sink()
    await hub.add(r, ['a'])
    engine.failCount = new Error('count failed')
    hub.remove(r, ['a'])
    await settle()
    assert.equal(errors.length, 1)
    assert.match(String(errors[0]), /count failed/)
  })

  it('unsubscribes a channel when its last recipient leaves, not before', async () => {
    const { engine, hub } = setup()
    const r1 = new Sink()
    const r2 = new Sink()
    await hub.add(r1, ['a'])
    await hub.add(r2, ['a'])
    hub.remove(r1, ['a'])
    await settle()
    assert.deepEqual(engine.sent, ['subscribe a'])
    assert.equal(hub.channelCount, 1)
    hub.remove(r2, ['a'])
    assert.equal(hub.channelCount, 0)
    await settle()
    assert.deepEqual(engine.sent, ['subscribe a', 'unsubscribe a'])
  })

  it('ignores removing a recipient that is not registered on a channel', async () => {
    const { engine, hub } = setup()
    const r = new Sink()
    await hub.add(r, ['a'])
    hub.remove(new Sink(), ['a', 'nowhere'])
    await settle()
    assert.deepEqual(engine.sent, ['subscribe a'])
    assert.deepEqual(engine.counts, [['a', 1]])
    assert.equal(hub.channelCount, 1)
  })

  it('never sends a SUBSCRIBE while an UNSUBSCRIBE of the same channel is pending', async () => {
    const { engine, hub } = setup(false)
    const r1 = new Sink()
    const first = hub.add(r1, ['a'])
    await settle()
    engine.last('a').resolve()
    await first
    hub.remove(r1, ['a'])
    await settle()
    assert.deepEqual(engine.sent, ['subscribe a', 'unsubscribe a'])
    const second = hub.add(new Sink(), ['a'])
    await settle()
    assert.deepEqual(engine.sent, ['subscribe a', 'unsubscribe a'], 'waits for the UNSUBSCRIBE')
    engine.last('a').resolve()
    await settle()
    assert.deepEqual(engine.sent, ['subscribe a', 'unsubscribe a', 'subscribe a'])
    engine.last('a').resolve()
    await second
    assert.equal(hub.channelCount, 1)
  })

  it('sends nothing when a recipient leaves and another comes during the SUBSCRIBE', async () => {
    const { engine, hub } = setup(false)
    const r1 = new Sink()
    const first = hub.add(r1, ['a'])
    await settle()
    hub.remove(r1, ['a'])
    const second = hub.add(new Sink(), ['a'])
    engine.last('a').resolve()
    await Promise.all([first, second])
    await settle()
    assert.deepEqual(engine.sent, ['subscribe a'])
  })

  it('unsubscribes after a SUBSCRIBE whose recipients all left while it was pending', async () => {
    const { engine, hub } = setup(false)
    const r = new Sink()
    const added = hub.add(r, ['a'])
    await settle()
    hub.remove(r, ['a'])
    engine.last('a').resolve()
    await settle()
    assert.deepEqual(engine.sent, ['subscribe a', 'unsubscribe a'])
    // add() resolves once Redis is in line with what recipients want: here, unsubscribed.
    engine.last('a').resolve()
    await added
    // Forgotten once unsubscribed: a new recipient subscribes afresh, with its own format.
    const again = new Sink()
    const readded = hub.add(again, ['a'], 'json')
    await settle()
    engine.last('a').resolve()
    await readded
    engine.handler('a', encodeText('x'))
    await read()
    assert.deepEqual(JSON.parse(frameText(again.got[0]!.framed)), { type: 'data', data: 'x' })
  })

  it('reports a failed UNSUBSCRIBE through onError', async () => {
    const { engine, hub, errors } = setup(false)
    const r = new Sink()
    const added = hub.add(r, ['a'])
    await settle()
    engine.last('a').resolve()
    await added
    hub.remove(r, ['a'])
    await settle()
    engine.last('a').reject(new Error('unsubscribe failed'))
    await settle()
    assert.equal(errors.length, 1)
    assert.match(String(errors[0]), /unsubscribe failed/)
  })

  it('frames each message once and hands the same bytes to every recipient', async () => {
    const { engine, hub } = setup()
    const sinks = [new Sink(), new Sink(), new Sink()]
    for (const s of sinks) await hub.add(s, ['a'])
    const payload = encodeText('hello')
    const reached = engine.handler('a', payload)
    assert.equal(reached, 3)
    await read()
    const first = sinks[0]!.got[0]!
    assert.ok(first.framed.equals(frame(Buffer.from('hello'), false)))
    for (const s of sinks) {
      assert.equal(s.got.length, 1)
      assert.equal(s.got[0]!.channel, 'a')
      assert.equal(s.got[0]!.payload, payload, 'the payload as read from Redis')
      assert.equal(s.got[0]!.framed, first.framed, 'one framing for all')
    }
    assert.equal(hub.messages, 1)
    assert.equal(hub.deliveries, 3)
  })

  it('delivers to recipients from the moment they are registered', async () => {
    const { engine, hub } = setup(false)
    const r = new Sink()
    void hub.add(r, ['a'])
    engine.handler('a', encodeText('early'))
    await read()
    assert.equal(r.got.length, 1)
  })

  it('frames in the format of the channel (the facility of its first recipient)', async () => {
    const { engine, hub } = setup()
    const j = new Sink()
    const raw = new Sink()
    await hub.add(j, ['j'], 'json')
    await hub.add(raw, ['r'])
    engine.handler('j', encodeText('hi'))
    engine.handler('r', encodeText('hi'))
    await read()
    assert.ok(j.got[0]!.framed.equals(frameFor('json', encodeText('hi'))))
    assert.ok(raw.got[0]!.framed.equals(frame(Buffer.from('hi'), false)))
  })

  it('counts nothing for messages on channels without local recipients', async () => {
    const { engine, hub } = setup()
    const r = new Sink()
    await hub.add(r, ['a'])
    assert.equal(engine.handler('b', encodeText('x')), 0)
    hub.remove(r, ['a'])
    assert.equal(engine.handler('a', encodeText('x')), 0)
    assert.equal(r.got.length, 0)
    assert.equal(hub.messages, 0)
    assert.equal(hub.deliveries, 0)
  })

  it('after Redis is ready again, unsubscribes channels whose UNSUBSCRIBE failed', async () => {
    const { engine, hub, errors } = setup(false)
    const r = new Sink()
    const added = hub.add(r, ['a'])
    await settle()
    engine.last('a').resolve()
    await added
    hub.remove(r, ['a'])
    await settle()
    engine.last('a').reject(new Error('down'))
    await settle()
    assert.equal(errors.length, 1)
    engine.statusListener('reconnecting')
    await settle()
    assert.deepEqual(engine.sent, ['subscribe a', 'unsubscribe a'], 'only on ready')
    engine.statusListener('ready')
    await settle()
    assert.deepEqual(engine.sent, ['subscribe a', 'unsubscribe a', 'unsubscribe a'])
    engine.last('a').resolve()
    await settle()
    engine.statusListener('ready')
    await settle()
    assert.equal(engine.ops.length, 3, 'nothing left to redo')
  })

  it('after Redis is ready again, resends a failed SUBSCRIBE that is still wanted', async () => {
    const { engine, hub, errors } = setup(false)
    const added = hub.add(new Sink(), ['a', 'b'])
    await settle()
    engine.last('a').reject(new Error('down'))
    engine.last('b').resolve()
    await assert.rejects(added)
    engine.statusListener('ready')
    await settle()
    assert.deepEqual(engine.sent, ['subscribe a', 'subscribe b', 'subscribe a'])
    engine.last('a').reject(new Error('still down'))
    await settle()
    assert.equal(errors.length, 1, 'a failed resync is reported')
  })

  it('leaves a channel with an operation in flight to that operation on resync', async () => {
    const { engine, hub, errors } = setup(false)
    const added = hub.add(new Sink(), ['a'])
    await settle()
    engine.statusListener('ready')
    await settle()
    assert.deepEqual(engine.sent, ['subscribe a'])
    // Its failure is the upgrade's to report (the add rejects); resync does not retry it.
    engine.last('a').reject(new Error('down'))
    await assert.rejects(added, /down/)
    await settle()
    assert.deepEqual(engine.sent, ['subscribe a'])
    assert.deepEqual(errors, [])
  })

  it('retries a failed SUBSCRIBE once per waiting add, not for a recipient leaving', async () => {
    const { engine, hub, errors } = setup(false)
    const r1 = new Sink()
    const first = hub.add(r1, ['a'])
    const second = hub.add(new Sink(), ['a'])
    await settle()
    hub.remove(r1, ['a'])
    engine.last('a').reject(new Error('down'))
    await assert.rejects(first, /down/)
    await settle()
    assert.deepEqual(engine.sent, ['subscribe a', 'subscribe a'], 'the second add retries')
    engine.last('a').reject(new Error('still down'))
    await assert.rejects(second, /still down/)
    await settle()
    assert.deepEqual(engine.sent, ['subscribe a', 'subscribe a'])
    assert.deepEqual(errors, [])
  })

  it('settles every waiting add when the channel is forgotten meanwhile', async () => {
    const { engine, hub, errors } = setup(false)
    const r1 = new Sink()
    const first = hub.add(r1, ['a'])
    await settle()
    engine.last('a').resolve()
    await first
    hub.remove(r1, ['a'])
    await settle()
    const r2 = new Sink()
    const second = hub.add(r2, ['a'])
    hub.remove(r2, ['a'])
    engine.last('a').resolve()
    await second
    await settle()
    assert.deepEqual(engine.sent, ['subscribe a', 'unsubscribe a'])
    assert.deepEqual(errors, [])
    assert.equal(hub.channelCount, 0)
  })
  it('delivers the messages of one read together once the read is done, one run for all', async () => {
    const { engine, hub } = setup()
    const runs = [new RunSink(), new RunSink()]
    const plain = new Sink()
    for (const r of [...runs, plain]) await hub.add(r, ['a'])
    for (const t of ['one', 'two', 'three']) engine.handler('a', encodeText(t))
    assert.equal(plain.got.length, 0, 'not within the read')
    await read()
    assert.deepEqual(texts(plain), ['a:one', 'a:two', 'a:three'], 'one by one, in order')
    for (const r of runs) {
      assert.equal(r.runs.length, 1)
      assert.deepEqual(texts(r), ['a:one', 'a:two', 'a:three'])
    }
    const [first, second] = runs.map((r) => r.runs[0]!)
    assert.equal(first!.frames, second!.frames, 'the very same frames for every recipient')
    assert.deepEqual(
      first!.frames.map((f) => f.toString('latin1')),
      ['one', 'two', 'three'].map((t) => frame(Buffer.from(t), false).toString('latin1')),
    )
    assert.equal(first!.bytes, 3 * 2 + 3 + 3 + 5)
    assert.equal(hub.messages, 3)
    assert.equal(hub.deliveries, 9)
  })

  it('delivers one message alone through deliver, not as a run', async () => {
    const { engine, hub } = setup()
    const r = new RunSink()
    await hub.add(r, ['a'])
    engine.handler('a', encodeText('solo'))
    await read()
    assert.deepEqual(texts(r), ['a:solo'])
    assert.equal(r.runs.length, 0)
  })

  it('keeps the order of messages across channels', async () => {
    const { engine, hub } = setup()
    const r = new RunSink()
    await hub.add(r, ['a', 'b'])
    for (const [c, t] of [
      ['a', '1'],
      ['a', '2'],
      ['b', '3'],
      ['a', '4'],
      ['a', '5'],
    ] as const)
      engine.handler(c, encodeText(t))
    await read()
    assert.deepEqual(texts(r), ['a:1', 'a:2', 'b:3', 'a:4', 'a:5'])
    assert.equal(r.runs.length, 2, 'a:1-2 and a:4-5')
  })

  it('delivers consecutive messages from history as one run, with their offsets and positions', async () => {
    const { engine, hub } = setup()
    const run = new RunSink()
    const plain = new Sink()
    for (const r of [run, plain]) await hub.add(r, ['broadcast:h'], 'json', { size: 10, ttl: 60 })
    for (const [t, offset] of [
      ['one', 1],
      ['two', 2],
      ['three', 3],
    ] as const)
      engine.handler('broadcast:h', encodeChannelMessage(encodeText(t), 'e1', offset))
    await read()
    const at = (offset: number) => ({ channel: 'broadcast', epoch: 'e1', offset })
    assert.equal(run.runs.length, 1, 'one run for the three')
    assert.deepEqual(run.runs[0]!.places, {
      offsets: [1, 2, 3],
      positions: [at(1), at(2), at(3)],
    })
    assert.deepEqual(
      run.runs[0]!.frames.map((f) => frameText(f)),
      ['one', 'two', 'three'].map((t, i) => frameText(frameFor('json', encodeText(t), at(i + 1)))),
      'framed with their positions',
    )
    const seen = (s: Sink) => s.got.map((g) => [g.payload.toString(), g.offset, g.position])
    const want = [
      ['one', 1, at(1)],
      ['two', 2, at(2)],
      ['three', 3, at(3)],
    ]
    assert.deepEqual(seen(plain), want, 'one by one, each with its place')
    assert.deepEqual(seen(run), want)
    assert.equal(hub.messages, 3)
    assert.equal(hub.deliveries, 6)
  })

  it('keeps the places of a run that mixes plain PUBLISHes and messages from history', async () => {
    const { engine, hub } = setup()
    const run = new RunSink()
    const plain = new Sink()
    for (const r of [run, plain]) await hub.add(r, ['broadcast:h'], 'json', { size: 10, ttl: 60 })
    engine.handler('broadcast:h', encodeText('plain first'))
    engine.handler('broadcast:h', encodeChannelMessage(encodeText('kept'), 'e1', 7))
    engine.handler('broadcast:h', encodeText('plain last'))
    await read()
    const at7 = { channel: 'broadcast', epoch: 'e1', offset: 7 }
    assert.equal(run.runs.length, 1)
    assert.deepEqual(run.runs[0]!.places, {
      offsets: [0, 7, 0],
      positions: [undefined, at7, undefined],
    })
    assert.deepEqual(
      plain.got.map((g) => [g.payload.toString(), g.offset, g.position]),
      [
        ['plain first', 0, undefined],
        ['kept', 7, at7],
        ['plain last', 0, undefined],
      ],
    )
  })

  it('keeps the offsets of a run from history on a raw facility (no positions there)', async () => {
    const { engine, hub } = setup()
    const run = new RunSink()
    await hub.add(run, ['broadcast:h'], 'raw', { size: 10, ttl: 60 })
    engine.handler('broadcast:h', encodeChannelMessage(encodeText('one'), 'e1', 1))
    engine.handler('broadcast:h', encodeChannelMessage(encodeText('two'), 'e1', 2))
    engine.handler('broadcast:h', encodeText('plain'))
    engine.handler('broadcast:h', encodeText('plain again'))
    await read()
    // Then a plain PUBLISH first: the places begin with the first message from history.
    engine.handler('broadcast:h', encodeText('plain'))
    engine.handler('broadcast:h', encodeChannelMessage(encodeText('three'), 'e1', 3))
    await read()
    const none = [undefined, undefined]
    assert.deepEqual(
      run.runs.map((r) => r.places),
      [
        { offsets: [1, 2, 0, 0], positions: [...none, ...none] },
        { offsets: [0, 3], positions: none },
      ],
    )
    assert.deepEqual(
      run.runs.map((r) => r.frames.map((f) => f.toString('latin1'))),
      [
        ['one', 'two', 'plain', 'plain again'],
        ['plain', 'three'],
      ].map((texts) => texts.map((t) => frame(Buffer.from(t), false).toString('latin1'))),
    )
  })

  it('gives a run without history no places', async () => {
    const { engine, hub } = setup()
    const run = new RunSink()
    await hub.add(run, ['broadcast:h'], 'json', { size: 10, ttl: 60 })
    engine.handler('broadcast:h', encodeText('a'))
    engine.handler('broadcast:h', encodeText('b'))
    await read()
    assert.equal(run.runs.length, 1)
    assert.equal(run.runs[0]!.places, null)
  })

  it('delivers one message from history alone with its offset and position', async () => {
    const { engine, hub } = setup()
    const run = new RunSink()
    await hub.add(run, ['broadcast:h'], 'json', { size: 10, ttl: 60 })
    engine.handler('broadcast:h', encodeChannelMessage(encodeText('solo'), 'e1', 4))
    await read()
    assert.equal(run.runs.length, 0)
    assert.deepEqual(
      run.got.map((g) => [g.payload.toString(), g.offset, g.position]),
      [['solo', 4, { channel: 'broadcast', epoch: 'e1', offset: 4 }]],
    )
    assert.equal(hub.messages, 1)
    assert.equal(hub.deliveries, 1)
  })

  it('keeps the order of a run and a message from history after it', async () => {
    const { engine, hub } = setup()
    const r = new Sink()
    await hub.add(r, ['a'])
    await hub.add(r, ['h'], 'raw', { size: 10, ttl: 60 })
    engine.handler('a', encodeText('plain'))
    engine.handler('h', encodeChannelMessage(encodeText('kept'), 'e1', 1))
    await read()
    assert.deepEqual(texts(r), ['a:plain', 'h:kept'])
  })

  it('delivers a message to whoever was registered when it arrived', async () => {
    const { engine, hub } = setup()
    const early = new Sink()
    const late = new Sink()
    await hub.add(early, ['a'])
    engine.handler('a', encodeText('m1'))
    void hub.add(late, ['a'])
    await read()
    assert.deepEqual(texts(early), ['a:m1'])
    assert.deepEqual(texts(late), [], 'registered after it arrived')
    engine.handler('a', encodeText('m2'))
    void hub.remove(early, ['a'])
    await read()
    assert.deepEqual(texts(early), ['a:m1', 'a:m2'], 'removed after it arrived')
    assert.deepEqual(texts(late), ['a:m2'])
  })
})

/** The text payload of a small server frame. */
function frameText(framed: Buffer): string {
  return framed.subarray(2).toString('utf8')
}
