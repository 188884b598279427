// The seed's "Message Validation" best practice, with zod, as written. The
// switch cases, left as comments in the seed, answer here so the result can be
// seen. (The plugin can also validate before onMessage with `schema.message`:
// see examples/typebox.)
import Fastify from 'fastify'
import { z } from 'zod'
import nexusRealtime from 'fastify-nexus-realtime'

const ChatMessageSchema = z.object({
  type: z.literal('chat'),
  room: z.string().optional(),
  text: z.string().min(1).max(1000)
})

const JoinRoomSchema = z.object({
  type: z.literal('join_room'),
  room: z.string().min(1).max(50)
})

const MessageSchema = z.discriminatedUnion('type', [
  ChatMessageSchema,
  JoinRoomSchema
])

const port = Number(process.env.PORT ?? 3000)
const host = process.env.HOST ?? 'localhost'

async function start (): Promise<void> {
  const app = Fastify()
  await app.register(nexusRealtime)

  app.ws('/ws/validated', {
    onMessage: async (socket, message, _ctx) => {
      const result = MessageSchema.safeParse(message)

      if (!result.success) {
        socket.send(JSON.stringify({
          type: 'error',
          message: 'Invalid message format',
          errors: result.error.errors
        }))
        return
      }

      const validatedMessage = result.data

      // Now TypeScript knows the exact type
      switch (validatedMessage.type) {
        case 'chat':
          // validatedMessage.text is guaranteed to exist
          app.getWebSocket().broadcast(validatedMessage.room ?? 'general', { type: 'chat', text: validatedMessage.text })
          socket.send(JSON.stringify({ type: 'sent', length: validatedMessage.text.length }))
          break
        case 'join_room':
          // validatedMessage.room is guaranteed to exist
          app.getWebSocket().joinRoom(validatedMessage.room, socket)
          socket.send(JSON.stringify({ type: 'room_joined', room: validatedMessage.room }))
          break
      }
    }
  })

  await app.listen({ port, host })
  const { port: actualPort } = app.server.address() as { port: number }
  console.log(`Server running at http://localhost:${actualPort}`)
  console.log(`WebSocket at ws://localhost:${actualPort}/ws/validated`)
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => { void app.close() })
}

start().catch((error: unknown) => {
  console.error(error)
  process.exit(1)
})
