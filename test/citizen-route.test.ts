// Issue 13, point 4: app.ws honours the Fastify route options that apply to a
// handshake and rejects, naming it, every other key.
import t from 'tap'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { build, connect, listen, rawHandshake } from './helpers/server'
import { logCapture } from './helpers/logs'

t.test('route hooks run before the upgrade, after the plugin\'s own hook of the same phase, in a documented order', async (t) => {
  const app = await build(t, { allowedOrigins: ['https://ok.example'] })
  const order: string[] = []
  app.addHook('onRequest', async (request) => { if (request.ws) order.push('app onRequest') })
  app.addHook('preValidation', async (request) => { if (request.ws) order.push('app preValidation') })
  app.ws('/ws', {
    onRequest: [
      async () => { order.push('route onRequest 1') },
      async () => { order.push('route onRequest 2') }
    ],
    preParsing: async () => { order.push('route preParsing') },
    preValidation: async () => { order.push('route preValidation') },
    preHandler: (_request, _reply, done) => { order.push('route preHandler'); done() },
    auth: (ctx) => {
      order.push('auth')
      return ctx.query.user
    },
    onConnect: (socket, ctx) => {
      order.push('onConnect')
      socket.send(String(ctx.user))
    }
  })
  const base = await listen(app)
  const client = await connect(`${base}/ws?user=ann`)
  await client.waitFor(1)
  t.same(client.messages, ['ann'])
  t.same(order, [
    'app onRequest',
    'route onRequest 1',
    'route onRequest 2',
    'route preParsing',
    'app preValidation',
    'auth',
    'route preValidation',
    'route preHandler',
    'onConnect'
  ])

  // The origin check comes before the route's onRequest: a refused origin never reaches it.
  order.length = 0
  const refused = await rawHandshake(base, '/ws?user=x', { origin: 'https://evil.example' })
  t.equal(refused.status, 403)
  t.same(order, ['app onRequest'])
})

t.test('a route hook that answers refuses the handshake; onResponse sees that answer; the socket ends', async (t) => {
  const app = await build(t)
  const responses: number[] = []
  let authRan = false
  app.ws('/ws', {
    preValidation: async (request: FastifyRequest, reply: FastifyReply) => {
      if (request.headers['x-key'] !== 'k') return reply.code(429).send({ error: 'limited' })
    },
    onResponse: async (_request, reply) => { responses.push(reply.statusCode) },
    auth: () => { authRan = true }
  })
  const base = await listen(app)
  const answer = await rawHandshake(base, '/ws')
  t.equal(answer.status, 429)
  t.same(JSON.parse(answer.body), { error: 'limited' })
  t.same(responses, [429])
  t.ok(authRan, 'auth ran first: it is the first preValidation hook of the route')
})

t.test('config is the route config seen by the request (and ctx.request); logLevel and constraints apply', async (t) => {
  const logs = logCapture()
  const app = await build(t, {}, { logger: { level: 'info', stream: logs.stream } })
  let seen: unknown
  let fromHook: unknown
  app.ws('/ws', {
    config: { role: 'admin' },
    logLevel: 'error',
    onRequest: async (request) => { fromHook = request.routeOptions.config },
    onConnect: (socket, ctx) => {
      seen = ctx.request.routeOptions.config
      socket.send('ok')
    }
  })
  app.ws('/v', { constraints: { host: 'a.example' }, onConnect: (socket) => { socket.send('host a') } })
  app.ws('/v', { constraints: { host: 'b.example' }, onConnect: (socket) => { socket.send('host b') } })
  const base = await listen(app)
  const client = await connect(`${base}/ws`)
  await client.waitFor(1)
  t.match(seen, { role: 'admin', url: '/ws', method: 'GET' })
  t.match(fromHook, { role: 'admin' })
  t.notOk(logs.lines.some((line) => line.req?.url === '/ws'), "logLevel 'error': no 'incoming request' line for this route")

  const b = await connect(`${base}/v`, { headers: { host: 'b.example' } })
  await b.waitFor(1)
  t.same(b.messages, ['host b'])
  const none = await rawHandshake(base, '/v', { host: 'c.example' })
  t.equal(none.status, 404)
  t.ok(logs.lines.some((line) => line.msg === 'incoming request' && line.req?.url === '/v'), 'other routes log at info')
})

t.test("the route's errorHandler answers its refused handshakes; its validatorCompiler checks its schemas, messages included", async (t) => {
  const app = await build(t)
  app.ws('/ws', {
    auth: () => { throw Object.assign(new Error('nope'), { statusCode: 401 }) },
    errorHandler: (error, _request, reply) => { reply.code(418).send({ mine: error.message }) }
  })
  const compiled: string[] = []
  app.ws('/typed', {
    schema: { querystring: { q: 1 }, message: { m: 1 } },
    validatorCompiler: ({ httpPart }) => {
      compiled.push(String(httpPart))
      return (value: unknown) => httpPart === 'body' && (value as { ok?: unknown }).ok !== true
        ? { error: new Error('not ok') }
        : { value }
    },
    onMessage: (socket, message) => { socket.send(JSON.stringify({ got: message })) }
  })
  const base = await listen(app)
  const answer = await rawHandshake(base, '/ws')
  t.equal(answer.status, 418)
  t.same(JSON.parse(answer.body), { mine: 'nope' })

  const client = await connect(`${base}/typed`)
  client.send({ ok: false })
  client.send({ ok: true })
  await client.waitFor(2)
  t.match(client.messages, [{ type: 'error', code: 'INVALID_MESSAGE' }, { got: { ok: true } }])
  t.ok(compiled.includes('body'), 'the message schema was compiled by the route\'s compiler')
})

t.test('options that cannot apply to a socket are rejected, each named; unknown keys too', async (t) => {
  const app = await build(t)
  const noop = (): void => {}
  for (const [key, value] of [
    ['handler', noop],
    ['wsHandler', noop],
    ['websocket', true],
    ['method', 'POST'],
    ['url', '/other'],
    ['path', '/other'],
    ['preSerialization', noop],
    ['onSend', noop],
    ['serializerCompiler', noop],
    ['attachValidation', true],
    ['bodyLimit', 10]
  ] as const) {
    t.throws(() => app.ws('/ws', { [key]: value } as never), {
      code: 'FST_NEXUS_INVALID_ROUTE',
      message: new RegExp(`^Invalid ws route "/ws": "${key}" must be left out: `)
    }, key)
  }
  t.throws(() => app.ws('/ws', { onMesage: noop } as never), {
    code: 'FST_NEXUS_INVALID_ROUTE',
    message: 'Invalid ws route "/ws": "onMesage" must be left out: it is not an option of app.ws (see the README, "Route config"), received a function'
  }, 'a typo is not silently ignored')
  for (const bad of ['x', [noop, 1], null]) {
    t.throws(() => app.ws('/ws', { onRequest: bad } as never), {
      code: 'FST_NEXUS_INVALID_ROUTE',
      message: /"onRequest" must be a function or an array of functions/
    })
  }
})
