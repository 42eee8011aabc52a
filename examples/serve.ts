// Listening and clean shutdown, shared by the example servers.
import type http from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Broker } from '../src/index.js'

/** Listens on `host:port`, prints `banner(actualPort)`, and stops cleanly on SIGINT/SIGTERM. */
export function listenAndServe(
  server: http.Server,
  broker: Broker,
  options: {
    host: string
    port: number
    banner: (port: number) => string
    onStop?: () => Promise<void>
  },
): void {
  server.on('error', (err: NodeJS.ErrnoException) => {
    const hint = err.code === 'EADDRINUSE' ? ' (set PORT to use another port)' : ''
    console.error(`cannot listen on ${options.host}:${options.port}: ${err.message}${hint}`)
    process.exit(1)
  })
  server.listen(options.port, options.host, () => {
    console.log(options.banner((server.address() as AddressInfo).port))
  })

  let stopping = false
  const shutdown = async (): Promise<void> => {
    if (stopping) process.exit(1)
    stopping = true
    server.close()
    // Clients are closed with 1001, so pages' clients reconnect when the server is back.
    await broker.close()
    server.closeAllConnections()
    await options.onStop?.().catch(() => {})
    process.exit(0)
  }
  process.on('SIGINT', () => void shutdown())
  process.on('SIGTERM', () => void shutdown())
}
