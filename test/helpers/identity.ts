import type { IncomingMessage } from 'node:http'
import type { Identity } from '../../src/index.js'

/**
 * An identify hook that reads the identity from the query, a stand-in for cookies and JWTs:
 * `?user=john&groups=a,b&session=s1`. What the query leaves out is absent (anonymous, no groups,
 * no session).
 */
export function identify(req: IncomingMessage): Identity {
  const q = new URL(req.url ?? '/', 'http://x').searchParams
  return {
    user: q.get('user'),
    groups: q.get('groups')?.split(',') ?? [],
    sessionKey: q.get('session'),
  }
}
