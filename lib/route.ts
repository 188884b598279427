import type { FastifyInstance, FastifyReply, FastifyRequest, RouteOptions } from 'fastify'
import type {} from '@fastify/websocket'
import type { WebSocket } from 'ws'
import type { WebSocketRouteConfig } from '../types/index'
import { CloseCode } from './constants'
import { createParser, type JsonSafety } from './codec'
import { Connection, type RouteState } from './connection'
import { Context } from './context'
import { describe, errors } from './errors'
import type { Manager } from './manager'
import { kContext } from './symbols'

type RequestWithContext = FastifyRequest & { [kContext]?: Context }

const HANDLERS = ['auth', 'beforeConnect', 'onConnect', 'onMessage', 'onClose', 'onError'] as const
const PARSE_MODES = new Set(['json', 'text', 'binary'])

function validateRoute (path: unknown, config: unknown): asserts config is WebSocketRouteConfig {
  if (typeof path !== 'string' || path.length === 0) {
    throw new errors.FST_NEXUS_INVALID_ROUTE(String(path), 'path', 'a non-empty string', describe(path))
  }
  if (typeof config !== 'object' || config === null || Array.isArray(config)) {
    throw new errors.FST_NEXUS_INVALID_ROUTE(path, 'config', 'an object', describe(config))
  }
  const route = config as WebSocketRouteConfig
  for (const name of HANDLERS) {
    if (route[name] !== undefined && typeof route[name] !== 'function') {
      throw new errors.FST_NEXUS_INVALID_ROUTE(path, name, 'a function', describe(route[name]))
    }
  }
  if (route.rooms !== undefined && typeof route.rooms !== 'boolean') {
    throw new errors.FST_NEXUS_INVALID_ROUTE(path, 'rooms', 'a boolean', describe(route.rooms))
  }
  const parse = route.parse === undefined ? 'json' : route.parse
  if (typeof parse !== 'function' && !PARSE_MODES.has(parse)) {
    throw new errors.FST_NEXUS_INVALID_ROUTE(path, 'parse', "'json', 'text', 'binary' or a function", describe(parse))
  }
}

/** The HTTP status a rejected handshake gets: the error's own 4xx/5xx, else 401. */
function statusOf (error: unknown): number {
  const statusCode = (error as { statusCode?: unknown } | null)?.statusCode
  return typeof statusCode === 'number' && statusCode >= 400 && statusCode <= 599 ? statusCode : 401
}

/** Builds the `app.ws` decorator bound to one manager. */
export function createRouteDecorator (manager: Manager, safety: JsonSafety) {
  return function ws (this: FastifyInstance, path: string, config: WebSocketRouteConfig): FastifyInstance {
    validateRoute(path, config)
    const state: RouteState = {
      url: path,
      config,
      parse: createParser(config.parse ?? 'json', safety),
      rooms: config.rooms ?? true
    }
    const auth = config.auth

    const options: RouteOptions = {
      method: 'GET',
      url: path,
      websocket: true,
      handler: function onUpgrade (socket: WebSocket, request: RequestWithContext) {
        const connection = new Connection(manager, state, socket, request[kContext] ?? new Context(request))
        // An upgrade that passed its hooks while app.close() started: it is
        // accepted (so its lifecycle stays whole) and closed at once.
        if (manager.closing) connection.close(CloseCode.GOING_AWAY, 'Server shutting down')
      } as unknown as RouteOptions['handler']
    }
    if (auth !== undefined) {
      options.preValidation = async function authenticate (request: RequestWithContext, reply: FastifyReply) {
        // A plain HTTP GET on a ws route gets @fastify/websocket's 404 without running auth.
        if (!request.ws) return
        const ctx = new Context(request)
        try {
          ctx.user = await auth(ctx)
        } catch (error) {
          const status = statusOf(error)
          reply.code(status)
          // A thrown non-Error still gets a proper error body, with its status.
          throw error instanceof Error ? error : Object.assign(new errors.FST_NEXUS_UNAUTHORIZED(), { statusCode: status })
        }
        request[kContext] = ctx
      }
    }
    this.route(options)
    return this
  }
}
