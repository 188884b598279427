/**
 * Latency of a history room through the Redis adapter:
 *
 *   npm run bench:history       (builds dist/ first)
 *   node --import tsx bench/history-latency.ts [--clients=N] [--messages=K] [--burst=C] [--interval=MS] [--repeats=R] [--no-write]
 *
 * Needs a Redis at REDIS_URL (default redis://127.0.0.1:6379); every run uses
 * a prefix of its own and deletes its keys at the end. The plugin is loaded
 * as users load it (`fastify-nexus-realtime`, i.e. dist/). Loopback only.
 *
 * Three processes besides Redis: instance A (the publisher, no clients) and
 * instance B, two Fastify apps with `redisAdapter` and the same
 * `roomPolicies` (the room `hist` keeps 1,000 messages for 60 s, the room
 * `plain` nothing), and this one, which holds N raw `ws` clients connected to
 * B, each in both rooms. Whatever A sends reaches B's clients only through
 * Redis.
 *
 * - history, one at a time: A calls `await manager.publish('hist', data)`
 *   K times, each call after the previous one resolved. As fast as that
 *   goes, B and its clients (N deliveries per message) are usually the
 *   bottleneck: the end-to-end figures are then mostly the queue behind them
 *   (the row says "saturated" when, in a round, the last message arrived
 *   more than 20 ms and 10 % of A's time after A was done).
 * - history, paced: the same, at most one call every `--interval` ms (5):
 *   a light load, whose end-to-end figures are the path's own latency.
 * - history, bursts: A starts C publishes at once (one event-loop turn) and
 *   waits for all of them, K / C times.
 * - plain, the same shape: A calls `manager.broadcast('plain', data)` at the
 *   moments A called `publish` in the history round just before (those call
 *   times replayed, C at a time in bursts): the same messages at the same
 *   times, only the path differs (a PUBLISH instead of the history script).
 *
 * Figures, over every message of every repeat: publish latency (the call of
 * `publish` → its promise resolved, in A; a broadcast returns at once, so
 * none for the plain room) and end-to-end latency (the call → the message
 * received by a client on B, one sample per client and message), percentiles
 * p50/p90/p99/max; messages/s (messages ÷ A's first call to its last
 * resolved or sent one) and deliveries/s (messages × N ÷ A's first call to
 * the last arrival). Times are `process.hrtime` (CLOCK_MONOTONIC on Linux,
 * one clock for every process of the machine). The processes are not pinned;
 * on a shared machine the figures move: the CPU that other processes used
 * meanwhile is printed (foreign CPU, Redis counted as ours).
 *
 * Every round is bounded (messages, and time: the whole run stops after 55 s).
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import WebSocket from 'ws'
import { available as procAvailable, noiseBetween, snapshot } from './lib/noise'

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'
const HISTORY_ROOM = 'hist'
const PLAIN_ROOM = 'plain'
const POLICIES = { [HISTORY_ROOM]: { history: { size: 1000, ttl: 60_000 } } }
/** The whole run, at most. */
const RUN_LIMIT_MS = 55_000
/** Once A is done, how long the clients may take for the rest. */
const DRAIN_LIMIT_MS = 10_000
/** every message carries this much padding: about 150 bytes of JSON in all, a small chat message */
const PAD = 'x'.repeat(100)

/** CLOCK_MONOTONIC in ns, as a Number (exact: far below 2^53 ns of uptime). */
const nowNs = (): number => Number(process.hrtime.bigint())

type Room = 'history' | 'plain'
type Shape = 'sequential' | 'paced' | 'burst'
const SHAPES: readonly Shape[] = ['sequential', 'paced', 'burst']

/** What A sends and B's clients receive. */
interface Payload {
  /** the round */
  r: number
  /** the message's number in the round, from 0 */
  s: number
  /** when A called publish / broadcast, ns */
  t: number
  p: string
}

// ------------------------------------------------------------------ IPC

type Message = Record<string, any> & { type: string }

