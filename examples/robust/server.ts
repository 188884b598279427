// The seed's "Error Handling" section, as written, with `createApp()` replaced
// by `Fastify()` + `register(nexusRealtime)`. The seed leaves `verifyToken`
// and `processMessage` undefined: small versions are defined here.
//
// What the plugin now does by itself (so this code need not): a throw in
// `auth` answers the handshake with 401 (or the error's own status) before any
// socket exists; a throw in `onConnect` reaches `onError` and closes with 1011;
// a throw in `onMessage` reaches `onError` and the connection stays open;
// invalid JSON gets an INVALID_JSON error frame without reaching `onMessage`.
import Fastify from 'fastify'
import WebSocket from 'ws'
import nexusRealtime from 'fastify-nexus-realtime'

interface User { id: string, name: string }

const users = new Map<string, User>([
  ['token-alice', { id: 'u1', name: 'alice' }],
  ['token-bob', { id: 'u2', name: 'bob' }]
])

async function verifyToken (token: string): Promise<User | undefined> {
  return users.get(token)
}

async function processMessage (message: { type: string, text?: string }, ctx: { user: User }): Promise<void> {
  if (message.type === 'fail') throw new Error(`Cannot process ${message.type} for ${ctx.user.name}`)
}

const port = Number(process.env.PORT ?? 3000)
const host = process.env.HOST ?? 'localhost'

async function start (): Promise<void> {
  const app = Fastify()
  await app.register(nexusRealtime)

  app.ws('/ws/robust', {
    auth: async (ctx) => {
      // eslint-disable-next-line no-useless-catch -- the seed's own code, kept as written
      try {
        const token = ctx.query.token as string
        if (!token) {
          throw new Error('AUTH_REQUIRED')
        }

        const user = await verifyToken(token)
        if (!user) {
          throw new Error('INVALID_TOKEN')
        }

        return user
      } catch (error) {
        // Throwing here will reject the connection
        throw error
      }
    },

    onConnect: async (socket, _ctx) => {
      try {
        // Setup logic
        const ws = app.getWebSocket()!
        ws.joinRoom('main', socket)
        socket.send(JSON.stringify({ type: 'ready', room: 'main' }))
      } catch (error) {
        socket.send(JSON.stringify({
          type: 'error',
          message: 'Failed to setup connection'
        }))
        socket.close(1011, 'Setup failed')
      }
    },

    onMessage: async (socket, message, ctx) => {
      try {
        // Validate message
        if (!message.type) {
          throw new Error('Message type required')
        }

        // Process message
        await processMessage(message, ctx)
        socket.send(JSON.stringify({ type: 'processed', of: message.type }))
      } catch (error) {
        socket.send(JSON.stringify({
          type: 'error',
          message: (error as Error).message
        }))
      }
    },

    onError: async (socket, error, ctx) => {
      console.error('WebSocket Error:', {
        user: ctx.user?.id,
        error: error.message,
        stack: error.stack
      })

      // Optionally send error to client
      if (socket.readyState === WebSocket.OPEN) {
        socket.send(JSON.stringify({
          type: 'error',
          message: 'Internal server error'
        }))
      }
    }
  })

  await app.listen({ port, host })
  const { port: actualPort } = app.server.address() as { port: number }
  console.log(`Server running at http://localhost:${actualPort}`)
  console.log(`WebSocket at ws://localhost:${actualPort}/ws/robust?token=token-alice`)
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => { void app.close() })
}

start().catch((error: unknown) => {
  console.error(error)
  process.exit(1)
})
