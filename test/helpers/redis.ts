import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import net from 'node:net'
import { createClient } from 'redis'

/** A node-redis client connected to a test server. */
export type TestRedisClient = ReturnType<typeof newClient>

function newClient(port: number) {
  return createClient({ url: `redis://127.0.0.1:${port}` })
}

/** A redis-server started for a test on a free port; `stop()` ends it. */
export interface RedisServer {
  port: number
  url: string
  process: ChildProcess
  /** Stops the server (SIGTERM) and waits for it to exit. */
  stop(): Promise<void>
  /** Kills the server without letting it close anything (SIGKILL). */
  kill(): Promise<void>
  /** Starts the server again on the same port (after stop or kill). */
  restart(): Promise<void>
  /** A fresh node-redis client to inspect the server; the caller closes it. */
  client(): Promise<TestRedisClient>
}

/** A TCP port nobody listens on right now. */
export async function freePort(): Promise<number> {
  const srv = net.createServer()
  srv.listen(0, '127.0.0.1')
  await once(srv, 'listening')
  const { port } = srv.address() as net.AddressInfo
  srv.close()
  await once(srv, 'close')
  return port
}

async function waitReady(port: number, child: ChildProcess): Promise<void> {
  const deadline = Date.now() + 10_000
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`redis-server exited with ${child.exitCode}`)
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1')
      s.once('connect', () => {
        s.write('PING\r\n')
        s.once('data', (d) => {
          s.destroy()
          resolve(d.toString().startsWith('+PONG'))
        })
      })
      s.once('error', () => resolve(false))
    })
    if (ok) return
    await new Promise((r) => setTimeout(r, 50))
  }
  throw new Error('redis-server did not become ready within 10 s')
}

function launch(port: number, extra: string[]): ChildProcess {
  const child = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', ...extra],
    { stdio: 'ignore' },
  )
  child.on('error', () => {})
  return child
}

/** Starts a redis-server on a free port. */
export async function startRedis(extra: string[] = []): Promise<RedisServer> {
  const port = await freePort()
  let child = launch(port, extra)
  await waitReady(port, child)
  const end = async (signal: NodeJS.Signals): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return
    const exited = once(child, 'exit')
    child.kill(signal)
    await exited
  }
  const server: RedisServer = {
    port,
    url: `redis://127.0.0.1:${port}`,
    get process() {
      return child
    },
    stop: () => end('SIGTERM'),
    kill: () => end('SIGKILL'),
    async restart() {
      await end('SIGTERM')
      child = launch(port, extra)
      await waitReady(port, child)
    },
    async client() {
      const c = newClient(port)
      c.on('error', () => {})
      await c.connect()
      return c
    },
  }
  return server
}
