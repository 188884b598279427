/**
 * What the orchestrator, the servers and the load clients agree on: the
 * implementations, the rooms, the messages and the IPC shapes.
 */

/** The implementations compared, raw ws first: every figure is a ratio to it. */
export const IMPLS = ['ws', 'fastify-websocket', 'socket.io', 'nexus'] as const

/**
 * What-if variants of raw ws, run only when named with `--impls`: they
 * measure what an optimisation of the plugin's hot path can gain before it
 * is written. `ws-frame-list` builds the frame once as ws's
 * `Sender.frame` returns it, header and payload apart (what socket.io does),
 * and hands it to each socket's sender; `ws-frame` joins header and payload
 * into one Buffer first, so each socket gets one plain write; `ws-frame-cork`
 * also corks each socket for the rest of the event-loop turn.
 */
export const PROBES = ['ws-frame-list', 'ws-frame', 'ws-frame-cork'] as const

/**
 * The plugin's server (the same process code as `nexus`) with load clients
 * that speak the `nexus.v1` subprotocol (PROTOCOL.md): `nexus-protocol`, every
 * client; `nexus-mixed`, every second one (odd indexes), the others raw. Run
 * by default, in the fan-out and burst scenarios only (`nexus-protocol` also
 * in the async fan-out).
 */
export const PROTOCOL_IMPLS = ['nexus-protocol', 'nexus-mixed'] as const

/**
 * The plugin registered with `roomPolicies` (HISTORY_POLICIES): every room
 * the broadcast scenarios write to keeps a memory history, so each broadcast
 * is numbered and kept before it is written. `nexus-history` has raw clients
 * (the same bytes on the wire as `nexus`); `nexus-history-protocol` has
 * `nexus.v1` clients, which get each message's position in its header
 * (`m{"r":…,"o":…,"e":…}`) and a `j` frame when the server joins them to a
 * history room. Run only when named with `--impls`, in the broadcast
 * scenarios only, and compared with `nexus` (and `nexus-protocol`): the
 * project's target is ≤ 1.15× the plain room's server CPU per delivered message.
 */
export const HISTORY_IMPLS = ['nexus-history', 'nexus-history-protocol'] as const

/**
 * The plugin registered with its Prometheus metrics on (`metrics`, a
 * prom-client registry of its own): the same server code and raw clients as
 * `nexus`, so the two compare what the metrics cost per delivered message
 * (the project's target: within 5 %). Run only when named with `--impls`, in
 * the broadcast and inbound scenarios.
 */
export const METRICS_IMPLS = ['nexus-metrics'] as const

export type Impl = typeof IMPLS[number] | typeof PROBES[number] | typeof PROTOCOL_IMPLS[number] | typeof HISTORY_IMPLS[number] | typeof METRICS_IMPLS[number]

export const LABELS: Readonly<Record<Impl, string>> = {
  ws: 'raw ws',
  'fastify-websocket': '@fastify/websocket',
  'socket.io': 'socket.io 4',
  nexus: 'fastify-nexus-realtime',
  'ws-frame-list': 'ws, frame once (2 buffers)',
  'ws-frame': 'ws, frame once (1 buffer)',
  'ws-frame-cork': 'ws, frame once + cork',
  'nexus-protocol': 'nexus, nexus.v1 clients',
  'nexus-mixed': 'nexus, ½ raw ½ nexus.v1',
  'nexus-history': 'nexus, history room',
  'nexus-history-protocol': 'nexus, history room, nexus.v1 clients',
  'nexus-metrics': 'nexus, Prometheus metrics on'
}

export function isImpl (value: string): value is Impl {
  return Object.hasOwn(LABELS, value)
}

export function isProtocolImpl (impl: Impl): impl is typeof PROTOCOL_IMPLS[number] {
  return (PROTOCOL_IMPLS as readonly string[]).includes(impl)
}

export function isHistoryImpl (impl: Impl): impl is typeof HISTORY_IMPLS[number] {
  return (HISTORY_IMPLS as readonly string[]).includes(impl)
}

export function isMetricsImpl (impl: Impl): impl is typeof METRICS_IMPLS[number] {
  return (METRICS_IMPLS as readonly string[]).includes(impl)
}

/** The WebSocket subprotocol of the plugin's framed protocol (PROTOCOL.md). */
export const SUBPROTOCOL = 'nexus.v1'

