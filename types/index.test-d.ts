import Fastify, {
  type FastifyBaseLogger,
  type FastifyInstance,
  type FastifyPluginAsync,
  type FastifyRequest
} from 'fastify'
import type { FastifyError } from '@fastify/error'
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http'
// `WsSocket`, so that the seed's examples below see the global `WebSocket` as they would.
import type { WebSocket as WsSocket } from 'ws'
import { expectAssignable, expectError, expectNotAssignable, expectType } from 'tsd'
import { Type, type TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import nexusRealtime, {
  nexusRealtime as namedNexusRealtime,
  CloseCode,
  ErrorFrameCode,
  MemoryAdapter,
  RedisAdapter,
  redisAdapter,
  errors,
  type Adapter,
  type AdapterFetchOptions,
  type FetchOptions,
  type RedisAdapterOptions,
  type RedisAdapterStats,
  type RedisClient,
  type RedisConnection,
  type AdapterHost,
  type BroadcastOptions,
  type PublishTarget,
  type AuthorizeResult,
  type RoomsOptions,
  type EncodedMessage,
  type HandlerResult,
  type MessageParser,
  type NexusErrorCode,
  type NexusRealtimeOptions,
  type OutgoingData,
  type ParseMode,
  type RoomManager,
  type WebSocketContext,
  type WebSocketManager,
  type WebSocketRouteConfig,
  type WebSocketRouteGeneric,
  type WebSocketServerOptions,
  type WebSocketStats,
  type AdapterHistory,
  type HistoryPage,
  type HistoryPolicy,
  type HistoryRead,
  type Position,
  type RoomPolicy,
  type AdapterPresence,
  type PresenceChange,
  type PresenceCount,
  type PresenceMember,
  type PresenceOptions,
  type PresenceSnapshot,
  type MetricsOptions,
  type MetricsRegistry
} from '..'
import nexusRealtimeCjs = require('..')
import { Cluster, Redis } from 'ioredis'
import { Registry as PromRegistry, register as promRegister } from 'prom-client'

// The seed's own functions, which the seed leaves undefined.
interface User { id: string, name: string, roles: string[] }
interface ChatMessage { type: 'chat' | 'typing', room?: string, text: string }
interface Meta { pingInterval?: NodeJS.Timeout, joinedAt: number }
declare function verifyToken (token: string): Promise<User | null>
declare function generateId (): string
declare function getUnreadNotifications (userId: string): Promise<Array<{ id: string }>>
declare function markNotificationRead (notificationId: string, userId: string): Promise<void>

type Plugin = typeof nexusRealtime.nexusRealtime

// ------------------------------------------------------------ the import forms

// `import x from`, `import { nexusRealtime } from`, `.default` and `require()`
// all give the same plugin, with the same extras.
expectType<Plugin>(nexusRealtime)
expectType<Plugin>(namedNexusRealtime)
expectType<Plugin>(nexusRealtime.default)
expectType<Plugin>(nexusRealtime.nexusRealtime)
expectType<Plugin>(nexusRealtime.default.default.nexusRealtime)
expectType<Plugin>(nexusRealtimeCjs.default)
expectType<Plugin>(nexusRealtimeCjs.nexusRealtime)
expectAssignable<FastifyPluginAsync<NexusRealtimeOptions>>(nexusRealtime)
expectAssignable<FastifyPluginAsync<NexusRealtimeOptions>>(namedNexusRealtime)
expectAssignable<FastifyPluginAsync<NexusRealtimeOptions>>(nexusRealtime.default)
expectAssignable<FastifyPluginAsync<NexusRealtimeOptions>>(nexusRealtimeCjs)
expectType<typeof MemoryAdapter>(nexusRealtime.MemoryAdapter)
expectType<typeof MemoryAdapter>(nexusRealtimeCjs.MemoryAdapter)
expectType<typeof errors>(nexusRealtime.errors)
expectType<typeof errors>(nexusRealtimeCjs.errors)
expectType<typeof CloseCode>(nexusRealtime.CloseCode)
expectType<typeof ErrorFrameCode>(nexusRealtime.ErrorFrameCode)
expectType<typeof ErrorFrameCode>(nexusRealtimeCjs.ErrorFrameCode)

async function registerEveryForm (): Promise<void> {
  await Fastify().register(nexusRealtime)
  await Fastify().register(namedNexusRealtime)
  await Fastify().register(nexusRealtime.default)
  await Fastify().register(nexusRealtimeCjs)
  await Fastify().register(nexusRealtimeCjs.nexusRealtime, { shutdownTimeout: 100 })
}
void registerEveryForm

// ------------------------------------------------------------ plugin options

const app = Fastify()

async function registerOptions (): Promise<void> {
  await app.register(nexusRealtime)
  await app.register(nexusRealtime, {})
  await app.register(nexusRealtime, {
    adapter: new MemoryAdapter(),
    websocket: { maxPayload: 1024, perMessageDeflate: false, clientTracking: true },
    shutdownTimeout: 1000
  })
  // Fastify's own register options go beside the plugin's.
  await app.register(nexusRealtime, { shutdownTimeout: 0, prefix: '/rt' })
}
void registerOptions

expectAssignable<NexusRealtimeOptions>({})
expectAssignable<NexusRealtimeOptions>({ adapter: new MemoryAdapter(), websocket: { maxPayload: 0 }, shutdownTimeout: 0 })
expectType<Adapter | undefined>(({} as NexusRealtimeOptions).adapter)
expectType<WebSocketServerOptions | undefined>(({} as NexusRealtimeOptions).websocket)
expectType<number | undefined>(({} as NexusRealtimeOptions).shutdownTimeout)
expectType<number | undefined>(({} as WebSocketServerOptions).maxPayload)

expectError(app.register(nexusRealtime, { shutdownTimeout: '5000' }))
expectError(app.register(nexusRealtime, { websocket: { maxPayload: '1mb' } }))
expectError(app.register(nexusRealtime, { websocket: 1024 }))
expectError(app.register(nexusRealtime, { adapter: {} }))
expectError(app.register(nexusRealtime, { adapter: 'memory' }))
expectError(app.register(nexusRealtime, { unknownOption: true }))
// The plugin owns the ws server's wiring: these are not options of its `websocket`.
expectNotAssignable<NexusRealtimeOptions>({ websocket: { noServer: true } })
expectNotAssignable<NexusRealtimeOptions>({ websocket: { port: 8080 } })
expectNotAssignable<NexusRealtimeOptions>({ websocket: { path: '/ws' } })
expectNotAssignable<NexusRealtimeOptions>({ websocket: { server: app.server } })
expectNotAssignable<NexusRealtimeOptions>({ websocket: { maxPayload: '1mb' } })
expectNotAssignable<NexusRealtimeOptions>({ shutdownTimeout: '5000' })

// ------------------------------------------------------------ app.ws without generics

// The seed's untyped handlers: `user` and `message` are `any`, so `ctx.user.name` compiles.
expectType<FastifyInstance>(app.ws('/ws/untyped', {
  auth: async (ctx) => {
    expectType<WebSocketContext>(ctx)
    expectType<Record<string, string | string[]>>(ctx.query)
    return { name: ctx.query.token as string }
  },
  beforeConnect: async (socket, ctx) => {
    expectType<WsSocket>(socket)
    expectType<WebSocketContext>(ctx)
  },
  onConnect: async (socket, ctx) => {
    expectType<WsSocket>(socket)
    expectType<any>(ctx.user)
    expectType<any>(ctx.user.name)
  },
  onMessage: async (socket, message, ctx) => {
    expectType<WsSocket>(socket)
    expectType<any>(message)
    expectType<WebSocketContext>(ctx)
    expectType<any>(message.anything.at.all)
  },
  onClose: async (socket, ctx, code, reason) => {
    expectType<WsSocket>(socket)
    expectType<WebSocketContext>(ctx)
    expectType<number>(code)
    expectType<Buffer>(reason)
  },
  onError: async (socket, error, ctx) => {
    expectType<WsSocket>(socket)
    expectType<Error>(error)
    expectType<WebSocketContext>(ctx)
  },
  rooms: true,
  parse: 'json'
}))

// Synchronous handlers, handlers with fewer parameters, and an empty config are fine.
app.ws('/ws/sync', {
  auth: () => ({ id: '1' }),
  beforeConnect: () => {},
  onConnect: (socket) => { socket.send('hi') },
  onMessage: (socket, message) => { socket.send(JSON.stringify({ echo: message })) },
  onClose: () => {},
  onError: (_socket, error) => { error.message.toString() }
})
app.ws('/ws/empty', {})

// A handler declared the seed's way, `reason?: Buffer`, is accepted.
const seedOnClose = async (_socket: WsSocket, _ctx: WebSocketContext, code: number, reason?: Buffer): Promise<void> => {
  void code
  void reason
}
app.ws('/ws/seed-on-close', { onClose: seedOnClose })
// A message handler declaring the message shape it expects is accepted too.
app.ws('/ws/annotated', { onMessage: async (_socket, message: { n: number }) => { void message.n } })

// Every parse mode and a parser function.
app.ws('/ws/text', { parse: 'text' })
app.ws('/ws/binary', { parse: 'binary' })
app.ws('/ws/custom', {
  parse: (data, isBinary) => {
    expectType<Buffer>(data)
    expectType<boolean>(isBinary)
    return data.toString('hex')
  }
})
expectType<ParseMode>('json' as ParseMode)
expectAssignable<MessageParser>((data: Buffer) => data.length)

// Rooms that nexus.v1 clients subscribe to themselves, each checked by authorize.
app.ws<{ user: User }>('/ws/rooms', {
  rooms: {
    authorize: async (room, ctx, params) => {
      expectType<string>(room)
      expectType<User>(ctx.user)
      expectType<unknown>(params)
      if (room.startsWith('admin:')) return { allow: false, code: 'ADMIN_ONLY', message: 'Admins only' }
      if (room === 'busy') return { allow: false, temporary: true }
      return room.startsWith(`user:${ctx.user.id}`) || room.startsWith('chat:')
    },
    maxRooms: 16,
    timeout: 2000
  }
})
app.ws('/ws/rooms-sync', { rooms: { authorize: () => true } })
app.ws<{ user: User }>('/ws/presence', {
  presence: {
    key: (ctx) => {
      expectType<User>(ctx.user)
      return ctx.user.id
    },
    meta: (ctx) => ({ name: ctx.user.name })
  }
})
expectError(app.ws('/ws/presence-bad', { presence: { key: 'id' } }))
expectAssignable<AuthorizeResult>(true)
expectAssignable<AuthorizeResult>({ allow: false })
expectNotAssignable<AuthorizeResult>({ code: 'X' })
expectAssignable<RoomsOptions>({ maxRooms: 1 })
expectError(app.ws('/ws/bad', { rooms: { authorize: 'yes' } }))
expectError(app.ws('/ws/bad', { rooms: { maxRooms: '8' } }))
expectError(app.ws('/ws/bad', { rooms: { authorize: () => 'allow' } }))
expectType<'FORBIDDEN'>(ErrorFrameCode.FORBIDDEN)
expectType<'INVALID_FRAME'>(ErrorFrameCode.INVALID_FRAME)

// Invalid route configs.
expectError(app.ws('/ws/bad', { rooms: 'yes' }))
expectError(app.ws('/ws/bad', { parse: 'xml' }))
expectError(app.ws('/ws/bad', { parse: 42 }))
expectError(app.ws('/ws/bad', { onMessage: 'not a function' }))
expectError(app.ws('/ws/bad', { onConnect: async (socket: string) => { void socket } }))
expectError(app.ws('/ws/bad', { onClose: async (_socket: WsSocket, _ctx: WebSocketContext, code: string) => { void code } }))
expectError(app.ws('/ws/bad', { onClose: async (_socket: WsSocket, _ctx: WebSocketContext, _code: number, reason: string) => { void reason } }))
expectError(app.ws('/ws/bad', { onError: async (_socket: WsSocket, error: string) => { void error } }))
expectError(app.ws('/ws/bad', { unknownHandler: () => {} }))
expectError(app.ws(42, {}))
expectError(app.ws('/ws/bad'))

// ------------------------------------------------------------ app.ws with generics

type ChatRoute = { user: User, message: ChatMessage, metadata: Meta }

app.ws<ChatRoute>('/ws/typed', {
  auth: async (ctx) => {
    expectType<WebSocketContext<ChatRoute>>(ctx)
    const user = await verifyToken(ctx.query.token as string)
    if (user === null) throw new Error('Invalid token')
    return user
  },
  beforeConnect: async (_socket, ctx) => {
    expectType<User>(ctx.user)
    expectType<Meta>(ctx.metadata)
    ctx.metadata = { joinedAt: Date.now() }
  },
  onConnect: async (_socket, ctx) => {
    expectType<User>(ctx.user)
    expectType<string[]>(ctx.user.roles)
    expectType<Meta>(ctx.metadata)
    expectType<number>(ctx.metadata.joinedAt)
  },
  onMessage: async (_socket, message, ctx) => {
    expectType<ChatMessage>(message)
    expectType<'chat' | 'typing'>(message.type)
    expectType<User>(ctx.user)
    expectType<Meta>(ctx.metadata)
  },
  onClose: async (_socket, ctx, code, reason) => {
    expectType<User>(ctx.user)
    expectType<Meta>(ctx.metadata)
    expectType<NodeJS.Timeout | undefined>(ctx.metadata.pingInterval)
    expectType<number>(code)
    expectType<Buffer>(reason)
  },
  onError: async (_socket, error, ctx) => {
    expectType<Error>(error)
    expectType<User>(ctx.user)
    expectType<Meta>(ctx.metadata)
  }
})

// Typed members are checked.
expectError(app.ws<ChatRoute>('/ws/typed', { auth: async () => ({ nickname: 'no id' }) }))
expectError(app.ws<ChatRoute>('/ws/typed', { onMessage: async (_socket, message) => { void message.missing } }))
expectError(app.ws<ChatRoute>('/ws/typed', { onConnect: async (_socket, ctx) => { void ctx.user.missing } }))
expectError(app.ws<ChatRoute>('/ws/typed', { onConnect: async (_socket, ctx) => { ctx.metadata = { joinedAt: 'now' } } }))
expectError(app.ws<ChatRoute>('/ws/typed', { onMessage: async (_socket, message: { n: number }) => { void message.n } }))

// Each type parameter is optional: the ones left out keep their defaults.
app.ws<{ user: User }>('/ws/user-only', {
  auth: () => ({ id: '1', name: 'a', roles: [] }),
  onMessage: (_socket, message, ctx) => {
    expectType<any>(message)
    expectType<User>(ctx.user)
    expectType<Record<string, any>>(ctx.metadata)
  }
})
app.ws<{ message: ChatMessage }>('/ws/message-only', {
  onMessage: (_socket, message, ctx) => {
    expectType<ChatMessage>(message)
    expectType<any>(ctx.user)
  }
})
app.ws<{ params: { id: string }, query: { token?: string } }>('/ws/game/:id', {
  onConnect: (_socket, ctx) => {
    expectType<{ id: string }>(ctx.params)
    expectType<{ token?: string }>(ctx.query)
  }
})
expectError(app.ws<{ metadata: string }>('/ws/bad-generic', {}))

// ------------------------------------------------------------ the context

app.ws('/ws/context', {
  onConnect: async (_socket, ctx) => {
    expectType<string>(ctx.id)
    expectType<string>(ctx.path)
    expectType<Record<string, string | string[]>>(ctx.query)
    expectType<IncomingHttpHeaders>(ctx.headers)
    expectType<string | undefined>(ctx.headers.authorization)
    expectType<Record<string, string>>(ctx.params)
    expectType<any>(ctx.user)
    expectType<Record<string, any>>(ctx.metadata)
    expectType<IncomingMessage>(ctx.raw.req)
    expectType<FastifyRequest>(ctx.request)
    expectType<FastifyBaseLogger>(ctx.log)
    ctx.log.info({ path: ctx.path }, 'connected')
    // user and metadata are assignable; the rest describes the handshake and is read-only.
    ctx.user = { id: 'anonymous' }
    ctx.metadata = { joinedAt: Date.now() }
    ctx.metadata.anything = 1
    expectError(ctx.id = 'other')
    expectError(ctx.path = '/other')
    expectError(ctx.raw = { req: ctx.raw.req })
  }
})

// The seed's heartbeat example: `ctx.metadata = { pingInterval }`, then `ctx.metadata?.pingInterval`.
app.ws('/ws/with-heartbeat', {
  onConnect: async (socket, ctx) => {
    const pingInterval = setInterval(() => {
      if (socket.readyState === socket.OPEN) {
        socket.ping()
      }
    }, 30000)
    ctx.metadata = { pingInterval }
  },
  onClose: async (_socket, ctx) => {
    clearInterval(ctx.metadata?.pingInterval)
  }
})

// ------------------------------------------------------------ the manager

const manager = app.getWebSocket()
expectType<WebSocketManager>(manager)
declare const socket: WsSocket
declare const other: WsSocket

expectType<void>(manager.createRoom('vip-lounge'))
expectType<void>(manager.joinRoom('vip-lounge', socket))
expectType<void>(manager.leaveRoom('vip-lounge', socket))
expectType<number>(manager.broadcast('vip-lounge', { message: 'VIP announcement' }))
expectType<number>(manager.broadcast('vip-lounge', 'text'))
expectType<number>(manager.broadcast('vip-lounge', Buffer.from('binary')))
expectType<number>(manager.broadcast('vip-lounge', new Uint8Array(2)))
expectType<number>(manager.broadcast(['room1', 'room2'], { type: 'announcement' }))
expectType<number>(manager.broadcast(['room1'] as readonly string[], 1, { except: socket }))
expectType<number>(manager.broadcast('room1', null, { except: [socket, other] }))
expectType<number>(manager.broadcastAll({ type: 'all' }))
expectType<number>(manager.broadcastAll('all', { except: socket }))
expectType<boolean>(manager.send(socket, { type: 'direct' }))
expectType<boolean>(manager.deleteRoom('vip-lounge'))
expectType<boolean>(manager.hasRoom('vip-lounge'))
expectType<number>(manager.roomSize('vip-lounge'))
expectType<WsSocket[]>(manager.socketsIn('vip-lounge'))
expectType<string[]>(manager.roomsOf(socket))
expectType<WebSocketContext | undefined>(manager.contextOf(socket))
expectType<WebSocketContext<ChatRoute> | undefined>(manager.contextOf<ChatRoute>(socket))
expectType<User | undefined>(manager.contextOf<ChatRoute>(socket)?.user)
expectType<number>(manager.connections)
expectType<WebSocketStats>(manager.stats())
expectAssignable<{
  connections: number
  rooms: number
  messagesReceived: number
  messagesSent: number
  broadcasts: number
  invalidMessages: number
  errors: number
  slowConsumers: number
  heartbeatTimeouts: number
  rateLimited: number
}>(manager.stats())
expectType<RoomManager>(manager.roomManager)

// History rooms.
expectType<Promise<Position>>(manager.publish('chat:1', { text: 'hi' }))
expectType<Promise<Position>>(manager.publish('chat:1', 'hi', { except: socket }))
expectError(manager.publish(['a', 'b'], 'hi'))
expectType<Promise<HistoryPage>>(manager.history('chat:1'))
expectType<Promise<HistoryPage>>(manager.history('chat:1', { since: 10, limit: 50 }))
expectError(manager.history('chat:1', { since: '10' }))
expectType<number>(({} as HistoryPage).position.offset)
expectType<string>(({} as HistoryPage).position.epoch)
expectType<unknown>(({} as HistoryPage).messages[0].data)
expectType<number>(manager.stats().historyAppended)
expectType<number>(manager.stats().resumeRecovered)
expectAssignable<NexusRealtimeOptions>({ roomPolicies: { 'chat:*': { history: { size: 1000, ttl: 300_000 } }, feed: {} } })
expectNotAssignable<NexusRealtimeOptions>({ roomPolicies: { 'chat:*': { history: { size: 1000 } } } })
expectAssignable<RoomPolicy>({ history: { size: 1, ttl: 1 } })
expectAssignable<HistoryPolicy>({ size: 1, ttl: 1 })
expectType<AdapterHistory | undefined>(({} as Adapter).history)
expectType<Promise<HistoryRead>>(({} as AdapterHistory).read('room', 0, 10))
expectType<Promise<Position>>(({} as AdapterHistory).renew('room', 'old epoch', 'new epoch'))
expectAssignable<BroadcastOptions>({ except: socket })
expectAssignable<BroadcastOptions>({ except: [socket, other] })

// Presence rooms.
expectType<Promise<PresenceMember[]>>(manager.presence('doc:1'))
expectType<Promise<PresenceCount>>(manager.presenceCount('doc:1'))
expectError(manager.presence(['doc:1']))
expectType<string>(({} as PresenceMember).key)
expectType<unknown>(({} as PresenceMember).meta)
expectType<number>(({} as PresenceCount).connections)
expectType<number>(manager.stats().presenceUpdates)
expectAssignable<NexusRealtimeOptions>({ roomPolicies: { 'doc:*': { presence: true }, lobby: { presence: { listLimit: 200 } }, 'user:*': {} } })
expectAssignable<NexusRealtimeOptions>({ roomPolicies: { feed: { history: { size: 10, ttl: 1000 }, presence: false } } })
expectNotAssignable<NexusRealtimeOptions>({ roomPolicies: { 'doc:*': { presence: 'yes' } } })
expectNotAssignable<NexusRealtimeOptions>({ roomPolicies: { 'doc:*': { presence: { listLimit: '10' } } } })
expectAssignable<PresenceOptions>({ key: (ctx) => ctx.id })
expectAssignable<PresenceOptions>({ key: () => 42, meta: () => ({ name: 'Ann' }) })
expectNotAssignable<PresenceOptions>({ key: () => ({ id: 1 }) })
expectType<AdapterPresence | undefined>(({} as Adapter).presence)
expectType<Promise<PresenceSnapshot>>(({} as AdapterPresence).read('room'))
expectType<Promise<void>>(({} as AdapterPresence).update('room', [{ key: 'k', connections: 1, meta: 'null' }] as PresenceChange[], false))
expectType<AdapterPresence>(redisAdapter({ url: 'redis://127.0.0.1:6379' }).presence)
expectAssignable<OutgoingData>(Symbol('anything goes at the type level'))

expectError(manager.createRoom(42))
expectError(manager.joinRoom('room', 'not a socket'))
expectError(manager.broadcast(42, {}))
expectAssignable<BroadcastOptions>({ except: 'a-connection-id' })
expectAssignable<BroadcastOptions>({ except: [socket, 'a-connection-id-on-another-instance'] })
expectError(manager.broadcast('room', {}, { except: 42 }))
expectError(manager.broadcastAll({}, { only: socket }))
expectError(manager.socketsIn(['a', 'b']))
expectError(manager.connections = 3)
expectError(manager.roomManager = {} as RoomManager)
expectError(manager.unknownMethod())

// The seed's roomManager helper.
const { roomManager } = manager
expectType<void>(roomManager.create('new-room'))
expectType<void>(roomManager.join('new-room', socket))
expectType<void>(roomManager.leave('new-room', socket))
expectType<number>(roomManager.broadcast('new-room', { data: 'hello' }))
expectType<string[]>(roomManager.list())
expectError(roomManager.join('new-room'))

// getWebSocket is there in every encapsulated context.
app.register(async (instance) => {
  expectType<WebSocketManager>(instance.getWebSocket())
  expectAssignable<FastifyInstance>(instance.ws('/ws/scoped', {}))
})
// app.ws chains like the other route methods.
app.ws('/ws/a', {}).ws('/ws/b', {})

// ------------------------------------------------------------ errors

expectType<NexusErrorCode>('FST_NEXUS_INVALID_OPTION' as NexusErrorCode)
expectType<
  | 'FST_NEXUS_INVALID_OPTION'
  | 'FST_NEXUS_INVALID_ROUTE'
  | 'FST_NEXUS_INVALID_ROOM'
  | 'FST_NEXUS_UNKNOWN_SOCKET'
  | 'FST_NEXUS_ROOMS_DISABLED'
  | 'FST_NEXUS_INVALID_DATA'
  | 'FST_NEXUS_UNAUTHORIZED'
  | 'FST_NEXUS_ORIGIN_NOT_ALLOWED'
  | 'FST_NEXUS_AUTH_TIMEOUT'
  | 'FST_NEXUS_NOT_WEBSOCKET'
  | 'FST_NEXUS_SHUTTING_DOWN'
  | 'FST_NEXUS_HISTORY_UNAVAILABLE'
  | 'FST_NEXUS_NO_HISTORY'
  | 'FST_NEXUS_NO_PRESENCE'
  | 'FST_NEXUS_PRESENCE_UNAVAILABLE'
  | 'FST_NEXUS_INVALID_PRESENCE'
>(null as unknown as NexusErrorCode)

const invalidOption = new errors.FST_NEXUS_INVALID_OPTION('shutdownTimeout', 'a non-negative integer', 'a string')
expectAssignable<FastifyError>(invalidOption)
expectAssignable<Error>(invalidOption)
expectType<'FST_NEXUS_INVALID_OPTION'>(invalidOption.code)
expectType<'FST_NEXUS_INVALID_ROUTE'>(new errors.FST_NEXUS_INVALID_ROUTE('/ws', 'rooms', 'a boolean', 'a string').code)
expectType<'FST_NEXUS_INVALID_ROOM'>(new errors.FST_NEXUS_INVALID_ROOM('the string ""').code)
expectType<'FST_NEXUS_UNKNOWN_SOCKET'>(new errors.FST_NEXUS_UNKNOWN_SOCKET('null').code)
expectType<'FST_NEXUS_ROOMS_DISABLED'>(new errors.FST_NEXUS_ROOMS_DISABLED('/ws').code)
expectType<'FST_NEXUS_INVALID_DATA'>(errors.FST_NEXUS_INVALID_DATA('circular').code)
expectType<401>(new errors.FST_NEXUS_UNAUTHORIZED().statusCode)
expectType<503>(new errors.FST_NEXUS_SHUTTING_DOWN().statusCode)
expectError(new errors.FST_NEXUS_INVALID_OPTION('too few'))
expectError(new errors.FST_NEXUS_UNAUTHORIZED('no arguments'))
expectError(errors.FST_NEXUS_NOT_A_CODE)

// An error caught from register or app.ws can be told apart by its code.
function isNexusError (error: unknown): error is FastifyError & { code: NexusErrorCode } {
  return error instanceof Error && (error as FastifyError).code in errors
}
void isNexusError

// ------------------------------------------------------------ codes

expectType<1001>(CloseCode.GOING_AWAY)
expectType<1009>(CloseCode.MESSAGE_TOO_BIG)
expectType<1011>(CloseCode.INTERNAL_ERROR)
expectError(CloseCode.GOING_AWAY = 1000)
expectType<'INVALID_JSON'>(ErrorFrameCode.INVALID_JSON)
expectType<'INVALID_MESSAGE'>(ErrorFrameCode.INVALID_MESSAGE)
expectError(ErrorFrameCode.INVALID_JSON = 'OTHER')

// ------------------------------------------------------------ adapters

// The Adapter interface names every method the plugin calls, and nothing else
// (the last six are optional).
expectType<
  | 'init' | 'roomActive' | 'roomIdle' | 'publish' | 'close'
  | 'fetchRooms' | 'fetchRoomSize' | 'fetchConnections' | 'stats' | 'history' | 'presence'
>(null as unknown as keyof Adapter)

// A user's own adapter, written against the interface alone: a transport.
class LoggingAdapter implements Adapter {
  private host: AdapterHost | undefined
  readonly active = new Set<string>()

  async init (host: AdapterHost): Promise<void> {
    expectType<FastifyBaseLogger>(host.log)
    expectType<string[]>(host.rooms())
    expectType<number>(host.roomSize('room'))
    expectType<number>(host.connections())
    this.host = host
  }

  roomActive (room: string): void { this.active.add(room) }
  roomIdle (room: string): void { this.active.delete(room) }

  publish (message: EncodedMessage, target: PublishTarget): void {
    expectType<Buffer>(message.data)
    expectType<boolean>(message.binary)
    expectType<readonly string[] | null>(target.rooms)
    expectType<ReadonlySet<string> | null>(target.exceptIds)
    this.host?.log.debug({ rooms: target.rooms }, 'publish')
    // What another instance publishes is handed to the host, which delivers it locally.
    expectType<number>(this.host?.deliver(message, target) ?? 0)
  }

  async close (): Promise<void> { this.active.clear() }
}

expectAssignable<Adapter>(new LoggingAdapter())
expectAssignable<Adapter>(new MemoryAdapter())
expectAssignable<NexusRealtimeOptions>({ adapter: new LoggingAdapter() })
async function registerCustomAdapter (): Promise<void> {
  await Fastify().register(nexusRealtime, { adapter: new LoggingAdapter() })
}
void registerCustomAdapter

// An object missing one method is not an adapter.
const { close: _close, ...withoutClose } = new LoggingAdapter()
void _close
expectNotAssignable<Adapter>(withoutClose)
expectNotAssignable<Adapter>({
  init () {},
  roomActive () {},
  roomIdle () {},
  close () {}
  // no publish()
})

// MemoryAdapter can be extended, as a transport that only needs some of the methods does.
class CountingAdapter extends MemoryAdapter {
  publishes = 0
  override publish (message: EncodedMessage, target: PublishTarget): void {
    this.publishes++
    super.publish(message, target)
  }
}
expectAssignable<NexusRealtimeOptions>({ adapter: new CountingAdapter() })
const memory = new MemoryAdapter()
expectType<void>(memory.roomActive('room'))
expectType<void>(memory.publish({ data: Buffer.from('x'), binary: false }, { rooms: null, exceptIds: null }))
expectType<void>(memory.close())
expectAssignable<Adapter>(new RedisAdapter({ url: 'redis://127.0.0.1:6379' }))

// ------------------------------------------------------------ the route config type

const config: WebSocketRouteConfig = { rooms: false }
app.ws('/ws/from-a-variable', config)
const typedConfig: WebSocketRouteConfig<ChatRoute> = {
  onMessage: async (_socket, message) => { expectType<ChatMessage>(message) }
}
app.ws<ChatRoute>('/ws/typed-variable', typedConfig)
expectAssignable<WebSocketRouteGeneric>({ user: {} as User, message: {} as ChatMessage, metadata: {} as Meta })

// ------------------------------------------------------------ the seed's examples

// Each one as it is written in seed/websocket-realtime.md, with `createApp()`
// replaced by `Fastify()` + `await app.register(nexusRealtime)`, `app.listen(3000, cb)`
// by Fastify's `await app.listen({ port: 3000 })`, and parameters the example
// never reads prefixed with `_` (this project compiles with noUnusedParameters).

async function seedQuickStart (): Promise<void> {
  const app = Fastify()
  await app.register(nexusRealtime)

  // Define WebSocket route
  app.ws('/ws/chat', {
    onConnect: async (socket, _ctx) => {
      console.log('Client connected')
      socket.send(JSON.stringify({ type: 'welcome', message: 'Hello!' }))
    },

    onMessage: async (socket, message, _ctx) => {
      console.log('Received:', message)
      socket.send(JSON.stringify({ echo: message }))
    },

    onClose: async (_socket, _ctx) => {
      console.log('Client disconnected')
    }
  })

  await app.listen({ port: 3000 })
  console.log('Server running at http://localhost:3000')
  console.log('WebSocket at ws://localhost:3000/ws/chat')
}
void seedQuickStart

async function seedChatApplication (): Promise<void> {
  const app = Fastify()
  await app.register(nexusRealtime)

  app.ws('/ws/chat', {
    auth: async (ctx) => {
      const token = ctx.query.token as string
      return { id: generateId(), name: token || 'Anonymous' }
    },

    onConnect: async (socket, ctx) => {
      const ws = app.getWebSocket()!

      // Join default room
      ws.joinRoom('general', socket)

      // Welcome message
      socket.send(JSON.stringify({
        type: 'welcome',
        message: `Welcome ${ctx.user.name}!`,
        room: 'general'
      }))

      // Notify others
      ws.broadcast('general', {
        type: 'system',
        message: `${ctx.user.name} joined the chat`
      })
    },

    onMessage: async (_socket, message, ctx) => {
      const ws = app.getWebSocket()!

      switch (message.type) {
        case 'chat':
          ws.broadcast(message.room || 'general', {
            type: 'chat',
            user: ctx.user.name,
            text: message.text,
            timestamp: new Date().toISOString()
          })
          break

        case 'private':
          // Private message implementation
          // Find target socket and send directly
          break

        case 'typing':
          ws.broadcast(message.room || 'general', {
            type: 'typing',
            user: ctx.user.name
          })
          break
      }
    },

    onClose: async (_socket, ctx) => {
      const ws = app.getWebSocket()!
      ws.broadcast('general', {
        type: 'system',
        message: `${ctx.user.name} left the chat`
      })
    },

    onError: async (_socket, error, ctx) => {
      console.error(`WebSocket error for ${ctx.user?.name}:`, error)
    }
  })
}
void seedChatApplication

async function seedNotificationsService (): Promise<void> {
  const app = Fastify()
  await app.register(nexusRealtime)

  app.ws('/ws/notifications', {
    auth: async (ctx) => {
      const token = ctx.query.token as string
      return await verifyToken(token)
    },

    onConnect: async (socket, ctx) => {
      const ws = app.getWebSocket()!

      // Join user-specific room
      ws.joinRoom(`user:${ctx.user.id}`, socket)

      // Join role-based rooms
      ctx.user.roles.forEach((role: string) => {
        ws.joinRoom(`role:${role}`, socket)
      })

      // Send unread notifications
      const unread = await getUnreadNotifications(ctx.user.id)
      socket.send(JSON.stringify({
        type: 'unread',
        count: unread.length,
        notifications: unread
      }))
    },

    onMessage: async (socket, message, ctx) => {
      if (message.type === 'mark_read') {
        await markNotificationRead(message.notificationId, ctx.user.id)
        socket.send(JSON.stringify({
          type: 'marked_read',
          notificationId: message.notificationId
        }))
      }
    }
  })

  // Send notification from anywhere in your app
  function sendNotification (userId: string, notification: any) {
    const ws = app.getWebSocket()
    ws?.broadcast(`user:${userId}`, {
      type: 'notification',
      ...notification
    })
  }

  // Send to all admins
  function notifyAdmins (message: string) {
    const ws = app.getWebSocket()
    ws?.broadcast('role:admin', {
      type: 'admin_alert',
      message
    })
  }

  sendNotification('42', { title: 'Hello' })
  notifyAdmins('disk almost full')

  // The design's own example: broadcasting from an HTTP handler.
  app.post<{ Body: { text: string } }>('/notify', async (req) => {
    app.getWebSocket().broadcast('role:admin', { type: 'admin_alert', message: req.body.text })
    return { ok: true }
  })
}
void seedNotificationsService

async function seedRoomManagerApi (socket: WsSocket): Promise<void> {
  const app = Fastify()
  await app.register(nexusRealtime)
  const ws = app.getWebSocket()!

  // Create room explicitly
  ws.createRoom('vip-lounge')
  ws.joinRoom('vip-lounge', socket)
  ws.leaveRoom('vip-lounge', socket)
  ws.broadcast('vip-lounge', { message: 'VIP announcement' })

  // Using roomManager helper
  ws.roomManager.create('new-room')
  ws.roomManager.join('new-room', socket)
  ws.roomManager.leave('new-room', socket)
  ws.roomManager.broadcast('new-room', { data: 'hello' })
  expectType<string[]>(ws.roomManager.list())

  // Broadcast to multiple rooms
  ;['room1', 'room2', 'room3'].forEach(room => {
    ws.broadcast(room, { type: 'announcement', text: 'Hello everyone!' })
  })
}
void seedRoomManagerApi

declare function generatePlayerId (): string
declare function getGameState (gameId: string): Promise<unknown>
declare function processMove (gameId: string, playerId: string, move: unknown): Promise<unknown>
declare function processMessage (message: unknown, ctx: WebSocketContext): Promise<void>

async function seedAuthenticationAndRooms (): Promise<void> {
  const app = Fastify()
  await app.register(nexusRealtime)

  app.ws('/ws/protected', {
    auth: async (ctx) => {
      const token = ctx.query.token as string

      if (!token) {
        throw new Error('Token required')
      }

      // Verify JWT token
      const user = await verifyToken(token)

      if (!user) {
        throw new Error('Invalid token')
      }

      // Return user object - will be available as ctx.user
      return user
    },

    onConnect: async (socket, ctx) => {
      // ctx.user is now available
      console.log(`User ${ctx.user.name} connected`)

      socket.send(JSON.stringify({
        type: 'authenticated',
        user: ctx.user
      }))
    },

    onMessage: async (_socket, message, ctx) => {
      console.log(`Message from ${ctx.user.name}:`, message)
    }
  })

  app.ws('/ws/chat', {
    onConnect: async (socket, ctx) => {
      const ws = app.getWebSocket()!
      const room = ctx.query.room as string || 'general'

      // Join a room
      ws.joinRoom(room, socket)

      // Notify others in the room
      ws.broadcast(room, {
        type: 'user_joined',
        message: `New user joined ${room}`
      })

      socket.send(JSON.stringify({
        type: 'joined',
        room
      }))
    },

    onMessage: async (socket, message, ctx) => {
      const ws = app.getWebSocket()!

      if (message.type === 'chat') {
        // Broadcast to current room
        ws.broadcast(message.room, {
          type: 'chat',
          user: ctx.user?.name,
          text: message.text,
          timestamp: new Date().toISOString()
        })
      }

      if (message.type === 'join_room') {
        ws.joinRoom(message.room, socket)
        socket.send(JSON.stringify({ type: 'room_joined', room: message.room }))
      }

      if (message.type === 'leave_room') {
        ws.leaveRoom(message.room, socket)
        socket.send(JSON.stringify({ type: 'room_left', room: message.room }))
      }
    },

    onClose: async (_socket, ctx) => {
      const ws = app.getWebSocket()!

      // Broadcast user left (rooms are auto-cleaned)
      ws.broadcast('general', {
        type: 'user_left',
        user: ctx.user?.name
      })
    }
  })

  // Broadcasting
  const ws = app.getWebSocket()!
  ws.broadcast('notifications', {
    type: 'alert',
    message: 'System maintenance in 5 minutes'
  })
}
void seedAuthenticationAndRooms

async function seedLiveUpdatesAndGame (): Promise<void> {
  const app = Fastify()
  await app.register(nexusRealtime)

  app.ws('/ws/stocks', {
    onConnect: async (socket, ctx) => {
      const ws = app.getWebSocket()!
      const symbols = (ctx.query.symbols as string)?.split(',') || ['AAPL', 'GOOGL']

      // Subscribe to stock symbols
      symbols.forEach(symbol => {
        ws.joinRoom(`stock:${symbol}`, socket)
      })

      socket.send(JSON.stringify({
        type: 'subscribed',
        symbols
      }))
    },

    onMessage: async (socket, message, _ctx) => {
      const ws = app.getWebSocket()!

      if (message.type === 'subscribe') {
        ws.joinRoom(`stock:${message.symbol}`, socket)
      }

      if (message.type === 'unsubscribe') {
        ws.leaveRoom(`stock:${message.symbol}`, socket)
      }
    }
  })

  // Price update service (simulated)
  setInterval(() => {
    const ws = app.getWebSocket()
    const stocks = ['AAPL', 'GOOGL', 'MSFT', 'AMZN']

    stocks.forEach(symbol => {
      ws?.broadcast(`stock:${symbol}`, {
        type: 'price_update',
        symbol,
        price: (Math.random() * 1000).toFixed(2),
        timestamp: new Date().toISOString()
      })
    })
  }, 1000)

  app.ws('/ws/game', {
    auth: async (ctx) => {
      return {
        id: generatePlayerId(),
        name: ctx.query.name as string || 'Player'
      }
    },

    onConnect: async (socket, ctx) => {
      const ws = app.getWebSocket()!
      const gameId = ctx.query.game as string

      if (!gameId) {
        socket.send(JSON.stringify({ type: 'error', message: 'Game ID required' }))
        socket.close()
        return
      }

      // Join game room
      ws.joinRoom(`game:${gameId}`, socket)

      // Notify other players
      ws.broadcast(`game:${gameId}`, {
        type: 'player_joined',
        player: ctx.user
      })

      // Send current game state
      const gameState = await getGameState(gameId)
      socket.send(JSON.stringify({
        type: 'game_state',
        state: gameState
      }))
    },

    onMessage: async (_socket, message, ctx) => {
      const ws = app.getWebSocket()!
      const gameId = ctx.query.game as string

      switch (message.type) {
        case 'move':
          // eslint-disable-next-line no-case-declarations
          const result = await processMove(gameId, ctx.user.id, message.move)
          ws.broadcast(`game:${gameId}`, {
            type: 'move_made',
            player: ctx.user.id,
            move: message.move,
            result
          })
          break

        case 'chat':
          ws.broadcast(`game:${gameId}`, {
            type: 'game_chat',
            player: ctx.user.name,
            text: message.text
          })
          break
      }
    },

    onClose: async (_socket, ctx) => {
      const ws = app.getWebSocket()!
      const gameId = ctx.query.game as string

      ws.broadcast(`game:${gameId}`, {
        type: 'player_left',
        player: ctx.user
      })
    }
  })
}
void seedLiveUpdatesAndGame

async function seedErrorHandlingAndBestPractices (): Promise<void> {
  const app = Fastify()
  await app.register(nexusRealtime)

  app.ws('/ws/robust', {
    auth: async (ctx) => {
      // eslint-disable-next-line no-useless-catch
      try {
        const token = ctx.query.token as string
        if (!token) {
          throw new Error('AUTH_REQUIRED')
        }

        const user = await verifyToken(token)
        if (!user) {
          throw new Error('INVALID_TOKEN')
        }

        return user
      } catch (error) {
        // Throwing here will reject the connection
        throw error
      }
    },

    onConnect: async (socket, _ctx) => {
      try {
        // Setup logic
        const ws = app.getWebSocket()!
        ws.joinRoom('main', socket)
      } catch (error) {
        socket.send(JSON.stringify({
          type: 'error',
          message: 'Failed to setup connection'
        }))
        socket.close(1011, 'Setup failed')
      }
    },

    onMessage: async (socket, message, ctx) => {
      try {
        // Validate message
        if (!message.type) {
          throw new Error('Message type required')
        }

        // Process message
        await processMessage(message, ctx)
      } catch (error) {
        socket.send(JSON.stringify({
          type: 'error',
          // The seed writes `error.message`: under `strict`, a caught error is `unknown`.
          message: (error as Error).message
        }))
      }
    },

    onError: async (socket, error, ctx) => {
      console.error('WebSocket Error:', {
        user: ctx.user?.id,
        error: error.message,
        stack: error.stack
      })

      // Optionally send error to client
      if (socket.readyState === WebSocket.OPEN) {
        socket.send(JSON.stringify({
          type: 'error',
          message: 'Internal server error'
        }))
      }
    }
  })

  // 1. Heartbeat/Ping-Pong
  app.ws('/ws/with-heartbeat', {
    onConnect: async (socket, ctx) => {
      // Send ping every 30 seconds
      const pingInterval = setInterval(() => {
        if (socket.readyState === WebSocket.OPEN) {
          socket.ping()
        }
      }, 30000)

      // Store interval in context for cleanup
      ctx.metadata = { pingInterval }
    },

    onClose: async (_socket, ctx) => {
      // Clear ping interval
      clearInterval(ctx.metadata?.pingInterval)
    }
  })

  // 2. Rate Limiting
  const messageCount = new Map<string, number>()

  app.ws('/ws/rate-limited', {
    auth: async (ctx) => {
      return { id: ctx.query.userId as string }
    },

    onMessage: async (socket, _message, ctx) => {
      const userId = ctx.user.id
      const count = (messageCount.get(userId) || 0) + 1
      messageCount.set(userId, count)

      // Reset count every minute
      setTimeout(() => {
        messageCount.set(userId, Math.max(0, (messageCount.get(userId) || 0) - 1))
      }, 60000)

      // Limit: 100 messages per minute
      if (count > 100) {
        socket.send(JSON.stringify({
          type: 'error',
          message: 'Rate limit exceeded'
        }))
        // eslint-disable-next-line no-useless-return
        return
      }

      // Process message...
    }
  })
}
void seedErrorHandlingAndBestPractices

// ------------------------------------------------------------ handler results

// A handler's value is ignored (a promise is awaited), so concise arrows that
// return what they call are valid handlers.
app.ws('/ws/concise', {
  onConnect: (socket) => app.getWebSocket().send(socket, 'welcome'),
  onMessage: (_socket, message) => app.getWebSocket().broadcast('room', message),
  onClose: async () => app.getWebSocket().broadcastAll({ type: 'left' }),
  onError: (_socket, error) => error.message
})
expectType<unknown>(null as unknown as HandlerResult)

// ------------------------------------------------------------ hardening options and schemas

{
  const app = Fastify()
  void app.register(nexusRealtime, {
    heartbeat: { interval: 10000 },
    maxBufferedBytes: 1024 * 1024,
    maxInboundBytes: 8 * 1024 * 1024,
    rateLimit: { max: 100, windowMs: 60000 },
    allowedOrigins: ['https://app.example.com', /\.example\.org$/]
  })
  void app.register(nexusRealtime, { heartbeat: false, rateLimit: false })
  void app.register(nexusRealtime, { allowedOrigins: async (origin: string, request) => origin.endsWith(request.hostname) })
  expectError(app.register(nexusRealtime, { heartbeat: 30000 }))
  expectError(app.register(nexusRealtime, { rateLimit: { max: 1 } }))
  expectError(app.register(nexusRealtime, { allowedOrigins: 'https://app.example.com' }))

  app.ws('/ws/limits', { heartbeat: { interval: 5000 }, rateLimit: false, maxBufferedBytes: 65536, maxInboundBytes: 65536 })
  expectError(app.ws('/ws/limits', { heartbeat: true }))
  expectError(app.ws('/ws/limits', { maxInboundBytes: '1 MiB' }))

  expectType<1008>(nexusRealtime.CloseCode.POLICY_VIOLATION)
  expectType<1013>(nexusRealtime.CloseCode.TRY_AGAIN_LATER)
  expectType<'RATE_LIMITED'>(nexusRealtime.ErrorFrameCode.RATE_LIMITED)
  expectType<number>(app.getWebSocket().stats().slowConsumers)
  expectType<number>(app.getWebSocket().stats().heartbeatTimeouts)
  expectType<number>(app.getWebSocket().stats().rateLimited)
}

{
  // A plain JSON schema without a type provider leaves the message `any`.
  const app = Fastify()
  app.ws('/ws/json-schema', {
    schema: { message: { type: 'object', properties: { text: { type: 'string' } } } },
    onMessage: (_socket, message) => { expectType<any>(message) }
  })
}

{
  // With TypeBox's type provider the schema types message, params and query.
  const app = Fastify().withTypeProvider<TypeBoxTypeProvider>()
  app.ws('/ws/typed/:room', {
    schema: {
      params: Type.Object({ room: Type.String() }),
      querystring: Type.Object({ token: Type.String(), page: Type.Optional(Type.Number()) }),
      message: Type.Union([
        Type.Object({ type: Type.Literal('chat'), text: Type.String() }),
        Type.Object({ type: Type.Literal('join_room'), room: Type.String() })
      ])
    },
    onConnect: (_socket, ctx) => {
      expectType<string>(ctx.params.room)
      expectType<string>(ctx.query.token)
      expectType<number | undefined>(ctx.query.page)
    },
    onMessage: (_socket, message) => {
      expectType<{ type: 'chat', text: string } | { type: 'join_room', room: string }>(message)
      if (message.type === 'chat') expectType<string>(message.text)
      expectError(message.missing)
    }
  })
  // A type argument wins over the schema.
  app.ws<{ message: { custom: true } }>('/ws/explicit', {
    schema: { message: Type.Object({ text: Type.String() }) },
    onMessage: (_socket, message) => { expectType<{ custom: true }>(message) }
  })
}

{
  // Inference from schema.message through the type provider, beside the other type parameters.
  const app = Fastify().withTypeProvider<TypeBoxTypeProvider>()
  const ChatSchema = Type.Object({ type: Type.Literal('chat'), text: Type.String() })
  type Chat = { type: 'chat', text: string }

  // Without type arguments: the message from the schema, the user from nothing (`any`).
  app.ws('/ws/inferred', {
    schema: { message: ChatSchema },
    auth: () => ({ id: '1', name: 'a', roles: [] }),
    onMessage: (_socket, message, ctx) => {
      expectType<Chat>(message)
      expectType<any>(ctx.user)
      expectError(message.missing)
    }
  })
  // An explicit user and the schema's message: TypeScript infers no type
  // argument once one is written (no partial inference), so the schema's type
  // goes in the second slot, `typeof schema`; the message is still the schema's.
  const schema = { message: ChatSchema, params: Type.Object({ room: Type.String() }) }
  app.ws<{ user: User }, typeof schema>('/ws/:room', {
    schema,
    onMessage: (_socket, message, ctx) => {
      expectType<Chat>(message)
      expectType<User>(ctx.user)
      expectType<string>(ctx.params.room)
    }
  })
  app.ws<{ metadata: Meta }, typeof schema>('/ws/meta/:room', {
    schema,
    onConnect: (_socket, ctx) => { expectType<Meta>(ctx.metadata) },
    onMessage: (_socket, message, ctx) => {
      expectType<Chat>(message)
      expectType<any>(ctx.user)
    }
  })
  // The schema given in the second slot must be the one passed.
  expectError(app.ws<{ user: User }, typeof schema>('/ws/:room', { schema: { message: Type.String() } }))
  // An explicit user alone leaves the message `any` (the schema still validates it at run time).
  app.ws<{ user: User }>('/ws/user-only-schema', {
    schema: { message: ChatSchema },
    onMessage: (_socket, message, ctx) => {
      expectType<any>(message)
      expectType<User>(ctx.user)
    }
  })
}

{
  // Outbound data: a type argument checks what broadcast, broadcastAll, publish and send are given.
  type ChatEvent = { type: 'chat', from: string, text: string }
  const manager = Fastify().getWebSocket()
  const event: ChatEvent = { type: 'chat', from: 'a', text: 'hi' }
  expectType<number>(manager.broadcast<ChatEvent>('chat:42', event))
  expectType<number>(manager.broadcast<ChatEvent>(['a', 'b'], { type: 'chat', from: 'a', text: 'hi' }, { except: 'id' }))
  expectType<number>(manager.broadcastAll<ChatEvent>(event))
  expectType<boolean>(manager.send<ChatEvent>(socket, event))
  expectType<Promise<Position>>(manager.publish<ChatEvent>('feed', event))
  expectError(manager.broadcast<ChatEvent>('chat:42', { type: 'chat', text: 'no from' }))
  expectError(manager.broadcastAll<ChatEvent>({ type: 'other', from: 'a', text: '' }))
  expectError(manager.send<ChatEvent>(socket, 'text'))
  expectError(manager.publish<ChatEvent>('feed', { type: 'chat', from: 1, text: '' }))
  // Without one, anything goes, as before.
  expectType<number>(manager.broadcast('chat:42', Symbol.for('anything')))
}

// ------------------------------------------------------------ scaling out (Redis)

{
  // The forms of redisAdapter(): a URL, or ioredis connections of the app's own.
  const client = new Redis()
  expectAssignable<RedisClient>(client)
  expectType<RedisAdapter>(redisAdapter({ url: 'redis://127.0.0.1:6379' }))
  expectType<RedisAdapter>(redisAdapter({ client, subscriber: client.duplicate() }, { prefix: 'chat' }))
  expectType<RedisAdapter>(redisAdapter({ client }))
  expectType<RedisAdapter>(new RedisAdapter({ url: 'rediss://cache.example.com:6380' }))
  expectType<typeof redisAdapter>(nexusRealtime.redisAdapter)
  expectType<typeof RedisAdapter>(nexusRealtimeCjs.RedisAdapter)
  expectAssignable<RedisConnection>({ url: 'redis://x' })
  expectAssignable<RedisAdapterOptions>({ prefix: 'app' })
  expectError(redisAdapter({ url: 'redis://x', client }))
  expectError(redisAdapter({}))
  expectError(redisAdapter({ url: 'redis://x' }, { prefix: 1 }))
  expectError(redisAdapter({ client: {} }))

  // A Redis Cluster: startup nodes (with ioredis Cluster options), or an ioredis Cluster of the app's own.
  const cluster = new Cluster([{ host: '127.0.0.1', port: 7000 }])
  expectAssignable<RedisClient>(cluster)
  expectType<RedisAdapter>(redisAdapter({ client: cluster }, { prefix: 'chat' }))
  expectType<RedisAdapter>(redisAdapter({ cluster: [{ host: '127.0.0.1', port: 7000 }, 'redis://127.0.0.1:7001', 7002] }))
  expectType<RedisAdapter>(redisAdapter({ cluster: [{ host: '127.0.0.1', port: 7000 }], clusterOptions: { redisOptions: { password: 'secret' } }, prefix: 'chat' }))
  expectError(redisAdapter({ cluster: [{ host: '127.0.0.1', port: 7000 }], url: 'redis://x' }))
  expectError(redisAdapter({ cluster: [{ host: '127.0.0.1', port: 7000 }], subscriber: client }))
  expectError(redisAdapter({ cluster: 'redis://127.0.0.1:7000' }))

  const adapter = redisAdapter({ url: 'redis://127.0.0.1:6379' })
  expectAssignable<Adapter>(adapter)
  expectAssignable<MemoryAdapter>(adapter)
  expectType<string>(adapter.uid)
  // History rooms in Redis: the store runs its scripts with callBuffer, which a client of the app's own may lack.
  expectType<AdapterHistory>(adapter.history)
  expectType<Promise<unknown> | undefined>(({} as RedisClient).callBuffer?.('EVALSHA', 'sha1', 2, 'key', Buffer.from('x'), 3))
  expectAssignable<RedisClient>({ status: 'ready', publish: async () => 0, subscribe: async () => 0, unsubscribe: async () => 0, connect: async () => {}, quit: async () => 'OK', disconnect: () => {}, on: () => {}, removeListener: () => {} })
  expectType<RedisAdapterStats>(adapter.stats())
  expectType<number>(adapter.stats().redisPublishErrors)
  expectType<Promise<void>>(adapter.close())
  expectAssignable<Record<string, number>>(adapter.stats())
  void Fastify().register(nexusRealtime, { adapter })
}

{
  // The cluster-wide queries of the manager, with an optional timeout.
  const manager = Fastify().getWebSocket()
  expectType<Promise<string[]>>(manager.fetchRooms())
  expectType<Promise<number>>(manager.fetchRoomSize('room', { timeout: 1000 }))
  expectType<Promise<number>>(manager.fetchConnections({}))
  expectAssignable<FetchOptions>({ timeout: 0 })
  expectError(manager.fetchRooms({ timeout: '1s' }))
  expectError(manager.fetchRoomSize(['a']))
  // The adapter's counters are numbers in stats().
  expectType<number>(manager.stats().redisPublished)
}

{
  // A user's adapter may answer the queries and add counters: all optional.
  class Clustered extends MemoryAdapter {
    private local: AdapterHost | undefined
    override init (host: AdapterHost): void { this.local = host }
    async fetchRooms (options: AdapterFetchOptions): Promise<string[]> {
      expectType<number>(options.timeout)
      return this.local?.rooms() ?? []
    }

    stats (): { nodes: number } { return { nodes: 1 } }
  }
  expectAssignable<Adapter>(new Clustered())
  class Wrong extends MemoryAdapter {
    async fetchRooms (): Promise<number> { return 1 }
  }
  expectNotAssignable<Adapter>(new Wrong())
}

// ------------------------------------------------------------ the document's listen(port, callback)

// The plugin does not change Fastify's types: `listen(port, …)` is an opt-in
// (`listen: 'positional'` at run time, `fastify-nexus-realtime/listen` for the
// types), so neither the app nor another Fastify instance type-checks it here.
{
  const app = Fastify()
  void app.register(nexusRealtime, { listen: 'positional' })
  expectError(app.register(nexusRealtime, { listen: true }))
  expectError(app.register(nexusRealtime, { listen: 'yes' }))
  expectError(app.listen(3000, () => {}))
  const other = Fastify()
  expectError(other.listen(9091))
  expectError(other.listen(9091, () => {}))
  expectType<Promise<string>>(other.listen({ port: 9091 }))
}

// ------------------------------------------------------------ authTimeout and Fastify's route options on app.ws

{
  const app = Fastify()
  void app.register(nexusRealtime, { authTimeout: 5000 })
  expectError(app.register(nexusRealtime, { authTimeout: '5s' }))
  app.ws('/ws/fastify-options', {
    authTimeout: 2000,
    config: { role: 'admin' },
    logLevel: 'warn',
    constraints: { host: 'example.com' },
    onRequest: async (request) => { expectType<boolean>(request.ws) },
    preValidation: [async () => {}, async () => {}],
    preHandler: (_request, _reply, done) => { done() },
    onResponse: async () => {},
    errorHandler: (_error, _request, reply) => { void reply.code(500).send() }
  })
  expectError(app.ws('/ws', { authTimeout: '2s' }))
  expectError(app.ws('/ws', { handler: () => {} }))
  expectError(app.ws('/ws', { onSend: async () => {} }))
  expectError(app.ws('/ws', { method: 'POST' }))
  expectError(app.ws('/ws', { onMesage: () => {} }))
}

// ------------------------------------------------------------ metrics (prom-client)

{
  const app = Fastify()
  void app.register(nexusRealtime, { metrics: true })
  void app.register(nexusRealtime, { metrics: false })
  // prom-client's registries, its default one included, are what the option takes.
  void app.register(nexusRealtime, { metrics: { registry: new PromRegistry() } })
  void app.register(nexusRealtime, { metrics: { registry: promRegister, prefix: 'shop_', roomClass: (room) => room.split(':')[0], maxRoomClasses: 20 } })
  expectAssignable<MetricsRegistry>(new PromRegistry())
  expectAssignable<MetricsOptions>({ roomClass: (room: string) => room.slice(0, 4) })
  expectError(app.register(nexusRealtime, { metrics: 'on' }))
  expectError(app.register(nexusRealtime, { metrics: { registry: {} } }))
  expectError(app.register(nexusRealtime, { metrics: { prefix: 1 } }))
  expectError(app.register(nexusRealtime, { metrics: { roomClass: (room: number) => String(room) } }))
  expectError(app.register(nexusRealtime, { metrics: { maxRoomClasses: '10' } }))
  expectError(app.register(nexusRealtime, { metrics: { registery: promRegister } }))
}
