// history/recovery.ts (the recover parameter, the recovered frame) and bad recover input at a real
// broker (memory engine): 400s, positions for channels the client does not have, positions
// beyond the top or of another epoch.
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import type { OpenRecovery } from '../../src/delivery/hub.js'
import { HttpError } from '../../src/errors.js'
import {
  lostFrame,
  parseRecoverParam,
  recoveredFrame,
  type Recoveries,
} from '../../src/history/recovery.js'
import { HistoryClient, recoverParam } from '../helpers/history.js'
import { identify } from '../helpers/identity.js'
import { startBroker, type TestServer, upgradeStatus } from '../helpers/ws.js'

function assertInvalid(value: string, what: string): void {
  assert.throws(
    () => parseRecoverParam(value),
    (err: unknown) => {
      assert.ok(err instanceof HttpError, what)
      assert.equal(err.status, 400, what)
      assert.equal(err.code, 'WSF_RECOVER_INVALID', what)
      return true
    },
    what,
  )
}

describe('parseRecoverParam', () => {
  it('no parameter, or an empty one: no positions', () => {
    assert.equal(parseRecoverParam(undefined).size, 0)
    assert.equal(parseRecoverParam('').size, 0)
    assert.equal(parseRecoverParam('{}').size, 0)
  })

  it('reads the position of each label', () => {
    const positions = parseRecoverParam(
      JSON.stringify({
        broadcast: { epoch: '1733', offset: 12 },
        'group:admins': { epoch: '', offset: 0 },
        user: { epoch: 'e'.repeat(64), offset: Number.MAX_SAFE_INTEGER, extra: true },
      }),
    )
    assert.deepEqual(
      [...positions],
      [
        ['broadcast', { epoch: '1733', offset: 12 }],
        ['group:admins', { epoch: '', offset: 0 }],
        ['user', { epoch: 'e'.repeat(64), offset: Number.MAX_SAFE_INTEGER }],
      ],
    )
  })

  it('up to 64 channels', () => {
    const many = (n: number) =>
      JSON.stringify(
        Object.fromEntries(
          Array.from({ length: n }, (_, i) => [`group:g${i}`, { epoch: 'e', offset: 1 }]),
        ),
      )
    assert.equal(parseRecoverParam(many(64)).size, 64)
    assertInvalid(many(65), '65 channels')
  })

  it('anything else is a 400 with code WSF_RECOVER_INVALID', () => {
    const cases: [string, string][] = [
      ['{', 'not JSON'],
      ['broadcast', 'not JSON'],
      ['[]', 'an array'],
      ['null', 'null'],
      ['12', 'a number'],
      ['"x"', 'a string'],
      ['{"broadcast":null}', 'a null position'],
      ['{"broadcast":[]}', 'an array position'],
      ['{"broadcast":"1733:12"}', 'a string position'],
      ['{"broadcast":{"offset":1}}', 'no epoch'],
      ['{"broadcast":{"epoch":1733,"offset":1}}', 'a numeric epoch'],
      [`{"broadcast":{"epoch":"${'e'.repeat(65)}","offset":1}}`, 'an epoch of 65 characters'],
      ['{"broadcast":{"epoch":"e"}}', 'no offset'],
      ['{"broadcast":{"epoch":"e","offset":"1"}}', 'a string offset'],
      ['{"broadcast":{"epoch":"e","offset":-1}}', 'a negative offset'],
      ['{"broadcast":{"epoch":"e","offset":1.5}}', 'a fractional offset'],
      ['{"broadcast":{"epoch":"e","offset":9007199254740992}}', 'an unsafe offset'],
      ['{"broadcast":{"epoch":"e","offset":1},"user":{"epoch":"e"}}', 'one bad position of two'],
    ]
    for (const [value, what] of cases) assertInvalid(value, what)
  })
})

const open = (label: string, recovered: boolean, frames = 0, offset = 5): OpenRecovery => ({
  label,
  epoch: 'e',
  offset,
  recovered,
  frames: Array.from({ length: frames }, () => Buffer.from('f')),
})

describe('recoveredFrame / lostFrame', () => {
  const recoveries = (channels: OpenRecovery[], requested: string[]): Recoveries => ({
    channels: new Map(channels.map((c) => [`ch:${c.label}`, c])),
    requested: new Set(requested),
  })

  it('recovered when every channel asked for was recovered; missed counts the frames sent', () => {
    const frame = recoveredFrame(
      recoveries([open('broadcast', true, 3), open('user', false, 0, 9)], ['broadcast']),
    )
    assert.deepEqual(frame, {
      type: 'recovered',
      recovered: true,
      channels: {
        broadcast: { epoch: 'e', offset: 5, recovered: true, missed: 3 },
        // Not asked for: not recovered, and not holding the whole connection back either.
        user: { epoch: 'e', offset: 9, recovered: false, missed: 0 },
      },
    })
  })

  it('not recovered when nothing was asked, or when one channel asked for was not', () => {
    const none = recoveredFrame(recoveries([open('broadcast', true)], []))
    assert.deepEqual(none, {
      type: 'recovered',
      recovered: false,
      channels: { broadcast: { epoch: 'e', offset: 5, recovered: false, missed: 0 } },
    })
    const frame = recoveredFrame(
      recoveries([open('broadcast', true, 2), open('user', false)], ['broadcast', 'user']),
    )
    assert.deepEqual(frame, {
      type: 'recovered',
      recovered: false,
      channels: {
        broadcast: { epoch: 'e', offset: 5, recovered: true, missed: 2 },
        user: { epoch: 'e', offset: 5, recovered: false, missed: 0 },
      },
    })
  })

  it('lostFrame: one channel, not recovered, at its new position', () => {
    assert.deepEqual(lostFrame('group:a', { epoch: 'e2', offset: 0 }), {
      type: 'recovered',
      recovered: false,
      channels: { 'group:a': { epoch: 'e2', offset: 0, recovered: false, missed: 0 } },
    })
  })
})

