// The seed's "Heartbeat/Ping-Pong" best practice. The seed starts a
// setInterval per socket and clears it in onClose, and never drops a peer that
// stops answering. The plugin does the job itself: one shared timer pings
// every socket each interval and terminates a socket that did not answer the
// previous ping (its onClose runs). This route only sets the interval.
import Fastify from 'fastify'
import nexusRealtime from 'fastify-nexus-realtime'

const port = Number(process.env.PORT ?? 3000)
const host = process.env.HOST ?? 'localhost'
// 30 s as in the seed; HEARTBEAT_MS shortens it to watch it work.
const interval = Number(process.env.HEARTBEAT_MS ?? 30000)

async function start (): Promise<void> {
  const app = Fastify()
  // heartbeat: { interval: 30000 } is the plugin's default; here it is set per route.
  await app.register(nexusRealtime)

  app.ws('/ws/with-heartbeat', {
    heartbeat: { interval },

    onConnect: async (socket, ctx) => {
      // No setInterval here: the plugin pings. Metadata stays free for the app.
      ctx.metadata = { connectedAt: Date.now() }
      socket.send(JSON.stringify({ type: 'welcome', heartbeatMs: interval }))
    },

    onClose: async (_socket, ctx, code) => {
      // Nothing to clear. `code` is 1006 when the heartbeat dropped a dead peer.
      console.log(`Client left after ${Date.now() - ctx.metadata.connectedAt} ms with code ${code}`)
    }
  })

  await app.listen({ port, host })
  const { port: actualPort } = app.server.address() as { port: number }
  console.log(`Server running at http://localhost:${actualPort}`)
  console.log(`WebSocket at ws://localhost:${actualPort}/ws/with-heartbeat`)
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => { void app.close() })
}

start().catch((error: unknown) => {
  console.error(error)
  process.exit(1)
})
