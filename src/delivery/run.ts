import type { HistoryPosition } from './envelope.js'

/** The history places of a run's messages, one each (0 and undefined for one without). */
export interface RunPlaces {
  readonly offsets: readonly number[]
  readonly positions: readonly (HistoryPosition | undefined)[]
}

/**
 * Consecutive messages of one channel the hub received and has not delivered yet (Hub.settle):
 * their payloads, their frames (shared by every recipient) and, once one of them has a place in
 * the channel's history, every message's place. `S` is the hub's state of the channel.
 */
export class Run<S> {
  readonly payloads: Buffer[] = []
  readonly frames: Buffer[] = []
  bytes = 0
  /** Created by the first message with a place in the channel's history. */
  places: { offsets: number[]; positions: (HistoryPosition | undefined)[] } | null = null

  constructor(
    readonly channel: string,
    readonly state: S,
    payload: Buffer,
    framed: Buffer,
    offset: number,
    position: HistoryPosition | undefined,
  ) {
    this.push(payload, framed, offset, position)
  }

  push(payload: Buffer, framed: Buffer, offset: number, position: HistoryPosition | undefined) {
    const n = this.payloads.length
    this.payloads.push(payload)
    this.frames.push(framed)
    this.bytes += framed.length
    let places = this.places
    if (places === null) {
      if (offset === 0 && position === undefined) return
      this.places = places = {
        offsets: new Array<number>(n).fill(0),
        positions: new Array<HistoryPosition | undefined>(n).fill(undefined),
      }
    }
    places.offsets.push(offset)
    places.positions.push(position)
  }
}
