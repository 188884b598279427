// The seed's Chat Application with a small page at /: run it with `npm start`
// (builds dist/ first), then open http://localhost:3000. The /ws/chat route
// itself is in chat.ts.
import Fastify from 'fastify'
import nexusRealtime from 'fastify-nexus-realtime'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { chat } from './chat'

const port = Number(process.env.PORT ?? 3000)
const host = process.env.HOST ?? 'localhost'
const page = join(__dirname, 'public', 'index.html')

async function start (): Promise<void> {
  const app = Fastify({ logger: true })
  await app.register(nexusRealtime)

  app.get('/', async (_request, reply) => {
    return reply.type('text/html; charset=utf-8').send(await readFile(page))
  })

  await app.register(chat)

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
