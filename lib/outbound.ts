import WebSocket from 'ws'
import type { Encoded } from './codec'
import { OPEN } from './constants'
import { DIRECT_HEAD, PROTOCOL } from './protocol'

/**
 * The write path of a socket, and every use of ws's internals, in one file:
 * the probe of `Sender.frame`, pre-built frames, the `_sender`, `_extensions`
 * and `_socket` accesses, one write per socket per turn (corking), and the
 * checks every write passes (`admit`). Each internal is reached once, checked
 * once, and the plugin falls back to `socket.send()` when it is not what
 * this file expects.
 */

/** ws's Sender as this file uses it. */
export interface SenderLike {
  _state: number
  sendFrame (list: Buffer[], cb?: () => void): void
}

interface Corkable { cork (): void, uncork (): void }

type FrameBuilder = (data: Buffer, options: { fin: boolean, rsv1: boolean, opcode: number, mask: boolean, readOnly: boolean }) => Buffer[]

/** ws's Sender state when nothing is queued inside it (no deflate, no Blob read). */
const SENDER_IDLE = 0

const TEXT = Object.freeze({ binary: false })
const BINARY = Object.freeze({ binary: true })

/**
 * ws's own send. The write path calls it, not `socket.send`, which a
 * `nexus.v1` socket has replaced with `protocolSend` for the app's handlers.
 */
const rawSend = WebSocket.prototype.send

// ------------------------------------------------------------ pre-built frames
//
// A broadcast builds the WebSocket frame of its message once (header and
// payload in one buffer) and hands that same buffer to every socket, as
// socket.io does with ws's `Sender.frame`.

/**
 * `Sender.frame`, if it builds the frames this file expects: probed once
 * with a two-byte text payload, whose frame is 0x81 0x02 followed by it.
 */
export function probeFrameBuilder (candidate: unknown): FrameBuilder | null {
  if (typeof candidate !== 'function') return null
  try {
    const payload = Buffer.from('ok')
    const list = (candidate as FrameBuilder)(payload, { fin: true, rsv1: false, opcode: 1, mask: false, readOnly: true })
    const frame = Buffer.concat(list)
    return frame.length === 4 && frame[0] === 0x81 && frame[1] === 0x02 && frame.subarray(2).equals(payload)
      ? candidate as FrameBuilder
      : null
  } catch {
    return null
  }
}

const buildFrame = probeFrameBuilder((WebSocket as unknown as { Sender?: { frame?: unknown } }).Sender?.frame)

/**
 * The sender of a socket that pre-built frames can be written to, or null:
 * a frame goes out as is only when no extension (permessage-deflate) was
 * negotiated and ws's sender has the shape this file writes to.
 */
export function frameSenderOf (socket: WebSocket, builder: FrameBuilder | null = buildFrame): SenderLike | null {
  const sender = (socket as unknown as { _sender?: Partial<SenderLike> })._sender
  if (builder === null || sender === undefined || typeof sender.sendFrame !== 'function' || typeof sender._state !== 'number') return null
  // ws keeps the negotiated extensions (permessage-deflate) as the keys of
  // `_extensions`; the public `extensions` getter builds a string each call.
  const extensions = (socket as unknown as { _extensions?: unknown })._extensions
  return typeof extensions === 'object' && extensions !== null && isEmpty(extensions) ? sender as SenderLike : null
}

function isEmpty (object: object): boolean {
  for (const key in object) if (Object.hasOwn(object, key)) return false
  return true
}

/** The frame of a message as a one-element list for `sendFrame`, built on first use into the message's own slot. */
function frameOf (message: Encoded): Buffer[] {
  let list = message.frame
  if (list === null) {
    const parts = (buildFrame as FrameBuilder)(message.data, { fin: true, rsv1: false, opcode: message.binary ? 2 : 1, mask: false, readOnly: true })
    list = [parts.length === 1 ? parts[0] : Buffer.concat(parts)]
    message.frame = list
  }
  return list
}

/** The TCP socket under a ws socket, when it can be corked. */
function streamOf (socket: WebSocket): Corkable | null {
  const stream = (socket as unknown as { _socket?: Partial<Corkable> })._socket
  /* c8 ignore next -- a guard against ws's internals changing: its _socket is a stream with cork() */
  return typeof stream?.cork === 'function' && typeof stream.uncork === 'function' ? stream as Corkable : null
}

// ------------------------------------------------------------ one write per socket per turn
//
// A socket that gets several messages in one event-loop turn (several rooms
// updated by one timer, as in a price feed) gets them in one write: its second
// write in a turn corks it, and every corked socket is uncorked in a
// process.nextTick, before the turn ends. A socket written once per turn is
// never corked, so a single broadcast costs nothing extra.

let turn = 1
let turnOpen = false
const corked: Corkable[] = []

function endTurn (): void {
  turnOpen = false
  turn++
  for (const socket of corked) socket.uncork()
  corked.length = 0
}

/** The number of the current turn; the first call in a turn schedules its end. */
function currentTurn (): number {
  if (!turnOpen) {
    turnOpen = true
    process.nextTick(endTurn)
  }
  return turn
}

