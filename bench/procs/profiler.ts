/**
 * CPU profiling of a bench server over IPC (bench/profile.ts): `profileStart` starts V8's
 * sampling profiler, `profileStop` writes the profile (a .cpuprofile, readable in Chrome's
 * DevTools) to the path given and returns its top functions by self time.
 */
import { writeFileSync } from 'node:fs'
import { writeHeapSnapshot } from 'node:v8'
import { Session } from 'node:inspector/promises'

interface Node {
  id: number
  callFrame: { functionName: string; url: string; lineNumber: number }
  hitCount?: number
  children?: number[]
}

interface Profile {
  nodes: Node[]
  samples: number[]
  timeDeltas: number[]
}

/** The commands to merge into a server's `serve` handlers. */
export function profiler(): Record<string, (args: Record<string, unknown>) => unknown> {
  let session: Session | null = null
  /** A new inspector session with `domain` enabled. */
  const open = async (domain: string): Promise<Session> => {
    session = new Session()
    session.connect()
    await session.post(`${domain}.enable`)
    return session
  }
  /** The answer of `method` (a profiler's stop), then the session is closed. */
  const close = async <T>(method: string): Promise<T> => {
    const answer = (await session!.post(method)) as T
    session!.disconnect()
    session = null
    return answer
  }
  return {
    profileStart: async () => {
      const s = await open('Profiler')
      await s.post('Profiler.setSamplingInterval', { interval: 100 })
      await s.post('Profiler.start')
    },
    profileStop: async (a) => {
      const { profile } = await close<{ profile: Profile }>('Profiler.stop')
      if (typeof a.path === 'string') writeFileSync(a.path, JSON.stringify(profile))
      return topSelf(profile, (a.top as number | undefined) ?? 30)
    },
    /** Starts V8's allocation sampling, collected objects included (what GC has to clear). */
    allocStart: async () => {
      const s = await open('HeapProfiler')
      await s.post('HeapProfiler.startSampling', {
        samplingInterval: 1024,
        includeObjectsCollectedByMajorGC: true,
        includeObjectsCollectedByMinorGC: true,
      })
    },
    /** Stops it; returns the top allocating functions by self bytes. */
    allocStop: async (a) => {
      const { profile } = await close<{ profile: { head: AllocNode } }>('HeapProfiler.stopSampling')
      return topAlloc(profile.head, (a.top as number | undefined) ?? 30)
    },
    /** Writes a heap snapshot (after a full GC when the process runs with --expose-gc). */
    heapSnapshot: (a) => {
      const gc = (globalThis as { gc?: () => void }).gc
      gc?.()
      return writeHeapSnapshot(a.path as string)
    },
  }
}

type CallFrame = Node['callFrame']

/** A function as the tables name it: name, file (past node_modules/) and line. */
function frameKey(f: CallFrame): string {
  const file = f.url.replace(/^.*\/(node_modules\/)?/, '')
  return `${f.functionName || '(anonymous)'} ${file}:${f.lineNumber + 1}`
}

/** Self time per function (name, file:line) in ms, largest first, with its share of the total. */
function topSelf(profile: Profile, top: number): string[] {
  const self = new Map<string, number>()
  let total = 0
  for (const n of profile.nodes) {
    const key = frameKey(n.callFrame)
    const hits = n.hitCount ?? 0
    self.set(key, (self.get(key) ?? 0) + hits)
    total += hits
  }
  const ms = (hits: number) => (hits * 0.1).toFixed(1)
  return [...self]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([k, v]) => `${ms(v).padStart(8)} ms ${((100 * v) / total).toFixed(1).padStart(5)}% ${k}`)
}

interface AllocNode {
  callFrame: CallFrame
  selfSize: number
  children: AllocNode[]
}

/** Bytes allocated per function (name, file:line), largest first. */
function topAlloc(head: AllocNode, top: number): string[] {
  const self = new Map<string, number>()
  let total = 0
  const walk = (n: AllocNode): void => {
    const key = frameKey(n.callFrame)
    self.set(key, (self.get(key) ?? 0) + n.selfSize)
    total += n.selfSize
    for (const c of n.children) walk(c)
  }
  walk(head)
  return [`total ${(total / 1e6).toFixed(1)} MB`].concat(
    [...self]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([k, v]) => `${(v / 1e3).toFixed(0).padStart(8)} KB ${k}`),
  )
}
