import { CloseCode } from '../close-codes.js'
import { ownerOf } from '../connection/connection.js'
import type { ConnectionRegistry } from '../connection/registry.js'
import type { Engine } from '../engine/types.js'
import { OptionError, TimeoutError } from '../errors.js'
import type { BrokerMetrics } from '../observability/metrics.js'
import type { EngineReturn } from './engine-return.js'

/** Options of `broker.close()`. */
export interface CloseOptions {
  /** Close code sent to clients: 1001 (going away) or 1012 (service restart). @default 1001 */
  code?: 1001 | 1012 | undefined
  /** Milliseconds to wait for in-flight messages and for clients to acknowledge the close;
   * clients still there afterwards are cut. @default 2000 */
  timeout?: number | undefined
}

/** Close options with their defaults applied. */
export interface ResolvedCloseOptions {
  code: 1001 | 1012
  timeout: number
}

const CLOSE_DEFAULTS = { code: 1001, timeout: 2000 } satisfies ResolvedCloseOptions

/** Applies defaults; a number is the timeout (the older `close(timeout)` form). */
export function resolveCloseOptions(options: number | CloseOptions): ResolvedCloseOptions {
  const given = typeof options === 'number' ? { timeout: options } : options
  if (typeof given !== 'object' || given === null) {
    throw new OptionError('close options must be an object or a timeout in ms')
  }
  const opts = {
    code: given.code ?? CLOSE_DEFAULTS.code,
    timeout: given.timeout ?? CLOSE_DEFAULTS.timeout,
  }
  if (opts.code !== 1001 && opts.code !== 1012) {
    throw new OptionError('close code must be 1001 (going away) or 1012 (service restart)')
  }
  if (typeof opts.timeout !== 'number' || !Number.isFinite(opts.timeout) || opts.timeout < 0) {
    throw new OptionError('close timeout must be a number >= 0')
  }
  return opts
}

/** `work`, or a rejection with TimeoutError after `ms`; the timer never outlives the race. */
export async function withTimeout<T>(work: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new TimeoutError(ms)), ms)
  })
  try {
    return await Promise.race([work, timeout])
  } finally {
    clearTimeout(timer)
  }
}

/** What a broker's shutdown works on (broker.close() hands them over). */
export interface ShutdownParts extends ResolvedCloseOptions {
  registry: ConnectionRegistry
  engineReturn: EngineReturn
  /** The engine's start, when it was started. */
  started: Promise<void> | null
  engine: Engine
  /** Takes the broker off its servers and stops the upgrader (new upgrades get 503). */
  detachAll(): void
  metrics: BrokerMetrics
}

/**
 * The shutdown sequence: messages Redis already accepted arrive first, every client is closed
 * with `code` after its queued frames, those still there at the deadline are cut, then the
 * upgrades still running settle and the engine is released.
 */
export async function shutDown(parts: ShutdownParts): Promise<void> {
  const { code, timeout, registry, engine, started } = parts
  registry.stopPings()
  parts.engineReturn.close()
  const deadline = Date.now() + timeout
  // What Redis accepted before close() is on its way to this process: let it arrive first.
  if (started) await withTimeout(engine.barrier(), timeout).catch(() => {})
  const owners = [...registry.open.values()].map(ownerOf)
  const gone = owners.map((o) => o.released())
  const reason = code === CloseCode.SERVICE_RESTART ? 'server restarting' : 'server shutting down'
  for (const o of owners) o.close(code, reason)
  await withTimeout(Promise.all(gone), Math.max(0, deadline - Date.now())).catch(() => {})
  for (const o of owners) o.terminate(code)
  parts.detachAll()
  await registry.settled()
  await started?.catch(() => {})
  await engine.close()
  parts.metrics.unregister()
}
