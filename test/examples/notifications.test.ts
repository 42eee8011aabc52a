// The notifications example (examples/notifications), tested the way an app's own tests would use
// wsfacility/testing: the app is served around a test broker, sockets connect as users without
// logging in, HTTP requests log in for real (the routes read the session).
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import expressSession from 'express-session'
import { createApp, exampleBrokerOptions } from '../../examples/app.js'
import type { Notification } from '../../examples/notifications/routes.js'
import { createTestBroker, type TestBroker } from '../../src/testing/index.js'

const FACILITY = 'notifications?subscribe-user'

let t: TestBroker
before(async () => {
  const session = { store: new expressSession.MemoryStore(), secret: 'test secret' }
  t = createTestBroker(exampleBrokerOptions(session))
  await t.listen(createApp(t.broker, session))
})
after(() => t.close())

/** Logs `name` in through the app's POST /login; resolves to the session cookie. */
async function login(name: string): Promise<string> {
  const res = await fetch(`${t.url}/login`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ name }),
  })
  assert.equal(res.status, 200)
  const cookie = res.headers.getSetCookie()[0]
  assert.ok(cookie, 'POST /login sets the session cookie')
  return cookie.split(';', 1)[0]!
}

/** POSTs `{ text }` to `path` with `cookie`; resolves to the status and body. */
async function notify(path: string, text: string, cookie?: string) {
  const res = await fetch(`${t.url}${path}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', ...(cookie ? { cookie } : {}) },
    body: JSON.stringify({ text }),
  })
  return { status: res.status, body: (await res.json()) as Record<string, unknown> }
}

describe('examples/notifications', () => {
  it('POST /notifications/me reaches every tab of the logged-in user, and nobody else', async () => {
    const [tab1, tab2, bob] = await Promise.all([
      t.connect(FACILITY, { user: 'ann' }),
      t.connect(FACILITY, { user: 'ann' }),
      t.connect(FACILITY, { user: 'bob' }),
    ])
    const answer = await notify('/notifications/me', 'remember the milk', await login('ann'))
    assert.deepEqual(answer, { status: 200, body: { receivers: 2 } })
    for (const tab of [tab1, tab2]) {
      const note = await tab.nextJson<Notification>()
      assert.equal(note.from, 'ann')
      assert.equal(note.text, 'remember the milk')
    }
    await bob.nothingWithin(50)
    await Promise.all([tab1.close(), tab2.close(), bob.close()])
  })

  it('POST /notifications/user/:name reaches that user, from the sender', async () => {
    const carol = await t.connect(FACILITY, { user: 'carol' })
    const dave = await t.connect(FACILITY, { user: 'dave' })
    const answer = await notify('/notifications/user/carol', 'lunch?', await login('dave'))
    assert.deepEqual(answer, { status: 200, body: { receivers: 1 } })
    assert.deepEqual(
      { ...(await carol.nextJson<Notification>()), at: '' },
      { from: 'dave', text: 'lunch?', at: '' },
    )
    await dave.nothingWithin(50)
    await Promise.all([carol.close(), dave.close()])
  })

  it('a socket with the session cookie of a login is that user too (no test identity)', async () => {
    const cookie = await login('erin')
    const erin = await t.connect(FACILITY, null, { headers: { cookie } })
    assert.equal(erin.connection.identity.user, 'erin')
    await notify('/notifications/me', 'via the cookie', cookie)
    assert.equal((await erin.nextJson<Notification>()).text, 'via the cookie')
    await erin.close()
  })

  it('refuses anonymous sockets (401) and sockets that would publish (403)', async () => {
    assert.equal((await t.refusal(FACILITY)).status, 401)
    const refused = await t.refusal(`${FACILITY}&publish-user`, { user: 'ann' })
    assert.equal(refused.status, 403)
  })

  it('answers 401 without a login and 400 without text, and publishes nothing', async () => {
    const frank = await t.connect(FACILITY, { user: 'frank' })
    assert.equal((await notify('/notifications/user/frank', 'hi')).status, 401)
    const cookie = await login('gina')
    assert.equal((await notify('/notifications/user/frank', '', cookie)).status, 400)
    assert.equal((await notify('/notifications/user/no:colon', 'hi', cookie)).status, 400)
    await frank.nothingWithin(50)
    await frank.close()
  })
})
