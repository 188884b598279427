/**
 * The benchmark suite: `npm run bench` (full, under 6 minutes) or
 * `npm run bench -- --quick` (under a minute). See bench/README.md.
 *
 * One server process and one load-client process per implementation, the
 * servers pinned to CPU 0 and the clients (and this orchestrator) to CPU 1
 * when `taskset` and two CPUs are there; loopback only. Every scenario runs
 * the implementations interleaved (the order rotates each repeat) and keeps
 * the median of the repeats; each figure is reported as a ratio to raw ws
 * from the same run, with the CPU that other processes used meanwhile. The
 * plugin with `nexus.v1` clients (`nexus-protocol`, `nexus-mixed`) runs in the
 * broadcast scenarios, and gets its own table: ratios to raw ws and to the
 * plugin with raw clients, and the protocol encodings per broadcast. So does
 * the plugin whose broadcast rooms keep a memory history (`nexus-history`,
 * `nexus-history-protocol`, named with --impls): ratios to the same clients
 * in a plain room.
 */
import { execFileSync, spawn } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { chartSvg } from './lib/chart'
import { Peer } from './lib/ipc'
import { available as procAvailable, noiseBetween, snapshot, NOISE_THRESHOLD_CORES, type Noise } from './lib/noise'
import { diffPerConnection, heapMarkdown, tallySnapshot } from './lib/heap'
import { profileMarkdown, summarizeProfile, type CpuProfile } from './lib/profile'
import {
  AUTH_PATH, BURST_ROOMS, FANOUT_ROOM, HISTORY_IMPLS, IMPLS, LABELS, METRICS_IMPLS, PATH, PROTOCOL_IMPLS, ROOMS_PER_CLIENT, burstRoomsOf, isHistoryImpl, isImpl, isMetricsImpl, isProtocolImpl, protocolClients, takesPart,
  PINGS_PER_STEP, type ClientReport, type ConnectResult, type FlowTiming, type Impl, type InboundReport, type InboundResult, type MemorySample, type Scenario, type Timing
} from './lib/protocol'
import { historyMarkdown, historySummary, historyText, markdownTable, metricsMarkdown, metricsSummary, metricsText, protocolMarkdown, protocolText, protocolSummary, summarize, textTable, type Metric, type Row } from './lib/report'
import { median } from './lib/stats'

/** Warm-up rounds of the connection-rate scenario, per implementation. */
const CONNECT_WARM_ROUNDS = 3

const ROOT = path.resolve(__dirname, '..')
const RESULTS = path.join(__dirname, 'results')

// ------------------------------------------------------------ plans

/** The broadcast scenarios: the server's command of the same name sends, the client counts. */
type FlowKind = 'fanout' | 'fanout-async' | 'burst'

interface Plan {
  mode: 'quick' | 'full'
  /** measured rounds per implementation and scenario */
  repeats: number
  /** handshakes in flight at once while connecting */
  concurrency: number
  connect: { n: number, warm: number, repeats: number }
  /** `steps` broadcasts to one room of `n` clients */
  fanout: Array<{ n: number, steps: number }>
  /** the same, each broadcast made by an async function after an await (the implementations of ASYNC_FANOUT_IMPLS only) */
  fanoutAsync: Array<{ n: number, steps: number }>
  /** `steps` ticks, each broadcasting to every burst room in one event-loop turn */
  burst: Array<{ n: number, steps: number }>
  /** `steps` steps of the `n` clients, each PINGS_PER_STEP pings from every client in one event-loop turn */
  inbound: Array<{ n: number, steps: number }>
  memory: { ns: number[], repeats: number }
}

const FULL: Plan = {
  mode: 'full',
  repeats: 5,
  concurrency: 128,
  connect: { n: 2000, warm: 2000, repeats: 5 },
  fanout: [{ n: 100, steps: 1000 }, { n: 1000, steps: 200 }, { n: 5000, steps: 40 }],
  fanoutAsync: [{ n: 1000, steps: 100 }],
  burst: [{ n: 1000, steps: 60 }],
  inbound: [{ n: 100, steps: 300 }],
  memory: { ns: [1000, 5000], repeats: 3 }
}

const QUICK: Plan = {
  mode: 'quick',
  repeats: 3,
  concurrency: 128,
  connect: { n: 2000, warm: 1000, repeats: 2 },
  fanout: [{ n: 100, steps: 200 }, { n: 1000, steps: 30 }, { n: 5000, steps: 8 }],
  fanoutAsync: [{ n: 1000, steps: 30 }],
  burst: [{ n: 1000, steps: 8 }],
  inbound: [{ n: 100, steps: 200 }],
  memory: { ns: [1000, 5000], repeats: 1 }
}

/** Credit window of a fan-out round: about 32k messages in flight in all, 8 to 256 per socket. */
function fanoutWindow (n: number): number {
  return Math.min(256, Math.max(8, Math.ceil(32_768 / n)))
}

/** Credit window of a burst round, in ticks (each tick is 3 messages per socket). */
function burstWindow (n: number): number {
  return Math.min(64, Math.max(4, Math.ceil(8192 / n)))
}

/** Credit window of an inbound round, in steps (PINGS_PER_STEP pings per socket each): about 16k pings in flight in all, 8 to 256 steps per socket. */
function inboundWindow (n: number): number {
  return Math.min(256, Math.max(8, Math.ceil(16_384 / (n * PINGS_PER_STEP))))
}

// ------------------------------------------------------------ arguments

interface Args {
  plan: Plan
  chart?: string
  impls: Impl[]
  /** --impls was given */
  implsGiven: boolean
  profile: boolean
  write: boolean
}

const USAGE = `Usage: npm run bench -- [--quick] [--repeats=N] [--impls=ws,nexus,...] [--profile] [--no-write]

  --quick       the short suite (under a minute)
  --repeats=N   measured rounds per implementation and scenario
  --impls=LIST  implementations to run (raw ws is always included, nexus with
                a protocol or history one, nexus-protocol with nexus-history-protocol):
                ${[...IMPLS, ...PROTOCOL_IMPLS].join(', ')};
                named only: ${HISTORY_IMPLS.join(', ')} (broadcast rooms with a
                memory history), ${METRICS_IMPLS.join(', ')} (the Prometheus metrics
                on) and the probes ws-frame-list, ws-frame, ws-frame-cork
  --profile     CPU-profile (node --cpu-prof) the plugin's and raw ws's fan-out
                servers and summarise where the broadcast time goes
  --no-write    print the results only
  --chart=FILE  draw the chart of a saved results JSON again`

