/**
 * Test helpers for apps built on wsfacility (`wsfacility/testing`): a broker on the in-memory
 * engine (or your Redis) serving your app on a free port, clients that connect as any identity,
 * and awaitable expectations. No test-framework imports: node:test, Vitest and Jest alike.
 */
export { createTestBroker, TestBroker } from './test-broker.js'
export type {
  TestApp,
  TestBrokerOptions,
  TestConnectOptions,
  TestIdentity,
  TestRefusal,
} from './test-broker.js'
export { TestingError, TestSocket, type TestWebSocket } from './test-socket.js'
export type { CloseInfo, TestMessage } from './test-socket.js'