function request (child: ChildProcess, message: Message, type: string, timeoutMs: number): Promise<Message> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.off('message', onMessage)
      reject(new Error(`no "${type}" within ${timeoutMs} ms after ${message.type}`))
    }, timeoutMs)
    const onMessage = (reply: Message): void => {
      if (reply.type === 'error') {
        clearTimeout(timer)
        child.off('message', onMessage)
        reject(new Error(`${message.type}: ${String(reply.message)}`))
        return
      }
      if (reply.type !== type) return
      clearTimeout(timer)
      child.off('message', onMessage)
      resolve(reply)
    }
    child.on('message', onMessage)
    child.send(message)
  })
}

function reply (message: Message): void {
  if (process.connected) process.send?.(message)
}

// ------------------------------------------------------------------ instances A and B

function sleep (ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

/** Waits until `due` (ns): a timer for the long part, then event-loop turns (I/O goes on meanwhile). */
async function until (due: number): Promise<void> {
  for (;;) {
    const wait = due - nowNs()
    if (wait <= 0) return
    if (wait > 2e6) await sleep(Math.floor(wait / 1e6) - 1)
    else await new Promise((resolve) => setImmediate(resolve))
  }
}

interface RoundResult {
  /** publish latencies, ms (history only) */
  publish: number[]
  /** call times, ns after the first call: one per message (sequential) or per burst */
  calls: number[]
  /** first call → last resolved (history) or sent (plain) message, ms */
  wallMs: number
  failures: number
  firstError?: string
  /** history: the offsets came one after another, in one epoch */
  consecutive: boolean
}

async function instance (role: 'A' | 'B', prefix: string): Promise<void> {
  const { default: Fastify } = await import('fastify')
  const { default: nexusRealtime, redisAdapter } = await import('fastify-nexus-realtime')
  const app = Fastify({ logger: { level: 'warn' } })
  await app.register(nexusRealtime, { adapter: redisAdapter({ url: REDIS_URL }, { prefix }), roomPolicies: POLICIES })
  const manager = app.getWebSocket()
  app.ws('/ws', {
    onConnect: (socket) => {
      manager.joinRoom(HISTORY_ROOM, socket)
      manager.joinRoom(PLAIN_ROOM, socket)
    }
  })
  await app.listen({ host: '127.0.0.1', port: 0 })

  /** history: `count` publishes, one at a time (the i-th no earlier than `interval` × i ms after the first) or `burst` at once. */
  const publish = async (round: number, count: number, burst: number, interval: number): Promise<RoundResult> => {
    const publish: number[] = []
    const calls: number[] = []
    const offsets: number[] = []
    const epochs = new Set<string>()
    let failures = 0
    let firstError: string | undefined
    const start = nowNs()
    const one = async (s: number): Promise<void> => {
      const t = nowNs()
      try {
        const position = await manager.publish(HISTORY_ROOM, { r: round, s, t, p: PAD } satisfies Payload)
        publish.push((nowNs() - t) / 1e6)
        offsets.push(position.offset)
        epochs.add(position.epoch)
      } catch (error) {
        failures++
        firstError ??= (error as Error).message
      }
    }
    for (let s = 0; s < count; s += burst) {
      if (interval > 0) await until(start + s * interval * 1e6)
      calls.push(nowNs() - start)
      if (burst === 1) {
        await one(s)
        continue
      }
      const batch: Array<Promise<void>> = []
      for (let k = s; k < Math.min(count, s + burst); k++) batch.push(one(k))
      await Promise.all(batch)
    }
    const wallMs = (nowNs() - start) / 1e6
    offsets.sort((a, b) => a - b)
    const consecutive = epochs.size === 1 && offsets.every((offset, i) => i === 0 || offset === offsets[i - 1] + 1)
    return { publish, calls, wallMs, failures, consecutive, ...(firstError === undefined ? {} : { firstError }) }
  }

  /** plain: broadcasts at the call times given (ns after the start), `burst` per call time. */
  const broadcast = async (round: number, count: number, burst: number, calls: number[]): Promise<RoundResult> => {
    const start = nowNs()
    let s = 0
    for (const at of calls) {
      await until(start + at)
      for (let k = 0; k < burst && s < count; k++, s++) manager.broadcast(PLAIN_ROOM, { r: round, s, t: nowNs(), p: PAD } satisfies Payload)
    }
    return { publish: [], calls, wallMs: (nowNs() - start) / 1e6, failures: 0, consecutive: true }
  }

  process.on('message', (message: Message) => {
    const done = (result: RoundResult): void => reply({ type: 'done', ...result })
    const failed = (error: Error): void => reply({ type: 'error', message: error.message })
    if (message.type === 'history') publish(message.round, message.count, message.burst, message.interval).then(done, failed)
    else if (message.type === 'plain') broadcast(message.round, message.count, message.burst, message.calls).then(done, failed)
    else if (message.type === 'sizes') reply({ type: 'sizes', history: manager.roomSize(HISTORY_ROOM), plain: manager.roomSize(PLAIN_ROOM) })
    else if (message.type === 'close') app.close().then(() => reply({ type: 'closed' }), failed)
  })
  reply({ type: 'listening', role, port: (app.server.address() as { port: number }).port })
}

// ------------------------------------------------------------------ the clients (this process)

interface Expectation {
  round: number
  count: number
  /** end-to-end latency, ms, per message × client */
  e2e: Float64Array
  seen: Uint8Array
  received: number
  duplicates: number
  /** the earliest call (`t`) and the last arrival of the round, ns */
  firstCall: number
  lastArrival: number
  done: () => void
}

class Clients {
  private readonly sockets: WebSocket[] = []
  private expected: Expectation | null = null
  stray = 0
  closed = 0
  private closing = false

  async open (port: number, n: number, timeoutMs: number): Promise<void> {
    const opened = Array.from({ length: n }, (_, index) => new Promise<void>((resolve, reject) => {
      const socket = new WebSocket(`ws://127.0.0.1:${port}/ws`, { perMessageDeflate: false })
      this.sockets.push(socket)
      socket.once('open', () => resolve())
      socket.once('error', reject)
      socket.on('close', () => { if (!this.closing) this.closed++ })
      socket.on('message', (data) => this.received(index, n, data as Buffer))
    }))
    let timer: NodeJS.Timeout | undefined
    await Promise.race([
      Promise.all(opened),
      new Promise((_resolve, reject) => { timer = setTimeout(reject, timeoutMs, new Error(`${n} clients not connected within ${timeoutMs} ms`)) })
    ]).finally(() => clearTimeout(timer))
  }

  private received (index: number, n: number, data: Buffer): void {
    const arrival = nowNs()
    const current = this.expected
    const message = JSON.parse(data.toString()) as Payload
    if (current === null || message.r !== current.round || !(message.s >= 0 && message.s < current.count)) {
      this.stray++
      return
    }
    const slot = message.s * n + index
    if (current.seen[slot] === 1) {
      current.duplicates++
      return
    }
    current.seen[slot] = 1
    current.e2e[slot] = (arrival - message.t) / 1e6
    if (message.t < current.firstCall) current.firstCall = message.t
    current.lastArrival = arrival
    if (++current.received === current.e2e.length) current.done()
  }

  /** Expects `count` messages of `round` on every socket; `arrived` settles when all came. */
  expect (round: number, count: number): { expectation: Expectation, arrived: Promise<void> } {
    let done!: () => void
    const arrived = new Promise<void>((resolve) => { done = resolve })
    const size = count * this.sockets.length
    const expectation: Expectation = { round, count, e2e: new Float64Array(size).fill(Number.NaN), seen: new Uint8Array(size), received: 0, duplicates: 0, firstCall: Infinity, lastArrival: 0, done }
    this.expected = expectation
    return { expectation, arrived }
  }

  stop (): void {
    this.expected = null
  }

  close (): void {
    this.closing = true
    for (const socket of this.sockets) socket.terminate()
  }
}

// ------------------------------------------------------------------ figures

function percentile (sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return Number.NaN
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))]
}

