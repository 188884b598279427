// The live view (live-view.ts) on a small demo app: run it with
// `npm run example:live-view`, open http://localhost:3000/_nexus, then
// connect a few clients to ws://localhost:3000/ws/demo?room=lobby (each
// message is broadcast to the client's room) and watch the page.
import Fastify from 'fastify'
import nexusRealtime from 'fastify-nexus-realtime'
import { liveView } from './live-view'

const port = Number(process.env.PORT ?? 3000)
const host = process.env.HOST ?? 'localhost'

async function start (): Promise<void> {
  // forceCloseConnections: the browser's idle HTTP connections do not hold app.close().
  const app = Fastify({ logger: { level: 'warn' }, forceCloseConnections: true })
  await app.register(nexusRealtime)

  app.ws('/ws/demo', {
    onConnect: (socket, ctx) => {
      const room = typeof ctx.query.room === 'string' && ctx.query.room !== '' ? ctx.query.room : 'lobby'
      ctx.metadata.room = room
      app.getWebSocket().joinRoom(room, socket)
    },
    onMessage: (_socket, message, ctx) => {
      app.getWebSocket().broadcast(ctx.metadata.room, { from: ctx.id, message })
    }
  })

  await app.register(liveView)

  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      app.close().catch((error: unknown) => {
        console.error(error)
        process.exitCode = 1
      })
    })
  }

  await app.listen({ port, host })
  const { port: actualPort } = app.server.address() as { port: number }
  const shownHost = host === '0.0.0.0' || host === '::' ? 'localhost' : host
  console.log(`Server running at http://${shownHost}:${actualPort}`)
  console.log(`Live view at http://${shownHost}:${actualPort}/_nexus`)
  console.log(`Demo WebSocket at ws://${shownHost}:${actualPort}/ws/demo?room=lobby`)
}

start().catch((error: unknown) => {
  console.error(error)
  process.exit(1)
})
