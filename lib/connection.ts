import type { RawData, WebSocket } from 'ws'
import type { AdapterMember, EncodedMessage, WebSocketRouteConfig } from '../types/index'
import type { Context } from './context'
import { ABNORMAL_CLOSURE, CloseCode, INBOUND_HIGH_WATER_MARK, OPEN, SLOW_CONSUMER_GRACE_MS } from './constants'
import { InvalidMessage, VALIDATOR_FAILED, type MessageValidator } from './codec'
import type { Heartbeat } from './heartbeat'
import type { ConnectionLimits } from './options'
import { isThenable } from './promise'
import { corkForTurn, currentTurn, frameOf, frameSenderOf, senderIdle, type SenderLike } from './frame'
import { TokenBucket, Verdict, type VerdictValue } from './rate-limit'
import { kConnection } from './symbols'

/** What a connection needs to know about its route, computed once per route. */
export interface RouteState {
  /** the route's URL pattern, for error messages */
  readonly url: string
  readonly config: WebSocketRouteConfig
  readonly parse: (data: Buffer, isBinary: boolean) => unknown
  readonly rooms: boolean
  readonly limits: ConnectionLimits
  /** the RATE_LIMITED error frame of this route, built once */
  readonly rateLimitedFrame: Buffer | null
  /** the compiled `schema.message`; compiled before the first upgrade */
  validate: MessageValidator | null
}

/** The part of the manager a connection reports to. */
export interface ConnectionRegistry {
  attach (connection: Connection): void
  detach (connection: Connection): void
  settled (): void
  readonly heartbeat: Heartbeat
  readonly counters: {
    messagesReceived: number
    invalidMessages: number
    errors: number
    slowConsumers: number
    heartbeatTimeouts: number
    rateLimited: number
  }
}

type TaggedSocket = WebSocket & { [kConnection]?: Connection }
interface Corkable { cork (): void, uncork (): void }

const TEXT = Object.freeze({ binary: false })
const BINARY = Object.freeze({ binary: true })

/**
 * One accepted socket of an `app.ws` route: its context, its ordered queue of
 * inbound messages and its lifecycle (beforeConnect → onConnect → onMessage… →
 * onClose). No promise it starts can reject: every handler error goes to
 * `onError` or to the logger.
 */
export class Connection implements AdapterMember {
  readonly socket: WebSocket
  readonly ctx: Context
  readonly route: RouteState
  /** set when the socket emitted 'close' */
  closed = false
  /** the manager this connection belongs to (an app has one) */
  readonly registry: ConnectionRegistry
  /** inbound frames waiting for their turn, flattened as data, isBinary, data, isBinary… (made on first use) */
  private queue: Array<Buffer | boolean> | null = null
  /** the connect phase ended with the socket open: queued messages may run */
  private accepting = false
  /** the connect phase failed or the socket closed during it: inbound frames are ignored */
  private dropping = false
  private draining: Promise<void> | null = null
  /** the code of the close frame this side sent first, if it did */
  private sentCloseCode: number | undefined
  /** settles when an asynchronous beforeConnect/onConnect did; null otherwise, and once it settled */
  private connecting: Promise<void> | null = null
  /** the peer answered (or sent something) since the last heartbeat ping */
  private alive = true
  private readonly limiter: TokenBucket | null
  /** ws's sender when pre-built frames can be written to it, else null (then socket.send) */
  private readonly sender: SenderLike | null
  /** the underlying TCP socket, corked for the rest of a turn on its second write */
  private readonly stream: Corkable | null
  /** the last turn this socket was written in, and the last it was corked in */
  private lastTurn = 0
  private corkedTurn = 0
  /** bytes admitted in the current turn */
  private turnBytes = 0

