// The seed's Quick Start, unchanged except that `createApp()` became
// `Fastify()` + `register(nexusRealtime)`. Run it with:
//   npx tsx examples/quickstart/server.ts        (after `npm run build`)
// then connect to ws://localhost:3000/ws/chat.
import Fastify from 'fastify'
import nexusRealtime from 'fastify-nexus-realtime'

const port = Number(process.env.PORT ?? 3000)
const host = process.env.HOST ?? 'localhost'

async function start (): Promise<void> {
  const app = Fastify()
  await app.register(nexusRealtime)

  // Define WebSocket route
  app.ws('/ws/chat', {
    onConnect: async (socket, _ctx) => {
      console.log('Client connected')
      socket.send(JSON.stringify({ type: 'welcome', message: 'Hello!' }))
    },

    onMessage: async (socket, message, _ctx) => {
      console.log('Received:', message)
      socket.send(JSON.stringify({ echo: message }))
    },

    onClose: async (_socket, _ctx) => {
      console.log('Client disconnected')
    }
  })

  await app.listen({ port, host })
  // With PORT=0 the system picks the port: print the one actually bound.
  const { port: actualPort } = app.server.address() as { port: number }
  const shownHost = host === '0.0.0.0' || host === '::' ? 'localhost' : host
  console.log(`Server running at http://${shownHost}:${actualPort}`)
  console.log(`WebSocket at ws://${shownHost}:${actualPort}/ws/chat`)
}

start().catch((error: unknown) => {
  console.error(error)
  process.exit(1)
})
