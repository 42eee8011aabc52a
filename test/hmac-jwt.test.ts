import assert from 'node:assert/strict'
import { createHmac } from 'node:crypto'
import { describe, it } from 'node:test'
import { jwtVerify, SignJWT } from 'jose'
import { JwtVerifier } from '../src/identity/jwt.js'

const SECRET = 'a-long-enough-hmac-secret-for-wsfacility-tests-0123456789'
const KEY = new TextEncoder().encode(SECRET)
const now = () => Math.floor(Date.now() / 1000)
const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url')

/** A token signed by hand, with any header (jose refuses to sign some of them). */
function handMade(header: object, payload: object, secret = SECRET, bits = 256): string {
  const input = `${b64(header)}.${b64(payload)}`
  return `${input}.${createHmac(`sha${bits}`, secret).update(input).digest('base64url')}`
}

async function refusal(verifier: JwtVerifier, token: string): Promise<string> {
  // A secret's verdict comes at once: a refusal is thrown, not a rejection.
  const err = await Promise.resolve(token)
    .then((t) => verifier.verify(t))
    .then(
      () => assert.fail('accepted'),
      (e: unknown) => e as { code: string; message: string },
    )
  assert.equal(err.code === 'WSF_TOKEN_INVALID' || err.code === 'WSF_TOKEN_EXPIRED', true)
  return err.message
}

