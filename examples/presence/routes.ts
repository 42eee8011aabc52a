// Who is online: the built-in presence facility (/ws/presence) and its JSON API.
import type { Application } from 'express'
import { presenceFacility, presenceRouter } from '../../facilities/index.js'
import type { Broker } from '../../src/index.js'
import { servePage } from '../common.js'

export function presenceRoutes(app: Application, broker: Broker): void {
  // Anonymous watchers are allowed so the page works before logging in; they are not listed
  // (only connections with a user are).
  presenceFacility(broker, { anonymous: true })
  app.use('/presence/api', presenceRouter(broker))
  servePage(app, ['/presence', '/presence/'], new URL('./page.html', import.meta.url))
}
