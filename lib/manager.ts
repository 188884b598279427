import type { WebSocket } from 'ws'
import type {
  BroadcastOptions,
  FetchOptions,
  HistoryPage,
  HistoryQuery,
  Position,
  PresenceCount,
  PresenceMember,
  RoomManager,
  WebSocketContext,
  WebSocketManager,
  WebSocketRouteGeneric,
  WebSocketStats
} from '../types/index'
import { CloseCode, MAX_ROOM_NAME_LENGTH, MAX_TIMEOUT, OPEN } from './constants'
import { encode, type Encoded } from './codec'
import { Connection } from './connection'
import { publishChannel, traceCall, traced, type PublishTraceContext } from './diagnostics'
import { describe, errors } from './errors'
import type { Hub } from './hub'
import type { Presence } from './presence/index'
import { sendPlain } from './outbound'
import type { Runtime } from './runtime'

function assertRoom (room: unknown): asserts room is string {
  if (typeof room !== 'string' || room.length === 0 || room.length > MAX_ROOM_NAME_LENGTH) {
    throw new errors.FST_NEXUS_INVALID_ROOM(describe(room))
  }
}

/** How long cluster-wide queries wait for other instances by default, in ms. */
const DEFAULT_FETCH_TIMEOUT = 5000

function fetchTimeout (options: FetchOptions | undefined): number {
  if (options === undefined) return DEFAULT_FETCH_TIMEOUT
  if (typeof options !== 'object' || options === null) {
    throw new errors.FST_NEXUS_INVALID_OPTION('options', 'an object ({ timeout })', describe(options))
  }
  const timeout = options.timeout ?? DEFAULT_FETCH_TIMEOUT
  if (typeof timeout !== 'number' || !(timeout >= 0 && timeout <= MAX_TIMEOUT)) {
    throw new errors.FST_NEXUS_INVALID_OPTION('timeout', `a number of milliseconds from 0 to ${MAX_TIMEOUT}`, describe(timeout))
  }
  return timeout
}

const NO_EXCEPT = Object.freeze({ except: null, exceptIds: null })

function assertSocket (socket: unknown): asserts socket is WebSocket {
  if (typeof socket !== 'object' || socket === null || typeof (socket as WebSocket).send !== 'function') {
    throw new errors.FST_NEXUS_UNKNOWN_SOCKET(describe(socket))
  }
}

/**
 * A broadcast on the `nexus.publish` channel (`this` is the hub): what a
 * subscriber put in the carrier at `start` goes with it to the other
 * instances, and its local recipients are counted before `end`.
 */
function broadcastTraced (this: Hub<Connection>, context: PublishTraceContext, message: Encoded, exceptIds: ReadonlySet<string> | null, except: ReadonlySet<Connection> | null): number {
  const { rooms, carrier } = context
  const written = this.broadcast(message, hasEntries(carrier) ? { rooms, exceptIds, carrier } : { rooms, exceptIds }, except)
  context.recipients = written
  return written
}

/** A broadcast when someone listens on `nexus.publish`: its context, then the traced call. */
function traceBroadcast (hub: Hub<Connection>, message: Encoded, rooms: readonly string[] | null, exceptIds: ReadonlySet<string> | null, except: ReadonlySet<Connection> | null): number {
  const context: PublishTraceContext = { rooms, carrier: {} }
  return traceCall(publishChannel, context, broadcastTraced, hub, context, message, exceptIds, except) as number
}

/** `manager.publish` on the `nexus.publish` channel (`this` is the hub): resolves once stored. */
async function publishTraced (this: Hub<Connection>, context: PublishTraceContext, room: string, message: Encoded, exceptIds: ReadonlySet<string> | null, except: ReadonlySet<Connection> | null): Promise<Position> {
  return await this.publish(room, message, exceptIds, except, hasEntries(context.carrier) ? context.carrier : undefined)
}

/** Whether a carrier was filled in: an empty one is not sent. */
function hasEntries (object: object): boolean {
  for (const key in object) if (Object.hasOwn(object, key)) return true
  return false
}

/**
 * `app.getWebSocket()`: rooms, broadcasting, lookups and stats. It validates
 * every argument it is given, then works on the runtime the routes'
 * connections report into: membership and delivery are the hub's.
 */
export class Manager implements WebSocketManager {
  readonly roomManager: RoomManager
  private readonly runtime: Runtime<Connection>
  private readonly hub: Hub<Connection>

