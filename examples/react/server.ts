// Serves the React page (the seed's ChatComponent on the useRealtime hook,
// built by Vite into examples/react/dist/) and the chat's /ws/chat route;
// the app itself is in app.ts.
//
//   npm run example:react     (builds dist/ and the page, then starts this server)
//   then open http://localhost:3000 (?token=<name> picks the name; default user1)
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { buildApp } from './app'

const port = Number(process.env.PORT ?? 3000)
const host = process.env.HOST ?? 'localhost'

async function start (): Promise<void> {
  if (!existsSync(join(__dirname, 'dist', 'index.html'))) {
    console.error('examples/react/dist/ is missing: build the page with `npm run example:react:build`')
    process.exit(1)
  }
  const app = await buildApp()

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
