/**
 * The browser client of wsfacility (`wsfacility/client`): runs wherever a standard `WebSocket`
 * exists, or with the `ws` package passed as the `WebSocket` option. No Node imports.
 */
export { WsfClient, createClient } from './client.js'
export type { ClientEvents, ClientMessage, ClientStatus } from './client.js'
export type { JoinResult, JoinTarget } from './joins.js'
export { buildUrl } from './url.js'
export type { Audience, QueryParams, UrlOptions } from './url.js'
export { backoffDelay } from './options.js'
export type {
  ClientOptions,
  HeartbeatOptions,
  QueueOptions,
  ReconnectOptions,
  TokenProvider,
} from './options.js'
export { shouldReconnect } from './retry.js'
export type { ChannelPosition, ChannelRecovery, Positions, RecoveredEvent } from './positions.js'
export { refreshDelay, tokenTimes } from './token.js'
export type { TokenTimes } from './token.js'
export { WsfClientError } from './errors.js'
export type { ClientErrorCode } from './errors.js'
export type {
  CloseEventLike,
  EventLike,
  MessageEventLike,
  SendData,
  WebSocketConstructor,
  WebSocketLike,
} from './socket.js'
