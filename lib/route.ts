import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest, RouteOptions } from 'fastify'
import { STATUS_CODES } from 'node:http'
import type {} from '@fastify/websocket'
import type { WebSocket } from 'ws'
import type { WebSocketRouteConfig } from '../types/index'
import { CloseCode, DEFAULT_AUTHORIZE_TIMEOUT, DEFAULT_MAX_ROOMS, ErrorFrameCode, MAX_TIMEOUT } from './constants'
import { createMessageValidator, createParser, errorFrame, type JsonSafety } from './codec'
import { Connection } from './connection'
import type { RouteState, SubscribeRules } from './inbound'
import { PROTOCOL, RESUME } from './protocol'
import { Context } from './context'
import { authChannel, connectionRefusedChannel, refused, traceCall, traced } from './diagnostics'
import { describe, errors } from './errors'
import { createOriginCheck } from './origin'
import {
  normalizeHeartbeat,
  normalizeMaxBufferedBytes,
  normalizeAuthTimeout,
  normalizeMaxInboundBytes,
  normalizeRateLimit,
  type ConnectionLimits,
  type Fail,
  type NormalizedOptions
} from './options'
import { isThenable } from './promise'
import type { Runtime } from './runtime'
import { kContext, kRefused } from './symbols'

type RequestWithContext = FastifyRequest & { [kContext]?: Context, [kRefused]?: { code: number, reason: string } }

const HANDLERS = ['auth', 'beforeConnect', 'onConnect', 'onMessage', 'onClose', 'onError'] as const
const PARSE_MODES = new Set(['json', 'text', 'binary'])

/** The plugin's own fields of a route config. */
const NEXUS_FIELDS = new Set<string>([
  ...HANDLERS, 'rooms', 'parse', 'schema', 'heartbeat', 'maxBufferedBytes', 'maxInboundBytes', 'rateLimit', 'authTimeout', 'presence'
])
/** Fastify's route hooks that run before the upgrade (or on a refused handshake): function or array of functions. */
const FASTIFY_HOOKS = ['onRequest', 'preParsing', 'preValidation', 'preHandler', 'onResponse', 'onTimeout', 'onRequestAbort'] as const
/** Fastify route options passed on as they are (Fastify checks their values). */
const FASTIFY_OPTIONS = [
  'config', 'logLevel', 'logSerializers', 'childLoggerFactory', 'constraints', 'prefixTrailingSlash',
  'exposeHeadRoute', 'errorHandler', 'schemaErrorFormatter', 'validatorCompiler'
] as const
/**
 * Fastify route options that cannot apply to a ws route, and why: they are
 * rejected rather than dropped, so that nobody relies on them silently.
 */
const NOT_FOR_WS: Readonly<Record<string, string>> = {
  handler: 'left out: the socket is handled by onConnect, onMessage and onClose',
  wsHandler: 'left out: the socket is handled by onConnect, onMessage and onClose',
  websocket: 'left out: an app.ws route is a WebSocket route',
  method: 'left out: a WebSocket handshake is a GET',
  url: 'left out: the path is the first argument of app.ws',
  path: 'left out: the path is the first argument of app.ws',
  preSerialization: 'left out: frames sent on the socket are not serialized by Fastify',
  onSend: 'left out: frames sent on the socket do not go through Fastify\'s onSend',
  serializerCompiler: 'left out: frames sent on the socket are not serialized by Fastify',
  attachValidation: 'left out: a handshake that fails its schema is answered 400',
  bodyLimit: 'left out: a handshake has no body (see websocket.maxPayload for frames)'
}