describe('JwtVerifier with a secret (HMAC checked here, claims as jose checks them)', () => {
  const verifier = new JwtVerifier({ secret: SECRET, issuer: 'app', audience: 'ws' })
  const claims = { sub: 'ann', iss: 'app', aud: 'ws', groups: ['a'], sid: 's1' }

  it('accepts HS256, HS384 and HS512 tokens jose signed, with their claims', async () => {
    for (const alg of ['HS256', 'HS384', 'HS512']) {
      const token = await new SignJWT(claims)
        .setProtectedHeader({ alg, typ: 'JWT' })
        .setExpirationTime(now() + 60)
        .sign(KEY)
      const v = await verifier.verify(token)
      assert.deepEqual(v.identity, { user: 'ann', groups: ['a'], sessionKey: 's1' }, alg)
      assert.equal(v.expiresAt, (v.claims.exp! + 5) * 1000)
    }
  })

  it('refuses a tampered payload, another secret, a cut signature and non-base64url parts', async () => {
    const good = await new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).sign(KEY)
    const [h, , s] = good.split('.')
    const forged = `${h}.${b64({ ...claims, sub: 'admin' })}.${s}`
    assert.equal(await refusal(verifier, forged), 'token signature invalid')
    assert.equal(
      await refusal(verifier, handMade({ alg: 'HS256' }, claims, 'x'.repeat(40))),
      'token signature invalid',
    )
    assert.equal(await refusal(verifier, good.slice(0, -4)), 'token signature invalid')
    assert.equal(await refusal(verifier, `${good}=`), 'token malformed or unverifiable')
    assert.equal(
      await refusal(verifier, good.replace('.', '.+')),
      'token malformed or unverifiable',
    )
    assert.equal(await refusal(verifier, `${good}.x`), 'token malformed or unverifiable')
    assert.equal(await refusal(verifier, 'a.b'), 'token malformed or unverifiable')
  })

  it('refuses algorithms it was not given, none, extensions, and a header that is not an object', async () => {
    const hs256Only = new JwtVerifier({ secret: SECRET, algorithms: ['HS256'] })
    const hs512 = handMade({ alg: 'HS512' }, { sub: 'ann' }, SECRET, 512)
    assert.equal(await refusal(hs256Only, hs512), 'token algorithm not allowed')
    assert.equal((await new JwtVerifier({ secret: SECRET }).verify(hs512)).identity.user, 'ann')
    const none = `${b64({ alg: 'none' })}.${b64({ sub: 'ann' })}.`
    assert.equal(await refusal(verifier, none), 'token malformed or unverifiable')
    const rs = handMade({ alg: 'RS256' }, { sub: 'ann' })
    assert.equal(await refusal(verifier, rs), 'token algorithm not allowed')
    const crit = handMade({ alg: 'HS256', crit: ['exp'], exp: 1 }, { sub: 'ann' })
    assert.equal(await refusal(verifier, crit), 'token malformed or unverifiable')
    const unencoded = handMade({ alg: 'HS256', b64: true }, { sub: 'ann' })
    assert.equal(await refusal(verifier, unencoded), 'token malformed or unverifiable')
    const input = `${Buffer.from('[1]').toString('base64url')}.${b64({ sub: 'ann' })}`
    const arrayHeader = `${input}.${createHmac('sha256', SECRET).update(input).digest('base64url')}`
    assert.equal(await refusal(verifier, arrayHeader), 'token malformed or unverifiable')
  })

  it('verifies HS256 with secrets shorter than, as long as and longer than the hash block', async () => {
    for (const length of [1, 63, 64, 65, 300]) {
      const secret = 's'.repeat(length)
      const token = await new SignJWT({})
        .setProtectedHeader({ alg: 'HS256' })
        .setSubject(`u${length}`)
        .sign(new TextEncoder().encode(secret))
      const ours = new JwtVerifier({ secret })
      assert.equal((await ours.verify(token)).identity.user, `u${length}`)
      const other = new JwtVerifier({ secret: `${secret}x` })
      assert.equal(await refusal(other, token), 'token signature invalid', `secret of ${length}`)
    }
  })

  it('checks every token of a known header: signature, claims, and refusals of other headers', async () => {
    const plain = new JwtVerifier({ secret: SECRET, algorithms: ['HS256', 'HS384'] })
    const header = { alg: 'HS256', typ: 'JWT' }
    assert.equal((await plain.verify(handMade(header, { sub: 'ann' }))).identity.user, 'ann')
    const good = handMade(header, { sub: 'bob' })
    const [h, , s] = good.split('.')
    assert.equal(
      await refusal(plain, `${h}.${b64({ sub: 'eve' })}.${s}`),
      'token signature invalid',
    )
    assert.equal(
      await refusal(plain, handMade(header, { sub: 'eve' }, 'x'.repeat(40))),
      'token signature invalid',
    )
    const expired = handMade(header, { sub: 'ann', exp: now() - 60 })
    assert.equal(await refusal(plain, expired), 'token expired')
    // Past the headers it remembers: each of 150 headers (one kid each, HS256 and HS384) still
    // verifies, and headers it refused stay refused.
    const none = `${b64({ alg: 'none' })}.${b64({ sub: 'ann' })}.`
    const crit = handMade({ alg: 'HS256', crit: ['exp'], exp: 1 }, { sub: 'ann' })
    const hs512 = handMade({ alg: 'HS512' }, { sub: 'ann' }, SECRET, 512)
    for (let i = 0; i < 150; i++) {
      const bits = i % 2 === 0 ? 256 : 384
      const token = handMade({ alg: `HS${bits}`, kid: `k${i}` }, { sub: `u${i}` }, SECRET, bits)
      assert.equal((await plain.verify(token)).identity.user, `u${i}`)
      const forged = handMade(
        { alg: `HS${bits}`, kid: `k${i}` },
        { sub: `u${i}` },
        'y'.repeat(40),
        bits,
      )
      assert.equal(await refusal(plain, forged), 'token signature invalid')
      if (i % 50 === 0) {
        assert.equal(await refusal(plain, none), 'token malformed or unverifiable')
        assert.equal(await refusal(plain, crit), 'token malformed or unverifiable')
        assert.equal(await refusal(plain, hs512), 'token algorithm not allowed')
      }
    }
  })

  it('checks the claims as jose does: exp with tolerance, nbf, iss, aud, and a payload that is JSON', async () => {
    const plain = new JwtVerifier({ secret: SECRET })
    const expired = handMade({ alg: 'HS256' }, { sub: 'ann', exp: now() - 60 })
    assert.equal(await refusal(plain, expired), 'token expired')
    const withinTolerance = handMade({ alg: 'HS256' }, { sub: 'ann', exp: now() - 2 })
    assert.equal((await plain.verify(withinTolerance)).identity.user, 'ann')
    const early = handMade({ alg: 'HS256' }, { sub: 'ann', nbf: now() + 60 })
    assert.equal(await refusal(plain, early), 'token not yet valid')
    assert.equal(
      await refusal(verifier, handMade({ alg: 'HS256' }, { ...claims, iss: 'other' })),
      'token claim iss invalid',
    )
    assert.equal(
      await refusal(verifier, handMade({ alg: 'HS256' }, { ...claims, aud: 'other' })),
      'token claim aud invalid',
    )
    const input = `${b64({ alg: 'HS256' })}.${Buffer.from('not json').toString('base64url')}`
    const notJson = `${input}.${createHmac('sha256', SECRET).update(input).digest('base64url')}`
    assert.equal(await refusal(plain, notJson), 'token malformed or unverifiable')
    assert.equal(
      await refusal(plain, handMade({ alg: 'HS256' }, { user: 'ann' })),
      'token has no sub claim',
    )
  })

  it("gives jose's verdict on every claims set, with and without iss and aud required", async () => {
    const t = now()
    const raw = (text: string) => {
      const input = `${b64({ alg: 'HS256' })}.${Buffer.from(text, 'latin1').toString('base64url')}`
      return `${input}.${createHmac('sha256', SECRET).update(input).digest('base64url')}`
    }
    const cases: [string, string][] = [
      ['plain', JSON.stringify({ sub: 'ann' })],
      ['exp in the future', JSON.stringify({ sub: 'ann', exp: t + 60 })],
      ['exp past the tolerance', JSON.stringify({ sub: 'ann', exp: t - 6 })],
      ['exp at the tolerance', JSON.stringify({ sub: 'ann', exp: t - 5 })],
      ['exp within the tolerance', JSON.stringify({ sub: 'ann', exp: t - 4 })],
      ['exp a string', JSON.stringify({ sub: 'ann', exp: String(t + 60) })],
      ['nbf within the tolerance', JSON.stringify({ sub: 'ann', nbf: t + 5 })],
      ['nbf past the tolerance', JSON.stringify({ sub: 'ann', nbf: t + 7 })],
      ['nbf a string', JSON.stringify({ sub: 'ann', nbf: 'soon' })],
      ['iat a number', JSON.stringify({ sub: 'ann', iat: t })],
      ['iat a string', JSON.stringify({ sub: 'ann', iat: 'now' })],
      ['iss and aud', JSON.stringify({ sub: 'ann', iss: 'app', aud: 'ws' })],
      ['aud among others', JSON.stringify({ sub: 'ann', iss: 'app', aud: ['x', 'ws'] })],
      ['aud not among them', JSON.stringify({ sub: 'ann', iss: 'app', aud: ['x', 'y'] })],
      ['aud a number', JSON.stringify({ sub: 'ann', iss: 'app', aud: 1 })],
      ['iss missing', JSON.stringify({ sub: 'ann', aud: 'ws' })],
      ['aud missing', JSON.stringify({ sub: 'ann', iss: 'app' })],
      ['both missing', JSON.stringify({ sub: 'ann' })],
      ['iss other', JSON.stringify({ sub: 'ann', iss: 'other', aud: 'ws' })],
      ['an array', '[1,2]'],
      ['null', 'null'],
      ['a string', '"ann"'],
      ['not JSON', '{sub:ann}'],
      ['malformed UTF-8', '{"sub":"\xff"}'],
      ['UTF-8 beyond ASCII', Buffer.from('{"sub":"zoë"}').toString('latin1')],
    ]
    const key = new TextEncoder().encode(SECRET)
    for (const required of [{}, { issuer: ['app', 'other-app'], audience: 'ws' }]) {
      const ours = new JwtVerifier({ secret: SECRET, ...required })
      for (const [name, text] of cases) {
        const token = raw(text)
        let theirs: string
        let mine: string
        let second: number
        // Both verdicts within one second of the clock (they depend on it at the edges).
        do {
          second = now()
          theirs = await jwtVerify(token, key, { clockTolerance: 5, ...required }).then(
            () => 'accepted',
            (e: { constructor: { name: string }; claim?: string }) =>
              `${e.constructor.name} ${e.claim ?? ''}`,
          )
          mine = await Promise.resolve()
            .then(() => ours.verify(token))
            .then(
              () => 'accepted',
              (e: { message: string }) => e.message,
            )
        } while (now() !== second)
        const expected: Record<string, string> = {
          accepted: 'accepted',
          'JWTExpired exp': 'token expired',
          'JWTClaimValidationFailed nbf': 'token not yet valid',
        }
        const want =
          expected[theirs] ??
          (theirs.startsWith('JWTClaimValidationFailed ')
            ? `token claim ${theirs.split(' ')[1]} invalid`
            : 'token malformed or unverifiable')
        // A token jose accepts may still lack what an identity needs.
        const got = mine === 'token has no sub claim' ? 'accepted' : mine
        assert.equal(got, want, `${name} ${JSON.stringify(required)}: jose says ${theirs}`)
      }
    }
  })
})
