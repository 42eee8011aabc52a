import { type ChildProcess, execFile, spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { createClient } from 'redis'
import { freePort } from './redis.js'

const run = promisify(execFile)

/** A local Redis Cluster of three masters (no replicas) started for a test; `stop()` ends it. */
export interface RedisCluster {
  /** Ports of the masters. */
  ports: number[]
  /** `redis://127.0.0.1:<port>` of each master: root nodes for `createCluster`. */
  urls: string[]
  /** Runs one command on the master at `port` and returns its reply. */
  command(port: number, args: string[]): Promise<unknown>
  /** The port of the master that owns `key`'s (or channel's) hash slot. */
  ownerOf(key: string): Promise<number>
  /** Stops the node on `port` (SIGTERM) and starts it again with its cluster config (slots kept,
   * data lost: no persistence); resolves once the cluster is ok again. */
  restart(port: number): Promise<void>
  /** Stops every node (SIGTERM, by PID) and removes the temporary directory. */
  stop(): Promise<void>
}

async function cli(port: number, args: string[]): Promise<string> {
  const { stdout } = await run('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...args])
  return stdout
}

async function waitFor(what: string, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 20_000
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return
    await new Promise((r) => setTimeout(r, 100))
  }
  throw new Error(`redis cluster: ${what} within 20 s`)
}

/** Starts three `redis-server --cluster-enabled yes` on free ports and joins them into a cluster. */
export async function startCluster(): Promise<RedisCluster> {
  const dir = await mkdtemp(join(tmpdir(), 'wsfacility-cluster-'))
  const ports: number[] = []
  while (ports.length < 3) {
    const port = await freePort()
    if (!ports.includes(port)) ports.push(port)
  }
  const launch = (port: number): ChildProcess => {
    const child = spawn(
      'redis-server',
      [
        '--port',
        String(port),
        '--bind',
        '127.0.0.1',
        '--cluster-enabled',
        'yes',
        '--cluster-config-file',
        join(dir, `nodes-${port}.conf`),
        '--dir',
        dir,
        '--appendonly',
        'no',
        '--save',
        '',
      ],
      { stdio: 'ignore' },
    )
    child.on('error', () => {})
    return child
  }
  const children = ports.map(launch)
  const end = async (child: ChildProcess): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return
    const exited = once(child, 'exit')
    child.kill('SIGTERM')
    await exited
  }
  const clusterOk = async (): Promise<void> => {
    for (const port of ports) {
      await waitFor('cluster_state did not become ok', async () =>
        (await cli(port, ['CLUSTER', 'INFO'])).includes('cluster_state:ok'),
      )
    }
  }
  const stop = async (): Promise<void> => {
    await Promise.all(children.map(end))
    await rm(dir, { recursive: true, force: true })
  }
  try {
    for (const port of ports) {
      await waitFor('a node did not answer PING', async () =>
        (await cli(port, ['PING'])).startsWith('PONG'),
      )
    }
    await run('redis-cli', [
      '--cluster',
      'create',
      ...ports.map((port) => `127.0.0.1:${port}`),
      '--cluster-replicas',
      '0',
      '--cluster-yes',
    ])
    await clusterOk()
  } catch (err) {
    await stop()
    throw err
  }

  async function command(port: number, args: string[]): Promise<unknown> {
    const client = createClient({ url: `redis://127.0.0.1:${port}` })
    client.on('error', () => {})
    await client.connect()
    try {
      return await client.sendCommand(args)
    } finally {
      client.destroy()
    }
  }

  return {
    ports,
    urls: ports.map((port) => `redis://127.0.0.1:${port}`),
    command,
    async ownerOf(key) {
      const slot = Number(await command(ports[0]!, ['CLUSTER', 'KEYSLOT', key]))
      const ranges = (await command(ports[0]!, ['CLUSTER', 'SLOTS'])) as [
        number,
        number,
        [string, number],
      ][]
      const owner = ranges.find(([from, to]) => slot >= from && slot <= to)
      if (!owner) throw new Error(`no master owns slot ${slot}`)
      return Number(owner[2][1])
    },
    async restart(port) {
      const i = ports.indexOf(port)
      await end(children[i]!)
      children[i] = launch(port)
      await clusterOk()
    },
    stop,
  }
}
