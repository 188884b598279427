// One instance of a small notification service that runs as several
// instances sharing rooms over Redis. Start two of them with
// `npm run example:cluster` (see start.ts), or by hand, each in its own terminal:
//
//   npm run build
//   PORT=3001 npx tsx examples/cluster/server.ts
//   PORT=3002 npx tsx examples/cluster/server.ts
//
// then connect a client to one instance and notify it through the other:
//
//   npx wscat -c 'ws://localhost:3002/ws?user=alice'
//   curl -X POST localhost:3001/notify -H 'content-type: application/json' -d '{"user":"alice","text":"hi"}'
//
// Environment: PORT (default 3001; 0 picks a free port), HOST (default
// localhost), REDIS_URL (default redis://127.0.0.1:6379), REDIS_PREFIX
// (default nexus-cluster-example), INSTANCE (a name, default instance-<port>).
// REDIS_CLUSTER (startup nodes, `127.0.0.1:7000,127.0.0.1:7001`) runs it on a
// Redis Cluster with sharded pub/sub instead of the Redis at REDIS_URL.
import Fastify from 'fastify'
import nexusRealtime, { redisAdapter } from 'fastify-nexus-realtime'

const port = Number(process.env.PORT ?? 3001)
const host = process.env.HOST ?? 'localhost'
const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'
const prefix = process.env.REDIS_PREFIX ?? 'nexus-cluster-example'
const clusterNodes = process.env.REDIS_CLUSTER?.split(',').filter(Boolean).map((node) => {
  const [nodeHost, nodePort] = node.split(':')
  return { host: nodeHost, port: Number(nodePort) }
})

interface User { name: string }
type ClientMessage = { type: 'chat', text: string } | { type: 'whoami' }

async function start (): Promise<void> {
  const app = Fastify({ logger: true })
  // Every instance: the same Redis (or Redis Cluster), the same prefix.
  const adapter = clusterNodes === undefined || clusterNodes.length === 0
    ? redisAdapter({ url: redisUrl }, { prefix })
    : redisAdapter({ cluster: clusterNodes }, { prefix })
  await app.register(nexusRealtime, { adapter })
  const realtime = app.getWebSocket()
  let instance = process.env.INSTANCE ?? `instance-${port}`

  // A user's sockets are in `user:<name>`; every socket is in `everyone`.
  app.ws<{ user: User, message: ClientMessage, query: { user?: string } }>('/ws', {
    auth: (ctx) => {
      const name = ctx.query.user
      if (typeof name !== 'string' || !/^[\w-]{1,64}$/.test(name)) {
        throw Object.assign(new Error('Connect with ?user=<name>'), { statusCode: 401 })
      }
      return { name }
    },
    onConnect: (socket, ctx) => {
      realtime.joinRoom(`user:${ctx.user.name}`, socket)
      realtime.joinRoom('everyone', socket)
      socket.send(JSON.stringify({ type: 'welcome', instance, user: ctx.user.name, connectionId: ctx.id }))
    },
    onMessage: (socket, message, ctx) => {
      if (message.type === 'chat') {
        // To everyone on every instance, except the sender.
        realtime.broadcast('everyone', { type: 'chat', from: ctx.user.name, text: message.text, instance }, { except: socket })
      } else if (message.type === 'whoami') {
        socket.send(JSON.stringify({ type: 'whoami', instance, user: ctx.user.name }))
      }
    }
  })

  // Notifies one user (or everyone), whichever instance their sockets are on.
  app.post<{ Body: { user?: string, text: string } }>('/notify', {
    schema: {
      body: {
        type: 'object',
        required: ['text'],
        properties: { user: { type: 'string', minLength: 1, maxLength: 64 }, text: { type: 'string', maxLength: 1000 } },
        additionalProperties: false
      }
    }
  }, async (request) => {
    const room = request.body.user === undefined ? 'everyone' : `user:${request.body.user}`
    const deliveredHere = realtime.broadcast(room, { type: 'notification', text: request.body.text, from: instance })
    // How many sockets of the room there are on the whole cluster.
    const online = await realtime.fetchRoomSize(room, { timeout: 1000 })
    return { room, deliveredHere, online }
  })

  // What the cluster looks like from here.
  app.get('/cluster', async () => ({
    instance,
    rooms: (await realtime.fetchRooms({ timeout: 1000 })).sort(),
    connections: await realtime.fetchConnections({ timeout: 1000 }),
    stats: realtime.stats()
  }))

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
  if (process.env.INSTANCE === undefined) instance = `instance-${actualPort}`
  const shownHost = host === '0.0.0.0' || host === '::' ? 'localhost' : host
  console.log(`Server running at http://${shownHost}:${actualPort} (${instance})`)
  console.log(`WebSocket at ws://${shownHost}:${actualPort}/ws?user=<name>, notify with POST http://${shownHost}:${actualPort}/notify`)
}

start().catch((error: unknown) => {
  console.error(error)
  process.exit(1)
})
