import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import type { Audience } from '../src/channels/naming.js'
import { InvalidArgumentError } from '../src/errors.js'
import { anonymous, type Identity, normalizeIdentity } from '../src/identity/identity.js'
import { type Flags, RedisSubscriber } from '../src/channels/redis-subscriber.js'

const ALL: Audience[] = ['broadcast', 'group', 'user', 'session']
const john: Identity = { user: 'john', groups: ['admins', 'staff'], sessionKey: 'abc123' }

function subscribeTo(...subscribe: Audience[]): Flags {
  return { subscribe, publish: [] }
}

describe('RedisSubscriber', () => {
  describe('channels', () => {
    const subscriber = new RedisSubscriber()

    it('maps subscribe-broadcast to the broadcast channel', () => {
      const channels = subscriber.channels('chat', subscribeTo('broadcast'), john)
      assert.deepEqual(channels, { subscribe: ['broadcast:chat'], publish: [] })
    })

    it("maps subscribe-user to the user's channel", () => {
      const channels = subscriber.channels('chat', subscribeTo('user'), john)
      assert.deepEqual(channels.subscribe, ['user:john:chat'])
    })

    it('maps subscribe-group to one channel per group', () => {
      const channels = subscriber.channels('chat', subscribeTo('group'), john)
      assert.deepEqual(channels.subscribe, ['group:admins:chat', 'group:staff:chat'])
    })

    it("maps subscribe-session to the session's channel", () => {
      const channels = subscriber.channels('chat', subscribeTo('session'), john)
      assert.deepEqual(channels.subscribe, ['session:abc123:chat'])
    })

    it('maps publish flags the same way', () => {
      const channels = subscriber.channels(
        'chat',
        { subscribe: [], publish: ['user', 'session'] },
        john,
      )
      assert.deepEqual(channels, {
        subscribe: [],
        publish: ['user:john:chat', 'session:abc123:chat'],
      })
    })

    it('combines every audience', () => {
      const channels = subscriber.channels('chat', { subscribe: ALL, publish: ALL }, john)
      const expected = [
        'broadcast:chat',
        'group:admins:chat',
        'group:staff:chat',
        'session:abc123:chat',
        'user:john:chat',
      ]
      assert.deepEqual([...channels.subscribe].sort(), expected)
      assert.deepEqual([...channels.publish].sort(), expected)
    })

    it('names no group channel for a user without groups', () => {
      const identity = { user: 'john', groups: [], sessionKey: null }
      assert.deepEqual(subscriber.channels('chat', subscribeTo('group'), identity).subscribe, [])
    })

    it('lists a channel once when an audience is repeated', () => {
      const channels = subscriber.channels('chat', subscribeTo('user', 'user'), john)
      assert.deepEqual(channels.subscribe, ['user:john:chat'])
    })

    it('drops user, group and session flags entirely for an anonymous identity', () => {
      const channels = subscriber.channels('chat', { subscribe: ALL, publish: ALL }, anonymous())
      assert.deepEqual(channels, { subscribe: ['broadcast:chat'], publish: ['broadcast:chat'] })
    })

    it('never names a placeholder channel such as user::chat or user:null:chat', () => {
      const identities: Identity[] = [
        anonymous(),
        normalizeIdentity({ user: '', groups: [''], sessionKey: '' }),
        normalizeIdentity({ user: null, groups: [], sessionKey: null }),
        normalizeIdentity({}),
      ]
      for (const identity of identities) {
        const { subscribe, publish } = subscriber.channels('chat', subscribeTo(...ALL), identity)
        for (const channel of [...subscribe, ...publish]) {
          assert.doesNotMatch(channel, /::|null|undefined/)
        }
        assert.deepEqual(subscribe, ['broadcast:chat'])
      }
    })

    it('keeps the user channel of a user without a session, and vice versa', () => {
      const userOnly = { user: 'john', groups: [], sessionKey: null }
      assert.deepEqual(subscriber.channels('chat', subscribeTo(...ALL), userOnly).subscribe, [
        'broadcast:chat',
        'user:john:chat',
      ])
      const sessionOnly = { user: null, groups: [], sessionKey: 'abc123' }
      assert.deepEqual(subscriber.channels('chat', subscribeTo(...ALL), sessionOnly).subscribe, [
        'broadcast:chat',
        'session:abc123:chat',
      ])
    })
  })

  describe('prefix', () => {
    for (const prefix of ['ws4redis', 'ws4redis:']) {
      it(`starts every channel with ws4redis: for prefix '${prefix}'`, () => {
        const subscriber = new RedisSubscriber({ prefix })
        const channels = subscriber.channels('chat', subscribeTo(...ALL), john)
        assert.deepEqual([...channels.subscribe].sort(), [
          'ws4redis:broadcast:chat',
          'ws4redis:group:admins:chat',
          'ws4redis:group:staff:chat',
          'ws4redis:session:abc123:chat',
          'ws4redis:user:john:chat',
        ])
      })
    }

    it('uses no prefix by default or for an empty prefix', () => {
      const channels = new RedisSubscriber({ prefix: '' }).channels(
        'chat',
        subscribeTo('broadcast'),
        john,
      )
      assert.deepEqual(channels.subscribe, ['broadcast:chat'])
    })
  })

  describe('audienceChannels', () => {
    it('names the channels of one audience', () => {
      const subscriber = new RedisSubscriber()
      assert.deepEqual(subscriber.audienceChannels('news', 'broadcast', anonymous()), [
        'broadcast:news',
      ])
      assert.deepEqual(subscriber.audienceChannels('news', 'user', john), ['user:john:news'])
      assert.deepEqual(subscriber.audienceChannels('news', 'user', anonymous()), [])
      assert.deepEqual(subscriber.audienceChannels('news', 'session', anonymous()), [])
      assert.deepEqual(subscriber.audienceChannels('news', 'group', anonymous()), [])
    })
  })
})

