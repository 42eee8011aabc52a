// Helpers shared by the examples: the session's user, a login guard and page serving.
import { readFileSync } from 'node:fs'
import type { Application, NextFunction, Request, Response } from 'express'

/** What POST /login keeps in the session; the broker reads `username` and `groups` from it. */
export interface SessionUser {
  username: string
  groups: string[]
}

declare module 'express-session' {
  interface SessionData {
    user?: SessionUser
  }
}

/** Names of users and rooms: short, and safe in a channel name. */
export const NAME = /^[A-Za-z0-9_.-]{1,32}$/

/** The string field `key` of a JSON or form body, trimmed; '' when missing. */
export function field(req: Request, key: string): string {
  const value = (req.body as Record<string, unknown> | undefined)?.[key]
  return typeof value === 'string' ? value.trim() : ''
}

/** The logged-in user, or null. */
export function currentUser(req: Request): SessionUser | null {
  return req.session?.user ?? null
}

/** Answers 401 unless the session has a user. */
export function requireLogin(req: Request, res: Response, next: NextFunction): void {
  if (currentUser(req)) return next()
  res.status(401).json({ error: 'log in first (POST /login)' })
}

/** Serves an HTML file at `paths`, read once at start. */
export function servePage(app: Application, paths: string[], file: URL): void {
  const html = readFileSync(file)
  app.get(paths, (_req, res) => {
    res.type('html').send(html)
  })
}

/** Text of a message: 1 to 1000 characters, or null. */
export function messageText(req: Request): string | null {
  const text = field(req, 'text')
  return text.length > 0 && text.length <= 1000 ? text : null
}
