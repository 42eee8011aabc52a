import assert from 'node:assert/strict'
import { once } from 'node:events'
import type { IncomingMessage } from 'node:http'
import { after, before, describe, it } from 'node:test'
import type { WebSocket } from 'ws'
import { ownerOf } from '../../src/connection/connection.js'
import { encodeText } from '../../src/delivery/payload.js'
import { HttpError } from '../../src/errors.js'
import type { FacilityContext } from '../../src/facility/definition.js'
import { type Attempt, delivered, harness, type OwnerHarness, tick } from '../helpers/owner.js'
import { framesOf } from '../helpers/raw.js'
import { eventually } from '../helpers/ws.js'

/** The frames the client got after the handshake answer (none before it). */
function frames(a: Attempt): { opcode: number; payload: Buffer }[] {
  const buf = a.received()
  const end = buf.indexOf('\r\n\r\n')
  return end === -1 ? [] : framesOf(buf.subarray(end + 4))
}

/** The close frame the client got: code and reason. */
function closeFrame(a: Attempt): { code: number; reason: string } | null {
  const f = frames(a).find((x) => x.opcode === 8)
  return f ? { code: f.payload.readUInt16BE(0), reason: f.payload.subarray(2).toString() } : null
}

/** The HTTP answer of a refused upgrade. */
async function refusal(a: Attempt): Promise<string> {
  await eventually(() => a.received().includes('\r\n\r\n'))
  return a.received().toString()
}

/** Everything a connection can hold, as the shared parts count it. */
function held(h: OwnerHarness): Record<string, number> {
  return {
    upgrading: h.registry.upgrading,
    open: h.registry.open.size,
    heldBytes: h.registry.heldBytes,
    counted: h.counter.total,
    countedJohn: h.counter.countOf('john'),
    channels: h.hub.channelCount,
  }
}

const NOTHING = { upgrading: 0, open: 0, heldBytes: 0, counted: 0, countedJohn: 0, channels: 0 }

