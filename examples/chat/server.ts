// The seed's Chat Application with a small page at /: run it with `npm start`
// (builds dist/ first), then open http://localhost:3000. The /ws/chat route
// itself is in chat.ts. The page talks to it with the official client,
// served as it ships (the package's dist/client/index.mjs) at /nexus-client.mjs.
import Fastify from 'fastify'
import nexusRealtime from 'fastify-nexus-realtime'
import { readFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { chat } from './chat'

const port = Number(process.env.PORT ?? 3000)
const host = process.env.HOST ?? 'localhost'
const page = join(__dirname, 'public', 'index.html')
// The client's ES module, found through the package as an app finds it in
// node_modules: `fastify-nexus-realtime/client` resolves to this file for `import`.
const clientModule = join(dirname(require.resolve('fastify-nexus-realtime/package.json')), 'dist', 'client', 'index.mjs')

async function start (): Promise<void> {
  const client = await readFile(clientModule)

  // forceCloseConnections: once the WebSockets are closed (with 1001, their
  // onClose run), app.close() drops the HTTP connections left. A browser
  // holds some (Chromium opens one in advance and may never send a request
  // on it), and Node would keep them, and the process, for up to a minute.
  const app = Fastify({ logger: true, forceCloseConnections: true })
  // Every room keeps its last 200 messages for 10 minutes: a page that loses
  // its connection gets what it missed when it is back (History and resume),
  // and tracks who is in it (Presence), but the `user:` rooms of private
  // messages, which need neither (the longest key wins).
  await app.register(nexusRealtime, {
    roomPolicies: {
      '*': { history: { size: 200, ttl: 600_000 }, presence: true },
      'user:*': {}
    }
  })

  app.get('/', async (_request, reply) => {
    return reply.type('text/html; charset=utf-8').send(await readFile(page))
  })

  // The page's `import { NexusClient } from '/nexus-client.mjs'`.
  app.get('/nexus-client.mjs', async (_request, reply) => {
    return reply.type('text/javascript; charset=utf-8').send(client)
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
