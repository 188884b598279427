/**
 * Cross-instance fan-out through Redis: fastify-nexus-realtime's Redis adapter
 * against socket.io 4 with @socket.io/redis-adapter, measured in the same run.
 *
 *   npm run build && npx tsx bench/redis-fanout.ts [--quick] [--repeats=N]
 *
 * Needs a Redis at REDIS_URL (default redis://127.0.0.1:6379). The plugin is
 * loaded as users load it (`fastify-nexus-realtime`, i.e. dist/).
 *
 * For each implementation, three processes besides Redis and this one:
 * instance A (the publisher, no clients), instance B (the subscriber) and a
 * client process with N clients connected to B, all in one room; loopback
 * only. A broadcast on A reaches B's clients only through Redis.
 *
 * - burst: A broadcasts M messages in one event-loop turn; the round ends
 *   when every client has all M (each client checks the order). Rate =
 *   N × M deliveries / round time, A's first broadcast to the last arrival.
 * - latency: A broadcasts one message every few ms, each carrying the time it
 *   was sent; p50 / p99 of the time until a client got it.
 *
 * Rounds of the two implementations are interleaved (the order alternates);
 * the table shows the median round of each, and the ratio is the median of
 * the paired rounds' ratios (each nexus round against the socket.io round
 * next to it in time), with their range: on a shared machine the load drifts. The clients are raw `ws` clients for
 * both, so that the client side costs the same: for socket.io they speak its
 * wire protocol (engine.io v4 framing, `42["m",…]` events) themselves.
 * Every loop is bounded in messages and every wait in time (60 s).
 * BENCH_PROF_DIR=<dir> makes every child write a CPU profile there.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { statSync } from 'node:fs'
import { createServer } from 'node:http'
import os from 'node:os'
import path from 'node:path'
import { performance } from 'node:perf_hooks'
import WebSocket from 'ws'

type Impl = 'nexus' | 'socket.io'
const IMPLS: Impl[] = ['nexus', 'socket.io']
const LABELS: Record<Impl, string> = { nexus: 'fastify-nexus-realtime + redisAdapter', 'socket.io': 'socket.io 4 + @socket.io/redis-adapter' }
const ROOM = 'fanout'
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'
const TIMEOUT = 60_000
/** every message carries this much padding, about the size of a chat message */
const PAD = 'x'.repeat(100)

/** A wall-clock time in ms with sub-ms precision, comparable between processes of one machine. */
const now = (): number => performance.timeOrigin + performance.now()

// ------------------------------------------------------------------ IPC

type Message = Record<string, any> & { type: string }

/** Sends a message to the orchestrator (children) or a child, and waits for a reply of `type`. */
function request (child: ChildProcess, message: Message, type: string, timeout = TIMEOUT): Promise<Message> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.off('message', onMessage)
      reject(new Error(`no "${type}" within ${timeout} ms after ${JSON.stringify(message)}`))
    }, timeout)
    const onMessage = (reply: Message): void => {
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
  process.send?.(message)
}

// ------------------------------------------------------------------ servers

interface Broadcaster {
  port: number
  broadcast (data: Record<string, unknown>): void
}

