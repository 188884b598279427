import type { WebSocket } from 'ws'
import type { Position, WebSocketRouteConfig } from '../types/index'
import { InvalidMessage, VALIDATOR_FAILED, type JsonSafety, type MessageValidator } from './codec'
import { CloseCode, ErrorFrameCode, INBOUND_HIGH_WATER_MARK } from './constants'
import type { Context } from './context'
import type { Counters } from './counters'
import { messageChannel, traceCall, traced } from './diagnostics'
import type { ConnectionLimits } from './options'
import { Outbound } from './outbound'
import { isThenable } from './promise'
import { decodeClientFrame, FrameError, protocolError, type ClientFrame } from './protocol'
import { TokenBucket, Verdict, type VerdictValue } from './rate-limit'

/** What a connection needs to know about its route, computed once per route. */
export interface RouteState {
  /** the route's URL pattern, for error messages */
  readonly url: string
  readonly config: WebSocketRouteConfig
  readonly parse: (data: Buffer, isBinary: boolean) => unknown
  readonly rooms: boolean
  /** rooms clients may subscribe to themselves (`rooms: { authorize }`); null when they may not */
  readonly subscribe: SubscribeRules | null
  readonly limits: ConnectionLimits
  /** the app's prototype-poisoning policy, for messages and `nexus.v1` headers alike */
  readonly safety: JsonSafety
  /** what a rate-limited message is told, and its raw error frame, built once */
  readonly rateLimitedMessage: string
  readonly rateLimitedFrame: Buffer | null
  /** the compiled `schema.message`; compiled before the first upgrade */
  validate: MessageValidator | null
}

/** `rooms: { authorize, maxRooms, timeout }` with its defaults filled in. */
export interface SubscribeRules {
  readonly authorize: NonNullable<Exclude<WebSocketRouteConfig['rooms'], boolean | undefined>['authorize']>
  readonly maxRooms: number
  readonly timeout: number
}

/** An inbound frame waiting for its turn: raw data, or the payload of a decoded `nexus.v1` frame. */
interface Queued {
  readonly data: Buffer
  readonly isBinary: boolean
  readonly frame: ClientFrame | null
}

/**
 * The read side of one connection: inbound frames are rate-limited, parsed,
 * validated and handed to `onMessage` in arrival order, one at a time. A
 * frame that arrives while nothing runs is handled at once, with no promise
 * when the handler is synchronous; the others wait in a queue, and a queue
 * that grows past its marks (INBOUND_HIGH_WATER_MARK messages, or
 * `maxInboundBytes`) pauses the socket until it is worked off to half of
 * them. `Connection` extends it and owns the lifecycle around it.
 */
export abstract class Inbound extends Outbound {
  readonly ctx: Context
  protected readonly counters: Counters
  protected readonly route: RouteState
  /** inbound frames waiting for their turn (made on first use) */
  private queue: Queued[] | null = null
  /** the bytes of the frames in `queue` */
  private queuedBytes = 0
  /** messages received from the client, kept or not (for the close log) */
  messagesIn = 0
  /** the connect phase ended with the socket open: messages may run */
  protected accepting = false
  /** the connect phase failed or the socket closed during it: inbound frames are ignored */
  private dropping = false
  /** settles when the messages being handled are; null when none is */
  protected draining: Promise<void> | null = null
  /** the peer answered (or sent something) since the last heartbeat ping */
  protected alive = true
  private readonly limiter: TokenBucket | null

  constructor (counters: Counters, route: RouteState, socket: WebSocket, ctx: Context) {
    super(socket)
    this.counters = counters
    this.route = route
    this.ctx = ctx
    const rateLimit = route.limits.rateLimit
    this.limiter = rateLimit === null ? null : new TokenBucket(rateLimit, Date.now())
  }

  protected get maxBufferedBytes (): number {
    return this.route.limits.maxBufferedBytes
  }

  /** Hands an error to onError, else to the logger; never rejects. */
  abstract report (error: unknown): Promise<void>

  abstract close (code: number, reason: string): void

  /** Closes a peer that misbehaves on the read side: it is read no more, and terminated if the close does not complete promptly. */
  protected abstract cutOff (code: number, reason: string): void

  /** A `nexus.v1` request: `onMessage`'s result (or failure) answers it. */
  protected abstract answer (id: number, message: unknown): Promise<void>

