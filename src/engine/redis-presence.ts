import type { Commands } from './redis-link.js'
import { Coalescer, SPACING_MS } from './coalesce.js'
import { type EngineKeys, runScript, script } from './redis-scripts.js'

// Field of a process's presence hash: set and member, joined by NUL (facility names never hold it).
const SEP = '\u0000'

// Joins and leaves in order, each as one step: ARGV[1] is the presence key prefix, then triples
// (op, set, member), op `j` (+1 for this process and cluster-wide) or `l` (-1). Returns each
// op's cluster-wide count (1 after a join means "just joined", 0 after a leave "just left"), or -1
// for a leave whose process entry was already swept (it expired while the process was paused).
// Every key is in wsfacility's slot, so on a cluster a batch is one script on one node.
const CHANGES = script(`
local out = {}
for i = 2, #ARGV, 3 do
  local set, member = ARGV[i + 1], ARGV[i + 2]
  local key = ARGV[1] .. set
  local field = set .. '\\0' .. member
  if ARGV[i] == 'j' then
    redis.call('HINCRBY', KEYS[1], field, 1)
    out[#out + 1] = redis.call('HINCRBY', key, member, 1)
  else
    local n = redis.call('HINCRBY', KEYS[1], field, -1)
    if n <= 0 then redis.call('HDEL', KEYS[1], field) end
    if n < 0 then
      out[#out + 1] = -1
    else
      local c = redis.call('HINCRBY', key, member, -1)
      if c <= 0 then
        redis.call('HDEL', key, member)
        c = 0
      end
      out[#out + 1] = c
    end
  end
end
return out
`)

// Takes a dead process's connections out of every presence set, atomically, so that exactly one
// sweeping process reports each resulting leave. Returns the fields that went offline.
const SWEEP = script(`
if redis.call('EXISTS', KEYS[1]) == 1 then return {} end
local entries = redis.call('HGETALL', KEYS[2])
local left = {}
for i = 1, #entries, 2 do
  local field = entries[i]
  local sep = string.find(field, '\\0', 1, true)
  local key = ARGV[1] .. string.sub(field, 1, sep - 1)
  local member = string.sub(field, sep + 1)
  local c = redis.call('HINCRBY', key, member, -tonumber(entries[i + 1]))
  if c <= 0 then
    redis.call('HDEL', key, member)
    table.insert(left, field)
  end
end
redis.call('DEL', KEYS[2])
redis.call('SREM', KEYS[3], ARGV[2])
return left
`)

// Sets a process's per-field counts to ARGV's (field, count) pairs and moves the cluster-wide
// counts by the differences; returns the fields that went offline by it.
const RECONCILE = script(`
local want, have, left = {}, {}, {}
for i = 2, #ARGV, 2 do want[ARGV[i]] = tonumber(ARGV[i + 1]) end
local entries = redis.call('HGETALL', KEYS[1])
for i = 1, #entries, 2 do have[entries[i]] = tonumber(entries[i + 1]) end
local function move(field, delta)
  if delta == 0 then return end
  local sep = string.find(field, '\\0', 1, true)
  local key = ARGV[1] .. string.sub(field, 1, sep - 1)
  local member = string.sub(field, sep + 1)
  if redis.call('HINCRBY', key, member, delta) <= 0 then
    redis.call('HDEL', key, member)
    if delta < 0 then table.insert(left, field) end
  end
end
for field, n in pairs(have) do move(field, (want[field] or 0) - n) end
for field, n in pairs(want) do if have[field] == nil then move(field, n) end end
redis.call('DEL', KEYS[1])
for field, n in pairs(want) do redis.call('HSET', KEYS[1], field, n) end
return left
`)

/** Presence on Redis: per-process counts (swept when the process dies) and cluster-wide counts. */
export class RedisPresence {
  readonly #cmd: Commands
  readonly #setPrefix: string
  readonly #nodePrefix: string
  readonly #nodeId: string

  constructor(cmd: Commands, keys: EngineKeys, nodeId: string) {
    this.#cmd = cmd
    this.#setPrefix = keys.presence
    this.#nodePrefix = keys.presenceNode
    this.#nodeId = nodeId
  }

  /**
   * +1 connection of `member` in `set`; resolves true when that made it online cluster-wide. A
   * failed batch rejects with what `failed` makes of its error.
   */
  join(set: string, member: string, failed: (err: unknown) => never): Promise<boolean> {
    const at = this.#queue('j', set, member)
    return this.#batches.run().then((counts) => counts[at] === 1, failed)
  }

  /** -1 connection; resolves true when `member` is now offline everywhere. */
  leave(set: string, member: string, failed: (err: unknown) => never): Promise<boolean> {
    const at = this.#queue('l', set, member)
    return this.#batches.run().then((counts) => counts[at] === 0, failed)
  }

  /**
   * Queues a change for the next batch, whose answer it will be at the index returned: one script
   * for every change asked for since the last one (a connection storm costs a round trip per
   * batch, not two per connection).
   */
  #queue(op: 'j' | 'l', set: string, member: string): number {
    const at = this.#queued.length / 3
    this.#queued.push(op, set, member)
    return at
  }

  #queued: string[] = []
  readonly #batches = new Coalescer(async () => {
    const changes = this.#queued
    this.#queued = []
    const keys = [this.#nodePrefix + this.#nodeId]
    const counts = await runScript(this.#cmd, CHANGES, keys, [this.#setPrefix, ...changes])
    return (counts as unknown[]).map(Number)
  }, SPACING_MS)

  async list(set: string): Promise<Map<string, number>> {
    const all = await this.#cmd.hGetAll(this.#setPrefix + set)
    return new Map(Object.entries(all).map(([member, n]) => [member, Number(n)] as const))
  }

  async count(set: string, member: string): Promise<number> {
    return Number((await this.#cmd.hGet(this.#setPrefix + set, member)) ?? 0)
  }

  /** Clears a dead process's presence; resolves to the [set, member] pairs that went offline. */
  async sweep(nodeId: string, aliveKey: string, nodesKey: string): Promise<[string, string][]> {
    const keys = [aliveKey, this.#nodePrefix + nodeId, nodesKey]
    return fieldPairs(
      (await runScript(this.#cmd, SWEEP, keys, [this.#setPrefix, nodeId])) as string[],
    )
  }

  /**
   * Makes this process's share of presence in Redis equal to `counts` (what it really holds): after
   * Redis lost its data, or kept it while joins and leaves of this process could not reach it.
   * Resolves to the [set, member] pairs that went offline by it.
   */
  async reconcile(counts: ReadonlyMap<string, number>): Promise<[string, string][]> {
    const args = [this.#setPrefix]
    for (const [field, n] of counts) args.push(field, String(n))
    const keys = [this.#nodePrefix + this.#nodeId]
    return fieldPairs((await runScript(this.#cmd, RECONCILE, keys, args)) as string[])
  }
}

function fieldPairs(fields: string[]): [string, string][] {
  return fields.map((field) => {
    const i = field.indexOf(SEP)
    return [field.slice(0, i), field.slice(i + 1)]
  })
}

/** The field naming a member of a set in per-process bookkeeping. */
export function presenceField(set: string, member: string): string {
  return set + SEP + member
}
