// Issue 13, points 1 and 13: an upgrade answered with an HTTP response ends
// its socket whatever answered it, and an upgrade to a plain HTTP route is
// answered with an HTTP error instead of 101 then a close.
import t from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import fastifyWebsocket from '@fastify/websocket'
import { connect as connectTcp, type Socket } from 'node:net'
import { once } from 'node:events'
import nexusRealtime from '../lib/index'
import { connect, listen, rawHandshake } from './helpers/server'
import { until } from './helpers/wait'

/** The number of sockets the app's server still holds. */
function connections (app: FastifyInstance): Promise<number> {
  return new Promise((resolve, reject) => {
    app.server.getConnections((error, count) => { if (error === null) resolve(count); else reject(error) })
  })
}

/**
 * Sends a handshake over TCP and resolves with the raw answer once its head
 * (and the body its Content-Length announces) arrived, or the socket closed.
 * The client then half-closes (as a client done with a refused handshake
 * does) but keeps its socket: whether the server ends its side is the test.
 */
async function answeredHandshake (base: string, path: string, headers: Record<string, string> = {}): Promise<{ status: number, text: string, socket: Socket }> {
  const { hostname, port } = new URL(base)
  const socket = connectTcp(Number(port), hostname)
  socket.on('error', () => {})
  const extra = Object.entries(headers).map(([name, value]) => `${name}: ${value}\r\n`).join('')
  socket.write(`GET ${path} HTTP/1.1\r\nHost: ${hostname}:${port}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n` +
    `Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n${extra}\r\n`)
  let text = ''
  await new Promise<void>((resolve) => {
    const check = (): void => {
      const split = text.indexOf('\r\n\r\n')
      if (split === -1) return
      const length = Number(/content-length: (\d+)/i.exec(text.slice(0, split))?.[1] ?? 0)
      if (Buffer.byteLength(text.slice(split + 4)) >= length) resolve()
    }
    socket.on('data', (chunk) => { text += chunk.toString(); check() })
    socket.on('close', () => resolve())
  })
  socket.end()
  return { status: Number(/^HTTP\/1\.1 (\d+)/.exec(text)?.[1] ?? 0), text, socket }
}

/** Resolves with app.close(), or rejects when it has not resolved within `ms`. */
async function closeWithin (app: FastifyInstance, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`app.close() did not resolve within ${ms} ms`)), ms)
  })
  try {
    await Promise.race([app.close(), timeout])
  } finally {
    clearTimeout(timer)
  }
}

t.test('an app-level onRequest hook added before register that answers upgrades: every socket ends, app.close() resolves', async (t) => {
  const app = Fastify()
  app.addHook('onRequest', async (request, reply) => {
    if (request.headers.authorization === undefined) return reply.code(401).send({ error: 'no' })
  })
  await app.register(nexusRealtime)
  app.ws('/ws', { onConnect: (socket) => { socket.send('hi') } })
  const base = await listen(app)
  const sockets: Socket[] = []
  t.teardown(() => { for (const socket of sockets) socket.destroy() })

  for (let i = 0; i < 20; i++) {
    const answer = await answeredHandshake(base, '/ws')
    sockets.push(answer.socket)
    t.equal(answer.status, 401, `upgrade ${i} answered 401`)
  }
  await until(async () => await connections(app) === 0, 10000, 'every refused upgrade socket ended by the server')
  // A client that is let through still gets its socket.
  const client = await connect(`${base}/ws`, { headers: { authorization: 'yes' } })
  await client.waitFor(1)
  await closeWithin(app, 10000)
  t.equal(await connections(app), 0, 'no connection left')
})

t.test('a 429 from a hook of a plugin registered before, and a 404: the socket ends each time', async (t) => {
  const app = Fastify()
  // A global rate limiter as its own (fastify-plugin style) plugin, registered first.
  const limiter = async (instance: FastifyInstance) => {
    instance.addHook('onRequest', (request, reply, done) => {
      if (request.headers['x-over'] === 'yes') {
        reply.code(429).send({ error: 'slow down' })
        return
      }
      done()
    })
  }
  ;(limiter as unknown as Record<symbol, boolean>)[Symbol.for('skip-override')] = true
  await app.register(limiter)
  await app.register(nexusRealtime)
  app.ws('/ws', {})
  const base = await listen(app)
  const sockets: Socket[] = []
  t.teardown(() => { for (const socket of sockets) socket.destroy() })

  const limited = await answeredHandshake(base, '/ws', { 'x-over': 'yes' })
  sockets.push(limited.socket)
  t.equal(limited.status, 429)
  const missing = await answeredHandshake(base, '/nowhere')
  sockets.push(missing.socket)
  t.equal(missing.status, 404)
  await until(async () => await connections(app) === 0, 10000, 'the refused sockets ended')
  await closeWithin(app, 10000)
})

t.test('with @fastify/websocket registered by the app first, a hook before it that answers: the socket ends too', async (t) => {
  const app = Fastify()
  app.addHook('onRequest', async (_request, reply) => reply.code(401).send())
  await app.register(fastifyWebsocket)
  await app.register(nexusRealtime)
  app.ws('/ws', {})
  const base = await listen(app)
  const answer = await answeredHandshake(base, '/ws')
  t.teardown(() => answer.socket.destroy())
  t.equal(answer.status, 401)
  await until(async () => await connections(app) === 0, 10000, 'the refused socket ended')
  await closeWithin(app, 10000)
})

t.test('an upgrade to a plain HTTP route is answered 404 before any upgrade; plain requests are untouched', async (t) => {
  const app = Fastify()
  await app.register(nexusRealtime)
  let ran = 0
  app.get('/x', async () => { ran++; return { plain: true } })
  app.register(async (child) => {
    child.get('/y', async () => 'y')
  }, { prefix: '/child' })
  app.ws('/ws', { onConnect: (socket) => { socket.send('hi') } })
  t.teardown(() => app.close())
  const base = await listen(app)

  for (const path of ['/x', '/child/y']) {
    const answer = await rawHandshake(base, path)
    t.equal(answer.status, 404, `${path}: 404, not 101`)
    t.notMatch(answer.head, /101 Switching Protocols/)
    t.same(JSON.parse(answer.body), {
      statusCode: 404,
      code: 'FST_NEXUS_NOT_WEBSOCKET',
      error: 'Not Found',
      message: `The route GET ${path} does not accept WebSocket connections`
    })
  }
  t.equal(ran, 0, "the plain route's handler never ran for an upgrade")
  const plain = await app.inject('/x')
  t.same(plain.json(), { plain: true })
  t.equal(ran, 1)
  // The ws route itself still upgrades.
  const client = await connect(`${base}/ws`)
  await client.waitFor(1)
  t.same(client.messages, ['hi'])
})

t.test("an app's own @fastify/websocket route (websocket: true) still upgrades", async (t) => {
  const app = Fastify()
  await app.register(nexusRealtime)
  app.get('/raw', { websocket: true }, (socket) => { socket.send('raw') })
  t.teardown(() => app.close())
  const client = await connect(`${await listen(app)}/raw`)
  await client.waitFor(1)
  t.same(client.messages, ['raw'])
  const closed = once(client.ws, 'close')
  client.close()
  await closed
})
