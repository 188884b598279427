/**
 * One benchmark server: `node --expose-gc --import tsx bench/server.ts <impl>`.
 * Started by bench/run.ts (pinned to its own CPU), listens on 127.0.0.1 port 0
 * and is driven over IPC. Every implementation does the same work: each
 * connection joins the `all` room on connect, joins the rooms a `subscribe`
 * message names, counts the `ping` messages it receives (the inbound
 * scenario) with the same synchronous handler, and leaves its rooms when it
 * closes. `nexus-protocol` and `nexus-mixed` run the plugin's server (their
 * clients differ); `nexus-history` and `nexus-history-protocol` run it with
 * `roomPolicies` giving the broadcast rooms a memory history, and count the
 * messages it stored; `nexus-metrics` runs it with its Prometheus metrics on
 * (a prom-client registry of its own), and counts the broadcasts they
 * observed. In every plugin server, the `nexus.v1` encodings the plugin
 * builds are counted (`countEncodings`).
 */
import { createServer, type Server as HttpServer } from 'node:http'
import { createRequire } from 'node:module'
import type { AddressInfo } from 'node:net'
import path from 'node:path'
import type { Duplex } from 'node:stream'
import { writeHeapSnapshot } from 'node:v8'
import Fastify from 'fastify'
import fastifyWebsocket from '@fastify/websocket'
import { Server as SocketIoServer } from 'socket.io'
import { WebSocket, WebSocketServer, type RawData } from 'ws'
import { Registry, type Histogram } from 'prom-client'
import nexusRealtime from 'fastify-nexus-realtime'
import { sendWithCredit } from './lib/credit'
import { serve, tell } from './lib/ipc'
import {
  AUTH_PATH, AUTH_TOKEN, BURST_ROOMS, EVENT, FANOUT_ROOM, HISTORY_POLICIES, INBOUND_EVENT, PATH, isImpl, priceUpdate, tickMessage,
  type Ack, type FlowTiming, type Impl, type InboundMessage, type InboundResult, type MemorySample, type PingMessage, type Timing
} from './lib/protocol'

/** What the driver needs from an implementation. */
interface Target {
  port: number
  count (): number
  roomSize (room: string): number
  broadcast (room: string, data: unknown): void
  close (): Promise<void>
  /** messages stored in history rooms so far (the plugin with `roomPolicies` only) */
  stored?: () => number
  /** broadcasts the plugin's metrics observed so far (the plugin with `metrics` only) */
  metered?: () => Promise<number>
}

// ------------------------------------------------------------ the inbound scenario's handler

/** Pings counted since the inbound round began, and the sum of their `n`. */
let pings = 0
let pingSum = 0
/** The count at which the driver acknowledges next (Infinity outside a round). */
let nextAck = Infinity

/**
 * What every implementation's message handler does with a ping: a trivial,
 * synchronous count. The acknowledgement (one IPC message every few thousand
 * pings) is the driver's, the same for all.
 */
function onPing (message: PingMessage): void {
  pingSum += message.n
  if (++pings === nextAck) pingProgress()
}

// ------------------------------------------------------------ raw ws and @fastify/websocket

/** How a ws-based server writes one broadcast to the sockets of a room. */
type Writer = (sockets: Iterable<WebSocket>, data: unknown) => void

/** The baseline an app writes without a library: stringify once, `send` to each OPEN socket. */
const sendEach: Writer = (sockets, data) => {
  const message = JSON.stringify(data)
  for (const socket of sockets) {
    if (socket.readyState === 1) socket.send(message)
  }
}

/** ws internals the probes use (socket.io's engine.io uses the same ones). */
interface WsInternals {
  _sender?: { _state?: number, sendFrame?: (list: Buffer[]) => void }
  _socket: Duplex
  _extensions: Record<string, unknown>
}
const { Sender } = WebSocket as unknown as {
  Sender: { frame (data: Buffer, options: { fin: boolean, opcode: number, mask: boolean, readOnly: boolean, rsv1: boolean }): Buffer[] }
}

/**
 * Probe: the frame built once per broadcast (header and payload joined in
 * one Buffer, or apart as ws makes them) and written to each socket; falls back to `send` when ws's
 * internals are not what it expects. With `cork`, each socket is corked at its
 * first write of the event-loop turn and uncorked on the next tick, so the
 * messages of a burst leave in one write.
 */
