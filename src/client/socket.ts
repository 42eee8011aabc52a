/**
 * The few WebSocket shapes the client uses, declared here so that it compiles without the DOM lib
 * and accepts any standard implementation: the browser's, Node ≥ 22's, Deno's, or the `ws` package.
 */

/** What the client reads from an `open` or `error` event. */
export interface EventLike {
  readonly type: string
}

/** What the client reads from a `message` event. */
export interface MessageEventLike {
  readonly data: unknown
}

/** What the client reads from a `close` event. */
export interface CloseEventLike {
  readonly code: number
  readonly reason: string
}

/** Data a socket can send: text, or bytes as a binary frame. */
export type SendData = string | ArrayBuffer | ArrayBufferView

/** The subset of the standard `WebSocket` interface the client relies on. */
export interface WebSocketLike {
  readonly readyState: number
  /** The subprotocol the server selected ('' for none). */
  readonly protocol?: string | undefined
  binaryType: string
  /**
   * The client only sends `SendData`; the parameter is `unknown` so that every implementation
   * fits: the DOM's `send` takes `Blob`s but only views of an `ArrayBuffer` (not of a
   * `SharedArrayBuffer`), `ws`'s also takes numbers and arrays, and `SendData` is neither's.
   */
  send(data: unknown): void
  close(code?: number, reason?: string): void
  addEventListener(type: 'open', listener: (event: EventLike) => void): void
  addEventListener(type: 'message', listener: (event: MessageEventLike) => void): void
  addEventListener(type: 'close', listener: (event: CloseEventLike) => void): void
  addEventListener(type: 'error', listener: (event: EventLike) => void): void
}

/** A standard `WebSocket` constructor (`globalThis.WebSocket`, or `ws`'s default export). */
export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocketLike

/** `readyState` of an open socket (the standard `WebSocket.OPEN`). */
export const OPEN = 1

/** The global `WebSocket`, when the runtime has one. */
export function globalWebSocket(): WebSocketConstructor | undefined {
  return (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket
}