function validateRoute (path: unknown, config: unknown): asserts config is WebSocketRouteConfig {
  if (typeof path !== 'string' || path.length === 0) {
    throw new errors.FST_NEXUS_INVALID_ROUTE(String(path), 'path', 'a non-empty string', describe(path))
  }
  if (typeof config !== 'object' || config === null || Array.isArray(config)) {
    throw new errors.FST_NEXUS_INVALID_ROUTE(path, 'config', 'an object', describe(config))
  }
  const route = config as WebSocketRouteConfig
  for (const key of Object.keys(route)) {
    const reason = NOT_FOR_WS[key]
    if (reason !== undefined) throw new errors.FST_NEXUS_INVALID_ROUTE(path, key, reason, describe((route as Record<string, unknown>)[key]))
    if (!NEXUS_FIELDS.has(key) && !(FASTIFY_HOOKS as readonly string[]).includes(key) && !(FASTIFY_OPTIONS as readonly string[]).includes(key)) {
      throw new errors.FST_NEXUS_INVALID_ROUTE(path, key, 'left out: it is not an option of app.ws (see the README, "Route config")', describe((route as Record<string, unknown>)[key]))
    }
  }
  for (const name of FASTIFY_HOOKS) {
    const hooks: unknown = route[name]
    if (hooks !== undefined && typeof hooks !== 'function' && !(Array.isArray(hooks) && hooks.every((hook) => typeof hook === 'function'))) {
      throw new errors.FST_NEXUS_INVALID_ROUTE(path, name, 'a function or an array of functions (a Fastify hook)', describe(hooks))
    }
  }
  for (const name of HANDLERS) {
    if (route[name] !== undefined && typeof route[name] !== 'function') {
      throw new errors.FST_NEXUS_INVALID_ROUTE(path, name, 'a function', describe(route[name]))
    }
  }
  if (route.rooms !== undefined && typeof route.rooms !== 'boolean' && (typeof route.rooms !== 'object' || route.rooms === null || Array.isArray(route.rooms))) {
    throw new errors.FST_NEXUS_INVALID_ROUTE(path, 'rooms', 'a boolean or { authorize, maxRooms, timeout }', describe(route.rooms))
  }
  validatePresence(path, route.presence)
  const parse = route.parse === undefined ? 'json' : route.parse
  if (typeof parse !== 'function' && !PARSE_MODES.has(parse)) {
    throw new errors.FST_NEXUS_INVALID_ROUTE(path, 'parse', "'json', 'text', 'binary' or a function", describe(parse))
  }
  if (route.schema !== undefined && (typeof route.schema !== 'object' || route.schema === null || Array.isArray(route.schema))) {
    throw new errors.FST_NEXUS_INVALID_ROUTE(path, 'schema', 'an object of schemas', describe(route.schema))
  }
}

/** `presence: { key, meta }`: an object of (at most) these two functions. */
function validatePresence (path: string, presence: unknown): void {
  if (presence === undefined) return
  if (typeof presence !== 'object' || presence === null || Array.isArray(presence)) {
    throw new errors.FST_NEXUS_INVALID_ROUTE(path, 'presence', '{ key, meta } (functions of ctx)', describe(presence))
  }
  for (const [name, value] of Object.entries(presence)) {
    if (name !== 'key' && name !== 'meta') throw new errors.FST_NEXUS_INVALID_ROUTE(path, `presence.${name}`, 'left out: presence takes key and meta', describe(value))
    if (value !== undefined && typeof value !== 'function') throw new errors.FST_NEXUS_INVALID_ROUTE(path, `presence.${name}`, 'a function of ctx', describe(value))
  }
}

