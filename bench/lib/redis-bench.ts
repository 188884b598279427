/**
 * What the cross-instance benchmarks (`bench/redis-fanout.ts`,
 * `bench/redis-scaling.ts`) share: the implementations, the processes
 * (`bench/redis-child.ts` as publisher, server or load clients), a
 * deployment of them (one publisher, S servers, K client processes), its
 * rounds, the Redis Cluster they start, CPU and noise accounting, and the
 * result files.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { Peer } from './ipc'
import { noiseBetween, snapshot, type Noise } from './noise'
import { median } from './stats'

export const ROOT = path.join(__dirname, '..', '..')
import { REDIS_URL, redisAnswers } from '../../test/helpers/redis-ping'

export { REDIS_URL }
/** the room every client is in */
export const ROOM = 'fanout'
/** Every wait on a child is bounded by this (ms), unless a shorter bound is given. */
export const TIMEOUT = 60_000

export type RedisImpl = 'nexus' | 'nexus-sharded' | 'socket.io' | 'socket.io-sharded'
/** In the order their rounds run (each plugin variant next to the socket.io one it is compared with). */
export const REDIS_IMPLS: readonly RedisImpl[] = ['nexus', 'socket.io', 'nexus-sharded', 'socket.io-sharded']
export const IMPL_LABELS: Readonly<Record<RedisImpl, string>> = {
  nexus: 'nexus, `redisAdapter({ url })`, one Redis',
  'nexus-sharded': 'nexus, `redisAdapter({ cluster })`, Redis Cluster (sharded pub/sub)',
  'socket.io': 'socket.io 4, `createAdapter`, one Redis',
  'socket.io-sharded': 'socket.io 4, `createShardedAdapter`, Redis Cluster'
}

export const isSharded = (impl: RedisImpl): boolean => impl.endsWith('-sharded')
export const isSocketIo = (impl: RedisImpl): boolean => impl.startsWith('socket.io')
/** The socket.io variant an implementation is compared with: the one on the same kind of Redis. */
export const socketIoMatch = (impl: RedisImpl): RedisImpl => isSharded(impl) ? 'socket.io-sharded' : 'socket.io'

/** `--impls=a,b` (in REDIS_IMPLS order), or `defaults`. */
export function parseImpls (argv: readonly string[], defaults: readonly RedisImpl[]): RedisImpl[] {
  const arg = argv.find((a) => a.startsWith('--impls='))
  if (arg === undefined) return [...defaults]
  const named = arg.slice('--impls='.length).split(',').filter((name) => name !== '')
  for (const name of named) {
    if (!REDIS_IMPLS.includes(name as RedisImpl)) throw new Error(`unknown implementation "${name}" (${REDIS_IMPLS.join(', ')})`)
  }
  return REDIS_IMPLS.filter((impl) => named.includes(impl))
}

export function numberArg (argv: readonly string[], name: string, fallback: number): number {
  const arg = argv.find((a) => a.startsWith(`--${name}=`))
  if (arg === undefined) return fallback
  const value = Number(arg.slice(name.length + 3))
  if (!Number.isFinite(value) || value < 0) throw new Error(`--${name} takes a number, not "${arg}"`)
  return value
}

export interface Endpoint {
  host: string
  port: number
}

/**
 * Milliseconds on CLOCK_MONOTONIC (process.hrtime): the same clock in every
 * process of a Linux machine, so a time taken in one process can be
 * subtracted from one taken in another.
 */
