import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import {
  AUDIENCES,
  assertFacility,
  channelName,
  DEFAULT_MAX_FACILITY_LENGTH,
  facilityProblem,
  isAudience,
  normalizePrefix,
} from '../src/channels/naming.js'
import { InvalidArgumentError } from '../src/errors.js'

const invalidArgument = { code: 'WSF_INVALID_ARGUMENT' }

describe('channelName', () => {
  it('names the four audiences without a prefix', () => {
    assert.equal(channelName('', 'broadcast', 'chat'), 'broadcast:chat')
    assert.equal(channelName('', 'group', 'chat', 'admins'), 'group:admins:chat')
    assert.equal(channelName('', 'user', 'chat', 'john'), 'user:john:chat')
    assert.equal(channelName('', 'session', 'chat', 'abc123'), 'session:abc123:chat')
  })

  it("names the four audiences with ws4redis's prefix", () => {
    const prefix = normalizePrefix('ws4redis')
    assert.equal(channelName(prefix, 'broadcast', 'chat'), 'ws4redis:broadcast:chat')
    assert.equal(channelName(prefix, 'group', 'chat', 'admins'), 'ws4redis:group:admins:chat')
    assert.equal(channelName(prefix, 'user', 'chat', 'john'), 'ws4redis:user:john:chat')
    assert.equal(channelName(prefix, 'session', 'chat', 'abc123'), 'ws4redis:session:abc123:chat')
  })

  it('ignores an id for broadcast channels', () => {
    assert.equal(channelName('', 'broadcast', 'chat', 'john'), 'broadcast:chat')
  })

  it('refuses a user, group or session channel without an id', () => {
    for (const audience of ['group', 'user', 'session'] as const) {
      assert.throws(() => channelName('', audience, 'chat'), InvalidArgumentError)
      assert.throws(() => channelName('', audience, 'chat'), invalidArgument)
    }
  })

  it('refuses an empty id instead of naming a shared placeholder channel', () => {
    for (const audience of ['group', 'user', 'session'] as const) {
      assert.throws(() => channelName('', audience, 'chat', ''), invalidArgument)
    }
  })
})

describe('normalizePrefix', () => {
  it('turns an absent or empty prefix into no prefix', () => {
    assert.equal(normalizePrefix(''), '')
    assert.equal(normalizePrefix(null), '')
    assert.equal(normalizePrefix(undefined), '')
  })

  it('appends the separator to a bare name', () => {
    assert.equal(normalizePrefix('ws4redis'), 'ws4redis:')
  })

  it('keeps a prefix that already ends with the separator', () => {
    assert.equal(normalizePrefix('ws4redis:'), 'ws4redis:')
  })
})

describe('facilityProblem', () => {
  it('accepts ordinary names', () => {
    assert.equal(facilityProblem('chat'), null)
    assert.equal(facilityProblem('my-room_1.2'), null)
    assert.equal(facilityProblem('a/b c'), null)
  })

  it('accepts unicode names', () => {
    assert.equal(facilityProblem('café'), null)
    assert.equal(facilityProblem('чат'), null)
    assert.equal(facilityProblem('聊天室'), null)
    assert.equal(facilityProblem('💬'), null)
  })

  it('refuses an empty name', () => {
    assert.notEqual(facilityProblem(''), null)
  })

  it('refuses names containing ":"', () => {
    assert.notEqual(facilityProblem(':'), null)
    assert.notEqual(facilityProblem('user:john'), null)
    assert.notEqual(facilityProblem('chat:'), null)
  })

  it('accepts the maximum length and refuses one character more', () => {
    assert.equal(DEFAULT_MAX_FACILITY_LENGTH, 128)
    assert.equal(facilityProblem('a'.repeat(128)), null)
    assert.notEqual(facilityProblem('a'.repeat(129)), null)
  })

  it('applies a custom maximum length', () => {
    assert.equal(facilityProblem('abcd', 4), null)
    assert.notEqual(facilityProblem('abcde', 4), null)
  })

  it('refuses control characters', () => {
    for (const name of ['a\u0000b', 'line\nbreak', 'tab\t', '\r', 'del\u007f', '\u001b[31m']) {
      assert.notEqual(facilityProblem(name), null, JSON.stringify(name))
    }
  })
})

describe('assertFacility', () => {
  it('passes a valid name', () => {
    assert.doesNotThrow(() => assertFacility('chat'))
  })

  it('throws InvalidArgumentError for an invalid name', () => {
    assert.throws(() => assertFacility('a:b'), InvalidArgumentError)
    assert.throws(() => assertFacility(''), invalidArgument)
    assert.throws(() => assertFacility('abcde', 4), invalidArgument)
  })
})

describe('isAudience', () => {
  it('recognises exactly the four audiences', () => {
    for (const audience of AUDIENCES) assert.equal(isAudience(audience), true)
    assert.deepEqual([...AUDIENCES].sort(), ['broadcast', 'group', 'session', 'user'])
    for (const other of ['everyone', 'Broadcast', 'users', '', null, undefined, 1]) {
      assert.equal(isAudience(other), false)
    }
  })
})