describe('ConnectionOwner', () => {
  let h: OwnerHarness
  before(async () => (h = await harness({ maxConnectionsPerUser: 5 })))
  after(() => h.close())

  const reset = (): void => {
    h.opened.length = 0
    h.closed.length = 0
    h.errors.length = 0
  }

  describe('upgrading', () => {
    it('is upgrading from its first step, counted by the registry', async () => {
      const a = await h.begin()
      assert.equal(a.owner.state, 'upgrading')
      assert.equal(h.registry.upgrading, 1)
      a.owner.abort(new HttpError(400, 'no'))
      assert.equal(h.registry.upgrading, 0)
    })

    it('takes the admission counts, the user count and the subscriptions', async () => {
      const a = await h.upgrading({ subscribe: ['a', 'b'], user: 'john' })
      assert.deepEqual(held(h), {
        ...NOTHING,
        upgrading: 1,
        counted: 1,
        countedJohn: 1,
        channels: 2,
      })
      void h.engine.publish('a', encodeText('held'), 0)
      await delivered()
      assert.ok(h.registry.heldBytes > 0)
      a.owner.abort(new HttpError(403, 'forbidden'))
      assert.deepEqual(held(h), NOTHING)
    })

    it('answers an abort with the HTTP status, the reason and its headers, once', async () => {
      const a = await h.upgrading({ subscribe: ['a'] })
      a.owner.abort(new HttpError(429, 'slow down', 'WSF_HTTP_429', { 'Retry-After': '7' }))
      a.owner.abort(new HttpError(500, 'again'))
      const answer = await refusal(a)
      assert.match(answer, /^HTTP\/1\.1 429 Too Many Requests\r\n/)
      assert.match(answer, /\r\nRetry-After: 7\r\n/)
      assert.match(answer, /\r\n\r\nslow down\n$/)
      assert.doesNotMatch(answer, /again/)
      assert.equal(a.owner.state, 'closed')
      assert.deepEqual(h.closed, [], 'an upgrade that never opened is not announced')
    })

    it('rejects the pending step with the abort reason, and every later one', async () => {
      const a = await h.begin()
      const pending = a.owner.step(new Promise(() => {}))
      a.owner.abort(new HttpError(503, 'shutting down'))
      await assert.rejects(pending, (err: HttpError) => err.status === 503)
      await assert.rejects(a.owner.step(Promise.resolve(1)), (err: HttpError) => err.status === 503)
      assert.throws(
        () => a.owner.check(),
        (err: HttpError) => err.status === 503,
      )
      assert.throws(
        () => a.owner.admit(),
        (err: HttpError) => err.status === 503,
      )
      assert.equal(h.counter.total, 0)
    })

    it('passes the result of a step through while the attempt lasts', async () => {
      const a = await h.begin()
      assert.equal(await a.owner.step(Promise.resolve(42)), 42)
      a.owner.abort(new HttpError(400, 'done'))
    })

    it('is cut with 499 when the client goes away, and gives everything back', async () => {
      const a = await h.upgrading({ subscribe: ['a'], user: 'john' })
      const pending = a.owner.step(new Promise(() => {}))
      a.client!.destroy()
      await assert.rejects(pending, (err: HttpError) => {
        assert.equal(err.status, 499)
        assert.equal(err.code, 'WSF_CLIENT_GONE')
        assert.equal(err.message, 'client went away')
        return true
      })
      assert.equal(a.owner.state, 'closed')
      assert.deepEqual(held(h), NOTHING)
    })

    it('is cut when the client half-closes its side', async () => {
      const a = await h.upgrading({ subscribe: ['a'] })
      const released = a.owner.released()
      a.client!.end()
      await released
      assert.deepEqual(held(h), NOTHING)
    })

    it('refuses to go on when its socket can no longer carry a handshake', async () => {
      const a = await h.begin()
      a.owner.admit()
      a.socket.end()
      assert.throws(
        () => a.owner.check(),
        (err: HttpError) => err.code === 'WSF_CLIENT_GONE',
      )
      assert.equal(a.owner.state, 'closed')
      assert.equal(h.counter.total, 0)
    })

    it('times out after handshakeTimeout with 503 and gives everything back', async () => {
      const t = await harness({ handshakeTimeout: 30 })
      try {
        const a = await t.upgrading({ subscribe: ['a'] })
        const pending = a.owner.step(new Promise(() => {}))
        await assert.rejects(pending, (err: HttpError) => {
          assert.equal(err.status, 503)
          assert.equal(err.code, 'WSF_HANDSHAKE_TIMEOUT')
          return true
        })
        assert.match(await refusal(a), /^HTTP\/1\.1 503 [^]*handshake timed out/)
        assert.deepEqual(held(t), NOTHING)
      } finally {
        await t.close()
      }
    })

    it('never times out once open', async () => {
      const t = await harness({ handshakeTimeout: 30 })
      try {
        const a = await t.open({ subscribe: ['a'] })
        await new Promise((r) => setTimeout(r, 60))
        assert.equal(a.owner.state, 'open')
        a.owner.terminate()
      } finally {
        await t.close()
      }
    })

    it('counts against maxConnectionsPerUser and refuses past it with 429', async () => {
      const t = await harness({ maxConnectionsPerUser: 1 })
      try {
        const a = await t.upgrading({ user: 'john' })
        const b = await t.begin()
        b.owner.admit()
        assert.throws(
          () => b.owner.admitUser('john'),
          (err: HttpError) => err.status === 429,
        )
        b.owner.abort(new HttpError(429, 'too many'))
        assert.equal(t.counter.countOf('john'), 1, 'the refused one took nothing of the user')
        a.owner.abort(new HttpError(400, 'x'))
        assert.equal(t.counter.countOf('john'), 0)
        assert.equal(t.counter.total, 0)
      } finally {
        await t.close()
      }
    })

    it('counts against maxConnections and refuses past it with 503', async () => {
      const t = await harness({ maxConnections: 1 })
      try {
        const a = await t.begin()
        a.owner.admit()
        const b = await t.begin()
        assert.throws(
          () => b.owner.admit(),
          (err: HttpError) => err.status === 503,
        )
        b.owner.abort(new HttpError(503, 'full'))
        assert.equal(t.counter.total, 1, 'the refused one did not uncount the other')
        a.owner.abort(new HttpError(400, 'x'))
        assert.equal(t.counter.total, 0)
      } finally {
        await t.close()
      }
    })

    it('is cut with 503 on shutdown (the registry aborts upgrades)', async () => {
      const a = await h.upgrading({ subscribe: ['a'] })
      h.registry.abortUpgrades()
      assert.match(await refusal(a), /^HTTP\/1\.1 503 [^]*server is shutting down/)
      assert.deepEqual(held(h), NOTHING)
    })

    it('turns close and terminate during the upgrade into refusals', async () => {
      const a = await h.upgrading({})
      a.owner.close(1000, 'not now')
      assert.match(await refusal(a), /^HTTP\/1\.1 503 [^]*not now/)
      const b = await h.upgrading({})
      b.owner.close(1000, '')
      assert.match(await refusal(b), /\r\n\r\nclosed\n$/)
      const c = await h.upgrading({})
      c.owner.terminate()
      assert.match(await refusal(c), /server is shutting down/)
      assert.deepEqual(held(h), NOTHING)
    })

    it('takes nothing more once cut: no user count, no subscription, no acceptance', async () => {
      const a = await h.begin()
      a.owner.admit()
      a.owner.abort(new HttpError(400, 'x'))
      assert.throws(() => a.owner.admitUser('john'))
      assert.throws(() => a.owner.accept(h.acceptance({ subscribe: ['a'] })))
      assert.equal(a.owner.connection, null)
      const b = await h.begin()
      b.owner.accept(h.acceptance({ subscribe: ['a'] }))
      b.owner.abort(new HttpError(400, 'x'))
      assert.throws(() => b.owner.subscribe())
      assert.deepEqual(held(h), NOTHING)
    })

    it('is cut when its own socket closes', async () => {
      const a = await h.upgrading({ subscribe: ['a'] })
      a.socket.destroy()
      await a.owner.released()
      assert.deepEqual(held(h), NOTHING)
    })

    it('survives an error on its socket while upgrading', async () => {
      const a = await h.begin()
      assert.doesNotThrow(() => a.socket.emit('error', new Error('ECONNRESET')))
      a.owner.abort(new HttpError(400, 'x'))
    })

    it('takes no step of the upgrade once open', async () => {
      const a = await h.open({})
      assert.throws(() => a.owner.check())
      await assert.rejects(a.owner.step(Promise.resolve(1)))
      a.owner.terminate()
    })

    it('terminates a WebSocket handed to it after the attempt was cut', async () => {
      reset()
      const a = await h.begin()
      a.owner.abort(new HttpError(400, 'x'))
      let terminated = 0
      const ws = { terminate: () => void terminated++ } as unknown as WebSocket
      a.owner.open(ws, new Map(), {} as IncomingMessage)
      assert.equal(terminated, 1)
      assert.equal(a.owner.state, 'closed')
      assert.deepEqual(h.opened, [])
    })
    it('handing the socket to ws takes its end listener off, and still aborts on a close', async () => {
      const a = await h.upgrading({ subscribe: ['a'] })
      const names = (event: string) => a.socket.listeners(event).map((f) => f.name)
      const before = names('end').includes('socketGone')
      a.owner.handingOver()
      const after = names('end').includes('socketGone')
      a.client!.destroy()
      await a.owner.released()
      assert.equal(a.owner.state, 'closed')
      assert.deepEqual(held(h), NOTHING)
      assert.deepEqual([before, after], [true, false], 'ws listens for the end from then on')
    })
  })

  describe('open', () => {
    it('opens: registered by id, announced with its request, no longer upgrading', async () => {
      reset()
      const a = await h.open({ subscribe: ['a'] })
      const connection = a.owner.connection!
      assert.equal(a.owner.state, 'open')
      assert.equal(connection.state, 'open')
      assert.equal(connection.isOpen, true)
      assert.equal(ownerOf(connection), a.owner)
      assert.equal(h.registry.open.get(connection.id), connection)
      assert.equal(h.registry.upgrading, 0)
      assert.deepEqual(h.opened, [connection])
      a.owner.terminate()
    })

    it('leaves the socket to ws once open: none of the upgrade listeners stay on it', async () => {
      const a = await h.open({ subscribe: ['a'] })
      // ws listens for the socket's end, close and errors itself; each listener the owner kept
      // would also keep the socket's listener list grown for the connection's life.
      const names = (event: string) => a.socket.listeners(event).map((f) => f.name)
      const kept = ['end', 'close', 'error'].flatMap((event) =>
        names(event)
          .filter((n) => n === 'socketGone' || n === 'ignoreError')
          .map((n) => `${event}: ${n}`),
      )
      a.owner.terminate()
      await a.owner.released()
      assert.deepEqual(kept, [])
    })

    it('close: flushes what is queued, then sends the close frame, and is closing', async () => {
      reset()
      const a = await h.open({ subscribe: ['a'] })
      void h.engine.publish('a', encodeText('last'), 0)
      a.owner.close(4000, 'bye')
      assert.equal(a.owner.state, 'closing')
      assert.equal(a.owner.connection!.isOpen, false)
      assert.equal(h.registry.open.size, 1, 'still registered until the close completes')
      await eventually(() => closeFrame(a) !== null)
      const got = frames(a)
      assert.equal(got[0]!.payload.toString(), 'last')
      assert.deepEqual(closeFrame(a), { code: 4000, reason: 'bye' })
      a.owner.close(4001, 'again')
      await tick()
      assert.equal(frames(a).filter((f) => f.opcode === 8).length, 1, 'one close frame')
      a.client!.destroy()
      await a.owner.released()
      assert.equal(a.owner.state, 'closed')
      assert.deepEqual(held(h), NOTHING)
      assert.equal(h.closed.length, 1)
    })

    it('closes without a reason when none is given', async () => {
      const a = await h.open({})
      a.owner.close(4000)
      await eventually(() => closeFrame(a) !== null)
      assert.deepEqual(closeFrame(a), { code: 4000, reason: '' })
      a.owner.terminate()
    })

    it('replays stored messages when it opens', async () => {
      const a = await h.upgrading({ subscribe: ['a'] })
      await a.complete(new Map([['a', encodeText('stored')]]))
      await eventually(() => frames(a).length === 1)
      assert.equal(frames(a)[0]!.payload.toString(), 'stored')
      a.owner.terminate()
    })

    it('takes client messages from its WebSocket', async () => {
      const t = await harness({ publishRate: 0 })
      try {
        const a = await t.open({ publish: ['p'] }, 'ws')
        await a.ws!.send('hello')
        await eventually(() => t.published.length === 1)
        a.owner.terminate()
      } finally {
        await t.close()
      }
    })

    it('survives a protocol error from the client and logs it, then releases', async () => {
      const debug: [Record<string, unknown>, string | undefined][] = []
      const logger = { debug: (o: object, m?: string) => void debug.push([o as never, m]) }
      const t = await harness({ logger })
      try {
        const a = await t.open({})
        const id = a.owner.connection!.id
        assert.deepEqual(debug[0], [{ id, facility: 'f' }, 'connection accepted'])
        // An unmasked client frame: ws reports an error, sends 1002 and drops the socket (1006).
        a.client!.write(Buffer.from([0x81, 0x01, 0x61]))
        await a.owner.released()
        const error = debug.find(([, m]) => m === 'client error')
        assert.ok(error, 'logged')
        assert.equal(error[0].id, id)
        assert.ok(error[0].err instanceof Error)
        assert.deepEqual(debug.at(-1), [{ id, facility: 'f', code: 1006 }, 'connection closed'])
        assert.deepEqual(
          t.closed.map(([, c]) => c),
          [1006],
        )
      } finally {
        await t.close()
      }
    })

    it('reports nothing for a connection without hooks', async () => {
      reset()
      const a = await h.open({ user: 'john' })
      a.owner.terminate()
      await tick()
      assert.deepEqual(h.errors, [])
    })

    it('cuts long close reasons to what a close frame carries', async () => {
      const a = await h.open({})
      a.owner.close(4000, 'x'.repeat(200))
      await eventually(() => closeFrame(a) !== null)
      assert.equal(closeFrame(a)!.reason, 'x'.repeat(123))
      a.owner.terminate()
    })

    it('releases exactly once when the client answers the close', async () => {
      reset()
      const a = await h.open({ subscribe: ['a'], user: 'john' }, 'ws')
      const connection = a.owner.connection!
      const code = a.ws!.closedByServer()
      a.owner.close(4000, 'bye')
      assert.deepEqual(await code, { code: 4000, reason: 'bye' })
      await a.owner.released()
      assert.deepEqual(h.closed, [[connection, 4000]])
      assert.equal(h.registry.open.has(connection.id), false)
      assert.deepEqual(held(h), NOTHING)
      a.owner.terminate()
      a.owner.release(1000)
      a.owner.close(1000, '')
      assert.equal(h.closed.length, 1, 'released once whatever comes after')
      assert.equal(h.counter.total, 0, 'not uncounted twice')
    })

    it('releases when the client closes, with its code', async () => {
      reset()
      const a = await h.open({ subscribe: ['a'] }, 'ws')
      await a.ws!.close(4321)
      await a.owner.released()
      assert.equal(h.closed[0]![1], 4321)
      assert.deepEqual(held(h), NOTHING)
    })

    it('terminate: cuts at once without a close frame, reporting its code', async () => {
      reset()
      const a = await h.open({ subscribe: ['a'], user: 'john' })
      a.owner.terminate(1012)
      assert.equal(a.owner.state, 'closed')
      assert.deepEqual(held(h), NOTHING)
      assert.equal(h.closed[0]![1], 1012)
      await once(a.client!, 'close')
      assert.equal(closeFrame(a), null)
      const b = await h.open({})
      b.owner.terminate()
      assert.equal(h.closed[1]![1], 1006, 'abnormal closure by default')
    })

    it('terminates a connection that is closing', async () => {
      reset()
      const a = await h.open({ subscribe: ['a'] })
      a.owner.close(1000, '')
      a.owner.terminate(1001)
      assert.equal(a.owner.state, 'closed')
      assert.deepEqual(
        h.closed.map(([, c]) => c),
        [1001],
      )
      assert.deepEqual(held(h), NOTHING)
    })

    it('released() resolves for every waiter once closed, at once after', async () => {
      const a = await h.open({})
      let n = 0
      const waiters = [a.owner.released(), a.owner.released()].map((p) => p.then(() => n++))
      await tick()
      assert.equal(n, 0)
      a.owner.terminate()
      await Promise.all(waiters)
      assert.equal(n, 2)
      await a.owner.released()
    })

    it('runs onConnect and onDisconnect with the connection, its context and the code', async () => {
      const calls: unknown[][] = []
      const definition = {
        onConnect: (c: unknown, ctx: FacilityContext) => void calls.push(['connect', c, ctx]),
        onDisconnect: (c: unknown, code: number, ctx: FacilityContext) =>
          void calls.push(['disconnect', c, code, ctx]),
      }
      const a = await h.open({ definition })
      const c = a.owner.connection!
      assert.equal(calls.length, 1)
      assert.equal(calls[0]![1], c)
      assert.equal((calls[0]![2] as FacilityContext).facility, 'f')
      a.owner.terminate(4002)
      assert.equal(calls.length, 2)
      assert.deepEqual(calls[1]!.slice(0, 3), ['disconnect', c, 4002])
      assert.equal(calls[1]![3], calls[0]![2], 'the same context')
    })

    it('reports hooks that throw or reject, and goes on', async () => {
      reset()
      const definition = {
        onConnect: () => {
          throw new Error('connect threw')
        },
        onDisconnect: async () => {
          throw new Error('disconnect rejected')
        },
      }
      const a = await h.open({ definition })
      assert.equal(a.owner.state, 'open')
      a.owner.terminate()
      await tick()
      assert.deepEqual(
        h.errors.map((e) => (e as Error).message),
        ['connect threw', 'disconnect rejected'],
      )
    })

    it('runs no onDisconnect for an upgrade that never opened', async () => {
      let disconnects = 0
      const a = await h.upgrading({ definition: { onDisconnect: () => void disconnects++ } })
      a.owner.abort(new HttpError(400, 'x'))
      assert.equal(disconnects, 0)
    })
  })

  describe('presence', () => {
    let p: OwnerHarness
    before(async () => (p = await harness({ presence: true })))
    after(() => p.close())

    it('tracks a user from open to release', async () => {
      const a = await p.open({ user: 'ann' })
      await p.registry.settled()
      assert.equal(await p.engine.presenceCount('f', 'ann'), 1)
      a.owner.terminate()
      await p.registry.settled()
      assert.equal(await p.engine.presenceCount('f', 'ann'), 0)
    })

    it('tracks nobody for anonymous connections or upgrades that never opened', async () => {
      const a = await p.open({})
      const b = await p.upgrading({ user: 'bob' })
      b.owner.abort(new HttpError(400, 'x'))
      a.owner.terminate()
      await p.registry.settled()
      assert.deepEqual([...(await p.engine.presenceList('f'))], [])
    })

    it('tracks nobody without the presence option', async () => {
      const calls: string[] = []
      const engine = h.engine as unknown as Record<string, (...args: string[]) => unknown>
      const join = engine.presenceJoin!
      const leave = engine.presenceLeave!
      engine.presenceJoin = (...args) => (calls.push('join'), join.apply(h.engine, args))
      engine.presenceLeave = (...args) => (calls.push('leave'), leave.apply(h.engine, args))
      try {
        const b = await h.open({ user: 'carl' })
        b.owner.terminate()
        await h.registry.settled()
      } finally {
        delete engine.presenceJoin
        delete engine.presenceLeave
      }
      assert.deepEqual(calls, [])
      const a = await h.open({ user: 'carl' })
      await h.registry.settled()
      assert.equal(await h.engine.presenceCount('f', 'carl'), 0)
      a.owner.terminate()
    })
  })

  describe('liveness', () => {
    it('pings, and cuts a connection that answered nothing since the last ping', async () => {
      reset()
      const a = await h.open({})
      a.owner.heartbeat()
      await eventually(() => frames(a).some((f) => f.opcode === 9))
      assert.equal(a.owner.state, 'open')
      a.owner.heartbeat()
      assert.equal(a.owner.state, 'closed')
      assert.deepEqual(
        h.closed.map(([, c]) => c),
        [1006],
      )
    })

    it('keeps a connection that answered the ping', async () => {
      const a = await h.open({}, 'ws')
      for (let i = 0; i < 3; i++) {
        const pong = once(a.ws!.ws, 'ping')
        a.owner.heartbeat()
        await pong
        await tick()
        await tick()
      }
      assert.equal(a.owner.state, 'open')
      a.owner.terminate()
    })

    it('keeps a connection that sent a message since the last ping', async () => {
      const a = await h.open({})
      a.owner.heartbeat()
      a.owner.received(Buffer.from('x'), false)
      a.owner.heartbeat()
      assert.equal(a.owner.state, 'open')
      a.owner.answered()
      a.owner.heartbeat()
      a.owner.heartbeat()
      assert.equal(a.owner.state, 'closed')
    })

    it('ignores heartbeats before the connection is open', async () => {
      const a = await h.upgrading({})
      a.owner.heartbeat()
      a.owner.heartbeat()
      assert.equal(a.owner.state, 'upgrading')
      a.owner.abort(new HttpError(400, 'x'))
    })
  })

  describe('token expiry', () => {
    it('closes with 4001 when the token expires', async () => {
      reset()
      const a = await h.open({ expiresAt: Date.now() + 30 })
      assert.equal(a.owner.connection!.expiresAt, a.owner.expiresAt)
      await eventually(() => closeFrame(a) !== null)
      assert.deepEqual(closeFrame(a), { code: 4001, reason: 'token expired' })
      assert.deepEqual(
        frames(a).filter((f) => f.opcode === 1),
        [],
        'raw facilities get no error frame',
      )
      a.owner.terminate()
    })

    it('never asks for a timer longer than setTimeout can hold', async () => {
      const warnings: Error[] = []
      const onWarning = (w: Error): void => void warnings.push(w)
      process.on('warning', onWarning)
      try {
        const a = await h.open({ expiresAt: Date.now() + 2 ** 32 })
        await new Promise((r) => setTimeout(r, 20))
        assert.equal(a.owner.state, 'open')
        a.owner.terminate()
      } finally {
        process.off('warning', onWarning)
      }
      assert.deepEqual(
        warnings.filter((w) => w.name === 'TimeoutOverflowWarning'),
        [],
      )
    })

    it('sends expired_token first on json facilities', async () => {
      const a = await h.open({ expiresAt: Date.now() - 1000, definition: { format: 'json' } })
      await eventually(() => closeFrame(a) !== null)
      assert.deepEqual(JSON.parse(frames(a)[0]!.payload.toString()), {
        type: 'error',
        code: 'expired_token',
        detail: 'token expired',
      })
      a.owner.terminate()
    })

    it('lives until the new expiry after a refresh, and for good after a refresh to null', async () => {
      const a = await h.open({ expiresAt: Date.now() + 40, tokenAuthenticated: true })
      assert.equal(a.owner.tokenAuthenticated, true)
      const later = Date.now() + 60_000
      h.refreshImpl = async () => later
      await a.owner.refreshToken('fresh')
      assert.equal(a.owner.expiresAt, later)
      h.refreshImpl = async () => null
      await a.owner.refreshToken('fresher')
      assert.equal(a.owner.expiresAt, null)
      await new Promise((r) => setTimeout(r, 80))
      assert.equal(a.owner.state, 'open')
      a.owner.terminate()
    })

    it('closes with 4001 at the expiry a refresh gave a connection whose token had none', async () => {
      const a = await h.open({ expiresAt: null, tokenAuthenticated: true })
      assert.equal(a.owner.expiresAt, null)
      const at = Date.now() + 30
      h.refreshImpl = async () => at
      await a.owner.refreshToken('fresh')
      assert.equal(a.owner.expiresAt, at)
      await eventually(() => closeFrame(a) !== null)
      assert.deepEqual(closeFrame(a), { code: 4001, reason: 'token expired' })
      h.refreshImpl = async () => null
      a.owner.terminate()
    })

    it('refuses a refresh that fails, keeping the old expiry', async () => {
      const at = Date.now() + 60_000
      const a = await h.open({ expiresAt: at, tokenAuthenticated: true })
      h.refreshImpl = () => Promise.reject(new HttpError(401, 'bad'))
      await assert.rejects(a.owner.refreshToken('x'), /bad/)
      assert.equal(a.owner.expiresAt, at)
      h.refreshImpl = async () => null
      a.owner.terminate()
    })

    it('sets no expiry timer for an upgrade that never opened', async () => {
      const a = await h.upgrading({ expiresAt: Date.now() - 1000 })
      await new Promise((r) => setTimeout(r, 20))
      assert.equal(a.owner.state, 'upgrading')
      a.owner.abort(new HttpError(400, 'x'))
    })

    it('re-arms when the timer fires before the expiry (timers past ~24.8 days)', async (t) => {
      const a = await h.open({})
      t.mock.timers.enable({ apis: ['setTimeout', 'Date'], now: Date.now() })
      try {
        const max = 2 ** 31 - 1
        h.refreshImpl = async () => Date.now() + max + 1000
        await a.owner.refreshToken('long')
        t.mock.timers.tick(max)
        assert.equal(a.owner.state, 'open', 'fired early: re-armed')
        t.mock.timers.tick(999)
        assert.equal(a.owner.state, 'open')
        t.mock.timers.tick(1)
        assert.equal(a.owner.state, 'closing')
      } finally {
        t.mock.timers.reset()
        h.refreshImpl = async () => null
      }
      a.owner.terminate()
    })
  })
})