  constructor (runtime: Runtime<Connection>) {
    this.runtime = runtime
    this.hub = runtime.hub
    // The seed's helper object: the same operations under short names.
    this.roomManager = Object.freeze({
      create: (room: string) => this.createRoom(room),
      join: (room: string, socket: WebSocket) => this.joinRoom(room, socket),
      leave: (room: string, socket: WebSocket) => this.leaveRoom(room, socket),
      broadcast: (room: string, data: unknown) => this.broadcast(room, data),
      list: () => this.hub.rooms()
    })
  }

  // ---------------------------------------------------------- rooms

  createRoom (room: string): void {
    assertRoom(room)
    this.hub.create(room)
  }

  joinRoom (room: string, socket: WebSocket): void {
    assertRoom(room)
    const connection = this.connectionOf(socket)
    // A socket that has closed already left all its rooms; joining again would leak it.
    if (connection.joinable()) connection.enterByServer(room)
  }

  leaveRoom (room: string, socket: WebSocket): void {
    assertRoom(room)
    const connection = this.connectionOf(socket)
    this.hub.leave(room, connection)
    // A room the client subscribed to: it is told, and does not subscribe again.
    connection.left(room)
  }

  deleteRoom (room: string): boolean {
    assertRoom(room)
    const members = [...this.hub.membersOf(room)]
    const existed = this.hub.delete(room)
    for (const member of members) member.left(room)
    return existed
  }

  hasRoom (room: string): boolean {
    assertRoom(room)
    return this.hub.has(room)
  }

  roomSize (room: string): number {
    assertRoom(room)
    return this.hub.roomSize(room)
  }

  socketsIn (room: string): WebSocket[] {
    assertRoom(room)
    const sockets: WebSocket[] = []
    for (const member of this.hub.membersOf(room)) sockets.push(member.socket)
    return sockets
  }

  roomsOf (socket: WebSocket): string[] {
    assertSocket(socket)
    const connection = this.own(socket)
    return connection === undefined ? [] : [...this.hub.roomsOf(connection)]
  }

  contextOf<G extends WebSocketRouteGeneric = WebSocketRouteGeneric> (socket: WebSocket): WebSocketContext<G> | undefined {
    assertSocket(socket)
    return this.own(socket)?.ctx as WebSocketContext<G> | undefined
  }

  get connections (): number {
    return this.runtime.live.open.size
  }

  stats (): WebSocketStats {
    return {
      // The adapter's own counters (e.g. the Redis adapter's), never in place of the manager's.
      ...this.hub.adapter.stats?.(),
      connections: this.runtime.live.open.size,
      rooms: this.hub.rooms().length,
      ...this.runtime.counters
    }
  }

  // ---------------------------------------------------------- cluster-wide queries
  // An adapter for several instances answers for all of them; without one,
  // the answer is this instance's.

  async fetchRooms (options?: FetchOptions): Promise<string[]> {
    const timeout = fetchTimeout(options)
    const adapter = this.hub.adapter
    if (typeof adapter.fetchRooms !== 'function') return this.hub.rooms()
    return await adapter.fetchRooms({ timeout })
  }

  async fetchRoomSize (room: string, options?: FetchOptions): Promise<number> {
    assertRoom(room)
    const timeout = fetchTimeout(options)
    const adapter = this.hub.adapter
    if (typeof adapter.fetchRoomSize !== 'function') return this.hub.roomSize(room)
    return await adapter.fetchRoomSize(room, { timeout })
  }

  async fetchConnections (options?: FetchOptions): Promise<number> {
    const timeout = fetchTimeout(options)
    const adapter = this.hub.adapter
    if (typeof adapter.fetchConnections !== 'function') return this.hub.connections()
    return await adapter.fetchConnections({ timeout })
  }

  // ---------------------------------------------------------- sending

  broadcast (room: string | readonly string[], data: unknown, options?: BroadcastOptions): number {
    let rooms: readonly string[]
    if (Array.isArray(room)) {
      for (const name of room) assertRoom(name)
      rooms = room.length > 1 ? [...new Set(room)] : room
    } else {
      assertRoom(room)
      rooms = [room]
    }
    return this.dispatch(encode(data), rooms, options)
  }

  broadcastAll (data: unknown, options?: BroadcastOptions): number {
    return this.dispatch(encode(data), null, options)
  }

  async publish (room: string, data: unknown, options?: BroadcastOptions): Promise<Position> {
    assertRoom(room)
    const message = encode(data)
    const { except, exceptIds } = this.exceptOf(options)
    this.runtime.counters.broadcasts++
    if (!traced(publishChannel)) return await this.hub.publish(room, message, exceptIds, except)
    const context: PublishTraceContext = { rooms: [room], carrier: {} }
    return await (traceCall(publishChannel, context, publishTraced, this.hub, context, room, message, exceptIds, except) as Promise<Position>)
  }

