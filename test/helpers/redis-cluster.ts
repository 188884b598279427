// A real Redis Cluster on this machine, for tests and benchmarks: redis-server
// processes on free ports in a temp dir, joined with `redis-cli --cluster
// create`, that a test can crash (SIGKILL), wait to fail over, and restart.
// No tap import here, so that a benchmark can use it without TAP output.
import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { rmSync } from 'node:fs'
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Redis } from 'ioredis'
import { freePort, type TestContext } from './server'
import { delay, until } from './wait'
import { keySlot } from '../../lib/adapters/redis/keys'

export interface ClusterNodeAddress { readonly host: string, readonly port: number }

export interface ClusterMaster extends ClusterNodeAddress {
  readonly id: string
  /** inclusive [first, last] slot ranges, in slot order */
  readonly slots: ReadonlyArray<readonly [number, number]>
}

export interface RedisClusterOptions {
  /** masters (at least 3: redis-cli refuses fewer); 3 by default */
  masters?: number
  /** replicas of each master; 1 by default */
  replicas?: number
  /** cluster-node-timeout in ms; 1000 by default */
  nodeTimeout?: number
}

export const SLOTS = 16384

const HOST = '127.0.0.1'
/** how long start() waits for the processes, for redis-cli, and for the cluster to settle */
const START_TIMEOUT = 60_000
/** between two polls of the nodes: slow enough not to starve a busy 2-core machine */
const POLL_INTERVAL = 100

// The slot of a key or channel, as the adapter computes it (tested against CLUSTER KEYSLOT by test/redis-cluster-harness.test.ts).
export { keySlot }

function run (file: string, args: string[], timeout: number): Promise<{ stdout: string, stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { timeout, encoding: 'utf8' }, (error, stdout, stderr) => {
      if (error !== null) reject(Object.assign(error, { stdout, stderr }))
      else resolve({ stdout, stderr })
    })
  })
}

async function majorVersion (file: string): Promise<number> {
  const { stdout } = await run(file, ['--version'], 10_000)
  const match = /(?:v=|redis-cli )(\d+)\./.exec(stdout)
  return match === null ? 0 : Number(match[1])
}

/** Whether this machine's redis-server and redis-cli support cluster and sharded pub/sub (version 7 or later). */
export async function clusterSupported (): Promise<boolean> {
  try {
    return (await majorVersion('redis-server')) >= 7 && (await majorVersion('redis-cli')) >= 7
  } catch {
    return false
  }
}

// Every redis-server started here and every temp dir not deleted yet: should
// the process exit without stop() (a crash, a test timing out), the exit hook
// SIGKILLs those processes and deletes those dirs.
const running = new Set<ChildProcess>()
const dirs = new Set<string>()
let exitHookInstalled = false
function installExitHook (): void {
  if (exitHookInstalled) return
  exitHookInstalled = true
  process.once('exit', () => {
    for (const child of running) child.kill('SIGKILL')
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true })
  })
}
function track (child: ChildProcess): void {
  installExitHook()
  running.add(child)
  child.once('exit', () => running.delete(child))
}

/** A plain connection to one node, closed once `fn` settles; fails fast rather than retrying. */
async function onNode<T> (node: ClusterNodeAddress, fn: (redis: Redis) => Promise<T>): Promise<T> {
  const redis = new Redis({
    host: node.host,
    port: node.port,
    lazyConnect: true,
    connectTimeout: 2000,
    commandTimeout: 5000,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    retryStrategy: () => null
  })
  redis.on('error', () => {})
  try {
    await redis.connect()
    return await fn(redis)
  } finally {
    redis.disconnect()
  }
}

interface SlotRange {
  first: number
  last: number
  master: { host: string, port: number, id: string }
}

/** CLUSTER SLOTS: [first, last, [ip, port, id, …] of the master, [ip, port, id, …] of each replica]. */
function parseSlots (reply: unknown): SlotRange[] {
  const node = (entry: unknown): { host: string, port: number, id: string } => {
    const [ip, port, id] = entry as [unknown, unknown, unknown]
    return { host: String(ip) === '' ? HOST : String(ip), port: Number(port), id: String(id) }
  }
  return (reply as unknown[][])
    .map(([first, last, master]) => ({ first: Number(first), last: Number(last), master: node(master) }))
    .sort((a, b) => a.first - b.first)
}

/** The masters of a CLUSTER SLOTS view, with their ranges, in slot order. */
function mastersOf (ranges: SlotRange[]): ClusterMaster[] {
  const masters = new Map<string, { host: string, port: number, id: string, slots: Array<readonly [number, number]> }>()
  for (const range of ranges) {
    let master = masters.get(range.master.id)
    if (master === undefined) {
      master = { ...range.master, slots: [] }
      masters.set(range.master.id, master)
    }
    master.slots.push([range.first, range.last])
  }
  return [...masters.values()]
}