interface Percentiles { p50: number, p90: number, p99: number, max: number, samples: number }

function percentiles (values: ArrayLike<number>): Percentiles {
  const sorted = Float64Array.from(values).filter((value) => !Number.isNaN(value)).sort()
  return { p50: percentile(sorted, 0.5), p90: percentile(sorted, 0.9), p99: percentile(sorted, 0.99), max: sorted.length === 0 ? Number.NaN : sorted[sorted.length - 1], samples: sorted.length }
}

interface Row {
  room: Room
  shape: Shape
  messages: number
  publish: Percentiles | null
  e2e: Percentiles
  messagesPerSecond: number
  deliveriesPerSecond: number
  missing: number
  duplicates: number
  failures: number
  consecutive: boolean
  /** B and its clients fell behind A (in a round, the last arrival came > 20 ms and > 10 % of A's time after A was done): the end-to-end figures are mostly queueing */
  saturated: boolean
  foreignCores: number
}

function ms (value: number): string {
  if (!Number.isFinite(value)) return '–'
  return value >= 100 ? value.toFixed(0) : value >= 10 ? value.toFixed(1) : value.toFixed(2)
}

function rate (value: number): string {
  return Number.isFinite(value) ? Math.round(value).toLocaleString('en-US') : '–'
}

const HEAD = ['room', 'publishing', 'messages', 'publish p50', 'p90', 'p99', 'max', 'end-to-end p50', 'p90', 'p99', 'max', 'msg/s', 'deliveries/s', 'checks']

