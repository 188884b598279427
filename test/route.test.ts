import t from 'tap'
import Fastify from 'fastify'
import { once } from 'node:events'
import nexusRealtime from '../lib/index'
import { build, connect, listen, rawHandshake, rejected } from './helpers/server'
import { until } from './helpers/wait'
import { logCapture } from './helpers/logs'

t.test('app.ws inside an encapsulated plugin: prefix, hooks and decorators of that context apply', async (t) => {
  const app = await build(t)
  await app.register(async (child) => {
    child.decorate('greeting', 'hello from v1')
    child.addHook('onRequest', async (request, reply) => {
      if (request.headers['x-blocked'] === 'yes') return reply.code(403).send({ error: 'blocked' })
    })
    child.ws('/chat', {
      onConnect: (socket) => {
        socket.send(JSON.stringify({ greeting: (child as unknown as { greeting: string }).greeting }))
      }
    })
  }, { prefix: '/v1' })
  app.ws('/root', { onConnect: (socket) => { socket.send('root') } })
  const base = await listen(app)

  const client = await connect(`${base}/v1/chat`)
  await client.waitFor(1)
  t.same(client.messages, [{ greeting: 'hello from v1' }])

  const blocked = await rawHandshake(base, '/v1/chat', { 'x-blocked': 'yes' })
  t.equal(blocked.status, 403, "the context's onRequest hook runs before the upgrade")
  t.same(JSON.parse(blocked.body), { error: 'blocked' })
  const missing = await rejected(`${base}/chat`)
  t.equal(missing.message, 'Unexpected server response: 404', 'the route lives under its prefix only')
  const root = await connect(`${base}/root`)
  await root.waitFor(1)
  t.same(root.messages, ['root'])
})

t.test('route params, path without the query string, query and the rest of the context', async (t) => {
  const app = await build(t)
  let seen: Record<string, unknown> | undefined
  app.ws<{ params: { id: string }, query: { player: string } }>('/ws/game/:id', {
    onConnect: (socket, ctx) => {
      seen = {
        id: ctx.id,
        path: ctx.path,
        params: { ...ctx.params },
        query: { ...ctx.query },
        header: ctx.headers['x-client'],
        rawUrl: ctx.raw.req.url,
        requestUrl: ctx.request.url,
        metadata: ctx.metadata
      }
      socket.send('ready')
    }
  })
  const client = await connect(`${await listen(app)}/ws/game/42?player=ann`, { headers: { 'x-client': 'test' } })
  await client.waitFor(1)
  t.match(seen, {
    id: /^[0-9a-f-]{36}$/,
    path: '/ws/game/42',
    params: { id: '42' },
    query: { player: 'ann' },
    header: 'test',
    rawUrl: '/ws/game/42?player=ann',
    requestUrl: '/ws/game/42?player=ann',
    metadata: {}
  })
})

t.test('every connection has its own id and metadata', async (t) => {
  const app = await build(t)
  const ids: string[] = []
  app.ws('/ws', {
    onConnect: (socket, ctx) => {
      ids.push(ctx.id)
      ctx.metadata.count = (ctx.metadata.count ?? 0) + 1
      // metadata is assignable as a whole, as the seed's heartbeat example does.
      ctx.metadata = { ...ctx.metadata }
      socket.send(JSON.stringify(ctx.metadata))
    }
  })
  const base = await listen(app)
  const a = await connect(`${base}/ws`)
  const b = await connect(`${base}/ws`)
  await Promise.all([a.waitFor(1), b.waitFor(1)])
  t.same(a.messages, [{ count: 1 }])
  t.same(b.messages, [{ count: 1 }])
  t.equal(new Set(ids).size, 2)
})

t.test('ctx.log is a child logger carrying the connection id', async (t) => {
  const { stream, lines } = logCapture()
  const app = Fastify({ logger: { level: 'info', stream } })
  await app.register(nexusRealtime)
  t.teardown(() => app.close())
  let id = ''
  app.ws('/ws', {
    onConnect: (socket, ctx) => {
      id = ctx.id
      ctx.log.info({ custom: 1 }, 'connected')
      t.equal(ctx.log, ctx.log, 'made once')
      socket.send('ok')
    }
  })
  const client = await connect(`${await listen(app)}/ws`)
  await client.waitFor(1)
  const line = lines.find((entry) => entry.msg === 'connected')
  t.equal(line.connectionId, id)
  t.equal(line.custom, 1)
})

t.test('injectWS reaches app.ws routes without a port', async (t) => {
  const app = await build(t)
  app.ws('/ws', {
    onMessage: (socket, message) => { socket.send(JSON.stringify({ echo: message })) }
  })
  await app.ready()
  const ws = await app.injectWS('/ws')
  ws.send(JSON.stringify({ a: 1 }))
  const [data] = await once(ws, 'message')
  t.same(JSON.parse(data.toString()), { echo: { a: 1 } })
  t.equal(app.getWebSocket().connections, 1)
  ws.terminate()
  await until(() => app.getWebSocket().connections === 0)
})

t.test('app.ws returns the instance, so routes chain', async (t) => {
  const app = await build(t)
  const returned = app.ws('/a', {}).ws('/b', {})
  t.equal(returned, app)
  await app.ready()
  t.ok(app.hasRoute({ method: 'GET', url: '/a' }))
  t.ok(app.hasRoute({ method: 'GET', url: '/b' }))
})

t.test('getWebSocket works from ordinary HTTP handlers', async (t) => {
  const app = await build(t)
  app.ws('/ws/notifications', {
    onConnect: (socket) => { app.getWebSocket().joinRoom('role:admin', socket) }
  })
  app.post<{ Body: { text: string } }>('/notify', async (request) => {
    const sent = app.getWebSocket().broadcast('role:admin', { type: 'admin_alert', message: request.body.text })
    return { ok: true, sent }
  })
  const client = await connect(`${await listen(app)}/ws/notifications`)
  await until(() => app.getWebSocket().roomSize('role:admin') === 1)
  const response = await app.inject({ method: 'POST', url: '/notify', payload: { text: 'disk full' } })
  t.same(response.json(), { ok: true, sent: 1 })
  await client.waitFor(1)
  t.same(client.messages, [{ type: 'admin_alert', message: 'disk full' }])
})
