/**
 * A process of the cross-instance benchmarks (`bench/redis-fanout.ts`,
 * `bench/redis-scaling.ts`), started by `bench/lib/redis-bench.ts`:
 *
 *   redis-child.ts server <impl> <prefix>    an instance (a publisher is one without clients)
 *   redis-child.ts clients <impl>            raw `ws` clients (their servers' ports come with `connect`)
 *
 * It answers the orchestrator's requests over IPC (bench/lib/ipc.ts) and
 * exits when the orchestrator goes away or sends SIGTERM. The Redis it uses
 * comes in BENCH_REDIS_URL, the cluster's startup nodes in BENCH_REDIS_CLUSTER.
 */
import { createServer } from 'node:http'
import WebSocket from 'ws'
import { serve, tell } from './lib/ipc'
import { now, ROOM, type Endpoint, type RedisImpl } from './lib/redis-bench'

const REDIS_URL = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379'
/** every message carries this much padding, about the size of a chat message */
const PAD = 'x'.repeat(100)

function clusterNodes (): Endpoint[] {
  const nodes = JSON.parse(process.env.BENCH_REDIS_CLUSTER ?? '[]') as Endpoint[]
  if (nodes.length === 0) throw new Error('no Redis Cluster nodes in BENCH_REDIS_CLUSTER')
  return nodes
}

