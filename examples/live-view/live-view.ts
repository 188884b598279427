// A live view of an app's WebSockets, for development: a page that shows the
// connections, the rooms, the message rates and the last closes, refreshed
// every second. It is itself an app.ws route: each second one snapshot is
// built from manager.stats() and the rooms, and written to every page open
// on it; the closes come from the plugin's `nexus.connection.close`
// diagnostics channel. Register it next to your routes:
//
//   await app.register(liveView)                  // page at /_nexus
//   await app.register(liveView, { path: '/dev/sockets' })
//
// It shows room names and the routes of closed connections to whoever opens
// the page: keep it out of production, or put it behind your own auth
// (its `auth` option is the route's).
import type { FastifyInstance, FastifyPluginAsync } from 'fastify'
import type { ConnectionCloseEvent, WebSocketRouteConfig } from 'fastify-nexus-realtime'
import diagnosticsChannel from 'node:diagnostics_channel'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { WebSocket } from 'ws'

export interface LiveViewOptions {
  /** where the page is; its WebSocket is `${path}/ws` (default '/_nexus') */
  path?: string
  /** the page's WebSocket route's auth, if the view should not be open to all */
  auth?: WebSocketRouteConfig['auth']
  /** rooms listed, the largest first (default 20) */
  rooms?: number
  /** closes kept (default 20) */
  closes?: number
}

/** One connection that closed, as the page shows it. */
export interface RecentClose {
  at: number
  route: string
  id: string
  code: number
  duration: number
  messagesIn: number
  messagesOut: number
}

/** What the page receives every second. */
export interface Snapshot {
  at: number
  /** connections of the app's routes, the pages of the view left out */
  connections: number
  viewers: number
  rooms: { count: number, largest: Array<[string, number]> }
  /** per second, over the last interval */
  rates: { received: number, sent: number, broadcasts: number }
  /** manager.stats(), as it is */
  stats: Record<string, number>
  closes: RecentClose[]
}

const INTERVAL = 1000

export const liveView: FastifyPluginAsync<LiveViewOptions> = async function liveView (app: FastifyInstance, options) {
  const path = options.path ?? '/_nexus'
  const socketPath = `${path}/ws`
  const maxRooms = options.rooms ?? 20
  const maxCloses = options.closes ?? 20
  const page = await readFile(join(__dirname, 'public', 'index.html'), 'utf8')
  const viewers = new Set<WebSocket>()
  const closes: RecentClose[] = []

  // Every close of the app's routes (the view's own pages left out), newest first.
  const onClose = (message: unknown): void => {
    const event = message as ConnectionCloseEvent
    if (event.route === socketPath) return
    closes.unshift({ at: Date.now(), ...event, duration: Math.round(event.duration) })
    closes.length = Math.min(closes.length, maxCloses)
  }
  diagnosticsChannel.subscribe('nexus.connection.close', onClose)

  let last: { at: number, stats: Record<string, number> } | null = null
  const snapshot = (): Snapshot => {
    const manager = app.getWebSocket()
    const stats = manager.stats() as unknown as Record<string, number>
    const at = Date.now()
    const per = (key: string): number => last === null ? 0 : Math.max(0, stats[key] - last.stats[key]) * 1000 / Math.max(1, at - last.at)
    const rates = { received: per('messagesReceived'), sent: per('messagesSent'), broadcasts: per('broadcasts') }
    last = { at, stats }
    const rooms = manager.roomManager.list()
    const largest = rooms.map((room): [string, number] => [room, manager.roomSize(room)])
      .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
      .slice(0, maxRooms)
    return { at, connections: stats.connections - viewers.size, viewers: viewers.size, rooms: { count: rooms.length, largest }, rates, stats, closes }
  }

  // One timer for every page: nothing runs while nobody looks.
  let timer: NodeJS.Timeout | null = null
  const tick = (): void => {
    const text = JSON.stringify(snapshot())
    for (const socket of viewers) socket.send(text)
  }

  app.get(path, async (_request, reply) => reply.type('text/html; charset=utf-8').send(page))
  app.ws(socketPath, {
    ...(options.auth === undefined ? {} : { auth: options.auth }),
    onConnect: (socket) => {
      viewers.add(socket)
      socket.send(JSON.stringify(snapshot()))
      timer ??= setInterval(tick, INTERVAL).unref()
    },
    onClose: (socket) => {
      viewers.delete(socket)
      if (viewers.size > 0 || timer === null) return
      clearInterval(timer)
      timer = null
      last = null
    }
  })
  app.addHook('onClose', async () => {
    diagnosticsChannel.unsubscribe('nexus.connection.close', onClose)
    if (timer !== null) clearInterval(timer)
  })
}