export const now = (): number => Number(process.hrtime.bigint()) / 1e6

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/** Settles like `promise`, or rejects after `ms` with `what` in the message. */
export function bounded<T> (promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer!: NodeJS.Timeout
  const limit = new Promise<never>((_resolve, reject) => { timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms / 1000} s`)), ms) })
  return Promise.race([promise, limit]).finally(() => clearTimeout(timer))
}

// ------------------------------------------------------------------ processes

const live = new Set<ChildProcess>()
let spawned = 0

/**
 * Starts `bench/redis-child.ts <role> …` (node --import tsx), not pinned;
 * resolves `ready` with what the child says once it listens (servers) or its
 * clients are connected (clients). BENCH_PROF_DIR=<dir> makes every child
 * write a CPU profile there (node --cpu-prof).
 */
export function spawnChild (name: string, args: readonly string[], env: Record<string, string>, readyMs = TIMEOUT): { peer: Peer, ready: Promise<Record<string, any>> } {
  const profile = process.env.BENCH_PROF_DIR === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_PROF_DIR}/${++spawned}-${name.replace(/[^\w.-]+/g, '-')}`]
  const child = spawn(process.execPath, [...profile, '--import', 'tsx', path.join(ROOT, 'bench', 'redis-child.ts'), ...args], {
    cwd: ROOT,
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    env: { ...process.env, ...env }
  })
  live.add(child)
  child.once('exit', () => live.delete(child))
  let settle!: (value: Record<string, any>) => void
  let fail!: (error: Error) => void
  const ready = new Promise<Record<string, any>>((resolve, reject) => { settle = resolve; fail = reject })
  const timer = setTimeout(() => fail(new Error(`${name} was not ready within ${readyMs / 1000} s`)), readyMs)
  child.once('exit', (code, signal) => {
    clearTimeout(timer)
    fail(new Error(`${name} exited (${signal ?? code}) before it was ready`))
  })
  const peer = new Peer(name, child, (message) => {
    if (message?.type === 'ready') {
      clearTimeout(timer)
      settle(message)
    } else if (message?.type === 'failed') {
      clearTimeout(timer)
      fail(new Error(`${name}: ${String(message.error)}`))
    }
  })
  // A rejection nobody awaits yet (the caller awaits it later) is not an unhandled one.
  ready.catch(() => {})
  return { peer, ready }
}

/** SIGTERM, then SIGKILL after 5 s; resolves when every one has exited. */
export async function stopPeers (peers: readonly Peer[]): Promise<void> {
  await Promise.all(peers.map(async (peer) => {
    const child = peer.proc
    if (child.exitCode !== null || child.signalCode !== null) return
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
    child.kill('SIGTERM')
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000)
    await exited
    clearTimeout(timer)
  }))
}

/** Every child still running, killed at once (synchronous: also from an 'exit' listener). */
export function killAll (): void {
  for (const child of live) child.kill('SIGKILL')
}

/**
 * Whatever ends this process ends its children too, and `cleanup` (the Redis
 * Cluster) runs on SIGINT / SIGTERM and on the run's time bound.
 */
export function guard (limitMs: number, cleanup: () => Promise<void>): { clear: () => void } {
  let ending = false
  const end = (why: string, code: number): void => {
    if (ending) return
    ending = true
    console.error(`\n${why}: stopping`)
    killAll()
    bounded(cleanup(), 20_000, 'cleanup').catch((error: unknown) => console.error(error)).finally(() => process.exit(code))
  }
  process.on('exit', killAll)
  process.once('SIGINT', () => end('SIGINT', 130))
  process.once('SIGTERM', () => end('SIGTERM', 143))
  const timer = setTimeout(() => end(`not done within ${Math.round(limitMs / 1000)} s`, 1), limitMs)
  timer.unref()
  return { clear: () => clearTimeout(timer) }
}

// ------------------------------------------------------------------ Redis

export interface Cluster {
  nodes: Endpoint[]
  stop (): Promise<void>
}

/** A Redis Cluster of its own (test/helpers/redis-cluster.ts), for the sharded implementations. */
export async function startCluster (masters: number, replicas: number): Promise<Cluster> {
  const { RedisCluster } = await import('../../test/helpers/redis-cluster')
  const cluster = await bounded(RedisCluster.start({ masters, replicas }), TIMEOUT, 'RedisCluster.start')
  return { nodes: cluster.nodes.map(({ host, port }: Endpoint) => ({ host, port })), stop: () => cluster.stop() }
}

