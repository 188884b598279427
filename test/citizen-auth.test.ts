// Issue 13, points 11 and 12: an auth that never settles is refused after
// authTimeout (503), and a 5xx thrown by auth does not send its message.
import t from 'tap'
import Fastify from 'fastify'
import { once } from 'node:events'
import WebSocket from 'ws'
import nexusRealtime from '../lib/index'
import { build, connect, listen, rawHandshake } from './helpers/server'
import { logCapture } from './helpers/logs'
import { until } from './helpers/wait'

t.test('an auth that never settles: 503 FST_NEXUS_AUTH_TIMEOUT after authTimeout, no socket, no handler', async (t) => {
  const app = await build(t, { authTimeout: 200 })
  let connected = 0
  app.ws('/ws', {
    auth: () => new Promise(() => {}),
    onConnect: () => { connected++ }
  })
  const base = await listen(app)
  const started = Date.now()
  const answer = await rawHandshake(base, '/ws')
  t.ok(Date.now() - started >= 190, 'answered once the timeout passed')
  t.equal(answer.status, 503)
  t.same(JSON.parse(answer.body), {
    statusCode: 503,
    code: 'FST_NEXUS_AUTH_TIMEOUT',
    error: 'Service Unavailable',
    message: 'Authentication did not complete within 200 ms'
  })
  t.equal(connected, 0)
})

t.test("the route's authTimeout overrides the plugin's; a nexus.v1 client is closed with 4503", async (t) => {
  const app = await build(t, { authTimeout: 60000 })
  app.ws('/ws', { authTimeout: 100, auth: () => new Promise(() => {}) })
  const base = await listen(app)
  const ws = new WebSocket(`${base}/ws`, ['nexus.v1'])
  ws.on('error', () => {})
  const [code, reason] = await once(ws, 'close')
  t.equal(code, 4503)
  t.equal(reason.toString(), 'Service Unavailable')
})

t.test('an auth that settles after its timeout changes nothing; one that settles in time is unaffected', async (t) => {
  const app = await build(t, { authTimeout: 100 })
  let late: ((user: unknown) => void) | undefined
  let lateFail: ((error: unknown) => void) | undefined
  let connected = 0
  app.ws('/late', { auth: () => new Promise((resolve) => { late = resolve }), onConnect: () => { connected++ } })
  app.ws('/late-fail', { auth: () => new Promise((_resolve, reject) => { lateFail = reject }) })
  app.ws('/quick', {
    auth: async () => 'ann',
    onConnect: (socket, ctx) => { socket.send(String(ctx.user)) }
  })
  const base = await listen(app)
  t.equal((await rawHandshake(base, '/late')).status, 503)
  late?.('bob')
  t.equal((await rawHandshake(base, '/late-fail')).status, 503)
  lateFail?.(new Error('too late'))
  const client = await connect(`${base}/quick`)
  await client.waitFor(1)
  t.same(client.messages, ['ann'])
  t.equal(connected, 0, 'the late user never connected')
})

t.test('authTimeout is validated: plugin option and route option', async (t) => {
  for (const bad of [0, -1, 1.5, '100', null, 2 ** 31]) {
    const app = Fastify()
    await t.rejects(async () => { await app.register(nexusRealtime, { authTimeout: bad as number }) }, {
      code: 'FST_NEXUS_INVALID_OPTION',
      message: /"authTimeout"/
    }, `plugin authTimeout ${String(bad)}`)
  }
  const app = await build(t)
  for (const bad of [0, '1s', 2 ** 31]) {
    t.throws(() => app.ws('/ws', { authTimeout: bad as number }), {
      code: 'FST_NEXUS_INVALID_ROUTE',
      message: /Invalid ws route "\/ws": "authTimeout" must be a positive integer of milliseconds/
    }, `route authTimeout ${String(bad)}`)
  }
})

t.test('a 5xx thrown by auth: the client gets the status text, the log gets the original; 4xx messages are kept', async (t) => {
  const logs = logCapture()
  const app = await build(t, {}, { logger: { level: 'error', stream: logs.stream } })
  const errors: unknown[] = []
  app.setErrorHandler((error, _request, reply) => {
    errors.push(error)
    reply.send(error)
  })
  app.ws('/db', {
    auth: async () => {
      throw Object.assign(new Error('connect ECONNREFUSED 10.0.0.5:5432 (user=admin)'), { statusCode: 503, code: 'ECONNREFUSED' })
    }
  })
  app.ws('/odd', { auth: () => { throw Object.assign(new Error('secret detail'), { statusCode: 599 }) } })
  app.ws('/forbidden', { auth: () => { throw Object.assign(new Error('Token expired'), { statusCode: 403 }) } })
  const base = await listen(app)

  const db = await rawHandshake(base, '/db')
  t.equal(db.status, 503)
  t.same(JSON.parse(db.body), { statusCode: 503, error: 'Service Unavailable', message: 'Service Unavailable' })
  t.notMatch(db.body, /ECONNREFUSED|10\.0\.0\.5|admin/, 'nothing of the original reaches the client')
  await until(() => logs.lines.some((line) => line.err?.message?.includes('ECONNREFUSED')), 5000, 'the original is logged')
  const logged = logs.lines.find((line) => line.err?.message?.includes('ECONNREFUSED'))
  t.equal(logged.level, 50, 'at error level')
  t.match((errors[0] as Error).cause, { message: /ECONNREFUSED/ }, "the app's error handler finds the original as the cause")

  const odd = await rawHandshake(base, '/odd')
  t.equal(odd.status, 599)
  t.equal(JSON.parse(odd.body).message, 'Error', 'a status without a status text')
  t.notMatch(odd.body, /secret/)

  const forbidden = await rawHandshake(base, '/forbidden')
  t.equal(forbidden.status, 403)
  t.equal(JSON.parse(forbidden.body).message, 'Token expired', 'a 4xx message is the app\'s answer, kept')
})

t.test('a nexus.v1 client refused with a 5xx gets the status text as close reason', async (t) => {
  const app = await build(t)
  app.ws('/db', { auth: async () => { throw Object.assign(new Error('db password wrong'), { statusCode: 500 }) } })
  const ws = new WebSocket(`${await listen(app)}/db`, ['nexus.v1'])
  ws.on('error', () => {})
  const [code, reason] = await once(ws, 'close')
  t.equal(code, 4500)
  t.equal(reason.toString(), 'Internal Server Error')
})