/** Whether client `index` of an implementation offers `nexus.v1`: all of `nexus-protocol`'s and `nexus-history-protocol`'s, the odd ones of `nexus-mixed`'s. */
export function speaksProtocol (impl: Impl, index: number): boolean {
  return impl === 'nexus-protocol' || impl === 'nexus-history-protocol' || (impl === 'nexus-mixed' && index % 2 === 1)
}

/** How many of `n` clients (indexes 0…n-1) of an implementation speak `nexus.v1`. */
export function protocolClients (impl: Impl, n: number): number {
  return impl === 'nexus-protocol' || impl === 'nexus-history-protocol' ? n : impl === 'nexus-mixed' ? Math.floor(n / 2) : 0
}

/**
 * The scenarios: `fanout` (one broadcast per event-loop turn, called
 * synchronously), `fanout-async` (one per turn, from an async function),
 * `burst`, `inbound`, `memory`, `connect`.
 */
export type Scenario = 'fanout' | 'fanout-async' | 'burst' | 'inbound' | 'memory' | 'connect'

/** The implementations of the async fan-out scenario (the others do not take part). */
export const ASYNC_FANOUT_IMPLS: readonly Impl[] = ['ws', 'nexus', 'nexus-protocol', 'nexus-history', 'nexus-history-protocol', 'nexus-metrics']

/**
 * Whether an implementation takes part in a scenario: the protocol and
 * history ones only in the broadcast scenarios, the metrics one in those and
 * the inbound one (where every message is timed).
 */
export function takesPart (impl: Impl, scenario: Scenario): boolean {
  if (scenario === 'fanout-async') return ASYNC_FANOUT_IMPLS.includes(impl)
  if (isMetricsImpl(impl)) return scenario === 'fanout' || scenario === 'burst' || scenario === 'inbound'
  if (isProtocolImpl(impl) || isHistoryImpl(impl)) return scenario === 'fanout' || scenario === 'burst'
  return true
}

/** The route every client connects to; the plugin also serves `AUTH_PATH` with `auth` on. */
export const PATH = '/ws'
export const AUTH_PATH = '/ws-auth'
export const AUTH_TOKEN = 'bench-secret'

/** Every connection joins this room on connect: the fan-out scenario broadcasts to it. */
export const FANOUT_ROOM = 'all'

/** The burst scenario's rooms, like the seed's stocks example: one per symbol. */
export const SYMBOLS = ['AAPL', 'GOOGL', 'MSFT', 'AMZN', 'NVDA', 'META', 'TSLA', 'NFLX'] as const
export const BURST_ROOMS: readonly string[] = SYMBOLS.map((symbol) => `stock:${symbol}`)
/** Each client subscribes to this many of the burst rooms (distinct, overlapping with its neighbours'). */
export const ROOMS_PER_CLIENT = 3

/** The burst rooms of client `i`: three distinct rooms, so each room holds 3/8 of the clients. */
export function burstRoomsOf (i: number): string[] {
  const n = BURST_ROOMS.length
  return [BURST_ROOMS[i % n], BURST_ROOMS[(i + 1) % n], BURST_ROOMS[(i + 3) % n]]
}

/**
 * The `roomPolicies` of the history implementations' servers: the fan-out
 * room and every burst room (`stock:*`) keep their last 1,000 messages for
 * 60 s, in the plugin's memory store (no adapter).
 */
export const HISTORY_POLICY = { history: { size: 1000, ttl: 60_000 } } as const
export const HISTORY_POLICIES = { [FANOUT_ROOM]: HISTORY_POLICY, 'stock:*': HISTORY_POLICY } as const

/** The fan-out message: small JSON (about 90 bytes), built anew for every broadcast as an app would. */
export function tickMessage (seq: number): Record<string, unknown> {
  return { type: 'tick', seq, ts: Date.now(), room: FANOUT_ROOM, status: 'ok', load: 0.42 }
}

/** The burst message: the seed's `price_update`, with a deterministic price. */
export function priceUpdate (room: number, tick: number): Record<string, unknown> {
  return {
    type: 'price_update',
    symbol: SYMBOLS[room],
    price: (100 + ((tick * 37 + room * 101) % 900) + 0.25).toFixed(2),
    timestamp: new Date().toISOString(),
    tick
  }
}

/** The message a client sends to subscribe to rooms (socket.io: the `subscribe` event with the list). */
export interface SubscribeMessage {
  type: 'subscribe'
  rooms: string[]
}

