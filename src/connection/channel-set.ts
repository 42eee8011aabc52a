/**
 * The channels one connection listens to: those its flags and identity give it (derived), minus
 * those it left, plus those it joined. Pure bookkeeping; the owner applies each change to the hub.
 */
export class ChannelSet {
  #derived: readonly string[]
  readonly #joined = new Set<string>()
  readonly #left = new Set<string>()
  #current: string[]

  constructor(derived: readonly string[]) {
    this.#derived = derived
    this.#current = [...derived]
  }

  /** The channels listened to now (derived first, then joined, in join order). */
  get current(): readonly string[] {
    return this.#current
  }

  /** Joined by hand (not given by the identity). */
  get joined(): ReadonlySet<string> {
    return this.#joined
  }

  has(channel: string): boolean {
    return this.#current.includes(channel)
  }

  /** Listens to `channel`; true when it was not listened to before. */
  join(channel: string): boolean {
    if (this.has(channel)) return false
    if (this.#derived.includes(channel)) this.#left.delete(channel)
    // Joined by hand: it stays when a refreshed identity no longer gives it.
    else this.#joined.add(channel)
    this.#update()
    return true
  }

  /** Stops listening to `channel`; true when it was listened to. */
  leave(channel: string): boolean {
    if (!this.has(channel)) return false
    if (this.#derived.includes(channel)) this.#left.add(channel)
    this.#joined.delete(channel)
    this.#update()
    return true
  }

  /**
   * Takes the channels a new identity gives (a refreshed identity); what was joined or left by
   * hand stays so. Returns what to add and what to remove.
   */
  rederive(derived: readonly string[]): { added: string[]; removed: string[] } {
    const before = this.#current
    this.#derived = derived
    for (const ch of this.#left) if (!derived.includes(ch)) this.#left.delete(ch)
    this.#update()
    return {
      added: this.#current.filter((ch) => !before.includes(ch)),
      removed: before.filter((ch) => !this.#current.includes(ch)),
    }
  }

  #update(): void {
    const kept = this.#derived.filter((ch) => !this.#left.has(ch))
    this.#current = [...new Set([...kept, ...this.#joined])]
  }
}
