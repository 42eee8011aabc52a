export { Broker, createBroker } from './broker/broker.js'
export type { BrokerEvents, PublishOptions } from './broker/broker.js'
export type { CloseOptions } from './broker/close.js'
export type { OriginsOption } from './upgrade/origin.js'
export type {
  AllowedChannelsContext,
  AllowedChannelsHook,
  BrokerOptions,
  Logger,
} from './broker/options.js'
export { RedisPublisher, SELF } from './publish/redis-publisher.js'
export type {
  PublisherContext,
  PublisherTarget,
  RequestLike,
  Target,
} from './publish/redis-publisher.js'
export { RedisSubscriber } from './channels/redis-subscriber.js'
export type { ConnectionChannels, Flags, SubscriberOptions } from './channels/redis-subscriber.js'
export { Connection, CloseCode } from './connection/connection.js'
export type { SlowConsumerPolicy } from './connection/connection.js'
export type { Identity, IdentifyHook } from './identity/identity.js'
export { anonymous } from './identity/identity.js'
export { type Audience, AUDIENCES, channelName, normalizePrefix } from './channels/naming.js'
export { parseRequest } from './upgrade/parse-url.js'
export type { ParsedRequest } from './upgrade/parse-url.js'
export type { Message, StoredMessage } from './delivery/payload.js'
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
export { Authenticator } from './identity/authenticator.js'
export type { Authentication } from './identity/authenticator.js'
export { JwtVerifier, TokenError, tokenOf, BEARER_PROTOCOL } from './identity/jwt.js'
export type { JwtOptions, VerifiedToken } from './identity/jwt.js'
export { SessionReader, identityFromSession, unsignCookie } from './identity/session.js'
export type { SessionIdentityMapper, SessionOptions } from './identity/session.js'
export { Presence } from './cluster/presence.js'
export type { PresenceEntry, PresenceEvent } from './cluster/presence.js'
export type {
  FacilityContext,
  FacilityDefinition,
  AuthorizeHook,
  WireFormat,
} from './facility/definition.js'
export type { ClientFrame, ServerFrame, EnvelopeErrorCode } from './delivery/envelope.js'
