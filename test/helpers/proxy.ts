import { once } from 'node:events'
import net from 'node:net'

/**
 * A TCP proxy on 127.0.0.1 in front of one port (a broker's, a redis-server's) that a test can cut:
 * every connection accepted is piped to the target, and `cut()` destroys both sides of all of
 * them at once, as a network failure would.
 */
export interface TcpProxy {
  /** The port clients connect to instead of the target's. */
  readonly port: number
  /** `ws://127.0.0.1:<proxy port>` + path. */
  url(path: string): string
  /** `redis://127.0.0.1:<proxy port>`. */
  readonly redisUrl: string
  /** Connections piped right now. */
  readonly connections: number
  /** Connections accepted since the proxy started. */
  readonly accepted: number
  /** Destroys every piped connection, both sides. */
  cut(): void
  /** From now on, connections are destroyed as soon as they are accepted (until `unblock`). */
  block(): void
  unblock(): void
  /** Cuts everything and stops listening. */
  close(): Promise<void>
}

/** Starts a proxy to `targetPort` on 127.0.0.1. */
export async function startProxy(targetPort: number): Promise<TcpProxy> {
  const pairs = new Set<[net.Socket, net.Socket]>()
  let blocked = false
  let accepted = 0
  const server = net.createServer((client) => {
    accepted++
    if (blocked) {
      client.destroy()
      return
    }
    const upstream = net.connect(targetPort, '127.0.0.1')
    const pair: [net.Socket, net.Socket] = [client, upstream]
    pairs.add(pair)
    const end = (): void => {
      pairs.delete(pair)
      client.destroy()
      upstream.destroy()
    }
    for (const s of pair) {
      s.setNoDelay(true)
      s.on('error', end)
      s.on('close', end)
    }
    client.pipe(upstream)
    upstream.pipe(client)
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as net.AddressInfo
  const cut = (): void => {
    for (const [a, b] of [...pairs]) {
      a.destroy()
      b.destroy()
    }
    pairs.clear()
  }
  return {
    port,
    url: (path) => `ws://127.0.0.1:${port}${path}`,
    redisUrl: `redis://127.0.0.1:${port}`,
    get connections() {
      return pairs.size
    },
    get accepted() {
      return accepted
    },
    cut,
    block: () => void (blocked = true),
    unblock: () => void (blocked = false),
    async close() {
      cut()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}
