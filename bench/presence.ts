/**
 * Presence in a big room on two instances, through the Redis adapter:
 *
 *   npm run bench:presence       (builds dist/ first)
 *   node --import tsx bench/presence.ts [--members=N] [--window=S] [--rate=R] [--no-write]
 *
 * What issue 12 asks to measure: a 10,000-member room on two instances with
 * 100 joins + leaves per second; frames per second per presence subscriber
 * (watcher), Redis commands per second, and `presenceCount` latency.
 *
 * Processes, loopback only, not pinned:
 * - a private `redis-server` on a free port (`--save '' --appendonly no`),
 *   started and stopped by this script, so that every command Redis counts
 *   is this benchmark's;
 * - instances A and B: Fastify apps with `redisAdapter` (the same prefix),
 *   `roomPolicies` `big` (presence, default listLimit 1,000: watchers get
 *   counts) and `biglist` (presence, listLimit 100,000: watchers get member
 *   changes), one route `/ws` whose presence key is `?user=` and whose
 *   `onConnect` joins the rooms of `?rooms=`, and a few `/bench/*` HTTP
 *   endpoints (CPU, counters, timed `presenceCount`/`presence` calls). Each
 *   adapter is given its own ioredis connections, whose `sendCommand` the
 *   instance counts by command name: the commands an instance sends, as
 *   opposed to what Redis runs (which counts the commands inside scripts);
 * - this process: N raw `ws` members (N/2 on each instance, one key each)
 *   and one watcher per instance, a `nexus.v1` client written by hand
 *   (PROTOCOL.md, section Presence) that subscribes with `"w":1` and counts
 *   the presence frames (`p` snapshot or counts, `d` changes) and bytes.
 *
 * Per round (room `big`, then `biglist`): open the members, wait until
 * `presenceCount` says N, subscribe the watchers, run the churn (R changes per
 * second in all, default 100, one every 1000/R ms: a new member joins, then
 * the oldest one left on that side closes, alternately on A and on B) for a
 * warm-up of 3 s and then the measured window (default 30 s). Between the
 * two ends of the window: the watchers' frames and bytes, what Redis counted
 * (`INFO stats`, `INFO commandstats`, `INFO cpu`; our own INFO calls taken
 * out), what each instance sent to Redis, its CPU (`process.cpuUsage`) and
 * presence counters. After the window, with the churn still running, A times
 * sequential `await manager.presenceCount(room)` and `presence(room)` calls;
 * then the churn stops, A times them again at rest, the watchers' lists are
 * compared with the store, and every member is closed (the time until the
 * room is empty is noted).
 *
 * The whole run is bounded (170 s); each wait is bounded too.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import os from 'node:os'
import path from 'node:path'
import WebSocket from 'ws'
import { available as procAvailable, noiseBetween, snapshot as noiseSnapshot } from './lib/noise'

const ROOMS = { counts: 'big', list: 'biglist' } as const
const POLICIES = { [ROOMS.counts]: { presence: true }, [ROOMS.list]: { presence: { listLimit: 100_000 } } }
const PREFIX = 'nexus-bench-presence'
/** The whole run, at most. */
const RUN_LIMIT_MS = 170_000
/** The churn runs this long before the window opens. */
const WARM_UP_MS = 3000
/** Members being opened at once during the ramp. */
const RAMP_CONCURRENCY = 200
/** Sequential calls timed by A: presenceCount, presence() (under churn and at rest). */
const COUNT_CALLS = 1000
const LIST_CALLS = 20

const nowNs = (): number => Number(process.hrtime.bigint())
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

type Role = 'A' | 'B'
type Mode = keyof typeof ROOMS

// ------------------------------------------------------------------ figures

interface Percentiles { p50: number, p90: number, p99: number, max: number, samples: number }

function percentiles (values: readonly number[]): Percentiles {
  const sorted = Float64Array.from(values).sort()
  const at = (p: number): number => sorted.length === 0 ? Number.NaN : sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))]
  return { p50: at(0.5), p90: at(0.9), p99: at(0.99), max: sorted.length === 0 ? Number.NaN : sorted[sorted.length - 1], samples: sorted.length }
}

function ms (value: number): string {
  if (!Number.isFinite(value)) return '–'
  return value >= 100 ? value.toFixed(0) : value >= 10 ? value.toFixed(1) : value.toFixed(2)
}

function num (value: number, digits = 0): string {
  if (!Number.isFinite(value)) return '–'
  return value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits })
}

// ------------------------------------------------------------------ instances A and B

interface Latency { count: Percentiles, list: Percentiles, members: number, connections: number, listed: number }

