// Notifications to users, on every tab they have open: POST /notifications/me reaches the
// request's own user (SELF), POST /notifications/user/:name a user by name.
import type { Application } from 'express'
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

  app.post('/notifications/me', requireLogin, async (req, res, next) => {
    const text = messageText(req)
    if (text === null) {
      res.status(400).json({ error: 'text must have 1 to 1000 characters' })
      return
    }
    const note: Notification = {
      from: currentUser(req)!.username,
      text,
      at: new Date().toISOString(),
    }
    try {
      const receivers = await req.wsfacility!.publish(
        { facility: 'notifications', users: [SELF] },
        JSON.stringify(note),
      )
      res.json({ receivers })
    } catch (err) {
      next(err)
    }
  })

  app.post('/notifications/user/:name', requireLogin, async (req, res, next) => {
    const name = String(req.params.name)
    const text = messageText(req)
    if (!NAME.test(name) || text === null) {
      res.status(400).json({ error: 'a user name and text of 1 to 1000 characters' })
      return
    }
    const note: Notification = {
      from: currentUser(req)!.username,
      text,
      at: new Date().toISOString(),
    }
    try {
      const receivers = await req.wsfacility!.publish(
        { facility: 'notifications', users: [name] },
        JSON.stringify(note),
      )
      res.json({ receivers })
    } catch (err) {
      next(err)
    }
  })
}
