import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { HttpError } from '../src/errors.js'
import { matchesPath, parseRequest } from '../src/upgrade/parse-url.js'

/** Asserts that parsing `url` under '/ws/' is refused with HttpError `status`. */
function refuses(url: string, status: number, limits?: Parameters<typeof parseRequest>[2]): void {
  assert.throws(
    () => parseRequest(url, '/ws/', limits),
    (err: unknown) => {
      assert.ok(err instanceof HttpError, `expected HttpError, got ${String(err)}`)
      assert.equal(err.status, status)
      assert.equal(err.code, `WSF_HTTP_${status}`)
      return true
    },
  )
}

describe('parseRequest', () => {
  describe('facility', () => {
    it('is the path segment after the prefix', () => {
      assert.equal(parseRequest('/ws/chat', '/ws/').facility, 'chat')
      assert.equal(parseRequest('/ws/chat?subscribe-broadcast', '/ws/').facility, 'chat')
    })

    it('is taken after a custom prefix', () => {
      assert.equal(parseRequest('/socket/v1/chat', '/socket/v1/').facility, 'chat')
    })

    it('is percent-decoded', () => {
      assert.equal(parseRequest('/ws/caf%C3%A9', '/ws/').facility, 'café')
      assert.equal(parseRequest('/ws/my%20room', '/ws/').facility, 'my room')
      assert.equal(parseRequest('/ws/%E8%81%8A%E5%A4%A9', '/ws/').facility, '聊天')
    })

    it('keeps "+" literal (paths are not form-encoded)', () => {
      assert.equal(parseRequest('/ws/a+b', '/ws/').facility, 'a+b')
    })

    it('drops one trailing slash', () => {
      assert.equal(parseRequest('/ws/chat/', '/ws/').facility, 'chat')
      assert.equal(parseRequest('/ws/chat/?subscribe-user', '/ws/').facility, 'chat')
    })

    it('is refused with 400 when the percent-encoding is malformed', () => {
      refuses('/ws/%zz', 400)
      refuses('/ws/chat%', 400)
      refuses('/ws/%E0%A4%A', 400)
      refuses('/ws/%C3%28', 400)
    })

    it('is refused with 400 when it contains ":"', () => {
      refuses('/ws/user:john', 400)
      refuses('/ws/:', 400)
    })

    it('is refused with 400 when ":" is percent-encoded', () => {
      refuses('/ws/user%3Ajohn', 400)
      refuses('/ws/user%3ajohn', 400)
    })

    it('is refused with 400 when it contains a percent-encoded control character', () => {
      refuses('/ws/chat%00', 400)
      refuses('/ws/chat%0A', 400)
    })

    it('is refused with 400 when empty', () => {
      refuses('/ws/', 400)
      refuses('/ws/?subscribe-broadcast', 400)
      refuses('/ws//', 400)
    })

    it('is refused with 400 when longer than the limit', () => {
      assert.equal(parseRequest(`/ws/${'a'.repeat(128)}`, '/ws/').facility, 'a'.repeat(128))
      refuses(`/ws/${'a'.repeat(129)}`, 400)
      refuses('/ws/abcde', 400, { maxFacilityLength: 4 })
      assert.equal(parseRequest('/ws/abcd', '/ws/', { maxFacilityLength: 4 }).facility, 'abcd')
    })

    it('is refused with 404 when the path is outside the prefix', () => {
      refuses('/other/chat', 404)
      refuses('/wsx/chat', 404)
      refuses('/', 404)
    })
  })

  describe('URL length', () => {
    it('accepts 4096 characters and refuses longer URLs with 414', () => {
      const base = '/ws/chat?x='
      const exact = base + 'a'.repeat(4096 - base.length)
      assert.equal(exact.length, 4096)
      assert.equal(parseRequest(exact, '/ws/').facility, 'chat')
      refuses(`${exact}a`, 414)
    })

    it('applies a custom limit', () => {
      refuses('/ws/chat?subscribe-broadcast', 414, { maxUrlLength: 10 })
    })
  })

  describe('flags', () => {
    it('reads subscribe and publish flags', () => {
      const parsed = parseRequest(
        '/ws/chat?subscribe-broadcast&subscribe-user&publish-session&publish-group',
        '/ws/',
      )
      assert.deepEqual(parsed.subscribe, ['broadcast', 'user'])
      assert.deepEqual(parsed.publish, ['group', 'session'])
      assert.equal(parsed.echo, false)
    })

    it('has no flags without a query', () => {
      const parsed = parseRequest('/ws/chat', '/ws/')
      assert.deepEqual(parsed.subscribe, [])
      assert.deepEqual(parsed.publish, [])
      assert.equal(parsed.echo, false)
      assert.equal(parsed.query.size, 0)
    })

    it('reads flags case-insensitively', () => {
      const parsed = parseRequest('/ws/chat?SUBSCRIBE-User&Publish-SESSION&ECHO', '/ws/')
      assert.deepEqual(parsed.subscribe, ['user'])
      assert.deepEqual(parsed.publish, ['session'])
      assert.equal(parsed.echo, true)
    })

    it('lists audiences in a fixed order whatever the query order', () => {
      const parsed = parseRequest(
        '/ws/chat?subscribe-session&subscribe-user&subscribe-group&subscribe-broadcast',
        '/ws/',
      )
      assert.deepEqual(parsed.subscribe, ['broadcast', 'group', 'user', 'session'])
    })

    it('ignores unknown keys', () => {
      const parsed = parseRequest(
        '/ws/chat?foo=bar&subscribe-everyone&publish-&subscribe&unsubscribe-user&subscribe-users',
        '/ws/',
      )
      assert.deepEqual(parsed.subscribe, [])
      assert.deepEqual(parsed.publish, [])
      assert.equal(parsed.echo, false)
    })

    it('collapses duplicate flags', () => {
      const parsed = parseRequest(
        '/ws/chat?subscribe-user&subscribe-user&SUBSCRIBE-USER&publish-user&Publish-User',
        '/ws/',
      )
      assert.deepEqual(parsed.subscribe, ['user'])
      assert.deepEqual(parsed.publish, ['user'])
    })

    it('reads the echo flag', () => {
      assert.equal(parseRequest('/ws/chat?echo', '/ws/').echo, true)
      assert.equal(parseRequest('/ws/chat?subscribe-user&echo', '/ws/').echo, true)
      assert.equal(parseRequest('/ws/chat?subscribe-user', '/ws/').echo, false)
    })

    it('ignores flag values: subscribe-user=0 and echo=false still turn the flags on (as in ws4redis)', () => {
      const parsed = parseRequest(
        '/ws/chat?subscribe-user=0&publish-session=false&echo=false',
        '/ws/',
      )
      assert.deepEqual(parsed.subscribe, ['user'])
      assert.deepEqual(parsed.publish, ['session'])
      assert.equal(parsed.echo, true)
    })

    it('keeps every query parameter with a lower-cased key, first value wins', () => {
      const parsed = parseRequest('/ws/chat?Token=abc&token=def&room=42', '/ws/')
      assert.equal(parsed.query.get('token'), 'abc')
      assert.equal(parsed.query.get('room'), '42')
      assert.equal(parsed.query.has('Token'), false)
    })

    it('reads the query as URLSearchParams does, with or without anything to decode', () => {
      const queries = [
        'a=1&b=2',
        'a&&b=&=c&d==e',
        'x=a%20b&y=c+d&z=%zz&w=%E2%82%AC',
        'k=v&k=w&K=u',
        '&&',
        'a=b=c&token=t.u_v-w',
      ]
      for (const q of queries) {
        const parsed = parseRequest(`/ws/chat?${q}`, '/ws/')
        const expected = new Map<string, string>()
        for (const [k, v] of new URLSearchParams(q)) {
          if (!expected.has(k.toLowerCase())) expected.set(k.toLowerCase(), v)
        }
        assert.deepEqual(parsed.query, expected, q)
      }
    })

    it('keeps the first token parameter, named exactly so, as tokenOf reads it', () => {
      assert.equal(parseRequest('/ws/chat?Token=abc&token=def&token=ghi', '/ws/').token, 'def')
      assert.equal(parseRequest('/ws/chat?token=a%2Bb', '/ws/').token, 'a+b')
      assert.equal(parseRequest('/ws/chat?token=', '/ws/').token, '')
      assert.equal(parseRequest('/ws/chat?TOKEN=x', '/ws/').token, null)
      assert.equal(parseRequest('/ws/chat', '/ws/').token, null)
    })
  })
})

