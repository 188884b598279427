import type { FastifyInstance, FastifyReply, FastifyRequest, RouteOptions } from 'fastify'
import fastifyWebsocket from '@fastify/websocket'
import type { IncomingMessage, Server, ServerResponse } from 'node:http'
import type { Duplex } from 'node:stream'
import type { WebSocket, WebSocketServer } from 'ws'
import type { NexusRealtimeOptions } from '../types/index'
import type { ProtoAction } from './codec'
import { Connection } from './connection'
import { refused } from './diagnostics'
import { describe, errors } from './errors'
import { normalizeInjectedHandshake } from './handshake'
import { withPositionalListen } from './listen'
import { Manager } from './manager'
import { normalizeOptions, type NormalizedOptions } from './options'
import { PROTOCOL } from './protocol'
import { createRouteDecorator } from './route'
import { createRuntime } from './runtime'

type UpgradeListener = (...args: any[]) => void

/**
 * What one app's registrations of the plugin share: the first registration
 * builds it, later ones (in other encapsulated plugins, say) reuse it, so an
 * app has one runtime, one manager and one room space.
 */
interface Registration {
  /** the options the first registration was given, to compare later ones with */
  given: NexusRealtimeOptions
  options: NormalizedOptions
  manager: Manager
  ws: ReturnType<typeof createRouteDecorator>
  /** every @fastify/websocket server a registration uses (one per context that registered it) */
  websocketServers: Set<WebSocketServer>
}

/** One registration per app, found by the app's HTTP server (the same object in every context). */
const registrations = new WeakMap<Server, Registration>()

/**
 * Registration: checks the options, brings in @fastify/websocket unless the
 * context already has it, builds the manager over its adapter (once per app),
 * decorates `ws` and `getWebSocket`, and owns the shutdown.
 */
export async function plugin (fastify: FastifyInstance, rawOptions: NexusRealtimeOptions): Promise<void> {
  const normalized = normalizeOptions(rawOptions)
  const server = fastify.server as Server
  const existing = registrations.get(server)
  if (existing !== undefined) checkSameOptions(existing.given, rawOptions)
  const options = existing?.options ?? normalized

  // The upgrade listener of @fastify/websocket when the plugin registered it:
  // it is removed at close, otherwise upgrades arriving then would be routed
  // into Fastify's 503 and left half-open.
  let ownUpgradeListeners: UpgradeListener[] = []
  if (!fastify.hasDecorator('websocketServer')) {
    const before = new Set(server.listeners('upgrade'))
    await fastify.register(fastifyWebsocket, {
      // A client that offers nexus.v1 among other subprotocols speaks nexus.v1
      // (ws would take the first offered); the app's own choice wins.
      options: { handleProtocols: preferProtocol, ...options.websocket },
      // The plugin's own preClose hook (below) closes every socket with 1001.
      preClose: (done: () => void) => done(),
      errorHandler: defaultErrorHandler
    })
    ownUpgradeListeners = server.listeners('upgrade').filter((listener) => !before.has(listener)) as UpgradeListener[]
    // A later registration in another context: its @fastify/websocket brings
    // the hooks and route handling of that context, but the upgrades of the
    // server are already dispatched (once) by the first one's listener.
    if (existing !== undefined) for (const listener of ownUpgradeListeners) server.removeListener('upgrade', listener)
  }
  // An upgrade to a route without a WebSocket handler is answered 404, not upgraded.
  fastify.addHook('onRoute', refuseUpgradesOnHttpRoutes)
  // Opt-in: the document's `app.listen(3000, () => …)` form, on this instance only.
  if (normalized.positionalListen) fastify.listen = withPositionalListen(fastify.listen)

  const registration = existing ?? await firstRegistration(fastify, rawOptions, options, ownUpgradeListeners)
  registration.websocketServers.add(fastify.websocketServer)
  // In a context that does not see the first registration's decorators (a
  // sibling encapsulated plugin): the same decorator and the same manager.
  if (!fastify.hasDecorator('ws')) fastify.decorate('ws', registration.ws)
  if (!fastify.hasDecorator('getWebSocket')) {
    const { manager } = registration
    fastify.decorate('getWebSocket', function getWebSocket () {
      return manager
    })
  }
}

