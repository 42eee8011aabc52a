import assert from 'node:assert/strict'
import { after, describe, it } from 'node:test'
import { performance } from 'node:perf_hooks'
import WebSocket from 'ws'
import fc from 'fast-check'
import {
  FAST_RETRY_MS,
  OUTAGE_FRACTION,
  RECONNECT_BASE_MS,
  RECONNECT_CAP_MS,
  ReconnectBackoff,
} from '../src/engine/reconnect-backoff.js'
import type { EngineStatus } from '../src/index.js'
import { startRedis } from './helpers/redis.js'
import { eventually, sleep, startBroker } from './helpers/ws.js'

/** 101 when an upgrade to `url` is accepted (then closed), else the HTTP status it was refused with. */
function attempt(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url)
    ws.on('unexpected-response', (_req, res) => {
      res.resume()
      resolve(res.statusCode ?? 0)
      ws.terminate()
    })
    ws.on('open', () => {
      resolve(101)
      ws.close()
    })
    ws.on('error', (err) => {
      if (!String(err).includes('Unexpected server response')) reject(err)
    })
  })
}

describe('ReconnectBackoff', () => {
  /** A backoff on a clock the test moves; `random` picks the jitter (0: shortest, 1: longest). */
  function schedule(random: () => number) {
    let now = 1_000_000
    const backoff = new ReconnectBackoff(() => now, random)
    return { at: (ms: number) => (now = 1_000_000 + ms), delay: backoff.strategy }
  }

  it('retries at the base delay (50-100 ms) during the first seconds of an outage, whatever the count', () => {
    for (const [random, expected] of [
      [0, RECONNECT_BASE_MS / 2],
      [1, RECONNECT_BASE_MS],
    ] as const) {
      const s = schedule(() => random)
      s.at(0)
      assert.equal(s.delay(0), expected)
      for (let retries = 1; retries <= 30; retries++) {
        s.at(((FAST_RETRY_MS - 1) * retries) / 30)
        assert.equal(s.delay(retries), expected, `retry ${retries}`)
      }
    }
  })

  it('then waits at most a quarter of the outage so far, jittered, up to the cap', () => {
    const cases: [elapsed: number, ceiling: number][] = [
      [FAST_RETRY_MS, FAST_RETRY_MS * OUTAGE_FRACTION],
      [3000, 750],
      [10_000, 2500],
      [20_000, RECONNECT_CAP_MS],
      [3_600_000, RECONNECT_CAP_MS],
    ]
    for (const [random, share] of [
      [0, 0.5],
      [1, 1],
    ] as const) {
      const s = schedule(() => random)
      s.at(0)
      s.delay(0)
      cases.forEach(([elapsed, ceiling], i) => {
        s.at(elapsed)
        assert.equal(s.delay(i + 1), ceiling * share, `after ${elapsed} ms`)
      })
    }
  })

  it('notices Redis back within a quarter of the outage (at least the base delay, at most the cap)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 120_000 }),
        fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { minLength: 1 }),
        (back, jitters) => {
          let n = 0
          const s = schedule(() => jitters[n++ % jitters.length]!)
          // Attempts fail until Redis is back at `back`; the first one at or after it succeeds.
          let t = 0
          for (let retries = 0; t < back; retries++) {
            s.at(t)
            t += s.delay(retries)
          }
          const bound = Math.max(
            RECONNECT_BASE_MS,
            Math.min(RECONNECT_CAP_MS, back * OUTAGE_FRACTION),
          )
          assert.ok(t - back <= bound, `back at ${back} ms, noticed at ${t} ms`)
        },
      ),
    )
  })

  it('starts over with a new outage, when node-redis counts from 0 or 1 again', () => {
    const s = schedule(() => 1)
    s.at(0)
    for (let retries = 0; retries < 5; retries++) s.delay(retries)
    s.at(10_000)
    assert.equal(s.delay(5), 2500)
    assert.equal(s.delay(0), RECONNECT_BASE_MS)
    s.delay(1)
    s.delay(2)
    s.at(20_000)
    // Without the 0 (a lost connection node-redis reports straight from attempt 1).
    assert.equal(s.delay(1), RECONNECT_BASE_MS)
    s.at(20_000 + FAST_RETRY_MS)
    assert.equal(s.delay(2), FAST_RETRY_MS * OUTAGE_FRACTION)
  })
})

describe('RedisEngine after redis-server restarts', () => {
  const cleanup: (() => Promise<void>)[] = []
  after(async () => {
    for (const fn of cleanup.reverse()) await fn()
  })

  it('reports ready and accepts upgrades again once Redis answers, over several restarts', async (t) => {
    const redis = await startRedis()
    cleanup.push(() => redis.stop())
    const b = await startBroker({ redis: redis.url, replay: false })
    cleanup.push(() => b.close())
    const url = b.url('/ws/back?subscribe-broadcast')
    assert.equal(await attempt(url), 101)
    const readyAt: number[] = []
    b.broker.on('engine', (s: EngineStatus) => {
      if (s === 'ready') readyAt.push(performance.now())
    })
    // Outages of different lengths (beyond the restart itself): the reconnect delay in force when
    // Redis returns depends on how long it was away.
    const outages = [0, 300, 1000, 3000]
    const measured: string[] = []
    for (const outage of outages) {
      await redis.kill()
      await eventually(() => b.broker.engine.status === 'reconnecting', 10_000)
      assert.equal(await attempt(url), 503)
      await sleep(outage)
      await redis.restart()
      // restart() resolves once redis-server answered PING; it polls every 50 ms, so the engine
      // may be ready a little before (a negative figure below).
      const answered = performance.now()
      let status = 0
      for (let i = 0; i < 1000 && status !== 101; i++) {
        status = await attempt(url)
        if (status !== 101) await sleep(20)
      }
      const accepted = performance.now() - answered
      assert.equal(status, 101)
      await eventually(() => b.broker.engine.status === 'ready', 15_000)
      // One `ready` per restart.
      assert.equal(readyAt.length, measured.length + 1)
      measured.push(
        `outage +${outage} ms: engine ready ${Math.round(readyAt.at(-1)! - answered)} ms, ` +
          `first upgrade accepted ${Math.round(accepted)} ms after redis-server answered PING`,
      )
    }
    for (const line of measured) t.diagnostic(line)
  })
})