  async history (room: string, options?: HistoryQuery): Promise<HistoryPage> {
    assertRoom(room)
    if (options !== undefined && (typeof options !== 'object' || options === null)) {
      throw new errors.FST_NEXUS_INVALID_OPTION('options', 'an object ({ since, limit })', describe(options))
    }
    const { since, limit } = options ?? {}
    if (since !== undefined && !(Number.isSafeInteger(since) && since >= 0)) {
      throw new errors.FST_NEXUS_INVALID_OPTION('since', 'an offset (an integer from 0)', describe(since))
    }
    if (limit !== undefined && !(Number.isSafeInteger(limit) && limit >= 1)) {
      throw new errors.FST_NEXUS_INVALID_OPTION('limit', 'a positive integer', describe(limit))
    }
    return await this.hub.read(room, since ?? null, limit ?? null)
  }

  async presence (room: string): Promise<PresenceMember[]> {
    assertRoom(room)
    return await this.presenceOf(room).members(room)
  }

  async presenceCount (room: string): Promise<PresenceCount> {
    assertRoom(room)
    return await this.presenceOf(room).count(room)
  }

  private presenceOf (room: string): Presence<Connection> {
    const presence = this.hub.presence
    if (presence === null) throw new errors.FST_NEXUS_NO_PRESENCE(JSON.stringify(room))
    return presence
  }

  send (socket: WebSocket, data: unknown): boolean {
    assertSocket(socket)
    const message = encode(data)
    const connection = this.own(socket)
    // A socket of a plain @fastify/websocket route gets the same encoding, written directly.
    const written = connection !== undefined ? connection.deliver(message, null) : sendPlain(socket, message)
    if (written) this.runtime.counters.messagesSent++
    return written
  }

  private dispatch (message: Encoded, rooms: readonly string[] | null, options: BroadcastOptions | undefined): number {
    const { except, exceptIds } = this.exceptOf(options)
    const written = traced(publishChannel) ? traceBroadcast(this.hub, message, rooms, exceptIds, except) : this.hub.broadcast(message, { rooms, exceptIds }, except)
    const counters = this.runtime.counters
    counters.broadcasts++
    counters.messagesSent += written
    return written
  }

  /** The sockets and connection ids `except` names, or nulls. */
  private exceptOf (options: BroadcastOptions | undefined): { except: Set<Connection> | null, exceptIds: Set<string> | null } {
    if (options?.except === undefined) return NO_EXCEPT
    const exceptIds = new Set<string>()
    const except = this.exceptSet(options.except, exceptIds)
    return { except, exceptIds: exceptIds.size === 0 ? null : exceptIds }
  }

  /** The local members `except` names; the connection ids it gives (sockets of any instance) go into `ids`. */
  private exceptSet (except: NonNullable<BroadcastOptions['except']>, ids: Set<string>): Set<Connection> {
    const set = new Set<Connection>()
    for (const socket of Array.isArray(except) ? except : [except]) {
      if (typeof socket === 'string') {
        if (socket.length === 0) throw new errors.FST_NEXUS_UNKNOWN_SOCKET(describe(socket))
        ids.add(socket)
        continue
      }
      assertSocket(socket)
      const connection = this.own(socket)
      if (connection !== undefined) set.add(connection)
    }
    return set
  }

  /** The connection of a socket of this app's `app.ws` routes (another app's sockets are not ours). */
  private own (socket: WebSocket): Connection | undefined {
    const connection = Connection.of(socket)
    return connection !== undefined && connection.runtime === this.runtime ? connection : undefined
  }

  private connectionOf (socket: WebSocket): Connection {
    assertSocket(socket)
    const connection = this.own(socket)
    if (connection === undefined) throw new errors.FST_NEXUS_UNKNOWN_SOCKET('a socket that does not belong to an app.ws() route')
    return connection
  }

  // ---------------------------------------------------------- shutdown

  /**
   * Closes every connection with 1001 and waits for their onClose handlers,
   * up to `timeout` ms; sockets still open then are terminated.
   */
  async shutdown (timeout: number, others: Iterable<WebSocket>): Promise<void> {
    const { live, heartbeat } = this.runtime
    this.runtime.closing = true
    heartbeat.stop()
    for (const connection of live.open) connection.close(CloseCode.GOING_AWAY, 'Server shutting down')
    for (const socket of others) {
      if (socket.readyState <= OPEN) socket.close(CloseCode.GOING_AWAY, 'Server shutting down')
    }
    await live.idle(timeout)
    for (const connection of live.open) connection.socket.terminate()
    for (const socket of others) socket.terminate()
  }
}