  constructor (registry: ConnectionRegistry, route: RouteState, socket: WebSocket, ctx: Context) {
    this.registry = registry
    this.route = route
    this.socket = socket
    this.ctx = ctx
    // Listeners go on synchronously, before any await, so that no frame and
    // no close that arrives while beforeConnect/onConnect run is missed.
    ;(socket as TaggedSocket)[kConnection] = this
    socket.on('message', onSocketMessage)
    socket.on('close', onSocketClose)
    socket.on('error', onSocketError)
    const { heartbeat, rateLimit } = route.limits
    if (heartbeat > 0) {
      socket.on('pong', onSocketPong)
      registry.heartbeat.add(this, heartbeat)
    }
    this.limiter = rateLimit === null ? null : new TokenBucket(rateLimit, Date.now())
    this.sender = frameSenderOf(socket)
    const stream = (socket as unknown as { _socket?: Partial<Corkable> })._socket
    /* c8 ignore next -- a guard against ws's internals changing: its _socket is a stream with cork() */
    this.stream = typeof stream?.cork === 'function' && typeof stream.uncork === 'function' ? stream as Corkable : null
    registry.attach(this)
    this.connect()
  }

  /** The connection id, `ctx.id`. */
  get id (): string {
    return this.ctx.id
  }

  /**
   * Writes a message encoded once by the manager (the broadcast hot path);
   * `false` when the socket is not OPEN or is a slow consumer.
   */
  deliver (message: EncodedMessage): boolean {
    if (!this.admit(message.data.length)) return false
    const sender = this.sender
    if (sender !== null && senderIdle(sender)) {
      // The frame was built once for every socket of this broadcast.
      sender.sendFrame(frameOf(message))
    } else {
      this.socket.send(message.data, message.binary ? BINARY : TEXT)
    }
    return true
  }

  /** Writes one frame of the plugin's own (error frames). */
  private write (data: Buffer, options: typeof TEXT | typeof BINARY): boolean {
    if (!this.admit(data.length)) return false
    this.socket.send(data, options)
    return true
  }

  /**
   * The checks of every write: the socket is OPEN, and its unsent bytes would
   * not exceed maxBufferedBytes (else it is a slow consumer and gets nothing
   * more). A second write in the same turn corks the socket until the turn ends.
   */
  private admit (length: number): boolean {
    const socket = this.socket
    if (socket.readyState !== OPEN) return false
    const turn = currentTurn()
    if (this.lastTurn !== turn) {
      this.lastTurn = turn
      this.turnBytes = 0
    } else if (this.corkedTurn !== turn && this.stream !== null) {
      this.corkedTurn = turn
      corkForTurn(this.stream)
    }
    // What this turn wrote sits in the corked stream until the turn ends: only
    // what earlier turns left unsent says the client is not reading.
    if (socket.bufferedAmount - this.turnBytes + length > this.route.limits.maxBufferedBytes) {
      this.slowConsumer()
      return false
    }
    this.turnBytes += length
    return true
  }

  /** Closes a socket that stopped reading: 1013, then terminate if the close cannot get through. */
  private slowConsumer (): void {
    this.registry.counters.slowConsumers++
    this.close(CloseCode.TRY_AGAIN_LATER, 'Slow consumer')
    // It leaves its rooms now, so broadcasts stop looking at it.
    this.registry.detach(this)
    setTimeout(terminate, SLOW_CONSUMER_GRACE_MS, this.socket).unref()
  }

  /** One heartbeat tick: terminate a peer that did not answer the last ping, else ping it. */
  beat (): void {
    const socket = this.socket
    if (socket.readyState !== OPEN) return
    // Unsent bytes written straight with socket.send() are checked here too.
    if (socket.bufferedAmount > this.route.limits.maxBufferedBytes) {
      this.slowConsumer()
      return
    }
    // A socket the plugin paused (backpressure) cannot read pongs: not its fault.
    if (!this.alive && !socket.isPaused) {
      this.registry.counters.heartbeatTimeouts++
      socket.terminate()
      return
    }
    this.alive = false
    socket.ping()
  }

  markAlive (): void {
    this.alive = true
  }

  close (code: number, reason: string): void {
    if (this.socket.readyState > OPEN) return
    this.sentCloseCode ??= code
    this.socket.close(code, reason)
  }

  /** The connection of a socket, when it belongs to an `app.ws` route. */
  static of (socket: WebSocket): Connection | undefined {
    return (socket as TaggedSocket)[kConnection]
  }