describe('bad recover input at a broker (memory engine)', () => {
  let t: TestServer
  const refused: [number, string][] = []
  before(async () => {
    t = await startBroker({ identify })
    t.broker.facility('feed', { format: 'json', history: { size: 10, ttl: 60 } })
    t.broker.facility('plain', { format: 'json' })
    t.broker.on('refused', (_req, status, reason) => refused.push([status, reason]))
  })
  after(async () => {
    await t.close()
  })

  const publish = async (n: number, channels = ['broadcast:feed']) => {
    for (let i = 0; i < n; i++)
      await t.broker.publish(channels, JSON.stringify({ i }), { history: { size: 10, ttl: 60 } })
  }

  it('an invalid recover parameter is refused with 400 before the upgrade', async () => {
    for (const [param, reason] of [
      ['recover=%7B', 'recover must be JSON'],
      [`recover=${encodeURIComponent('[1]')}`, 'recover must be a JSON object'],
      [recoverParam({ broadcast: { epoch: 'e', offset: -1 } }), 'recover positions are'],
    ] as const) {
      refused.length = 0
      const { status, body } = await upgradeStatus(t.url(`/ws/feed?subscribe-broadcast&${param}`))
      assert.equal(status, 400)
      assert.match(body, new RegExp(reason.replace(/[{}]/g, '\\$&')))
      assert.equal(refused.length, 1)
      assert.equal(refused[0]![0], 400)
      assert.match(refused[0]![1], /^recover /)
    }
    assert.equal(t.broker.stats.connections, 0)
    assert.equal(t.broker.stats.upgrading, 0)
  })

  it('a facility without history ignores the parameter', async () => {
    const client = new HistoryClient()
    await client.open(t.url('/ws/plain?subscribe-broadcast&recover=%7B'))
    await t.broker.publish(['broadcast:plain'], '{"x":1}')
    await client.until(() => client.frames.length === 1, 'data frame')
    assert.deepEqual(client.frames, [{ type: 'data', data: { x: 1 } }])
    client.terminate()
  })

  it('positions for channels the connection does not have are ignored', async () => {
    await publish(3)
    const first = new HistoryClient()
    await first.open(t.url('/ws/feed?subscribe-broadcast'))
    const { epoch } = (await first.recoveredFrame()).channels.broadcast!
    first.terminate()
    const client = new HistoryClient()
    await client.open(
      `${t.url('/ws/feed?subscribe-broadcast&subscribe-user&user=ann')}&${recoverParam({
        broadcast: { epoch, offset: 1 },
        // Not channels of this connection: another user's view of the facility, a group it is
        // not in, a label that names nothing.
        'group:admins': { epoch, offset: 0 },
        session: { epoch: 'x', offset: 99 },
        nonsense: { epoch: 'x', offset: 1 },
      })}`,
    )
    const frame = await client.recoveredFrame()
    assert.equal(frame.recovered, true, 'the only channel asked for that it has was recovered')
    assert.deepEqual(Object.keys(frame.channels).sort(), ['broadcast', 'user'])
    assert.deepEqual(frame.channels.broadcast, { epoch, offset: 3, recovered: true, missed: 2 })
    assert.equal(frame.channels.user!.recovered, false, 'not asked for')
    assert.deepEqual(
      client.data.map((f) => [f.channel, f.offset]),
      [
        ['broadcast', 2],
        ['broadcast', 3],
      ],
    )
    client.terminate()
  })

  it('only foreign positions: nothing recovered, nothing sent but the positions', async () => {
    const client = new HistoryClient()
    await client.open(
      `${t.url('/ws/feed?subscribe-broadcast')}&${recoverParam({ user: { epoch: 'e', offset: 0 } })}`,
    )
    const frame = await client.recoveredFrame()
    assert.equal(frame.recovered, false)
    assert.equal(frame.channels.broadcast!.recovered, false)
    assert.equal(client.connections[0]!.length, 1)
    client.terminate()
  })

  it('an offset beyond the top, or another epoch: recovered:false at the current position, then live', async () => {
    const probe = new HistoryClient()
    await probe.open(t.url('/ws/feed?subscribe-broadcast'))
    const now = (await probe.recoveredFrame()).channels.broadcast!
    probe.terminate()
    for (const position of [
      { epoch: now.epoch, offset: now.offset + 1 },
      { epoch: now.epoch, offset: now.offset + 1000 },
      { epoch: `${now.epoch}0`, offset: 1 },
    ]) {
      const client = new HistoryClient()
      await client.open(
        `${t.url('/ws/feed?subscribe-broadcast')}&${recoverParam({ broadcast: position })}`,
      )
      const frame = await client.recoveredFrame()
      assert.deepEqual(
        frame,
        {
          type: 'recovered',
          recovered: false,
          channels: { broadcast: { ...now, recovered: false, missed: 0 } },
        },
        JSON.stringify(position),
      )
      assert.equal(client.connections[0]!.length, 1, 'nothing missed is sent')
      client.terminate()
    }
    // The top itself is recovered, with nothing missed.
    const client = new HistoryClient()
    await client.open(
      `${t.url('/ws/feed?subscribe-broadcast')}&${recoverParam({ broadcast: { epoch: now.epoch, offset: now.offset } })}`,
    )
    const frame = await client.recoveredFrame()
    assert.deepEqual(frame.channels.broadcast, { ...now, recovered: true, missed: 0 })
    await publish(1)
    await client.until(() => client.data.length === 1, 'live message')
    assert.equal(client.data[0]!.offset, now.offset + 1)
    client.terminate()
  })
})
