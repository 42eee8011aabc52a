import { type Child, serveCli, startCli } from './child.js'
import { connect, type TestClient } from './ws.js'

/**
 * The processes and clients one test file starts, ended together after each test:
 * `afterEach(spawned.end)`.
 */
export class Spawned {
  readonly children: Child[] = []
  readonly clients: TestClient[] = []

  /** Starts the standalone server with `args` and `env`, without waiting for it. */
  readonly cli = (args: string[], env: Record<string, string> = {}): Child =>
    startCli(this.children, args, env)

  /** Starts the standalone server and waits for its `listening on` line. */
  readonly serve = (args: string[], env: Record<string, string> = {}) =>
    serveCli(this.children, args, env)

  /** Opens a client (with `headers` on its upgrade request) that `end()` terminates. */
  readonly client = async (url: string, headers: Record<string, string> = {}) => {
    const c = await connect(url, { headers })
    this.clients.push(c)
    return c
  }

  /** Terminates every client and kills every process started so far. */
  readonly end = async (): Promise<void> => {
    for (const c of this.clients.splice(0)) c.ws.terminate()
    await Promise.all(this.children.splice(0).map((child) => child.kill()))
  }
}