async function nexusServer (prefix: string): Promise<Broadcaster> {
  const { default: Fastify } = await import('fastify')
  const { default: nexusRealtime, redisAdapter } = await import('fastify-nexus-realtime')
  const app = Fastify()
  await app.register(nexusRealtime, { adapter: redisAdapter({ url: REDIS_URL }, { prefix }) })
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

async function socketIoServer (prefix: string): Promise<Broadcaster> {
  const { Server } = await import('socket.io')
  const { createAdapter } = await import('@socket.io/redis-adapter')
  const { Redis } = await import('ioredis')
  const pub = new Redis(REDIS_URL)
  const sub = pub.duplicate()
  const server = createServer()
  const io = new Server(server, { serveClient: false, adapter: createAdapter(pub, sub, { key: prefix }) })
  io.on('connection', (socket) => {
    void socket.join(ROOM)
    socket.emit('ready')
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  // The adapter subscribes when it is created; wait until it has.
  await new Promise<void>((resolve) => { if (sub.status === 'ready') resolve(); else sub.once('ready', () => resolve()) })
  return {
    port: (server.address() as { port: number }).port,
    broadcast: (data) => { io.to(ROOM).emit('m', data) }
  }
}

async function serverRole (impl: Impl, prefix: string): Promise<void> {
  const server = impl === 'nexus' ? await nexusServer(prefix) : await socketIoServer(prefix)
  process.on('message', (message: Message) => {
    if (message.type === 'burst') {
      for (let i = 0; i < message.count; i++) server.broadcast({ r: message.round, i, t: now(), p: PAD })
      reply({ type: 'sent', round: message.round })
    } else if (message.type === 'paced') {
      let i = 0
      const timer = setInterval(() => {
        server.broadcast({ r: message.round, i: i++, t: now(), p: PAD })
        if (i === message.count) {
          clearInterval(timer)
          reply({ type: 'sent', round: message.round })
        }
      }, message.interval)
    }
  })
  reply({ type: 'listening', port: server.port })
}

// ------------------------------------------------------------------ clients

interface Expectation {
  round: number
  count: number
  /** clients that have all `count` messages of the round */
  complete: number
  outOfOrder: number
  latencies: number[] | null
}

async function clientsRole (impl: Impl, port: number, n: number): Promise<void> {
  let ready = 0
  let expected: Expectation | null = null
  const next = new Array<number>(n).fill(0)
  const sockets: WebSocket[] = []

  const onData = (index: number, data: any): void => {
    const round = expected
    if (round === null || data.r !== round.round) return
    if (data.i !== next[index]) round.outOfOrder++
    next[index] = data.i + 1
    if (round.latencies !== null) round.latencies.push(now() - data.t)
    if (next[index] === round.count && ++round.complete === n) {
      reply({ type: 'done', round: round.round, outOfOrder: round.outOfOrder, latencies: round.latencies })
      expected = null
    }
  }

  for (let index = 0; index < n; index++) {
    // socket.io: the websocket transport of engine.io v4, without polling first.
    const url = impl === 'nexus' ? `ws://127.0.0.1:${port}/ws` : `ws://127.0.0.1:${port}/socket.io/?EIO=4&transport=websocket`
    const socket = new WebSocket(url)
    sockets.push(socket)
    socket.on('error', (err) => { throw err })
    socket.on('message', (raw) => {
      const text = raw.toString()
      if (impl === 'nexus') {
        const data = JSON.parse(text)
        if (data.ready === 1) ready++
        else onData(index, data)
        return
      }
      // engine.io: 0 open, 2 ping; socket.io: 40 connected, 42 an event.
      if (text.startsWith('42')) {
        const [event, data] = JSON.parse(text.slice(2))
        if (event === 'ready') ready++
        else onData(index, data)
      } else if (text === '2') {
        socket.send('3')
      } else if (text.startsWith('0')) {
        socket.send('40')
      }
    })
    // Connect in small batches so that the accept queue never overflows.
    if (index % 50 === 49) await new Promise((resolve) => setTimeout(resolve, 20))
  }
  await new Promise<void>((resolve, reject) => {
    const started = Date.now()
    const timer = setInterval(() => {
      if (ready === n) {
        clearInterval(timer)
        resolve()
      } else if (Date.now() - started > TIMEOUT) {
        clearInterval(timer)
        reject(new Error(`only ${ready} of ${n} clients ready`))
      }
    }, 10)
  })

  process.on('message', (message: Message) => {
    if (message.type !== 'expect') return
    next.fill(0)
    expected = { round: message.round, count: message.count, complete: 0, outOfOrder: 0, latencies: message.latency === true ? [] : null }
    reply({ type: 'expecting', round: message.round })
  })
  reply({ type: 'ready' })
}

// ------------------------------------------------------------------ orchestrator

interface Setup {
  impl: Impl
  publisher: ChildProcess
  subscriber: ChildProcess
  clients: ChildProcess
}

function start (args: string[]): ChildProcess {
  // BENCH_PROF_DIR=<dir>: every child writes a CPU profile there (node --cpu-prof).
  const profile = process.env.BENCH_PROF_DIR === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_PROF_DIR}/${++started}-${args.slice(0, 2).join('-')}`]
  const child = spawn(process.execPath, [...profile, '--import', 'tsx', __filename, ...args], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  child.on('exit', (code, signal) => {
    if (code !== 0 && signal === null && !stopping) {
      console.error(`${args.join(' ')} exited with ${code ?? signal}`)
      process.exit(1)
    }
  })
  return child
}

let stopping = false
let started = 0
const children: ChildProcess[] = []

async function setup (impl: Impl, n: number, prefix: string): Promise<Setup> {
  const publisher = start(['server', impl, prefix])
  const subscriber = start(['server', impl, prefix])
  children.push(publisher, subscriber)
  const [, listening] = await Promise.all([
    request(publisher, { type: 'hello' }, 'listening'),
    request(subscriber, { type: 'hello' }, 'listening')
  ])
  const clients = start(['clients', impl, String(listening.port), String(n)])
  children.push(clients)
  await request(clients, { type: 'hello' }, 'ready')
  return { impl, publisher, subscriber, clients }
}

let nextRound = 1

/** One burst round: ms from the publish command until every client had every message. */
async function burst (s: Setup, count: number): Promise<{ ms: number, outOfOrder: number }> {
  const round = nextRound++
  await request(s.clients, { type: 'expect', round, count }, 'expecting')
  const done = request(s.clients, { type: 'noop' }, 'done')
  const started = now()
  await request(s.publisher, { type: 'burst', round, count }, 'sent')
  const result = await done
  return { ms: now() - started, outOfOrder: result.outOfOrder }
}

async function paced (s: Setup, count: number, interval: number): Promise<number[]> {
  const round = nextRound++
  await request(s.clients, { type: 'expect', round, count, latency: true }, 'expecting')
  const done = request(s.clients, { type: 'noop' }, 'done')
  await request(s.publisher, { type: 'paced', round, count, interval }, 'sent')
  return (await done).latencies
}

const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b)
  const middle = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
}
const percentile = (values: number[], p: number): number => {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]
}

async function redisAnswers (): Promise<boolean> {
  const { Redis } = await import('ioredis')
  const client = new Redis(REDIS_URL, { lazyConnect: true, connectTimeout: 1000, maxRetriesPerRequest: 0, retryStrategy: () => null })
  client.on('error', () => {})
  try {
    await client.connect()
    return (await client.ping()) === 'PONG'
  } catch {
    return false
  } finally {
    client.disconnect()
  }
}

async function orchestrate (argv: string[]): Promise<void> {
  const quick = argv.includes('--quick')
  const repeatsArg = argv.find((arg) => arg.startsWith('--repeats='))
  const repeats = repeatsArg === undefined ? (quick ? 3 : 7) : Number(repeatsArg.slice('--repeats='.length))
  const scenarios = quick
    ? [{ n: 100, m: 500 }, { n: 1000, m: 50 }]
    : [{ n: 100, m: 2000 }, { n: 1000, m: 200 }]
  const latency = quick ? { n: 100, count: 100, interval: 5 } : { n: 100, count: 400, interval: 5 }

  if (!await redisAnswers()) {
    console.error(`No Redis answers at ${REDIS_URL}: start redis-server, or set REDIS_URL.`)
    process.exit(1)
  }
  console.log(`Cross-instance fan-out through Redis (${REDIS_URL}), ${repeats} rounds each, median; node ${process.version}, ${os.cpus().length} CPUs (${os.cpus()[0]?.model ?? 'unknown'})`)
  console.log(`Measured: ${codeState()}`)
  console.log('A publishes, B\'s clients receive: every message crosses Redis.\n')

  const rows: string[][] = []
  const ratios: Array<{ label: string, ratio: number, low: number, high: number }> = []
  for (const { n, m } of scenarios) {
    const prefix = `bench-${process.pid}-${n}`
    const setups = [await setup('nexus', n, `${prefix}-nexus`), await setup('socket.io', n, `${prefix}-sio`)]
    // Warm-up: subscriptions settled, code optimised.
    for (const s of setups) for (let i = 0; i < 2; i++) await burst(s, m)
    const times: Record<Impl, number[]> = { nexus: [], 'socket.io': [] }
    const disorder: Record<Impl, number> = { nexus: 0, 'socket.io': 0 }
    for (let r = 0; r < repeats; r++) {
      for (const s of r % 2 === 0 ? setups : [...setups].reverse()) {
        const { ms, outOfOrder } = await burst(s, m)
        times[s.impl].push(ms)
        disorder[s.impl] += outOfOrder
      }
    }
    const rate = (impl: Impl): number => (n * m) / (median(times[impl]) / 1000)
    // Same deliveries in both: the rate ratio of a pair is the inverse ratio of its times.
    const paired = times.nexus.map((ms, r) => times['socket.io'][r] / ms)
    const ratio = median(paired)
    ratios.push({ label: `N=${n} M=${m}`, ratio, low: Math.min(...paired), high: Math.max(...paired) })
    for (const impl of IMPLS) {
      rows.push([`burst N=${n} M=${m}`, LABELS[impl], `${median(times[impl]).toFixed(1)} ms`, `${Math.round(rate(impl)).toLocaleString('en-US')} /s`, String(disorder[impl]), impl === 'nexus' ? `${ratio.toFixed(2)}× (${Math.min(...paired).toFixed(2)}–${Math.max(...paired).toFixed(2)})` : '1.00×'])
    }
    await stop(setups)
  }

  {
    const prefix = `bench-${process.pid}-latency`
    const setups = [await setup('nexus', latency.n, `${prefix}-nexus`), await setup('socket.io', latency.n, `${prefix}-sio`)]
    for (const s of setups) await burst(s, 100)
    const samples: Record<Impl, number[]> = { nexus: [], 'socket.io': [] }
    for (let r = 0; r < Math.min(repeats, 3); r++) {
      for (const s of r % 2 === 0 ? setups : [...setups].reverse()) samples[s.impl].push(...await paced(s, latency.count, latency.interval))
    }
    for (const impl of IMPLS) {
      const p50 = percentile(samples[impl], 0.5)
      const p99 = percentile(samples[impl], 0.99)
      rows.push([`latency N=${latency.n}, 1 per ${latency.interval} ms`, LABELS[impl], `p50 ${p50.toFixed(2)} ms`, `p99 ${p99.toFixed(2)} ms`, '-', impl === 'nexus' ? `${(percentile(samples['socket.io'], 0.5) / p50).toFixed(2)}× (p50)` : '1.00×'])
    }
    await stop(setups)
  }

  const header = ['scenario', 'implementation', 'time', 'deliveries', 'out of order', 'vs socket.io']
  const widths = header.map((title, i) => Math.max(title.length, ...rows.map((row) => row[i].length)))
  const line = (cells: string[]): string => cells.map((cell, i) => cell.padEnd(widths[i])).join('  ')
  console.log(line(header))
  console.log(widths.map((width) => '-'.repeat(width)).join('  '))
  for (const row of rows) console.log(line(row))
  console.log(`\nfastify-nexus-realtime / socket.io delivery rate through Redis (median of paired rounds, range): ${ratios.map(({ label, ratio, low, high }) => `${label} ${ratio.toFixed(2)}× (${low.toFixed(2)}–${high.toFixed(2)})`).join('; ')}. Above 1: nexus delivers faster.`)
}

/** Which code the run measured: the commit, whether lib/ had changes, when dist/ was built. */
function codeState (): string {
  const root = path.join(__dirname, '..')
  let commit = 'unknown commit'
  let dirty = ''
  try {
    commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: root, encoding: 'utf8' }).trim()
    dirty = execFileSync('git', ['status', '--porcelain', 'lib'], { cwd: root, encoding: 'utf8' }).trim() === '' ? '' : ' + uncommitted changes in lib/'
  } catch {}
  let built = 'missing'
  try {
    built = statSync(path.join(root, 'dist', 'index.js')).mtime.toISOString()
  } catch {}
  return `${commit}${dirty}, dist/ built ${built}`
}

async function stop (setups: Setup[]): Promise<void> {
  stopping = true
  for (const s of setups) {
    for (const child of [s.clients, s.publisher, s.subscriber]) {
      const exited = new Promise((resolve) => child.once('exit', resolve))
      child.kill('SIGTERM')
      await exited
    }
  }
  stopping = false
}

// ------------------------------------------------------------------ entry

const [role, ...rest] = process.argv.slice(2)
if (role === 'server' || role === 'clients') {
  // A child ends with the orchestrator; on SIGTERM it exits normally (so that --cpu-prof can write its profile).
  process.on('disconnect', () => process.exit(0))
  process.on('SIGTERM', () => process.exit(0))
  const run = role === 'server' ? serverRole(rest[0] as Impl, rest[1]) : clientsRole(rest[0] as Impl, Number(rest[1]), Number(rest[2]))
  run.catch((err) => {
    console.error(err)
    process.exit(1)
  })
} else {
  orchestrate(process.argv.slice(2)).then(() => process.exit(0), (err) => {
    console.error(err)
    for (const child of children) child.kill('SIGKILL')
    process.exit(1)
  })
}
