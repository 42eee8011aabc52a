import type { IncomingMessage, Server } from 'node:http'
import type { Duplex } from 'node:stream'
import { refuseUpgrade } from '../upgrade/handshake.js'
import { matchesPath } from '../upgrade/parse-url.js'

type UpgradeHandler = (req: IncomingMessage, socket: Duplex, head: Buffer) => void

/** The HTTP servers a broker handles upgrades on, each with its `upgrade` listener. */
export class Attachments {
  readonly #servers = new Map<Server, UpgradeHandler>()
  readonly #path: string
  readonly #handle: UpgradeHandler

  constructor(path: string, handle: UpgradeHandler) {
    this.#path = path
    this.#handle = handle
  }

  /** Listens for upgrades on `server`; false when it already did. */
  add(server: Server): boolean {
    if (this.#servers.has(server)) return false
    const listener: UpgradeHandler = (req, socket, head) => {
      // Upgrades elsewhere are left to other listeners, or refused when there are none.
      if (!matchesPath(req.url ?? '', this.#path)) {
        if (server.listenerCount('upgrade') === 1) refuseUpgrade(socket, 404, 'not found')
        return
      }
      this.#handle(req, socket, head)
    }
    server.on('upgrade', listener)
    this.#servers.set(server, listener)
    return true
  }

  /** Stops listening on `server`. */
  remove(server: Server): void {
    const listener = this.#servers.get(server)
    if (listener) server.off('upgrade', listener)
    this.#servers.delete(server)
  }

  /** Stops listening on every server. */
  clear(): void {
    for (const server of [...this.#servers.keys()]) this.remove(server)
  }
}