async function instance (role: Role, redisUrl: string): Promise<void> {
  const { default: Fastify } = await import('fastify')
  const { default: nexusRealtime, redisAdapter } = await import('fastify-nexus-realtime')
  const { Redis } = await import('ioredis')
  // The options the adapter gives the connections it makes itself.
  const options = { lazyConnect: true, enableOfflineQueue: false, autoResubscribe: false }
  const pub = new Redis(redisUrl, options)
  const sub = new Redis(redisUrl, options)
  await Promise.all([pub.connect(), sub.connect()])
  /** commands this instance sent to Redis, by name */
  const sent: Record<string, number> = {}
  for (const client of [pub, sub]) {
    const original = client.sendCommand.bind(client) as (command: { name: string }, ...rest: unknown[]) => unknown
    ;(client as unknown as { sendCommand: typeof original }).sendCommand = (command, ...rest) => {
      sent[command.name] = (sent[command.name] ?? 0) + 1
      return original(command, ...rest)
    }
  }

  const app = Fastify({ logger: { level: 'warn', base: { instance: role } } })
  await app.register(nexusRealtime, { adapter: redisAdapter({ client: pub, subscriber: sub }, { prefix: PREFIX }), roomPolicies: POLICIES })
  const manager = app.getWebSocket()
  app.ws<{ query: { user?: string, rooms?: string } }>('/ws', {
    presence: { key: (ctx) => ctx.query.user ?? ctx.id },
    rooms: { authorize: () => true },
    onConnect: (socket, ctx) => {
      const rooms = typeof ctx.query.rooms === 'string' && ctx.query.rooms !== '' ? ctx.query.rooms.split(',') : []
      for (const room of rooms) manager.joinRoom(room, socket)
    }
  })

  app.get('/bench/stats', async () => {
    const stats = manager.stats()
    return {
      cpu: process.cpuUsage(),
      at: nowNs(),
      sent: { ...sent },
      presenceUpdates: stats.presenceUpdates,
      presenceFailures: stats.presenceFailures,
      presenceFrames: stats.presenceFrames,
      connections: stats.connections,
      rss: process.memoryUsage().rss
    }
  })

  app.get<{ Querystring: { room: string } }>('/bench/count', async (request) => await manager.presenceCount(request.query.room))

  // N sequential presenceCount calls, then M sequential presence() calls, each timed.
  app.get<{ Querystring: { room: string, n: string, m: string } }>('/bench/latency', async (request): Promise<Latency> => {
    const { room } = request.query
    const count: number[] = []
    const list: number[] = []
    let last = { members: 0, connections: 0 }
    let listed = 0
    for (let i = 0; i < Number(request.query.n); i++) {
      const t = nowNs()
      last = await manager.presenceCount(room)
      count.push((nowNs() - t) / 1e6)
    }
    for (let i = 0; i < Number(request.query.m); i++) {
      const t = nowNs()
      listed = (await manager.presence(room)).length
      list.push((nowNs() - t) / 1e6)
    }
    return { count: percentiles(count), list: percentiles(list), ...last, listed }
  })

  await app.listen({ host: '127.0.0.1', port: 0 })
  process.on('message', (message: { type: string }) => {
    if (message.type === 'close') {
      app.close().then(async () => {
        await Promise.all([pub.quit(), sub.quit()]).catch(() => {})
        process.send?.({ type: 'closed' })
      }, () => process.send?.({ type: 'closed' }))
    }
  })
  process.send?.({ type: 'listening', role, port: (app.server.address() as { port: number }).port })
}

// ------------------------------------------------------------------ HTTP to the instances

async function get<T> (port: number, route: string, timeoutMs = 20_000): Promise<T> {
  const response = await fetch(`http://127.0.0.1:${port}${route}`, { signal: AbortSignal.timeout(timeoutMs) })
  const body = await response.text()
  if (!response.ok) throw new Error(`GET ${route}: ${response.status} ${body.slice(0, 200)}`)
  return JSON.parse(body) as T
}

interface InstanceStats {
  cpu: { user: number, system: number }
  at: number
  sent: Record<string, number>
  presenceUpdates: number
  presenceFailures: number
  presenceFrames: number
  connections: number
  rss: number
}

// ------------------------------------------------------------------ members and watchers (this process)

interface Member { socket: WebSocket, side: Role }

class Members {
  /** open members per side, oldest first (the next to leave at `head`) */
  private readonly open: Record<Role, Member[]> = { A: [], B: [] }
  private readonly head: Record<Role, number> = { A: 0, B: 0 }
  private readonly all = new Set<WebSocket>()
  /** members closed by a leave of the churn */
  private readonly leaving = new WeakSet<WebSocket>()
  private next = 0
  joined = 0
  left = 0
  failed = 0
  /** a leave found no member open on its side */
  missed = 0
  unexpectedCloses = 0
  private closing = false

  constructor (private readonly ports: Record<Role, number>, private readonly room: string, private readonly tag: string) {}

  size (): number {
    return this.open.A.length - this.head.A + this.open.B.length - this.head.B
  }

  /** Opens a member on `side`; resolves once it is open (or failed). */
  join (side: Role): Promise<void> {
    const user = `${this.tag}-${side}-${this.next++}`
    const socket = new WebSocket(`ws://127.0.0.1:${this.ports[side]}/ws?rooms=${this.room}&user=${user}`, { perMessageDeflate: false })
    this.all.add(socket)
    return new Promise((resolve) => {
      socket.once('open', () => {
        this.joined++
        this.open[side].push({ socket, side })
        resolve()
      })
      socket.once('error', () => {
        this.failed++
        resolve()
      })
      socket.once('close', () => {
        this.all.delete(socket)
        if (!this.closing && !this.leaving.has(socket)) this.unexpectedCloses++
      })
    })
  }

  /** Closes the oldest member still open on `side` (a clean close, as a tab does). */
  leave (side: Role): void {
    const queue = this.open[side]
    if (this.head[side] >= queue.length) {
      this.missed++
      return
    }
    const { socket } = queue[this.head[side]++]
    if (this.head[side] > 4096) {
      queue.splice(0, this.head[side])
      this.head[side] = 0
    }
    this.leaving.add(socket)
    socket.close(1000)
    this.left++
  }

  async ramp (n: number, timeoutMs: number): Promise<void> {
    const due = Date.now() + timeoutMs
    let started = 0
    const worker = async (): Promise<void> => {
      while (started < n && Date.now() < due) {
        const side: Role = started++ % 2 === 0 ? 'A' : 'B'
        await this.join(side)
      }
    }
    await Promise.all(Array.from({ length: RAMP_CONCURRENCY }, worker))
    if (this.joined < n) throw new Error(`only ${this.joined} of ${n} members connected (${this.failed} failed) within ${timeoutMs} ms`)
  }

  terminate (): void {
    this.closing = true
    for (const socket of this.all) socket.terminate()
  }
}

/**
 * The churn: one change every `1000 / rate` ms, on a fixed schedule
 * (late ticks catch up): change 4k joins on A, 4k+1 leaves on A, 4k+2 joins
 * on B, 4k+3 leaves on B.
 */
