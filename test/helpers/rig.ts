import type { FastifyInstance } from 'fastify'
import type { Test } from 'tap'
import type WebSocket from 'ws'
import type { WebSocketManager, WebSocketRouteConfig } from '../../types/index'
import { build, connect, listen, type Client, type TestContext } from './server'
import { until } from './wait'

// `open(name)` connects a real `ws` client with `?name=` and gives back both
// ends: the client and the server-side socket of that name.

export interface Peer {
  client: Client
  socket: WebSocket
}

export interface Rig {
  app: FastifyInstance
  manager: WebSocketManager
  base: string
  /** opens a client on an app.ws route and waits until its onConnect settled */
  open (name: string, path?: string): Promise<Peer>
  /** opens a client on the plain @fastify/websocket route /raw */
  openRaw (name: string): Promise<Peer>
}

/** An app with the given app.ws routes (default: `/ws`) and a plain `/raw` route of @fastify/websocket. */
export async function rig (t: TestContext, routes: Record<string, WebSocketRouteConfig> = { '/ws': {} }, before?: (app: FastifyInstance) => void): Promise<Rig> {
  const app = await build(t)
  const sockets = new Map<string, WebSocket>()
  const raws = new Map<string, WebSocket>()
  for (const [path, config] of Object.entries(routes)) {
    app.ws(path, {
      ...config,
      onConnect: async (socket, ctx) => {
        if (config.onConnect !== undefined) await config.onConnect(socket, ctx)
        sockets.set(String(ctx.query.name), socket)
      }
    })
  }
  app.get('/raw', { websocket: true }, (socket, request) => {
    raws.set(String((request.query as { name: string }).name), socket)
  })
  if (before !== undefined) before(app)
  const base = await listen(app)
  return {
    app,
    manager: app.getWebSocket(),
    base,
    async open (name, path = '/ws') {
      const client = await connect(`${base}${path}?name=${name}`)
      await until(() => sockets.has(name))
      return { client, socket: sockets.get(name) as WebSocket }
    },
    async openRaw (name) {
      const client = await connect(`${base}/raw?name=${name}`)
      await until(() => raws.has(name))
      return { client, socket: raws.get(name) as WebSocket }
    }
  }
}

/** Asserts that `fn` throws the coded error, and returns it. */
export function throwsCode (t: Test, fn: () => unknown, code: string, message: string): (Error & { code?: string }) | undefined {
  try {
    fn()
  } catch (err) {
    const error = err as Error & { code?: string }
    t.equal(error.code, code, `${message}: code`)
    return error
  }
  t.fail(`${message}: expected a throw with code ${code}`)
  return undefined
}
