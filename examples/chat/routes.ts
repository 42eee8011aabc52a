// Chat rooms as groups: POST /chat/join adds a room to the session user's groups and joins the
// session's open sockets to it without reconnecting (broker.join), and
// POST /chat/rooms/:room/messages publishes to that room from the server. The facility speaks the
// JSON envelope and keeps each room's recent history, so a page that reconnects gets what it
// missed — and not the room's last message again.
import type { Application } from 'express'
import { type Broker, RedisPublisher } from '../../src/index.js'
import { currentUser, field, messageText, NAME, requireLogin, servePage } from '../common.js'

/** What travels on a room's channel (as JSON text; clients get it as a data frame's `data`). */
export interface ChatMessage {
  room: string
  user: string
  text: string
}

function isChatMessage(value: unknown): value is ChatMessage {
  const m = value as Partial<ChatMessage> | null
  return (
    typeof m === 'object' &&
    m !== null &&
    typeof m.room === 'string' &&
    typeof m.user === 'string' &&
    typeof m.text === 'string'
  )
}

export function chatRoutes(app: Application, broker: Broker): void {
  // Only logged-in users; they receive and publish on their groups (rooms). A message sent over
  // the socket (`{"type":"data","data":<ChatMessage>}`) must be a ChatMessage signed with the
  // sender's own name, or it is dropped. Each room keeps its last 100 messages for a minute, like
  // its last message (`expire: 60`): frames carry their position, and the page's client recovers
  // from it on every reconnect.
  broker.facility('chat', {
    subscribe: ['group'],
    publish: ['group'],
    anonymous: false,
    format: 'json',
    history: { size: 100, ttl: 60 },
    // A json facility hands the hook the envelope's `data`, already parsed; false drops it.
    onMessage: (conn, message) => isChatMessage(message) && message.user === conn.identity.user,
  })

  servePage(app, ['/chat', '/chat/'], new URL('./page.html', import.meta.url))

  app.post('/chat/join', requireLogin, (req, res, next) => {
    const room = field(req, 'room')
    if (!NAME.test(room)) {
      res.status(400).json({ error: 'room: 1 to 32 letters, digits, _ . -' })
      return
    }
    const user = currentUser(req)!
    if (!user.groups.includes(room)) user.groups = [...user.groups, room]
    // Saved first, so a socket that connects from now on (a reconnect, another tab) reads the room
    // from the session; then the sockets already open join it live, on whatever process holds them.
    req.session.save(async (err) => {
      if (err) return next(err)
      try {
        const sockets = await broker.join({ session: req.sessionID }, { group: room })
        res.json({ rooms: user.groups, sockets })
      } catch (joinErr) {
        next(joinErr)
      }
    })
  })

  app.post('/chat/rooms/:room/messages', requireLogin, async (req, res, next) => {
    const room = String(req.params.room)
    const user = currentUser(req)!
    const text = messageText(req)
    if (!user.groups.includes(room)) {
      res.status(403).json({ error: `join ${room} first` })
      return
    }
    if (text === null) {
      res.status(400).json({ error: 'text must have 1 to 1000 characters' })
      return
    }
    try {
      const message: ChatMessage = { room, user: user.username, text }
      const publisher = new RedisPublisher({ facility: 'chat', groups: [room] }, { broker })
      const receivers = await publisher.publishMessage(JSON.stringify(message))
      res.json({ receivers })
    } catch (err) {
      next(err)
    }
  })
}
