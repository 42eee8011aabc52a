// Browser code (lib: ["dom"], no Node types): wsfacility/client with the browser's own WebSocket.
import { createClient, type Positions, type WsfClient } from 'wsfacility/client'

export function connect(url: string): WsfClient {
  const saved: unknown = JSON.parse(globalThis.sessionStorage?.getItem('positions') ?? 'null')
  return createClient({
    url,
    facility: 'notifications',
    subscribe: ['broadcast'],
    WebSocket: globalThis.WebSocket,
    token: globalThis.localStorage?.getItem('token') ?? undefined,
    positions: (saved as Positions | null) ?? undefined,
    heartbeat: undefined,
  })
}
