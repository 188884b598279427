import type { FastifyBaseLogger } from 'fastify'
import type { WebSocket } from 'ws'
import type {
  Adapter,
  AdapterHost,
  AdapterMember,
  BroadcastOptions,
  EncodedMessage,
  FetchOptions,
  RoomManager,
  WebSocketContext,
  WebSocketManager,
  WebSocketRouteGeneric,
  WebSocketStats
} from '../types/index'
import { CloseCode, MAX_ROOM_NAME_LENGTH } from './constants'
import { encode } from './codec'
import { Connection, type ConnectionRegistry } from './connection'
import { describe, errors } from './errors'
import { Heartbeat } from './heartbeat'

function assertRoom (room: unknown): asserts room is string {
  if (typeof room !== 'string' || room.length === 0 || room.length > MAX_ROOM_NAME_LENGTH) {
    throw new errors.FST_NEXUS_INVALID_ROOM(describe(room))
  }
}

/** How long cluster-wide queries wait for other instances by default, in ms. */
const DEFAULT_FETCH_TIMEOUT = 5000
/** The longest delay setTimeout honours. */
const MAX_TIMEOUT = 2 ** 31 - 1

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

function assertSocket (socket: unknown): asserts socket is WebSocket {
  if (typeof socket !== 'object' || socket === null || typeof (socket as WebSocket).send !== 'function') {
    throw new errors.FST_NEXUS_UNKNOWN_SOCKET(describe(socket))
  }
}

/**
 * `app.getWebSocket()`: rooms, broadcasting, lookups and stats. Membership and
 * delivery go through the adapter; this class owns the connection registry and
 * validates every argument it is given.
 */
export class Manager implements WebSocketManager, ConnectionRegistry {
  readonly counters = {
    messagesReceived: 0,
    messagesSent: 0,
    broadcasts: 0,
    invalidMessages: 0,
    errors: 0,
    slowConsumers: 0,
    heartbeatTimeouts: 0,
    rateLimited: 0
  }

  readonly heartbeat = new Heartbeat()
  readonly roomManager: RoomManager
  /** set by the plugin when app.close() starts */
  closing = false
  /** connections whose socket is open (they can be in rooms) */
  private readonly live = new Set<Connection>()
  /** connections whose onClose has not finished yet (a count: no per-socket entry) */
  private unsettled = 0
  private readonly adapter: Adapter
  private onIdle: (() => void) | null = null

  constructor (adapter: Adapter) {
    this.adapter = adapter
    // The seed's helper object: the same operations under short names.
    this.roomManager = Object.freeze({
      create: (room: string) => this.createRoom(room),
      join: (room: string, socket: WebSocket) => this.joinRoom(room, socket),
      leave: (room: string, socket: WebSocket) => this.leaveRoom(room, socket),
      broadcast: (room: string, data: unknown) => this.broadcast(room, data),
      list: () => this.adapter.rooms()
    })
  }

  /** What the adapter is given at init. */
  host (log: FastifyBaseLogger): AdapterHost {
    const live = this.live
    return { log, members: () => live }
  }

  // ---------------------------------------------------------- registry

  attach (connection: Connection): void {
    this.live.add(connection)
    this.unsettled++
  }

  detach (connection: Connection): void {
    this.live.delete(connection)
    this.adapter.leaveAll(connection)
  }

  settled (): void {
    this.unsettled--
    if (this.unsettled === 0 && this.onIdle !== null) this.onIdle()
  }

  // ---------------------------------------------------------- rooms

  createRoom (room: string): void {
    assertRoom(room)
    this.adapter.createRoom(room)
  }

  joinRoom (room: string, socket: WebSocket): void {
    assertRoom(room)
    const connection = this.connectionOf(socket)
    // A socket that has closed already left all its rooms; joining again would leak it.
    if (connection.closed) return
    if (!connection.route.rooms) throw new errors.FST_NEXUS_ROOMS_DISABLED(connection.route.url)
    this.adapter.join(room, connection)
  }

  leaveRoom (room: string, socket: WebSocket): void {
    assertRoom(room)
    this.adapter.leave(room, this.connectionOf(socket))
  }

  deleteRoom (room: string): boolean {
    assertRoom(room)
    return this.adapter.deleteRoom(room)
  }

  hasRoom (room: string): boolean {
    assertRoom(room)
    return this.adapter.hasRoom(room)
  }