export function endpointOf (url: string): Endpoint {
  const parsed = new URL(url)
  return { host: parsed.hostname === '' ? '127.0.0.1' : parsed.hostname, port: parsed.port === '' ? 6379 : Number(parsed.port) }
}

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '::1', '[::1]'])

/**
 * One connection to each Redis server (the single one, the cluster's nodes):
 * its CPU (INFO cpu, seconds), pid and version. The CPU of the servers on
 * this machine counts as the benchmark's own in the noise accounting.
 */
export interface RedisSample {
  cpu: number
  publish: number
  spublish: number
}

export class RedisMeter {
  private constructor (private readonly clients: Array<import('ioredis').Redis>, readonly pids: number[], readonly version: string) {}

  static async open (endpoints: readonly Endpoint[]): Promise<RedisMeter> {
    const { Redis } = await import('ioredis')
    const clients = endpoints.map(({ host, port }) => {
      const client = new Redis({ host, port, lazyConnect: true, connectTimeout: 2000, maxRetriesPerRequest: 1, retryStrategy: () => null })
      client.on('error', () => {})
      return client
    })
    try {
      await bounded(Promise.all(clients.map((client) => client.connect())), 10_000, 'connecting to Redis')
      const infos = await Promise.all(clients.map((client) => client.info('server')))
      const field = (info: string, name: string): string => new RegExp(`^${name}:(.*)$`, 'm').exec(info)?.[1]?.trim() ?? ''
      const pids = infos.flatMap((info, i) => LOOPBACK.has(endpoints[i].host) ? [Number(field(info, 'process_id'))] : []).filter((pid) => pid > 0)
      return new RedisMeter(clients, pids, field(infos[0] ?? '', 'redis_version'))
    } catch (error) {
      for (const client of clients) client.disconnect()
      throw error
    }
  }

  /**
   * used_cpu_user + used_cpu_sys (ms) and the PUBLISH and SPUBLISH calls so
   * far, all the servers together (INFO cpu, INFO commandstats).
   */
  async sample (): Promise<RedisSample> {
    const each = await Promise.all(this.clients.map(async (client) => {
      const info = `${await client.info('cpu')}\n${await client.info('commandstats')}`
      const get = (pattern: string): number => Number(new RegExp(`^${pattern}([\\d.]+)`, 'm').exec(info)?.[1] ?? 0)
      return {
        cpu: (get('used_cpu_user:') + get('used_cpu_sys:')) * 1000,
        publish: get('cmdstat_publish:calls='),
        spublish: get('cmdstat_spublish:calls=')
      }
    }))
    return each.reduce((sum, x) => ({ cpu: sum.cpu + x.cpu, publish: sum.publish + x.publish, spublish: sum.spublish + x.spublish }), { cpu: 0, publish: 0, spublish: 0 })
  }

  close (): void {
    for (const client of this.clients) client.disconnect()
  }
}

export { redisAnswers }

/** The Redis servers of a run: the one at REDIS_URL and, for the sharded implementations, a Redis Cluster started here. */
export interface Targets {
  single: RedisMeter
  cluster: Cluster | null
  clusterMeter: RedisMeter | null
  /** why the cluster did not start ('' when it did, or was not needed) */
  clusterError: string
  /** stops what was started; also run on SIGINT / SIGTERM and at the run's bound (`limitMs`) */
  close (): Promise<void>
}