function cells (row: Row, burst: number, interval: number): string[] {
  const p = row.publish
  const checks = [
    row.missing > 0 ? `${row.missing} missing` : '',
    row.duplicates > 0 ? `${row.duplicates} duplicated` : '',
    row.failures > 0 ? `${row.failures} publish failed` : '',
    row.consecutive ? '' : 'offsets not consecutive',
    row.saturated ? 'saturated' : '',
    row.foreignCores > 0.1 ? `⚠ ${row.foreignCores.toFixed(2)} cores foreign CPU` : ''
  ].filter(Boolean).join(', ')
  return [
    row.room === 'history' ? 'history (Redis stream)' : 'plain',
    row.room === 'history'
      ? { sequential: 'one at a time (await publish)', paced: `one at a time, ≥ ${interval} ms apart`, burst: `bursts of ${burst} concurrent publish` }[row.shape]
      : { sequential: 'broadcast, same times', paced: 'broadcast, same times', burst: `bursts of ${burst} broadcasts, same times` }[row.shape],
    row.messages.toLocaleString('en-US'),
    ms(p?.p50 ?? Number.NaN), ms(p?.p90 ?? Number.NaN), ms(p?.p99 ?? Number.NaN), ms(p?.max ?? Number.NaN),
    ms(row.e2e.p50), ms(row.e2e.p90), ms(row.e2e.p99), ms(row.e2e.max),
    rate(row.messagesPerSecond), rate(row.deliveriesPerSecond),
    checks === '' ? 'ok' : checks
  ]
}

function markdown (rows: readonly Row[], burst: number, interval: number): string {
  const lines = [`| ${HEAD.join(' | ')} |`, `|${HEAD.map((_, i) => i < 2 ? ' --- ' : ' ---: ').join('|')}|`]
  for (const row of rows) lines.push(`| ${cells(row, burst, interval).join(' | ')} |`)
  return lines.join('\n')
}

// ------------------------------------------------------------------ orchestrator

function argument (argv: string[], name: string, fallback: number): number {
  const given = argv.find((arg) => arg.startsWith(`--${name}=`))
  if (given === undefined) return fallback
  const value = Number(given.slice(name.length + 3))
  if (!Number.isSafeInteger(value) || value < 1) throw new Error(`--${name} takes a positive integer`)
  return value
}

