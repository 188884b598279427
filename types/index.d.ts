/// <reference types="node" />
// The public contract of fastify-nexus-realtime. lib/ imports its public types
// from this file, so the declarations and the implementation cannot drift.
import type {
  FastifyBaseLogger,
  FastifyPluginAsync,
  FastifyRequest,
  RawServerBase,
  RawServerDefault,
  RawRequestDefaultExpression,
  RawReplyDefaultExpression,
  FastifyTypeProvider,
  FastifyTypeProviderDefault
} from 'fastify'
import type { FastifyError, FastifyErrorConstructor } from '@fastify/error'
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http'
import type { ServerOptions, WebSocket } from 'ws'

declare module 'fastify' {
  interface FastifyInstance<
    RawServer extends RawServerBase = RawServerDefault,
    RawRequest extends RawRequestDefaultExpression<RawServer> = RawRequestDefaultExpression<RawServer>,
    RawReply extends RawReplyDefaultExpression<RawServer> = RawReplyDefaultExpression<RawServer>,
    Logger extends FastifyBaseLogger = FastifyBaseLogger,
    TypeProvider extends FastifyTypeProvider = FastifyTypeProviderDefault
  > {
    /**
     * Declares a WebSocket route: one Fastify `GET` route whose `auth` runs
     * before the upgrade, then the connection's lifecycle handlers.
     * Hooks, decorators and the `prefix` of the instance it is called on apply.
     */
    ws<G extends nexusRealtime.WebSocketRouteGeneric = nexusRealtime.WebSocketRouteGeneric>(
      path: string,
      config: nexusRealtime.WebSocketRouteConfig<G>
    ): FastifyInstance<RawServer, RawRequest, RawReply, Logger, TypeProvider>

    /** The room manager: rooms, broadcasting and lookups, usable from any handler. */
    getWebSocket(): nexusRealtime.WebSocketManager
  }
}

type NexusRealtimePlugin = FastifyPluginAsync<nexusRealtime.NexusRealtimeOptions> & {
  default: NexusRealtimePlugin
  nexusRealtime: NexusRealtimePlugin
  MemoryAdapter: typeof nexusRealtime.MemoryAdapter
  errors: typeof nexusRealtime.errors
  CloseCode: typeof nexusRealtime.CloseCode
  ErrorFrameCode: typeof nexusRealtime.ErrorFrameCode
}

declare namespace nexusRealtime {
  /** Any value `broadcast` and `send` accept: strings go as text, binary as binary, the rest as JSON. */
  export type OutgoingData = unknown

  // ---------------------------------------------------------------- options

  /** Options of `ws`'s server that the plugin passes on (`noServer`, `server`, `port` and `path` are the plugin's). */
  export type WebSocketServerOptions = Omit<ServerOptions, 'noServer' | 'server' | 'port' | 'host' | 'path'>

  export interface NexusRealtimeOptions {
    /**
     * Where broadcasts go beyond this process.
     * @default new MemoryAdapter() (one process)
     */
    adapter?: Adapter
    /**
     * Options for `ws`'s server, used when the plugin registers `@fastify/websocket` itself.
     * @default { maxPayload: 1048576 }
     */
    websocket?: WebSocketServerOptions
    /**
     * How long `app.close()` waits, in milliseconds, for `onClose` handlers after
     * closing every socket with 1001; sockets still open then are terminated.
     * @default 5000
     */
    shutdownTimeout?: number
  }

  // ---------------------------------------------------------------- routes

  /** Type parameters of `app.ws<…>()`: each one is optional. */
  export interface WebSocketRouteGeneric {
    /** the value `auth` returns, seen as `ctx.user` */
    user?: unknown
    /** the parsed inbound message given to `onMessage` */
    message?: unknown
    /** the shape of `ctx.metadata` */
    metadata?: Record<string, any>
    /** route params, `ctx.params` */
    params?: unknown
    /** the querystring, `ctx.query` */
    query?: unknown
  }

