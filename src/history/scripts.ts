import { runScript, type ScriptRunner, script, sumCounts } from '../engine/redis-scripts.js'
import {
  type HistoryEntry,
  historyKeys,
  type HistoryRead,
  META_TTL,
  type StreamPosition,
} from './wire.js'

/**
 * Lua shared by the history scripts and the `wsfacility` Redis function library. A channel's
 * history is a stream (entries with ids `<offset>-0`, field `d` = the payload) and a hash (`e` =
 * epoch, `s` = top offset), both in the channel's cluster slot (history/wire.ts historyKeys). An
 * epoch is the Redis server's time in microseconds when the history began, in base 36 (short:
 * every data frame of a json facility carries it).
 */
const NEW_EPOCH = `
local function base36(n)
  local digits = '0123456789abcdefghijklmnopqrstuvwxyz'
  local out = ''
  repeat
    local d = n % 36
    out = string.sub(digits, d + 1, d + 1) .. out
    n = math.floor(n / 36)
  until n == 0
  return out
end
local function new_epoch(stream, meta)
  local t = redis.call('TIME')
  local epoch = base36(tonumber(t[1]) * 1000000 + tonumber(t[2]))
  redis.call('DEL', stream)
  redis.call('HSET', meta, 'e', epoch, 's', 0)
  return epoch
end
`

// Appends the payload to the history and publishes it marked with its epoch and offset
// (HISTORY_MARK in history/wire.ts): one atomic step, so every live message carries the offset
// it has in history. `pub` is PUBLISH or SPUBLISH; returns its count, the epoch and the offset.
const APPEND = `${NEW_EPOCH}
local function append(pub, channel, stream, meta, payload, size, ttl, meta_ttl, expire)
  local epoch = redis.call('HGET', meta, 'e')
  if not epoch then epoch = new_epoch(stream, meta) end
  local offset = redis.call('HINCRBY', meta, 's', 1)
  redis.call('XADD', stream, 'MAXLEN', '~', size, offset .. '-0', 'd', payload)
  redis.call('EXPIRE', stream, ttl)
  redis.call('EXPIRE', meta, math.max(ttl, meta_ttl))
  if expire > 0 then redis.call('SET', channel, payload, 'EX', expire) end
  local n = redis.call(pub, channel, '\\255\\000wsfh' .. epoch .. ':' .. offset .. ':' .. payload)
  return n, epoch, offset
end
`

/**
 * Standalone: append + PUBLISH; returns { receivers (as PUBLISH's script counts them), epoch,
 * offset }. KEYS: channel, stream, meta, nodes. ARGV: payload, expire, node hash prefix, size,
 * ttl, meta ttl.
 */
export const HISTORY_PUBLISH = script(`${APPEND}
local function receivers()
${sumCounts('KEYS[4]', 'ARGV[3]', 'KEYS[1]')}end
local n, epoch, offset = append('PUBLISH', KEYS[1], KEYS[2], KEYS[3], ARGV[1], tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[2]))
if n > 0 then n = receivers() end
return { n, epoch, offset }`)

/**
 * Redis Cluster, on the channel's shard: append + SPUBLISH; returns { processes subscribed, epoch,
 * offset }. KEYS: channel, stream, meta. ARGV: payload, expire, size, ttl, meta ttl.
 */
export const HISTORY_SPUBLISH = script(`${APPEND}
local n, epoch, offset = append('SPUBLISH', KEYS[1], KEYS[2], KEYS[3], ARGV[1], tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[2]))
return { n, epoch, offset }
`)

/**
 * Reads a channel's position and, when ARGV[1] >= 0, its entries after that offset (at most
 * ARGV[3]). A channel without an epoch gets one (offset 0), so the position a client is given
 * stays valid for the next publish. Keeps the epoch alive for ARGV[2] seconds more.
 * KEYS: stream, meta. Returns { epoch, top, entries? }.
 */
