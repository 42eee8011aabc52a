import assert from 'node:assert/strict'
import type { IncomingMessage } from 'node:http'
import net from 'node:net'
import { after, before, describe, it } from 'node:test'
import session from 'express-session'
import { type BrokerOptions, createBroker, HttpError } from '../src/index.js'
import { checkOrigin, isSameHost } from '../src/upgrade/origin.js'
import { signSessionId } from './helpers/app.js'
import { connect, startBroker, type TestServer, upgradeStatus } from './helpers/ws.js'

const request = (headers: Record<string, string>): IncomingMessage =>
  ({ headers }) as unknown as IncomingMessage

describe('isSameHost', () => {
  const cases: [origin: string, host: string, same: boolean][] = [
    ['http://localhost:8000', 'localhost:8000', true],
    ['http://LOCALHOST:8000', 'localhost:8000', true],
    ['https://app.example.com', 'app.example.com', true],
    ['http://app.example.com', 'app.example.com:80', true],
    ['https://app.example.com', 'app.example.com:443', true],
    ['http://[::1]:9000', '[::1]:9000', true],
    ['http://127.0.0.1:8001', '127.0.0.1:8000', false],
    ['http://localhost:8000', '127.0.0.1:8000', false],
    ['https://evil.example', 'app.example.com', false],
    ['https://app.example.com.evil.example', 'app.example.com', false],
    ['http://app.example.com:8080', 'app.example.com', false],
    ['null', 'app.example.com', false],
    ['not a url', 'app.example.com', false],
  ]
  for (const [origin, host, same] of cases) {
    it(`${same ? 'matches' : 'does not match'} Origin ${origin} with Host ${host}`, () => {
      assert.equal(isSameHost(origin, request({ host })), same)
    })
  }
})

describe('checkOrigin', () => {
  const foreign = request({ host: 'app.example.com', origin: 'https://evil.example' })
  const refuses = (fn: () => void): void =>
    assert.throws(fn, (err) => err instanceof HttpError && err.status === 403)

  it('lets a foreign origin through when neither cookies nor an allow-list are involved', () => {
    checkOrigin(foreign, undefined, false)
  })
  it('refuses a foreign origin for a cookie-authenticated request', () => {
    refuses(() => checkOrigin(foreign, undefined, true))
  })
  it('names the refused origin (cut to 80 characters) and points to the origins option', () => {
    const long = `https://${'a'.repeat(100)}.example`
    const messages = [foreign, request({ host: 'app.example.com', origin: long })].map((r) => {
      try {
        checkOrigin(r, undefined, true)
      } catch (err) {
        return (err as HttpError).message
      }
      return null
    })
    assert.deepEqual(messages, [
      'origin https://evil.example not allowed: add it to the origins option (--origins)',
      `origin ${long.slice(0, 79)}… not allowed: add it to the origins option (--origins)`,
    ])
  })
  it('lets requests without Origin (not from a browser page) through', () => {
    checkOrigin(request({ host: 'app.example.com' }), ['https://app.example.com'], true)
  })
  it('with a list, accepts listed origins (in any spelling) and the own host, refuses others', () => {
    const list = ['https://Partner.example:443']
    checkOrigin(request({ host: 'x', origin: 'https://partner.example' }), list, true)
    checkOrigin(
      request({ host: 'app.example.com', origin: 'https://app.example.com' }),
      list,
      false,
    )
    refuses(() => checkOrigin(foreign, list, false))
  })
  it('with a function, asks it about foreign origins', () => {
    const seen: string[] = []
    const allow = (origin: string): boolean => (
      seen.push(origin),
      origin.endsWith('.partner.example')
    )
    checkOrigin(request({ host: 'x', origin: 'https://a.partner.example' }), allow, true)
    refuses(() => checkOrigin(foreign, allow, false))
    assert.deepEqual(seen, ['https://a.partner.example', 'https://evil.example'])
  })
  it('checks Sec-WebSocket-Origin, the Origin of version-8 handshakes, and every origin sent', () => {
    const v8 = (origin: string) =>
      request({
        host: 'app.example.com',
        'sec-websocket-version': '8',
        'sec-websocket-origin': origin,
      })
    refuses(() => checkOrigin(v8('https://evil.example'), undefined, true))
    refuses(() => checkOrigin(v8('https://evil.example'), ['https://partner.example'], false))
    checkOrigin(v8('https://app.example.com'), undefined, true)
    checkOrigin(v8('https://partner.example'), ['https://partner.example'], true)
    const both = request({
      host: 'app.example.com',
      origin: 'https://app.example.com',
      'sec-websocket-origin': 'https://evil.example',
    })
    refuses(() => checkOrigin(both, undefined, true))
  })
  it('refuses an origin list that cannot match with WSF_INVALID_OPTION', () => {
    for (const origins of [['app.example.com'], ['null'], 'https://app.example.com', [42]]) {
      assert.throws(
        () => createBroker({ origins: origins as BrokerOptions['origins'] }),
        { code: 'WSF_INVALID_OPTION' },
        JSON.stringify(origins),
      )
    }
  })
})

