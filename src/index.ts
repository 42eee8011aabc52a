export { Broker, createBroker } from './broker.js'
export type { BrokerEvents, PublishOptions } from './broker.js'
export type { CloseOptions } from './shutdown.js'
export type { OriginsOption } from './origin.js'
export type {
  AllowedChannelsContext,
  AllowedChannelsHook,
  BrokerOptions,
  Logger,
} from './options.js'
export { RedisPublisher, SELF } from './publisher.js'
export type { PublisherContext, PublisherTarget, RequestLike, Target } from './publisher.js'
export { RedisSubscriber } from './subscriber.js'
export type { ConnectionChannels, Flags, SubscriberOptions } from './subscriber.js'
export { Connection, CloseCode } from './connection.js'
export type { SlowConsumerPolicy } from './connection.js'
export type { Identity, IdentifyHook } from './identity.js'
export { anonymous } from './identity.js'
export { type Audience, AUDIENCES, channelName, normalizePrefix } from './channels.js'
export { parseRequest } from './request.js'
export { redactUrl } from './redact.js'
export type { ParsedRequest } from './request.js'
export type { Message, StoredMessage } from './message.js'
export { MemoryEngine } from './engine/memory.js'
export { RedisEngine } from './engine/redis.js'
export type { RedisClusterConfig, RedisEngineOptions } from './engine/redis.js'
export type { Engine, EngineStatus, MessageHandler } from './engine/types.js'
export {
  ClosedError,
  EngineError,
  HttpError,
  InvalidArgumentError,
  TimeoutError,
  WsFacilityError,
} from './errors.js'
export { Authenticator } from './auth/authenticator.js'
export type { Authentication } from './auth/authenticator.js'
export { JwtVerifier, TokenError, tokenOf, BEARER_PROTOCOL } from './auth/jwt.js'
export type { JwtOptions, VerifiedToken } from './auth/jwt.js'
export { SessionReader, identityFromSession, unsignCookie } from './auth/session.js'
export type { SessionIdentityMapper, SessionOptions } from './auth/session.js'
export { Presence } from './presence.js'
export type { PresenceEntry, PresenceEvent } from './presence.js'
export type { FacilityContext, FacilityDefinition, AuthorizeHook, WireFormat } from './facility.js'
export type { ClientFrame, ServerFrame, EnvelopeErrorCode } from './envelope.js'
