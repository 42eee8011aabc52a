import type { Recipient } from './hub.js'

/**
 * Messages between processes on each process's control channel, one discriminated union parsed
 * once at the boundary; a malformed one is dropped.
 */
export type ControlMessage =
  | { type: 'send'; id: string; text?: string; binary?: string }
  | { type: 'close'; id: string; code: number; reason: string }
  | { type: 'disconnect-user'; user: string; code: number; reason: string }

/** The control channel of process `nodeId`. */
export function controlChannel(prefix: string, nodeId: string): string {
  return `${prefix}wsfacility:control:${nodeId}`
}

/** The process a connection id belongs to (ids are `<nodeId>.<n>`). */
export function nodeOf(connectionId: string): string | null {
  const dot = connectionId.indexOf('.')
  return dot > 0 ? connectionId.slice(0, dot) : null
}

function isCode(value: unknown): value is number {
  return (
    typeof value === 'number' &&
    Number.isInteger(value) &&
    (value === 1000 || (value >= 3000 && value <= 4999))
  )
}

/** Parses a control payload; null when it is not one. */
export function parseControl(payload: Buffer): ControlMessage | null {
  let v: Record<string, unknown>
  try {
    const parsed: unknown = JSON.parse(payload.toString('utf8'))
    if (typeof parsed !== 'object' || parsed === null) return null
    v = parsed as Record<string, unknown>
  } catch {
    return null
  }
  const reason = typeof v.reason === 'string' ? v.reason : ''
  switch (v.type) {
    case 'send':
      if (typeof v.id !== 'string') return null
      if (typeof v.text === 'string') return { type: 'send', id: v.id, text: v.text }
      if (typeof v.binary === 'string') return { type: 'send', id: v.id, binary: v.binary }
      return null
    case 'close':
      return typeof v.id === 'string' && isCode(v.code)
        ? { type: 'close', id: v.id, code: v.code, reason }
        : null
    case 'disconnect-user':
      return typeof v.user === 'string' && isCode(v.code)
        ? { type: 'disconnect-user', user: v.user, code: v.code, reason }
        : null
    default:
      return null
  }
}

/** Close codes server code may use to close a client: 1000, or 3000–4999. */
export { isCode as isApplicationCloseCode }

/** The hub recipient of a process's control channel. */
export class ControlRecipient implements Recipient {
  constructor(private readonly handle: (message: ControlMessage) => void) {}

  deliver(_channel: string, payload: Buffer): void {
    const message = parseControl(payload)
    if (message) this.handle(message)
  }
}
