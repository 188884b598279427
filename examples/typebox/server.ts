// Typed, validated messages: a TypeBox schema checks every inbound message
// before onMessage (invalid ones get an INVALID_MESSAGE error frame) and, with
// TypeBox's type provider, types the `message` argument and `ctx.query`.
import Fastify from 'fastify'
import { Type, TypeBoxValidatorCompiler, type TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import nexusRealtime from 'fastify-nexus-realtime'

const ChatMessage = Type.Object({
  type: Type.Literal('chat'),
  room: Type.Optional(Type.String({ minLength: 1, maxLength: 50 })),
  text: Type.String({ minLength: 1, maxLength: 1000 })
})

const JoinRoom = Type.Object({
  type: Type.Literal('join_room'),
  room: Type.String({ minLength: 1, maxLength: 50 })
})

async function start (): Promise<void> {
  const app = Fastify({ logger: false }).withTypeProvider<TypeBoxTypeProvider>()
  app.setValidatorCompiler(TypeBoxValidatorCompiler)
  await app.register(nexusRealtime)

  app.ws('/ws/chat', {
    schema: {
      querystring: Type.Object({ token: Type.String({ minLength: 1 }) }),
      message: Type.Union([ChatMessage, JoinRoom])
    },
    auth: async (ctx) => ({ name: ctx.query.token }),
    onConnect: async (socket) => {
      app.getWebSocket().joinRoom('general', socket)
    },
    onMessage: async (socket, message, ctx) => {
      const ws = app.getWebSocket()
      switch (message.type) {
        case 'chat':
          ws.broadcast(message.room ?? 'general', { type: 'chat', user: ctx.user.name, text: message.text })
          break
        case 'join_room':
          ws.joinRoom(message.room, socket)
          socket.send(JSON.stringify({ type: 'room_joined', room: message.room }))
          break
      }
    }
  })

  const port = Number(process.env.PORT ?? 3000)
  await app.listen({ port, host: process.env.HOST ?? 'localhost' })
  const { port: actual } = app.server.address() as { port: number }
  console.log(`Server running at http://localhost:${actual}`)
  console.log(`WebSocket at ws://localhost:${actual}/ws/chat?token=<name>`)

  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => { void app.close() })
  }
}

void start()
