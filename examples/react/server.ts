// Serves the React page (the seed's useWebSocket hook and ChatComponent, built
// by Vite into examples/react/dist/) and the chat's /ws/chat route.
//
//   npm run example:react     (builds dist/ and the page, then starts this server)
//   then open http://localhost:3000 (?token=<name> picks the name; default user1)
import Fastify from 'fastify'
import nexusRealtime from 'fastify-nexus-realtime'
import { existsSync } from 'node:fs'
import { readdir, readFile } from 'node:fs/promises'
import { extname, join } from 'node:path'
import { chat } from '../chat/chat'

const port = Number(process.env.PORT ?? 3000)
const host = process.env.HOST ?? 'localhost'
const dist = join(__dirname, 'dist')

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.json': 'application/json',
  '.map': 'application/json'
}

async function start (): Promise<void> {
  if (!existsSync(join(dist, 'index.html'))) {
    console.error('examples/react/dist/ is missing: build the page with `npm run example:react:build`')
    process.exit(1)
  }
  // Only the files Vite wrote are served, read once: a request can name
  // nothing else (no path is ever joined from the URL).
  const assets = new Map<string, Buffer>()
  for (const name of await readdir(join(dist, 'assets'))) {
    assets.set(name, await readFile(join(dist, 'assets', name)))
  }
  const index = await readFile(join(dist, 'index.html'))

  const app = Fastify({ logger: true })
  await app.register(nexusRealtime)

  app.get('/', async (_request, reply) => {
    return reply.type(CONTENT_TYPES['.html']).send(index)
  })

  app.get<{ Params: { name: string } }>('/assets/:name', async (request, reply) => {
    const file = assets.get(request.params.name)
    if (file === undefined) return reply.callNotFound()
    // Vite puts a content hash in every asset name: a name never changes content.
    return reply
      .type(CONTENT_TYPES[extname(request.params.name)] ?? 'application/octet-stream')
      .header('cache-control', 'public, max-age=31536000, immutable')
      .send(file)
  })

  await app.register(chat)

  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      app.close().catch((error: unknown) => {
        console.error(error)
        process.exitCode = 1
      })
    })
  }

  await app.listen({ port, host })
  const { port: actualPort } = app.server.address() as { port: number }
  const shownHost = host === '0.0.0.0' || host === '::' ? 'localhost' : host
  console.log(`Server running at http://${shownHost}:${actualPort}`)
  console.log(`Chat WebSocket at ws://${shownHost}:${actualPort}/ws/chat`)
}

start().catch((error: unknown) => {
  console.error(error)
  process.exit(1)
})