/** `rooms: { authorize, maxRooms, timeout }`: the rules of the client's own subscribes, or null when there are none. */
function subscribeRules (path: string, rooms: WebSocketRouteConfig['rooms']): SubscribeRules | null {
  if (typeof rooms !== 'object') return null
  const { authorize, maxRooms = DEFAULT_MAX_ROOMS, timeout = DEFAULT_AUTHORIZE_TIMEOUT } = rooms
  if (authorize !== undefined && typeof authorize !== 'function') {
    throw new errors.FST_NEXUS_INVALID_ROUTE(path, 'rooms.authorize', 'a function', describe(authorize))
  }
  if (typeof maxRooms !== 'number' || !Number.isInteger(maxRooms) || maxRooms < 1) {
    throw new errors.FST_NEXUS_INVALID_ROUTE(path, 'rooms.maxRooms', 'a positive integer', describe(maxRooms))
  }
  if (typeof timeout !== 'number' || !Number.isInteger(timeout) || timeout < 1 || timeout > MAX_TIMEOUT) {
    throw new errors.FST_NEXUS_INVALID_ROUTE(path, 'rooms.timeout', `a positive integer of milliseconds up to ${MAX_TIMEOUT}`, describe(timeout))
  }
  // Without authorize nobody may subscribe: rooms stay server code's alone.
  return authorize === undefined ? null : { authorize, maxRooms, timeout }
}

/** The route's own heartbeat, rateLimit, maxBufferedBytes and maxInboundBytes over the plugin's. */
function routeLimits (path: string, config: WebSocketRouteConfig, defaults: ConnectionLimits): ConnectionLimits {
  const fail: Fail = (field, expected, received) => {
    throw new errors.FST_NEXUS_INVALID_ROUTE(path, field, expected, describe(received))
  }
  return {
    heartbeat: config.heartbeat === undefined ? defaults.heartbeat : normalizeHeartbeat(config.heartbeat, fail),
    maxBufferedBytes: config.maxBufferedBytes === undefined ? defaults.maxBufferedBytes : normalizeMaxBufferedBytes(config.maxBufferedBytes, fail),
    maxInboundBytes: config.maxInboundBytes === undefined ? defaults.maxInboundBytes : normalizeMaxInboundBytes(config.maxInboundBytes, fail),
    rateLimit: config.rateLimit === undefined ? defaults.rateLimit : normalizeRateLimit(config.rateLimit, fail)
  }
}

/**
 * What a handshake rejected by `auth` is answered with. An error that carries
 * its own 4xx `statusCode` is the app's deliberate answer and goes out as is.
 * One with a 5xx `statusCode` keeps its status, but its message may be
 * internal (a database error's text): the client gets the status text (Node's
 * STATUS_CODES), the log gets the original, which is also the `cause`.
 * Anything else (a plain `Error('Token required')`, a bug's TypeError, a
 * database error) becomes a bare 401 `FST_NEXUS_UNAUTHORIZED` whose `cause` is
 * the original, so no internal message reaches the client.
 */
function rejection (error: unknown, reply: FastifyReply): Error {
  const statusCode = (error as { statusCode?: unknown } | null)?.statusCode
  if (error instanceof Error && typeof statusCode === 'number' && statusCode >= 400 && statusCode <= 599) {
    reply.code(statusCode)
    if (statusCode < 500 || error instanceof errors.FST_NEXUS_AUTH_TIMEOUT) return error
    reply.log.error({ err: error }, 'auth failed with a server error; the client gets its status text only')
    return Object.assign(new Error(STATUS_CODES[statusCode] ?? 'Error', { cause: error }), { statusCode })
  }
  reply.code(401)
  return new errors.FST_NEXUS_UNAUTHORIZED({ cause: error })
}

/** Whether the handshake offers a subprotocol (`nexus.v1`, or `nexus.resume`: the client presents positions first). */
function offers (request: FastifyRequest, name: string): boolean {
  const offered = request.headers['sec-websocket-protocol']
  return typeof offered === 'string' && offered.split(',').some((item) => item.trim() === name)
}

/**
 * The close that tells a nexus.v1 client its handshake was refused: 4000 +
 * the status it would have been answered with, and that answer's message
 * for a 4xx (the status text for a 5xx, whose message may be internal).
 */
function refusalClose (error: unknown): { code: number, reason: string } {
  const statusCode = (error as { statusCode?: unknown } | null)?.statusCode
  const deliberate = error instanceof Error && typeof statusCode === 'number' && statusCode >= 400 && statusCode <= 599
  const status = deliberate ? statusCode : 401
  const message = deliberate && status < 500 ? error.message : (STATUS_CODES[status] ?? 'Error')
  // A close reason is at most 123 bytes.
  return { code: 4000 + status, reason: Buffer.from(message).subarray(0, 123).toString().replace(/\uFFFD+$/, '') }
}

