import assert from 'node:assert/strict'
import { EventEmitter } from 'node:events'
import { describe, it } from 'node:test'
import { ConnectionHealth } from '../src/engine/connection-health.js'
import type { EngineStatus } from '../src/index.js'

/** A connection's observable surface: its events and isReady. */
class Conn extends EventEmitter {
  isReady = false
  set(ready: boolean, event: 'ready' | 'error'): void {
    this.isReady = ready
    this.emit(event)
  }
}

describe('ConnectionHealth', () => {
  it('is ready only while both connections are, and reports each transition once', () => {
    const cmd = new Conn()
    const sub = new Conn()
    const seen: EngineStatus[] = []
    const health = new ConnectionHealth([cmd, sub], (s) => seen.push(s))
    assert.equal(health.status, 'connecting')
    cmd.set(true, 'ready')
    assert.equal(health.status, 'connecting')
    sub.set(true, 'ready')
    assert.equal(health.status, 'ready')
    sub.set(false, 'error')
    cmd.set(false, 'error')
    cmd.emit('reconnecting')
    sub.emit('reconnecting')
    assert.equal(health.status, 'reconnecting')
    cmd.set(true, 'ready')
    assert.equal(health.status, 'reconnecting')
    sub.set(true, 'ready')
    health.close()
    sub.set(false, 'error')
    assert.deepEqual(seen, ['ready', 'reconnecting', 'ready', 'closed'])
    assert.equal(health.status, 'closed')
  })
})
