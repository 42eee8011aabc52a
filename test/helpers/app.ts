import { createHmac } from 'node:crypto'
import http from 'node:http'
import express, { type Application, type Request } from 'express'
import session, { type Store } from 'express-session'
import { listen } from './http.js'

/** The session settings an app and its broker share ("configure once"). */
export interface SharedSession {
  store: Store
  secret: string | string[]
  name?: string | undefined
}

/** A logged-in browser: its cookie (`name=value`) and its session id. */
export interface Login {
  cookie: string
  sid: string
}

/** An Express app with express-session, listening on 127.0.0.1, port 0. */
export interface SessionApp {
  app: Application
  server: http.Server
  /** `http://127.0.0.1:PORT` */
  base: string
  /** `ws://127.0.0.1:PORT` + path. */
  ws(path: string): string
  /** POST /login/:user — `req.session.user = { username, groups }`. */
  login(user: string, groups?: string[]): Promise<Login>
  /** POST /passport/:user — `req.session.passport = { user }`, as passport's serializeUser does. */
  passportLogin(user: string): Promise<Login>
  /** POST /logout — destroys the session in the store. */
  logout(cookie: string): Promise<void>
  close(): Promise<void>
}

/** What express-session stores, without augmenting its global SessionData type. */
export const bag = (req: Request): Record<string, unknown> =>
  req.session as unknown as Record<string, unknown>

/** Signs a session id the way express-session (cookie-signature) does: `s:` + id + HMAC-SHA256. */
export function signSessionId(sid: string, secret: string): string {
  const mac = createHmac('sha256', secret).update(sid).digest('base64').replace(/=+$/, '')
  return `s:${sid}.${mac}`
}

/** The `name=value` part of the Set-Cookie header named `name`. */
export function cookieFrom(res: Response, name = 'connect.sid'): string {
  const header = res.headers.getSetCookie().find((c) => c.startsWith(`${name}=`))
  if (!header) throw new Error(`no ${name} cookie in ${res.status} ${res.url}`)
  return header.split(';')[0]!
}

/**
 * Starts an app: express-session, then `setup` (wsfacility, a passport stand-in), then the login
 * routes and `routes`.
 */
export async function startSessionApp(options: {
  session: SharedSession
  setup?: (app: Application, server: http.Server) => void
  routes?: (app: Application) => void
}): Promise<SessionApp> {
  const app = express()
  const server = http.createServer(app)
  const name = options.session.name ?? 'connect.sid'
  app.use(express.json())
  app.use(
    session({
      ...options.session,
      name,
      resave: false,
      saveUninitialized: false,
    }),
  )
  options.setup?.(app, server)
  const save = (req: Request): Promise<void> =>
    new Promise((resolve, reject) => req.session.save((err) => (err ? reject(err) : resolve())))
  app.post('/login/:user', async (req, res) => {
    const raw = req.query.groups
    const groups = typeof raw === 'string' && raw !== '' ? raw.split(',') : []
    bag(req).user = { username: req.params.user, groups }
    await save(req)
    res.json({ sid: req.sessionID })
  })
  app.post('/passport/:user', async (req, res) => {
    bag(req).passport = { user: req.params.user }
    await save(req)
    res.json({ sid: req.sessionID })
  })
  app.post('/logout', (req, res, next) => {
    req.session.destroy((err) => (err ? next(err) : res.status(204).end()))
  })
  options.routes?.(app)
  const listening = await listen(server)
  const { port, base } = listening

  const loginAt = async (path: string): Promise<Login> => {
    const res = await fetch(base + path, { method: 'POST' })
    if (res.status !== 200) throw new Error(`${path}: ${res.status}`)
    const { sid } = (await res.json()) as { sid: string }
    return { cookie: cookieFrom(res, name), sid }
  }
  return {
    app,
    server,
    base,
    ws: (path) => `ws://127.0.0.1:${port}${path}`,
    login: (user, groups = []) =>
      loginAt(`/login/${encodeURIComponent(user)}?groups=${groups.join(',')}`),
    passportLogin: (user) => loginAt(`/passport/${encodeURIComponent(user)}`),
    async logout(cookie) {
      const res = await fetch(`${base}/logout`, { method: 'POST', headers: { cookie } })
      if (res.status !== 204) throw new Error(`logout: ${res.status}`)
    },
    close: () => listening.close(),
  }
}
