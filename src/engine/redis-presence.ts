import type { Commands } from './redis-link.js'
import { Coalescer, SPACING_MS } from './coalesce.js'
import { type EngineKeys, runScript, script } from './redis-scripts.js'
import type { PresenceChange } from './types.js'

// Field of a process's presence hash: facility and user, joined by NUL (facility names never hold
// it).
const SEP = '\u0000'

// Joins and leaves of connections, in order: ARGV[1] is the presence key prefix (the overall set's
// key: the empty set name), then triples (op, facility, user), op `j` (+1) or `l` (-1), each
// moving this process's field `facility NUL user` and the user's cluster-wide counts in the
// facility's set and in the overall one (which this process does not keep fields for: its share
// is the sum of its facility fields). Returns two counts per op, overall then the facility's (1
// after a join: "just joined"; 0 after a leave: "just left"), or -1, -1 for a leave whose process
// field was already swept (it expired while the process was paused).
// Every key is in wsfacility's slot, so on a cluster a batch is one script on one node.
const CHANGES = script(`
local node, overall = KEYS[1], ARGV[1]
local out, keys = {}, {}
local function down(key, user)
  local c = redis.call('HINCRBY', key, user, -1)
  if c > 0 then return c end
  redis.call('HDEL', key, user)
  return 0
end
for i = 2, #ARGV, 3 do
  local facility, user = ARGV[i + 1], ARGV[i + 2]
  local key = keys[facility]
  if not key then
    key = overall .. facility
    keys[facility] = key
  end
  local field = facility .. '\\0' .. user
  if ARGV[i] == 'j' then
    redis.call('HINCRBY', node, field, 1)
    out[#out + 1] = redis.call('HINCRBY', overall, user, 1)
    out[#out + 1] = redis.call('HINCRBY', key, user, 1)
  else
    local n = redis.call('HINCRBY', node, field, -1)
    if n <= 0 then redis.call('HDEL', node, field) end
    if n < 0 then
      out[#out + 1] = -1
      out[#out + 1] = -1
    else
      out[#out + 1] = down(overall, user)
      out[#out + 1] = down(key, user)
    end
  end
end
return out
`)

// Lua helpers of SWEEP and RECONCILE: ARGV[1] is the presence key prefix, `left` collects the
// `set NUL member` fields that went offline.
const MOVES = `
local left = {}
local function split(field)
  local sep = string.find(field, '\\0', 1, true)
  return string.sub(field, 1, sep - 1), string.sub(field, sep + 1)
end
local function move(set, member, delta)
  if delta == 0 then return end
  local key = ARGV[1] .. set
  if redis.call('HINCRBY', key, member, delta) <= 0 then
    redis.call('HDEL', key, member)
    if delta < 0 then table.insert(left, set .. '\\0' .. member) end
  end
end
`

// Takes a dead process's connections out of every presence set, atomically, so that exactly one
// sweeping process reports each resulting leave. Returns the fields that went offline. A hash
// written by wsfacility 0.1.0 also has fields of the overall set (empty facility): its overall
// share is then those, not the sum of its facility fields.
const SWEEP = script(`
if redis.call('EXISTS', KEYS[1]) == 1 then return {} end
${MOVES}
local entries = redis.call('HGETALL', KEYS[2])
local summed = true
for i = 1, #entries, 2 do
  if string.byte(entries[i], 1) == 0 then summed = false end
end
local users = {}
for i = 1, #entries, 2 do
  local set, member = split(entries[i])
  local n = tonumber(entries[i + 1])
  move(set, member, -n)
  if summed then users[member] = (users[member] or 0) + n end
end
for member, n in pairs(users) do move('', member, -n) end
redis.call('DEL', KEYS[2])
redis.call('SREM', KEYS[3], ARGV[2])
return left
`)

