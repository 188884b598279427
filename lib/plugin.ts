import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import fastifyWebsocket from '@fastify/websocket'
import type { Server } from 'node:http'
import type { Duplex } from 'node:stream'
import type { WebSocket } from 'ws'
import type { NexusRealtimeOptions } from '../types/index'
import type { ProtoAction } from './codec'
import { Connection } from './connection'
import { errors } from './errors'
import { withPositionalListen } from './listen'
import { Manager } from './manager'
import { normalizeOptions } from './options'
import { PROTOCOL } from './protocol'
import { createRouteDecorator } from './route'
import { createRuntime } from './runtime'

type UpgradeListener = (...args: any[]) => void

/**
 * Registration: checks the options, brings in @fastify/websocket unless the
 * app already has it, builds the manager over its adapter, decorates `ws` and
 * `getWebSocket`, and owns the shutdown.
 */
export async function plugin (fastify: FastifyInstance, rawOptions: NexusRealtimeOptions): Promise<void> {
  const options = normalizeOptions(rawOptions)
  const server = fastify.server as Server

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
  }

  const runtime = createRuntime<Connection>(options.adapter, options.policies)
  const manager = new Manager(runtime)
  await runtime.hub.init(fastify.log)

  fastify.decorate('ws', createRouteDecorator(runtime, {
    // Fastify fills both in its initial config ('error' by default).
    protoAction: fastify.initialConfig.onProtoPoisoning as ProtoAction,
    constructorAction: fastify.initialConfig.onConstructorPoisoning as ProtoAction
  }, options))
  fastify.decorate('getWebSocket', function getWebSocket () {
    return manager
  })
  // The document's `app.listen(3000, () => …)` form, which Fastify 5 dropped.
  fastify.listen = withPositionalListen(fastify.listen)

  fastify.addHook('preClose', async function closeSockets () {
    for (const listener of ownUpgradeListeners) server.removeListener('upgrade', listener)
    server.prependListener('upgrade', rejectUpgrade)
    const others = [...fastify.websocketServer.clients].filter((socket) => Connection.of(socket) === undefined)
    await manager.shutdown(options.shutdownTimeout, others)
  })
  fastify.addHook('onClose', async function closeAdapter () {
    server.removeListener('upgrade', rejectUpgrade)
    runtime.hub.history?.close()
    await options.adapter.close()
  })
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
  const end = (): void => { socket.destroy() }
  // Ended once the answer is written, or at once if the peer resets meanwhile.
  socket.on('error', end)
  socket.write(SHUTTING_DOWN_RESPONSE, end)
}
