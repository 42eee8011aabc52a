import type { ResolvedOptions } from './options.js'

type Settings = NonNullable<ResolvedOptions['heartbeat']>

/** Whether a received frame answers a heartbeat: the same text, or `{"type":"pong"}`. */
export function isHeartbeatAnswer(settings: Settings, data: unknown): boolean {
  if (typeof data !== 'string') return false
  if (settings.answer === 'text') return data === settings.ping
  // Cheap check first: every data frame of a JSON facility is parsed by the application anyway.
  if (!data.includes('"pong"')) return false
  try {
    const frame = JSON.parse(data) as unknown
    return (
      typeof frame === 'object' && frame !== null && (frame as { type?: unknown }).type === 'pong'
    )
  } catch {
    return false
  }
}

/**
 * Sends a heartbeat every `interval` ms on one connection and calls `onDead` when `missed`
 * heartbeats in a row got no answer (as ws4redis.js does with `heartbeat_msg`).
 */
export class Heartbeat {
  readonly #settings: Settings
  readonly #send: (text: string) => void
  readonly #onDead: () => void
  #timer: ReturnType<typeof setInterval> | null = null
  #unanswered = 0

  constructor(settings: Settings, send: (text: string) => void, onDead: () => void) {
    this.#settings = settings
    this.#send = send
    this.#onDead = onDead
  }

  /** Starts sending. */
  start(): void {
    this.stop()
    this.#unanswered = 0
    this.#timer = setInterval(() => this.#tick(), this.#settings.interval)
  }

  /** Stops sending; the connection is gone. */
  stop(): void {
    if (this.#timer !== null) clearInterval(this.#timer)
    this.#timer = null
  }

  /** Handles a received frame; true when it was a heartbeat answer (not for the application). */
  receive(data: unknown): boolean {
    if (!isHeartbeatAnswer(this.#settings, data)) return false
    this.#unanswered = 0
    return true
  }

  #tick(): void {
    if (this.#unanswered >= this.#settings.missed) {
      this.stop()
      this.#onDead()
      return
    }
    this.#unanswered++
    this.#send(this.#settings.ping)
  }
}