  /** A `nexus.v1` subscribe or unsubscribe. */
  protected abstract subscribe (id: number, room: unknown, params: unknown, presence: boolean): Promise<void> | undefined
  protected abstract unsubscribe (id: number, room: unknown): void
  /** A `nexus.v1` client asks a presence room's members again (it saw a gap in their versions). */
  protected abstract presenceAgain (room: unknown): void
  /** A `nexus.v1` client's positions in history rooms, for the rooms it is joined to again. */
  protected abstract present (positions: Map<string, Position>): void

  /** Runs the messages that queued during the connect phase. */
  protected accept (): void {
    this.accepting = true
    if (this.queue !== null && this.queue.length > 0) this.draining = this.drain(undefined)
  }

  receive (data: Buffer, isBinary: boolean): void {
    this.counters.messagesReceived++
    this.messagesIn++
    this.alive = true
    if (this.dropping) return
    let frame: ClientFrame | null = null
    if (this.protocol) {
      const decoded = decodeClientFrame(data, this.route.safety)
      if (decoded instanceof FrameError) {
        this.counters.invalidMessages++
        this.writeText(protocolError(ErrorFrameCode.INVALID_FRAME, decoded.reason, decoded.id === undefined ? undefined : { i: decoded.id }))
        return
      }
      frame = decoded
    }
    if (this.limiter !== null) {
      const verdict = this.limiter.take(Date.now())
      if (verdict !== Verdict.ALLOW) {
        this.limited(verdict, frame)
        return
      }
    }
    if (this.accepting && this.draining === null) {
      // Nothing queued, nothing running: handled now. A synchronous handler
      // costs no promise; one that returns a promise holds the queue until it
      // settles. (ws emits the next frame only after this returns, so nothing
      // arrives while a synchronous handler runs.)
      const pending = frame === null ? this.handle(data, isBinary, undefined) : this.handleFrame(frame, isBinary)
      if (pending !== undefined) this.draining = this.drain(pending)
      return
    }
    const queue = this.queue ??= []
    queue.push({ data, isBinary, frame })
    this.queuedBytes += data.length
    // Backpressure: stop reading from the client until the queue is worked
    // off. ws finishes the chunk it is parsing, so frames already read with
    // this one still arrive; nothing more is read from the TCP socket.
    if ((queue.length >= INBOUND_HIGH_WATER_MARK || this.queuedBytes > this.route.limits.maxInboundBytes) && !this.socket.isPaused) this.socket.pause()
  }

  /** A message over the rate limit is dropped at arrival, before it takes room in the queue. */
  private limited (verdict: VerdictValue, frame: ClientFrame | null): void {
    this.counters.rateLimited++
    if (verdict === Verdict.CLOSE) {
      this.drop()
      this.cutOff(CloseCode.POLICY_VIOLATION, 'Rate limit exceeded')
      return
    }
    if (frame === null) {
      this.writeText(this.route.rateLimitedFrame as Buffer)
      return
    }
    // A request, subscribe or unsubscribe is answered, so that the client does not wait for it.
    const id = frame.kind === 'm' || frame.kind === 'r' || frame.kind === 'p' ? undefined : frame.id
    this.writeText(protocolError(ErrorFrameCode.RATE_LIMITED, this.route.rateLimitedMessage, id === undefined ? undefined : { i: id }))
  }

  /** Runs queued messages one at a time, in arrival order, after `first` (a message being handled) settled. */
  private async drain (first: Promise<void> | undefined): Promise<void> {
    if (first !== undefined) await first
    const queue = this.queue
    if (queue !== null) {
      for (let next = queue.shift(); next !== undefined; next = queue.shift()) {
        this.queuedBytes -= next.data.length
        // Read again once the queue is down to half of both marks: the client
        // refills it while the rest runs, and a queue at its mark does not
        // pause and resume the socket at every message.
        if (this.socket.isPaused && queue.length <= INBOUND_HIGH_WATER_MARK / 2 && this.queuedBytes <= this.route.limits.maxInboundBytes / 2) this.socket.resume()
        const pending = next.frame === null ? this.handle(next.data, next.isBinary, undefined) : this.handleFrame(next.frame, next.isBinary)
        if (pending !== undefined) await pending
      }
    }
    // A paused socket was resumed above by the time its queue emptied (at the
    // latest with the last frame); a dropped exchange is not read again here:
    // drop() resumed the socket, or a flooder was cut off and stays unread.
    this.draining = null
  }

