// The seed's Quick Start, unchanged except that `createApp()` became
// `Fastify()` + `register(nexusRealtime, { listen: 'positional' })`: the option
// opts this instance in to the document's `app.listen(3000, () => …)`, which
// Fastify 5 no longer takes (its types: listen.d.ts beside this file).
// Run it with `npm run example:quickstart`,
// then connect to ws://localhost:3000/ws/chat. PORT changes the port (0 picks
// a free one, and the lines printed say which).
import Fastify from 'fastify'
import nexusRealtime from 'fastify-nexus-realtime'

const port = Number(process.env.PORT ?? 3000)

async function start (): Promise<void> {
  const app = Fastify()
  await app.register(nexusRealtime, { listen: 'positional' })

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

  // The document's listen(port, callback) form, opted in to above.
  app.listen(port, () => {
    const { port: actual } = app.server.address() as { port: number }
    console.log(`Server running at http://localhost:${actual}`)
    console.log(`WebSocket at ws://localhost:${actual}/ws/chat`)
  })
}

start().catch((error: unknown) => {
  console.error(error)
  process.exit(1)
})
