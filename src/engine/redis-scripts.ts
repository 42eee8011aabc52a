import { createHash } from 'node:crypto'

/**
 * Names of wsfacility's own keys under `prefix`. They all start with `{prefix}{wsfacility}`, so
 * they share one Redis Cluster hash slot whatever the prefix: every script and MULTI below touches
 * a single slot and cannot fail with CROSSSLOT. (Channels and their persisted messages keep the
 * ws4redis names and spread over the slots.)
 */
export function engineKeys(prefix: string) {
  const base = `${prefix}{wsfacility}:`
  return {
    /** Set of the ids of processes sharing this Redis. */
    nodes: `${base}nodes`,
    /** Hash per process: `.node` (alive) and its local connection count per channel. */
    node: `${base}node:`,
    /** Hash per presence set: member → connections on every process. */
    presence: `${base}presence:`,
    /** Hash per process: `set NUL member` → its connections, to sweep up after it dies. */
    presenceNode: `${base}presence-node:`,
  }
}

/** wsfacility's own key names (see engineKeys). */
export type EngineKeys = ReturnType<typeof engineKeys>

// Sums the local connection counts every live process recorded for a channel: Redis's own PUBLISH
// count is one per process, ws4redis users expect one per socket. A dead process's hash has
// expired, so it counts nothing. The arguments are Lua expressions.
export function sumCounts(nodes: string, nodePrefix: string, channel: string): string {
  return `
local total = 0
for _, id in ipairs(redis.call('SMEMBERS', ${nodes})) do
  local c = redis.call('HGET', ${nodePrefix} .. id, ${channel})
  if c then total = total + tonumber(c) end
end
return total
`
}

/** A Lua script with its SHA1, for EVALSHA. */
export interface Script {
  source: string
  sha: string
}

/** `source` with its SHA1. */
export function script(source: string): Script {
  return { source, sha: createHash('sha1').update(source).digest('hex') }
}

/**
 * Standalone Redis: PUBLISH (+ SET EX) and the receiver count in one atomic step.
 * KEYS: channel, nodes. ARGV: payload, expire, node hash prefix.
 */
export const PUBLISH = script(`
local n = redis.call('PUBLISH', KEYS[1], ARGV[1])
local ex = tonumber(ARGV[2])
if ex > 0 then redis.call('SET', KEYS[1], ARGV[1], 'EX', ex) end
if n == 0 then return 0 end
${sumCounts('KEYS[2]', 'ARGV[3]', 'KEYS[1]')}`)

/**
 * Redis Cluster, on the channel's shard: SPUBLISH (+ SET EX); returns the number of processes
 * subscribed. KEYS: channel. ARGV: payload, expire.
 */
export const SPUBLISH = script(`
local n = redis.call('SPUBLISH', KEYS[1], ARGV[1])
local ex = tonumber(ARGV[2])
if ex > 0 then redis.call('SET', KEYS[1], ARGV[1], 'EX', ex) end
return n
`)

/** Redis Cluster, on wsfacility's slot: the receiver count. KEYS: nodes. ARGV: channel, node hash prefix. */
export const COUNT = script(sumCounts('KEYS[1]', 'ARGV[2]', 'ARGV[1]'))

/** The script runner both node-redis clients and clusters offer. */
export interface ScriptRunner {
  evalSha(
    sha: string,
    options: { keys: string[]; arguments: (string | Buffer)[] },
  ): Promise<unknown>
  eval(
    source: string,
    options: { keys: string[]; arguments: (string | Buffer)[] },
  ): Promise<unknown>
}

/**
 * Runs `s` by its SHA1, loading it with EVAL where the node does not know it yet (a new or
 * restarted node; in a cluster, each master keeps its own script cache).
 */
export async function runScript(
  redis: ScriptRunner,
  s: Script,
  keys: string[],
  args: (string | Buffer)[],
): Promise<unknown> {
  const options = { keys, arguments: args }
  try {
    return await redis.evalSha(s.sha, options)
  } catch (err) {
    if (!String(err).includes('NOSCRIPT')) throw err
    return redis.eval(s.source, options)
  }
}
