/** Reads a process's CPU time and memory from /proc (Linux), the server figures of every run. */
import { execFileSync } from 'node:child_process'
import { readdirSync, readFileSync } from 'node:fs'

const TICKS = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100
  } catch {
    return 100
  }
})()

/** CPU time (user + system) `pid` has used, in µs (resolution 1/CLK_TCK s). */
export function cpuMicros(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'latin1')
  // Fields after the command name (which may hold spaces), counted from field 3 (state).
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return ((Number(fields[11]) + Number(fields[12])) * 1e6) / TICKS
}

/** A reading of cpuMicros and of the scheduler's own count (ns, every thread), for cpuSince. */
export interface CpuReading {
  ticks: number
  /** Sum of the first field of /proc/<pid>/task/<tid>/schedstat, in µs; NaN when unreadable. */
  sched: number
}

/** CPU `pid` has used so far, both ways (see cpuSince). */
export function cpuReading(pid: number): CpuReading {
  let ns = 0
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`))
      ns += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'latin1').split(' ')[0])
  } catch {
    ns = NaN
  }
  return { ticks: cpuMicros(pid), sched: ns / 1000 }
}

/**
 * CPU µs used between two readings: the scheduler's count (to the µs, where /proc/<pid>/stat
 * counts in 1/CLK_TCK s), unless it is missing or strays from the tick count by more than two
 * ticks and 5 % (a thread that exited took its time with it).
 */
export function cpuSince(a: CpuReading, b: CpuReading): number {
  const ticks = b.ticks - a.ticks
  const sched = b.sched - a.sched
  const slack = (2 * 1e6) / TICKS + 0.05 * ticks
  return Number.isFinite(sched) && Math.abs(sched - ticks) <= slack ? sched : ticks
}

/** Resident set size of `pid` now, in bytes. */
export function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'latin1'))
  return m ? Number(m[1]) * 1024 : 0
}

/** Busy and total CPU time of the whole machine so far, in µs (all cores). */
export function machineMicros(): { busy: number; total: number } {
  const line = readFileSync('/proc/stat', 'latin1').split('\n')[0]!
  const v = line.trim().split(/\s+/).slice(1).map(Number)
  const total = v.reduce((a, b) => a + b, 0)
  const idle = (v[3] ?? 0) + (v[4] ?? 0)
  return { busy: ((total - idle) * 1e6) / TICKS, total: (total * 1e6) / TICKS }
}

/** Samples the RSS of `pid` every `every` ms until stopped; `stop()` returns the peak in bytes. */
export function sampleRss(pid: number, every = 20): { stop(): number } {
  let peak = rssBytes(pid)
  const timer = setInterval(() => {
    try {
      peak = Math.max(peak, rssBytes(pid))
    } catch {
      // the process exited: keep the last peak
    }
  }, every)
  return {
    stop() {
      clearInterval(timer)
      try {
        peak = Math.max(peak, rssBytes(pid))
      } catch {
        // exited
      }
      return peak
    },
  }
}

/** The CPU model name, for the results file. */
export function cpuModel(): string {
  const m = /model name\s*:\s*(.+)/.exec(readFileSync('/proc/cpuinfo', 'latin1'))
  return m ? m[1]!.trim() : 'unknown'
}
