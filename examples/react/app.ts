// The React example's app: the page Vite built (examples/react/dist/, the
// seed's ChatComponent on the useRealtime hook) and the chat's /ws/chat
// route. server.ts starts it; a test can build it with another build of the
// page (a development one, where StrictMode mounts twice).
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import nexusRealtime from 'fastify-nexus-realtime'
import { existsSync } from 'node:fs'
import { readdir, readFile } from 'node:fs/promises'
import { extname, join } from 'node:path'
import { chat } from '../chat/chat'

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.json': 'application/json',
  '.map': 'application/json'
}

export interface AppOptions {
  /** The folder Vite built. @default examples/react/dist */
  dist?: string
  /** Fastify's logger option. @default true */
  logger?: FastifyServerOptions['logger']
}

export async function buildApp ({ dist = join(__dirname, 'dist'), logger = true }: AppOptions = {}): Promise<FastifyInstance> {
  if (!existsSync(join(dist, 'index.html'))) {
    throw new Error(`${dist} has no index.html: build the page with \`npm run example:react:build\``)
  }
  // Only the files Vite wrote are served, read once: a request can name
  // nothing else (no path is ever joined from the URL).
  const assets = new Map<string, Buffer>()
  for (const name of await readdir(join(dist, 'assets'))) {
    assets.set(name, await readFile(join(dist, 'assets', name)))
  }
  const index = await readFile(join(dist, 'index.html'))

  // forceCloseConnections: once the WebSockets are closed (with 1001, their
  // onClose run), app.close() drops the HTTP connections left. A browser
  // holds some (Chromium opens one in advance and may never send a request
  // on it), and Node would keep them, and the process, for up to a minute.
  const app = Fastify({ logger, forceCloseConnections: true })
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
  return app
}