type Hook = (...args: any[]) => unknown
type Phase = 'onRequest' | 'preValidation' | 'preHandler'

/** Sets a hook phase of the route: the plugin's own hook (if any) first, then the route's own (a function or an array). */
function setPhase (options: RouteOptions, phase: Phase, own: Hook | null, given: unknown): void {
  const hooks: Hook[] = given === undefined ? [] : ([] as Hook[]).concat(given as Hook | Hook[])
  if (own !== null) hooks.unshift(own)
  if (hooks.length > 0) (options as unknown as Record<Phase, Hook[]>)[phase] = hooks
}

/** Builds the `app.ws` decorator bound to one manager. */
export function createRouteDecorator (runtime: Runtime<Connection>, safety: JsonSafety, plugin: NormalizedOptions) {
  const checkOrigin = plugin.allowedOrigins === null ? null : createOriginCheck(plugin.allowedOrigins)

  return function ws (this: FastifyInstance, path: string, config: WebSocketRouteConfig): FastifyInstance {
    validateRoute(path, config)
    const limits = routeLimits(path, config, plugin)
    const { message: messageSchema, ...httpSchema } = config.schema ?? {}
    const rateLimitedMessage = limits.rateLimit === null ? '' : `Too many messages: at most ${limits.rateLimit.max} per ${limits.rateLimit.windowMs} ms`
    const state: RouteState = {
      url: path,
      config,
      parse: createParser(config.parse ?? 'json', safety),
      rooms: config.rooms !== false,
      subscribe: subscribeRules(path, config.rooms),
      limits,
      safety,
      rateLimitedMessage,
      rateLimitedFrame: limits.rateLimit === null ? null : errorFrame(ErrorFrameCode.RATE_LIMITED, rateLimitedMessage),
      validate: null
    }
    const auth = config.auth
    const authTimeout = config.authTimeout === undefined
      ? plugin.authTimeout
      : normalizeAuthTimeout(config.authTimeout, (field, expected, received) => {
        throw new errors.FST_NEXUS_INVALID_ROUTE(path, field, expected, describe(received))
      })

    const options: RouteOptions = {
      method: 'GET',
      url: path,
      websocket: true,
      handler: function onUpgrade (socket: WebSocket, request: RequestWithContext) {
        const refused = request[kRefused]
        if (refused !== undefined) {
          // A nexus.v1 client refused by auth: it learns why from the close code (PROTOCOL.md).
          socket.close(refused.code, refused.reason)
          return
        }
        const connection = new Connection(runtime, state, socket, request[kContext] ?? new Context(request))
        connection.begin(offers(request, RESUME))
        // An upgrade that passed its hooks while app.close() started: it is
        // accepted (so its lifecycle stays whole) and closed at once.
        if (runtime.closing) connection.close(CloseCode.GOING_AWAY, 'Server shutting down')
      } as unknown as RouteOptions['handler']
    }
    // querystring, params and headers are Fastify's own: checked before the upgrade (400).
    if (Object.keys(httpSchema).length > 0) options.schema = httpSchema
    // Fastify's onError hook of the route (the plugin's alone: a route's
    // `onError` is its socket handler): handshakes refused by the origin
    // check or the schema, on `nexus.connection.refused`.
    options.onError = function refusedHandshake (request: FastifyRequest, _reply: FastifyReply, error: FastifyError, done: () => void) {
      // The reply's status is set after this hook: these are the ones sent.
      if (connectionRefusedChannel.hasSubscribers && request.ws) {
        if (error instanceof errors.FST_NEXUS_ORIGIN_NOT_ALLOWED) refused(path, 'origin', 403)
        else if (error.validation !== undefined) refused(path, 'schema', 400)
      }
      done()
    }
    // Fastify's route options that apply to a handshake, as given.
    const passed = options as unknown as Record<string, unknown>
    for (const key of FASTIFY_OPTIONS) if (config[key] !== undefined) passed[key] = config[key]
    for (const key of ['preParsing', 'onResponse', 'onTimeout', 'onRequestAbort'] as const) {
      if (config[key] !== undefined) passed[key] = config[key]
    }
    // Within a phase, the plugin's own hook runs before the route's (Fastify
    // runs the hooks of the app and its contexts before both): the origin
    // check before the route's onRequest, auth before its preValidation.
    setPhase(options, 'onRequest', checkOrigin, config.onRequest)
    if (messageSchema !== undefined) {
      // Compiled once, with the validator compiler of the context the route
      // lives in (so a TypeBox or other compiler set there applies); a message
      // plays the part of a body for the compiler. When that compiler exists
      // at ready (a custom one, or Ajv once any route has a schema), a schema
      // that does not compile fails app.ready(); otherwise the first upgrade
      // compiles it.
      const instance = this
      this.addHook('onReady', async function compileAtReady () {
        const compiler = config.validatorCompiler ?? instance.validatorCompiler
        if (compiler === undefined || state.validate !== null) return
        state.validate = createMessageValidator(compiler({ schema: messageSchema as Record<string, unknown>, method: 'GET', url: path, httpPart: 'body' }) as Parameters<typeof createMessageValidator>[0])
      })
      setPhase(options, 'preHandler', async function compileMessageSchema (request: FastifyRequest) {
        state.validate ??= createMessageValidator(request.compileValidationSchema(messageSchema as Record<string, unknown>, 'body'))
      }, config.preHandler)
    } else {
      setPhase(options, 'preHandler', null, config.preHandler)
    }
    if (auth === undefined) {
      setPhase(options, 'preValidation', null, config.preValidation)
    } else {
      // A callback-style hook: a synchronous auth costs no promise and no microtask.
      setPhase(options, 'preValidation', function authenticate (request: RequestWithContext, reply: FastifyReply, done: (error?: Error) => void) {
        // A plain HTTP GET on a ws route gets @fastify/websocket's 404 without running auth.
        if (!request.ws) {
          done()
          return
        }
        const ctx = new Context(request)
        const accept = (user: unknown): void => {
          ctx.user = user
          request[kContext] = ctx
          done()
        }
        const reject = (error: unknown): void => {
          const reason = error instanceof errors.FST_NEXUS_AUTH_TIMEOUT ? 'timeout' : 'auth'
          // A browser cannot read the HTTP answer of a refused handshake: a
          // nexus.v1 client is accepted, then closed with 4000 + the status.
          if (offers(request, PROTOCOL)) {
            const close = request[kRefused] = refusalClose(error)
            refused(path, reason, close.code - 4000)
            done()
            return
          }
          const answer = rejection(error, reply)
          refused(path, reason, reply.statusCode)
          done(answer)
        }
        let result: unknown
        try {
          result = traced(authChannel) ? traceCall(authChannel, { route: path, request }, auth, undefined, ctx) : auth(ctx)
        } catch (error) {
          reject(error)
          return
        }
        if (isThenable(result)) {
          // An auth that never settles would hold the socket forever: after
          // authTimeout ms the handshake is refused with 503, and a late
          // settlement is ignored.
          let timer: NodeJS.Timeout | undefined = setTimeout(() => {
            timer = undefined
            reject(new errors.FST_NEXUS_AUTH_TIMEOUT(String(authTimeout)))
          }, authTimeout)
          const settle = <T>(handle: (value: T) => void) => (value: T): void => {
            if (timer === undefined) return
            clearTimeout(timer)
            timer = undefined
            handle(value)
          }
          result.then(settle(accept), settle(reject))
        } else {
          accept(result)
        }
      }, config.preValidation)
    }
    this.route(options)
    return this
  }
}