export const HISTORY_READ = script(`${NEW_EPOCH}
local epoch = redis.call('HGET', KEYS[2], 'e')
if not epoch then epoch = new_epoch(KEYS[1], KEYS[2]) end
redis.call('EXPIRE', KEYS[2], ARGV[2], 'GT')
if redis.call('TTL', KEYS[2]) < 0 then redis.call('EXPIRE', KEYS[2], ARGV[2]) end
local top = tonumber(redis.call('HGET', KEYS[2], 's'))
local since = tonumber(ARGV[1])
if since < 0 or since >= top then return { epoch, top } end
return { epoch, top, redis.call('XRANGE', KEYS[1], '(' .. since .. '-0', '+', 'COUNT', ARGV[3]) }
`)

/**
 * The `wsfacility` function library (Redis 7 functions), loaded by every broker that uses
 * history, for publishers in other languages:
 *   FCALL wsfacility_publish 1 <channel> <payload> <size> <ttl> [expire]
 * (`wsfacility_spublish` on a Redis Cluster). Returns the number of broker processes that
 * received it. The history keys are worked out from the channel as historyKeys() does.
 */
export const FUNCTION_LIBRARY = `#!lua name=wsfacility
${APPEND}
local function slot_tag(ch)
  local open = string.find(ch, '{', 1, true)
  if open then
    local close = string.find(ch, '}', open + 1, true)
    if close and close > open + 1 then return string.sub(ch, open + 1, close - 1) end
  end
  return ch
end
local function publish_with(pub)
  return function(keys, args)
    local channel = keys[1]
    local tag = '{' .. slot_tag(channel) .. '}'
    local size = tonumber(args[2])
    local ttl = tonumber(args[3])
    local expire = tonumber(args[4] or '0')
    if not size or size < 1 or not ttl or ttl < 1 then
      return redis.error_reply('ERR wsfacility: size and ttl must be numbers >= 1')
    end
    local n = append(pub, channel, tag .. 'wsfacility:history:' .. channel,
      tag .. 'wsfacility:epoch:' .. channel, args[1], size, ttl, ${META_TTL}, expire)
    return n
  end
end
redis.register_function('wsfacility_publish', publish_with('PUBLISH'))
redis.register_function('wsfacility_spublish', publish_with('SPUBLISH'))
`

/** A history publish script's reply: its count and the position the message was given. */
export function parsePublished(reply: unknown): { count: number; position: StreamPosition } {
  const [count, epoch, offset] = reply as [unknown, unknown, unknown]
  return { count: Number(count), position: { epoch: text(epoch), offset: Number(offset) } }
}

const text = (v: unknown): string => (Buffer.isBuffer(v) ? v.toString('latin1') : String(v))

/** HISTORY_READ's reply (read with blob strings as Buffers) as a HistoryRead. */
export function parseHistoryRead(reply: unknown): HistoryRead {
  const [epoch, top, raw] = reply as [unknown, unknown, unknown[] | undefined]
  const entries: HistoryEntry[] = []
  for (const item of raw ?? []) {
    const [id, fields] = item as [unknown, unknown[]]
    const idText = text(id)
    const offset = Number(idText.slice(0, idText.indexOf('-')))
    const payload = fields[1]
    entries.push({
      offset,
      payload: Buffer.isBuffer(payload) ? payload : Buffer.from(String(payload)),
    })
  }
  return { epoch: text(epoch), offset: Number(top), entries }
}

/** Reads a channel's history with HISTORY_READ on `redis` (a client that returns Buffers). */
export async function readHistoryWith(
  redis: ScriptRunner,
  channel: string,
  since: number | null,
  limit: number,
): Promise<HistoryRead> {
  const { stream, meta } = historyKeys(channel)
  const args = [String(since ?? -1), String(META_TTL), String(limit)]
  return parseHistoryRead(await runScript(redis, HISTORY_READ, [stream, meta], args))
}
