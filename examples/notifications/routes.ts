// Notifications to users, on every tab they have open: POST /notifications/me reaches the
// request's own user (SELF), POST /notifications/user/:name a user by name.
import type { Application, NextFunction, Request, Response } from 'express'
import { type Broker, SELF } from '../../src/index.js'
import { currentUser, messageText, NAME, requireLogin, servePage } from '../common.js'

/** What a notification carries (as JSON text). */
export interface Notification {
  from: string
  text: string
  at: string
}

export function notificationRoutes(app: Application, broker: Broker): void {
  // Users receive on their own channel; the page never publishes.
  broker.facility('notifications', { subscribe: ['user'], publish: [], anonymous: false })

  servePage(app, ['/notifications', '/notifications/'], new URL('./page.html', import.meta.url))

  // Publishes one notification from the logged-in user to `to` (SELF: the request's own user).
  async function notify(req: Request, res: Response, next: NextFunction, to: string | typeof SELF) {
    const note: Notification = {
      from: currentUser(req)!.username,
      text: messageText(req)!,
      at: new Date().toISOString(),
    }
    try {
      const receivers = await req.wsfacility!.publish(
        { facility: 'notifications', users: [to] },
        JSON.stringify(note),
      )
      res.json({ receivers })
    } catch (err) {
      next(err)
    }
  }

  app.post('/notifications/me', requireLogin, (req, res, next) => {
    if (messageText(req) === null) {
      res.status(400).json({ error: 'text must have 1 to 1000 characters' })
      return
    }
    void notify(req, res, next, SELF)
  })

  app.post('/notifications/user/:name', requireLogin, (req, res, next) => {
    const name = String(req.params.name)
    if (!NAME.test(name) || messageText(req) === null) {
      res.status(400).json({ error: 'a user name and text of 1 to 1000 characters' })
      return
    }
    void notify(req, res, next, name)
  })
}