/** socket.io event name of the broadcasts. */
export const EVENT = 'm'

/**
 * The inbound scenario's message, client to server: small JSON
 * (`{"type":"ping","n":123}`, n the ping's number on its socket, from 1),
 * counted by a synchronous handler. socket.io clients emit the object as the
 * `INBOUND_EVENT` event.
 */
export interface PingMessage {
  type: 'ping'
  n: number
}

/** socket.io event name of the inbound scenario's messages. */
export const INBOUND_EVENT = 'p'

/**
 * Pings per socket in one inbound step, sent back to back with the socket's
 * TCP socket corked, so that they leave in one write: the server reads
 * several frames at a time, as from a busy client, and what it spends per
 * message is its own processing more than one `read` per frame.
 */
export const PINGS_PER_STEP = 4

/** The text of a ping (ws clients), built without JSON.stringify: the client's cost is not what is measured. */
export function pingText (n: number): string {
  return `{"type":"ping","n":${n}}`
}

/** What a client sends the servers: room subscriptions and, in the inbound scenario, pings. */
export type InboundMessage = SubscribeMessage | PingMessage

// ---------------------------------------------------------------- IPC

/** A request from the orchestrator to a child. */
export interface Request {
  id: number
  cmd: string
  args?: unknown
}

/** A child's answer to a request. */
export interface Response {
  id: number
  result?: unknown
  error?: string
}

/**
 * Flow control of the load: a client reports how many steps (messages in
 * fan-out, ticks in burst) every one of its sockets has received; the
 * orchestrator relays it to the server, which sends at most `window` steps
 * beyond it. In the inbound scenario it goes the other way: the server
 * reports how many pings its handler has counted, and the client sends at
 * most `window` steps (PINGS_PER_STEP pings per socket each) beyond it.
 * Nothing buffers without bound.
 */
export interface Ack {
  type: 'ack'
  complete: number
}

/** What a server or client sends once it is listening / ready. */
export interface Ready {
  type: 'ready'
  port?: number
}

/** Server CPU and wall time of one measured interval. */
export interface Timing {
  cpuUs: number
  wallMs: number
  /** true when the interval hit its time bound before the work was done */
  timedOut: boolean
  /** start and end of the interval on the monotonic clock, in µs (to cut a --cpu-prof profile) */
  startUs: number
  endUs: number
}

/** A fan-out or burst round's timing, with what the server counted meanwhile. */
export interface FlowTiming extends Timing {
  /** broadcasts made (calls of the implementation's broadcast) */
  broadcasts: number
  /**
   * `nexus.v1` forms of a message the plugin built (calls of
   * `Encoded.prototype.wrap` in dist/codec.js, patched in the benchmark
   * server only); null when the server is not the plugin, or when dist/ has
   * no such method to count.
   */
  encodings: number | null
  /**
   * messages the plugin stored in a history room (the growth of
   * `stats().historyAppended`); null when the server has no history rooms
   */
  stored: number | null
  /**
   * broadcasts the plugin's metrics observed (the growth of the count of
   * `nexus_broadcast_duration_seconds`); null when its metrics are off
   */
  metered: number | null
}

export interface MemorySample {
  heapUsed: number
  external: number
  arrayBuffers: number
  rss: number
}

export interface ClientReport {
  sockets: number
  received: number
  expected: number
  complete: number
  /** sampled messages (socket 0) whose content was not the expected one */
  mismatches: number
  /** messages that arrived outside a measured round, or `nexus.v1` frames other than one `h` and then `m` */
  stray: number
  closedUnexpectedly: number
  /** sockets that speak `nexus.v1`: the server selected it and its hello came first */
  protocolSockets: number
}

export interface ConnectResult {
  opened: number
  failed: number
  wallMs: number
  firstError?: string
}

/** What the server counted in one inbound round. */
export interface InboundResult {
  timing: Timing
  /** pings counted by the handler */
  received: number
  /** the sum of their `n`: checks that every ping was parsed whole */
  sum: number
}

/** The client's side of one inbound round. */
export interface InboundReport {
  sockets: number
  /** pings sent */
  sent: number
  /** the last count the server acknowledged */
  acked: number
  /** the client gave up waiting for the server's acknowledgements */
  timedOut: boolean
  /** messages the server sent during the round (there should be none) */
  stray: number
  closedUnexpectedly: number
}