export async function openTargets (impls: readonly RedisImpl[], masters: number, replicas: number, limitMs: number): Promise<Targets> {
  let cluster: Cluster | null = null
  const meters: RedisMeter[] = []
  const stop = async (): Promise<void> => {
    for (const meter of meters.splice(0)) meter.close()
    const started = cluster
    cluster = null
    await started?.stop()
  }
  const { clear } = guard(limitMs, stop)
  const close = async (): Promise<void> => {
    clear()
    await stop()
  }
  try {
    if (!await redisAnswers()) throw new Error(`No Redis answers at ${REDIS_URL}: start redis-server, or set REDIS_URL.`)
    const single = await RedisMeter.open([endpointOf(REDIS_URL)])
    meters.push(single)
    let clusterMeter: RedisMeter | null = null
    let clusterError = ''
    if (impls.some(isSharded)) {
      try {
        cluster = await startCluster(masters, replicas)
        clusterMeter = await RedisMeter.open(cluster.nodes)
        meters.push(clusterMeter)
      } catch (error) {
        clusterError = `the Redis Cluster did not start: ${(error as Error).message.split('\n')[0]}`
        console.error(clusterError)
      }
    }
    return { single, cluster, clusterMeter, clusterError, close }
  } catch (error) {
    await close()
    throw error
  }
}

// ------------------------------------------------------------------ a deployment

/** One publisher (no clients), `servers` instances with the clients, `clientProcesses` processes holding them. */
export interface Deployment {
  impl: RedisImpl
  prefix: string
  publisher: Peer
  servers: Peer[]
  clients: Peer[]
  /** how many clients each client process holds */
  clientCounts: number[]
  /** why this implementation cannot run (setup failed, a process died): its rounds are not run */
  broken?: string
}

export interface DeployOptions {
  servers: number
  clientProcesses: number
  clients: number
  prefix: string
  /** the cluster's startup nodes, for the sharded implementations */
  cluster: Endpoint[] | null
  /** why there is no cluster */
  clusterError?: string
}

/**
 * Starts the processes of one implementation and waits until a message
 * published on the publisher reaches every client (the room channels are
 * subscribed on every server); never rejects: a deployment that could not
 * start is returned with `broken` set and its processes stopped.
 */
export async function deploy (impl: RedisImpl, options: DeployOptions): Promise<Deployment> {
  const env: Record<string, string> = { BENCH_REDIS_URL: REDIS_URL, BENCH_REDIS_CLUSTER: JSON.stringify(options.cluster ?? []) }
  const started: Peer[] = []
  const deployment: Deployment = { impl, prefix: options.prefix, publisher: null as unknown as Peer, servers: [], clients: [], clientCounts: [] }
  try {
    if (isSharded(impl) && options.cluster === null) throw new Error(options.clusterError ?? 'no Redis Cluster')
    const serverStarts = Array.from({ length: options.servers + 1 }, (_, i) => spawnChild(`${impl} ${i === 0 ? 'publisher' : `server ${i}`}`, ['server', impl, options.prefix], env))
    started.push(...serverStarts.map((s) => s.peer))
    const listening = await Promise.all(serverStarts.map((s) => s.ready))
    deployment.publisher = serverStarts[0].peer
    deployment.servers = serverStarts.slice(1).map((s) => s.peer)
    const ports = listening.slice(1).map((message) => Number(message.port))
    const k = Math.max(1, Math.min(options.clientProcesses, options.clients))
    const clientStarts: Array<Promise<unknown>> = []
    const portsOf: number[][] = []
    // Client g (0 … clients-1) is held by process g mod k and connects to server g mod S.
    for (let j = 0; j < k; j++) {
      const mine: number[] = []
      for (let g = j; g < options.clients; g += k) mine.push(ports[g % ports.length])
      deployment.clientCounts.push(mine.length)
      portsOf.push(mine)
      const start = spawnChild(`${impl} clients ${j + 1}`, ['clients', impl], env, TIMEOUT)
      started.push(start.peer)
      deployment.clients.push(start.peer)
      clientStarts.push(start.ready)
    }
    await Promise.all(clientStarts)
    // Connected one process after the other: the accept queues stay short.
    for (const [j, peer] of deployment.clients.entries()) await peer.call('connect', { ports: portsOf[j] }, TIMEOUT)
    await settle(deployment)
  } catch (error) {
    deployment.broken = (error as Error).message.split('\n')[0]
    await stopPeers(started)
  }
  return deployment
}

let nextRound = 1