  roomSize (room: string): number {
    assertRoom(room)
    return this.adapter.roomSize(room)
  }

  socketsIn (room: string): WebSocket[] {
    assertRoom(room)
    const sockets: WebSocket[] = []
    for (const member of this.adapter.membersOf(room)) sockets.push(member.socket)
    return sockets
  }

  roomsOf (socket: WebSocket): string[] {
    assertSocket(socket)
    const connection = this.own(socket)
    return connection === undefined ? [] : [...this.adapter.roomsOf(connection)]
  }

  contextOf<G extends WebSocketRouteGeneric = WebSocketRouteGeneric> (socket: WebSocket): WebSocketContext<G> | undefined {
    assertSocket(socket)
    return this.own(socket)?.ctx as WebSocketContext<G> | undefined
  }

  get connections (): number {
    return this.live.size
  }

  stats (): WebSocketStats {
    return {
      // The adapter's own counters (e.g. the Redis adapter's), never in place of the manager's.
      ...this.adapter.stats?.(),
      connections: this.live.size,
      rooms: this.adapter.rooms().length,
      ...this.counters
    }
  }

  // ---------------------------------------------------------- cluster-wide queries
  // An adapter for several instances answers for all of them; without one,
  // the answer is this instance's.

  async fetchRooms (options?: FetchOptions): Promise<string[]> {
    const timeout = fetchTimeout(options)
    if (typeof this.adapter.fetchRooms !== 'function') return this.adapter.rooms()
    return await this.adapter.fetchRooms({ timeout })
  }

  async fetchRoomSize (room: string, options?: FetchOptions): Promise<number> {
    assertRoom(room)
    const timeout = fetchTimeout(options)
    if (typeof this.adapter.fetchRoomSize !== 'function') return this.adapter.roomSize(room)
    return await this.adapter.fetchRoomSize(room, { timeout })
  }

  async fetchConnections (options?: FetchOptions): Promise<number> {
    const timeout = fetchTimeout(options)
    if (typeof this.adapter.fetchConnections !== 'function') return this.live.size
    return await this.adapter.fetchConnections({ timeout })
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
    return this.publish(encode(data), rooms, options)
  }

  broadcastAll (data: unknown, options?: BroadcastOptions): number {
    return this.publish(encode(data), null, options)
  }

  send (socket: WebSocket, data: unknown): boolean {
    assertSocket(socket)
    const message = encode(data)
    const connection = this.own(socket)
    let written: boolean
    if (connection !== undefined) {
      written = connection.deliver(message)
    } else {
      // A socket of a plain @fastify/websocket route: same encoding, written directly.
      written = socket.readyState === 1
      if (written) socket.send(message.data, { binary: message.binary })
    }
    if (written) this.counters.messagesSent++
    return written
  }

  private publish (message: EncodedMessage, rooms: readonly string[] | null, options: BroadcastOptions | undefined): number {
    let except: Set<AdapterMember> | null = null
    let exceptIds: Set<string> | null = null
    if (options?.except !== undefined) {
      exceptIds = new Set()
      except = this.exceptSet(options.except, exceptIds)
      if (exceptIds.size === 0) exceptIds = null
    }
    const written = this.adapter.broadcast(message, { rooms, except, exceptIds })
    this.counters.broadcasts++
    this.counters.messagesSent += written
    return written
  }

  /** The local members `except` names; the connection ids it gives (sockets of any instance) go into `ids`. */
  private exceptSet (except: NonNullable<BroadcastOptions['except']>, ids: Set<string>): Set<AdapterMember> {
    const set = new Set<AdapterMember>()
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
    return connection !== undefined && connection.registry === this ? connection : undefined
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
    this.closing = true
    this.heartbeat.stop()
    for (const connection of this.live) connection.close(CloseCode.GOING_AWAY, 'Server shutting down')
    for (const socket of others) {
      if (socket.readyState <= 1) socket.close(CloseCode.GOING_AWAY, 'Server shutting down')
    }
    if (this.unsettled > 0) {
      let timer: NodeJS.Timeout | undefined
      await new Promise<void>((resolve) => {
        this.onIdle = resolve
        timer = setTimeout(resolve, timeout)
      })
      clearTimeout(timer)
      this.onIdle = null
    }
    for (const connection of this.live) connection.socket.terminate()
    for (const socket of others) socket.terminate()
  }
}
