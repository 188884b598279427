/// <reference types="node" />
// The public contract of fastify-nexus-realtime. lib/ imports its public types
// from this file, so the declarations and the implementation cannot drift.
import type {
  FastifyBaseLogger,
  FastifyPluginAsync,
  RouteShorthandOptions,
  FastifyRequest,
  RawServerBase,
  RawServerDefault,
  RawRequestDefaultExpression,
  RawReplyDefaultExpression,
  FastifyTypeProvider,
  FastifyTypeProviderDefault
} from 'fastify'
import type { CallValidatorTypeProvider } from 'fastify/types/type-provider'
import type { FastifyError, FastifyErrorConstructor } from '@fastify/error'
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http'
import type { ServerOptions, WebSocket } from 'ws'
// The plugin registers @fastify/websocket: its additions to Fastify's types
// (`app.injectWS()` for tests without `listen`, `app.websocketServer`,
// `request.ws`) come with this package's. ws's types are @types/ws, a
// dependency of this package, so a strict project needs nothing more.
import type {} from '@fastify/websocket'

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
    ws<
      G extends nexusRealtime.WebSocketRouteGeneric = nexusRealtime.WebSocketRouteGeneric,
      const S extends nexusRealtime.WebSocketRouteSchema = nexusRealtime.WebSocketRouteSchema
    >(
      path: string,
      config: nexusRealtime.WebSocketRouteConfig<nexusRealtime.ResolveRouteGeneric<G, S, TypeProvider>> & { schema?: S }
    ): FastifyInstance<RawServer, RawRequest, RawReply, Logger, TypeProvider>

    /** The room manager: rooms, broadcasting and lookups, usable from any handler. */
    getWebSocket(): nexusRealtime.WebSocketManager
  }
}