describe('matchesPath', () => {
  it('matches paths under the prefix', () => {
    assert.equal(matchesPath('/ws/chat', '/ws/'), true)
    assert.equal(matchesPath('/ws/chat?subscribe-broadcast', '/ws/'), true)
    assert.equal(matchesPath('/ws/', '/ws/'), true)
  })

  it('matches the prefix without its trailing slash', () => {
    assert.equal(matchesPath('/ws', '/ws/'), true)
    assert.equal(matchesPath('/ws?subscribe-broadcast', '/ws/'), true)
  })

  it('does not match other paths', () => {
    assert.equal(matchesPath('/wsx/chat', '/ws/'), false)
    assert.equal(matchesPath('/wsx', '/ws/'), false)
    assert.equal(matchesPath('/w', '/ws/'), false)
    assert.equal(matchesPath('/', '/ws/'), false)
    assert.equal(matchesPath('/api/ws/chat', '/ws/'), false)
    assert.equal(matchesPath('', '/ws/'), false)
  })

  it('looks at the path only, not the query', () => {
    assert.equal(matchesPath('/other?next=/ws/chat', '/ws/'), false)
  })
})

describe('parseRequest of the bare prefix', () => {
  it('treats /ws (the prefix without its slash) as an empty facility: 400, not 404', () => {
    assert.throws(
      () => parseRequest('/ws?subscribe-broadcast', '/ws/'),
      (err: unknown) => {
        assert.ok(err instanceof HttpError)
        assert.equal(err.status, 400)
        return true
      },
    )
  })
})