class Churn {
  private timer: NodeJS.Timeout | null = null
  private done = 0
  private start = 0
  /** the most changes one timer turn had to catch up */
  maxBatch = 0

  constructor (private readonly members: Members, private readonly rate: number) {}

  run (): void {
    this.start = nowNs()
    const period = 1e9 / this.rate
    this.timer = setInterval(() => {
      const due = Math.floor((nowNs() - this.start) / period)
      this.maxBatch = Math.max(this.maxBatch, due - this.done)
      while (this.done < due) {
        const i = this.done++
        const side: Role = (i >> 1) % 2 === 0 ? 'A' : 'B'
        if (i % 2 === 0) void this.members.join(side)
        else this.members.leave(side)
      }
    }, Math.max(1, Math.floor(500 / this.rate)))
  }

  stop (): void {
    if (this.timer !== null) clearInterval(this.timer)
    this.timer = null
  }
}

interface WatcherCounts {
  frames: number
  snapshots: number
  counts: number
  changes: number
  bytes: number
  /** member entries (`u` + `l`) carried by `d` frames */
  entries: number
  gaps: number
}

/** A `nexus.v1` client that subscribes to a room with presence and counts what it gets. */
class Watcher {
  readonly socket: WebSocket
  readonly counts: WatcherCounts = { frames: 0, snapshots: 0, counts: 0, changes: 0, bytes: 0, entries: 0, gaps: 0 }
  /** arrival times (ns) of the presence frames since `mark()` */
  times: number[] = []
  version = 0
  /** the members as it knows them; null while it gets counts only */
  members: Map<string, number> | null = null
  lastCount: { members: number, connections: number } | null = null
  /** the bytes of the first snapshot */
  snapshotBytes = 0
  errors: string[] = []
  private asked = false
  private readonly subscribed: Promise<void>

  constructor (port: number, readonly room: string, user: string) {
    this.socket = new WebSocket(`ws://127.0.0.1:${port}/ws?user=${user}`, 'nexus.v1', { perMessageDeflate: false })
    let ready!: () => void
    let failed!: (error: Error) => void
    this.subscribed = new Promise((resolve, reject) => { ready = resolve; failed = reject })
    this.socket.on('error', (error) => failed(error))
    this.socket.on('message', (data: Buffer) => {
      const end = data.indexOf(0x0a)
      const kind = String.fromCharCode(data[0])
      const header = JSON.parse(data.toString('utf8', 1, end)) as Record<string, any>
      if (kind === 'h') {
        this.socket.send(`s${JSON.stringify({ i: 1, r: room, w: 1 })}\n`)
      } else if (kind === 'e') {
        this.errors.push(JSON.stringify(header))
        failed(new Error(`watcher of ${room}: ${JSON.stringify(header)}`))
      } else if (kind === 'p' || kind === 'd') {
        if (header.r !== room) return
        this.times.push(nowNs())
        this.counts.frames++
        this.counts.bytes += data.length
        if (kind === 'p') this.snapshot(header, data.length)
        else this.change(header)
        ready()
      }
    })
  }

  async ready (timeoutMs: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined
    await Promise.race([this.subscribed, new Promise((_resolve, reject) => { timer = setTimeout(reject, timeoutMs, new Error(`watcher of ${this.room}: no snapshot within ${timeoutMs} ms`)) })])
      .finally(() => clearTimeout(timer))
  }

  private snapshot (header: Record<string, any>, bytes: number): void {
    this.asked = false
    this.version = header.v
    if (this.snapshotBytes === 0) this.snapshotBytes = bytes
    if (Array.isArray(header.m)) {
      this.counts.snapshots++
      this.members = new Map(header.m.map(([key, connections]: [string, number]) => [key, connections]))
      this.lastCount = null
    } else {
      this.counts.counts++
      this.members = null
      this.lastCount = { members: header.n, connections: header.c }
    }
  }

  private change (header: Record<string, any>): void {
    this.counts.changes++
    const u = (header.u ?? []) as Array<[string, number, unknown]>
    const l = (header.l ?? []) as string[]
    this.counts.entries += u.length + l.length
    const gap = header.v !== this.version + 1
    this.version = header.v
    if (this.members !== null) {
      for (const [key, connections] of u) this.members.set(key, connections)
      for (const key of l) this.members.delete(key)
    }
    if ((gap || this.members === null) && !this.asked) {
      // As the official client does: apply it, and ask for a snapshot once.
      if (gap) this.counts.gaps++
      this.asked = true
      this.socket.send(`p${JSON.stringify({ r: this.room })}\n`)
    }
  }

  /** What it knows of the room's size now. */
  known (): { members: number, connections: number } | null {
    if (this.members === null) return this.lastCount
    let connections = 0
    for (const value of this.members.values()) connections += value
    return { members: this.members.size, connections }
  }

  mark (): WatcherCounts {
    this.times = []
    return { ...this.counts }
  }

  close (): void {
    this.socket.terminate()
  }
}

// ------------------------------------------------------------------ Redis

interface RedisSnapshot {
  at: number
  total: number
  commands: Record<string, { calls: number, usec: number }>
  cpu: number
  netIn: number
  netOut: number
}

function field (info: string, name: string): number {
  const match = new RegExp(`^${name}:([^\\r\\n]+)`, 'm').exec(info)
  return match === null ? Number.NaN : Number(match[1])
}

async function redisSnapshot (client: import('ioredis').Redis): Promise<RedisSnapshot> {
  const stats = await client.info('stats')
  const commandstats = await client.info('commandstats')
  const cpu = await client.info('cpu')
  const commands: RedisSnapshot['commands'] = {}
  for (const [, name, calls, usec] of commandstats.matchAll(/^cmdstat_([^:]+):calls=(\d+),usec=(\d+)/gm)) {
    commands[name] = { calls: Number(calls), usec: Number(usec) }
  }
  return {
    at: nowNs(),
    total: field(stats, 'total_commands_processed'),
    commands,
    cpu: field(cpu, 'used_cpu_user') + field(cpu, 'used_cpu_sys'),
    netIn: field(stats, 'total_net_input_bytes'),
    netOut: field(stats, 'total_net_output_bytes')
  }
}

