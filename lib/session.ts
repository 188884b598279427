import type { Position } from '../types/index'
import { ErrorFrameCode, MAX_ROOM_NAME_LENGTH } from './constants'
import { messageChannel, subscribeChannel, traceCall, traced, type SubscribeTraceContext } from './diagnostics'
import { Inbound, type RouteState } from './inbound'
import { encodeFrame, isRoomName, protocolError, statusFrame, type Status } from './protocol'

/** What a refused subscribe tells the client. */
interface Refusal {
  code: string
  message: string
  temporary: boolean
}

const NOT_ENABLED: Refusal = { code: ErrorFrameCode.NOT_ENABLED, message: 'This route does not let clients subscribe to rooms', temporary: false }
const INVALID_ROOM: Refusal = { code: ErrorFrameCode.INVALID_ROOM, message: `A room name is a string of 1 to ${MAX_ROOM_NAME_LENGTH} characters`, temporary: false }
const LIMIT: Refusal = { code: ErrorFrameCode.LIMIT, message: 'This connection holds as many rooms as it may', temporary: false }
const TIMEOUT: Refusal = { code: ErrorFrameCode.TIMEOUT, message: 'The subscription was not authorized in time', temporary: true }
const INTERNAL: Refusal = { code: ErrorFrameCode.INTERNAL, message: 'Internal error', temporary: true }
const NO_PRESENCE: Refusal = { code: ErrorFrameCode.NOT_ENABLED, message: 'This room does not track presence', temporary: false }
const FORBIDDEN_MESSAGE = 'Not allowed to subscribe to this room'

/** Settles an authorize that takes too long: a value no authorize returns. */
const TIMED_OUT = Symbol('timed out')

/**
 * The `nexus.v1` side of a connection: answers to requests, and the rooms
 * the client subscribed to itself, each checked by the route's `authorize`.
 * A refusal has no side effect. `Connection` extends it and gives it the
 * rooms (`join`/`leave`).
 */
export abstract class Session extends Inbound {
  /** rooms this connection holds by its own subscribes (made on first use) */
  private subscriptions: Set<string> | null = null
  /** the positions its client presented, each used once, when its room is joined again */
  private presented: Map<string, Position> | null = null

  /** Whether the socket has closed (it left every room; nothing more is joined). */
  protected abstract isClosed (): boolean
  /**
   * Joins a room; in a history room, `tell` gets the position (and the
   * outcome of a resume from `presented`) before any message of the room.
   * `tell(null)`: a room without history, or one it was in already.
   */
  protected abstract enter (room: string, presented: Position | undefined, tell: (status: Status | null) => void): void
  protected abstract leave (room: string): void
  /** Whether a room tracks presence (its policy says so). */
  protected abstract tracksPresence (room: string): boolean
  /** Makes it a watcher of a presence room: the room's members, then every change. */
  protected abstract watchPresence (room: string): void

  protected present (positions: Map<string, Position>): void {
    this.presented = positions.size > 0 ? positions : null
  }

  /** The position presented for a room, once. */
  protected positionFor (room: string): Position | undefined {
    const presented = this.presented
    if (presented === null) return undefined
    const position = presented.get(room)
    if (position !== undefined) presented.delete(room)
    return position
  }

  /** Server code joined it to a room: in a history room a `nexus.v1` client is told its position (`j`). */
  enterByServer (room: string): void {
    this.enter(room, this.positionFor(room), (status) => {
      if (status !== null && this.protocol) this.writeText(statusFrame('j', room, undefined, status))
    })
  }

  /** A history room it is in lost messages it cannot get: a `nexus.v1` client is told where it continues from. */
  historyLost (room: string, status: Status): void {
    if (this.protocol) this.writeText(statusFrame('j', room, undefined, status))
  }

  /** Server code removed this connection from a room: a room it had subscribed to is gone, and the client is told. */
  left (room: string): void {
    if (this.subscriptions?.delete(room) !== true) return
    this.writeText(encodeFrame('u', { r: room }))
  }

  /** Its socket closed: it holds no room any more. */
  protected forgetSubscriptions (): void {
    this.subscriptions = null
  }

  protected async answer (id: number, message: unknown): Promise<void> {
    const onMessage = this.route.config.onMessage
    let value: unknown
    try {
      value = onMessage === undefined
        ? undefined
        : await (traced(messageChannel) ? this.traceMessage(onMessage, message, true) : onMessage(this.socket, message, this.ctx))
    } catch (err) {
      this.writeText(await this.failure(err, id))
      return
    }
    let json: string | undefined
    try {
      json = JSON.stringify(value)
    } catch (err) {
      // A result with no JSON form (a cycle, a BigInt) is the handler's bug.
      this.writeText(await this.failure(err, id))
      return
    }
    this.writeText(encodeFrame('a', { i: id }, json === undefined ? undefined : Buffer.from(json)))
  }

