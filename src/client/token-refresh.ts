import { OPEN, type WebSocketLike } from './socket.js'
import { refreshDelay, type TokenTimes, tokenFrame, tokenTimes } from './token.js'
import type { TokenProvider } from './options.js'

/** setTimeout holds at most ~24.8 days; longer delays re-arm when it fires. */
const MAX_TIMER = 2 ** 31 - 1

/**
 * In-band token refresh of one client: asks the provider for a new token shortly before the
 * current one expires (token.ts refreshDelay) and sends `{"token":…}` on the open socket. When
 * the provider fails or gives nothing newer, `failed` is told and the connection goes on until the
 * broker closes it at expiry (4001), after which the client reconnects with a provider's token.
 */
export class TokenRefresh {
  readonly #provider: TokenProvider | null
  /** True while `socket` is the client's current, open socket. */
  readonly #current: (socket: WebSocketLike) => boolean
  readonly #failed: (message: string, cause?: unknown) => void
  #timer: ReturnType<typeof setTimeout> | null = null

  /** `provider` null: no refresh (a fixed token, or `tokenRefresh: false`). */
  constructor(
    provider: TokenProvider | null,
    current: (socket: WebSocketLike) => boolean,
    failed: (message: string, cause?: unknown) => void,
  ) {
    this.#provider = provider
    this.#current = current
    this.#failed = failed
  }

  /** Plans the refresh of `jwt`, the token `socket` is authenticated with. */
  schedule(socket: WebSocketLike, jwt: string): void {
    this.clear()
    if (!this.#provider) return
    const times = tokenTimes(jwt)
    if (!times) return
    const delay = refreshDelay(times, Date.now())
    if (delay === null) return
    this.#timer = setTimeout(
      () => {
        this.#timer = null
        if (delay > MAX_TIMER) this.schedule(socket, jwt)
        else void this.#refresh(this.#provider!, socket, jwt, times)
      },
      Math.min(delay, MAX_TIMER),
    )
  }

  /** Cancels the planned refresh (the socket closed, the client stopped). */
  clear(): void {
    if (this.#timer !== null) clearTimeout(this.#timer)
    this.#timer = null
  }

  async #refresh(
    provider: TokenProvider,
    socket: WebSocketLike,
    current: string,
    times: TokenTimes,
  ): Promise<void> {
    const live = (): boolean => this.#current(socket) && socket.readyState === OPEN
    let next: string | null | undefined
    try {
      next = await provider()
    } catch (err) {
      if (live()) this.#failed('the token provider failed to refresh the token', err)
      return
    }
    if (!live()) return
    const nextTimes = typeof next === 'string' && next !== '' ? tokenTimes(next) : null
    if (
      typeof next !== 'string' ||
      next === '' ||
      next === current ||
      (nextTimes !== null && nextTimes.expiresAt <= times.expiresAt)
    ) {
      this.#failed('the token provider gave no token expiring later')
      return
    }
    socket.send(tokenFrame(next))
    if (nextTimes) this.schedule(socket, next)
  }
}