  // A member the generic leaves out, or leaves optional (as the default generic
  // itself does), keeps its default: `app.ws('/x', …)` without type arguments
  // gets `any` users and messages and a plain `Record<string, any>` metadata.
  type Field<G, K extends keyof WebSocketRouteGeneric, Default> =
    K extends keyof G ? ({} extends Pick<G, K> ? Default : G[K]) : Default

  export type UserOf<G> = Field<G, 'user', any>
  export type MessageOf<G> = Field<G, 'message', any>
  export type MetadataOf<G> = Field<G, 'metadata', Record<string, any>>
  export type ParamsOf<G> = Field<G, 'params', Record<string, string>>
  export type QueryOf<G> = Field<G, 'query', Record<string, string | string[]>>

  /** How inbound frames become the `message` argument of `onMessage`. */
  export type ParseMode = 'json' | 'text' | 'binary'
  export type MessageParser = (data: Buffer, isBinary: boolean) => unknown

  /**
   * What a lifecycle handler returns: a promise is awaited, any value is ignored,
   * so a concise arrow such as `(socket, message) => manager.broadcast('room', message)`
   * is a valid `onMessage`.
   */
  export type HandlerResult = unknown

  export interface WebSocketRouteConfig<G extends WebSocketRouteGeneric = WebSocketRouteGeneric> {
    /**
     * Runs as the route's `preValidation` hook, before the upgrade. Its return
     * value becomes `ctx.user`. A throw answers the handshake with the error's
     * own 4xx/5xx `statusCode`, else 401; no socket is created.
     */
    auth?: (ctx: WebSocketContext<G>) => UserOf<G> | Promise<UserOf<G>>
    /** After the upgrade, before `onConnect`. A throw goes to `onError`, then close 1011. */
    beforeConnect?: (socket: WebSocket, ctx: WebSocketContext<G>) => HandlerResult
    /** The connection is registered (rooms usable). A throw goes to `onError`, then close 1011. */
    onConnect?: (socket: WebSocket, ctx: WebSocketContext<G>) => HandlerResult
    /** One call per inbound message, in arrival order, one at a time per connection. */
    onMessage?: (socket: WebSocket, message: MessageOf<G>, ctx: WebSocketContext<G>) => HandlerResult
    /**
     * Exactly once, after `onConnect` settled and after the socket left all its rooms.
     * `code` is the peer's close code or, when the server closed first and the peer
     * never answered, the code the server sent (1001, 1009, 1011…).
     */
    onClose?: (socket: WebSocket, ctx: WebSocketContext<G>, code: number, reason: Buffer) => HandlerResult
    /** Socket errors and every handler error. Without it they go to the request's logger. */
    onError?: (socket: WebSocket, error: Error, ctx: WebSocketContext<G>) => HandlerResult
    /**
     * With `false`, joining a room with a socket of this route throws `FST_NEXUS_ROOMS_DISABLED`.
     * @default true
     */
    rooms?: boolean
    /**
     * How inbound frames are parsed: `'json'` (text frames as JSON, binary as `Buffer`),
     * `'text'` (text frames as strings, binary as `Buffer`), `'binary'` (every frame as
     * `Buffer`), or a function `(data, isBinary) => message`.
     * @default 'json'
     */
    parse?: ParseMode | MessageParser
  }

  // ---------------------------------------------------------------- context

  export interface WebSocketContext<G extends WebSocketRouteGeneric = WebSocketRouteGeneric> {
    /** A unique id of this connection. */
    readonly id: string
    /** The requested path without its query string, e.g. `/ws/game/42`. */
    readonly path: string
    /** The parsed querystring. */
    readonly query: QueryOf<G>
    /** The handshake's headers. */
    readonly headers: IncomingHttpHeaders
    /** Route params, e.g. `{ id: '42' }` for `/ws/game/:id`. */
    readonly params: ParamsOf<G>
    /** What `auth` returned; `undefined` without `auth`. */
    user: UserOf<G>
    /** A per-connection object, `{}` to start. */
    metadata: MetadataOf<G>
    /** The raw Node.js request of the handshake. */
    readonly raw: { readonly req: IncomingMessage }
    /** The Fastify request of the handshake. */
    readonly request: FastifyRequest
    /** A child of the request's logger carrying `connectionId`. */
    readonly log: FastifyBaseLogger
  }