/**
 * Publishes probe messages (one per 20 ms) until every client has received
 * one: the servers' room channels are subscribed, the connections to Redis
 * (or each shard) are up. Bounded to 30 s.
 */
async function settle (d: Deployment): Promise<void> {
  const round = nextRound++
  await Promise.all(d.clients.map((peer) => peer.call('expect', { round, count: 1, mode: 'any', latency: false })))
  const results = Promise.all(d.clients.map((peer) => peer.call('result', { round }, 30_000)))
  await d.publisher.call('probe', { round, interval: 20 })
  try {
    await results
  } catch (error) {
    const progress = await Promise.all(d.clients.map((peer) => peer.call<{ complete: number, clients: number }>('progress', undefined, 5000).catch(() => ({ complete: 0, clients: 0 }))))
    const got = progress.reduce((sum, p) => sum + p.complete, 0)
    const of = progress.reduce((sum, p) => sum + p.clients, 0)
    throw new Error(`no probe message reached every client within 30 s (${got} of ${of} got one): ${(error as Error).message}`)
  } finally {
    await d.publisher.call('stopProbe').catch(() => {})
  }
  // Probe messages still on their way are of an old round: the clients ignore them.
  await sleep(100)
}

export async function teardown (deployments: readonly Deployment[]): Promise<void> {
  // A deployment broken at its start has no publisher (and has stopped what it started).
  await stopPeers(deployments.flatMap((d) => [d.publisher, ...d.servers, ...d.clients].filter((peer): peer is Peer => peer !== null)))
}

export interface CpuSplit {
  /** CPU time (ms) of each process over the round, and of Redis (each server of it) */
  publisher: number
  servers: number[]
  clients: number[]
  redis: number
}

export interface Round {
  impl: RedisImpl
  ok: boolean
  error?: string
  /** publisher's first broadcast → last arrival at a client (burst); the paced round's whole length (paced) */
  ms: number
  deliveries: number
  /** messages the publisher broadcast */
  messages: number
  /** PUBLISH and SPUBLISH calls Redis counted during the round */
  commands?: { publish: number, spublish: number }
  outOfOrder: number
  cpu: CpuSplit
  noise: Noise
  /** paced rounds: one sample per client and message (ms) */
  latencies?: number[]
  /** paced rounds: the last arrival came this long (ms) after the last message was published */
  lagMs?: number
}

interface ClientResult {
  lastAt: number
  outOfOrder: number
  received: number
  latencies: number[] | null
}

/** What the rounds of a run share: every deployment (their processes count as the benchmark's own) and the Redis meters. */
export interface Context {
  deployments: readonly Deployment[]
  single: RedisMeter
  cluster: RedisMeter | null
}

async function cpuOf (d: Deployment, meter: RedisMeter): Promise<{ publisher: number, servers: number[], clients: number[], redis: RedisSample }> {
  const ask = (peer: Peer): Promise<number> => peer.call<number>('cpu', undefined, 10_000)
  const [publisher, servers, clients, redis] = await Promise.all([ask(d.publisher), Promise.all(d.servers.map(ask)), Promise.all(d.clients.map(ask)), meter.sample()])
  return { publisher, servers, clients, redis }
}

const peersOf = (d: Deployment): Peer[] => [d.publisher, ...d.servers, ...d.clients]

/**
 * One measured round. `burst`: the publisher broadcasts `count` messages in
 * one event-loop turn; `paced`: one every `interval` ms, each with the time
 * it was sent. The round ends when every client has every message.
 */
