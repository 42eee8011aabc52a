/** A minimal typed event emitter (no Node `events`: the client runs in browsers). */
export class Emitter<Events extends object> {
  readonly #listeners = new Map<keyof Events, Set<(value: never) => void>>()

  /** Adds a listener; returns a function that removes it. */
  on<K extends keyof Events>(event: K, listener: (value: Events[K]) => void): () => void {
    let set = this.#listeners.get(event)
    if (!set) this.#listeners.set(event, (set = new Set()))
    set.add(listener as (value: never) => void)
    return () => this.off(event, listener)
  }

  /** Removes a listener added with `on`. */
  off<K extends keyof Events>(event: K, listener: (value: Events[K]) => void): void {
    this.#listeners.get(event)?.delete(listener as (value: never) => void)
  }

  /** Calls every listener of `event`; a throwing listener does not stop the others or the client. */
  emit<K extends keyof Events>(event: K, value: Events[K]): void {
    const set = this.#listeners.get(event)
    if (!set) return
    for (const listener of [...set]) {
      try {
        ;(listener as (value: Events[K]) => void)(value)
      } catch (err) {
        // Reported like an uncaught error in a DOM event listener, outside the client's state changes.
        queueMicrotask(() => {
          throw err
        })
      }
    }
  }
}