  /**
   * The error frame of a failed request. An error with a 4xx `statusCode` and
   * a `code` is the handler's deliberate answer: its code and message go to
   * the client. Anything else is a failure: `INTERNAL`, its message never
   * sent, and the error goes to onError (or the logger).
   */
  private async failure (error: unknown, id: number): Promise<Buffer> {
    const { code, statusCode, message } = (typeof error === 'object' && error !== null ? error : {}) as { code?: unknown, statusCode?: unknown, message?: unknown }
    if (typeof code === 'string' && code.length > 0 && typeof statusCode === 'number' && statusCode >= 400 && statusCode < 500) {
      return protocolError(code, typeof message === 'string' ? message : code, { i: id })
    }
    await this.report(error)
    return protocolError(ErrorFrameCode.INTERNAL, 'Internal error', { i: id })
  }

  protected subscribe (id: number, room: unknown, params: unknown, presence: boolean): Promise<void> | undefined {
    const rules = this.route.subscribe
    if (rules === null) return this.refuse(id, isRoomName(room) ? room : undefined, NOT_ENABLED)
    if (!isRoomName(room)) return this.refuse(id, undefined, INVALID_ROOM)
    const subscriptions = this.subscriptions ??= new Set()
    if (subscriptions.has(room)) {
      if (presence && !this.tracksPresence(room)) return this.refuse(id, room, NO_PRESENCE)
      this.writeText(statusFrame('s', room, id, null))
      if (presence) this.watchPresence(room)
      return undefined
    }
    if (subscriptions.size >= rules.maxRooms) return this.refuse(id, room, LIMIT)
    if (!traced(subscribeChannel)) return this.authorize(id, room, params, presence, null)
    const ctx = this.ctx
    const context: SubscribeTraceContext = { route: this.route.url, id: ctx.id, ctx, room }
    return traceCall(subscribeChannel, context, this.authorize, this, id, room, params, presence, context) as Promise<void>
  }

  protected unsubscribe (id: number, room: unknown): void {
    if (!isRoomName(room)) {
      this.refuse(id, undefined, INVALID_ROOM)
      return
    }
    // Only a room it subscribed to: rooms joined by server code are the server's to leave.
    if (this.subscriptions?.delete(room) === true) this.leave(room)
    this.writeText(encodeFrame('u', { i: id, r: room }))
  }

  /** Asks the route's authorize, then joins or refuses; `trace` (when traced) learns which. */
  private async authorize (id: number, room: string, params: unknown, presence: boolean, trace: SubscribeTraceContext | null): Promise<void> {
    const { authorize, timeout } = this.route.subscribe as NonNullable<RouteState['subscribe']>
    let verdict: unknown
    let timer: NodeJS.Timeout | undefined
    try {
      verdict = await Promise.race([
        authorize(room, this.ctx, params),
        new Promise((resolve) => { timer = setTimeout(resolve, timeout, TIMED_OUT) })
      ])
    } catch (err) {
      await this.report(err)
      verdict = INTERNAL
    } finally {
      clearTimeout(timer)
    }
    // A client that left meanwhile subscribes to nothing.
    if (this.isClosed()) {
      if (trace !== null) trace.allowed = false
      return
    }
    const allowed = verdict === true || (typeof verdict === 'object' && verdict !== null && (verdict as { allow?: unknown }).allow === true)
    if (trace !== null) trace.allowed = allowed
    if (allowed) {
      // Asked for presence where there is none: refused after authorize, so
      // that only a client allowed in the room learns what the room keeps.
      if (presence && !this.tracksPresence(room)) {
        this.refuse(id, room, NO_PRESENCE)
        return
      }
      ;(this.subscriptions ??= new Set()).add(room)
      this.enter(room, this.positionFor(room), (status) => {
        this.writeText(statusFrame('s', room, id, status))
        // The members come after the answer: the client knows the room by then.
        if (presence) this.watchPresence(room)
      })
      return
    }
    this.refuse(id, room, verdict === TIMED_OUT ? TIMEOUT : verdict === INTERNAL ? INTERNAL : refusalOf(verdict))
  }

  private refuse (id: number, room: string | undefined, refusal: Refusal): undefined {
    const extra: { i: number, r?: string, t?: boolean } = { i: id }
    if (room !== undefined) extra.r = room
    if (refusal.temporary) extra.t = true
    this.writeText(protocolError(refusal.code, refusal.message, extra))
    return undefined
  }
}

/** What an `authorize` that did not allow said: `false`, or `{ allow: false, code?, message?, temporary? }`. */
function refusalOf (verdict: unknown): Refusal {
  if (typeof verdict !== 'object' || verdict === null) return { code: ErrorFrameCode.FORBIDDEN, message: FORBIDDEN_MESSAGE, temporary: false }
  const { code, message, temporary } = verdict as { code?: unknown, message?: unknown, temporary?: unknown }
  return {
    code: typeof code === 'string' && code.length > 0 ? code : ErrorFrameCode.FORBIDDEN,
    message: typeof message === 'string' ? message : FORBIDDEN_MESSAGE,
    temporary: temporary === true
  }
}
