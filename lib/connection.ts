import type { RawData, WebSocket } from 'ws'
import type { AdapterMember, EncodedMessage, WebSocketRouteConfig } from '../types/index'
import type { Context } from './context'
import { ABNORMAL_CLOSURE, CloseCode, INBOUND_HIGH_WATER_MARK, OPEN } from './constants'
import { InvalidMessage } from './codec'
import { kConnection } from './symbols'

/** What a connection needs to know about its route, computed once per route. */
export interface RouteState {
  /** the route's URL pattern, for error messages */
  readonly url: string
  readonly config: WebSocketRouteConfig
  readonly parse: (data: Buffer, isBinary: boolean) => unknown
  readonly rooms: boolean
}

/** The part of the manager a connection reports to. */
export interface ConnectionRegistry {
  attach (connection: Connection): void
  detach (connection: Connection): void
  settled (connection: Connection): void
  readonly counters: { messagesReceived: number, invalidMessages: number, errors: number }
}

type TaggedSocket = WebSocket & { [kConnection]?: Connection }

const TEXT = Object.freeze({ binary: false })
const BINARY = Object.freeze({ binary: true })

/**
 * One accepted socket of an `app.ws` route: its context, its ordered queue of
 * inbound messages and its lifecycle (beforeConnect → onConnect → onMessage… →
 * onClose). No promise it starts can reject: every handler error goes to
 * `onError` or to the logger.
 */
export class Connection implements AdapterMember {
  readonly id: string
  readonly socket: WebSocket
  readonly ctx: Context
  readonly route: RouteState
  /** set when the socket emitted 'close' */
  closed = false
  /** the manager this connection belongs to (an app has one) */
  readonly registry: ConnectionRegistry
  /** inbound frames waiting for their turn, flattened as data, isBinary, data, isBinary… */
  private readonly queue: Array<Buffer | boolean> = []
  /** the connect phase ended with the socket open: queued messages may run */
  private accepting = false
  /** the connect phase failed or the socket closed during it: inbound frames are ignored */
  private dropping = false
  private draining: Promise<void> | null = null
  /** the code of the close frame this side sent first, if it did */
  private sentCloseCode: number | undefined
  private readonly connecting: Promise<void>

  constructor (registry: ConnectionRegistry, route: RouteState, socket: WebSocket, ctx: Context) {
    this.registry = registry
    this.route = route
    this.socket = socket
    this.ctx = ctx
    this.id = ctx.id
    // Listeners go on synchronously, before any await, so that no frame and
    // no close that arrives while beforeConnect/onConnect run is missed.
    ;(socket as TaggedSocket)[kConnection] = this
    socket.on('message', onSocketMessage)
    socket.on('close', onSocketClose)
    socket.on('error', onSocketError)
    registry.attach(this)
    this.connecting = this.connect()
  }

  /** Writes a message encoded once by the manager; `false` when the socket is not OPEN. */
  deliver (message: EncodedMessage): boolean {
    const socket = this.socket
    if (socket.readyState !== OPEN) return false
    socket.send(message.data, message.binary ? BINARY : TEXT)
    return true
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

  private async connect (): Promise<void> {
    const { beforeConnect, onConnect } = this.route.config
    try {
      if (beforeConnect !== undefined) await beforeConnect(this.socket, this.ctx)
      if (onConnect !== undefined && !this.closed) await onConnect(this.socket, this.ctx)
    } catch (err) {
      this.drop()
      await this.report(err)
      this.close(CloseCode.INTERNAL_ERROR, 'Internal error')
      return
    }
    // Messages queued during the connect phase run only if the socket is still
    // open: a handler that closed it (or a client that left) ends the exchange.
    if (this.socket.readyState !== OPEN) {
      this.drop()
      return
    }
    this.accepting = true
    if (this.queue.length > 0) this.draining = this.drain()
  }

  receive (data: Buffer, isBinary: boolean): void {
    this.registry.counters.messagesReceived++
    if (this.dropping) return
    this.queue.push(data, isBinary)
    if (this.accepting && this.draining === null) {
      this.draining = this.drain()
    } else if (this.queue.length >= 2 * INBOUND_HIGH_WATER_MARK) {
      // Backpressure: stop reading from the client until the queue is worked off.
      this.socket.pause()
    }
  }

  /** Runs queued messages one at a time, in arrival order. */
  private async drain (): Promise<void> {
    const queue = this.queue
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
      this.registry.counters.invalidMessages++
      if (this.socket.readyState === OPEN) this.socket.send((err as InvalidMessage).frame, TEXT)
      return
    }
    const onMessage = this.route.config.onMessage
    if (onMessage === undefined) return
    try {
      await onMessage(this.socket, message, this.ctx)
    } catch (err) {
      await this.report(err)
    }
  }

  onSocketClose (code: number, reason: Buffer): void {
    this.closed = true
    // 1006 means no close frame came back; when this side closed first, its
    // own code says why (1009, 1011, 1001…), which is what onClose should see.
    if (code === ABNORMAL_CLOSURE && this.sentCloseCode !== undefined) code = this.sentCloseCode
    // Leave every room first: onClose may broadcast to rooms the socket was in.
    this.registry.detach(this)
    void this.finish(code, reason)
  }

  private async finish (code: number, reason: Buffer): Promise<void> {
    await this.connecting
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
    this.registry.settled(this)
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
    this.queue.length = 0
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

function onSocketError (this: WebSocket, error: Error & { code?: string }): void {
  const connection = connectionOf(this)
  // ws has already sent a close frame for a protocol error; remember its code.
  connection.noteProtocolError(error.code)
  void connection.report(error)
}