async function freePort (): Promise<number> {
  return await new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number }
      server.close(() => resolve(port))
    })
  })
}

// ------------------------------------------------------------------ orchestrator

interface Window {
  seconds: number
  changes: number
  joins: number
  leaves: number
  watchers: Record<Role, { frames: number, snapshots: number, counts: number, changes: number, bytes: number, entries: number, gaps: number, perSecondMin: number, perSecondMax: number }>
  redis: { total: number, byCommand: Array<[string, number, number]>, cpuCores: number, netInPerSecond: number, netOutPerSecond: number }
  sent: Record<Role, Record<string, number>>
  cpuCores: Record<Role, number>
  thisProcessCores: number
  /** the most changes one turn of the churn timer had to catch up in the window (1: on time) */
  maxCatchUp: number
  updates: Record<Role, number>
  failures: Record<Role, number>
  framesWritten: Record<Role, number>
  /** CPU used meanwhile by processes outside the benchmark (Redis counted as ours), and stolen by the hypervisor, in cores */
  foreignCores: number
  stealCores: number
}

interface RoundResult {
  mode: Mode
  room: string
  members: number
  rampSeconds: number
  snapshotBytes: Record<Role, number>
  window: Window
  churnLatency: Latency
  restLatency: Latency
  /** at rest: Redis's time per presenceCount and per presence() script call, µs */
  redisMicros: { count: number, list: number }
  converged: { store: { members: number, connections: number }, A: { members: number, connections: number } | null, B: { members: number, connections: number } | null }
  emptySeconds: number
  churnFailures: number
  churnMissed: number
  unexpectedCloses: number
  maxCatchUp: number
  watcherErrors: string[]
  rssMB: Record<Role, number>
}

function argument (argv: string[], name: string, fallback: number): number {
  const given = argv.find((arg) => arg.startsWith(`--${name}=`))
  if (given === undefined) return fallback
  const value = Number(given.slice(name.length + 3))
  if (!Number.isSafeInteger(value) || value < 1) throw new Error(`--${name} takes a positive integer`)
  return value
}

/** This process's soft limit of open files. */
function openFileLimit (): number {
  try {
    const line = readFileSync('/proc/self/limits', 'utf8').split('\n').find((l) => l.startsWith('Max open files'))
    const soft = line?.split(/\s{2,}/)[1]
    return soft === undefined || soft === 'unlimited' ? Infinity : Number(soft)
  } catch {
    return Infinity
  }
}

const children: ChildProcess[] = []

/** Through bash, so that its open-file limit can be raised first. */
function spawnRaised (args: string[], stdio: Array<'ignore' | 'inherit' | 'ipc'>): ChildProcess {
  const script = 'ulimit -n "$BENCH_NOFILE" 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec "$@"'
  const child = spawn('bash', ['-c', script, 'bench', ...args], { stdio, env: { ...process.env, BENCH_NOFILE: '65536', NODE_ENV: 'production' } })
  children.push(child)
  return child
}

function startInstance (role: Role, redisUrl: string): Promise<{ child: ChildProcess, port: number }> {
  const child = spawnRaised([process.execPath, '--import', 'tsx', __filename, 'instance', role, redisUrl], ['ignore', 'inherit', 'inherit', 'ipc'])
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`instance ${role} did not listen within 20 s`)), 20_000)
    child.once('exit', (code) => reject(new Error(`instance ${role} exited with ${code}`)))
    child.on('message', (message: { type: string, port: number }) => {
      if (message.type !== 'listening') return
      clearTimeout(timer)
      resolve({ child, port: message.port })
    })
  })
}

async function stopInstance (child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || !child.connected) return
  await new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, 5000)
    child.on('message', (message: { type: string }) => {
      if (message.type === 'closed') {
        clearTimeout(timer)
        resolve()
      }
    })
    child.send({ type: 'close' })
  })
  child.disconnect()
}

async function startRedis (): Promise<{ child: ChildProcess, url: string, version: string }> {
  const port = await freePort()
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--loglevel', 'warning'], { stdio: ['ignore', 'ignore', 'inherit'] })
  children.push(child)
  const url = `redis://127.0.0.1:${port}`
  const { Redis } = await import('ioredis')
  const due = Date.now() + 10_000
  for (;;) {
    const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null })
    client.on('error', () => {})
    try {
      await client.connect()
      const version = /redis_version:([^\r\n]+)/.exec(await client.info('server'))?.[1] ?? 'unknown'
      return { child, url, version }
    } catch {
      if (Date.now() > due || child.exitCode !== null) throw new Error('redis-server did not start (is it installed?)')
      await sleep(100)
    } finally {
      client.disconnect()
    }
  }
}

async function waitFor<T> (what: string, timeoutMs: number, probe: () => Promise<T>, done: (value: T) => boolean): Promise<T> {
  const due = Date.now() + timeoutMs
  for (;;) {
    const value = await probe()
    if (done(value)) return value
    if (Date.now() > due) throw new Error(`${what}: not reached within ${timeoutMs} ms (last: ${JSON.stringify(value)})`)
    await sleep(100)
  }
}

function delta (after: Record<string, number>, before: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {}
  for (const [name, value] of Object.entries(after)) if (value - (before[name] ?? 0) > 0) out[name] = value - (before[name] ?? 0)
  return out
}

