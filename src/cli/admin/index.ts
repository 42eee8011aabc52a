import { readFileSync } from 'node:fs'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { createRequire } from 'node:module'
import type { ServerApi } from '../api/index.js'
import { readForm } from './form.js'
import { DASHBOARD_PAGE, loginPage, STYLE } from './page.js'
import { APP_SCRIPT } from './page-script.js'
import { AdminSessions } from './session.js'

/** Options of the dashboard. */
export interface AdminOptions {
  /** What logs in: the admin password and/or the API keys. */
  secrets: readonly string[]
  /** The server API the dashboard reads and acts through. */
  api: ServerApi
}

const PREFIX = '/admin/'
// The page's own script and uPlot only: nothing inline, nothing from elsewhere.
const CSP = "default-src 'self'; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'"

/** uPlot's files from its package (a dependency): no CDN and no build step. */
function uplotFile(name: string): Buffer {
  const require = createRequire(import.meta.url)
  return readFileSync(require.resolve(`uplot/dist/${name}`))
}

interface Asset {
  type: string
  body: Buffer
}

/**
 * The standalone server's live dashboard under /admin/: a login form that sets a session cookie,
 * then a page that polls the server API (through /admin/api/, authenticated by that cookie) and
 * draws it.
 */
export class AdminDashboard {
  readonly #sessions: AdminSessions
  readonly #api: ServerApi
  readonly #assets: Map<string, Asset>

  constructor(options: AdminOptions) {
    this.#sessions = new AdminSessions(options.secrets)
    this.#api = options.api
    this.#assets = new Map([
      ['style.css', { type: 'text/css; charset=utf-8', body: Buffer.from(STYLE) }],
      ['app.js', { type: 'text/javascript; charset=utf-8', body: Buffer.from(APP_SCRIPT) }],
      [
        'uplot.js',
        { type: 'text/javascript; charset=utf-8', body: uplotFile('uPlot.iife.min.js') },
      ],
      ['uplot.css', { type: 'text/css; charset=utf-8', body: uplotFile('uPlot.min.css') }],
    ])
  }

  /** Answers a request under /admin and returns true; false for every other path. */
  handle(req: IncomingMessage, res: ServerResponse): boolean {
    const url = new URL(req.url ?? '/', 'http://admin')
    const path = url.pathname
    if (path === '/admin') {
      res.writeHead(301, { Location: PREFIX }).end()
      return true
    }
    if (!path.startsWith(PREFIX)) return false
    const rest = path.slice(PREFIX.length)
    const asset = this.#assets.get(rest)
    if (asset && (req.method === 'GET' || req.method === 'HEAD')) {
      send(res, 200, asset.type, asset.body, req.method === 'HEAD')
    } else if (rest === '' && req.method === 'GET') {
      const page = this.#sessions.valid(req) ? DASHBOARD_PAGE : loginPage(null)
      send(res, 200, 'text/html; charset=utf-8', Buffer.from(page))
    } else if (rest === 'login' && req.method === 'POST') {
      void this.#login(req, res)
    } else if (rest === 'logout' && req.method === 'POST') {
      res.writeHead(303, { Location: PREFIX, 'Set-Cookie': AdminSessions.clear() }).end()
    } else if (rest.startsWith('api/')) {
      this.#proxy(req, res, url, rest.slice(4))
    } else {
      send(res, 404, 'text/plain; charset=utf-8', Buffer.from('not found\n'))
    }
    return true
  }

  async #login(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (!this.#sessions.loginAllowed()) {
      req.resume()
      const page = loginPage('Too many failed logins: wait a minute.')
      send(res, 429, 'text/html; charset=utf-8', Buffer.from(page), false, { 'Retry-After': '60' })
      return
    }
    const form = await readForm(req).catch(() => null)
    const password = form?.get('password') ?? ''
    if (!this.#sessions.checkPassword(password)) {
      this.#sessions.failed()
      send(res, 401, 'text/html; charset=utf-8', Buffer.from(loginPage('Wrong password.')))
      return
    }
    const secure =
      (req.socket as { encrypted?: boolean }).encrypted === true ||
      req.headers['x-forwarded-proto'] === 'https'
    res.writeHead(303, { Location: PREFIX, 'Set-Cookie': this.#sessions.issue(secure) }).end()
  }

  #proxy(req: IncomingMessage, res: ServerResponse, url: URL, route: string): void {
    // The custom header keeps other sites' forms out: they cannot send it without CORS.
    if (!this.#sessions.valid(req) || req.headers['x-wsfacility-admin'] !== '1') {
      req.resume()
      send(res, 401, 'application/json', Buffer.from('{"error":"log in to the dashboard"}'))
      return
    }
    void this.#api.serve(req, res, new URL(`/api/${route}${url.search}`, url))
  }
}

function send(
  res: ServerResponse,
  status: number,
  type: string,
  body: Buffer,
  head = false,
  headers: Record<string, string> = {},
): void {
  res.writeHead(status, {
    'Content-Type': type,
    'Content-Length': body.length,
    'Cache-Control': 'no-store',
    'Content-Security-Policy': CSP,
    'X-Content-Type-Options': 'nosniff',
    ...headers,
  })
  res.end(head ? undefined : body)
}
