/**
 * One load client: `node --import tsx bench/client.ts <impl>`. Started by
 * bench/run.ts (pinned to the other CPU), it opens connections to one server
 * (ws clients, or socket.io-client with `transports: ['websocket']`), counts
 * what every socket receives and acknowledges complete steps over IPC; in the
 * inbound scenario it sends pings on every socket, as far as the server's
 * acknowledgements allow. The clients of `nexus-protocol` (all of them) and
 * `nexus-mixed` (every second one) are ws clients that offer the `nexus.v1`
 * subprotocol: they skip its `h` hello frame, take the payload of each `m`
 * frame (what follows the header's line feed) for the message, and send their
 * own messages as `m{}` frames. So do those of `nexus-history-protocol`,
 * which also take the `j` frame of each history room the server joins them
 * to (one that says the history broke is stray); its checked socket checks
 * that the offsets of each room's messages follow one another.
 */
import type { Duplex } from 'node:stream'
import { io, type Socket } from 'socket.io-client'
import { WebSocket, type RawData } from 'ws'
import { sendWithCredit } from './lib/credit'
import { serve, tell } from './lib/ipc'
import {
  AUTH_TOKEN, EVENT, FANOUT_ROOM, INBOUND_EVENT, PINGS_PER_STEP, ROOMS_PER_CLIENT, SUBPROTOCOL, burstRoomsOf, isHistoryImpl, isImpl, pingText, speaksProtocol,
  type Ack, type ClientReport, type Impl, type ConnectResult, type InboundReport, type SubscribeMessage
} from './lib/protocol'

interface Conn {
  index: number
  close (): void
  subscribe (message: SubscribeMessage): void
  /** sends ping number `n` */
  ping (n: number): void
  /** the connection's TCP socket (to cork it), or undefined when the client's internals are not what is expected */
  tcp (): Duplex | undefined
}

/** One measured round: `steps` steps of `per` messages for every socket. */
interface Round {
  kind: 'fanout' | 'burst'
  steps: number
  per: number
  ackEvery: number
  sockets: number
  /** how many sockets have received step k in full */
  perStep: Uint32Array
  complete: number
  lastAck: number
}

const MAX_SOCKETS = 20_000

const implName = process.argv[2] ?? ''
if (!isImpl(implName)) throw new Error(`unknown implementation ${implName}`)
const impl: Impl = implName

const conns: Conn[] = []
const counts = new Uint32Array(MAX_SOCKETS)
let round: Round | null = null
let mismatches = 0
let stray = 0
let closedUnexpectedly = 0
let closing = false
let nextIndex = 0
/** sockets that speak `nexus.v1` (the server selected it, its hello came first) */
let protocolSockets = 0

/**
 * The sockets whose messages are checked (parsing costs little for one or
 * two): socket 0, and the first `nexus.v1` socket when socket 0 is raw.
 */
const checkedProtocol = impl === 'nexus-mixed' ? 1 : 0

const LF = 0x0a
const KIND_MESSAGE = 0x6d // 'm'
const KIND_HELLO = 0x68 // 'h'
const KIND_JOIN = 0x6a // 'j'

/** The `nexus.v1` clients are in history rooms: `j` frames come, and messages carry positions. */
const history = isHistoryImpl(impl)

/** A position as a `j` or `m` header gives it. */
interface Head {
  r?: unknown
  o?: unknown
  e?: unknown
  recovered?: unknown
}

/** The checked socket's last position in each history room (from its `j` frame, then its messages). */
const positions = new Map<unknown, { o: number, e: unknown }>()

/**
 * The checked socket of `nexus-history-protocol`: a `j` frame sets a room's
 * position; each message of the room must have the next offset in the same
 * epoch (a `j` that says the history broke, or a gap, is a mismatch).
 */
