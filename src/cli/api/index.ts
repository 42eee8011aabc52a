import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Broker } from '../../broker/broker.js'
import { ClosedError, EngineError, InvalidArgumentError, TimeoutError } from '../../errors.js'
import { ApiKeys } from './auth.js'
import { ApiError, sendError, sendJson } from './http.js'
import { NodeBoard } from './node-info.js'
import * as routes from './routes.js'

export { ApiKeys } from './auth.js'
export { localInfo, NodeBoard, type NodeInfo } from './node-info.js'

/** Options of the HTTP server API. */
export interface ServerApiOptions {
  /** Keys accepted in `Authorization: apikey KEY` (several while rotating); none: `handle()`
   * answers nothing, and only `serve()` (the dashboard, behind its own login) reaches the routes. */
  keys: readonly string[]
  /** Largest request body in bytes; larger ones get 413. @default 65536 */
  bodyLimit?: number | undefined
}

const PREFIX = '/api/'

type Route = (req: IncomingMessage, url: URL, ctx: routes.RouteContext) => Promise<routes.Answer>

const ROUTES: Record<string, Partial<Record<'GET' | 'POST', Route>>> = {
  publish: { POST: (req, _url, ctx) => routes.publish(req, ctx) },
  presence: { GET: (_req, url, ctx) => routes.presence(url, ctx) },
  disconnect: { POST: (req, _url, ctx) => routes.disconnect(req, ctx) },
  history: { GET: (_req, url, ctx) => routes.history(url, ctx) },
  info: { GET: (_req, _url, ctx) => routes.info(ctx) },
}

/**
 * The standalone server's HTTP API under `/api/` (publish, presence, disconnect, history, info),
 * for backends that cannot or should not reach Redis. Every request needs one of the keys.
 */
export class ServerApi {
  readonly #keys: ApiKeys | null
  readonly #ctx: routes.RouteContext

  constructor(broker: Broker, options: ServerApiOptions) {
    this.#keys = options.keys.length > 0 ? new ApiKeys(options.keys) : null
    const bodyLimit = options.bodyLimit ?? 65_536
    if (!Number.isInteger(bodyLimit) || bodyLimit < 1) throw new TypeError('bodyLimit must be >= 1')
    this.#ctx = { broker, board: new NodeBoard(broker), bodyLimit }
  }

  /** The board of every process's figures (shared with the dashboard). */
  get board(): NodeBoard {
    return this.#ctx.board
  }

  /** Answers a request under /api/ and returns true; false for every other path. */
  handle(req: IncomingMessage, res: ServerResponse): boolean {
    const url = new URL(req.url ?? '/', 'http://api')
    if (!this.#keys || (!url.pathname.startsWith(PREFIX) && url.pathname !== '/api')) return false
    if (!this.#keys.matches(ApiKeys.fromHeader(req))) {
      // The body is not read: drain it so the connection can be reused or closed cleanly.
      req.resume()
      sendJson(
        res,
        401,
        { error: 'a valid API key is needed: Authorization: apikey KEY' },
        {
          'WWW-Authenticate': 'apikey',
        },
      )
      return true
    }
    void this.serve(req, res, url)
    return true
  }

  /**
   * Answers `url` (a path under /api/) without checking a key: for callers that authenticated the
   * request otherwise (the dashboard's session cookie).
   */
  async serve(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    try {
      const answer = await this.#route(req, url)
      sendJson(res, answer.status, answer.body)
    } catch (err) {
      req.resume()
      sendError(res, asApiError(err))
      if (err instanceof ApiError && err.status === 413) res.once('finish', () => req.destroy())
    }
  }

  #route(req: IncomingMessage, url: URL): Promise<routes.Answer> {
    const rest = url.pathname.slice(PREFIX.length)
    const slash = rest.indexOf('/')
    const name = slash < 0 ? rest : rest.slice(0, slash)
    if (name === 'presence' && slash >= 0) {
      const user = decodeURIComponent(rest.slice(slash + 1))
      if (req.method !== 'GET') throw notAllowed(['GET'])
      if (user === '' || user.includes('/')) throw new ApiError(404, `no route ${url.pathname}`)
      return routes.presenceOf(user, url, this.#ctx)
    }
    const methods = slash < 0 ? ROUTES[name] : undefined
    if (!methods || !Object.hasOwn(ROUTES, name))
      throw new ApiError(404, `no route ${url.pathname}`)
    const route = methods[req.method as 'GET' | 'POST']
    if (!route) throw notAllowed(Object.keys(methods))
    return route(req, url, this.#ctx)
  }
}

function notAllowed(methods: string[]): ApiError {
  return new ApiError(405, `use ${methods.join(' or ')}`, undefined, { Allow: methods.join(', ') })
}

function asApiError(err: unknown): ApiError {
  if (err instanceof ApiError) return err
  if (err instanceof InvalidArgumentError) return new ApiError(400, err.message)
  if (err instanceof EngineError || err instanceof TimeoutError || err instanceof ClosedError)
    return new ApiError(503, `unavailable: ${err.message}`, undefined, { 'Retry-After': '1' })
  return new ApiError(500, 'internal error')
}