  /** A decoded `nexus.v1` frame: app data goes the way of a raw message; the rest is the session's. */
  private handleFrame (frame: ClientFrame, isBinary: boolean): Promise<void> | undefined {
    switch (frame.kind) {
      case 'm': return this.handle(frame.payload, isBinary, undefined)
      case 'q': return this.handle(frame.payload, isBinary, frame.id)
      case 's': return this.subscribe(frame.id, frame.room, frame.params, frame.presence)
      case 'p':
        this.presenceAgain(frame.room)
        return undefined
      case 'r':
        // Positions presented later than first: used for the rooms joined from now on.
        this.present(frame.positions)
        return undefined
      case 'u':
        this.unsubscribe(frame.id, frame.room)
        return undefined
    }
  }

  /**
   * Parses, validates and hands one message to onMessage, or its answer to
   * request `id`; a promise only when something was asynchronous.
   */
  private handle (data: Buffer, isBinary: boolean, id: number | undefined): Promise<void> | undefined {
    let message: unknown
    try {
      message = this.route.parse(data, isBinary)
    } catch (err) {
      this.invalid(err as InvalidMessage, id)
      return undefined
    }
    const validate = this.route.validate
    if (validate === null) return this.use(message, id)
    let result: unknown
    try {
      result = validate(message)
    } catch (err) {
      return this.validatorFailed(err, id)
    }
    if (isThenable(result)) return this.validateAsync(result, id)
    if (result instanceof InvalidMessage) {
      this.invalid(result, id)
      return undefined
    }
    return this.use(result, id)
  }

  /** An async schema: its promise never rejects (createMessageValidator turns a rejection into the errors to send). */
  private async validateAsync (pending: PromiseLike<unknown>, id: number | undefined): Promise<void> {
    const result = await pending
    if (result instanceof InvalidMessage) {
      this.invalid(result, id)
      return
    }
    await this.use(result, id)
  }

  /**
   * A validator that throws (a recursive schema on deeply nested input
   * overflows the stack) rejects the message, and the app hears of it.
   */
  private async validatorFailed (err: unknown, id: number | undefined): Promise<void> {
    await this.report(err)
    this.invalid(VALIDATOR_FAILED, id)
  }

  private use (message: unknown, id: number | undefined): Promise<void> | undefined {
    return id === undefined ? this.dispatch(message) : this.answer(id, message)
  }

  private dispatch (message: unknown): Promise<void> | undefined {
    const onMessage = this.route.config.onMessage
    if (onMessage === undefined) return undefined
    let result: unknown
    try {
      result = traced(messageChannel) ? this.traceMessage(onMessage, message, false) : onMessage(this.socket, message, this.ctx)
    } catch (err) {
      return this.report(err)
    }
    return isThenable(result) ? this.settle(result) : undefined
  }

  /** One onMessage call on the `nexus.message` channel (someone listens): its result, as the handler gave it. */
  protected traceMessage (onMessage: NonNullable<WebSocketRouteConfig['onMessage']>, message: unknown, request: boolean): unknown {
    const ctx = this.ctx
    return traceCall(messageChannel, { route: this.route.url, id: ctx.id, ctx, message, request }, onMessage, undefined, this.socket, message, ctx)
  }

  private async settle (pending: PromiseLike<unknown>): Promise<void> {
    try {
      await pending
    } catch (err) {
      await this.report(err)
    }
  }

  /** An inbound message the route cannot accept: the client is told why (as an answer to request `id`, if it was one). */
  protected invalid (error: InvalidMessage, id: number | undefined): void {
    this.counters.invalidMessages++
    if (!this.protocol) {
      this.writeText(error.frame)
      return
    }
    const extra: { i?: number, x?: unknown } = {}
    if (id !== undefined) extra.i = id
    if (error.errors !== undefined) extra.x = error.errors
    this.writeText(protocolError(error.code, error.message, extra))
  }

  /** Ends the exchange: queued and later frames are dropped. */
  protected drop (): void {
    this.dropping = true
    // Emptied in place: a drain in progress holds this same array.
    if (this.queue !== null) this.queue.length = 0
    this.queuedBytes = 0
    if (this.socket.isPaused) this.socket.resume()
  }
}