/**
 * The replicas each master has, by master id, from CLUSTER NODES (CLUSTER
 * SLOTS leaves out a replica until its replication offset has moved, which
 * on an idle cluster takes until the master's first replication PING, 10 s).
 * Replicas flagged as failing are left out.
 */
function replicasOf (nodes: string): Map<string, number[]> {
  const replicas = new Map<string, number[]>()
  for (const line of nodes.split('\n')) {
    const [, address, flags, master] = line.trim().split(' ')
    if (master === undefined || master === '-') continue
    const flagged = flags.split(',')
    if (!flagged.includes('slave') || flagged.includes('fail') || flagged.includes('fail?')) continue
    const port = Number(/:(\d+)@/.exec(address)?.[1])
    replicas.set(master, [...(replicas.get(master) ?? []), port].sort((a, b) => a - b))
  }
  return replicas
}

/** How many slots the ranges cover (each counted once). */
function covered (ranges: SlotRange[]): number {
  const slots = new Set<number>()
  for (const { first, last } of ranges) for (let slot = first; slot <= last; slot++) slots.add(slot)
  return slots.size
}

/** Fields of CLUSTER INFO or INFO: `name:value` lines. */
function fields (text: string): Map<string, string> {
  const map = new Map<string, string>()
  for (const line of text.split(/\r?\n/)) {
    const colon = line.indexOf(':')
    if (colon > 0) map.set(line.slice(0, colon), line.slice(colon + 1).trim())
  }
  return map
}

/**
 * Polls `check` until it returns undefined (all well) rather than a reason,
 * pausing between polls; on timeout the error names `what` and the last reason.
 */
async function settle (what: string, timeout: number, check: () => Promise<string | undefined>): Promise<void> {
  let last = 'not checked yet'
  try {
    await until(async () => {
      const reason = await check().catch((error: Error) => `error: ${error.message}`)
      if (reason === undefined) return true
      last = reason
      await delay(POLL_INTERVAL)
      return false
    }, timeout, what)
  } catch (error) {
    throw new Error(`${(error as Error).message} (last seen: ${last})`)
  }
}

class ClusterNode implements ClusterNodeAddress {
  readonly host = HOST
  child: ChildProcess | null = null
  exited: Promise<unknown> = Promise.resolve()

  constructor (readonly port: number, readonly busPort: number, readonly dir: string, readonly nodeTimeout: number) {}

  get alive (): boolean {
    return this.child !== null && this.child.exitCode === null && this.child.signalCode === null
  }

  get log (): string {
    return join(this.dir, 'redis.log')
  }

  /** Spawns redis-server (with the nodes.conf in its dir, if any) and resolves once it answers PING. */
  async spawn (): Promise<void> {
    await mkdir(this.dir, { recursive: true })
    const child = spawn('redis-server', [
      '--port', String(this.port),
      '--bind', HOST,
      '--cluster-enabled', 'yes',
      '--cluster-port', String(this.busPort),
      '--cluster-config-file', join(this.dir, 'nodes.conf'),
      '--cluster-node-timeout', String(this.nodeTimeout),
      '--cluster-replica-validity-factor', '0',
      '--dir', this.dir,
      '--logfile', this.log,
      '--save', '',
      '--appendonly', 'no',
      '--repl-diskless-sync-delay', '0'
    ], { stdio: 'ignore' })
    child.on('error', () => {})
    this.child = child
    this.exited = once(child, 'exit')
    track(child)
    const answers = (): Promise<boolean> => onNode(this, async (redis) => (await redis.ping()) === 'PONG').catch(() => false)
    try {
      await until(async () => !this.alive || await answers() || (await delay(POLL_INTERVAL), false), 20_000, `redis-server on port ${this.port} answering PING`)
    } catch (error) {
      await this.kill()
      throw new Error(`${(error as Error).message}${await this.logTail()}`)
    }
    if (!this.alive) throw new Error(`redis-server on port ${this.port} (bus port ${this.busPort}) exited at start${await this.logTail()}`)
  }

  /** SIGKILL, resolved once the process exited. */
  async kill (): Promise<void> {
    const child = this.child
    if (child === null) return
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    await this.exited
  }

  async logTail (): Promise<string> {
    const text = await readFile(this.log, 'utf8').catch(() => '')
    return text === '' ? '' : `; its log ends:\n${text.trimEnd().split('\n').slice(-10).join('\n')}`
  }
}