async function round (
  mode: Mode, n: number, rate: number, windowMs: number,
  ports: Record<Role, number>, redis: import('ioredis').Redis, ours: readonly number[], left: () => number
): Promise<RoundResult> {
  const room = ROOMS[mode]
  const count = (): Promise<{ members: number, connections: number }> => get(ports.A, `/bench/count?room=${room}`)
  const members = new Members(ports, room, `m-${mode}`)
  // Watchers connect once the members are counted (they are members too).
  let watchers: Record<Role, Watcher> | null = null
  const churn = new Churn(members, rate)
  try {
    const rampStart = Date.now()
    await members.ramp(n, Math.min(40_000, left()))
    await waitFor(`${room}: ${n} members`, 15_000, count, (c) => c.members === n)
    const rampSeconds = (Date.now() - rampStart) / 1000
    process.stderr.write(`[${room}] ${n} members in ${rampSeconds.toFixed(1)} s\n`)
    watchers = { A: new Watcher(ports.A, room, `watcher-A-${mode}`), B: new Watcher(ports.B, room, `watcher-B-${mode}`) }
    await Promise.all([watchers.A.ready(15_000), watchers.B.ready(15_000)])

    churn.run()
    await sleep(WARM_UP_MS)

    // ---- the window
    const stats = async (): Promise<Record<Role, InstanceStats>> => {
      const [a, b] = await Promise.all([get<InstanceStats>(ports.A, '/bench/stats'), get<InstanceStats>(ports.B, '/bench/stats')])
      return { A: a, B: b }
    }
    const startStats = await stats()
    const startRedis = await redisSnapshot(redis)
    const startWatchers = { A: watchers.A.mark(), B: watchers.B.mark() }
    const startChurn = { joins: members.joined, leaves: members.left }
    const startCpu = process.cpuUsage()
    const startNoise = noiseSnapshot(ours)
    churn.maxBatch = 0
    const t0 = nowNs()
    await sleep(windowMs)
    const t1 = nowNs()
    const endCpu = process.cpuUsage(startCpu)
    const windowCatchUp = churn.maxBatch
    const noise = procAvailable() ? noiseBetween(startNoise, noiseSnapshot(ours), ours) : null
    const endChurn = { joins: members.joined, leaves: members.left }
    const endWatchers = { A: { ...watchers.A.counts }, B: { ...watchers.B.counts } }
    const times = { A: watchers.A.times.slice(), B: watchers.B.times.slice() }
    const endRedis = await redisSnapshot(redis)
    const endStats = await stats()
    const seconds = (t1 - t0) / 1e9
    process.stderr.write(`[${room}] window of ${seconds.toFixed(1)} s done\n`)

    const watcherFigures = (role: Role): Window['watchers'][Role] => {
      const s = startWatchers[role]
      const e = endWatchers[role]
      const buckets = new Array(Math.max(1, Math.floor(seconds))).fill(0) as number[]
      for (const t of times[role]) {
        const i = Math.floor((t - t0) / 1e9)
        if (i >= 0 && i < buckets.length) buckets[i]++
      }
      return {
        frames: e.frames - s.frames,
        snapshots: e.snapshots - s.snapshots,
        counts: e.counts - s.counts,
        changes: e.changes - s.changes,
        bytes: e.bytes - s.bytes,
        entries: e.entries - s.entries,
        gaps: e.gaps - s.gaps,
        perSecondMin: Math.min(...buckets),
        perSecondMax: Math.max(...buckets)
      }
    }
    const calls = (snapshot: RedisSnapshot): Record<string, number> => Object.fromEntries(Object.entries(snapshot.commands).map(([name, c]) => [name, c.calls]))
    const usec = (snapshot: RedisSnapshot): Record<string, number> => Object.fromEntries(Object.entries(snapshot.commands).map(([name, c]) => [name, c.usec]))
    const byCalls = delta(calls(endRedis), calls(startRedis))
    const byUsec = delta(usec(endRedis), usec(startRedis))
    // Our own INFO calls are no part of the load.
    const own = byCalls.info ?? 0
    delete byCalls.info
    const windowFigures: Window = {
      seconds,
      changes: (endChurn.joins - startChurn.joins) + (endChurn.leaves - startChurn.leaves),
      joins: endChurn.joins - startChurn.joins,
      leaves: endChurn.leaves - startChurn.leaves,
      watchers: { A: watcherFigures('A'), B: watcherFigures('B') },
      redis: {
        total: (endRedis.total - startRedis.total - own) / seconds,
        byCommand: Object.entries(byCalls).sort((x, y) => y[1] - x[1]).map(([name, c]) => [name, c / seconds, (byUsec[name] ?? 0) / c]),
        cpuCores: (endRedis.cpu - startRedis.cpu) / seconds,
        netInPerSecond: (endRedis.netIn - startRedis.netIn) / seconds,
        netOutPerSecond: (endRedis.netOut - startRedis.netOut) / seconds
      },
      sent: { A: delta(endStats.A.sent, startStats.A.sent), B: delta(endStats.B.sent, startStats.B.sent) },
      cpuCores: {
        A: (endStats.A.cpu.user + endStats.A.cpu.system - startStats.A.cpu.user - startStats.A.cpu.system) / 1e3 / ((endStats.A.at - startStats.A.at) / 1e6),
        B: (endStats.B.cpu.user + endStats.B.cpu.system - startStats.B.cpu.user - startStats.B.cpu.system) / 1e3 / ((endStats.B.at - startStats.B.at) / 1e6)
      },
      thisProcessCores: (endCpu.user + endCpu.system) / 1e6 / seconds,
      maxCatchUp: windowCatchUp,
      updates: { A: endStats.A.presenceUpdates - startStats.A.presenceUpdates, B: endStats.B.presenceUpdates - startStats.B.presenceUpdates },
      failures: { A: endStats.A.presenceFailures - startStats.A.presenceFailures, B: endStats.B.presenceFailures - startStats.B.presenceFailures },
      framesWritten: { A: endStats.A.presenceFrames - startStats.A.presenceFrames, B: endStats.B.presenceFrames - startStats.B.presenceFrames },
      foreignCores: noise?.foreignCores ?? Number.NaN,
      stealCores: noise?.stealCores ?? Number.NaN
    }

    // ---- presenceCount / presence() on A, the churn still running, then at rest
    const churnLatency = await get<Latency>(ports.A, `/bench/latency?room=${room}&n=${COUNT_CALLS}&m=${LIST_CALLS}`, 30_000)
    churn.stop()
    await sleep(500)
    // At rest, each kind of call alone between two looks at Redis: its time in Redis per call (the script's EVALSHA).
    const scriptTime = (before: RedisSnapshot, after: RedisSnapshot): number => {
      const calls = (after.commands.evalsha?.calls ?? 0) - (before.commands.evalsha?.calls ?? 0)
      return calls === 0 ? Number.NaN : ((after.commands.evalsha?.usec ?? 0) - (before.commands.evalsha?.usec ?? 0)) / calls
    }
    const r0 = await redisSnapshot(redis)
    const restCount = await get<Latency>(ports.A, `/bench/latency?room=${room}&n=${COUNT_CALLS}&m=0`, 30_000)
    const r1 = await redisSnapshot(redis)
    const restList = await get<Latency>(ports.A, `/bench/latency?room=${room}&n=0&m=${LIST_CALLS}`, 30_000)
    const r2 = await redisSnapshot(redis)
    const restLatency: Latency = { ...restCount, list: restList.list, listed: restList.listed }
    const redisMicros = { count: scriptTime(r0, r1), list: scriptTime(r1, r2) }

    // ---- the watchers' lists against the store, once the last changes went through
    const store = await count()
    const seen = watchers
    const known = async (): Promise<Pick<RoundResult['converged'], 'A' | 'B'>> => ({ A: seen.A.known(), B: seen.B.known() })
    const converged = await waitFor(`${room}: the watchers' view`, 3000, known,
      (v) => [v.A, v.B].every((k) => k !== null && k.members === store.members && k.connections === store.connections)).catch(known)
    const rss = await stats()

    // ---- every member closes at once: how long until the room is empty
    const closeStart = Date.now()
    members.terminate()
    watchers.A.close()
    watchers.B.close()
    await waitFor(`${room}: empty`, Math.max(1000, Math.min(20_000, left() - 5000)), count, (c) => c.members === 0)
    const emptySeconds = (Date.now() - closeStart) / 1000
    process.stderr.write(`[${room}] empty ${emptySeconds.toFixed(1)} s after every member closed\n`)

    return {
      mode,
      room,
      members: n,
      rampSeconds,
      snapshotBytes: { A: watchers.A.snapshotBytes, B: watchers.B.snapshotBytes },
      window: windowFigures,
      churnLatency,
      restLatency,
      redisMicros,
      converged: { store, ...converged },
      emptySeconds,
      churnFailures: members.failed,
      churnMissed: members.missed,
      unexpectedCloses: members.unexpectedCloses,
      maxCatchUp: churn.maxBatch,
      watcherErrors: [...watchers.A.errors, ...watchers.B.errors],
      rssMB: { A: rss.A.rss / 2 ** 20, B: rss.B.rss / 2 ** 20 }
    }
  } finally {
    churn.stop()
    members.terminate()
    watchers?.A.close()
    watchers?.B.close()
  }
}

