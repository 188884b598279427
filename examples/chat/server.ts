// The seed's Chat Application on one ws route, /ws/chat, plus the join_room /
// leave_room messages of its Room Management section, and a small page at /.
// Run it with `npm start` (builds dist/ first), then open http://localhost:3000.
import Fastify from 'fastify'
import nexusRealtime from 'fastify-nexus-realtime'
import { randomUUID } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'

const port = Number(process.env.PORT ?? 3000)
const host = process.env.HOST ?? 'localhost'
const page = join(__dirname, 'public', 'index.html')

function generateId (): string {
  return randomUUID()
}

async function start (): Promise<void> {
  const app = Fastify({ logger: true })
  await app.register(nexusRealtime)

  app.get('/', async (_request, reply) => {
    return reply.type('text/html; charset=utf-8').send(await readFile(page))
  })

  app.ws('/ws/chat', {
    auth: async (ctx) => {
      const token = ctx.query.token as string
      return { id: generateId(), name: token || 'Anonymous' }
    },

    onConnect: async (socket, ctx) => {
      const ws = app.getWebSocket()!

      // Join default room
      ws.joinRoom('general', socket)

      // Welcome message
      socket.send(JSON.stringify({
        type: 'welcome',
        message: `Welcome ${ctx.user.name}!`,
        room: 'general'
      }))

      // Notify others
      ws.broadcast('general', {
        type: 'system',
        message: `${ctx.user.name} joined the chat`
      })
    },

    onMessage: async (socket, message, ctx) => {
      const ws = app.getWebSocket()!

      switch (message.type) {
        case 'chat':
          ws.broadcast(message.room || 'general', {
            type: 'chat',
            user: ctx.user.name,
            text: message.text,
            timestamp: new Date().toISOString()
          })
          break

        case 'private': {
          // Find the target socket(s) by user name and send directly. Every
          // connection is in 'general', so that room lists everyone online.
          const targets = ws.socketsIn('general')
            .filter((other) => ws.contextOf(other)?.user.name === message.to)
          if (targets.length === 0) {
            socket.send(JSON.stringify({ type: 'error', message: `${message.to} is not online` }))
            break
          }
          const payload = JSON.stringify({
            type: 'private',
            from: ctx.user.name,
            text: message.text,
            timestamp: new Date().toISOString()
          })
          for (const target of targets) target.send(payload)
          break
        }

        case 'typing':
          ws.broadcast(message.room || 'general', {
            type: 'typing',
            user: ctx.user.name
          })
          break

        case 'join_room':
          ws.joinRoom(message.room, socket)
          socket.send(JSON.stringify({ type: 'room_joined', room: message.room }))
          break

        case 'leave_room':
          ws.leaveRoom(message.room, socket)
          socket.send(JSON.stringify({ type: 'room_left', room: message.room }))
          break
      }
    },

    onClose: async (_socket, ctx) => {
      const ws = app.getWebSocket()!
      ws.broadcast('general', {
        type: 'system',
        message: `${ctx.user.name} left the chat`
      })
    },

    onError: async (_socket, error, ctx) => {
      console.error(`WebSocket error for ${ctx.user?.name}:`, error)
    }
  })

  // Graceful shutdown: every socket gets 1001 and its onClose runs, then the
  // process exits on its own once nothing is left open.
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      app.close().catch((error: unknown) => {
        console.error(error)
        process.exitCode = 1
      })
    })
  }

  await app.listen({ port, host })
  // With PORT=0 the system picks the port: print the one actually bound.
  const { port: actualPort } = app.server.address() as { port: number }
  const shownHost = host === '0.0.0.0' || host === '::' ? 'localhost' : host
  console.log(`Server running at http://${shownHost}:${actualPort}`)
  console.log(`Chat WebSocket at ws://${shownHost}:${actualPort}/ws/chat`)
}

start().catch((error: unknown) => {
  console.error(error)
  process.exit(1)
})