  // ---------------------------------------------------------------- manager

  export interface BroadcastOptions {
    /** A socket, or sockets, that must not receive this broadcast (e.g. the sender). */
    except?: WebSocket | readonly WebSocket[]
  }

  export interface WebSocketStats {
    /** open connections of `app.ws` routes on this instance */
    connections: number
    /** rooms on this instance */
    rooms: number
    /** inbound messages received */
    messagesReceived: number
    /** frames written by `broadcast`, `broadcastAll` and `send` */
    messagesSent: number
    /** calls of `broadcast`, `broadcastAll` and `roomManager.broadcast` */
    broadcasts: number
    /** inbound frames answered with an error frame (`INVALID_JSON`, `INVALID_MESSAGE`) */
    invalidMessages: number
    /** errors thrown by route handlers or emitted by sockets */
    errors: number
  }

  /** The seed's room helper, kept as it is. */
  export interface RoomManager {
    create(room: string): void
    join(room: string, socket: WebSocket): void
    leave(room: string, socket: WebSocket): void
    broadcast(room: string, data: OutgoingData): number
    list(): string[]
  }

  export interface WebSocketManager {
    /** Creates a room that stays, even empty, until `deleteRoom`. */
    createRoom(room: string): void
    /** Adds a socket to a room (creating it); joining twice is a no-op, after close too. */
    joinRoom(room: string, socket: WebSocket): void
    /** Removes a socket from a room; a room joined implicitly vanishes when empty. */
    leaveRoom(room: string, socket: WebSocket): void
    /**
     * Sends `data` (encoded once) to every OPEN socket of the room, or of
     * several rooms (each socket once). Returns the number of local sockets written to.
     */
    broadcast(room: string | readonly string[], data: OutgoingData, options?: BroadcastOptions): number
    /** Sends `data` to every connection of every `app.ws` route. */
    broadcastAll(data: OutgoingData, options?: BroadcastOptions): number
    /** Sends `data` to one socket with the broadcast encoding; `false` when it is not OPEN. */
    send(socket: WebSocket, data: OutgoingData): boolean
    /** Removes a room and all its members from it. Returns whether it existed. */
    deleteRoom(room: string): boolean
    hasRoom(room: string): boolean
    roomSize(room: string): number
    socketsIn(room: string): WebSocket[]
    roomsOf(socket: WebSocket): string[]
    contextOf<G extends WebSocketRouteGeneric = WebSocketRouteGeneric>(socket: WebSocket): WebSocketContext<G> | undefined
    /** Open connections of `app.ws` routes on this instance. */
    readonly connections: number
    stats(): WebSocketStats
    readonly roomManager: RoomManager
  }

  // ---------------------------------------------------------------- adapters

  /** A message encoded once for every socket it goes to. */
  export interface EncodedMessage {
    readonly data: Buffer
    readonly binary: boolean
  }

  /** A local connection as an adapter sees it. */
  export interface AdapterMember {
    readonly id: string
    readonly socket: WebSocket
    /** Writes an encoded message to this socket; `false` when it is not OPEN. */
    deliver(message: EncodedMessage): boolean
  }

  export interface BroadcastTarget {
    /** the rooms to reach; `null` for every connection */
    readonly rooms: readonly string[] | null
    /** members that must not receive it */
    readonly except: ReadonlySet<AdapterMember> | null
  }

  /** What the plugin gives an adapter at `init`. */
  export interface AdapterHost {
    readonly log: FastifyBaseLogger
    /** every local connection */
    members(): Iterable<AdapterMember>
  }