// ------------------------------------------------------------------ the report

function commandList (entries: ReadonlyArray<[string, number, number?]>, top = 8): string {
  return entries.slice(0, top).map(([name, rate, usec]) => `${name.toUpperCase()} ${num(rate, rate < 10 ? 1 : 0)}${usec === undefined ? '' : ` (${num(usec, 1)} µs)`}`).join(', ')
}

function report (rounds: readonly RoundResult[], rate: number): string {
  const head = ['figure', ...rounds.map((r) => `\`${r.room}\`: ${r.mode === 'counts' ? 'counts mode (listLimit 1,000)' : 'list mode (listLimit 100,000)'}`)]
  const rows: Array<[string, (r: RoundResult) => string]> = [
    ['members (N/2 on each instance; the 2 watchers are members too)', (r) => num(r.members)],
    ['changes/s achieved (asked: ' + rate + '), joins + leaves', (r) => `${num(r.window.changes / r.window.seconds, 1)} (${num(r.window.joins)} + ${num(r.window.leaves)} in ${r.window.seconds.toFixed(1)} s)`],
    ['watcher on A: presence frames/s (min–max in a second)', (r) => `${num(r.window.watchers.A.frames / r.window.seconds, 2)} (${r.window.watchers.A.perSecondMin}–${r.window.watchers.A.perSecondMax})`],
    ['watcher on B: presence frames/s (min–max in a second)', (r) => `${num(r.window.watchers.B.frames / r.window.seconds, 2)} (${r.window.watchers.B.perSecondMin}–${r.window.watchers.B.perSecondMax})`],
    ['watcher on A / B: bytes/s', (r) => `${num(r.window.watchers.A.bytes / r.window.seconds)} / ${num(r.window.watchers.B.bytes / r.window.seconds)}`],
    ['watcher frames by kind, A / B (counts `p`, `d`, snapshot `p`)', (r) => ['A', 'B'].map((s) => { const w = r.window.watchers[s as Role]; return `${w.counts}, ${w.changes}, ${w.snapshots}` }).join(' / ')],
    ['member entries per `d` frame, A / B', (r) => ['A', 'B'].map((s) => { const w = r.window.watchers[s as Role]; return w.changes === 0 ? '–' : num(w.entries / w.changes, 1) }).join(' / ')],
    ['first snapshot to a watcher, bytes', (r) => num(r.snapshotBytes.A)],
    ['Redis commands/s, all (commands inside scripts included)', (r) => num(r.window.redis.total)],
    ['Redis commands/s by command (µs per call)', (r) => commandList(r.window.redis.byCommand)],
    ['commands/s sent by A / by B (round trips)', (r) => ['A', 'B'].map((s) => commandList(Object.entries(r.window.sent[s as Role]).sort((x, y) => y[1] - x[1]).map(([name, c]) => [name, c / r.window.seconds]), 4)).join(' / ')],
    ['presence writes/s (store updates), A / B', (r) => `${num(r.window.updates.A / r.window.seconds, 1)} / ${num(r.window.updates.B / r.window.seconds, 1)}`],
    ['Redis CPU, cores; network in / out, KB/s', (r) => `${num(r.window.redis.cpuCores, 3)}; ${num(r.window.redis.netInPerSecond / 1024, 1)} / ${num(r.window.redis.netOutPerSecond / 1024, 1)}`],
    ['CPU of instance A / B, cores', (r) => `${num(r.window.cpuCores.A, 3)} / ${num(r.window.cpuCores.B, 3)}`],
    ['CPU of the client process (members, churn, watchers), cores', (r) => num(r.window.thisProcessCores, 3)],
    ['CPU used by other processes of the machine meanwhile (foreign; stolen), cores', (r) => `${num(r.window.foreignCores, 2)}; ${num(r.window.stealCores, 2)}${r.window.foreignCores + r.window.stealCores > 0.1 ? ' ⚠' : ''}`],
    ['presenceCount on A under churn, ms: p50 / p90 / p99 / max', (r) => `${ms(r.churnLatency.count.p50)} / ${ms(r.churnLatency.count.p90)} / ${ms(r.churnLatency.count.p99)} / ${ms(r.churnLatency.count.max)}`],
    ['presenceCount on A at rest, ms: p50 / p90 / p99 / max', (r) => `${ms(r.restLatency.count.p50)} / ${ms(r.restLatency.count.p90)} / ${ms(r.restLatency.count.p99)} / ${ms(r.restLatency.count.max)}`],
    [`presence() on A (${LIST_CALLS} calls), under churn, ms: p50 / p99 / max`, (r) => `${ms(r.churnLatency.list.p50)} / ${ms(r.churnLatency.list.p99)} / ${ms(r.churnLatency.list.max)} (${num(r.churnLatency.listed)} members)`],
    [`presence() on A (${LIST_CALLS} calls), at rest, ms: p50 / p99 / max`, (r) => `${ms(r.restLatency.list.p50)} / ${ms(r.restLatency.list.p99)} / ${ms(r.restLatency.list.max)}`],
    ['at rest, Redis time per call (its script), µs: presenceCount / presence()', (r) => `${num(r.redisMicros.count, 1)} / ${num(r.redisMicros.list)}`],
    ['at rest: store / watcher A / watcher B (members, connections)', (r) => [r.converged.store, r.converged.A, r.converged.B].map((c) => c === null ? 'unknown' : `${num(c.members)}, ${num(c.connections)}`).join(' / ')],
    ['all members closed at once → room empty after, s', (r) => r.emptySeconds.toFixed(1)],
    ['checks', (r) => {
      const problems = [
        r.window.watchers.A.gaps + r.window.watchers.B.gaps > 0 ? `${r.window.watchers.A.gaps + r.window.watchers.B.gaps} version gaps` : '',
        r.window.failures.A + r.window.failures.B > 0 ? `${r.window.failures.A + r.window.failures.B} presence writes failed` : '',
        r.churnFailures > 0 ? `${r.churnFailures} joins failed` : '',
        r.churnMissed > 0 ? `${r.churnMissed} leaves found no member` : '',
        r.unexpectedCloses > 0 ? `${r.unexpectedCloses} members closed by the server` : '',
        r.watcherErrors.length > 0 ? `watcher errors: ${r.watcherErrors.join('; ')}` : '',
        [r.converged.A, r.converged.B].some((k) => k === null || k.members !== r.converged.store.members || k.connections !== r.converged.store.connections) ? 'a watcher\'s view differs from the store' : ''
      ].filter(Boolean)
      return problems.length === 0 ? 'ok' : problems.join(', ')
    }]
  ]
  const lines = [`| ${head.join(' | ')} |`, `| --- |${rounds.map(() => ' ---: |').join('')}`]
  for (const [label, cell] of rows) lines.push(`| ${label} | ${rounds.map(cell).join(' | ')} |`)
  return lines.join('\n')
}