function frameOnce (cork: boolean, join = true): Writer {
  const corked: Duplex[] = []
  const uncorkAll = (): void => {
    for (const raw of corked) raw.uncork()
    corked.length = 0
  }
  return (sockets, data) => {
    const payload = Buffer.from(JSON.stringify(data))
    const list = Sender.frame(payload, { fin: true, opcode: 1, mask: false, readOnly: false, rsv1: false })
    const frame = join ? [Buffer.concat(list)] : list
    for (const socket of sockets) {
      if (socket.readyState !== 1) continue
      const internals = socket as unknown as WsInternals
      const sender = internals._sender
      if (sender?._state !== 0 || typeof sender.sendFrame !== 'function' || internals._extensions['permessage-deflate'] !== undefined) {
        socket.send(payload)
        continue
      }
      if (cork && internals._socket.writableCorked === 0) {
        internals._socket.cork()
        if (corked.push(internals._socket) === 1) process.nextTick(uncorkAll)
      }
      sender.sendFrame(frame)
    }
  }
}

/**
 * The rooms of the ws-based servers: a Map of room → Set of sockets, and a
 * broadcast loop (the writer) over the room's Set.
 */
class SetRooms {
  private readonly rooms = new Map<string, Set<WebSocket>>()
  private readonly write: Writer

  constructor (write: Writer = sendEach) {
    this.write = write
  }

  join (room: string, socket: WebSocket): void {
    let set = this.rooms.get(room)
    if (set === undefined) {
      set = new Set()
      this.rooms.set(room, set)
    }
    set.add(socket)
  }

  leaveAll (socket: WebSocket): void {
    for (const [room, set] of this.rooms) {
      if (set.delete(socket) && set.size === 0) this.rooms.delete(room)
    }
  }

  size (room: string): number {
    return this.rooms.get(room)?.size ?? 0
  }

  broadcast (room: string, data: unknown): void {
    const set = this.rooms.get(room)
    if (set !== undefined) this.write(set, data)
  }

  /** The connection handler both ws-based baselines share. */
  accept (socket: WebSocket): void {
    this.join(FANOUT_ROOM, socket)
    socket.on('message', (data: RawData) => {
      const message = JSON.parse(String(data)) as InboundMessage
      if (message.type === 'ping') onPing(message)
      else if (message.type === 'subscribe') for (const room of message.rooms) this.join(room, socket)
    })
    socket.on('close', () => this.leaveAll(socket))
    socket.on('error', () => {})
  }
}

function listen (server: HttpServer): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port))
  })
}

async function rawWs (write: Writer = sendEach): Promise<Target> {
  const server = createServer((_req, res) => {
    res.writeHead(404)
    res.end()
  })
  const wss = new WebSocketServer({ server })
  const rooms = new SetRooms(write)
  wss.on('connection', (socket) => rooms.accept(socket))
  const port = await listen(server)
  return {
    port,
    count: () => wss.clients.size,
    roomSize: (room) => rooms.size(room),
    broadcast: (room, data) => rooms.broadcast(room, data),
    close: async () => {
      for (const socket of wss.clients) socket.terminate()
      await new Promise<void>((resolve) => { wss.close(() => server.close(() => resolve())) })
    }
  }
}

async function fastifyWs (): Promise<Target> {
  const app = Fastify({ logger: false })
  await app.register(fastifyWebsocket)
  const rooms = new SetRooms()
  app.get(PATH, { websocket: true }, (socket) => rooms.accept(socket))
  await app.listen({ host: '127.0.0.1', port: 0 })
  return {
    port: (app.server.address() as AddressInfo).port,
    count: () => app.websocketServer.clients.size,
    roomSize: (room) => rooms.size(room),
    broadcast: (room, data) => rooms.broadcast(room, data),
    close: () => app.close()
  }
}

// ------------------------------------------------------------ socket.io

