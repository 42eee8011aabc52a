import assert from 'node:assert/strict'
import { frame } from '../../src/delivery/frame.js'
import { encodeText } from '../../src/delivery/payload.js'
import type { Attempt, OwnerHarness } from './owner.js'
import { framesOf } from './raw.js'
import { eventually } from './ws.js'

// What the outbound tests read of one connection driven through its owner (helpers/owner.ts).

/** The frames the client got after the handshake answer (none before it). */
export function framesAfterHandshake(a: Attempt): { opcode: number; payload: Buffer }[] {
  const buf = a.received()
  const end = buf.indexOf('\r\n\r\n')
  return end === -1 ? [] : framesOf(buf.subarray(end + 4))
}

/** Texts of the data frames the client got. */
export const texts = (a: Attempt): string[] =>
  framesAfterHandshake(a)
    .filter((f) => f.opcode === 1 || f.opcode === 2)
    .map((f) => f.payload.toString())

/** Closes `a` and asserts that the client got `expected`, then the close frame. */
export async function closesAfter(a: Attempt, expected: string[]): Promise<void> {
  a.owner.close(1000, 'bye')
  await eventually(() => framesAfterHandshake(a).some((f) => f.opcode === 8))
  assert.deepEqual(
    framesAfterHandshake(a).map((f) => f.opcode),
    [...expected.map(() => 1), 8],
  )
  assert.deepEqual(texts(a), expected)
  a.owner.terminate()
}

/** Writes to the owner's socket after the handshake answer (the first write). */
export const writesAfterHandshake = (a: Attempt): Buffer[] => a.writes.slice(1)

/** Texts of the frames of the one write to `a` after its first `before` (asserted to be one). */
export function oneWriteAfter(a: Attempt, before: number, message?: string): string[] {
  const writes = writesAfterHandshake(a).slice(before)
  assert.equal(writes.length, 1, message)
  return framesOf(writes[0]!).map((f) => f.payload.toString())
}

/** Publishes `text` on `channel` through the engine (synchronously delivered by the memory engine). */
export const publish = (h: OwnerHarness, channel: string, text: string): void =>
  void h.engine.publish(channel, encodeText(text), 0)

/** Bytes of the frame of a short text. */
export const framed = (text: string): number => frame(Buffer.from(text), false).length