async function orchestrate (argv: string[]): Promise<void> {
  let n = argument(argv, 'members', 10_000)
  const windowMs = argument(argv, 'window', 30) * 1000
  const rate = argument(argv, 'rate', 100)
  const write = !argv.includes('--no-write')
  const began = Date.now()
  const left = (): number => RUN_LIMIT_MS - (Date.now() - began)
  const notes: string[] = []

  // Members + the ones joining before others leave + watchers, Redis, HTTP: a margin of 300.
  const limit = openFileLimit()
  if (n % 2 === 1) n++
  if (limit < n + 300) {
    const scaled = Math.max(100, Math.floor((limit - 300) / 2) * 2)
    notes.push(`open-file limit ${limit}: scaled down from ${n} to ${scaled} members`)
    process.stderr.write(`${notes[notes.length - 1]}\n`)
    n = scaled
  }

  const startedAt = new Date()
  const loadBefore = os.loadavg()
  const redisServer = await startRedis()
  const { Redis } = await import('ioredis')
  const redis = new Redis(redisServer.url, { maxRetriesPerRequest: 1 })
  redis.on('error', () => {})
  const rounds: RoundResult[] = []
  let a: ChildProcess | undefined
  let b: ChildProcess | undefined
  try {
    const [startedA, startedB] = await Promise.all([startInstance('A', redisServer.url), startInstance('B', redisServer.url)])
    a = startedA.child
    b = startedB.child
    const ports = { A: startedA.port, B: startedB.port }
    for (const mode of ['counts', 'list'] as const) {
      if (left() < windowMs + 30_000) {
        notes.push(`round ${ROOMS[mode]} skipped: the run's time bound`)
        continue
      }
      const ours = [process.pid, a.pid, b.pid, redisServer.child.pid].filter((pid): pid is number => pid !== undefined)
      rounds.push(await round(mode, n, rate, windowMs, ports, redis, ours, left))
    }
  } finally {
    await Promise.all([a, b].map(async (child) => { if (child !== undefined) await stopInstance(child) }))
    redis.disconnect()
    redisServer.child.kill('SIGTERM')
  }

  const wallSeconds = (Date.now() - began) / 1000
  const environment = `node ${process.version}, ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'unknown'}, private redis-server ${redisServer.version} on loopback (no persistence), processes not pinned; load average before ${loadBefore.map((l) => l.toFixed(2)).join(' ')}, after ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`
  const caption = `Presence in a ${num(n)}-member room on two instances (Redis adapter), ${startedAt.toISOString().slice(0, 16).replace('T', ' ')} UTC: ${rate} changes/s (joins + leaves, alternately on A and B), measured over ${windowMs / 1000} s after a ${WARM_UP_MS / 1000} s warm-up; one presence watcher (\`nexus.v1\`, \`"w":1\`) on each instance.`
  const method = [
    'Members: raw `ws` clients, one presence key each, joined by `onConnect`; half on A, half on B. A leave is a clean close of the oldest member on its side.',
    'Frames and bytes: what each watcher received in the window (the WebSocket message, header and payload); frames/s is the mean, min–max the fewest and most frames in one second of the window.',
    'Redis commands/s: `INFO stats` `total_commands_processed` over the window (commands run inside scripts count, as Redis counts them), our own `INFO` calls taken out; by command from `INFO commandstats`, with Redis time per call. "Sent by A / B" are the commands each instance wrote to Redis (its ioredis `sendCommand`, counted).',
    'CPU: `process.cpuUsage()` of each instance and of the client process over the window, and Redis\'s `used_cpu_user + used_cpu_sys`; 1 = one core busy.',
    `Latency: A runs ${COUNT_CALLS} sequential \`await manager.presenceCount(room)\`, then ${LIST_CALLS} sequential \`presence(room)\`, each timed; "under churn" right after the window with the churn still running, "at rest" 0.5 s after it stopped.`,
    'At rest: the store\'s counts against what each watcher knows (its list, or its last counts frame), once the churn stopped; "room empty after": every member\'s socket destroyed at once, until `presenceCount` on A says 0 members.'
  ]
  const extra = rounds.map((r) => `\`${r.room}\`: ${num(r.members)} members connected and counted in ${r.rampSeconds.toFixed(1)} s; instance RSS after the round A ${r.rssMB.A.toFixed(0)} MB, B ${r.rssMB.B.toFixed(0)} MB; the churn timer caught up at most ${r.window.maxCatchUp} change(s) in one turn within the window (${r.maxCatchUp} over the whole churn; 0 or 1 is on time, 100 a second late).`)
  const text = [
    caption, '', environment, '', report(rounds, rate), '',
    ...method.map((line) => `- ${line}`),
    ...extra.map((line) => `- ${line}`),
    ...notes.map((line) => `- ${line}`),
    `- Command: \`npm run bench:presence\`; wall time ${wallSeconds.toFixed(0)} s.`,
    ''
  ].join('\n')
  console.log(`\n${text}`)
  if (!write) return
  const results = path.join(__dirname, 'results')
  mkdirSync(results, { recursive: true })
  const stamp = startedAt.toISOString().replace(/:/g, '-').replace(/\.\d+Z$/, 'Z')
  const base = path.join(results, `${stamp}-presence`)
  writeFileSync(`${base}.md`, text)
  writeFileSync(`${base}.json`, JSON.stringify({
    date: startedAt.toISOString(),
    command: 'npm run bench:presence',
    wallSeconds,
    environment: { node: process.version, cpus: `${os.cpus().length} × ${os.cpus()[0]?.model ?? 'unknown'}`, redis: redisServer.version, loadAverageBefore: loadBefore, loadAverageAfter: os.loadavg(), openFileLimit: limit },
    plan: { members: n, changesPerSecond: rate, windowSeconds: windowMs / 1000, warmUpSeconds: WARM_UP_MS / 1000, policies: POLICIES, countCalls: COUNT_CALLS, listCalls: LIST_CALLS },
    notes,
    rounds
  }, null, 2) + '\n')
  console.log(`written: ${['md', 'json'].map((ext) => path.relative(path.join(__dirname, '..'), `${base}.${ext}`)).join(', ')}`)
}

