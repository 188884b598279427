// One worker of examples/multicore: a Fastify app on the Redis adapter with a
// history room policy, so that a client moved to another worker (or another
// machine) gets exactly what it missed. start.ts runs one per core under
// node:cluster; it also runs alone, as a single instance:
//
//   npm run build
//   PORT=3000 npx tsx examples/multicore/server.ts
//
// Routes:
//   ws   /ws        official clients (nexus.v1) subscribe to `news:<topic>` rooms:
//                   client.subscribe('news:sport'); raw clients get ?room=news:sport
//   POST /publish   {"room":"news:sport","data":…} → manager.publish: stored in
//                   Redis, sent to the room's members on every worker; answers
//                   the message's position {offset, epoch} and the worker
//   GET  /worker    which worker (and pid) answered
//
// Under node:cluster the worker tells the primary nothing itself: the primary
// sees it listening (cluster's `listening` event) and sends it
// `{ cmd: 'nexus:drain' }` when it is to go: app.close() closes every
// WebSocket with 1001 "going away" (the official client reconnects, to
// another worker, and resumes), lets HTTP requests in flight finish, closes
// the Redis connections, and the process exits.
//
// Environment: PORT (default 3000), HOST (default localhost), REDIS_URL
// (default redis://127.0.0.1:6379), REDIS_PREFIX (default
// nexus-multicore-example), LOG_LEVEL (default info).
import cluster from 'node:cluster'
import Fastify from 'fastify'
import nexusRealtime, { redisAdapter } from 'fastify-nexus-realtime'

const port = Number(process.env.PORT ?? 3000)
const host = process.env.HOST ?? 'localhost'
const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'
const prefix = process.env.REDIS_PREFIX ?? 'nexus-multicore-example'
/** cluster's worker id (1, 2, …; a replacement gets the next one), or 0 when run alone */
const workerId = cluster.worker?.id ?? 0

const ROOM = /^news:[\w-]{1,64}$/

async function start (): Promise<void> {
  // Every line says which worker wrote it. LOG_LEVEL=warn leaves out the
  // per-request lines (and the plugin's line per closed WebSocket).
  const app = Fastify({ logger: { level: process.env.LOG_LEVEL ?? 'info', base: { worker: workerId, pid: process.pid } } })
  await app.register(nexusRealtime, {
    // Every worker (and every machine): the same Redis, the same prefix.
    adapter: redisAdapter({ url: redisUrl }, { prefix }),
    // Each news room keeps its last 1000 messages for 5 minutes, in Redis:
    // a client that comes back on any worker presents its last position and
    // gets what it missed, then live messages, with no gap and no duplicate.
    roomPolicies: { 'news:*': { history: { size: 1000, ttl: 300_000 } } }
  })
  const realtime = app.getWebSocket()

  app.ws<{ query: { room?: string } }>('/ws', {
    // client.subscribe('news:…'), again after every reconnect.
    rooms: { authorize: (room) => ROOM.test(room) },
    onConnect: (socket, ctx) => {
      // A raw WebSocket client (wscat) names its room in the query.
      const room = ctx.query.room
      if (typeof room === 'string' && ROOM.test(room)) realtime.joinRoom(room, socket)
    }
  })

  app.post<{ Body: { room: string, data: unknown } }>('/publish', {
    schema: {
      body: {
        type: 'object',
        required: ['room', 'data'],
        properties: { room: { type: 'string', pattern: ROOM.source }, data: {} },
        additionalProperties: false
      }
    }
  }, async (request) => {
    // Resolves once Redis stored (and numbered) the message; every worker
    // hosting the room, this one included, sends it to its members in order.
    const { offset, epoch } = await realtime.publish(request.body.room, request.body.data)
    return { offset, epoch, worker: workerId, pid: process.pid }
  })

  app.get('/worker', async () => ({ worker: workerId, pid: process.pid, connections: realtime.connections }))

  let closing = false
  const close = (why: string): void => {
    if (closing) return
    closing = true
    app.log.info({ why }, 'draining')
    app.close().then(() => {
      app.log.info('drained')
      // Under cluster: leave it (the IPC channel is what still holds the
      // process); alone, the process exits once nothing is left open.
      if (cluster.isWorker) cluster.worker?.disconnect()
    }, (error: unknown) => {
      console.error(error)
      process.exit(1)
    })
  }
  process.on('message', (message: { cmd?: string }) => {
    if (message?.cmd === 'nexus:drain') close('drain')
  })
  // Ctrl-C reaches the primary and every worker (one process group): each
  // closes gracefully on its own.
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => close(signal))

  await app.listen({ port, host })
  if (!cluster.isWorker) {
    const { port: actualPort } = app.server.address() as { port: number }
    console.log(JSON.stringify({ worker: workerId, pid: process.pid, listening: actualPort }))
  }
}

start().catch((error: unknown) => {
  console.error(error)
  process.exit(1)
})
