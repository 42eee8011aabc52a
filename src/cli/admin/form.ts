import type { IncomingMessage } from 'node:http'
import { readBody } from '../api/http.js'

const LIMIT = 4096

/** Reads an `application/x-www-form-urlencoded` body of at most 4 KiB. */
export async function readForm(req: IncomingMessage): Promise<URLSearchParams> {
  const body = await readBody(req, 'application/x-www-form-urlencoded', LIMIT)
  return new URLSearchParams(body.toString('utf8'))
}
