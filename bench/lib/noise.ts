import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'

/**
 * The machine's noise: CPU time that processes outside the benchmark used
 * while a round was measured. From /proc/stat (all CPUs) minus the
 * benchmark's own processes (/proc/<pid>/stat), in clock ticks.
 */

let ticksPerSecond = 100
try {
  ticksPerSecond = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100
} catch {
  // getconf missing: Linux's USER_HZ is 100 nearly everywhere.
}

export interface Snapshot {
  at: bigint
  /** user + nice + system ticks of the whole machine (interrupt time is not attributable to a process) */
  busy: number
  steal: number
  /** user + system ticks of each benchmark process */
  own: Map<number, number>
}

export interface Noise {
  wallMs: number
  /** CPU used by processes outside the benchmark, in cores (1 = one CPU busy for the whole round) */
  foreignCores: number
  /** CPU used by the benchmark's idle processes (the other implementations' servers and clients), in cores */
  siblingCores: number
  /** CPU the hypervisor took, in cores */
  stealCores: number
  flagged: boolean
}

/** Above this many cores of foreign or stolen CPU, a round is flagged as noisy. */
export const NOISE_THRESHOLD_CORES = 0.1

function machine (): { busy: number, steal: number } {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]
    const [, user, nice, system, , , , , steal] = line.trim().split(/\s+/).map(Number)
    return { busy: user + nice + system, steal: steal ?? 0 }
  } catch {
    return { busy: 0, steal: 0 }
  }
}

function processTicks (pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    // Fields after the command name (which may hold spaces): state is field 3, utime 14, stime 15.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return Number(fields[11]) + Number(fields[12])
  } catch {
    return 0
  }
}

export function available (): boolean {
  try {
    readFileSync('/proc/stat')
    return true
  } catch {
    return false
  }
}

export function snapshot (pids: Iterable<number>): Snapshot {
  const own = new Map<number, number>()
  for (const pid of pids) own.set(pid, processTicks(pid))
  return { at: process.hrtime.bigint(), ...machine(), own }
}

/** `measured` are the pids doing the round's work; the other benchmark pids count as siblings. */
export function noiseBetween (before: Snapshot, after: Snapshot, measured: readonly number[]): Noise {
  const wallMs = Number(after.at - before.at) / 1e6
  const seconds = Math.max(wallMs / 1000, 1e-3)
  let own = 0
  let siblings = 0
  for (const [pid, ticks] of after.own) {
    const used = ticks - (before.own.get(pid) ?? ticks)
    own += used
    if (!measured.includes(pid)) siblings += used
  }
  const foreign = Math.max(0, after.busy - before.busy - own)
  const toCores = (ticks: number): number => ticks / ticksPerSecond / seconds
  const foreignCores = toCores(foreign)
  const stealCores = toCores(after.steal - before.steal)
  return {
    wallMs,
    foreignCores,
    siblingCores: toCores(siblings),
    stealCores,
    flagged: foreignCores + stealCores > NOISE_THRESHOLD_CORES
  }
}
