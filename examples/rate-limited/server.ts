// The seed's "Rate Limiting" best practice. The seed counts messages in a Map
// and starts a setTimeout for every message (a timer per message, and a count
// keyed by a user id the client chooses). The plugin's `rateLimit` option does
// the job per connection with a token bucket and no timer: the 101st message
// within a minute gets a RATE_LIMITED error frame and is dropped; more than 200
// in one minute closes the connection with 1008.
import Fastify from 'fastify'
import nexusRealtime from 'fastify-nexus-realtime'

const port = Number(process.env.PORT ?? 3000)
const host = process.env.HOST ?? 'localhost'

async function start (): Promise<void> {
  const app = Fastify()
  await app.register(nexusRealtime)

  app.ws('/ws/rate-limited', {
    // Limit: 100 messages per minute, as in the seed.
    rateLimit: { max: 100, windowMs: 60000 },

    auth: async (ctx) => {
      return { id: ctx.query.userId as string }
    },

    onMessage: async (socket, message, ctx) => {
      // Process message... (only messages within the limit get here)
      socket.send(JSON.stringify({ type: 'ok', user: ctx.user.id, n: message.n }))
    }
  })

  await app.listen({ port, host })
  const { port: actualPort } = app.server.address() as { port: number }
  console.log(`Server running at http://localhost:${actualPort}`)
  console.log(`WebSocket at ws://localhost:${actualPort}/ws/rate-limited?userId=u1`)
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => { void app.close() })
}

start().catch((error: unknown) => {
  console.error(error)
  process.exit(1)
})
