/** What both bench servers answer besides their own counters: memory after a full GC. */
import type { Server } from 'node:http'

declare const gc: (() => void) | undefined

/** Runs a full GC (the servers start with --expose-gc) and returns memory figures in bytes. */
export function collect(): NodeJS.MemoryUsage {
  if (typeof gc === 'function') {
    gc()
    gc()
  }
  return process.memoryUsage()
}

/** Listens on 127.0.0.1:`port` (load stays on this machine). */
export function listenLocal(server: Server, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    // A backlog of 4096 so bursts of handshakes are not refused before they are accepted.
    server.listen(port, '127.0.0.1', 4096, () => resolve())
  })
}