describe('Origin check on upgrades', () => {
  const SECRET = 'origin test secret'
  const store = new session.MemoryStore()
  let cookie: string
  let t: TestServer
  let listed: TestServer
  before(async () => {
    await new Promise<void>((resolve, reject) =>
      store.set('sid-1', { cookie: { originalMaxAge: null }, user: 'alice' } as never, (err) =>
        err ? reject(err as Error) : resolve(),
      ),
    )
    cookie = `connect.sid=${encodeURIComponent(signSessionId('sid-1', SECRET))}`
    t = await startBroker({ session: { store, secret: SECRET } })
    listed = await startBroker({
      session: { store, secret: SECRET },
      origins: ['https://app.example.com'],
    })
  })
  after(async () => {
    await t.close()
    await listed.close()
  })

  it('refuses a session-cookie connection from a foreign Origin with 403, before the upgrade', async () => {
    const refused = await upgradeStatus(t.url('/ws/inbox?subscribe-user'), {
      cookie,
      origin: 'https://evil.example',
    })
    assert.deepEqual(refused, {
      status: 403,
      body: 'origin https://evil.example not allowed: add it to the origins option (--origins)\n',
    })
    assert.equal(t.broker.connections.size, 0)
  })

  it('accepts the same session cookie from its own host, and from a client sending no Origin', async () => {
    const own = await connect(t.url('/ws/inbox?subscribe-user'), {
      headers: { cookie, origin: `http://127.0.0.1:${t.port}` },
    })
    const tool = await connect(t.url('/ws/inbox?subscribe-user'), { headers: { cookie } })
    assert.deepEqual(
      [...t.broker.connections.values()].map((c) => c.identity.user),
      ['alice', 'alice'],
    )
    await own.close()
    await tool.close()
  })

  it('accepts anonymous connections from any origin when no allow-list is set', async () => {
    const c = await connect(t.url('/ws/news?subscribe-broadcast'), {
      headers: { origin: 'https://elsewhere.example' },
    })
    await c.close()
  })

  it('with origins set, refuses every foreign origin (anonymous too) and accepts the listed one', async () => {
    const anonymousForeign = await upgradeStatus(listed.url('/ws/news?subscribe-broadcast'), {
      origin: 'https://elsewhere.example',
    })
    assert.equal(anonymousForeign.status, 403)
    const c = await connect(listed.url('/ws/inbox?subscribe-user'), {
      headers: { cookie, origin: 'https://app.example.com' },
    })
    await c.close()
  })

  it('checks version-8 handshakes by their Sec-WebSocket-Origin: foreign 403, allowed 101', async () => {
    const v8 = (server: TestServer, path: string, origin: string) =>
      rawStatus(server.port, path, {
        'Sec-WebSocket-Version': '8',
        'Sec-WebSocket-Origin': origin,
        Cookie: cookie,
      })
    assert.equal(await v8(t, '/ws/inbox?subscribe-user', 'https://evil.example'), 403)
    assert.equal(await v8(listed, '/ws/news?subscribe-broadcast', 'https://evil.example'), 403)
    assert.equal(t.broker.connections.size + listed.broker.connections.size, 0)
    assert.equal(await v8(t, '/ws/inbox?subscribe-user', `http://127.0.0.1:${t.port}`), 101)
    assert.equal(await v8(listed, '/ws/inbox?subscribe-user', 'https://app.example.com'), 101)
  })
})

/**
 * The HTTP status a raw handshake with `headers` gets: 101 when it was accepted (the socket is
 * then closed), else the refusal's status.
 */
async function rawStatus(
  port: number,
  path: string,
  headers: Record<string, string>,
): Promise<number> {
  const socket = net.connect(port, '127.0.0.1')
  const extra = Object.entries(headers)
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join('')
  socket.write(
    `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\n` +
      `Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n${extra}\r\n`,
  )
  let head = ''
  try {
    for await (const chunk of socket) {
      head += (chunk as Buffer).toString('latin1')
      if (head.includes('\r\n')) break
    }
  } finally {
    socket.destroy()
  }
  const status = /^HTTP\/1\.1 (\d{3}) /.exec(head)?.[1]
  assert.ok(status, `no status line in ${JSON.stringify(head)}`)
  return Number(status)
}
