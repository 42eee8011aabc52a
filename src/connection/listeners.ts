import type { Duplex } from 'node:stream'
import type { RawData, WebSocket } from 'ws'
import { HttpError } from '../errors.js'
import type { Logger } from '../broker/options.js'

/** What the shared listeners below call on the owner of the socket or WebSocket they hear. */
export interface ListenedOwner {
  readonly services: { readonly options: { readonly logger?: Logger | undefined } }
  readonly connection: { readonly id: string } | null
  abort(err: HttpError): void
  received(data: Buffer, isBinary: boolean): void
  answered(): void
  release(code: number): void
}

const OWNER = Symbol('wsfacility.owner')
type Owned = { [OWNER]?: ListenedOwner }

/** Marks `emitter` (a socket or a WebSocket) as `owner`'s: the listeners below find it there. */
export function own(emitter: Duplex | WebSocket, owner: ListenedOwner): void {
  ;(emitter as Owned)[OWNER] = owner
}

const ownerOf = (emitter: unknown): ListenedOwner | undefined => (emitter as Owned)[OWNER]

/** The refusal of an upgrade whose client went away. */
export const clientGone = (): HttpError => new HttpError(499, 'client went away', 'WSF_CLIENT_GONE')

// One set of listeners for every socket and WebSocket (called with it as `this`) instead of
// closures per connection: idle connections are most of a broker's memory.
export function socketGone(this: Duplex): void {
  ownerOf(this)?.abort(clientGone())
}
export function ignoreError(): void {}
export function wsMessage(this: WebSocket, data: RawData, isBinary: boolean): void {
  ownerOf(this)?.received(data as Buffer, isBinary)
}
export function wsPong(this: WebSocket): void {
  ownerOf(this)?.answered()
}
export function wsError(this: WebSocket, err: Error): void {
  const owner = ownerOf(this)
  owner?.services.options.logger?.debug?.({ err, id: owner.connection?.id }, 'client error')
}
export function wsClose(this: WebSocket, code: number): void {
  ownerOf(this)?.release(code)
}
