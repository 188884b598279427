// Two Fastify apps in one process share their rooms through a custom adapter
// (./emitter-adapter.ts): a message sent to one app reaches the clients of
// both. Run it with `npm run example:custom-adapter`, then connect to
// ws://localhost:3000/ws and ws://localhost:3001/ws and send a message to
// either. PORT changes the first port (0 picks free ones).
import { EventEmitter } from 'node:events'
import Fastify, { type FastifyInstance } from 'fastify'
import nexusRealtime from 'fastify-nexus-realtime'
import { EmitterAdapter } from './emitter-adapter'

const port = Number(process.env.PORT ?? 3000)

async function createApp (bus: EventEmitter, name: string): Promise<FastifyInstance> {
  const app = Fastify()
  await app.register(nexusRealtime, { adapter: new EmitterAdapter(bus) })
  app.ws('/ws', {
    onConnect: (socket) => { app.getWebSocket().joinRoom('lobby', socket) },
    onMessage: (_socket, message) => {
      app.getWebSocket().broadcast('lobby', { from: name, message })
    }
  })
  return app
}

async function start (): Promise<void> {
  const bus = new EventEmitter()
  const apps = [await createApp(bus, 'a'), await createApp(bus, 'b')]
  for (const [i, app] of apps.entries()) {
    const address = await app.listen({ port: port === 0 ? 0 : port + i, host: '127.0.0.1' })
    console.log(`app ${i === 0 ? 'a' : 'b'} on ${address.replace('http', 'ws')}/ws`)
  }
  const stop = (): void => { void Promise.all(apps.map((app) => app.close())).then(() => process.exit(0)) }
  process.once('SIGINT', stop)
  process.once('SIGTERM', stop)
}

void start()
