import { OptionError, TimeoutError } from '../errors.js'

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
