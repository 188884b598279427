import type { RawData, WebSocket } from 'ws'
import type { ConnectionCloseEvent, ConnectionOpenEvent, Position, WebSocketRouteConfig } from '../types/index'
import type { Context } from './context'
import { performance } from 'node:perf_hooks'
import { ABNORMAL_CLOSURE, CLOSE_GRACE_MS, CloseCode, OPEN, POSITIONS_WAIT_MS } from './constants'
import { connectChannel, connectionCloseChannel, connectionOpenChannel, traced, type ConnectTraceContext } from './diagnostics'
import { errors } from './errors'
import type { RouteState } from './inbound'
import { protocolSend } from './outbound'
import { isThenable } from './promise'
import { identityOf, type PresenceIdentity } from './presence/identity'
import { decodeClientFrame, helloFrame, isRoomName, type Status } from './protocol'
import type { Runtime } from './runtime'
import { Session } from './session'
import { kConnection } from './symbols'

export type { RouteState }

type TaggedSocket = WebSocket & { [kConnection]?: Connection }

/**
 * One accepted socket of an `app.ws` route: its context, its ordered queue of
 * inbound messages and its lifecycle (beforeConnect → onConnect → onMessage… →
 * onClose). No promise it starts can reject: every handler error goes to
 * `onError` or to the logger. It reports to the plugin's runtime (counters,
 * live set, rooms), never to the manager.
 */
export class Connection extends Session {
  readonly runtime: Runtime<Connection>
  /** set when the socket emitted 'close' */
  closed = false
  /** the code of the close frame this side sent first, if it did */
  private sentCloseCode: number | undefined
  /** settles when an asynchronous beforeConnect/onConnect did; null otherwise, and once it settled */
  private connecting: Promise<void> | null = null
  /** set while the connect phase waits for the client's positions (its first frame) */
  private awaitingPositions: NodeJS.Timeout | null = null
  /** when the socket was accepted (performance.now()), for the close log */
  private readonly openedAt = performance.now()
  /** who it is in presence rooms, computed at its first one; null when the route's functions failed */
  private identity: PresenceIdentity | null | undefined
  /** the `nexus.connect` context while a traced connect phase runs; null otherwise */
  private connectTrace: ConnectTraceContext | null = null

  constructor (runtime: Runtime<Connection>, route: RouteState, socket: WebSocket, ctx: Context) {
    super(runtime.counters, route, socket, ctx)
    this.runtime = runtime
    // Listeners go on synchronously, before any await, so that no frame and
    // no close that arrives while beforeConnect/onConnect run is missed.
    ;(socket as TaggedSocket)[kConnection] = this
    socket.on('message', onSocketMessage)
    socket.on('close', onSocketClose)
    socket.on('error', onSocketError)
    const heartbeat = route.limits.heartbeat
    if (heartbeat > 0) {
      socket.on('pong', onSocketPong)
      runtime.heartbeat.add(this, heartbeat)
    }
    runtime.live.add(this)
    if (this.protocol) {
      // What the app's handlers write with socket.send() goes out as a
      // message, never as something the client could take for a control frame.
      (socket as { send: unknown }).send = protocolSend
      this.writeText(helloFrame(ctx.id))
    }
    if (connectionOpenChannel.hasSubscribers) {
      connectionOpenChannel.publish({ route: route.url, id: ctx.id, protocol: this.protocol ? 'nexus.v1' : 'raw', request: ctx.request } satisfies ConnectionOpenEvent)
    }
  }

  protected isClosed (): boolean {
    return this.closed
  }

  protected enter (room: string, presented: Position | undefined, tell: (status: Status | null) => void): void {
    this.runtime.hub.enter(room, this, presented, tell)
  }

  protected leave (room: string): void {
    this.runtime.hub.leave(room, this)
  }

  protected tracksPresence (room: string): boolean {
    return this.runtime.hub.presence?.policyOf(room) != null
  }

  protected watchPresence (room: string): void {
    // Still in the room: a leaveRoom or a close meanwhile would have taken it out.
    if (this.runtime.hub.membersOf(room).has(this)) this.runtime.hub.presence?.watch(room, this)
  }

  protected presenceAgain (room: unknown): void {
    if (isRoomName(room)) this.runtime.hub.presence?.resend(room, this)
  }

  presenceFrame (frame: Buffer): void {
    this.writeText(frame)
  }

  /**
   * Who it is in presence rooms: the route's `presence.key` and `meta` (by
   * default its id and null), computed once. When they throw or give an
   * unusable value, the error goes to onError, the connection is closed with
   * 1011 and it is not listed.
   */
  presenceIdentity (): PresenceIdentity | null {
    if (this.identity !== undefined) return this.identity
    const options = this.route.config.presence
    try {
      this.identity = identityOf(options?.key === undefined ? this.ctx.id : options.key(this.ctx), options?.meta === undefined ? null : options.meta(this.ctx))
    } catch (err) {
      this.identity = null
      void this.report(err)
      this.close(CloseCode.INTERNAL_ERROR, 'Internal error')
    }
    return this.identity
  }

  /** The connection id, `ctx.id`. */
  get id (): string {
    return this.ctx.id
  }

  /** The connection of a socket, when it belongs to an `app.ws` route. */
  static of (socket: WebSocket): Connection | undefined {
    return (socket as TaggedSocket)[kConnection]
  }

  /** Whether it may join a room now: `false` once closed (it left every room); throws when its route disabled rooms. */
  joinable (): boolean {
    if (this.closed) return false
    if (!this.route.rooms) throw new errors.FST_NEXUS_ROOMS_DISABLED(this.route.url)
    return true
  }

