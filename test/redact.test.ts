import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { inspect } from 'node:util'
import { SignJWT } from 'jose'
import { type Logger, redactUrl } from '../src/index.js'
import { REDACTED } from '../src/observability/redact.js'
import { connect, eventually, startBroker, type TestServer, upgradeStatus } from './helpers/ws.js'

const SECRET = 'a-long-enough-hmac-secret-for-wsfacility-tests-0123456789'

describe('redactUrl', () => {
  const cases: [url: string, redacted: string][] = [
    ['/ws/chat?subscribe-user&token=eyJ.a.b', `/ws/chat?subscribe-user&token=${REDACTED}`],
    ['/ws/chat?token=one&echo&token=two', `/ws/chat?token=${REDACTED}&echo&token=${REDACTED}`],
    // Keys as URLSearchParams (and so the JWT code) decode them, in any case.
    ['/ws/chat?%74oken=eyJ&TOKEN=eyJ', `/ws/chat?%74oken=${REDACTED}&TOKEN=${REDACTED}`],
    ['/ws/chat?access_token=x&api_key=y', `/ws/chat?access_token=${REDACTED}&api_key=${REDACTED}`],
    // After `#` the JWT code still reads the query, so redaction does too.
    ['/ws/chat?a=1#&token=eyJ', `/ws/chat?a=1#&token=${REDACTED}`],
    // The rest stays exactly as sent.
    [
      '/ws/chat?subscribe-broadcast&publish-user&x=%41',
      '/ws/chat?subscribe-broadcast&publish-user&x=%41',
    ],
    ['/ws/chat?token', '/ws/chat?token'],
    ['/ws/chat', '/ws/chat'],
  ]
  for (const [url, redacted] of cases) {
    it(`redacts ${url}`, () => assert.equal(redactUrl(url), redacted))
  }
  it('keeps an absent URL absent', () => assert.equal(redactUrl(undefined), undefined))
})

/** A logger that records every call. */
class RecordingLogger implements Logger {
  readonly calls: { level: string; obj: object; msg: string | undefined }[] = []
  #record = (level: string) => (obj: object, msg?: string) => this.calls.push({ level, obj, msg })
  debug = this.#record('debug')
  info = this.#record('info')
  warn = this.#record('warn')
  error = this.#record('error')
  /** Everything logged, as JSON and as inspected (errors' messages, causes and stacks too). */
  dump(): string {
    return JSON.stringify(this.calls) + inspect(this.calls, { depth: Infinity })
  }
}

describe('Broker logs', () => {
  const logger = new RecordingLogger()
  let t: TestServer
  let jwt: string
  let forged: string
  before(async () => {
    t = await startBroker({ jwt: { secret: SECRET }, logger })
    const sign = (sub: string, secret: string) =>
      new SignJWT({ groups: ['staff'] })
        .setProtectedHeader({ alg: 'HS256' })
        .setSubject(sub)
        .setExpirationTime('10m')
        .sign(new TextEncoder().encode(secret))
    jwt = await sign('alice', SECRET)
    forged = await sign('mallory', 'not-the-broker-secret-but-long-enough-0123456789')
  })
  after(() => t.close())

  it('never contain a token, from the query, the Authorization header or the subprotocol', async () => {
    // Refused after the token was verified (403: a publish flag not allowed) ...
    const refused = await upgradeStatus(t.url(`/ws/chat?publish-broadcast&token=${jwt}`))
    assert.equal(refused.status, 403)
    // ... and because the token is invalid (401), wherever it travels.
    for (const [path, headers] of [
      [`/ws/chat?subscribe-user&token=${forged}`, {}],
      [`/ws/chat?subscribe-user&%74oken=${forged}`, {}],
      ['/ws/chat?subscribe-user', { Authorization: `Bearer ${forged}` }],
      // (Without `wsfacility` beside it: offered, the refusal would be a close, not a status.)
      ['/ws/chat?subscribe-user', { 'Sec-WebSocket-Protocol': `bearer.${forged}` }],
    ] as const) {
      assert.equal((await upgradeStatus(t.url(path), headers)).status, 401, path)
    }
    // Accepted, then closed.
    const c = await connect(t.url(`/ws/chat?subscribe-user&token=${jwt}`))
    await c.close()
    await eventually(() => logger.calls.some((call) => call.msg === 'connection closed'))

    const refusals = logger.calls.filter((call) => call.msg === 'upgrade refused')
    assert.equal(refusals.length, 5)
    assert.equal(
      (refusals[0]!.obj as { url: string }).url,
      `/ws/chat?publish-broadcast&token=${REDACTED}`,
    )
    assert.ok(logger.calls.some((call) => call.msg === 'connection accepted'))
    const logged = logger.dump()
    for (const token of [jwt, forged]) {
      assert.ok(!logged.includes(token), 'a token was logged')
      // Nor its signature alone (the part that makes it a credential).
      assert.ok(!logged.includes(token.split('.')[2]!), 'a token signature was logged')
    }
  })
})