// ------------------------------------------------------------------ entry

const [command, ...rest] = process.argv.slice(2)
if (command === 'instance') {
  // An instance ends with the orchestrator.
  process.on('disconnect', () => process.exit(0))
  instance(rest[0] as Role, rest[1]).catch((error: unknown) => {
    console.error(error)
    process.exit(1)
  })
} else if (openFileLimit() < 20_000 && process.env.BENCH_PRESENCE_RAISED === undefined) {
  // Too few open files for the members: run again through bash with the limit raised (as far as allowed).
  process.env.BENCH_PRESENCE_RAISED = '1'
  const child = spawnRaised([process.execPath, '--import', 'tsx', __filename, ...process.argv.slice(2)], ['inherit', 'inherit', 'inherit'])
  child.on('exit', (code) => process.exit(code ?? 1))
} else {
  const stopAll = (): void => {
    for (const child of children) if (child.exitCode === null) child.kill('SIGKILL')
  }
  const limit = setTimeout(() => {
    console.error(`presence: not done within ${RUN_LIMIT_MS / 1000 + 5} s, stopping`)
    stopAll()
    process.exit(1)
  }, RUN_LIMIT_MS + 5000)
  orchestrate(process.argv.slice(2)).then(() => {
    clearTimeout(limit)
    process.exit(0)
  }, (error: unknown) => {
    console.error(error instanceof Error ? error.stack ?? error.message : error)
    stopAll()
    process.exit(1)
  })
}