// Sets a process's per-field counts to ARGV's (field, count) pairs and moves the cluster-wide
// counts, the facilities' and the overall one, by the differences; returns the fields that went
// offline by it.
const RECONCILE = script(`
${MOVES}
local want, have, users = {}, {}, {}
for i = 2, #ARGV, 2 do want[ARGV[i]] = tonumber(ARGV[i + 1]) end
local entries = redis.call('HGETALL', KEYS[1])
for i = 1, #entries, 2 do have[entries[i]] = tonumber(entries[i + 1]) end
local function change(field, delta)
  local set, member = split(field)
  move(set, member, delta)
  users[member] = (users[member] or 0) + delta
end
for field, n in pairs(have) do change(field, (want[field] or 0) - n) end
for field, n in pairs(want) do if have[field] == nil then change(field, n) end end
for member, delta in pairs(users) do move('', member, delta) end
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
   * +1 connection of `user` on `facility`; resolves where that made the user online
   * cluster-wide. A failed batch rejects with what `failed` makes of its error.
   */
  join(facility: string, user: string, failed: (err: unknown) => never): Promise<PresenceChange> {
    const at = this.#queue('j', facility, user)
    return this.#batches
      .run()
      .then((counts) => ({ overall: counts[at] === 1, facility: counts[at + 1] === 1 }), failed)
  }

  /** -1 connection; resolves where `user` is now offline everywhere. */
  leave(facility: string, user: string, failed: (err: unknown) => never): Promise<PresenceChange> {
    const at = this.#queue('l', facility, user)
    return this.#batches
      .run()
      .then((counts) => ({ overall: counts[at] === 0, facility: counts[at + 1] === 0 }), failed)
  }

  /**
   * Queues a change for the next batch, whose answer it will be at the index returned: one script
   * for every change asked for since the last one (a connection storm costs a round trip per
   * batch, not two per connection). Its answer is two counts, overall then the facility's.
   */
  #queue(op: 'j' | 'l', facility: string, user: string): number {
    const at = (this.#queued.length / 3) * 2
    this.#queued.push(op, facility, user)
    return at
  }

  #queued: string[] = []
  /** A reconcile asked for: it runs first in the next batch. */
  #wanted: Deferred<[string, string][]> | null = null
  /**
   * This process's connections by field, with every change of the batches started so far: what its
   * share in Redis is reconciled with. Batches run one at a time, and a reconcile in one of them,
   * before its changes: Redis then holds exactly this share once it answers, whatever changes were
   * asked for meanwhile (they go in later batches, and move the share from there).
   */
  readonly #present = new Map<string, number>()
  readonly #batches = new Coalescer(async () => {
    const changes = this.#queued
    this.#queued = []
    const wanted = this.#wanted
    this.#wanted = null
    const keys = [this.#nodePrefix + this.#nodeId]
    let share: string[] | null = null
    if (wanted) {
      share = [this.#setPrefix]
      for (const [field, n] of this.#present) share.push(field, String(n))
    }
    for (let i = 0; i < changes.length; i += 3) {
      const field = presenceField(changes[i + 1]!, changes[i + 2]!)
      const n = (this.#present.get(field) ?? 0) + (changes[i] === 'j' ? 1 : -1)
      if (n > 0) this.#present.set(field, n)
      else this.#present.delete(field)
    }
    if (wanted) {
      try {
        wanted.resolve(
          fieldPairs((await runScript(this.#cmd, RECONCILE, keys, share!)) as string[]),
        )
      } catch (err) {
        wanted.reject(err)
      }
    }
    if (changes.length === 0) return []
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
   * Sweeps up this process itself once its entry is gone (a graceful close, with no more changes
   * to come): after the batches asked for so far, which would otherwise write its share again.
   */
  async sweepSelf(aliveKey: string, nodesKey: string): Promise<[string, string][]> {
    await this.#batches.run().catch(() => {})
    return this.sweep(this.#nodeId, aliveKey, nodesKey)
  }

  /**
   * Makes this process's share of presence in Redis equal to the connections it holds: after
   * Redis lost its data, or kept it while joins and leaves of this process could not reach it.
   * Resolves to the [set, member] pairs that went offline by it.
   */
  reconcile(): Promise<[string, string][]> {
    this.#wanted ??= deferred()
    const { promise } = this.#wanted
    // Its outcome is the reconcile's own, above; a failed batch is its callers'.
    this.#batches.run().catch(() => {})
    return promise
  }
}

interface Deferred<T> {
  promise: Promise<T>
  resolve(value: T): void
  reject(err: unknown): void
}

function deferred<T>(): Deferred<T> {
  let resolve!: (value: T) => void
  let reject!: (err: unknown) => void
  const promise = new Promise<T>((yes, no) => ((resolve = yes), (reject = no)))
  return { promise, resolve, reject }
}

function fieldPairs(fields: string[]): [string, string][] {
  return fields.map((field) => {
    const i = field.indexOf(SEP)
    return [field.slice(0, i), field.slice(i + 1)]
  })
}

/** The field of a user's connections on a facility in per-process bookkeeping. */
export function presenceField(facility: string, user: string): string {
  return facility + SEP + user
}