const children: ChildProcess[] = []

function start (role: 'A' | 'B', prefix: string): ChildProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', __filename, 'instance', role, prefix], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    env: { ...process.env, NODE_ENV: 'production' }
  })
  children.push(child)
  return child
}

async function redisInfo (): Promise<{ pid: number | null, version: string } | null> {
  const { Redis } = await import('ioredis')
  const client = new Redis(REDIS_URL, { lazyConnect: true, connectTimeout: 1000, maxRetriesPerRequest: 0, retryStrategy: () => null })
  client.on('error', () => {})
  try {
    await client.connect()
    const info = await client.info('server')
    const pid = /process_id:(\d+)/.exec(info)?.[1]
    const version = /redis_version:([^\r\n]+)/.exec(info)?.[1] ?? 'unknown'
    return { pid: pid === undefined ? null : Number(pid), version }
  } catch {
    return null
  } finally {
    client.disconnect()
  }
}

/** Deletes this run's keys (its prefix is its own). */
async function cleanUp (prefix: string): Promise<number> {
  const { Redis } = await import('ioredis')
  const client = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 })
  client.on('error', () => {})
  let deleted = 0
  try {
    let cursor = '0'
    do {
      const [next, keys] = await client.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000)
      cursor = next
      if (keys.length > 0) deleted += await client.del(...keys)
    } while (cursor !== '0')
  } finally {
    client.disconnect()
  }
  return deleted
}