function parseArgs (argv: string[]): Args {
  let plan = FULL
  let repeats: number | undefined
  let impls: Impl[] = [...IMPLS, ...PROTOCOL_IMPLS]
  let implsGiven = false
  let profile = false
  let write = true
  let chart: string | undefined
  for (const arg of argv) {
    const [name, value] = arg.split('=', 2)
    if (name === '--quick') plan = QUICK
    else if (name === '--full') plan = FULL
    else if (name === '--profile') profile = true
    else if (name === '--no-write') write = false
    else if (name === '--chart' && value !== undefined) chart = value
    else if (name === '--repeats' && Number(value) >= 1) repeats = Math.floor(Number(value))
    else if (name === '--impls' && value !== undefined) {
      const names = value.split(',').map((item) => item.trim()).filter(Boolean)
      for (const item of names) if (!isImpl(item)) throw new Error(`unknown implementation ${item}\n\n${USAGE}`)
      impls = ['ws', ...(names as Impl[]).filter((item) => item !== 'ws')]
      // The protocol and history figures are also ratios to the plugin with raw clients in a plain room.
      if ((impls.some(isProtocolImpl) || impls.some(isHistoryImpl) || impls.some(isMetricsImpl)) && !impls.includes('nexus')) impls.splice(1, 0, 'nexus')
      // nexus.v1 clients in a history room are compared with nexus.v1 clients in a plain room.
      if (impls.includes('nexus-history-protocol') && !impls.includes('nexus-protocol')) impls.splice(impls.indexOf('nexus') + 1, 0, 'nexus-protocol')
      implsGiven = true
    } else if (name === '--help' || name === '-h') {
      console.log(USAGE)
      process.exit(0)
    } else {
      throw new Error(`unknown argument ${arg}\n\n${USAGE}`)
    }
  }
  return { plan: repeats === undefined ? plan : { ...plan, repeats, connect: { ...plan.connect, repeats } }, impls, implsGiven, profile, write, ...(chart === undefined ? {} : { chart }) }
}

// ------------------------------------------------------------ the machine

interface Pinning {
  server: string
  client: string
}