/** A Redis Cluster of redis-server processes on this machine. */
export class RedisCluster {
  /** every node's address (the startup nodes for an ioredis Cluster) */
  readonly nodes: ClusterNodeAddress[]
  private readonly processes: ClusterNode[]
  private stopped: Promise<void> | null = null

  private constructor (readonly dir: string, processes: ClusterNode[]) {
    this.processes = processes
    this.nodes = processes.map(({ host, port }) => ({ host, port }))
  }

  /**
   * Starts masters × (1 + replicas) redis-server processes on free ports (and
   * free cluster bus ports, passed as --cluster-port) in a fresh temp dir,
   * creates the cluster with redis-cli, and resolves once every node reports
   * cluster_state:ok, all 16384 slots are served, every node sees the same
   * masters with their replicas, and every replica's link to its master is up.
   * Whatever it started is stopped again when it fails.
   */
  static async start (options: RedisClusterOptions = {}): Promise<RedisCluster> {
    const { masters = 3, replicas = 1, nodeTimeout = 1000 } = options
    if (!Number.isInteger(masters) || masters < 3) throw new Error(`a Redis Cluster needs at least 3 masters (redis-cli refuses fewer), got ${masters}`)
    if (!Number.isInteger(replicas) || replicas < 0) throw new Error(`replicas must be an integer ≥ 0, got ${replicas}`)
    if (!Number.isInteger(nodeTimeout) || nodeTimeout <= 0) throw new Error(`nodeTimeout must be a positive integer (ms), got ${nodeTimeout}`)

    installExitHook()
    const dir = await mkdtemp(join(tmpdir(), 'nexus-redis-cluster-'))
    dirs.add(dir)
    const taken = new Set<number>()
    const port = async (): Promise<number> => {
      for (;;) {
        const candidate = await freePort()
        if (!taken.has(candidate)) {
          taken.add(candidate)
          return candidate
        }
      }
    }
    const processes: ClusterNode[] = []
    const cluster = new RedisCluster(dir, processes)
    try {
      const total = masters * (1 + replicas)
      // allSettled: nothing may still be spawning when a failure stops the cluster.
      const spawned = await Promise.allSettled(Array.from({ length: total }, async (_, index) => {
        // A port found free may be taken by someone else before redis-server binds it: try other ports then.
        for (let attempt = 1; ; attempt++) {
          const node = new ClusterNode(await port(), await port(), join(dir, `node-${index}`), nodeTimeout)
          processes[index] = node
          try {
            await node.spawn()
            return
          } catch (error) {
            if (attempt === 3) throw error
            await rm(node.dir, { recursive: true, force: true })
          }
        }
      }))
      const failed = spawned.find((result) => result.status === 'rejected')
      if (failed !== undefined) throw failed.reason
      cluster.nodes.push(...processes.map(({ host, port }) => ({ host, port })))

      const args = ['--cluster', 'create', ...processes.map(({ host, port }) => `${host}:${port}`), '--cluster-replicas', String(replicas), '--cluster-yes']
      try {
        await run('redis-cli', args, START_TIMEOUT)
      } catch (error) {
        const { stdout = '', stderr = '' } = error as { stdout?: string, stderr?: string }
        throw new Error(`redis-cli ${args.join(' ')} failed: ${(error as Error).message}\n${stdout}${stderr}`)
      }

      await cluster.settled(`the cluster of ${masters} masters × ${replicas} replicas ready`, START_TIMEOUT, { masters, replicas })
      return cluster
    } catch (error) {
      await cluster.stop()
      throw error
    }
  }

  /** start(), with `t.teardown(() => cluster.stop())` registered. */
  static async startFor (t: TestContext, options?: RedisClusterOptions): Promise<RedisCluster> {
    const cluster = await RedisCluster.start(options)
    t.teardown(() => cluster.stop())
    return cluster
  }

  /** The current masters and their slot ranges, as CLUSTER SLOTS of the first live node that answers has them. */
  async masters (): Promise<ClusterMaster[]> {
    return mastersOf(await this.slotsView())
  }

  /** The master serving the slot of this key or channel name (hash tags honoured). */
  async masterOf (key: string): Promise<ClusterMaster> {
    const slot = keySlot(key)
    const masters = await this.masters()
    const master = masters.find(({ slots }) => slots.some(([first, last]) => first <= slot && slot <= last))
    if (master === undefined) throw new Error(`no master serves slot ${slot} (of ${JSON.stringify(key)})`)
    return master
  }

  /** SIGKILLs the redis-server at this address (a crash: no goodbye); resolves once it exited. */
  async kill (node: ClusterNodeAddress): Promise<void> {
    await this.processOf(node).kill()
  }