  /**
   * Where rooms live and where a broadcast goes. The manager calls every
   * method here and nothing else; `MemoryAdapter` is the default.
   */
  export interface Adapter {
    init(host: AdapterHost): void | Promise<void>
    createRoom(room: string): void
    deleteRoom(room: string): boolean
    hasRoom(room: string): boolean
    join(room: string, member: AdapterMember): void
    leave(room: string, member: AdapterMember): void
    leaveAll(member: AdapterMember): void
    roomSize(room: string): number
    membersOf(room: string): Iterable<AdapterMember>
    roomsOf(member: AdapterMember): Iterable<string>
    rooms(): string[]
    /** Delivers to the local members of the target; returns how many were written to. */
    broadcast(message: EncodedMessage, target: BroadcastTarget): number
    close(): void | Promise<void>
  }

  /** The embedded, single-process adapter. */
  export class MemoryAdapter implements Adapter {
    constructor ()
    init (host: AdapterHost): void
    createRoom (room: string): void
    deleteRoom (room: string): boolean
    hasRoom (room: string): boolean
    join (room: string, member: AdapterMember): void
    leave (room: string, member: AdapterMember): void
    leaveAll (member: AdapterMember): void
    roomSize (room: string): number
    membersOf (room: string): Iterable<AdapterMember>
    roomsOf (member: AdapterMember): Iterable<string>
    rooms (): string[]
    broadcast (message: EncodedMessage, target: BroadcastTarget): number
    close (): void
  }

  // ---------------------------------------------------------------- codes

  /** Close codes the plugin uses. */
  export const CloseCode: {
    /** the server is shutting down */
    readonly GOING_AWAY: 1001
    /** a frame broke the WebSocket protocol */
    readonly PROTOCOL_ERROR: 1002
    /** a text frame was not valid UTF-8 */
    readonly INVALID_PAYLOAD: 1007
    /** a frame was larger than `maxPayload` */
    readonly MESSAGE_TOO_BIG: 1009
    /** `beforeConnect` or `onConnect` threw */
    readonly INTERNAL_ERROR: 1011
  }

  /** `code` of the error frames the plugin sends to clients. */
  export const ErrorFrameCode: {
    readonly INVALID_JSON: 'INVALID_JSON'
    readonly INVALID_MESSAGE: 'INVALID_MESSAGE'
  }

  /** The coded errors the plugin throws or answers with. */
  export const errors: {
    FST_NEXUS_INVALID_OPTION: FastifyErrorConstructor<{ code: 'FST_NEXUS_INVALID_OPTION' }, [string, string, string]>
    FST_NEXUS_INVALID_ROUTE: FastifyErrorConstructor<{ code: 'FST_NEXUS_INVALID_ROUTE' }, [string, string, string, string]>
    FST_NEXUS_INVALID_ROOM: FastifyErrorConstructor<{ code: 'FST_NEXUS_INVALID_ROOM' }, [string]>
    FST_NEXUS_UNKNOWN_SOCKET: FastifyErrorConstructor<{ code: 'FST_NEXUS_UNKNOWN_SOCKET' }, [string]>
    FST_NEXUS_ROOMS_DISABLED: FastifyErrorConstructor<{ code: 'FST_NEXUS_ROOMS_DISABLED' }, [string]>
    FST_NEXUS_INVALID_DATA: FastifyErrorConstructor<{ code: 'FST_NEXUS_INVALID_DATA' }, [string]>
    FST_NEXUS_UNAUTHORIZED: FastifyErrorConstructor<{ code: 'FST_NEXUS_UNAUTHORIZED', statusCode: 401 }, []>
    FST_NEXUS_SHUTTING_DOWN: FastifyErrorConstructor<{ code: 'FST_NEXUS_SHUTTING_DOWN', statusCode: 503 }, []>
  }

  export type NexusErrorCode = keyof typeof errors
  export type { FastifyError }

  export const nexusRealtime: NexusRealtimePlugin
  export { nexusRealtime as default }
}

declare function nexusRealtime (...params: Parameters<NexusRealtimePlugin>): ReturnType<NexusRealtimePlugin>
export = nexusRealtime