function checkPosition (head: Head, join: boolean): void {
  const offset = typeof head.o === 'number' && typeof head.e === 'string' ? head.o : NaN
  if (join) {
    // Usually before a round (mismatches are counted per round): a broken one makes the room's next message a mismatch.
    positions.set(head.r, { o: head.recovered === false ? NaN : offset, e: head.e })
    return
  }
  const last = positions.get(head.r)
  if (last === undefined || offset !== last.o + 1 || head.e !== last.e) mismatches++
  positions.set(head.r, { o: offset, e: head.e })
}
/** `m{}` frames carry the client's messages (PROTOCOL.md). */
const MESSAGE_HEAD = 'm{}\n'

/**
 * Checks the content of a message a checked socket got; `room` is the room a
 * `nexus.v1` frame's header named (undefined for a raw socket), which must be
 * the room the message was broadcast to.
 */
function check (data: unknown, step: number, room?: unknown): void {
  if (round === null) return
  const message = (Buffer.isBuffer(data) ? JSON.parse(data.toString()) : data) as { type?: string, seq?: number, tick?: number, symbol?: string }
  const ok = round.kind === 'fanout'
    ? message.type === 'tick' && message.seq === step && (room === undefined || room === FANOUT_ROOM)
    : message.type === 'price_update' && message.tick === Math.ceil(step / round.per) && (room === undefined || room === `stock:${message.symbol}`)
  if (!ok) mismatches++
}

function received (index: number, data: unknown, room?: unknown): void {
  const count = ++counts[index]
  const current = round
  if (current === null) {
    stray++
    return
  }
  if (index === 0 || (room !== undefined && index === checkedProtocol)) check(data, count, room)
  if (count % current.per !== 0) return
  const step = count / current.per
  if (step > current.steps) {
    stray++
    return
  }
  if (++current.perStep[step] !== current.sockets) return
  // Every socket has step `step` (and so every earlier one: a socket's frames arrive in order).
  current.complete = step
  if (step === current.steps || step - current.lastAck >= current.ackEvery) {
    current.lastAck = step
    tell({ type: 'ack', complete: step } satisfies Ack)
  }
}

function lost (): void {
  if (!closing) closedUnexpectedly++
}

function openWs (port: number, path: string, index: number): Promise<Conn> {
  return new Promise((resolve, reject) => {
    const url = `ws://127.0.0.1:${port}${path}?i=${index}&token=${AUTH_TOKEN}`
    const socket = new WebSocket(url, { perMessageDeflate: false })
    const fail = (error: Error): void => {
      socket.terminate()
      reject(error)
    }
    socket.once('error', fail)
    socket.once('unexpected-response', (_req, res) => fail(new Error(`HTTP ${res.statusCode}`)))
    socket.once('open', () => {
      socket.off('error', fail)
      socket.on('error', () => {})
      socket.on('message', (data: RawData) => received(index, data))
      socket.on('close', lost)
      resolve({
        index,
        close: () => socket.terminate(),
        subscribe: (message) => socket.send(JSON.stringify(message)),
        ping: (n) => socket.send(pingText(n)),
        // ws's own field: the net.Socket under the WebSocket.
        tcp: () => (socket as unknown as { _socket?: Duplex })._socket
      })
    })
  })
}

/**
 * A ws client that speaks `nexus.v1`: it resolves once the server selected
 * the subprotocol and its `h` hello frame arrived. Each `m` frame's payload
 * (what follows the first line feed) is then handled as a raw client's
 * message; for a checked socket, the header is parsed too. Any other frame,
 * or a second hello, counts as stray (the round fails).
 */
