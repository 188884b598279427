// Prometheus metrics: the plugin's `metrics` option on prom-client's default
// registry, next to prom-client's own process metrics (what an app that uses
// `fastify-metrics` or `@fastify/under-pressure` already has there), and a
// GET /metrics route for Prometheus to scrape.
//
// Run it with `npm run example:metrics` (prom-client is an optional peer
// dependency: `npm install prom-client` in your own app), then:
//   npx wscat -c 'ws://localhost:3000/ws/chat/lobby?token=alice'
//   curl localhost:3000/metrics
// PORT and HOST change where it listens (PORT=0 picks a free port).
import Fastify from 'fastify'
import { collectDefaultMetrics, register } from 'prom-client'
import nexusRealtime from 'fastify-nexus-realtime'

const port = Number(process.env.PORT ?? 3000)
const host = process.env.HOST ?? 'localhost'

async function start (): Promise<void> {
  const app = Fastify()
  // prom-client's process and Node.js metrics, on its default registry.
  collectDefaultMetrics()
  await app.register(nexusRealtime, {
    // true: prom-client's default registry. { registry, prefix, roomClass,
    // maxRoomClasses } to choose; room classes here are the default, the text
    // before the first ':' of a room name ('chat:lobby' → 'chat').
    metrics: true,
    rateLimit: { max: 20, windowMs: 10_000 }
  })

  app.ws<{ params: { room: string }, query: { token?: string }, user: { name: string } }>('/ws/chat/:room', {
    auth: async (ctx) => {
      // A stand-in for a real check: any token but a missing one is a user.
      if (ctx.query.token === undefined || ctx.query.token === '') throw Object.assign(new Error('token required'), { statusCode: 401 })
      return { name: ctx.query.token }
    },
    onConnect: (socket, ctx) => {
      app.getWebSocket().joinRoom(`chat:${ctx.params.room}`, socket)
    },
    onMessage: (_socket, message, ctx) => {
      app.getWebSocket().broadcast(`chat:${ctx.params.room}`, { from: ctx.user.name, message })
    }
  })

  // What Prometheus scrapes: every metric of the default registry, the plugin's included.
  app.get('/metrics', async (_request, reply) => {
    return await reply.type(register.contentType).send(await register.metrics())
  })

  await app.listen({ port, host })
  const { port: actualPort } = app.server.address() as { port: number }
  console.log(`Server running at http://localhost:${actualPort}`)
  console.log(`WebSocket at ws://localhost:${actualPort}/ws/chat/lobby?token=alice`)
  console.log(`Metrics at http://localhost:${actualPort}/metrics`)
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => { void app.close() })
}

start().catch((error: unknown) => {
  console.error(error)
  process.exit(1)
})