  /**
   * beforeConnect, then onConnect. It stays synchronous while the handlers
   * do (no promise, no microtask per connection); from the first handler
   * that returns a promise on, the rest runs in connectAsync.
   */
  private connect (): void {
    const { beforeConnect, onConnect } = this.route.config
    try {
      if (beforeConnect !== undefined) {
        const pending = beforeConnect(this.socket, this.ctx)
        if (isThenable(pending)) {
          this.connecting = this.connectAsync(pending, onConnect)
          return
        }
      }
      if (onConnect !== undefined) {
        const pending = onConnect(this.socket, this.ctx)
        if (isThenable(pending)) {
          this.connecting = this.connectAsync(pending, undefined)
          return
        }
      }
    } catch (err) {
      this.connecting = this.connectFailed(err)
      return
    }
    this.connected()
  }

  private async connectAsync (pending: PromiseLike<unknown>, next: WebSocketRouteConfig['onConnect']): Promise<void> {
    try {
      await pending
      if (next !== undefined && !this.closed) await next(this.socket, this.ctx)
    } catch (err) {
      await this.connectFailed(err)
      return
    }
    this.connected()
  }

  /** A connect-phase handler threw: onError, then close 1011; queued messages are dropped. */
  private async connectFailed (err: unknown): Promise<void> {
    this.drop()
    await this.report(err)
    this.close(CloseCode.INTERNAL_ERROR, 'Internal error')
  }

  private connected (): void {
    // Settled: nothing needs to wait on it any more, and an idle socket should not keep it.
    this.connecting = null
    // Messages queued during the connect phase run only if the socket is still
    // open: a handler that closed it (or a client that left) ends the exchange.
    if (this.socket.readyState !== OPEN) {
      this.drop()
      return
    }
    this.accepting = true
    if (this.queue !== null && this.queue.length > 0) this.draining = this.drain()
  }

  receive (data: Buffer, isBinary: boolean): void {
    this.registry.counters.messagesReceived++
    this.alive = true
    if (this.dropping) return
    if (this.limiter !== null) {
      const verdict = this.limiter.take(Date.now())
      if (verdict !== Verdict.ALLOW) {
        this.limited(verdict)
        return
      }
    }
    const queue = this.queue ??= []
    queue.push(data, isBinary)
    if (this.accepting && this.draining === null) {
      this.draining = this.drain()
    } else if (queue.length >= 2 * INBOUND_HIGH_WATER_MARK) {
      // Backpressure: stop reading from the client until the queue is worked off.
      this.socket.pause()
    }
  }

  /** A message over the rate limit is dropped at arrival, before it takes room in the queue. */
  private limited (verdict: VerdictValue): void {
    this.registry.counters.rateLimited++
    if (verdict === Verdict.CLOSE) {
      this.drop()
      this.close(CloseCode.POLICY_VIOLATION, 'Rate limit exceeded')
      return
    }
    this.write(this.route.rateLimitedFrame as Buffer, TEXT)
  }

  /** Runs queued messages one at a time, in arrival order. */
  private async drain (): Promise<void> {
    const queue = this.queue as Array<Buffer | boolean>
    while (queue.length > 0) {
      const data = queue.shift() as Buffer
      const isBinary = queue.shift() as boolean
      await this.handle(data, isBinary)
    }
    this.draining = null
    if (this.socket.isPaused) this.socket.resume()
  }

  private async handle (data: Buffer, isBinary: boolean): Promise<void> {
    let message: unknown
    try {
      message = this.route.parse(data, isBinary)
    } catch (err) {
      this.invalid(err as InvalidMessage)
      return
    }
    const validate = this.route.validate
    if (validate !== null) {
      let result: unknown
      try {
        result = validate(message)
        if (isThenable(result)) result = await result
      } catch (err) {
        // A validator that throws (a recursive schema on deeply nested input
        // overflows the stack) rejects the message, and the app hears of it.
        result = VALIDATOR_FAILED
        await this.report(err)
      }
      if (result instanceof InvalidMessage) {
        this.invalid(result)
        return
      }
      message = result
    }
    const onMessage = this.route.config.onMessage
    if (onMessage === undefined) return
    try {
      await onMessage(this.socket, message, this.ctx)
    } catch (err) {
      await this.report(err)
    }
  }