async function socketIo (): Promise<Target> {
  const server = createServer()
  const io = new SocketIoServer(server, { serveClient: false })
  io.on('connection', (socket) => {
    void socket.join(FANOUT_ROOM)
    socket.on('subscribe', (rooms: string[]) => { void socket.join(rooms) })
    socket.on(INBOUND_EVENT, onPing)
  })
  const port = await listen(server)
  return {
    port,
    count: () => io.engine.clientsCount,
    roomSize: (room) => io.sockets.adapter.rooms.get(room)?.size ?? 0,
    broadcast: (room, data) => { io.to(room).emit(EVENT, data) },
    close: () => new Promise<void>((resolve) => { void io.close(() => resolve()) })
  }
}

// ------------------------------------------------------------ this plugin, through its public entry

/** The `nexus.v1` forms of messages the plugin has built in this process; null when they cannot be counted. */
let encodings: number | null = null

/**
 * Counts the `nexus.v1` forms of messages the plugin builds, by wrapping
 * `Encoded.prototype.wrap` of its dist/codec.js: the module the plugin
 * itself loaded (next to the entry the package name resolves to, and already
 * in require's cache). `protocolFor` builds a message's protocol form at
 * most once per room and shares it among every protocol socket, so each call
 * of `wrap` is one encoding, whatever the number of sockets. Patched here,
 * in the benchmark server's process only; lib/ is not touched. When dist/
 * has no such method (the code moved), nothing is counted and the figure is
 * reported as missing, not as 0.
 */
function countEncodings (): void {
  const load = createRequire(__filename)
  const entry = load.resolve('fastify-nexus-realtime')
  const file = path.join(path.dirname(entry), 'codec.js')
  if (load.cache[entry] === undefined || load.cache[file] === undefined) {
    console.error(`bench server: ${path.relative(process.cwd(), file)} is not the codec the plugin loaded: protocol encodings are not counted`)
    return
  }
  type Wrap = (this: unknown, ...args: unknown[]) => unknown
  const { Encoded } = load(file) as { Encoded?: { prototype: { wrap?: Wrap } } }
  const wrap = Encoded?.prototype.wrap
  if (Encoded === undefined || typeof wrap !== 'function') {
    console.error('bench server: dist/codec.js has no Encoded.prototype.wrap: protocol encodings are not counted')
    return
  }
  let count = 0
  encodings = 0
  Encoded.prototype.wrap = function countedWrap (this: unknown, ...args: unknown[]): unknown {
    encodings = ++count
    return wrap.apply(this, args)
  }
}

/**
 * The plugin's server; with `history`, registered with HISTORY_POLICIES (the
 * broadcast rooms keep a memory history); with `metrics`, with its
 * Prometheus metrics on a registry of its own (nothing scrapes it during a
 * round: a scrape every 15 s or so costs per scrape, not per message).
 */
async function nexus (history = false, metrics = false): Promise<Target> {
  countEncodings()
  const app = Fastify({ logger: false })
  const registry = metrics ? new Registry() : null
  await app.register(nexusRealtime, {
    ...(history ? { roomPolicies: HISTORY_POLICIES } : {}),
    ...(registry === null ? {} : { metrics: { registry } })
  })
  const manager = app.getWebSocket()
  const handlers = {
    onConnect: (socket: WebSocket) => manager.joinRoom(FANOUT_ROOM, socket),
    onMessage: (socket: WebSocket, message: InboundMessage) => {
      if (message.type === 'ping') onPing(message)
      else if (message.type === 'subscribe') for (const room of message.rooms) manager.joinRoom(room, socket)
    }
  }
  app.ws(PATH, handlers)
  // The connection-rate scenario's route: auth runs before the upgrade, as in the seed's examples.
  app.ws<{ user: { id: string } }>(AUTH_PATH, {
    auth: (ctx) => {
      if (ctx.query.token !== AUTH_TOKEN) throw Object.assign(new Error('Invalid token'), { statusCode: 401 })
      return { id: String(ctx.query.i) }
    },
    ...handlers
  })
  await app.listen({ host: '127.0.0.1', port: 0 })
  return {
    port: (app.server.address() as AddressInfo).port,
    count: () => manager.connections,
    roomSize: (room) => manager.roomSize(room),
    broadcast: (room, data) => { manager.broadcast(room, data) },
    close: () => app.close(),
    ...(history ? { stored: () => manager.stats().historyAppended } : {}),
    ...(registry === null ? {} : { metered: async () => await broadcastsObserved(registry) })
  }
}

