import type { IncomingMessage, ServerResponse } from 'node:http'

/** A refusal of an API request: its status and the one-line message of its JSON body. */
export class ApiError extends Error {
  readonly status: number
  /** The request field that is wrong, when one is. */
  readonly field: string | undefined
  readonly headers: Record<string, string>

  constructor(
    status: number,
    message: string,
    field?: string,
    headers: Record<string, string> = {},
  ) {
    super(message)
    this.status = status
    this.field = field
    this.headers = headers
  }
}

/** Sends `body` as JSON with `status`; never cached. */
export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const text = JSON.stringify(body)
  res.writeHead(status, {
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': Buffer.byteLength(text),
    'Cache-Control': 'no-store',
    ...headers,
  })
  res.end(text)
}

/** Sends an ApiError as `{ error, field? }`. */
export function sendError(res: ServerResponse, err: ApiError): void {
  const body =
    err.field === undefined ? { error: err.message } : { error: err.message, field: err.field }
  sendJson(res, err.status, body, err.headers)
}

/**
 * Reads a request body of `type` and at most `limit` bytes: 415 for another content type, 413 past
 * the limit (as soon as it is passed, or at once from Content-Length).
 */
export async function readBody(req: IncomingMessage, type: string, limit: number): Promise<Buffer> {
  const given = (req.headers['content-type'] ?? '').split(';', 1)[0]!.trim().toLowerCase()
  if (given !== type) throw new ApiError(415, `the body must be sent as Content-Type: ${type}`)
  const declared = Number(req.headers['content-length'])
  if (Number.isFinite(declared) && declared > limit) throw tooLarge(limit)
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length
    if (size > limit) throw tooLarge(limit)
    chunks.push(chunk)
  }
  return Buffer.concat(chunks)
}

/** Reads a JSON request body (readBody), 400 for bad JSON. */
export async function readJson(req: IncomingMessage, limit: number): Promise<unknown> {
  const body = await readBody(req, 'application/json', limit)
  try {
    return JSON.parse(body.toString('utf8')) as unknown
  } catch {
    throw new ApiError(400, 'the body is not valid JSON')
  }
}

function tooLarge(limit: number): ApiError {
  return new ApiError(413, `the body is larger than ${limit} bytes`)
}