export async function measure (d: Deployment, context: Context, kind: 'burst' | 'paced', count: number, interval = 0): Promise<Round> {
  const meter = isSharded(d.impl) ? context.cluster : context.single
  if (meter === null) throw new Error(`${d.impl}: no Redis meter`)
  const own = [process.pid, ...context.single.pids, ...(context.cluster?.pids ?? [])]
  // Every process of the benchmark (and Redis) is its own; this deployment's are the round's.
  const pids = [...own, ...context.deployments.flatMap((x) => x.broken === undefined ? peersOf(x).map((p) => p.pid) : [])]
  const measured = [...own, ...peersOf(d).map((p) => p.pid)]
  const round = nextRound++
  const clients = d.clientCounts.reduce((a, b) => a + b, 0)
  const paced = kind === 'paced'
  const failed = (error: string, cpu: CpuSplit, noise: Noise): Round => ({ impl: d.impl, ok: false, error, ms: Number.NaN, deliveries: 0, messages: count, outOfOrder: 0, cpu, noise })
  await Promise.all(d.clients.map((peer) => peer.call('expect', { round, count, mode: 'all', latency: paced })))
  const before = await cpuOf(d, meter)
  const noiseBefore = snapshot(pids)
  const bound = paced ? TIMEOUT + count * interval : TIMEOUT
  const results = Promise.allSettled(d.clients.map((peer) => peer.call<ClientResult>('result', { round }, bound)))
  let sent: { startAt: number, endAt: number } | null = null
  let sendError = ''
  try {
    sent = await d.publisher.call<{ startAt: number, endAt: number }>(kind, { round, count, interval }, bound)
  } catch (error) {
    sendError = (error as Error).message
  }
  const settled = await results
  const noise = noiseBetween(noiseBefore, snapshot(pids), measured)
  const after = await cpuOf(d, meter).catch(() => before)
  const cpu: CpuSplit = {
    publisher: (after.publisher - before.publisher) / 1000,
    servers: after.servers.map((v, i) => (v - before.servers[i]) / 1000),
    clients: after.clients.map((v, i) => (v - before.clients[i]) / 1000),
    redis: after.redis.cpu - before.redis.cpu
  }
  // The commands Redis counted (the single Redis may also serve others: then these count theirs too).
  const commands = { publish: after.redis.publish - before.redis.publish, spublish: after.redis.spublish - before.redis.spublish }
  if (sent === null) return failed(`publisher: ${sendError}`, cpu, noise)
  const rejected = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected')
  if (rejected !== undefined) {
    const progress = await Promise.all(d.clients.map((peer) => peer.call<{ complete: number }>('progress', undefined, 5000).catch(() => ({ complete: 0 }))))
    return failed(`${progress.reduce((sum, p) => sum + p.complete, 0)} of ${clients} clients got all ${count} messages: ${String(rejected.reason?.message ?? rejected.reason)}`, cpu, noise)
  }
  const done = settled.map((s) => (s as PromiseFulfilledResult<ClientResult>).value)
  const lastAt = Math.max(...done.map((r) => r.lastAt))
  const latencies = paced ? done.flatMap((r) => r.latencies ?? []) : undefined
  return {
    impl: d.impl,
    ok: true,
    ms: lastAt - sent.startAt,
    deliveries: clients * count,
    messages: count,
    commands,
    outOfOrder: done.reduce((sum, r) => sum + r.outOfOrder, 0),
    cpu,
    noise,
    ...(latencies === undefined ? {} : { latencies, lagMs: lastAt - sent.endAt })
  }
}

/** Marks a deployment broken when one of its processes has died (its later rounds are skipped). */
export function checkAlive (d: Deployment): void {
  if (d.broken !== undefined) return
  const dead = [d.publisher, ...d.servers, ...d.clients].find((p) => p.proc.exitCode !== null || p.proc.signalCode !== null)
  if (dead !== undefined) d.broken = `${dead.name} exited (${dead.proc.signalCode ?? dead.proc.exitCode})`
}

// ------------------------------------------------------------------ figures

export interface Percentiles {
  count: number
  p50: number
  p90: number
  p99: number
  p999: number
  max: number
}

/** Nearest-rank percentiles of `values`. */
export function percentiles (values: readonly number[]): Percentiles {
  const sorted = Float64Array.from(values).sort()
  const at = (p: number): number => sorted.length === 0 ? Number.NaN : sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)]
  return { count: sorted.length, p50: at(0.5), p90: at(0.9), p99: at(0.99), p999: at(0.999), max: sorted.length === 0 ? Number.NaN : sorted[sorted.length - 1] }
}

