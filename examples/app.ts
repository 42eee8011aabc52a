// The examples' Express app — chat, notifications, presence, news — around a broker it is given:
// server.ts builds it for `npm start`, the tests (test/examples/) around a wsfacility/testing broker.
import { fileURLToPath } from 'node:url'
import express, { type Application, type NextFunction, type Request, type Response } from 'express'
import expressSession, { type Store } from 'express-session'
import type { Broker, BrokerOptions } from '../src/index.js'
import { publisherMiddleware } from '../src/integrations/express.js'
import { chatRoutes } from './chat/routes.js'
import { currentUser, field, messageText, NAME, servePage } from './common.js'
import { notificationRoutes } from './notifications/routes.js'
import { presenceRoutes } from './presence/routes.js'

/** The session store and secret, shared by express-session and the broker. */
export interface ExampleSession {
  store: Store
  secret: string
}

/** The broker options of the examples, besides the engine. */
export function exampleBrokerOptions(session: ExampleSession): BrokerOptions {
  return {
    session,
    // The last message of each channel is kept a minute and replayed to newcomers.
    expire: 60,
    presence: true,
    clientPublish: ['group', 'user', 'session'],
  }
}

/** A same-site path to go back to after a form post. */
function safeNext(next: string): string {
  return next.startsWith('/') && !next.startsWith('//') ? next : '/'
}

/**
 * The app: sessions, login, the pages and their routes. Upgrades are the broker's: attach it to
 * the app's server (`broker.attach(server)`).
 */
export function createApp(broker: Broker, session: ExampleSession): Application {
  const app = express()
  app.use(express.json({ limit: '16kb' }))
  app.use(express.urlencoded({ extended: false, limit: '16kb' }))
  app.use(expressSession({ ...session, resave: false, saveUninitialized: false }))
  // What wsfacility(app, server) mounts: 426 for plain requests to /ws/, and req.wsfacility.
  app.use((req: Request, res: Response, next: NextFunction) => {
    if (!broker.handleRequest(req, res)) next()
  })
  app.use(publisherMiddleware(broker))

  // The browser client, straight from the build (`npm run build`): no bundler, no CDN.
  const js = { setHeaders: (res: Response) => res.type('text/javascript; charset=utf-8') }
  const dist = new URL('../dist/src/', import.meta.url)
  app.use('/client', express.static(fileURLToPath(new URL('client/', dist)), js))
  // Login: a name in a form or JSON; the groups (chat rooms) start empty.
  app.post('/login', (req, res, next) => {
    const username = field(req, 'name')
    if (!NAME.test(username)) {
      res.status(400).json({ error: 'name: 1 to 32 letters, digits, _ . -' })
      return
    }
    // A new session id for the new user, so a cookie seen before login is worth nothing.
    req.session.regenerate((err) => {
      if (err) return next(err)
      req.session.user = { username, groups: [] }
      req.session.save((err) => {
        if (err) return next(err)
        if (req.is('application/json')) res.json({ user: username, groups: [] })
        else res.redirect(303, safeNext(field(req, 'next')))
      })
    })
  })

  app.post('/logout', (req, res, next) => {
    req.session.destroy((err) => {
      if (err) return next(err)
      if (req.is('application/json')) res.json({ user: null })
      else res.redirect(303, safeNext(field(req, 'next')))
    })
  })

  app.get('/me', (req, res) => {
    const user = currentUser(req)
    res.json({ user: user?.username ?? null, groups: user?.groups ?? [] })
  })

  // News: a broadcast anyone may watch (the home page does), published from a route.
  app.post('/news', async (req, res, next) => {
    const text = messageText(req)
    if (text === null) {
      res.status(400).json({ error: 'text must have 1 to 1000 characters' })
      return
    }
    try {
      const receivers = await req.wsfacility!.publish({ facility: 'news', broadcast: true }, text)
      res.json({ receivers })
    } catch (err) {
      next(err)
    }
  })
  broker.facility('news', { subscribe: ['broadcast'], publish: [] })

  servePage(app, ['/'], new URL('./home.html', import.meta.url))
  // The pages' shared look.
  app.get('/style.css', (_req, res) =>
    res.sendFile(fileURLToPath(new URL('./style.css', import.meta.url)), {
      headers: { 'Content-Type': 'text/css; charset=utf-8' },
    }),
  )
  chatRoutes(app, broker)
  notificationRoutes(app, broker)
  presenceRoutes(app, broker)

  app.use((req: Request, res: Response) => {
    res.status(404).type('text').send('not found\n')
  })
  app.use((err: Error, _req: Request, res: Response, _next: NextFunction) => {
    console.error(`request failed: ${err.message}`)
    if (!res.headersSent) res.status(500).json({ error: 'internal error' })
  })
  return app
}