  /**
   * Resolves once the cluster is whole again without the killed nodes: every
   * live node reports cluster_state:ok and sees all 16384 slots served by live
   * masters, the same on every live node. Rejects after `timeout` ms.
   */
  async waitHealthy (timeout = 30_000): Promise<void> {
    await this.settled('the cluster healthy (every slot served by a live master, cluster_state:ok on every live node)', timeout)
  }

  /**
   * Restarts a killed node on its port, with its nodes.conf; resolves once it
   * answers PING. It rejoins by itself: a master that was failed over comes
   * back as a replica of the one promoted in its place (see waitHealthy()).
   */
  async restart (node: ClusterNodeAddress): Promise<void> {
    if (this.stopped !== null) throw new Error('the cluster was stopped')
    const server = this.processOf(node)
    if (server.alive) throw new Error(`redis-server on port ${node.port} is running: kill() it first`)
    await server.spawn()
  }

  /** SIGKILLs every node and deletes the temp dir; idempotent. */
  stop (): Promise<void> {
    this.stopped ??= (async () => {
      await Promise.all(this.processes.filter((node) => node !== undefined).map((node) => node.kill()))
      await rm(this.dir, { recursive: true, force: true })
      dirs.delete(this.dir)
    })()
    return this.stopped
  }

  private processOf (node: ClusterNodeAddress): ClusterNode {
    const server = this.processes.find(({ host, port }) => port === node.port && (host === node.host || node.host === 'localhost'))
    if (server === undefined) throw new Error(`${node.host}:${node.port} is not a node of this cluster`)
    return server
  }

  private live (): ClusterNode[] {
    return this.processes.filter((node) => node.alive)
  }

  private async slotsView (): Promise<SlotRange[]> {
    const errors: string[] = []
    for (const node of this.live()) {
      try {
        return parseSlots(await onNode(node, (redis) => redis.call('CLUSTER', 'SLOTS')))
      } catch (error) {
        errors.push(`${node.port}: ${(error as Error).message}`)
      }
    }
    throw new Error(`no live node answered CLUSTER SLOTS (${errors.join('; ') || 'none is running'})`)
  }

  /**
   * Waits until every live node reports cluster_state:ok and the same
   * CLUSTER SLOTS view, with all slots served by live masters; with `shape`
   * (at start), also that there are that many masters, each with that many
   * replicas in sync.
   */
  private async settled (what: string, timeout: number, shape?: { masters: number, replicas: number }): Promise<void> {
    await settle(what, timeout, async () => {
      const live = this.live()
      if (live.length === 0) return 'no node is running'
      const livePorts = new Set(live.map(({ port }) => port))
      const views = await Promise.all(live.map((node) => onNode(node, async (redis) => {
        const info = fields(await redis.call('CLUSTER', 'INFO') as string)
        const ranges = parseSlots(await redis.call('CLUSTER', 'SLOTS'))
        const replicas = replicasOf(await redis.call('CLUSTER', 'NODES') as string)
        const replication = fields(await redis.info('replication'))
        return { node, info, ranges, replicas, replication }
      }).catch((error: Error) => ({ node, error }))))
      let reference: string | undefined
      for (const view of views) {
        const name = `node ${view.node.port}`
        if ('error' in view) return `${name}: ${view.error.message}`
        const state = view.info.get('cluster_state')
        if (state !== 'ok') return `${name}: cluster_state:${state}`
        const dead = view.ranges.find(({ master }) => !livePorts.has(master.port))
        if (dead !== undefined) return `${name}: slots ${dead.first}-${dead.last} still served by ${dead.master.port}, not running`
        const served = covered(view.ranges)
        if (served !== SLOTS) return `${name}: ${served} of ${SLOTS} slots served`
        const summary = JSON.stringify(view.ranges.map(({ first, last, master }) => [first, last, master.id, shape === undefined ? [] : view.replicas.get(master.id) ?? []]))
        reference ??= summary
        if (summary !== reference) return `${name} sees another slot map than node ${views[0].node.port}`
        if (shape !== undefined) {
          const masters = mastersOf(view.ranges).length
          if (masters !== shape.masters) return `${name}: ${masters} masters, not ${shape.masters}`
          const short = view.ranges.find(({ master }) => (view.replicas.get(master.id) ?? []).length !== shape.replicas)
          if (short !== undefined) return `${name}: the master of slots ${short.first}-${short.last} has ${view.replicas.get(short.master.id)?.length ?? 0} replicas, not ${shape.replicas}`
          if (view.replication.get('role') === 'slave' && view.replication.get('master_link_status') !== 'up') return `${name}: replica link to its master not up`
        }
      }
      return undefined
    })
  }
}