// ------------------------------------------------------------ the socket's writer

/**
 * The write side of one connection. `Connection` extends it, so the write
 * state costs no object of its own per socket.
 */
export abstract class Outbound {
  readonly socket: WebSocket
  /** the socket speaks `nexus.v1` (PROTOCOL.md): every frame it gets carries a header */
  readonly protocol: boolean
  /** ws's sender when pre-built frames can be written to it, else null (then socket.send) */
  private readonly sender: SenderLike | null
  /** the underlying TCP socket, corked for the rest of a turn on its second write */
  private readonly stream: Corkable | null
  /** the last turn this socket was written in, and the last it was corked in */
  private lastTurn = 0
  private corkedTurn = 0
  /** bytes admitted in the current turn */
  private turnBytes = 0
  /** the app's messages written to this socket (sends, broadcasts, history), for the close log */
  messagesOut = 0

  constructor (socket: WebSocket) {
    this.socket = socket
    this.protocol = socket.protocol === PROTOCOL
    this.sender = frameSenderOf(socket)
    this.stream = streamOf(socket)
  }

  /** Unsent bytes beyond which this socket is a slow consumer. */
  protected abstract get maxBufferedBytes (): number

  /** The socket stopped reading: it gets nothing more. */
  protected abstract slowConsumer (): void

  /**
   * Writes a message encoded once for every socket it goes to (the broadcast
   * hot path), as a message of `room` (null: of no room); `false` when the
   * socket is not OPEN or is a slow consumer. A `nexus.v1` socket gets the
   * message's protocol form, encoded once for all of them.
   */
  deliver (message: Encoded, room: string | null): boolean {
    const out = this.protocol ? message.protocolFor(room) : message
    if (!this.admit(out.data.length)) return false
    const sender = this.sender
    if (sender !== null && sender._state === SENDER_IDLE) {
      // The frame was built once for every socket of this broadcast.
      sender.sendFrame(frameOf(out))
    } else {
      rawSend.call(this.socket, out.data, out.binary ? BINARY : TEXT)
    }
    this.messagesOut++
    return true
  }

  /** Writes one text frame of the plugin's own (error and control frames). */
  protected writeText (data: Buffer): boolean {
    if (!this.admit(data.length)) return false
    rawSend.call(this.socket, data, TEXT)
    return true
  }

  /** Whether the bytes written straight with socket.send() exceed the limit (checked by the heartbeat). */
  protected overBuffered (): boolean {
    return this.socket.bufferedAmount > this.maxBufferedBytes
  }

  /**
   * The checks of every write: the socket is OPEN, and its unsent bytes would
   * not exceed maxBufferedBytes (else it is a slow consumer and gets nothing
   * more). A second write in the same turn corks the socket until the turn ends.
   */
  private admit (length: number): boolean {
    const socket = this.socket
    if (socket.readyState !== OPEN) return false
    const now = currentTurn()
    if (this.lastTurn !== now) {
      this.lastTurn = now
      this.turnBytes = 0
    } else if (this.corkedTurn !== now && this.stream !== null) {
      this.corkedTurn = now
      this.stream.cork()
      corked.push(this.stream)
    }
    // What this turn wrote sits in the corked stream until the turn ends: only
    // what earlier turns left unsent says the client is not reading.
    if (socket.bufferedAmount - this.turnBytes + length > this.maxBufferedBytes) {
      this.slowConsumer()
      return false
    }
    this.turnBytes += length
    return true
  }
}

/** Writes to a socket of a plain @fastify/websocket route (no connection of ours): the same encoding, no checks but OPEN. */
export function sendPlain (socket: WebSocket, message: Encoded): boolean {
  if (socket.readyState !== OPEN) return false
  rawSend.call(socket, message.data, message.binary ? BINARY : TEXT)
  return true
}

type SendCallback = (error?: Error) => void

/**
 * `socket.send` of a `nexus.v1` socket: what the app's handlers write goes
 * out as a message of no room (`m{}`), so that the client can never take it
 * for a control frame. It takes what ws's send takes.
 */
export function protocolSend (this: WebSocket, data: unknown, options?: { binary?: boolean } | SendCallback, cb?: SendCallback): void {
  if (typeof options === 'function') {
    cb = options
    options = undefined
  }
  let payload: Buffer
  let binary = true
  if (Buffer.isBuffer(data)) {
    payload = data
  } else if (ArrayBuffer.isView(data)) {
    payload = Buffer.from(data.buffer, data.byteOffset, data.byteLength)
  } else if (data instanceof ArrayBuffer) {
    payload = Buffer.from(data)
  } else {
    // Strings, and numbers and the like, which ws sends as their text.
    payload = Buffer.from(String(data))
    binary = false
  }
  if (typeof options?.binary === 'boolean') binary = options.binary
  rawSend.call(this, Buffer.concat([DIRECT_HEAD, payload], DIRECT_HEAD.length + payload.length), { ...options, binary }, cb)
}