function openProtocol (port: number, path: string, index: number): Promise<Conn> {
  return new Promise((resolve, reject) => {
    const url = `ws://127.0.0.1:${port}${path}?i=${index}&token=${AUTH_TOKEN}`
    const socket = new WebSocket(url, SUBPROTOCOL, { perMessageDeflate: false })
    const checked = index === checkedProtocol
    let hello = false
    const fail = (error: Error): void => {
      socket.terminate()
      reject(error)
    }
    const conn: Conn = {
      index,
      close: () => socket.terminate(),
      subscribe: (message) => socket.send(MESSAGE_HEAD + JSON.stringify(message)),
      ping: (n) => socket.send(MESSAGE_HEAD + pingText(n)),
      tcp: () => (socket as unknown as { _socket?: Duplex })._socket
    }
    socket.once('error', fail)
    socket.once('unexpected-response', (_req, res) => fail(new Error(`HTTP ${res.statusCode}`)))
    socket.once('open', () => {
      if (socket.protocol !== SUBPROTOCOL) fail(new Error(`the server did not select ${SUBPROTOCOL} (got "${socket.protocol}")`))
    })
    socket.once('close', (code) => {
      if (!hello) fail(new Error(`closed with ${code} before the hello`))
    })
    // Listening from the start: the hello may come in the same read as the handshake's answer.
    socket.on('message', (data: RawData) => {
      const frame = data as Buffer
      const kind = frame[0]
      if (kind === KIND_MESSAGE && hello) {
        const end = frame.indexOf(LF)
        const payload = frame.subarray(end + 1)
        if (!checked) {
          received(index, payload)
          return
        }
        const head = JSON.parse(frame.toString('utf8', 1, end)) as Head
        if (history && round !== null) checkPosition(head, false)
        received(index, payload, head.r ?? null)
      } else if (kind === KIND_JOIN && hello && history) {
        // The server joined this socket to a history room (onConnect, the subscribe message): its position
        // there. One that says the room's history broke (`recovered: false`) is stray: the round fails.
        const end = frame.indexOf(LF)
        const head = JSON.parse(frame.toString('utf8', 1, end === -1 ? frame.length : end)) as Head
        if (head.recovered === false) stray++
        if (checked) checkPosition(head, true)
      } else if (kind === KIND_HELLO && !hello) {
        hello = true
        protocolSockets++
        socket.off('error', fail)
        socket.on('error', () => {})
        socket.on('close', lost)
        resolve(conn)
      } else {
        stray++
      }
    })
  })
}

function openSocketIo (port: number, index: number): Promise<Conn> {
  return new Promise((resolve, reject) => {
    const socket: Socket = io(`http://127.0.0.1:${port}`, {
      transports: ['websocket'],
      forceNew: true,
      reconnection: false,
      timeout: 20_000,
      query: { i: String(index), token: AUTH_TOKEN }
    })
    socket.once('connect_error', (error) => {
      socket.disconnect()
      reject(error)
    })
    socket.once('connect', () => {
      socket.on(EVENT, (data: unknown) => received(index, data))
      socket.on('disconnect', lost)
      resolve({
        index,
        close: () => socket.disconnect(),
        subscribe: (message) => socket.emit('subscribe', message.rooms),
        ping: (n) => socket.emit(INBOUND_EVENT, { type: 'ping', n }),
        // engine.io-client's websocket transport holds a ws WebSocket in `ws`; ws's `_socket` is its net.Socket.
        tcp: () => (socket.io.engine?.transport as unknown as { ws?: { _socket?: Duplex } } | undefined)?.ws?._socket
      })
    })
  })
}

function open (port: number, path: string, index: number): Promise<Conn> {
  if (impl === 'socket.io') return openSocketIo(port, index)
  return speaksProtocol(impl, index) ? openProtocol(port, path, index) : openWs(port, path, index)
}

/** Opens `n` connections, at most `concurrency` handshakes in flight, within `timeoutMs`. */
function connect ({ port, path, n, concurrency, timeoutMs }: { port: number, path: string, n: number, concurrency: number, timeoutMs: number }): Promise<ConnectResult> {
  if (conns.length + n > MAX_SOCKETS) throw new Error(`at most ${MAX_SOCKETS} sockets per client`)
  closing = false
  const start = process.hrtime.bigint()
  return new Promise((resolve) => {
    let started = 0
    let opened = 0
    let failed = 0
    let firstError: string | undefined
    let done = false
    const finish = (): void => {
      if (done) return
      done = true
      clearTimeout(timer)
      const wallMs = Number(process.hrtime.bigint() - start) / 1e6
      resolve({ opened, failed, wallMs, ...(firstError === undefined ? {} : { firstError }) })
    }
    const timer = setTimeout(() => {
      firstError ??= `timed out after ${timeoutMs} ms`
      finish()
    }, timeoutMs)
    const next = (): void => {
      if (done) return
      if (started >= n) {
        if (opened + failed === n) finish()
        return
      }
      started++
      open(port, path, nextIndex++).then((conn) => {
        if (done) {
          conn.close()
          return
        }
        conns.push(conn)
        opened++
        next()
      }, (error: Error) => {
        failed++
        firstError ??= error.message
        next()
      })
    }
    for (let i = 0; i < Math.min(concurrency, n); i++) next()
  })
}

