import t from 'tap'
import Fastify from 'fastify'
import fastifyWebsocket from '@fastify/websocket'
import { connect as connectTcp } from 'node:net'
import { once } from 'node:events'
import WebSocket from 'ws'
import nexusRealtime from '../lib/index'
import { connect, listen, rawHandshake, rejected } from './helpers/server'
import { delay, until } from './helpers/wait'

async function app (options?: Parameters<typeof nexusRealtime>[1]) {
  const instance = Fastify({ logger: false })
  await instance.register(nexusRealtime, options ?? {})
  return instance
}

t.test('app.close() gives every client 1001 and runs every onClose', async (t) => {
  const server = await app()
  const closed: number[] = []
  server.ws('/ws', {
    onConnect: (socket) => { server.getWebSocket().joinRoom('all', socket) },
    onClose: async (_socket, _ctx, code) => {
      await delay(20)
      closed.push(code)
    }
  })
  const base = await listen(server)
  const clients = await Promise.all(Array.from({ length: 10 }, () => connect(`${base}/ws`)))
  await until(() => server.getWebSocket().roomSize('all') === 10)
  const codes = Promise.all(clients.map((client) => client.closed()))
  await server.close()
  t.equal(closed.length, 10, 'every onClose finished before app.close() resolved')
  t.ok(closed.every((code) => code === 1001))
  for (const { code, reason } of await codes) {
    t.equal(code, 1001)
    t.equal(reason, 'Server shutting down')
  }
})

t.test('onClose handlers are awaited up to shutdownTimeout, then sockets are terminated', async (t) => {
  const server = await app({ shutdownTimeout: 200 })
  server.ws('/ws', {
    onClose: () => new Promise(() => {})
  })
  const base = await listen(server)
  await connect(`${base}/ws`)
  const start = Date.now()
  await server.close()
  const took = Date.now() - start
  t.ok(took >= 180 && took < 2000, `app.close() waited for the timeout (${took} ms)`)
})

t.test('a client that never answers the close is terminated after shutdownTimeout', async (t) => {
  const server = await app({ shutdownTimeout: 300 })
  let closeCode = 0
  server.ws('/ws', {
    onClose: (_socket, _ctx, code) => { closeCode = code }
  })
  const base = await listen(server)
  const { port } = new URL(base)
  // A raw TCP peer that completes the handshake and then never reads or answers.
  const socket = connectTcp(Number(port), '127.0.0.1')
  socket.write('GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n' +
    'Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n')
  await once(socket, 'data')
  socket.pause()
  socket.on('error', () => {})
  await until(() => server.getWebSocket().connections === 1)
  const start = Date.now()
  await server.close()
  const took = Date.now() - start
  t.ok(took >= 250 && took < 3000, `terminated after the timeout (${took} ms)`)
  await until(() => closeCode !== 0)
  t.equal(closeCode, 1001, 'onClose sees the 1001 the server sent')
  socket.destroy()
})

t.test('upgrades that arrive during app.close() get 503 and app.close() still resolves', async (t) => {
  const server = await app()
  let release: () => void = () => {}
  const slowClose = new Promise<void>((resolve) => { release = resolve })
  server.ws('/ws', { onClose: () => slowClose })
  const base = await listen(server)
  await connect(`${base}/ws`)
  const closing = server.close()
  await delay(20)
  const answer = await rawHandshake(base, '/ws')
  t.equal(answer.status, 503)
  t.same(JSON.parse(answer.body), {
    statusCode: 503,
    code: 'FST_NEXUS_SHUTTING_DOWN',
    error: 'Service Unavailable',
    message: 'The server is shutting down'
  })
  const error = await rejected(`${base}/ws`)
  t.equal(error.message, 'Unexpected server response: 503')
  release()
  await closing
  t.pass('app.close() resolved')
})

t.test('an upgrade whose auth settles after app.close() started is accepted and closed with 1001', async (t) => {
  const server = await app()
  let authStarted: () => void = () => {}
  const started = new Promise<void>((resolve) => { authStarted = resolve })
  let closes = 0
  server.ws('/ws', {
    auth: async () => {
      authStarted()
      await delay(150)
      return { id: 1 }
    },
    onClose: () => { closes++ }
  })
  server.ws('/other', {})
  const base = await listen(server)
  // Keep app.close() waiting on another connection while the slow auth finishes.
  await connect(`${base}/other`)
  const client = new WebSocket(`${base}/ws`)
  client.on('error', () => {})
  await started
  const closing = server.close()
  const [code] = await once(client, 'close')
  t.equal(code, 1001)
  await closing
  await until(() => closes === 1)
  t.pass('onClose ran for the late connection')
})

t.test('sockets of plain @fastify/websocket routes are closed with 1001 too', async (t) => {
  const server = await app()
  server.get('/raw', { websocket: true }, (socket) => { socket.send('raw') })
  const base = await listen(server)
  const client = await connect(`${base}/raw`)
  await client.waitFor(1)
  const closed = client.closed()
  await server.close()
  t.equal((await closed).code, 1001)
})

t.test('an app that registered @fastify/websocket itself keeps its preClose and still closes', async (t) => {
  const server = Fastify()
  await server.register(fastifyWebsocket)
  await server.register(nexusRealtime)
  let closes = 0
  server.ws('/ws', { onClose: () => { closes++ } })
  const base = await listen(server)
  const client = await connect(`${base}/ws`)
  const closed = client.closed()
  await server.close()
  const { code } = await closed
  t.equal(code, 1005, "@fastify/websocket's default preClose closes without a code")
  await until(() => closes === 1)
  t.pass('onClose ran')
})
