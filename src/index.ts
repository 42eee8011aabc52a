// The documented public API of `wsfacility`, and nothing else (see README.md). Everything not
// exported here is internal and may change in any release.
export { Broker, createBroker } from './broker/broker.js'
export type { BrokerEvents, BrokerStats, PublishOptions } from './broker/broker.js'
export type { CloseOptions } from './broker/close.js'
export type { JoinOptions, JoinTarget, RefreshOptions } from './broker/membership.js'
export type { JoinSpec } from './channels/join-spec.js'
export type {
  AllowedChannelsContext,
  AllowedChannelsHook,
  BrokerOptions,
  Logger,
  NarrowedFlags,
  ResolvedOptions as ResolvedBrokerOptions,
} from './broker/options.js'
export type { MetricsOptions } from './observability/metrics.js'
export type { OriginsOption } from './upgrade/origin.js'
export type { RefusalsOption } from './upgrade/refusal.js'
export { RedisPublisher, SELF } from './publish/redis-publisher.js'
export type {
  PublisherContext,
  PublisherTarget,
  RequestLike,
  Target,
} from './publish/redis-publisher.js'
export { createPublisher, Publisher } from './publish/publisher.js'
export type { PublisherEvents, PublisherOptions } from './publish/publisher.js'
export { RedisSubscriber } from './channels/redis-subscriber.js'
export type { ConnectionChannels, Flags, SubscriberOptions } from './channels/redis-subscriber.js'
export { type Audience, AUDIENCES, channelName } from './channels/naming.js'
export type { Connection, ConnectionState } from './connection/connection.js'
export { CloseCode, type CloseCodeValue } from './close-codes.js'
export type { Identity, IdentifyHook, PartialIdentity } from './identity/identity.js'
export { anonymous } from './identity/identity.js'
export type { JwtOptions } from './identity/jwt.js'
export { TokenError } from './identity/jwt.js'
export type {
  SessionIdentityMapper,
  SessionOptions,
  SessionRecord,
  SessionStore,
} from './identity/session.js'
export type { Message, StoredMessage } from './delivery/payload.js'
export type {
  ChannelRecovery,
  ClientFrame,
  ServerFrame,
  EnvelopeErrorCode,
} from './delivery/envelope.js'
export type { HistoryEntry, HistoryOptions, HistoryRead, StreamPosition } from './history/wire.js'
export { redactUrl } from './observability/redact.js'
export { MemoryEngine } from './engine/memory.js'
export { RedisEngine } from './engine/redis.js'
export type { RedisClusterConfig, RedisEngineOptions } from './engine/redis.js'
export type {
  Engine,
  EngineHistory,
  EngineMembership,
  EnginePresence,
  EngineStatus,
  EngineStorage,
  EngineTransport,
  MessageHandler,
  PresenceChange,
} from './engine/types.js'
export {
  ClosedError,
  EngineError,
  ERROR_CODES,
  type ErrorCode,
  HttpError,
  InvalidArgumentError,
  JoinRefusedError,
  OptionError,
  TimeoutError,
  WsFacilityError,
} from './errors.js'
export type { Presence, PresenceEntry, PresenceEvent } from './cluster/presence.js'
export type {
  AuthorizeHook,
  FacilityContext,
  FacilityDefinition,
  JoinContext,
  SlowConsumerPolicy,
  WireFormat,
} from './facility/definition.js'