/** The runtime, manager, upgrade listeners and shutdown hooks: once per app. */
async function firstRegistration (fastify: FastifyInstance, given: NexusRealtimeOptions, options: NormalizedOptions, ownUpgradeListeners: UpgradeListener[]): Promise<Registration> {
  const server = fastify.server as Server
  const runtime = createRuntime<Connection>(options.adapter, options.policies)
  const manager = new Manager(runtime)
  // Metrics (the `metrics` option): prom-client and lib/metrics are loaded only when it is set.
  if (options.metrics !== null) loadMetrics().attachMetrics(fastify, { stats: () => manager.stats(), history: runtime.hub.history !== null, presence: runtime.hub.presence !== null }, options.metrics)
  await runtime.hub.init(fastify.log)
  const registration: Registration = {
    given,
    options,
    manager,
    ws: createRouteDecorator(runtime, {
      // Fastify fills both in its initial config ('error' by default).
      protoAction: fastify.initialConfig.onProtoPoisoning as ProtoAction,
      constructorAction: fastify.initialConfig.onConstructorPoisoning as ProtoAction
    }, options),
    websocketServers: new Set()
  }
  registrations.set(server, registration)

  // Makes app.injectWS() pass ws's handshake checks (see handshake.ts).
  server.prependListener('upgrade', normalizeInjectedHandshake)
  // After @fastify/websocket's listener: ends the socket of every upgrade
  // answered with an HTTP response, whichever hook or handler answered it.
  server.on('upgrade', endAnsweredUpgrade)

  fastify.addHook('preClose', async function closeSockets () {
    for (const listener of ownUpgradeListeners) server.removeListener('upgrade', listener)
    server.prependListener('upgrade', rejectUpgrade)
    const others: WebSocket[] = []
    for (const wss of registration.websocketServers) {
      for (const socket of wss.clients) if (Connection.of(socket) === undefined) others.push(socket)
    }
    await manager.shutdown(options.shutdownTimeout, others)
  })
  fastify.addHook('onClose', async function closeAdapter () {
    server.removeListener('upgrade', rejectUpgrade)
    server.removeListener('upgrade', normalizeInjectedHandshake)
    server.removeListener('upgrade', endAnsweredUpgrade)
    registrations.delete(server)
    runtime.hub.history?.close()
    // The sockets are closed: their leaves are written before the adapter goes.
    await runtime.hub.presence?.close()
    await options.adapter.close()
  })
  return registration
}

/** lib/metrics, loaded on demand: an app without the `metrics` option never loads it, nor prom-client. */
function loadMetrics (): typeof import('./metrics') {
  return require('./metrics')
}

/**
 * A later registration reuses the first one's manager: its options must be
 * left out or be the same (`listen` excepted: it is about the instance
 * registered on), else which ones apply would be a silent choice.
 */
function checkSameOptions (first: NexusRealtimeOptions, later: NexusRealtimeOptions): void {
  const keys = new Set([...Object.keys(first), ...Object.keys(later)])
  keys.delete('listen')
  const laterKeys = [...keys].filter((key) => (later as Record<string, unknown>)[key] !== undefined)
  if (laterKeys.length === 0) return
  for (const key of keys) {
    const value = (later as Record<string, unknown>)[key]
    if (!sameValue((first as Record<string, unknown>)[key], value)) {
      throw new errors.FST_NEXUS_INVALID_OPTION(key,
        'the value given to the first registration of the plugin in this app (an app has one manager: register it again without options, or with the same ones)',
        describe(value))
    }
  }
}

/** Structural equality of option values: plain objects and arrays by content, RegExps by source and flags, the rest by identity. */
function sameValue (a: unknown, b: unknown): boolean {
  if (Object.is(a, b)) return true
  if (a instanceof RegExp && b instanceof RegExp) return a.source === b.source && a.flags === b.flags
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((item, i) => sameValue(item, b[i]))
  if (!isPlainObject(a) || !isPlainObject(b)) return false
  const keys = new Set([...Object.keys(a), ...Object.keys(b)])
  for (const key of keys) if (!sameValue(a[key], b[key])) return false
  return true
}