describe('normalizeIdentity', () => {
  it('turns null, undefined and an empty object into the anonymous identity', () => {
    assert.deepEqual(normalizeIdentity(null), anonymous())
    assert.deepEqual(normalizeIdentity(undefined), anonymous())
    assert.deepEqual(normalizeIdentity({}), anonymous())
  })

  it('keeps a complete identity', () => {
    assert.deepEqual(normalizeIdentity(john), john)
  })

  it('treats empty strings as absent', () => {
    assert.deepEqual(normalizeIdentity({ user: '', groups: ['', 'staff', ''], sessionKey: '' }), {
      user: null,
      groups: ['staff'],
      sessionKey: null,
    })
  })

  it('turns numbers into strings', () => {
    const identity = normalizeIdentity({
      user: 42,
      groups: [7, 'staff'],
      sessionKey: 99,
    } as unknown as Partial<Identity>)
    assert.deepEqual(identity, { user: '42', groups: ['7', 'staff'], sessionKey: '99' })
  })

  it('turns bigints into strings', () => {
    const identity = normalizeIdentity({ user: 12345678901234567890n } as unknown as Identity)
    assert.equal(identity.user, '12345678901234567890')
  })

  it('removes duplicate groups, including a number and its string', () => {
    const identity = normalizeIdentity({
      groups: ['staff', 'admins', 'staff', 1, '1'],
    } as unknown as Partial<Identity>)
    assert.deepEqual(identity.groups, ['staff', 'admins', '1'])
  })

  it('does not share the groups array of its input', () => {
    const groups = ['staff']
    const identity = normalizeIdentity({ user: 'john', groups })
    identity.groups.push('admins')
    assert.deepEqual(groups, ['staff'])
  })

  const bad: [string, unknown][] = [
    ['a string instead of an object', 'john'],
    ['a number instead of an object', 42],
    ['an object as user', { user: { name: 'john' } }],
    ['a boolean as user', { user: true }],
    ['an array as sessionKey', { sessionKey: ['abc'] }],
    ['a string as groups', { groups: 'admins' }],
    ['an object inside groups', { groups: [{ name: 'admins' }] }],
    ['a boolean inside groups', { groups: ['ok', false] }],
  ]
  for (const [name, value] of bad) {
    it(`throws InvalidArgumentError for ${name}`, () => {
      assert.throws(
        () => normalizeIdentity(value as Partial<Identity>),
        (err: unknown) => {
          assert.ok(err instanceof InvalidArgumentError)
          assert.equal(err.code, 'WSF_INVALID_ARGUMENT')
          return true
        },
      )
    })
  }
})