/** Why the sockets cannot be corked (the client's internals moved), or null when they can. */
function uncorkable (): string | null {
  const out = conns.filter((conn) => typeof conn.tcp()?.cork !== 'function').length
  return out === 0 ? null : `${impl}: the TCP socket of ${out} of ${conns.length} connections is out of reach (the client's internals changed): cannot cork`
}

/** The server's acknowledgements of the inbound round in progress (relayed by the orchestrator). */
let onServerAck: ((complete: number) => void) | null = null

/**
 * One inbound round: `steps` steps, each `PINGS_PER_STEP` pings on every
 * socket in one event-loop turn, each socket's corked until the next turn (so
 * that they leave in one write; socket.io-client writes all but the first on
 * process.nextTick), at most `window` steps beyond what the server has
 * acknowledged; resolves when the server acknowledged every ping, or at
 * `timeoutMs`.
 */
async function inbound ({ steps, window, timeoutMs }: { steps: number, window: number, timeoutMs: number }): Promise<InboundReport> {
  if (onServerAck !== null) throw new Error('an inbound round is already running')
  const problem = uncorkable()
  if (problem !== null) throw new Error(problem)
  const n = conns.length
  const perStep = n * PINGS_PER_STEP
  const sockets = conns.map((conn) => conn.tcp() as Duplex)
  stray = 0
  let acked = 0
  const credit = sendWithCredit(steps, window, timeoutMs, (step) => {
    const first = (step - 1) * PINGS_PER_STEP + 1
    for (let i = 0; i < n; i++) {
      sockets[i].cork()
      const conn = conns[i]
      for (let k = first; k < first + PINGS_PER_STEP; k++) conn.ping(k)
    }
  }, () => {
    for (const tcp of sockets) tcp.uncork()
  })
  // The server counts pings; the window counts steps.
  onServerAck = (complete) => {
    acked = complete
    credit.acknowledge(Math.floor(complete / perStep))
  }
  const { timedOut, sent } = await credit.done
  onServerAck = null
  return { sockets: n, sent: sent * perStep, acked, timedOut, stray, closedUnexpectedly }
}

serve({
  connect,
  uncorkable,
  inbound,
  subscribe: () => {
    for (const conn of conns) conn.subscribe({ type: 'subscribe', rooms: burstRoomsOf(conn.index) })
    return conns.length
  },
  closeAll: () => {
    closing = true
    for (const conn of conns) conn.close()
    const closed = conns.length
    conns.length = 0
    nextIndex = 0
    protocolSockets = 0
    positions.clear()
    return closed
  },
  prepare: ({ kind, steps, ackEvery }: { kind: 'fanout' | 'burst', steps: number, ackEvery: number }) => {
    counts.fill(0)
    mismatches = 0
    stray = 0
    round = {
      kind,
      steps,
      per: kind === 'fanout' ? 1 : ROOMS_PER_CLIENT,
      ackEvery,
      sockets: conns.length,
      perStep: new Uint32Array(steps + 1),
      complete: 0,
      lastAck: 0
    }
  },
  report: (): ClientReport => {
    const current = round
    round = null
    let total = 0
    for (const conn of conns) total += counts[conn.index]
    const per = current?.per ?? 1
    return {
      sockets: conns.length,
      received: total,
      expected: current === null ? 0 : current.steps * per * conns.length,
      complete: current?.complete ?? 0,
      mismatches,
      stray,
      closedUnexpectedly,
      protocolSockets
    }
  }
}, (message: Ack) => {
  if (message?.type === 'ack' && onServerAck !== null) onServerAck(message.complete)
})
tell({ type: 'ready' })