async function orchestrate (argv: string[]): Promise<void> {
  const n = argument(argv, 'clients', 100)
  const count = argument(argv, 'messages', 1000)
  const burst = argument(argv, 'burst', 50)
  const repeats = argument(argv, 'repeats', 2)
  const interval = argument(argv, 'interval', 5)
  /** the paced rows: bounded in time too (at most 2 s a round) */
  const pacedCount = Math.min(count, Math.floor(2000 / interval))
  const write = !argv.includes('--no-write')
  const began = Date.now()
  const left = (): number => RUN_LIMIT_MS - (Date.now() - began)

  const redis = await redisInfo()
  if (redis === null) throw new Error(`No Redis answers at ${REDIS_URL}: start redis-server, or set REDIS_URL.`)
  const prefix = `nexus-bench-history-${Date.now().toString(36)}-${process.pid}`
  const startedAt = new Date()
  const loadBefore = os.loadavg()

  const a = start('A', prefix)
  const b = start('B', prefix)
  const clients = new Clients()
  const rows: Row[] = []
  try {
    const [, listening] = await Promise.all([request(a, { type: 'hello' }, 'listening', 20_000), request(b, { type: 'hello' }, 'listening', 20_000)])
    await clients.open(listening.port, n, 20_000)
    for (;;) {
      const sizes = await request(b, { type: 'sizes' }, 'sizes', 5000)
      if (sizes.history === n && sizes.plain === n) break
      if (left() < RUN_LIMIT_MS - 25_000) throw new Error(`B's rooms hold ${sizes.history} and ${sizes.plain} of ${n} clients`)
      await sleep(20)
    }
    const ours = [process.pid, a.pid as number, b.pid as number, ...(redis.pid === null ? [] : [redis.pid])]

    let nextRound = 1
    const round = async (room: Room, shape: Shape, messages: number, calls: number[]): Promise<{ result: RoundResult, expectation: Expectation, foreignCores: number }> => {
      const id = nextRound++
      const per = shape === 'burst' ? burst : 1
      const { expectation, arrived } = clients.expect(id, messages)
      const before = snapshot(ours)
      const result = room === 'history'
        ? await request(a, { type: 'history', round: id, count: messages, burst: per, interval: shape === 'paced' ? interval : 0 }, 'done', Math.max(1000, left())) as unknown as RoundResult
        : await request(a, { type: 'plain', round: id, count: messages, burst: per, calls }, 'done', Math.max(1000, left())) as unknown as RoundResult
      let timer: NodeJS.Timeout | undefined
      await Promise.race([arrived, new Promise((resolve) => { timer = setTimeout(resolve, Math.max(0, Math.min(DRAIN_LIMIT_MS, left()))) })])
      clearTimeout(timer)
      clients.stop()
      const noise = procAvailable() ? noiseBetween(before, snapshot(ours), ours) : null
      return { result, expectation, foreignCores: noise?.foreignCores ?? Number.NaN }
    }

    // Warm-up: B's subscriptions in place, every path's code optimised; not counted.
    for (const shape of ['sequential', 'burst'] as const) {
      const warm = await round('history', shape, Math.min(count, 200), [])
      await round('plain', shape, Math.min(count, 200), warm.result.calls)
    }
    const countOf = (shape: Shape): number => shape === 'paced' ? pacedCount : count

    /** The samples of every repeat, per room and shape. */
    const pooled = new Map<string, { publish: number[], e2e: Float64Array[], messages: number, missing: number, duplicates: number, failures: number, consecutive: boolean, saturated: boolean, wallMs: number, deliveryMs: number, foreign: number[] }>()
    for (let r = 0; r < repeats; r++) {
      for (const shape of SHAPES) {
        if (left() < 5000) break
        const history = await round('history', shape, countOf(shape), [])
        const plain = await round('plain', shape, countOf(shape), history.result.calls)
        for (const [room, { result, expectation, foreignCores }] of [['history', history], ['plain', plain]] as const) {
          const key = `${room}.${shape}`
          const entry = pooled.get(key) ?? { publish: [], e2e: [], messages: 0, missing: 0, duplicates: 0, failures: 0, consecutive: true, saturated: false, wallMs: 0, deliveryMs: 0, foreign: [] }
          pooled.set(key, entry)
          entry.publish.push(...result.publish)
          entry.e2e.push(expectation.e2e)
          entry.messages += countOf(shape)
          entry.missing += expectation.e2e.length - expectation.received
          entry.duplicates += expectation.duplicates
          entry.failures += result.failures
          entry.consecutive &&= result.consecutive
          entry.wallMs += result.wallMs
          const deliveryMs = (expectation.lastArrival - expectation.firstCall) / 1e6
          entry.deliveryMs += deliveryMs
          // A's first call is the round's earliest `t`: what came after A was done is the queue behind it.
          const drainMs = deliveryMs - result.wallMs
          entry.saturated ||= drainMs > 20 && drainMs > 0.1 * result.wallMs
          entry.foreign.push(foreignCores)
          if (result.firstError !== undefined) process.stderr.write(`${room} ${shape}: ${result.failures} publish failed, first: ${result.firstError}\n`)
        }
        process.stderr.write(`[${((Date.now() - began) / 1000).toFixed(1)}s] repeat ${r + 1}/${repeats}, ${shape}: history and plain done\n`)
      }
    }

    for (const shape of SHAPES) {
      for (const room of ['history', 'plain'] as const) {
        const entry = pooled.get(`${room}.${shape}`)
        if (entry === undefined) continue
        const all = new Float64Array(entry.e2e.reduce((sum, part) => sum + part.length, 0))
        let at = 0
        for (const part of entry.e2e) {
          all.set(part, at)
          at += part.length
        }
        const messagesPerSecond = entry.messages / (entry.wallMs / 1000)
        const deliveriesPerSecond = (entry.messages * n - entry.missing) / (entry.deliveryMs / 1000)
        rows.push({
          room,
          shape,
          messages: entry.messages,
          publish: room === 'history' ? percentiles(entry.publish) : null,
          e2e: percentiles(all),
          messagesPerSecond,
          deliveriesPerSecond,
          saturated: entry.saturated,
          missing: entry.missing,
          duplicates: entry.duplicates,
          failures: entry.failures,
          consecutive: entry.consecutive,
          foreignCores: Math.max(...entry.foreign)
        })
      }
    }
  } finally {
    clients.close()
    await Promise.all([a, b].map(async (child) => {
      try {
        await request(child, { type: 'close' }, 'closed', 5000)
      } catch {}
      child.disconnect()
    }))
    try {
      await cleanUp(prefix)
    } catch (error) {
      process.stderr.write(`could not delete the keys ${prefix}:*: ${(error as Error).message}\n`)
    }
  }

  const wallSeconds = (Date.now() - began) / 1000
  const environment = `node ${process.version}, ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'unknown'}, Redis ${redis.version} at ${REDIS_URL}, not pinned; load average before ${loadBefore.map((l) => l.toFixed(2)).join(' ')}`
  const caption = `History room latency through the Redis adapter, ${startedAt.toISOString().slice(0, 16).replace('T', ' ')} UTC: ${n} raw ws clients on instance B, publisher on instance A, ${repeats} repeat(s) of ${count.toLocaleString('en-US')} messages per row, pooled; latencies in ms.`
  const table = markdown(rows, burst, interval)
  const notes = [
    'publish: `await manager.publish(\'hist\', data)` on A, call → resolved (the plain room: `broadcast`, which returns at once, at the moments of the history round before it).',
    `end-to-end: A's call → the message received by a client on B; one sample per client and message (${n} per message).`,
    'msg/s: messages ÷ A\'s first call → last resolved (history) or sent (plain); deliveries/s: messages × clients ÷ A\'s first call → last arrival.',
    'saturated: in a round, the last message arrived more than 20 ms and 10 % of A\'s time after A was done: B and its clients fell behind the publisher, and the end-to-end figures of that row are mostly queueing, not the path.',
    `stray messages: ${clients.stray}, unexpected closes: ${clients.closed}; wall time ${wallSeconds.toFixed(0)} s.`
  ]
  const text = `${caption}\n\n${environment}\n\n${table}\n\n${notes.map((note) => `- ${note}`).join('\n')}\n`
  console.log(`\n${text}`)
  if (!write) return
  const results = path.join(__dirname, 'results')
  mkdirSync(results, { recursive: true })
  const stamp = startedAt.toISOString().replace(/:/g, '-').replace(/\.\d+Z$/, 'Z')
  const base = path.join(results, `${stamp}-history-latency`)
  writeFileSync(`${base}.md`, text)
  writeFileSync(`${base}.json`, JSON.stringify({
    date: startedAt.toISOString(),
    command: 'npm run bench:history',
    wallSeconds,
    environment: { node: process.version, cpus: `${os.cpus().length} × ${os.cpus()[0]?.model ?? 'unknown'}`, redis: redis.version, loadAverageBefore: loadBefore, loadAverageAfter: os.loadavg() },
    plan: { clients: n, messages: count, pacedMessages: pacedCount, intervalMs: interval, burst, repeats, policy: POLICIES[HISTORY_ROOM] },
    stray: clients.stray,
    closedUnexpectedly: clients.closed,
    rows
  }, null, 2) + '\n')
  console.log(`written: ${['md', 'json'].map((ext) => path.relative(path.join(__dirname, '..'), `${base}.${ext}`)).join(', ')}`)
}

// ------------------------------------------------------------------ entry

const [role, ...rest] = process.argv.slice(2)
if (role === 'instance') {
  // An instance ends with the orchestrator.
  process.on('disconnect', () => process.exit(0))
  instance(rest[0] as 'A' | 'B', rest[1]).catch((error: unknown) => {
    console.error(error)
    process.exit(1)
  })
} else {
  const limit = setTimeout(() => {
    console.error(`history-latency: not done within ${RUN_LIMIT_MS / 1000 + 5} s, stopping`)
    for (const child of children) child.kill('SIGKILL')
    process.exit(1)
  }, RUN_LIMIT_MS + 5000)
  orchestrate(process.argv.slice(2)).then(() => {
    clearTimeout(limit)
    process.exit(0)
  }, (error: unknown) => {
    console.error(error instanceof Error ? error.message : error)
    for (const child of children) child.kill('SIGKILL')
    process.exit(1)
  })
}