type NexusRealtimePlugin = FastifyPluginAsync<nexusRealtime.NexusRealtimeOptions> & {
  default: NexusRealtimePlugin
  nexusRealtime: NexusRealtimePlugin
  MemoryAdapter: typeof nexusRealtime.MemoryAdapter
  RedisAdapter: typeof nexusRealtime.RedisAdapter
  redisAdapter: typeof nexusRealtime.redisAdapter
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
    /**
     * Pings every socket each `interval` ms from one shared timer; a socket that
     * has not answered the previous ping by the next tick is terminated.
     * `false` turns it off. Routes may override it.
     * @default { interval: 30000 }
     */
    heartbeat?: HeartbeatOptions | false
    /**
     * A socket whose unsent bytes would exceed this on a write is a slow consumer:
     * it is closed with 1013 (terminated if the close does not finish promptly).
     * Routes may override it.
     * @default 4194304 (4 MiB)
     */
    maxBufferedBytes?: number
    /**
     * Bytes of received messages a connection may hold waiting for `onMessage`
     * (beside the 1024-message mark): past it, the plugin stops reading from
     * the socket until the queue is worked off, so that a client sending faster
     * than `onMessage` completes is slowed down by TCP. The queue may pass it by
     * the message that crossed it and the frames ws had already read with it.
     * Routes may override it.
     * @default 4194304 (4 MiB)
     */
    maxInboundBytes?: number
    /**
     * Per-connection token bucket: `max` messages per `windowMs`. Excess messages
     * get a `RATE_LIMITED` error frame and are dropped; more than `2 × max` in one
     * window closes the connection with 1008. Off by default; routes may override it.
     * @default false
     */
    rateLimit?: RateLimitOptions | false
    /**
     * Origins allowed to open a WebSocket: a list of exact origins (or RegExps),
     * or a predicate. Any other `Origin` gets 403 before the upgrade; a request
     * without `Origin` (not a browser) is allowed.
     * @default any origin
     */
    allowedOrigins?: ReadonlyArray<string | RegExp> | OriginPredicate
    /**
     * What some rooms keep: keys are exact room names or prefixes ending in
     * `*` (`'chat:*'`); the longest match wins. A room with a `history` policy
     * numbers its messages and keeps the last ones, so that a client that
     * reconnects gets exactly what it missed. Rooms without a policy keep the
     * plain path and its cost.
     * @default {}
     */
    roomPolicies?: Readonly<Record<string, RoomPolicy>>
    /**
     * Milliseconds `auth` may take: a handshake whose `auth` has not settled
     * by then is refused with 503 `FST_NEXUS_AUTH_TIMEOUT` (a `nexus.v1`
     * client: close 4503). Routes may override it.
     * @default 10000
     */
    authTimeout?: number
    /**
     * `'positional'` makes the `listen` of the instance the plugin is
     * registered on also take the Nexus document's `listen(port, callback)`,
     * `listen(port, host, callback)`, `listen(port[, host])` and
     * `listen(path)`. Off by default: Fastify's `listen` is left alone. Its
     * types are a separate opt-in: `import 'fastify-nexus-realtime/listen'`.
     */
    listen?: 'positional'
    /**
     * Prometheus metrics through `prom-client` (an optional peer dependency,
     * loaded only when this is set): `true` registers them on prom-client's
     * default registry, beside what `fastify-metrics` or
     * `@fastify/under-pressure` export there; an object chooses the registry,
     * a name prefix and the room classes broadcasts are labelled with. Off:
     * nothing is loaded and nothing listens.
     * @default false
     */
    metrics?: boolean | MetricsOptions
  }

  /**
   * The part of a `prom-client` `Registry` the plugin uses; a prom-client
   * (v15) `Registry`, `register` included, is one.
   */
  export interface MetricsRegistry {
    registerMetric(metric: any): void
    getSingleMetric(name: string): unknown
    removeSingleMetric(name: string): void
    metrics(): Promise<string>
  }

  /** `metrics: { … }`: where the plugin's Prometheus metrics go and how broadcasts are labelled. */
  export interface MetricsOptions {
    /**
     * The registry the metrics are registered on. Apps of one process that
     * turn metrics on share one registry (see the README, "Prometheus metrics").
     * @default prom-client's default registry (`register`)
     */
    registry?: MetricsRegistry
    /**
     * Put before every name: `'myapp_'` gives `myapp_nexus_connections`.
     * @default ''
     */
    prefix?: string
    /**
     * The `room_class` label of a broadcast's room: a few kinds of rooms,
     * never the room name itself. At most `maxRoomClasses` distinct values are
     * kept; further ones, non-strings and throws count as `other`.
     * @default the text before the first `:` (`chat:42` → `chat`), `other` without one
     */
    roomClass?: (room: string) => string
    /**
     * How many distinct room classes are kept as labels (0 to 100).
     * @default 10
     */
    maxRoomClasses?: number
  }

  /** What a room (or every room of a prefix) keeps. */
  export interface RoomPolicy {
    /** Keep the last messages of the room, so that clients resume after a reconnect. */
    history?: HistoryPolicy
    /**
     * Track who is in the room, by the route's `presence.key` (one member per
     * key, however many connections it has): `manager.presence(room)`, and
     * clients that subscribe with `presence: true`. `true` is `{}`.
     */
    presence?: boolean | PresencePolicy
  }

  export interface PresencePolicy {
    /**
     * A room with more members than this sends presence subscribers counts
     * (`{ members, connections }`) instead of member changes; from 1 to 100000.
     * @default 1000
     */
    listLimit?: number
  }

  /** A member of a presence room: one key, with the meta of one of its connections and how many it has. */
  export interface PresenceMember {
    key: string
    meta: unknown
    connections: number
  }

  /** How many members (keys) and connections a presence room has, across instances. */
  export interface PresenceCount {
    members: number
    connections: number
  }

  /** The route option `presence`: who a connection is in presence rooms. */
  export interface PresenceOptions<G extends WebSocketRouteGeneric = WebSocketRouteGeneric> {
    /**
     * The member a connection counts as (a user id, say): connections with the
     * same key are one member. A string (a number is turned into one).
     * @default (ctx) => ctx.id
     */
    key?: (ctx: WebSocketContext<G>) => string | number
    /** What the member's listing carries (JSON, at most 4 KiB), e.g. `{ name }`. @default null */
    meta?: (ctx: WebSocketContext<G>) => unknown
  }

  export interface HistoryPolicy {
    /** messages kept per room (the newest ones), from 1 to 100000 */
    size: number
    /** milliseconds each message is kept, from 1 to 2147483647 */
    ttl: number
  }

  /**
   * Where a message stands in its room's history: `offset` grows by one per
   * message of the room, across all instances; a new `epoch` means the
   * history was lost and older offsets mean nothing.
   */
  export interface Position {
    offset: number
    epoch: string
  }

  export interface HistoryQuery {
    /** only messages after this offset (of the current epoch) */
    since?: number
    /**
     * at most this many messages: the newest ones, or the first ones after `since`
     * @default the room's history size
     */
    limit?: number
  }

  export interface HistoryPage {
    /** the room's latest position */
    position: Position
    /** oldest first; `data` as a client receives it: JSON parsed when it parses, else the string; bytes for binary */
    messages: Array<{ offset: number, data: unknown }>
  }

  export interface HeartbeatOptions {
    /** milliseconds between pings; a dead peer is terminated within two intervals */
    interval: number
  }

  export interface RateLimitOptions {
    /** messages allowed per window */
    max: number
    /** the window, in milliseconds */
    windowMs: number
  }

  /** Decides whether a browser `Origin` may open a WebSocket. */
  export type OriginPredicate = (origin: string, request: FastifyRequest) => boolean | Promise<boolean>

  /** Route schemas: Fastify's own parts, checked before the upgrade (400), plus `message`. */
  export interface WebSocketRouteSchema {
    querystring?: unknown
    params?: unknown
    headers?: unknown
    /** A JSON schema every inbound message must match, compiled once with the instance's validator compiler. */
    message?: unknown
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

  // What a schema gives a generic member the generic does not set itself,
  // through the instance's type provider (TypeBox, JSON Schema to TS…). A
  // provider that yields `unknown` (none) leaves the default.
  type FromSchema<G, K extends keyof WebSocketRouteGeneric, S, SK extends keyof WebSocketRouteSchema, TP extends FastifyTypeProvider> =
    K extends keyof G ? ({} extends Pick<G, K> ? SchemaType<K, S, SK, TP> : unknown) : SchemaType<K, S, SK, TP>
  type SchemaType<K extends keyof WebSocketRouteGeneric, S, SK extends keyof WebSocketRouteSchema, TP extends FastifyTypeProvider> =
    SK extends keyof S
      ? (unknown extends S[SK] ? unknown : (unknown extends CallValidatorTypeProvider<TP, S[SK]> ? unknown : { [P in K]: CallValidatorTypeProvider<TP, S[SK]> }))
      : unknown

  /** The generic of a route once its schema has been read through the type provider. */
  export type ResolveRouteGeneric<G, S, TP extends FastifyTypeProvider> = G &
    FromSchema<G, 'message', S, 'message', TP> &
    FromSchema<G, 'params', S, 'params', TP> &
    FromSchema<G, 'query', S, 'querystring', TP>

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

  /**
   * The Fastify route options a ws route honours: hooks that run before the
   * upgrade (after the plugin's own origin check and `auth` of the same
   * phase), `onResponse` (a refused handshake), `config` (seen as
   * `request.routeOptions.config`), `logLevel`, `constraints`, … Fastify's
   * `handler`, `method`, `url`, `onSend`, `preSerialization` and the other
   * options that cannot apply to a socket are rejected by `app.ws`.
   */
  export type WebSocketRouteFastifyOptions = Pick<RouteShorthandOptions,
    'onRequest' | 'preParsing' | 'preValidation' | 'preHandler' | 'onResponse' | 'onTimeout' | 'onRequestAbort' |
    'config' | 'logLevel' | 'logSerializers' | 'childLoggerFactory' | 'constraints' | 'prefixTrailingSlash' |
    'exposeHeadRoute' | 'errorHandler' | 'schemaErrorFormatter' | 'validatorCompiler'>

  export interface WebSocketRouteConfig<G extends WebSocketRouteGeneric = WebSocketRouteGeneric> extends WebSocketRouteFastifyOptions {
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
     * An object enables rooms and lets `nexus.v1` clients subscribe to rooms
     * themselves, each subscribe checked by `authorize` (without it, every
     * subscribe is refused with `NOT_ENABLED`).
     * @default true
     */
    rooms?: boolean | RoomsOptions<G>
    /**
     * How inbound frames are parsed: `'json'` (text frames as JSON, binary as `Buffer`),
     * `'text'` (text frames as strings, binary as `Buffer`), `'binary'` (every frame as
     * `Buffer`), or a function `(data, isBinary) => message`.
     * @default 'json'
     */
    parse?: ParseMode | MessageParser
    /** Route schemas: `querystring`, `params`, `headers` (400 before the upgrade) and `message`. */
    schema?: WebSocketRouteSchema
    /** This route's heartbeat, or `false` for none. @default the plugin's `heartbeat` */
    heartbeat?: HeartbeatOptions | false
    /** This route's slow-consumer limit in bytes. @default the plugin's `maxBufferedBytes` */
    maxBufferedBytes?: number
    /** This route's bound on queued inbound bytes. @default the plugin's `maxInboundBytes` */
    maxInboundBytes?: number
    /** This route's rate limit, or `false` for none. @default the plugin's `rateLimit` */
    rateLimit?: RateLimitOptions | false
    /**
     * Who this route's connections are in rooms with a `presence` policy:
     * `key` and `meta`, each computed once per connection.
     * @default { key: (ctx) => ctx.id, meta: () => null }
     */
    presence?: PresenceOptions<G>
    /** Milliseconds this route's `auth` may take (503 after). @default the plugin's `authTimeout` */
    authTimeout?: number
  }

  /**
   * What `authorize` answers: `true` lets the client subscribe; `false` refuses
   * with `FORBIDDEN`; an object refuses with its own `code` and `message`, and
   * `temporary: true` lets the client try again later.
   */
  export type AuthorizeResult = boolean | {
    allow: boolean
    /** @default 'FORBIDDEN' */
    code?: string
    message?: string
    /** @default false */
    temporary?: boolean
  }

  /** Rooms that `nexus.v1` clients subscribe to themselves. */
  export interface RoomsOptions<G extends WebSocketRouteGeneric = WebSocketRouteGeneric> {
    /**
     * Decides every subscribe of a client: on its first subscribe and again on
     * every reconnect. `params` is what the client passed with it (any JSON,
     * untrusted). A throw refuses with `INTERNAL` (temporary) and goes to `onError`.
     */
    authorize?: (room: string, ctx: WebSocketContext<G>, params: unknown) => AuthorizeResult | Promise<AuthorizeResult>
    /**
     * Rooms one connection may hold by its own subscribes (rooms joined by
     * server code do not count); one more is refused with `LIMIT`.
     * @default 128
     */
    maxRooms?: number
    /**
     * Milliseconds `authorize` may take; a subscribe still waiting then is
     * refused with `TIMEOUT` (temporary).
     * @default 10000
     */
    timeout?: number
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
    /**
     * What must not receive this broadcast (e.g. the sender): a socket of this
     * instance, or the connection id (`ctx.id`) of a socket on any instance, or a list of them.
     */
    except?: WebSocket | string | ReadonlyArray<WebSocket | string>
  }

  /** Options of the cluster-wide queries (`fetchRooms`, `fetchRoomSize`, `fetchConnections`). */
  export interface FetchOptions {
    /**
     * Milliseconds to wait for the other instances; those that have not answered
     * by then are left out of the result (it never hangs).
     * @default 5000
     */
    timeout?: number
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
    /** sockets closed with 1013 because their unsent bytes would exceed `maxBufferedBytes` */
    slowConsumers: number
    /** sockets terminated because they did not answer a heartbeat ping */
    heartbeatTimeouts: number
    /** inbound messages dropped by the rate limit */
    rateLimited: number
    /** messages stored in a history room by `broadcast` or `publish` (counted where they were stored) */
    historyAppended: number
    /** messages of a history room that could not be stored (and so were not delivered); `publish` rejected, `broadcast` logged */
    historyFailures: number
    /** rooms a client presented a position for and got back without a gap */
    resumeRecovered: number
    /** rooms a client presented a position for and could not get back exactly (nothing replayed) */
    resumeFailed: number
    /** messages written to resuming clients from history */
    historyReplayed: number
    /** gaps in a history room's offsets that this instance filled from the store (a lost pub/sub message, a reconnect) */
    historyGapsFilled: number
    /** writes of this instance's presence changes to the store (one per room per coalescing window) */
    presenceUpdates: number
    /** presence writes that failed (each room is written again, whole, once the store answers) */
    presenceFailures: number
    /** presence frames (snapshots, changes, counts) written to subscribers */
    presenceFrames: number
    /** counters of the adapter, from its `stats()` (the Redis adapter's are `redis…`, see `RedisAdapterStats`) */
    [adapterCounter: string]: number
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
     * A type argument checks `data`: `broadcast<ChatEvent>('chat:42', event)`.
     */
    broadcast<T extends OutgoingData = OutgoingData>(room: string | readonly string[], data: T, options?: BroadcastOptions): number
    /**
     * Broadcasts to a history room once the message is stored, and resolves
     * with its position; rejects with `FST_NEXUS_HISTORY_UNAVAILABLE` when it
     * cannot be stored (then nobody received it), `FST_NEXUS_NO_HISTORY` when
     * the room has no history policy.
     */
    publish<T extends OutgoingData = OutgoingData>(room: string, data: T, options?: BroadcastOptions): Promise<Position>
    /** The messages a history room keeps, oldest first. */
    history(room: string, options?: HistoryQuery): Promise<HistoryPage>
    /**
     * The members of a presence room across all instances, with their meta
     * and connection counts. Rejects with `FST_NEXUS_NO_PRESENCE` for a room
     * without a presence policy, `FST_NEXUS_PRESENCE_UNAVAILABLE` when the
     * store cannot be read.
     */
    presence(room: string): Promise<PresenceMember[]>
    /** How many members and connections a presence room has across all instances, in O(1). */
    presenceCount(room: string): Promise<PresenceCount>
    /** Sends `data` to every connection of every `app.ws` route. A type argument checks `data`. */
    broadcastAll<T extends OutgoingData = OutgoingData>(data: T, options?: BroadcastOptions): number
    /** Sends `data` to one socket with the broadcast encoding; `false` when it is not OPEN. A type argument checks `data`. */
    send<T extends OutgoingData = OutgoingData>(socket: WebSocket, data: T): boolean
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
    /**
     * The names of the rooms of every instance (each once). With an adapter that
     * has no other instances (memory), the rooms of this one.
     */
    fetchRooms(options?: FetchOptions): Promise<string[]>
    /** The number of members of a room on every instance. */
    fetchRoomSize(room: string, options?: FetchOptions): Promise<number>
    /** The number of connections of `app.ws` routes on every instance. */
    fetchConnections(options?: FetchOptions): Promise<number>
  }

  // ---------------------------------------------------------------- adapters

  /** A message encoded once for every socket it goes to. */
  export interface EncodedMessage {
    readonly data: Buffer
    readonly binary: boolean
  }

  /** Where a broadcast goes: the rooms to reach, or `null` for every connection. */
  export interface PublishTarget {
    readonly rooms: readonly string[] | null
    /**
     * Connection ids (`except` given as `ctx.id` strings) that must not receive
     * it, or `null`: sockets given to `except` as objects live on this instance
     * only and are skipped before the adapter is called.
     */
    readonly exceptIds: ReadonlySet<string> | null
    /**
     * The trace context of the broadcast (W3C `traceparent`, …), when a
     * subscriber of the `nexus.publish` diagnostics channel filled it in. An
     * adapter that can carries it with the message and hands it back in the
     * target of `host.deliver`; left out when empty.
     */
    readonly carrier?: Readonly<Record<string, string>>
  }

  /** What the plugin gives an adapter at `init`: this instance's side of every room. */
  export interface AdapterHost {
    readonly log: FastifyBaseLogger
    /**
     * Delivers a message another instance published to this instance's members
     * of the target (each socket once); returns how many sockets were written to.
     */
    deliver(message: EncodedMessage, target: PublishTarget): number
    /** The rooms of this instance: rooms with a local member, and rooms made by `createRoom`. */
    rooms(): string[]
    /** The local members of a room. */
    roomSize(room: string): number
    /** The local connections of `app.ws` routes. */
    connections(): number
    /**
     * A message of a history room, as the adapter's `history.append` of any
     * instance (this one's too) published it. The host delivers the messages
     * of each room in offset order: it holds back what arrives early and
     * fills a gap with `history.read`.
     */
    sequenced(room: string, position: Position, message: EncodedMessage, exceptIds: ReadonlySet<string> | null): void
    /**
     * The adapter (re)subscribed a room's channel, after a reconnect for
     * instance: the host compares what it delivered with the store's position
     * and fills the difference (or tells clients that the epoch changed).
     */
    resync(room: string): void
    /**
     * A presence room's members changed (`AdapterPresence.update` of any
     * instance, this one's too): `joined` holds the members added or changed
     * (their totals across instances), `left` the keys gone. `seq` numbers
     * the room's changes from 1 without gaps: the host reads the room again
     * when one is missing.
     */
    presenceChanged(room: string, seq: number, joined: readonly PresenceMember[], left: readonly string[]): void
    /**
     * This instance's presence entries may be gone from the store (it was
     * taken for dead and reaped, the store restarted empty): the host writes
     * them all again (`update` with `replace`).
     */
    presenceLost(): void
  }

  /** A message of a history room as a store keeps it. */
  export interface StoredMessage {
    readonly offset: number
    readonly message: EncodedMessage
    /** when it was stored (ms since the epoch) */
    readonly time: number
  }

  /** What `AdapterHistory.read` gives: the room's position and the messages after the given offset. */
  export interface HistoryRead {
    readonly position: Position
    /** oldest first, offsets contiguous; may start later than asked when older ones are gone */
    readonly messages: readonly StoredMessage[]
  }

  /**
   * The history store of an adapter whose instances share rooms (the Redis
   * adapter's streams). An adapter without one gets the plugin's in-memory
   * store, which is right for one instance only.
   */
  export interface AdapterHistory {
    /**
     * true when the store's rooms live on shards that fail independently (a
     * Redis Cluster): writes to other rooms go on succeeding while one shard
     * fails, so a run of failures is logged as ended only after a second
     * without one.
     */
    readonly sharded?: boolean
    /**
     * Stores a message of a history room and publishes it to every instance
     * that hosts the room, this one included (which delivers it through
     * `host.sequenced`), in one atomic step. Resolves with its position.
     */
    append(room: string, message: EncodedMessage, policy: HistoryPolicy, exceptIds: ReadonlySet<string> | null): Promise<Position>
    /** The room's latest position (offset 0 and a new epoch for a room with no history). */
    position(room: string): Promise<Position>
    /** Up to `limit` messages with an offset above `after`, oldest first. */
    read(room: string, after: number, limit: number): Promise<HistoryRead>
    /**
     * The store lost messages of `epoch` that an instance delivered (its
     * offsets went back): when the room is still at `epoch`, it starts
     * `candidate` at offset 0, its stored messages dropped. Resolves with the
     * room's position after.
     */
    renew(room: string, epoch: string, candidate: string): Promise<Position>
  }

  /** One key of this instance's part of a presence room, as `AdapterPresence.update` writes it. */
  export interface PresenceChange {
    readonly key: string
    /** its connections on this instance now; 0: it has none here any more */
    readonly connections: number
    /** its meta as JSON text */
    readonly meta: string
  }

  /** A presence room as a store has it: its members and the `seq` of the last change applied. */
  export interface PresenceSnapshot {
    readonly seq: number
    readonly members: readonly PresenceMember[]
  }

  /**
   * The presence store of an adapter whose instances share rooms (the Redis
   * adapter's). Each instance writes its own part of each room (its keys and
   * their connection counts); the store sums them, and tells every instance
   * hosting the room what changed through `host.presenceChanged`. An adapter
   * without one gets the plugin's in-memory store, right for one instance.
   */
  export interface AdapterPresence {
    /**
     * true when the store's rooms live on shards that fail independently (a
     * Redis Cluster): writes to other rooms go on succeeding while one shard
     * fails, so a run of failures is logged as ended only after a second
     * without one.
     */
    readonly sharded?: boolean
    /** Called once at register when a room has a presence policy: liveness (and the removal of dead instances' members) starts. */
    start(): void
    /**
     * Writes this instance's changes in a room, then tells every instance
     * hosting it (this one included) what changed in the room's members, in
     * one atomic step. `replace`: `changes` are all of this instance's keys in
     * the room, any other it had there is removed.
     */
    update(room: string, changes: readonly PresenceChange[], replace: boolean): Promise<void>
    /** The room's members across instances. */
    read(room: string): Promise<PresenceSnapshot>
    /** The room's member and connection counts, in O(1). */
    count(room: string): Promise<PresenceCount>
    /** Called at `app.close()` after the last update: liveness stops and what is left of this instance is removed. */
    stop(): Promise<void>
  }

  /**
   * A transport between instances. The plugin keeps room membership and
   * delivers every broadcast to this instance's sockets itself; an adapter is
   * told when a room gains its first local member and loses its last, sends
   * what this instance broadcasts to the others, and hands what they publish
   * to `host.deliver`. The plugin calls every method here and nothing else;
   * `MemoryAdapter` (one process, nothing to send) is the default.
   */
  export interface Adapter {
    /** Called once at register, before any other method. */
    init(host: AdapterHost): void | Promise<void>
    /** A room gained its first local member: what other instances publish to it is wanted from now on. */
    roomActive(room: string): void
    /** A room lost its last local member (it left, closed, or the room was deleted). */
    roomIdle(room: string): void
    /**
     * Sends a broadcast of this instance to the other instances; this
     * instance's sockets have been written to already. It must not throw:
     * a failure is the adapter's to count and log.
     */
    publish(message: EncodedMessage, target: PublishTarget): void
    /** Called once at `app.close()`, after every socket closed. */
    close(): void | Promise<void>
    /** Optional: the rooms of every instance. Without it, `manager.fetchRooms()` answers with this instance's. */
    fetchRooms?(options: AdapterFetchOptions): Promise<string[]>
    /** Optional: a room's members on every instance. Without it, `manager.fetchRoomSize()` answers with `roomSize()`. */
    fetchRoomSize?(room: string, options: AdapterFetchOptions): Promise<number>
    /** Optional: the connections of every instance. Without it, `manager.fetchConnections()` answers with the local count. */
    fetchConnections?(options: AdapterFetchOptions): Promise<number>
    /** Optional: counters the manager merges into `stats()` (they never replace the manager's own). */
    stats?(): Record<string, number>
    /** Optional: a history store shared by the instances; without it, history rooms are kept in this process's memory. */
    readonly history?: AdapterHistory
    /** Optional: a presence store shared by the instances; without it, presence is kept in this process's memory. */
    readonly presence?: AdapterPresence
  }

  /** `FetchOptions` as the manager hands them to an adapter: the timeout is always there. */
  export interface AdapterFetchOptions {
    /** milliseconds to wait for other instances before answering with what arrived */
    readonly timeout: number
  }

  /** The embedded, single-process adapter: rooms reach this process's sockets, nothing is sent elsewhere. */
  export class MemoryAdapter implements Adapter {
    constructor ()
    init (host: AdapterHost): void
    roomActive (room: string): void
    roomIdle (room: string): void
    publish (message: EncodedMessage, target: PublishTarget): void
    close (): void
  }

  /**
   * The part of an ioredis (5 or 6) connection the Redis adapter uses; an
   * ioredis `Redis` instance is one.
   */
  export interface RedisClient {
    readonly status: string
    publish(channel: string, message: Buffer): Promise<number>
    subscribe(...channels: string[]): Promise<unknown>
    unsubscribe(...channels: string[]): Promise<unknown>
    connect(): Promise<void>
    quit(): Promise<unknown>
    disconnect(): void
    /** used to make the subscriber connection when only `client` is given */
    duplicate?(): RedisClient
    /**
     * A command with its replies as Buffers: the history rooms' scripts
     * (EVALSHA, EVAL) run with it on `client`. Without it, every call of the
     * adapter's `history` rejects.
     */
    callBuffer?(command: string, ...args: Array<string | Buffer | number>): Promise<unknown>
    /** sharded pub/sub (ioredis ≥ 5.3): used on a Redis Cluster */
    spublish?(channel: string, message: Buffer): Promise<unknown>
    ssubscribe?(...channels: string[]): Promise<unknown>
    sunsubscribe?(...channels: string[]): Promise<unknown>
    /** true on an ioredis `Cluster`: the adapter then uses sharded pub/sub */
    readonly isCluster?: boolean
    on(event: string, listener: (...args: any[]) => void): unknown
    removeListener(event: string, listener: (...args: any[]) => void): unknown
  }

  /** A startup node of a Redis Cluster, as ioredis's `Cluster` takes it. */
  export type RedisClusterNode = string | number | { host?: string, port?: number }

  /**
   * Where the Redis adapter connects: a URL (it makes two connections with
   * ioredis and quits them on close), or your own ioredis connections, which
   * it never quits: `client` publishes, `subscriber` (a second connection, made
   * with `client.duplicate()` and then owned by the adapter when left out) subscribes.
   *
   * A Redis Cluster (sharded pub/sub, Redis ≥ 7, ioredis ≥ 5.3): its startup
   * nodes as `cluster` (the adapter makes an ioredis `Cluster` with
   * `clusterOptions`, and quits it on close), or your own ioredis `Cluster` as
   * `client` (never quit). Either way the adapter subscribes through one
   * connection of its own per master.
   */
  export type RedisConnection = (
    | { url: string, client?: never, subscriber?: never, cluster?: never }
    | { client: RedisClient, subscriber?: RedisClient, url?: never, cluster?: never }
    | { cluster: RedisClusterNode[], clusterOptions?: Record<string, unknown>, url?: never, client?: never, subscriber?: never }
  ) & {
    /** The channel prefix may also be given here, as in `redisAdapter({ url, prefix })`. */
    prefix?: string
  }

  export interface RedisAdapterOptions {
    /**
     * The prefix of every channel; the instances that share rooms use the same
     * Redis and the same prefix, and apps with another prefix do not see them.
     * @default 'nexus'
     */
    prefix?: string
  }

  /** The counters the Redis adapter adds to `manager.stats()` (a type, not an interface, so that it is a `Record<string, number>`). */
  export type RedisAdapterStats = {
    /** 1 when the connections to Redis are ready and every channel is subscribed, else 0 */
    redisConnected: number
    /** room channels subscribed: rooms with a member on this instance */
    redisRoomChannels: number
    /** broadcasts published to Redis */
    redisPublished: number
    /** broadcasts that could not be published (Redis unreachable or PUBLISH failed): they reached this instance only */
    redisPublishErrors: number
    /** broadcasts received from other instances, and messages of history rooms and presence changes (this instance's own too) */
    redisReceived: number
    /** frames written to this instance's sockets for broadcasts of other instances */
    redisDelivered: number
    /** messages from Redis that did not decode, dropped */
    redisInvalidMessages: number
    /** cluster-wide queries that answered without every instance, at their timeout */
    redisQueryTimeouts: number
    /** dead instances whose presence members this instance removed (and announced as leaves) */
    redisPresenceReaped: number
  }

  /**
   * Rooms and broadcasts shared by several instances over Redis pub/sub: each
   * broadcast is published once for the other instances, and a room's channel
   * is subscribed while the room has a local member.
   */
  export class RedisAdapter implements Adapter {
    constructor (connection: RedisConnection, options?: RedisAdapterOptions)
    /** this instance's id in the cluster (32 hex digits) */
    readonly uid: string
    /** connects and subscribes; does not fail when Redis is unreachable */
    init (host: AdapterHost): Promise<void>
    roomActive (room: string): void
    roomIdle (room: string): void
    publish (message: EncodedMessage, target: PublishTarget): void
    fetchRooms (options: AdapterFetchOptions): Promise<string[]>
    fetchRoomSize (room: string, options: AdapterFetchOptions): Promise<number>
    fetchConnections (options: AdapterFetchOptions): Promise<number>
    stats (): RedisAdapterStats
    close (): Promise<void>
    /** history rooms in Redis Streams, one stream per room */
    readonly history: AdapterHistory
    /** presence rooms in Redis hashes, with a heartbeat per instance */
    readonly presence: AdapterPresence
  }

  /**
   * The Redis adapter, for the plugin's `adapter` option:
   * `redisAdapter({ url: 'redis://127.0.0.1:6379' })` or
   * `redisAdapter({ client, subscriber }, { prefix: 'chat' })`.
   */
  export function redisAdapter (connection: RedisConnection, options?: RedisAdapterOptions): RedisAdapter

  // ---------------------------------------------------------------- diagnostics
  // What the plugin publishes on `node:diagnostics_channel` (README,
  // "Traces"). Nothing is built when a channel has no subscriber.

  /**
   * Fields the tracing channels (`nexus.auth`, `nexus.connect`,
   * `nexus.message`, `nexus.subscribe`, `nexus.publish`) add to their context
   * as the traced call goes: `async` is set before `end` when the handler
   * returned a promise (then `asyncStart` and `asyncEnd` follow when it
   * settles); `error` is set when `error` is published.
   */
  export interface TraceFields {
    async?: true
    result?: unknown
    error?: unknown
  }

  /** `nexus.auth` (tracing channel): the route's `auth`, before the upgrade. */
  export interface AuthTraceContext extends TraceFields {
    /** the route's URL pattern (`/ws/chat/:id`), never the URL */
    readonly route: string
    readonly request: FastifyRequest
  }

  /** `nexus.connect` (tracing channel): `beforeConnect` and `onConnect` together. */
  export interface ConnectTraceContext extends TraceFields {
    readonly route: string
    /** the connection id, `ctx.id` */
    readonly id: string
    readonly ctx: WebSocketContext
    readonly socket: WebSocket
    readonly request: FastifyRequest
  }

  /** `nexus.message` (tracing channel): one `onMessage` call. */
  export interface MessageTraceContext extends TraceFields {
    readonly route: string
    readonly id: string
    readonly ctx: WebSocketContext
    readonly message: unknown
    /** a `nexus.v1` request (its result answers it), not a plain message */
    readonly request: boolean
  }

  /** `nexus.subscribe` (tracing channel): a client's subscribe, its `authorize` and the join. Always asynchronous. */
  export interface SubscribeTraceContext extends TraceFields {
    readonly route: string
    readonly id: string
    readonly ctx: WebSocketContext
    readonly room: string
    /** set before `asyncStart`: whether it was allowed (and joined) */
    allowed?: boolean
  }

  /** `nexus.publish` (tracing channel, synchronous but for `manager.publish`): one broadcast, `broadcastAll` or `publish`. */
  export interface PublishTraceContext extends TraceFields {
    /** `null`: every connection */
    readonly rooms: readonly string[] | null
    /** local sockets written to, set before `end` (not for `manager.publish`) */
    recipients?: number
    /** empty at `start`; what a subscriber puts in travels to the other instances and comes back in `nexus.deliver` */
    readonly carrier: Record<string, string>
  }

  /** `nexus.deliver`: a broadcast of another instance, delivered to this one's sockets. */
  export interface DeliverEvent {
    readonly rooms: readonly string[] | null
    readonly recipients: number
    /** the publisher's `nexus.publish` carrier, as it was sent (`{}` when it was empty) */
    readonly carrier: Readonly<Record<string, string>>
  }

  /** `nexus.connection.open`: a connection was accepted. */
  export interface ConnectionOpenEvent {
    readonly route: string
    readonly id: string
    readonly protocol: 'raw' | 'nexus.v1'
    readonly request: FastifyRequest
  }

  /** `nexus.connection.close`: a connection's socket closed (before its `onClose` runs). */
  export interface ConnectionCloseEvent {
    readonly route: string
    readonly id: string
    /** the close code `onClose` gets */
    readonly code: number
    /** milliseconds since it was accepted */
    readonly duration: number
    readonly messagesIn: number
    readonly messagesOut: number
  }

  /** `nexus.connection.refused`: a handshake answered without a connection. */
  export interface ConnectionRefusedEvent {
    /** the route's pattern; `null` for a `shutdown` refusal, answered before routing */
    readonly route: string | null
    readonly reason: 'auth' | 'origin' | 'schema' | 'timeout' | 'shutdown'
    /** the HTTP status, or the one a `nexus.v1` client's 4000 + status close stands for */
    readonly statusCode: number
  }

  /** `nexus.redis.publish`: a broadcast's PUBLISH answered (`duration`, ms) or failed (`error`). */
  export type RedisPublishEvent = { readonly duration: number, readonly error?: undefined } | { readonly error: Error, readonly duration?: undefined }

  /** `nexus.redis.lag`: ms from a broadcast's publish on another instance to its receipt here (0 when the clocks disagree). */
  export interface RedisLagEvent {
    readonly lag: number
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
    /** more than `2 × rateLimit.max` messages in one window */
    readonly POLICY_VIOLATION: 1008
    /** a frame was larger than `maxPayload` */
    readonly MESSAGE_TOO_BIG: 1009
    /** `beforeConnect` or `onConnect` threw */
    readonly INTERNAL_ERROR: 1011
    /** a slow consumer: its unsent bytes would exceed `maxBufferedBytes` */
    readonly TRY_AGAIN_LATER: 1013
  }

  /** `code` of the error frames the plugin sends to clients. */
  export const ErrorFrameCode: {
    readonly INVALID_JSON: 'INVALID_JSON'
    readonly INVALID_MESSAGE: 'INVALID_MESSAGE'
    readonly RATE_LIMITED: 'RATE_LIMITED'
    /** `nexus.v1`: a frame that does not decode */
    readonly INVALID_FRAME: 'INVALID_FRAME'
    /** `nexus.v1`: a request whose handler failed (its message is never sent) */
    readonly INTERNAL: 'INTERNAL'
    /** `nexus.v1`: a subscribe on a route without `rooms.authorize` */
    readonly NOT_ENABLED: 'NOT_ENABLED'
    /** `nexus.v1`: a subscribe to a name that is not a room name */
    readonly INVALID_ROOM: 'INVALID_ROOM'
    /** `nexus.v1`: `authorize` refused */
    readonly FORBIDDEN: 'FORBIDDEN'
    /** `nexus.v1`: over `rooms.maxRooms` */
    readonly LIMIT: 'LIMIT'
    /** `nexus.v1`: `authorize` took longer than `rooms.timeout` */
    readonly TIMEOUT: 'TIMEOUT'
  }

  /** The coded errors the plugin throws or answers with. */
  export const errors: {
    FST_NEXUS_INVALID_OPTION: FastifyErrorConstructor<{ code: 'FST_NEXUS_INVALID_OPTION' }, [string, string, string]>
    FST_NEXUS_INVALID_ROUTE: FastifyErrorConstructor<{ code: 'FST_NEXUS_INVALID_ROUTE' }, [string, string, string, string]>
    FST_NEXUS_INVALID_ROOM: FastifyErrorConstructor<{ code: 'FST_NEXUS_INVALID_ROOM' }, [string]>
    FST_NEXUS_UNKNOWN_SOCKET: FastifyErrorConstructor<{ code: 'FST_NEXUS_UNKNOWN_SOCKET' }, [string]>
    FST_NEXUS_ROOMS_DISABLED: FastifyErrorConstructor<{ code: 'FST_NEXUS_ROOMS_DISABLED' }, [string]>
    FST_NEXUS_INVALID_DATA: FastifyErrorConstructor<{ code: 'FST_NEXUS_INVALID_DATA' }, [string]>
    FST_NEXUS_UNAUTHORIZED: FastifyErrorConstructor<{ code: 'FST_NEXUS_UNAUTHORIZED', statusCode: 401 }, [{ cause: unknown }?]>
    FST_NEXUS_ORIGIN_NOT_ALLOWED: FastifyErrorConstructor<{ code: 'FST_NEXUS_ORIGIN_NOT_ALLOWED', statusCode: 403 }, [string]>
    /** the answer to a handshake whose `auth` did not settle within `authTimeout` ms */
    FST_NEXUS_AUTH_TIMEOUT: FastifyErrorConstructor<{ code: 'FST_NEXUS_AUTH_TIMEOUT', statusCode: 503 }, [string]>
    /** the answer to a WebSocket handshake on a route that has no WebSocket handler */
    FST_NEXUS_NOT_WEBSOCKET: FastifyErrorConstructor<{ code: 'FST_NEXUS_NOT_WEBSOCKET', statusCode: 404 }, [string]>
    FST_NEXUS_SHUTTING_DOWN: FastifyErrorConstructor<{ code: 'FST_NEXUS_SHUTTING_DOWN', statusCode: 503 }, []>
    /** `publish` could not store the message (the store is unreachable or did not answer in time): nobody received it */
    FST_NEXUS_HISTORY_UNAVAILABLE: FastifyErrorConstructor<{ code: 'FST_NEXUS_HISTORY_UNAVAILABLE', statusCode: 503 }, [string]>
    /** `publish` or `history` on a room without a history policy */
    FST_NEXUS_NO_HISTORY: FastifyErrorConstructor<{ code: 'FST_NEXUS_NO_HISTORY' }, [string]>
    /** `presence`/`presenceCount` for a room without a presence policy. */
    FST_NEXUS_NO_PRESENCE: FastifyErrorConstructor<{ code: 'FST_NEXUS_NO_PRESENCE' }, [string]>
    /** `presence`/`presenceCount` when the presence store cannot be read (Redis unreachable). */
    FST_NEXUS_PRESENCE_UNAVAILABLE: FastifyErrorConstructor<{ code: 'FST_NEXUS_PRESENCE_UNAVAILABLE', statusCode: 503 }, [string]>
    /** A route's `presence.key` or `presence.meta` threw or gave an unusable value (reported to `onError`; the connection is closed with 1011). */
    FST_NEXUS_INVALID_PRESENCE: FastifyErrorConstructor<{ code: 'FST_NEXUS_INVALID_PRESENCE' }, [string]>
  }

  export type NexusErrorCode = keyof typeof errors
  export type { FastifyError }

  export const nexusRealtime: NexusRealtimePlugin
  export { nexusRealtime as default }
}

declare function nexusRealtime (...params: Parameters<NexusRealtimePlugin>): ReturnType<NexusRealtimePlugin>
export = nexusRealtime
