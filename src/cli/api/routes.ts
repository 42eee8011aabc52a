import type { IncomingMessage } from 'node:http'
import type { Broker } from '../../broker/broker.js'
import { RedisPublisher } from '../../publish/redis-publisher.js'
import type { StreamPosition } from '../../history/wire.js'
import { ApiError, readJson } from './http.js'
import type { NodeBoard } from './node-info.js'
import { DisconnectBody, parseBody, PublishBody } from './schemas.js'

/** What a route answers: a status and a JSON body. */
export interface Answer {
  status: number
  body: unknown
}

/** What the routes work with. */
export interface RouteContext {
  broker: Broker
  board: NodeBoard
  /** Largest request body, in bytes. */
  bodyLimit: number
}

const HISTORY_LIMIT = 1000

const ok = (body: unknown): Answer => ({ status: 200, body })

/** Text as it is (UTF-8), bytes as base64 with `encoding: 'base64'`. */
function encodePayload(payload: Buffer | string): { data: string; encoding?: 'base64' } {
  if (typeof payload === 'string') return { data: payload }
  const text = payload.toString('utf8')
  return Buffer.from(text, 'utf8').equals(payload)
    ? { data: text }
    : { data: payload.toString('base64'), encoding: 'base64' }
}

/** `POST /api/publish` → `{ receivers, channels, positions? }`. */
export async function publish(req: IncomingMessage, ctx: RouteContext): Promise<Answer> {
  const body = parseBody(PublishBody, await readJson(req, ctx.bodyLimit))
  const { facility, broadcast, users, groups, sessions } = body
  if (!broadcast && !users?.length && !groups?.length && !sessions?.length) {
    throw new ApiError(400, 'name at least one of broadcast, users, groups, sessions', 'broadcast')
  }
  let message: string | Buffer
  if (body.encoding === 'base64') {
    if (typeof body.data !== 'string')
      throw new ApiError(400, 'data must be a base64 string', 'data')
    message = Buffer.from(body.data, 'base64')
  } else message = typeof body.data === 'string' ? body.data : JSON.stringify(body.data)
  const publisher = new RedisPublisher(
    { facility, broadcast, users, groups, sessions },
    { broker: ctx.broker },
  )
  const positions = new Map<string, StreamPosition>()
  const receivers = await publisher.publishMessage(message, { expire: body.expire, positions })
  const prefix = ctx.broker.options.channelPrefix.length
  const channels = (await publisher.channels()).map((ch) => ch.slice(prefix))
  if (positions.size === 0) return ok({ receivers, channels })
  const byChannel: Record<string, StreamPosition> = {}
  for (const [ch, p] of positions) byChannel[ch.slice(prefix)] = p
  const only = positions.size === 1 ? [...positions.values()][0]! : null
  return ok({
    receivers,
    channels,
    positions: byChannel,
    ...(only && { epoch: only.epoch, offset: only.offset }),
  })
}

/** `GET /api/presence?facility=` → `{ facility, users: [{ user, connections }], online, connections }`. */
export async function presence(url: URL, ctx: RouteContext): Promise<Answer> {
  requirePresence(ctx.broker)
  const facility = facilityParam(url)
  const users = await ctx.broker.presence.list(facility ?? undefined)
  const connections = users.reduce((n, u) => n + u.connections, 0)
  return ok({ facility, online: users.length, connections, users })
}

/** `GET /api/presence/<user>?facility=` → `{ user, facility, online, connections }`. */
export async function presenceOf(user: string, url: URL, ctx: RouteContext): Promise<Answer> {
  requirePresence(ctx.broker)
  const facility = facilityParam(url)
  const connections = await ctx.broker.presence.count(user, facility ?? undefined)
  return ok({ user, facility, online: connections > 0, connections })
}

/** `POST /api/disconnect` `{ user }` or `{ connection }` (+ code, reason). */
export async function disconnect(req: IncomingMessage, ctx: RouteContext): Promise<Answer> {
  const body = parseBody(DisconnectBody, await readJson(req, ctx.bodyLimit))
  const code = body.code ?? 1000
  const reason = body.reason ?? 'disconnected by the server API'
  if ('user' in body) {
    await ctx.broker.disconnectUser(body.user, code, reason)
    return ok({ user: body.user, disconnected: true })
  }
  const found = await ctx.broker.closeConnection(body.connection, code, reason)
  return ok({ connection: body.connection, disconnected: found })
}

/**
 * `GET /api/history?channel=broadcast:chat&since=OFFSET&epoch=EPOCH&limit=N`: the channel's
 * position and its messages after `since`. An `epoch` that is not the channel's current one means
 * that history was lost: the answer says `reset: true` and lists the current epoch's messages.
 */
export async function history(url: URL, ctx: RouteContext): Promise<Answer> {
  const channel = url.searchParams.get('channel')
  if (!channel) throw new ApiError(400, 'channel is required (e.g. broadcast:chat)', 'channel')
  const colon = channel.lastIndexOf(':')
  const audience = channel.slice(0, channel.indexOf(':'))
  if (colon < 0 || !['broadcast', 'group', 'user', 'session'].includes(audience)) {
    throw new ApiError(
      400,
      'channel must be a channel name such as broadcast:chat or user:ann:chat',
      'channel',
    )
  }
  const facility = channel.slice(colon + 1)
  if (!ctx.broker.historyOf(facility)) {
    throw new ApiError(404, `facility ${facility} keeps no history (see --history-size)`, 'channel')
  }
  const since = wholeParam(url, 'since')
  const limit = Math.min(wholeParam(url, 'limit') ?? HISTORY_LIMIT, HISTORY_LIMIT)
  const epoch = url.searchParams.get('epoch')
  const name = ctx.broker.options.channelPrefix + channel
  let read = await ctx.broker.engine.readHistory(name, since, limit)
  const reset = epoch !== null && epoch !== read.epoch
  if (reset && since !== null) read = await ctx.broker.engine.readHistory(name, 0, limit)
  const entries = read.entries.map((e) => ({ offset: e.offset, ...encodePayload(e.payload) }))
  return ok({ channel, epoch: read.epoch, offset: read.offset, reset, entries })
}

/** `GET /api/info` → `{ nodes, connections, channels }` of every live process. */
export async function info(ctx: RouteContext): Promise<Answer> {
  const nodes = await ctx.board.read()
  const sum = (pick: (n: (typeof nodes)[number]) => number): number =>
    nodes.reduce((total, n) => total + pick(n), 0)
  return ok({
    redis: ctx.broker.engine.status,
    nodes,
    connections: sum((n) => n.connections),
    channels: sum((n) => n.channels),
  })
}

function requirePresence(broker: Broker): void {
  if (!broker.options.presence) {
    throw new ApiError(409, 'presence is off: start the server with --presence')
  }
}

function facilityParam(url: URL): string | null {
  const facility = url.searchParams.get('facility')
  if (facility === null) return null
  if (facility === '' || facility.includes(':')) {
    throw new ApiError(400, 'facility must be a facility name', 'facility')
  }
  return facility
}

function wholeParam(url: URL, key: string): number | null {
  const raw = url.searchParams.get(key)
  if (raw === null) return null
  if (!/^\d{1,15}$/.test(raw)) throw new ApiError(400, `${key} must be a whole number`, key)
  return Number(raw)
}
