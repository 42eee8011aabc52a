import { once } from 'node:events'
import type http from 'node:http'
import type { AddressInfo } from 'node:net'

/** An HTTP server listening on 127.0.0.1 for a test. */
export interface Listening {
  server: http.Server
  port: number
  /** `http://127.0.0.1:PORT` */
  base: string
  /** Cuts the connections still open (keep-alive, upgraded sockets) and closes the server. */
  close(): Promise<void>
}

/** Starts `server` on 127.0.0.1, on `port` (0: any free port). */
export async function listen(server: http.Server, port = 0): Promise<Listening> {
  server.listen(port, '127.0.0.1')
  await once(server, 'listening')
  const address = server.address() as AddressInfo
  return {
    server,
    port: address.port,
    base: `http://127.0.0.1:${address.port}`,
    async close() {
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}