/** The broadcasts the metrics on `registry` observed: the count of nexus_broadcast_duration_seconds, over its room classes. */
async function broadcastsObserved (registry: Registry): Promise<number> {
  const histogram = registry.getSingleMetric('nexus_broadcast_duration_seconds') as Histogram | undefined
  if (histogram === undefined) return 0
  const { values } = await histogram.get()
  let count = 0
  for (const value of values) if (value.metricName === 'nexus_broadcast_duration_seconds_count') count += value.value
  return count
}

const FACTORIES: Record<Impl, () => Promise<Target>> = {
  ws: () => rawWs(),
  'fastify-websocket': fastifyWs,
  'socket.io': socketIo,
  nexus: () => nexus(),
  'ws-frame-list': () => rawWs(frameOnce(false, false)),
  'ws-frame': () => rawWs(frameOnce(false)),
  'ws-frame-cork': () => rawWs(frameOnce(true)),
  // The same server as `nexus`: only their clients differ.
  'nexus-protocol': () => nexus(),
  'nexus-mixed': () => nexus(),
  // The same again, its broadcast rooms with a memory history.
  'nexus-history': () => nexus(true),
  'nexus-history-protocol': () => nexus(true),
  // The same as `nexus`, with the Prometheus metrics on.
  'nexus-metrics': () => nexus(false, true)
}

// ------------------------------------------------------------ the driver

/** No measured interval runs longer than this, whatever the clients do. */
const ROUND_TIME_LIMIT_MS = 60_000

function nowUs (): number {
  return Number(process.hrtime.bigint() / 1000n)
}

/** Starts a measured interval; `stop()` gives its server CPU and wall time. */
function measure (): () => Timing {
  const cpu = process.cpuUsage()
  const startUs = nowUs()
  return () => {
    const used = process.cpuUsage(cpu)
    const endUs = nowUs()
    return { cpuUs: used.user + used.system, wallMs: (endUs - startUs) / 1000, timedOut: false, startUs, endUs }
  }
}

let onAck: ((complete: number) => void) | null = null
let marked: (() => Timing) | null = null
/** Broadcasts made since the server started. */
let broadcasts = 0
/** Messages the plugin stored in history rooms since it started; null when it has none. */
let stored: () => number | null = () => null
/** Broadcasts the plugin's metrics observed since it started; null when they are off. */
let metered: () => Promise<number | null> = async () => null

/**
 * Sends `steps` steps (one step = `send(step)`), at most `window` steps
 * beyond what every client has acknowledged, one step per event-loop turn,
 * and resolves when the last step is acknowledged or the time bound passes;
 * with the broadcasts made, the protocol encodings built and the history
 * messages stored meanwhile (read outside the measured interval).
 */
async function flow (steps: number, window: number, send: (step: number) => void): Promise<FlowTiming> {
  const broadcastsBefore = broadcasts
  const encodingsBefore = encodings
  const storedBefore = stored()
  const meteredBefore = await metered()
  const stop = measure()
  const credit = sendWithCredit(steps, window, ROUND_TIME_LIMIT_MS, send)
  onAck = credit.acknowledge
  const { timedOut } = await credit.done
  const timing = stop()
  onAck = null
  const storedAfter = stored()
  const meteredAfter = await metered()
  return {
    ...timing,
    timedOut,
    broadcasts: broadcasts - broadcastsBefore,
    encodings: encodings === null || encodingsBefore === null ? null : encodings - encodingsBefore,
    stored: storedAfter === null || storedBefore === null ? null : storedAfter - storedBefore,
    metered: meteredAfter === null || meteredBefore === null ? null : meteredAfter - meteredBefore
  }
}

/** The inbound round in progress: armed by `inboundStart`, over when the last ping is counted or the time bound passes. */
let inbound: { expected: number, ackEvery: number, finish: (timedOut: boolean) => void, done: Promise<Timing> } | null = null

/** Called by onPing at every `ackEvery`-th ping: tells the client (through the orchestrator) how many were counted. */
function pingProgress (): void {
  const round = inbound
  if (round === null) {
    nextAck = Infinity
    return
  }
  tell({ type: 'ack', complete: pings } satisfies Ack)
  if (pings >= round.expected) round.finish(false)
  else nextAck = Math.min(pings + round.ackEvery, round.expected)
}