export interface Paired {
  median: number
  low: number
  high: number
  pairs: number
}

/** Median and range of `a[r] / b[r]` over the repeats where both ran. */
export function paired (a: ReadonlyArray<number | undefined>, b: ReadonlyArray<number | undefined>): Paired | undefined {
  const ratios: number[] = []
  for (let r = 0; r < Math.min(a.length, b.length); r++) {
    const x = a[r]
    const y = b[r]
    if (x !== undefined && y !== undefined && Number.isFinite(x) && Number.isFinite(y) && y > 0) ratios.push(x / y)
  }
  if (ratios.length === 0) return undefined
  return { median: median(ratios), low: Math.min(...ratios), high: Math.max(...ratios), pairs: ratios.length }
}

export function fmt (value: number | undefined, digits?: number): string {
  if (value === undefined || !Number.isFinite(value)) return '–'
  if (digits !== undefined) return value.toFixed(digits)
  const abs = Math.abs(value)
  if (abs >= 1000) return Math.round(value).toLocaleString('en-US')
  if (abs >= 100) return value.toFixed(0)
  if (abs >= 10) return value.toFixed(1)
  return value.toFixed(2)
}

export function fmtPaired (p: Paired | undefined): string {
  return p === undefined ? '–' : `${p.median.toFixed(2)}× (${p.low.toFixed(2)}–${p.high.toFixed(2)})`
}

/** A Markdown table; `right` marks the columns aligned right. */
export function markdownTable (head: readonly string[], rows: ReadonlyArray<readonly string[]>, right: (column: number) => boolean): string {
  return [
    `| ${head.join(' | ')} |`,
    `|${head.map((_, i) => right(i) ? ' ---: ' : ' --- ').join('|')}|`,
    ...rows.map((row) => `| ${row.join(' | ')} |`)
  ].join('\n')
}

// ------------------------------------------------------------------ the run

/** Which code the run measured: the commit, whether lib/ had changes, when dist/ was built. */
export function codeState (): { commit: string, libChanged: boolean, distBuilt: string, text: string } {
  let commit = 'unknown commit'
  let libChanged = false
  try {
    commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim()
    libChanged = execFileSync('git', ['status', '--porcelain', 'lib'], { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim() !== ''
  } catch {}
  let distBuilt = 'missing'
  try {
    distBuilt = statSync(path.join(ROOT, 'dist', 'index.js')).mtime.toISOString()
  } catch {}
  return { commit, libChanged, distBuilt, text: `${commit}${libChanged ? ' + uncommitted changes in lib/' : ''}, dist/ built ${distBuilt}` }
}

export function versionOf (name: string): string {
  try {
    return (JSON.parse(readFileSync(path.join(ROOT, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version
  } catch {
    return 'unknown'
  }
}

export function machine (): { cores: number, cpus: string, text: string } {
  const cores = os.availableParallelism()
  const cpus = `${os.cpus().length} × ${os.cpus()[0]?.model ?? 'unknown'}`
  return { cores, cpus, text: `${cores} cores available (os.availableParallelism()), ${cpus}, ${Math.round(os.totalmem() / 2 ** 30)} GiB` }
}

/** Writes `bench/results/<stamp>-<kind>.md` and `.json`; returns their paths, relative to the repository. */
export function writeResults (kind: string, startedAt: Date, markdown: string, json: unknown): string[] {
  const dir = path.join(ROOT, 'bench', 'results')
  mkdirSync(dir, { recursive: true })
  const stamp = startedAt.toISOString().replace(/:/g, '-').replace(/\.\d+Z$/, 'Z')
  const base = path.join(dir, `${stamp}-${kind}`)
  writeFileSync(`${base}.md`, markdown)
  writeFileSync(`${base}.json`, JSON.stringify(json, null, 2) + '\n')
  return ['md', 'json'].map((ext) => path.relative(ROOT, `${base}.${ext}`))
}