  private invalid (error: InvalidMessage): void {
    this.registry.counters.invalidMessages++
    this.write(error.frame, TEXT)
  }

  onSocketClose (code: number, reason: Buffer): void {
    this.closed = true
    if (this.route.limits.heartbeat > 0) this.registry.heartbeat.remove(this, this.route.limits.heartbeat)
    // 1006 means no close frame came back; when this side closed first, its
    // own code says why (1009, 1011, 1001…), which is what onClose should see.
    if (code === ABNORMAL_CLOSURE && this.sentCloseCode !== undefined) code = this.sentCloseCode
    // Leave every room first: onClose may broadcast to rooms the socket was in.
    this.registry.detach(this)
    void this.finish(code, reason)
  }

  private async finish (code: number, reason: Buffer): Promise<void> {
    if (this.connecting !== null) await this.connecting
    // Messages that arrived before the close still run, then onClose, never beside them.
    if (this.draining !== null) await this.draining
    const onClose = this.route.config.onClose
    if (onClose !== undefined) {
      try {
        await onClose(this.socket, this.ctx, code, reason)
      } catch (err) {
        await this.report(err)
      }
    }
    this.registry.settled()
  }

  /** Hands an error to onError, else to the logger; never rejects. */
  async report (error: unknown): Promise<void> {
    this.registry.counters.errors++
    const err = error instanceof Error ? error : new Error(`Non-error thrown: ${String(error)}`, { cause: error })
    const onError = this.route.config.onError
    if (onError === undefined) {
      this.ctx.log.error({ err }, 'WebSocket handler error')
      return
    }
    try {
      await onError(this.socket, err, this.ctx)
    } catch (failure) {
      this.ctx.log.error({ err: failure, cause: err }, 'onError handler threw')
    }
  }

  noteProtocolError (code: string | undefined): void {
    this.sentCloseCode ??= closeCodeOf(code)
  }

  private drop (): void {
    this.dropping = true
    // Emptied in place: a drain in progress holds this same array.
    if (this.queue !== null) this.queue.length = 0
    if (this.socket.isPaused) this.socket.resume()
  }
}

/**
 * The close code ws sent with a receiver error: ws emits 'error' on a server
 * socket only for the frames it rejects, each with a documented `WS_ERR_*` code.
 */
function closeCodeOf (errorCode: string | undefined): number {
  switch (errorCode) {
    case 'WS_ERR_INVALID_UTF8': return CloseCode.INVALID_PAYLOAD
    case 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH':
    case 'WS_ERR_UNSUPPORTED_DATA_PAYLOAD_LENGTH': return CloseCode.MESSAGE_TOO_BIG
    default: return CloseCode.PROTOCOL_ERROR
  }
}

function toBuffer (data: RawData): Buffer {
  if (Buffer.isBuffer(data)) return data
  /* c8 ignore next 2 -- only when an app changes socket.binaryType */
  return Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data)
}

// Shared listeners (no closure per socket): `this` is the socket, tagged
// with its connection before they are attached.
function connectionOf (socket: WebSocket): Connection {
  return (socket as TaggedSocket)[kConnection] as Connection
}

function onSocketMessage (this: WebSocket, data: RawData, isBinary: boolean): void {
  connectionOf(this).receive(toBuffer(data), isBinary)
}

function onSocketClose (this: WebSocket, code: number, reason: Buffer): void {
  connectionOf(this).onSocketClose(code, reason)
}

function onSocketPong (this: WebSocket): void {
  connectionOf(this).markAlive()
}

function terminate (socket: WebSocket): void {
  socket.terminate()
}

function onSocketError (this: WebSocket, error: Error & { code?: string }): void {
  const connection = connectionOf(this)
  // ws has already sent a close frame for a protocol error; remember its code.
  connection.noteProtocolError(error.code)
  void connection.report(error)
}