function isPlainObject (value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null) return false
  const prototype: unknown = Object.getPrototypeOf(value)
  return prototype === Object.prototype || prototype === null
}

/**
 * onRoute hook: a route declared without a WebSocket handler answers a
 * WebSocket handshake with 404 `FST_NEXUS_NOT_WEBSOCKET` (through the app's
 * error handler) instead of @fastify/websocket's 101 then close. Added after
 * @fastify/websocket's own onRoute hook, so it wraps that handler.
 */
function refuseUpgradesOnHttpRoutes (routeOptions: RouteOptions): void {
  if (routeOptions.websocket === true || routeOptions.wsHandler !== undefined) return
  const handler = routeOptions.handler
  const url = routeOptions.url
  routeOptions.handler = function httpOnly (this: FastifyInstance, request: FastifyRequest, reply: FastifyReply) {
    if (request.ws) return reply.send(new errors.FST_NEXUS_NOT_WEBSOCKET(`${request.method} ${url}`))
    return handler.call(this, request, reply)
  }
}

/**
 * The server's `upgrade` listener after @fastify/websocket's: that one
 * dispatched the request through Fastify with a ServerResponse assigned to the
 * socket (Node keeps it as `socket._httpMessage`). If that response is sent
 * (a 401 from a hook that ran before @fastify/websocket's, a 429 from a rate
 * limiter, a 404, an auth refusal), no upgrade follows: the socket is ended
 * once the response is written, as Node's HTTP server does for a
 * `Connection: close` response. @fastify/websocket ends it only when its own
 * onRequest hook ran, which a hook answering before it prevents.
 */
function endAnsweredUpgrade (_request: IncomingMessage, socket: Duplex & { _httpMessage?: ServerResponse | null }): void {
  const response = socket._httpMessage
  // No response: the upgrade was answered before routing (app.close() has started).
  if (response === undefined || response === null) return
  // One shared listener, no closure: an accepted socket keeps its response
  // object (and this listener) for its whole life.
  response.on('finish', endAnsweredSocket)
}

/** An upgrade was answered with an HTTP response: its socket is ended, then destroyed. */
function endAnsweredSocket (this: ServerResponse): void {
  const socket = this.req.socket
  socket.end(() => socket.destroy())
}

/**
 * Picks `nexus.v1` when the client offers it, else the first subprotocol
 * offered (ws's own default). ws asks only when at least one was offered.
 */
function preferProtocol (offered: Set<string>): string {
  return offered.has(PROTOCOL) ? PROTOCOL : [...offered][0]
}

/**
 * @fastify/websocket's handler for socket errors and handler throws. Errors of
 * `app.ws` sockets reach the route's onError through the connection's own
 * listener; other sockets get @fastify/websocket's usual treatment.
 */
function defaultErrorHandler (error: Error, socket: WebSocket, request: FastifyRequest, _reply: FastifyReply): void {
  if (Connection.of(socket) !== undefined) return
  request.log.error({ err: error }, 'websocket error')
  socket.terminate()
}

const SHUTTING_DOWN_BODY = JSON.stringify({
  statusCode: 503,
  code: 'FST_NEXUS_SHUTTING_DOWN',
  error: 'Service Unavailable',
  message: new errors.FST_NEXUS_SHUTTING_DOWN().message
})
const SHUTTING_DOWN_RESPONSE = 'HTTP/1.1 503 Service Unavailable\r\n' +
  'Connection: close\r\n' +
  'Content-Type: application/json; charset=utf-8\r\n' +
  `Content-Length: ${Buffer.byteLength(SHUTTING_DOWN_BODY)}\r\n` +
  '\r\n' + SHUTTING_DOWN_BODY

/** Answers an upgrade that arrives during app.close() with 503, then ends its socket. */
function rejectUpgrade (_request: unknown, socket: Duplex): void {
  // Before routing: which route it was for is not known.
  refused(null, 'shutdown', 503)
  const end = (): void => { socket.destroy() }
  // Ended once the answer is written, or at once if the peer resets meanwhile.
  socket.on('error', end)
  socket.write(SHUTTING_DOWN_RESPONSE, end)
}