function ready (emitter: { status: string, once: (event: string, listener: (...args: any[]) => void) => unknown }, what: string, ms = 30_000): Promise<void> {
  if (emitter.status === 'ready') return Promise.resolve()
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what} not ready within ${ms / 1000} s (status ${emitter.status})`)), ms)
    emitter.once('ready', () => {
      clearTimeout(timer)
      resolve()
    })
  })
}

// ------------------------------------------------------------------ servers

interface Broadcaster {
  port: number
  broadcast (data: Record<string, unknown>): void
}

async function nexusServer (impl: RedisImpl, prefix: string): Promise<Broadcaster> {
  const { default: Fastify } = await import('fastify')
  const { default: nexusRealtime, redisAdapter } = await import('fastify-nexus-realtime')
  // `{ cluster }`: a Redis Cluster's startup nodes; the adapter then uses sharded pub/sub (SSUBSCRIBE / SPUBLISH).
  const adapter = impl === 'nexus' ? redisAdapter({ url: REDIS_URL }, { prefix }) : redisAdapter({ cluster: clusterNodes() }, { prefix })
  const app = Fastify()
  await app.register(nexusRealtime, { adapter })
  const manager = app.getWebSocket()
  app.ws('/ws', {
    onConnect: (socket) => {
      manager.joinRoom(ROOM, socket)
      socket.send('{"ready":1}')
    }
  })
  await app.listen({ host: '127.0.0.1', port: 0 })
  return {
    port: (app.server.address() as { port: number }).port,
    broadcast: (data) => { manager.broadcast(ROOM, data) }
  }
}

async function socketIoServer (impl: RedisImpl, prefix: string): Promise<Broadcaster> {
  const { Server } = await import('socket.io')
  const server = createServer()
  let adapter
  if (impl === 'socket.io') {
    const { createAdapter } = await import('@socket.io/redis-adapter')
    const { Redis } = await import('ioredis')
    const pub = new Redis(REDIS_URL)
    const sub = pub.duplicate()
    adapter = createAdapter(pub, sub, { key: prefix })
    await Promise.all([ready(pub, 'pub'), ready(sub, 'sub')])
  } else {
    // Sharded pub/sub on a Redis Cluster, as @socket.io/redis-adapter documents
    // it for ioredis: SPUBLISH on a Cluster client; SSUBSCRIBE on one with
    // `shardedSubscribers`, which keeps a connection to each shard's master
    // and re-emits their `smessageBuffer` events on the Cluster object (the
    // adapter's util.js listens for those).
    const { createShardedAdapter } = await import('@socket.io/redis-adapter')
    const { Cluster } = await import('ioredis')
    const nodes = clusterNodes()
    const pub = new Cluster(nodes)
    const sub = new Cluster(nodes, { shardedSubscribers: true })
    for (const client of [pub, sub]) client.on('error', (error: Error) => console.error(`socket.io-sharded: ${error.message}`))
    adapter = createShardedAdapter(pub, sub, { channelPrefix: prefix })
    await Promise.all([ready(pub, 'pub cluster'), ready(sub, 'sub cluster')])
  }
  const io = new Server(server, { serveClient: false, adapter })
  io.on('connection', (socket) => {
    void socket.join(ROOM)
    socket.emit('ready')
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    port: (server.address() as { port: number }).port,
    broadcast: (data) => { io.to(ROOM).emit('m', data) }
  }
}

function cpu (): number {
  const usage = process.cpuUsage()
  return usage.user + usage.system
}

async function serverRole (impl: RedisImpl, prefix: string): Promise<void> {
  const server = impl.startsWith('nexus') ? await nexusServer(impl, prefix) : await socketIoServer(impl, prefix)
  let probe: { timer: NodeJS.Timeout, sent: number } | null = null
  const stopProbe = (): number => {
    if (probe === null) return 0
    clearInterval(probe.timer)
    const sent = probe.sent
    probe = null
    return sent
  }
  serve({
    cpu,
    /** `count` broadcasts in one event-loop turn */
    burst ({ round, count }: { round: number, count: number }) {
      const startAt = now()
      for (let i = 0; i < count; i++) server.broadcast({ r: round, i, t: now(), p: PAD })
      return { startAt, endAt: now() }
    },
    /** one broadcast every `interval` ms, on a schedule (a late timer does not shift the ones after it) */
    paced ({ round, count, interval }: { round: number, count: number, interval: number }) {
      return new Promise((resolve) => {
        const startAt = now()
        let i = 0
        const tick = (): void => {
          server.broadcast({ r: round, i, t: now(), p: PAD })
          if (++i === count) {
            resolve({ startAt, endAt: now() })
            return
          }
          setTimeout(tick, Math.max(0, startAt + i * interval - now()))
        }
        tick()
      })
    },
    /** one broadcast every `interval` ms until stopProbe (at most 60 s) */
    probe ({ round, interval }: { round: number, interval: number }) {
      stopProbe()
      const tick = (): void => {
        server.broadcast({ r: round, i: current.sent++, t: now(), p: PAD })
        if (current.sent * interval > 60_000) stopProbe()
      }
      const current = { sent: 0, timer: setInterval(tick, interval) }
      probe = current
    },
    stopProbe
  })
  tell({ type: 'ready', port: server.port })
}

// ------------------------------------------------------------------ clients

interface Expectation {
  round: number
  count: number
  /** 'all': every client gets messages 0 … count-1 of the round; 'any': every client gets one (a probe) */
  mode: 'all' | 'any'
  /** clients that are done */
  complete: number
  received: number
  outOfOrder: number
  latencies: number[] | null
  lastAt: number
  finished: boolean
  waiters: Array<() => void>
}

function clientsRole (impl: RedisImpl): void {
  const socketIo = impl.startsWith('socket.io')
  let n = 0
  let next: number[] = []
  const sockets: WebSocket[] = []
  let readyCount = 0
  let closed = 0
  let expected: Expectation | null = null

  const onData = (index: number, data: { r: number, i: number, t: number }): void => {
    const round = expected
    if (round === null || data.r !== round.round || round.finished) return
    round.received++
    if (round.mode === 'any') {
      if (next[index] === 0) {
        next[index] = 1
        if (++round.complete === n) finish(round)
      }
      return
    }
    if (data.i !== next[index]) round.outOfOrder++
    next[index] = data.i + 1
    if (round.latencies !== null) round.latencies.push(now() - data.t)
    if (next[index] === round.count && ++round.complete === n) finish(round)
  }
  const finish = (round: Expectation): void => {
    round.lastAt = now()
    round.finished = true
    for (const waiter of round.waiters.splice(0)) waiter()
  }

  /** client i connects to ports[i] */
  const connect = async ({ ports }: { ports: number[] }): Promise<void> => {
    if (n > 0) throw new Error('connected already')
    n = ports.length
    next = new Array<number>(n).fill(0)
    for (let index = 0; index < n; index++) {
      // socket.io: the websocket transport of engine.io v4, without polling first.
      const url = socketIo ? `ws://127.0.0.1:${ports[index]}/socket.io/?EIO=4&transport=websocket` : `ws://127.0.0.1:${ports[index]}/ws`
      const socket = new WebSocket(url)
      sockets.push(socket)
      socket.on('error', (error) => console.error(`client ${index}: ${error.message}`))
      socket.on('close', () => { closed++ })
      socket.on('message', (raw) => {
        const text = raw.toString()
        if (!socketIo) {
          const data = JSON.parse(text)
          if (data.ready === 1) readyCount++
          else onData(index, data)
          return
        }
        // engine.io: 0 open, 2 ping; socket.io: 40 connected, 42 an event.
        if (text.startsWith('42')) {
          const [event, data] = JSON.parse(text.slice(2))
          if (event === 'ready') readyCount++
          else onData(index, data)
        } else if (text === '2') {
          socket.send('3')
        } else if (text.startsWith('0')) {
          socket.send('40')
        }
      })
      // Connect in small batches so that the accept queues never overflow.
      if (index % 50 === 49) await new Promise((resolve) => setTimeout(resolve, 20))
    }
    const started = Date.now()
    for (;;) {
      if (readyCount === n) return
      if (closed > 0) throw new Error(`${closed} of ${n} clients closed while connecting`)
      if (Date.now() - started > 50_000) throw new Error(`only ${readyCount} of ${n} clients ready within 50 s`)
      await new Promise((resolve) => setTimeout(resolve, 10))
    }
  }

  serve({
    cpu,
    connect,
    expect ({ round, count, mode, latency }: { round: number, count: number, mode: 'all' | 'any', latency: boolean }) {
      next.fill(0)
      expected = { round, count, mode, complete: 0, received: 0, outOfOrder: 0, latencies: latency ? [] : null, lastAt: 0, finished: false, waiters: [] }
    },
    /** settles when the round is complete (the orchestrator bounds the wait) */
    result ({ round }: { round: number }) {
      const current = expected
      if (current === null || current.round !== round) throw new Error(`round ${round} is not the one expected`)
      return new Promise((resolve) => {
        const give = (): void => resolve({ lastAt: current.lastAt, outOfOrder: current.outOfOrder, received: current.received, latencies: current.latencies })
        if (current.finished) give()
        else current.waiters.push(give)
      })
    },
    progress () {
      return { complete: expected?.complete ?? 0, received: expected?.received ?? 0, clients: n, closed }
    }
  })
  tell({ type: 'ready' })
}

// ------------------------------------------------------------------ entry

/** Tells the orchestrator why this process cannot run, then exits (once the message is out). */
function fail (error: unknown): void {
  const message = error instanceof Error ? error.message : String(error)
  console.error(`redis-child ${process.argv.slice(2, 4).join(' ')}: ${message}`)
  setTimeout(() => process.exit(1), 1000).unref()
  if (process.connected) process.send?.({ type: 'failed', error: message }, () => process.exit(1))
  else process.exit(1)
}

// On SIGTERM a child exits normally (so that --cpu-prof can write its profile).
process.on('SIGTERM', () => process.exit(0))
const [role, impl, arg] = process.argv.slice(2) as [string, RedisImpl, string]
if (role === 'server') serverRole(impl, arg).catch(fail)
else if (role === 'clients') clientsRole(impl)
else fail(new Error(`unknown role ${role}`))