function hasTaskset (): boolean {
  try {
    execFileSync('taskset', ['-V'], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

/** Servers on CPU 0, clients and this process on CPU 1, when there are two CPUs and taskset. */
function pin (): Pinning | null {
  if (os.availableParallelism() < 2 || !hasTaskset()) return null
  try {
    // -a: every thread of this process (libuv's pool, V8's platform threads), not only the main one.
    execFileSync('taskset', ['-a', '-cp', '1', String(process.pid)], { stdio: 'ignore' })
  } catch {
    return null
  }
  return { server: '0', client: '1' }
}

function openFilesLimit (): number {
  try {
    const line = readFileSync('/proc/self/limits', 'utf8').split('\n').find((l) => l.startsWith('Max open files'))
    const hard = line?.trim().split(/\s+/)[4]
    return hard === undefined || hard === 'unlimited' ? Infinity : Number(hard)
  } catch {
    return Infinity
  }
}

/** The version of an installed package, or of this one (`name` undefined). */
function version (name?: string): string {
  try {
    const file = name === undefined ? path.join(ROOT, 'package.json') : path.join(ROOT, 'node_modules', name, 'package.json')
    return (JSON.parse(readFileSync(file, 'utf8')) as { version: string }).version
  } catch {
    return 'unknown'
  }
}

function git (args: string[]): string {
  try {
    // Only the end is trimmed: `git status --porcelain` lines start with a space.
    return execFileSync('git', args, { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trimEnd()
  } catch {
    return ''
  }
}

/** Mean CPU use of other processes over `ms`, before the run: the machine's background noise. */
async function idleNoise (ms: number): Promise<number> {
  const before = snapshot([process.pid])
  await sleep(ms)
  return noiseBetween(before, snapshot([process.pid]), [process.pid]).foreignCores
}

// ------------------------------------------------------------ processes

interface Pair {
  impl: Impl
  server: Peer
  client: Peer
  port: number
}

function sleep (ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

/**
 * Starts `bench/<role>.ts` through bash, which raises the open-files limit
 * (5,000 clients need more than the usual 1,024) and execs node under
 * taskset: the pid stays the child's, for /proc accounting.
 */
function start (role: 'server' | 'client', impl: Impl, cpu: string | undefined, nodeFlags: string[], onOther: (message: any) => void): { peer: Peer, ready: Promise<number | undefined> } {
  const command = [
    ...(cpu === undefined ? [] : ['taskset', '-c', cpu]),
    process.execPath, '--expose-gc', '--import', 'tsx', ...nodeFlags, path.join('bench', `${role}.ts`), impl
  ]
  const script = 'ulimit -n "$BENCH_NOFILE" 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec "$@"'
  const child = spawn('bash', ['-c', script, 'bench', ...command], {
    cwd: ROOT,
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    env: { ...process.env, BENCH_NOFILE: '65536', NODE_ENV: 'production' }
  })
  let resolveReady!: (port: number | undefined) => void
  let rejectReady!: (error: Error) => void
  const ready = new Promise<number | undefined>((resolve, reject) => {
    resolveReady = resolve
    rejectReady = reject
  })
  const timer = setTimeout(() => rejectReady(new Error(`${role} ${impl} did not start within 20 s`)), 20_000)
  child.once('exit', (code) => rejectReady(new Error(`${role} ${impl} exited with ${code} before it was ready`)))
  const peer = new Peer(`${role} ${impl}`, child, (message) => {
    if (message?.type === 'ready') {
      clearTimeout(timer)
      resolveReady(message.port)
      return
    }
    onOther(message)
  })
  return { peer, ready }
}

async function startPairs (impls: readonly Impl[], pinning: Pinning | null, serverFlags: (impl: Impl) => string[] = () => []): Promise<Map<Impl, Pair>> {
  const pairs = new Map<Impl, Pair>()
  await Promise.all(impls.map(async (impl) => {
    // Acks go through this process, client to server (fan-out, burst) or
    // server to client (inbound): the credit window.
    const server = start('server', impl, pinning?.server, serverFlags(impl), (message) => {
      if (message?.type === 'ack') client.peer.post(message)
    })
    const client = start('client', impl, pinning?.client, [], (message) => {
      if (message?.type === 'ack') server.peer.post(message)
    })
    const [port] = await Promise.all([server.ready, client.ready])
    pairs.set(impl, { impl, server: server.peer, client: client.peer, port: port as number })
  }))
  return pairs
}

async function stopPairs (pairs: Map<Impl, Pair>): Promise<void> {
  await Promise.all([...pairs.values()].map(async (pair) => {
    const exited = (peer: Peer): Promise<void> => new Promise((resolve) => {
      if (peer.proc.exitCode !== null || peer.proc.signalCode !== null) resolve()
      else peer.proc.once('exit', () => resolve())
    })
    try {
      await pair.client.call('closeAll', undefined, 10_000)
    } catch {}
    pair.client.proc.disconnect()
    try {
      await pair.server.call('exit', undefined, 15_000)
    } catch {
      pair.server.proc.kill()
    }
    // Bounded: a child that has not exited 10 s after being told to is killed.
    const bounded = async (peer: Peer): Promise<void> => {
      const timer = setTimeout(() => peer.proc.kill('SIGKILL'), 10_000)
      await exited(peer)
      clearTimeout(timer)
    }
    const began = Date.now()
    await Promise.all([bounded(pair.server), bounded(pair.client)])
    if (Date.now() - began > 1000) process.stderr.write(`${pair.impl}: its processes took ${Date.now() - began} ms to exit\n`)
  }))
}

// ------------------------------------------------------------ rounds

class Suite {
  readonly metrics = new Map<string, Metric>()
  readonly rounds: Array<{ scenario: string, impl: Impl, repeat: number, ok: boolean, values: Record<string, number>, noise: Noise, note?: string }> = []
  readonly pairs: Map<Impl, Pair>
  readonly impls: readonly Impl[]
  readonly plan: Plan
  private readonly started = Date.now()
  private warmed = false

  constructor (pairs: Map<Impl, Pair>, impls: readonly Impl[], plan: Plan) {
    this.pairs = pairs
    this.impls = impls
    this.plan = plan
  }

  get pids (): number[] {
    const pids = [process.pid]
    for (const pair of this.pairs.values()) pids.push(pair.server.pid, pair.client.pid)
    return pids
  }

  log (text: string): void {
    const seconds = ((Date.now() - this.started) / 1000).toFixed(1).padStart(6)
    process.stderr.write(`[${seconds}s] ${text}\n`)
  }

  metric (key: string, scenario: string, what: string, unit: string, better: 'lower' | 'higher', chart: boolean, table = true): Metric {
    let metric = this.metrics.get(key)
    if (metric === undefined) {
      metric = { key, scenario, what, unit, better, chart, table, samples: {}, noisySamples: {}, noisy: {}, failed: {} }
      this.metrics.set(key, metric)
    }
    return metric
  }

  record (metric: Metric, impl: Impl, value: number | null, noise: Noise): void {
    if (value === null || !Number.isFinite(value)) {
      metric.failed[impl] = (metric.failed[impl] ?? 0) + 1
      return
    }
    ;(metric.samples[impl] ??= []).push(value)
    ;(metric.noisySamples[impl] ??= []).push(noise.flagged)
    if (noise.flagged) metric.noisy[impl] = (metric.noisy[impl] ?? 0) + 1
  }

  /** The implementations in the order of repeat `r`: rotated, so that none always runs first. */
  order (r: number, impls: readonly Impl[] = this.impls): Impl[] {
    const shift = r % impls.length
    return [...impls.slice(shift), ...impls.slice(0, shift)]
  }

  /** The implementations of this run that take part in a scenario. */
  participants (scenario: Scenario): Impl[] {
    return this.impls.filter((impl) => takesPart(impl, scenario))
  }

  pair (impl: Impl): Pair {
    return this.pairs.get(impl)!
  }

  async waitFor (label: string, timeoutMs: number, done: () => Promise<boolean>): Promise<void> {
    const deadline = Date.now() + timeoutMs
    while (!(await done())) {
      if (Date.now() > deadline) throw new Error(`${label}: not reached within ${timeoutMs} ms`)
      await sleep(20)
    }
  }

  async disconnect (pair: Pair): Promise<void> {
    await pair.client.call('closeAll')
    await this.waitFor(`${pair.impl}: all connections closed`, 30_000, async () => (await pair.server.call<number>('count')) === 0)
  }

  async connect (pair: Pair, n: number, route: string): Promise<ConnectResult> {
    const result = await pair.client.call<ConnectResult>('connect', {
      port: pair.port, path: route, n, concurrency: this.plan.concurrency, timeoutMs: 60_000
    }, 70_000)
    if (result.opened !== n) throw new Error(`${pair.impl}: ${result.opened} of ${n} connections opened (${result.failed} failed: ${result.firstError ?? 'no error'})`)
    await this.waitFor(`${pair.impl}: ${n} connections on the server`, 20_000, async () => (await pair.server.call<number>('count')) === n)
    return result
  }

  async waitRooms (pair: Pair, rooms: string[], sizes: number[]): Promise<void> {
    await this.waitFor(`${pair.impl}: room sizes ${sizes.join(',')}`, 20_000, async () => {
      const actual = await pair.server.call<number[]>('roomSizes', rooms)
      return actual.every((size, i) => size === sizes[i])
    })
  }

  // -------------------------------------------------- scenarios

  async connectionRate (): Promise<void> {
    const { n, warm } = this.plan.connect
    const scenario = `Connection rate, ${n.toLocaleString('en-US')} connections`
    // The client process opens connections about as fast as the fastest servers
    // accept them, so the wall-clock rate saturates; the server's CPU per
    // connection says how many it could accept per CPU-second.
    const capacity = this.metric('connect.capacity', scenario, 'connections per server CPU-second (plugin with auth)', 'conn/CPU-s', 'higher', true)
    const rate = this.metric('connect.rate', scenario, 'connections opened per second, wall clock (plugin with auth)', 'conn/s', 'higher', false)
    const cpu = this.metric('connect.cpu', scenario, 'server CPU per connection (plugin with auth)', 'µs/conn', 'lower', false, false)
    // Several warm-up rounds: accepting runs through Fastify's whole request
    // path, whose JIT tiers settle only after a few thousand handshakes.
    const impls = this.participants('connect')
    for (let round = 0; round < CONNECT_WARM_ROUNDS; round++) {
      for (const impl of impls) {
        const pair = this.pair(impl)
        await this.connect(pair, warm, impl === 'nexus' ? AUTH_PATH : PATH)
        await this.disconnect(pair)
      }
    }
    for (let r = 0; r < this.plan.connect.repeats; r++) {
      for (const impl of this.order(r, impls)) {
        const pair = this.pair(impl)
        const before = snapshot(this.pids)
        await pair.server.call('mark')
        let result: ConnectResult | null = null
        let timing: Timing | null = null
        let note: string | undefined
        try {
          result = await this.connect(pair, n, impl === 'nexus' ? AUTH_PATH : PATH)
          timing = await pair.server.call<Timing>('since')
        } catch (error) {
          note = (error as Error).message
        }
        const noise = noiseBetween(before, snapshot(this.pids), [pair.server.pid, pair.client.pid, process.pid])
        const values: Record<string, number> = result === null || timing === null ? {} : { connPerSec: (n * 1000) / result.wallMs, cpuUsPerConn: timing.cpuUs / n }
        this.record(rate, impl, values.connPerSec ?? null, noise)
        this.record(cpu, impl, values.cpuUsPerConn ?? null, noise)
        this.record(capacity, impl, values.cpuUsPerConn === undefined ? null : 1e6 / values.cpuUsPerConn, noise)
        this.rounds.push({ scenario: 'connect', impl, repeat: r, ok: note === undefined, values, noise, ...(note === undefined ? {} : { note }) })
        this.log(`connect ${n} ${impl.padEnd(18)} ${values.connPerSec?.toFixed(0) ?? 'failed'} conn/s, ${values.cpuUsPerConn?.toFixed(0) ?? '-'} µs CPU/conn${noise.flagged ? `  (noise ${noise.foreignCores.toFixed(2)} cores)` : ''}${note === undefined ? '' : `  ${note}`}`)
        await this.disconnect(pair)
      }
    }
  }

  /**
   * Connects `n` clients to every server of `impls`, measuring idle memory
   * per connection on the way when asked (for those that take part in it).
   */
  async connectAll (n: number, memoryRepeats: number, impls: readonly Impl[] = this.impls): Promise<void> {
    const measured = memoryRepeats === 0 ? [] : impls.filter((impl) => takesPart(impl, 'memory'))
    for (const impl of impls) {
      if (measured.includes(impl)) continue
      const pair = this.pair(impl)
      await this.disconnect(pair)
      await this.connect(pair, n, PATH)
      await this.waitRooms(pair, [FANOUT_ROOM], [n])
    }
    if (measured.length === 0) return
    const heap = this.metric(`memory.${n}.heap`, `Idle memory, ${n.toLocaleString('en-US')} connections`, 'server heap per connection (after GC)', 'KB/conn', 'lower', true)
    // RSS moves in pages and the allocator keeps freed memory: recorded, not tabled.
    const rss = this.metric(`memory.${n}.rss`, `Idle memory, ${n.toLocaleString('en-US')} connections`, 'server RSS per connection', 'KB/conn', 'lower', false, false)
    for (let r = 0; r < memoryRepeats; r++) {
      for (const impl of this.order(r, measured)) {
        const pair = this.pair(impl)
        await this.disconnect(pair)
        const before = snapshot(this.pids)
        const base = await pair.server.call<MemorySample>('memory')
        await this.connect(pair, n, PATH)
        await this.waitRooms(pair, [FANOUT_ROOM], [n])
        // Let the last handshakes' buffers go before measuring.
        await sleep(this.plan.mode === 'full' ? 250 : 100)
        const after = await pair.server.call<MemorySample>('memory')
        const noise = noiseBetween(before, snapshot(this.pids), [pair.server.pid, pair.client.pid, process.pid])
        const values = { heapKBPerConn: (after.heapUsed - base.heapUsed) / n / 1024, rssKBPerConn: (after.rss - base.rss) / n / 1024 }
        this.record(heap, impl, values.heapKBPerConn, noise)
        this.record(rss, impl, values.rssKBPerConn, noise)
        this.rounds.push({ scenario: `memory-${n}`, impl, repeat: r, ok: true, values, noise })
        this.log(`memory ${n} ${impl.padEnd(18)} heap ${values.heapKBPerConn.toFixed(2)} KB/conn, rss ${values.rssKBPerConn.toFixed(2)} KB/conn`)
      }
    }
  }

  /**
   * One measured round of fan-out (sync or async) or burst: server CPU and
   * wall time for `steps` steps, every message delivered, and the broadcasts
   * and protocol encodings the server counted.
   */
  async flowRound (pair: Pair, kind: FlowKind, n: number, steps: number): Promise<{ timing: FlowTiming, report: ClientReport, noise: Noise, ok: boolean, note?: string }> {
    const window = kind === 'burst' ? burstWindow(n) : fanoutWindow(n)
    // The clients count the async fan-out's messages as the fan-out's: only the server's way of sending differs.
    await pair.client.call('prepare', { kind: kind === 'burst' ? 'burst' : 'fanout', steps, ackEvery: Math.max(1, Math.floor(window / 4)) })
    const before = snapshot(this.pids)
    const timing = await pair.server.call<FlowTiming>(kind, { steps, window }, 75_000)
    const noise = noiseBetween(before, snapshot(this.pids), [pair.server.pid, pair.client.pid, process.pid])
    const report = await pair.client.call<ClientReport>('report')
    // The mix of clients is what the implementation says (the server selected nexus.v1 for every client that offered it).
    const protocolSockets = protocolClients(pair.impl, report.sockets)
    // A history implementation stored every broadcast in its room's history (each broadcast names one room).
    const storedAll = !isHistoryImpl(pair.impl) || timing.stored === timing.broadcasts
    // The metrics implementation's metrics saw every broadcast: they were on.
    const meteredAll = !isMetricsImpl(pair.impl) || timing.metered === timing.broadcasts
    const ok = !timing.timedOut && report.received === report.expected && report.mismatches === 0 && report.stray === 0 && report.closedUnexpectedly === 0 &&
      report.protocolSockets === protocolSockets && storedAll && meteredAll
    if (ok) return { timing, report, noise, ok }
    const note = `received ${report.received} of ${report.expected}, ${report.mismatches} wrong, ${report.stray} stray, ${report.closedUnexpectedly} closed` +
      `${report.protocolSockets === protocolSockets ? '' : `, ${report.protocolSockets} nexus.v1 sockets instead of ${protocolSockets}`}` +
      `${storedAll ? '' : `, ${timing.stored ?? 'no'} history messages stored for ${timing.broadcasts} broadcasts`}` +
      `${meteredAll ? '' : `, ${timing.metered ?? 'no'} broadcasts in the metrics for ${timing.broadcasts}`}${timing.timedOut ? ', out of time' : ''}`
    return { timing, report, noise, ok, note }
  }

  async flow (kind: FlowKind, n: number, steps: number): Promise<Array<[number, number]>> {
    const clients = `${n.toLocaleString('en-US')} clients`
    const label = kind === 'fanout'
      ? `Fan-out, ${clients} in one room`
      : kind === 'fanout-async'
        ? `Fan-out from an async function, ${clients} in one room`
        : `Burst, ${clients}, ${BURST_ROOMS.length} rooms × ${ROOMS_PER_CLIENT} per client`
    const impls = this.participants(kind)
    const cpu = this.metric(`${kind}.${n}.cpu`, label, 'server CPU per delivered message', 'µs/msg', 'lower', true)
    const rate = this.metric(`${kind}.${n}.rate`, label, 'delivered messages per second', 'msg/s', 'higher', false)
    // Neither charted nor tabled with the others (raw ws has none): the protocol table shows it.
    const encodings = this.metric(`${kind}.${n}.encodings`, label, 'nexus.v1 encodings per broadcast', 'enc/broadcast', 'lower', false, false)
    const windows: Array<[number, number]> = []
    // One unmeasured round each, so that every server's hot path is optimised
    // before it counts (the quick suite warms up before its first flow scenario only).
    if (this.plan.mode === 'full' || !this.warmed) {
      for (const impl of impls) await this.flowRound(this.pair(impl), kind, n, Math.max(2, Math.ceil(steps / 4)))
      this.warmed = true
    }
    for (let r = 0; r < this.plan.repeats; r++) {
      for (const impl of this.order(r, impls)) {
        const { timing, report, noise, ok, note } = await this.flowRound(this.pair(impl), kind, n, steps)
        const values: Record<string, number> = { cpuUsPerMsg: timing.cpuUs / report.received, msgPerSec: report.received / (timing.wallMs / 1000), delivered: report.received, cpuUs: timing.cpuUs, wallMs: timing.wallMs, broadcasts: timing.broadcasts }
        if (timing.stored !== null) values.stored = timing.stored
        if (timing.encodings !== null) {
          values.encodings = timing.encodings
          values.encodingsPerBroadcast = timing.encodings / timing.broadcasts
          this.record(encodings, impl, ok ? values.encodingsPerBroadcast : null, noise)
        }
        this.record(cpu, impl, ok ? values.cpuUsPerMsg : null, noise)
        this.record(rate, impl, ok ? values.msgPerSec : null, noise)
        this.rounds.push({ scenario: `${kind}-${n}`, impl, repeat: r, ok, values, noise, ...(note === undefined ? {} : { note }) })
        if (impl === 'nexus') windows.push([timing.startUs, timing.endUs])
        const encoded = (timing.encodings === null ? '' : `, ${values.encodingsPerBroadcast.toFixed(2)} nexus.v1 enc/broadcast`) +
          (timing.stored === null ? '' : `, ${(timing.stored / timing.broadcasts).toFixed(2)} stored/broadcast`)
        this.log(`${kind} ${n} ${impl.padEnd(18)} ${values.cpuUsPerMsg.toFixed(2)} µs CPU/msg, ${Math.round(values.msgPerSec).toLocaleString('en-US')} msg/s${encoded}${noise.flagged ? `  (noise ${noise.foreignCores.toFixed(2)} cores)` : ''}${note === undefined ? '' : `  FAILED: ${note}`}`)
      }
    }
    return windows
  }

  /**
   * One measured inbound round: the server arms (counts from zero, starts
   * measuring), the client sends `steps` × PINGS_PER_STEP pings on each of its
   * `n` sockets within the server's credit window, and the round ends when
   * the server's handler has counted the last one.
   */
  async inboundRound (pair: Pair, n: number, steps: number): Promise<{ result: InboundResult, report: InboundReport, noise: Noise, ok: boolean, note?: string } | { problem: string }> {
    // Checked before the server is armed: a client that cannot cork fails the round, not the suite.
    const problem = await pair.client.call<string | null>('uncorkable')
    if (problem !== null) return { problem }
    const window = inboundWindow(n)
    const perSocket = steps * PINGS_PER_STEP
    const expected = n * perSocket
    const before = snapshot(this.pids)
    await pair.server.call('inboundStart', { expected, ackEvery: Math.max(1, Math.floor((window * n * PINGS_PER_STEP) / 4)) })
    const sending = pair.client.call<InboundReport>('inbound', { steps, window, timeoutMs: 65_000 }, 75_000)
    const [result, report] = await Promise.all([pair.server.call<InboundResult>('inboundEnd', undefined, 75_000), sending])
    const noise = noiseBetween(before, snapshot(this.pids), [pair.server.pid, pair.client.pid, process.pid])
    // Each socket's pings are numbered 1…perSocket: the handler saw every ping, parsed whole.
    const sum = (n * perSocket * (perSocket + 1)) / 2
    const timedOut = result.timing.timedOut || report.timedOut
    const ok = !timedOut && report.sockets === n && result.received === expected && result.sum === sum && report.stray === 0 && report.closedUnexpectedly === 0
    if (ok) return { result, report, noise, ok }
    const note = `counted ${result.received} of ${expected} (sent ${report.sent} on ${report.sockets} sockets), sum ${result.sum === sum ? 'right' : 'wrong'}, ` +
      `${report.stray} stray, ${report.closedUnexpectedly} closed${timedOut ? ', out of time' : ''}`
    return { result, report, noise, ok, note }
  }

  async inbound (n: number, steps: number): Promise<void> {
    const label = `Inbound, ${n.toLocaleString('en-US')} clients sending small JSON messages`
    const cpu = this.metric(`inbound.${n}.cpu`, label, 'server CPU per received message', 'µs/msg', 'lower', true)
    const rate = this.metric(`inbound.${n}.rate`, label, 'received messages per second', 'msg/s', 'higher', false)
    // The noise of a round that could not run.
    const quiet: Noise = { wallMs: 0, foreignCores: 0, siblingCores: 0, stealCores: 0, flagged: false }
    // One unmeasured round each, in the quick suite too: the fan-out rounds did not warm the inbound path.
    const impls = this.participants('inbound')
    for (const impl of impls) await this.inboundRound(this.pair(impl), n, Math.max(2, Math.ceil(steps / 4)))
    for (let r = 0; r < this.plan.repeats; r++) {
      for (const impl of this.order(r, impls)) {
        const round = await this.inboundRound(this.pair(impl), n, steps)
        if ('problem' in round) {
          this.record(cpu, impl, null, quiet)
          this.record(rate, impl, null, quiet)
          this.rounds.push({ scenario: `inbound-${n}`, impl, repeat: r, ok: false, values: {}, noise: quiet, note: round.problem })
          this.log(`inbound ${n} ${impl.padEnd(18)} FAILED: ${round.problem}`)
          continue
        }
        const { result, noise, ok, note } = round
        const { timing } = result
        const values = { cpuUsPerMsg: timing.cpuUs / result.received, msgPerSec: result.received / (timing.wallMs / 1000), received: result.received, cpuUs: timing.cpuUs, wallMs: timing.wallMs }
        this.record(cpu, impl, ok ? values.cpuUsPerMsg : null, noise)
        this.record(rate, impl, ok ? values.msgPerSec : null, noise)
        this.rounds.push({ scenario: `inbound-${n}`, impl, repeat: r, ok, values, noise, ...(note === undefined ? {} : { note }) })
        this.log(`inbound ${n} ${impl.padEnd(18)} ${values.cpuUsPerMsg.toFixed(2)} µs CPU/msg, ${Math.round(values.msgPerSec).toLocaleString('en-US')} msg/s${noise.flagged ? `  (noise ${noise.foreignCores.toFixed(2)} cores)` : ''}${note === undefined ? '' : `  FAILED: ${note}`}`)
      }
    }
  }

  async subscribeAll (n: number): Promise<void> {
    const sizes = BURST_ROOMS.map((room) => {
      let size = 0
      for (let i = 0; i < n; i++) if (burstRoomsOf(i).includes(room)) size++
      return size
    })
    for (const impl of this.participants('burst')) {
      const pair = this.pair(impl)
      await pair.client.call('subscribe')
      await this.waitRooms(pair, [...BURST_ROOMS], sizes)
    }
  }

  async run (): Promise<void> {
    const plan = this.plan
    this.log(`connection rate: ${plan.connect.n} connections × ${plan.connect.repeats} repeats`)
    await this.connectionRate()
    const ns = [...new Set([...plan.fanout.map((f) => f.n), ...plan.fanoutAsync.map((f) => f.n), ...plan.burst.map((b) => b.n), ...plan.inbound.map((i) => i.n), ...plan.memory.ns])].sort((a, b) => a - b)
    for (const n of ns) {
      // The scenarios at this size, and the implementations that take part in one of them.
      const scenarios: Scenario[] = []
      if (plan.fanout.some((f) => f.n === n)) scenarios.push('fanout')
      if (plan.fanoutAsync.some((f) => f.n === n)) scenarios.push('fanout-async')
      if (plan.burst.some((b) => b.n === n)) scenarios.push('burst')
      if (plan.inbound.some((i) => i.n === n)) scenarios.push('inbound')
      if (plan.memory.ns.includes(n)) scenarios.push('memory')
      const impls = this.impls.filter((impl) => scenarios.some((scenario) => takesPart(impl, scenario)))
      this.log(`${n} clients per implementation`)
      await this.connectAll(n, plan.memory.ns.includes(n) ? plan.memory.repeats : 0, impls)
      const fanout = plan.fanout.find((f) => f.n === n)
      if (fanout !== undefined) await this.flow('fanout', n, fanout.steps)
      const fanoutAsync = plan.fanoutAsync.find((f) => f.n === n)
      if (fanoutAsync !== undefined) await this.flow('fanout-async', n, fanoutAsync.steps)
      const burst = plan.burst.find((b) => b.n === n)
      if (burst !== undefined) {
        await this.subscribeAll(n)
        await this.flow('burst', n, burst.steps)
      }
      const inbound = plan.inbound.find((i) => i.n === n)
      if (inbound !== undefined) {
        this.log(`inbound: ${n} clients × ${inbound.steps * PINGS_PER_STEP} pings × ${plan.repeats} repeats`)
        await this.inbound(n, inbound.steps)
      }
      for (const impl of this.impls) await this.disconnect(this.pair(impl))
    }
  }
}

// ------------------------------------------------------------ profile

/**
 * `--profile`: the fan-out servers of raw ws, @fastify/websocket and the
 * plugin under `node --cpu-prof`, 1,000 clients, with a summary of the
 * samples taken inside the measured rounds; then a heap snapshot before and
 * after 1,000 idle connections, summarised per connection.
 */
async function profile (args: Args, pinning: Pinning | null, stamp: string): Promise<void> {
  const dir = path.join(RESULTS, `profile-${stamp}`)
  mkdirSync(dir, { recursive: true })
  // The protocol implementations only when named with --impls (they run by default in the suite).
  const impls: Impl[] = ['ws', 'fastify-websocket', 'nexus', ...(args.implsGiven ? args.impls.filter((impl) => !['ws', 'fastify-websocket', 'nexus'].includes(impl)) : [])]
  const n = 1000
  const steps = 300
  const pairs = await startPairs(impls, pinning, () => ['--cpu-prof', `--cpu-prof-dir=${dir}`, '--cpu-prof-interval=200'])
  const suite = new Suite(pairs, impls, { ...args.plan, repeats: 3 })
  const windows = new Map<Impl, Array<[number, number]>>()
  const accepts = new Map<Impl, Array<[number, number]>>()
  const serverPids = new Map<Impl, number>()
  const heaps: string[] = []
  try {
    for (const impl of impls) serverPids.set(impl, pairs.get(impl)!.server.pid)
    await suite.connectAll(n, 0)
    for (let r = 0; r < 3; r++) {
      for (const impl of suite.order(r)) {
        const round = await suite.flowRound(suite.pair(impl), 'fanout', n, steps)
        // The first round warms the JIT up; the next two are summarised.
        if (r > 0) (windows.get(impl) ?? windows.set(impl, []).get(impl)!).push([round.timing.startUs, round.timing.endUs])
        suite.log(`profile fanout ${n} ${impl.padEnd(18)} ${(round.timing.cpuUs / round.report.received).toFixed(2)} µs CPU/msg${round.ok ? '' : ' FAILED'}`)
      }
    }
    // Accepting connections: 2,000 handshakes (the plugin through its auth route), twice; the second is summarised.
    for (const impl of impls) {
      const pair = suite.pair(impl)
      for (let r = 0; r < 2; r++) {
        await suite.disconnect(pair)
        await pair.server.call('mark')
        await suite.connect(pair, args.plan.connect.n, impl === 'nexus' ? AUTH_PATH : PATH)
        const timing = await pair.server.call<Timing>('since')
        if (r === 1) accepts.set(impl, [[timing.startUs, timing.endUs]])
        suite.log(`profile connect ${args.plan.connect.n} ${impl.padEnd(18)} ${(timing.cpuUs / args.plan.connect.n).toFixed(0)} µs CPU/conn`)
      }
    }
    for (const impl of impls) {
      const pair = suite.pair(impl)
      await suite.disconnect(pair)
      const before = path.join(dir, `${impl}-0.heapsnapshot`)
      const after = path.join(dir, `${impl}-${n}.heapsnapshot`)
      await pair.server.call('heapSnapshot', { file: before }, 120_000)
      await suite.connect(pair, n, PATH)
      await suite.waitRooms(pair, [FANOUT_ROOM], [n])
      await sleep(250)
      await pair.server.call('heapSnapshot', { file: after }, 120_000)
      heaps.push(heapMarkdown(`${LABELS[impl]}: heap held by ${n.toLocaleString('en-US')} idle connections`, diffPerConnection(tallySnapshot(before), tallySnapshot(after), n, 25)))
      suite.log(`heap snapshots ${impl}`)
      await suite.disconnect(pair)
    }
  } finally {
    await stopPairs(pairs)
  }
  const sections: string[] = [`# Profiles (${n.toLocaleString('en-US')} clients in one room; CPU: ${steps} broadcasts × 2 rounds per server)`, '', '## CPU: where the fan-out broadcast time goes', '']
  const profiles = new Map<Impl, { file: string, profile: CpuProfile }>()
  for (const impl of impls) {
    // The main thread's profile (thread 0); tsx's loader thread writes another.
    const file = readdirSync(dir).find((name) => name.endsWith('.cpuprofile') && name.includes(`.${serverPids.get(impl)}.0.`))
    if (file !== undefined) profiles.set(impl, { file: path.relative(ROOT, path.join(dir, file)), profile: JSON.parse(readFileSync(path.join(dir, file), 'utf8')) as CpuProfile })
  }
  for (const [impl, { file, profile }] of profiles) {
    sections.push(profileMarkdown(`${LABELS[impl]} (${file})`, summarizeProfile(profile, windows.get(impl) ?? [], ROOT)))
  }
  sections.push(`## CPU: accepting ${args.plan.connect.n.toLocaleString('en-US')} connections (the plugin with auth)`, '')
  for (const [impl, { file, profile }] of profiles) {
    sections.push(profileMarkdown(`${LABELS[impl]} (${file})`, summarizeProfile(profile, accepts.get(impl) ?? [], ROOT, 20)))
  }
  sections.push('## Heap: what an idle connection holds', '', ...heaps)
  const text = sections.join('\n')
  console.log(text)
  if (args.write) {
    writeFileSync(path.join(RESULTS, `${stamp}-profile.md`), text)
    console.log(`\nwritten: ${path.relative(ROOT, path.join(RESULTS, `${stamp}-profile.md`))} (raw profiles and snapshots in ${path.relative(ROOT, dir)}/, not for committing)`)
  }
}

// ------------------------------------------------------------ main

/** Table order: fan-out, burst, inbound, memory, connections; by size within each; main figure first. */
function rank (key: string): number {
  const [kind, n, figure] = key.split('.')
  const kinds = ['fanout', 'fanout-async', 'burst', 'inbound', 'memory', 'connect']
  const figures = kind === 'connect' ? ['capacity', 'rate', 'cpu'] : ['cpu', 'heap', 'rate', 'rss', 'encodings']
  const size = Number(n)
  return kinds.indexOf(kind) * 1e9 + (Number.isFinite(size) ? size : 0) * 10 + figures.indexOf(figure ?? n)
}

function captionOf (mode: string, date: string, cpus: string, repeats: number, noisy: number, rounds: number): string {
  return `${mode} run ${date.slice(0, 16).replace('T', ' ')} UTC · ${cpus} · node ${process.version} · ${repeats} repeats, interleaved · ${noisy}/${rounds} rounds noisy`
}

/** `--chart=<results.json>`: draws the chart of a saved run again, from its numbers. */
function redraw (file: string): void {
  const saved = JSON.parse(readFileSync(file, 'utf8')) as {
    mode: string, date: string, environment: { cpus: string }, plan: Plan, noise: { flaggedRounds: number, rounds: number }, results: Row[]
  }
  const impls = [...IMPLS, ...PROTOCOL_IMPLS, ...HISTORY_IMPLS, ...METRICS_IMPLS].filter((impl) => saved.results.some((row) => row.figures[impl] !== undefined))
  const out = file.replace(/\.json$/, '.svg')
  writeFileSync(out, chartSvg(saved.results, impls, captionOf(saved.mode, saved.date, saved.environment.cpus, saved.plan.repeats, saved.noise.flaggedRounds, saved.noise.rounds)))
  console.log(`written: ${path.relative(ROOT, out)}`)
}

function updateReadme (table: string, chartFile: string, jsonFile: string, date: string): void {
  const file = path.join(__dirname, 'README.md')
  if (!existsSync(file)) return
  const text = readFileSync(file, 'utf8')
  const startMark = '<!-- results:start -->'
  const endMark = '<!-- results:end -->'
  const start = text.indexOf(startMark)
  const end = text.indexOf(endMark)
  if (start === -1 || end < start) return
  const block = [
    startMark,
    `Latest full run: ${date}, \`${path.relative(__dirname, jsonFile)}\`.`,
    '',
    table,
    '',
    `![benchmark chart](${path.relative(__dirname, chartFile)})`,
    endMark
  ].join('\n')
  writeFileSync(file, text.slice(0, start) + block + text.slice(end + endMark.length))
}

async function main (): Promise<void> {
  const args = parseArgs(process.argv.slice(2))
  if (args.chart !== undefined) {
    redraw(path.resolve(args.chart))
    return
  }
  if (!existsSync(path.join(ROOT, 'dist', 'index.js'))) throw new Error('dist/ is missing: run `npm run build` first (the plugin is benchmarked through its public entry)')
  if (!procAvailable()) throw new Error('the suite reads /proc (Linux) for its noise figures')
  const limit = openFilesLimit()
  const biggest = Math.max(...args.plan.fanout.map((f) => f.n), ...args.plan.inbound.map((i) => i.n), ...args.plan.memory.ns, args.plan.connect.n)
  if (limit < biggest + 256) throw new Error(`the open-files hard limit is ${limit}; ${biggest} clients need ${biggest + 256}`)

  const pinning = pin()
  const stamp = new Date().toISOString().replace(/:/g, '-').replace(/\.\d+Z$/, 'Z')
  mkdirSync(RESULTS, { recursive: true })
  if (args.profile) {
    await profile(args, pinning, stamp)
    return
  }

  const startedAt = new Date()
  const background = await idleNoise(500)
  const loadBefore = os.loadavg()
  const pairs = await startPairs(args.impls, pinning)
  const suite = new Suite(pairs, args.impls, args.plan)
  suite.log(`${args.plan.mode} suite: ${args.impls.join(', ')}; ${pinning === null ? 'no CPU pinning' : `servers on CPU ${pinning.server}, clients on CPU ${pinning.client}`}; background load before the run ${background.toFixed(2)} cores`)
  try {
    await suite.run()
  } finally {
    suite.log('stopping')
    await stopPairs(pairs)
  }
  const wallSeconds = (Date.now() - startedAt.getTime()) / 1000

  const rows: Row[] = summarize([...suite.metrics.values()].sort((a, b) => rank(a.key) - rank(b.key)), args.impls)
  const noisy = suite.rounds.filter((round) => round.noise.flagged)
  const foreign = suite.rounds.map((round) => round.noise.foreignCores)
  const noiseSummary = {
    thresholdCores: NOISE_THRESHOLD_CORES,
    backgroundBeforeRunCores: background,
    rounds: suite.rounds.length,
    flaggedRounds: noisy.length,
    medianForeignCores: median(foreign),
    maxForeignCores: Math.max(0, ...foreign),
    maxStealCores: Math.max(0, ...suite.rounds.map((round) => round.noise.stealCores)),
    loadAverageBefore: loadBefore,
    loadAverageAfter: os.loadavg(),
    verdict: noisy.length === 0
      ? 'quiet: no round saw other processes use more than the threshold'
      : `${noisy.length} of ${suite.rounds.length} rounds overlapped with other work on the machine (marked ⚠); their figures are less reliable`
  }
  const libChanges = git(['status', '--porcelain', '--', 'lib', 'types'])
  const environment = {
    node: process.version,
    platform: `${os.type()} ${os.release()} ${os.arch()}`,
    // os.cpus(), not availableParallelism(): this process is pinned to one CPU by now.
    cpus: `${os.cpus().length} × ${os.cpus()[0]?.model ?? 'unknown'}`,
    memory: `${Math.round(os.totalmem() / 2 ** 30)} GiB`,
    pinning: pinning === null ? 'none (one CPU, or no taskset)' : `servers: CPU ${pinning.server}; clients and orchestrator: CPU ${pinning.client}`,
    commit: git(['rev-parse', '--short', 'HEAD']),
    libUncommittedChanges: libChanges === '' ? [] : libChanges.split('\n'),
    versions: {
      'fastify-nexus-realtime': version(),
      ws: version('ws'),
      '@fastify/websocket': version('@fastify/websocket'),
      fastify: version('fastify'),
      'socket.io': version('socket.io'),
      'engine.io': version('engine.io'),
      'socket.io-client': version('socket.io-client')
    }
  }

  const table = markdownTable(rows, args.impls)
  const protocol = protocolSummary(rows)
  const protocolTable = protocol.length === 0 ? '' : protocolMarkdown(protocol)
  const history = historySummary(rows)
  const historyTable = history.length === 0 ? '' : historyMarkdown(history)
  const metrics = metricsSummary(rows)
  const metricsTable = metrics.length === 0 ? '' : metricsMarkdown(metrics)
  console.log('')
  console.log(textTable(rows, args.impls))
  console.log('')
  if (protocol.length > 0) {
    console.log('nexus.v1 clients: server CPU per delivered message, ratios to raw ws and to the plugin with raw clients; nexus.v1 encodings per broadcast')
    console.log(protocolText(protocol))
    console.log('')
  }
  if (history.length > 0) {
    console.log('history rooms (memory store): server CPU per delivered message, ratios to raw ws and to the same clients in a plain room (target ≤ 1.15×)')
    console.log(historyText(history))
    console.log('')
  }
  if (metrics.length > 0) {
    console.log('Prometheus metrics: server CPU per message with the metrics on and off, same run (target ≤ 1.05×)')
    console.log(metricsText(metrics))
    console.log('')
  }
  console.log(`noise: ${noiseSummary.verdict}; median foreign CPU ${noiseSummary.medianForeignCores.toFixed(2)} cores, max ${noiseSummary.maxForeignCores.toFixed(2)}; background before the run ${background.toFixed(2)} cores`)
  console.log(`wall time: ${wallSeconds.toFixed(0)} s`)

  if (!args.write) return
  const base = path.join(RESULTS, `${stamp}-${args.plan.mode}`)
  const caption = captionOf(args.plan.mode, startedAt.toISOString(), environment.cpus, args.plan.repeats, noisy.length, suite.rounds.length)
  writeFileSync(`${base}.json`, JSON.stringify({
    date: startedAt.toISOString(),
    mode: args.plan.mode,
    wallSeconds,
    command: args.plan.mode === 'quick' ? 'npm run bench -- --quick' : 'npm run bench',
    environment,
    plan: args.plan,
    windows: {
      fanout: Object.fromEntries(args.plan.fanout.map((f) => [f.n, fanoutWindow(f.n)])),
      fanoutAsync: Object.fromEntries(args.plan.fanoutAsync.map((f) => [f.n, fanoutWindow(f.n)])),
      burstTicks: Object.fromEntries(args.plan.burst.map((b) => [b.n, burstWindow(b.n)])),
      inboundSteps: Object.fromEntries(args.plan.inbound.map((i) => [i.n, inboundWindow(i.n)]))
    },
    noise: noiseSummary,
    results: rows,
    protocol,
    history,
    metrics,
    rounds: suite.rounds
  }, null, 2) + '\n')
  writeFileSync(`${base}.svg`, chartSvg(rows, args.impls, caption))
  const tables = [
    table,
    ...(protocolTable === '' ? [] : [`With \`nexus.v1\` clients (server CPU per delivered message; ratios to raw ws and to the plugin with raw clients, same run):\n\n${protocolTable}`]),
    ...(historyTable === '' ? [] : [`History rooms, memory store (server CPU per delivered message; ratios to raw ws and to the same clients in a plain room, same run):\n\n${historyTable}`]),
    ...(metricsTable === '' ? [] : [`Prometheus metrics (server CPU per delivered message, inbound: per received message; metrics on ÷ off, same run):\n\n${metricsTable}`])
  ].join('\n\n')
  writeFileSync(`${base}.md`, `${caption}\n\n${tables}\n\nNoise: ${noiseSummary.verdict}.\n`)
  // A full run of every implementation (the protocol, history and metrics ones included or not, no probe) is the README's.
  const suiteImpls: readonly string[] = [...IMPLS, ...PROTOCOL_IMPLS, ...HISTORY_IMPLS, ...METRICS_IMPLS]
  if (args.plan.mode === 'full' && IMPLS.every((impl) => args.impls.includes(impl)) && args.impls.every((impl) => suiteImpls.includes(impl))) {
    updateReadme(tables, `${base}.svg`, `${base}.json`, startedAt.toISOString().slice(0, 10))
  }
  console.log(`written: ${['json', 'svg', 'md'].map((ext) => path.relative(ROOT, `${base}.${ext}`)).join(', ')}`)
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error)
  process.exitCode = 1
})