/** Arms an inbound round: counts from zero and starts measuring; the client starts sending once this answered. */
function inboundStart ({ expected, ackEvery }: { expected: number, ackEvery: number }): void {
  if (inbound !== null) throw new Error('an inbound round is already armed')
  pings = 0
  pingSum = 0
  nextAck = Math.min(ackEvery, expected)
  const stop = measure()
  let settle!: (timing: Timing) => void
  const done = new Promise<Timing>((resolve) => { settle = resolve })
  const finish = (timedOut: boolean): void => {
    clearTimeout(timer)
    nextAck = Infinity
    settle({ ...stop(), timedOut })
  }
  const timer = setTimeout(() => finish(true), ROUND_TIME_LIMIT_MS)
  inbound = { expected, ackEvery, finish, done }
}

/** Resolves when the armed round is over: its timing, and what the handler counted. */
async function inboundEnd (): Promise<InboundResult> {
  if (inbound === null) throw new Error('inboundEnd() without inboundStart()')
  const timing = await inbound.done
  inbound = null
  return { timing, received: pings, sum: pingSum }
}

function gc (): void {
  const collect = (globalThis as { gc?: () => void }).gc
  if (collect === undefined) throw new Error('start the server with --expose-gc')
  collect()
  collect()
}

async function main (): Promise<void> {
  const impl = process.argv[2] ?? ''
  if (!isImpl(impl)) throw new Error(`unknown implementation ${impl}`)
  const target = await FACTORIES[impl]()
  if (target.stored !== undefined) stored = target.stored
  const observed = target.metered
  if (observed !== undefined) metered = observed
  const broadcast = (room: string, data: unknown): void => {
    broadcasts++
    target.broadcast(room, data)
  }
  /**
   * The async fan-out's step, as an app's async handler does it: await the
   * data (an async function; here it is at hand, as from a cache), then
   * broadcast, in the microtasks of the turn the step started in.
   */
  const loadTick = async (seq: number): Promise<Record<string, unknown>> => tickMessage(seq)
  const broadcastTickAsync = async (seq: number): Promise<void> => {
    const data = await loadTick(seq)
    broadcast(FANOUT_ROOM, data)
  }

  serve({
    count: () => target.count(),
    roomSizes: (rooms: string[]) => rooms.map((room) => target.roomSize(room)),
    mark: () => { marked = measure() },
    since: () => {
      if (marked === null) throw new Error('since() without mark()')
      return marked()
    },
    memory: async (): Promise<MemorySample> => {
      // Let pending close/connect work finish, then collect twice (weak refs, finalizers).
      await new Promise((resolve) => setTimeout(resolve, 50))
      gc()
      await new Promise((resolve) => setImmediate(resolve))
      gc()
      const { heapUsed, external, arrayBuffers, rss } = process.memoryUsage()
      return { heapUsed, external, arrayBuffers, rss }
    },
    heapSnapshot: ({ file }: { file: string }) => {
      gc()
      return writeHeapSnapshot(file)
    },
    fanout: ({ steps, window }: { steps: number, window: number }) =>
      flow(steps, window, (seq) => broadcast(FANOUT_ROOM, tickMessage(seq))),
    // One broadcast per turn too, made by an async function after an await.
    // A broadcast that throws rejects it: an unhandled rejection ends the server, and the round fails.
    'fanout-async': ({ steps, window }: { steps: number, window: number }) =>
      flow(steps, window, (seq) => { void broadcastTickAsync(seq) }),
    // Every room updated in the same event-loop turn, like the seed's setInterval over the stocks.
    burst: ({ steps, window }: { steps: number, window: number }) =>
      flow(steps, window, (tick) => {
        for (let room = 0; room < BURST_ROOMS.length; room++) broadcast(BURST_ROOMS[room], priceUpdate(room, tick))
      }),
    inboundStart,
    inboundEnd,
    exit: async () => {
      await target.close()
      // process.exit (not a signal) so that --cpu-prof writes its profile.
      setImmediate(() => process.exit(0))
    }
  }, (message: Ack) => {
    if (message?.type === 'ack' && onAck !== null) onAck(message.complete)
  })
  tell({ type: 'ready', port: target.port })
}

main().catch((error: unknown) => {
  console.error(error)
  process.exit(1)
})