  /**
   * Closes a socket that stopped reading: 1013, then terminate if the close
   * cannot get through. It leaves its rooms when the close completes; until
   * then it is CLOSING, and every write refuses it.
   */
  protected slowConsumer (): void {
    this.counters.slowConsumers++
    this.close(CloseCode.TRY_AGAIN_LATER, 'Slow consumer')
    setTimeout(terminate, CLOSE_GRACE_MS, this.socket).unref()
  }

  /**
   * Closes a peer that misbehaves on the read side (a flooder past 2 × max):
   * nothing more is read from it, so that it cannot keep the server parsing
   * and discarding its flood until ws's close timeout (30 s), and it is
   * terminated if the close has not completed within the grace period (its
   * close frame, if it answers, is not read either).
   */
  protected cutOff (code: number, reason: string): void {
    this.close(code, reason)
    this.socket.pause()
    setTimeout(terminate, CLOSE_GRACE_MS, this.socket).unref()
  }

  /** One heartbeat tick: terminate a peer that did not answer the last ping, else ping it. */
  beat (): void {
    const socket = this.socket
    if (socket.readyState !== OPEN) return
    // Unsent bytes written straight with socket.send() are checked here too.
    if (this.overBuffered()) {
      this.slowConsumer()
      return
    }
    // A socket the plugin paused (backpressure) cannot read pongs: not its fault.
    if (!this.alive && !socket.isPaused) {
      this.counters.heartbeatTimeouts++
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

  // ------------------------------------------------------------ connect phase

  /**
   * Starts the connect phase, after the client's positions when its
   * handshake said that it presents some (`nexus.resume`): its first frame
   * carries them, and `onConnect` must know them before it joins rooms.
   */
  begin (presents: boolean): void {
    if (!presents || !this.protocol) {
      this.start()
      return
    }
    this.awaitingPositions = setTimeout(() => {
      this.awaitingPositions = null
      this.start()
    }, POSITIONS_WAIT_MS)
  }

  override receive (data: Buffer, isBinary: boolean): void {
    if (this.awaitingPositions !== null) {
      clearTimeout(this.awaitingPositions)
      this.awaitingPositions = null
      const frame = decodeClientFrame(data, this.route.safety)
      if ('kind' in frame && frame.kind === 'r') {
        this.counters.messagesReceived++
        this.messagesIn++
        this.present(frame.positions)
        this.start()
        return
      }
      // Not the positions: it starts without them, and the frame is handled as any other.
      this.start()
    }
    super.receive(data, isBinary)
  }

  /**
   * beforeConnect, then onConnect; called by the route once the connection
   * is in place. It stays synchronous while the handlers do (no promise, no
   * microtask per connection); from the first handler that returns a promise
   * on, the rest runs in connectAsync.
   */
  start (): void {
    if (!traced(connectChannel)) {
      this.connect()
      return
    }
    const ctx = this.ctx
    const context: ConnectTraceContext = { route: this.route.url, id: ctx.id, ctx, socket: this.socket, request: ctx.request }
    this.connectTrace = context
    connectChannel.start.runStores(context, this.connect, this)
    // Still connecting without a failure: an asynchronous handler runs on (connectAsync ends the trace).
    if (this.connecting !== null && context.error === undefined) context.async = true
    else this.connectTrace = null
    connectChannel.end.publish(context)
  }

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
      const failed = this.connectFailed(err)
      this.connectSettled()
      await failed
      return
    }
    this.connectSettled()
    this.connected()
  }

  /** The end of a traced connect phase that went asynchronous. */
  private connectSettled (): void {
    const context = this.connectTrace
    if (context === null) return
    this.connectTrace = null
    connectChannel.asyncStart.publish(context)
    connectChannel.asyncEnd.publish(context)
  }

  /** A connect-phase handler threw: onError, then close 1011; queued messages are dropped. */
  private async connectFailed (err: unknown): Promise<void> {
    const context = this.connectTrace
    if (context !== null) {
      context.error = err
      connectChannel.error.publish(context)
    }
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
    this.accept()
  }

  // ------------------------------------------------------------ close

  onSocketClose (code: number, reason: Buffer): void {
    this.closed = true
    if (this.awaitingPositions !== null) {
      // Closed before its positions came: the connect phase still runs, so that onConnect and onClose stay paired.
      clearTimeout(this.awaitingPositions)
      this.awaitingPositions = null
      this.start()
    }
    const { live, hub, heartbeat } = this.runtime
    if (this.route.limits.heartbeat > 0) heartbeat.remove(this, this.route.limits.heartbeat)
    // 1006 means no close frame came back; when this side closed first, its
    // own code says why (1009, 1011, 1001…), which is what onClose should see.
    if (code === ABNORMAL_CLOSURE && this.sentCloseCode !== undefined) code = this.sentCloseCode
    // Fastify's "request completed", for a connection: through its own logger
    // (the request's, so reqId and the route's log level), with the route's
    // pattern rather than the URL, whose query may hold a token.
    const duration = performance.now() - this.openedAt
    this.ctx.log.info({
      route: this.route.url,
      code,
      duration,
      messagesIn: this.messagesIn,
      messagesOut: this.messagesOut
    }, 'connection closed')
    if (connectionCloseChannel.hasSubscribers) {
      connectionCloseChannel.publish({ route: this.route.url, id: this.ctx.id, code, duration, messagesIn: this.messagesIn, messagesOut: this.messagesOut } satisfies ConnectionCloseEvent)
    }
    // Leave every room first: onClose may broadcast to rooms the socket was in.
    live.closed(this)
    hub.leaveAll(this)
    this.forgetSubscriptions()
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
    this.runtime.live.settled()
  }

  /** Hands an error to onError, else to the logger; never rejects. */
  async report (error: unknown): Promise<void> {
    this.counters.errors++
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
