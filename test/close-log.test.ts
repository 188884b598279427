import t from 'tap'
import type { FastifyInstance } from 'fastify'
import { build, connect, listen } from './helpers/server'
import { logCapture } from './helpers/logs'
import { until } from './helpers/wait'

// One info line per closed connection, through the connection's own logger
// (a child of the request's logger): message 'connection closed', with the
// route, the close code, the duration and the messages in and out.

const closedLines = (lines: any[]): any[] => lines.filter((line) => line.msg === 'connection closed')

/** A route that answers each message with manager.send and a broadcast to its room. */
function echoRoute (app: FastifyInstance, path = '/chat/:room'): void {
  app.ws(path, {
    onConnect: (socket, ctx) => { app.getWebSocket().joinRoom((ctx.params as { room: string }).room, socket) },
    onMessage: (socket, message: { n: number }, ctx) => {
      app.getWebSocket().send(socket, { echo: message.n })
      app.getWebSocket().broadcast((ctx.params as { room: string }).room, { all: message.n })
    }
  })
}

t.test('one info line per closed connection, with its request id, route, code, duration and counts', async (t) => {
  const { stream, lines } = logCapture()
  const app = await build(t, {}, { logger: { level: 'info', stream } })
  const ids: string[] = []
  app.addHook('onRequest', async (request) => { ids.push(String(request.id)) })
  echoRoute(app)
  const base = await listen(app)

  const a = await connect(`${base}/chat/lobby?token=secret`)
  const b = await connect(`${base}/chat/lobby`)
  for (let n = 0; n < 3; n++) a.send({ n })
  await a.waitFor(6)
  await b.waitFor(3)
  const opened = Date.now()
  a.close(4000)
  await until(() => closedLines(lines).length === 1, 5000, 'the first close line')
  b.close()
  await until(() => closedLines(lines).length === 2, 5000, 'the second close line')

  const [first, second] = closedLines(lines)
  t.equal(first.level, 30, 'at info')
  t.match(first, {
    reqId: ids[0],
    route: '/chat/:room',
    code: 4000,
    messagesIn: 3,
    messagesOut: 6
  }, 'a: its request id, the route pattern, the code, 3 in, 6 out (3 sends + 3 broadcasts)')
  t.type(first.connectionId, 'string', 'the connection id (ctx.id)')
  t.type(first.duration, 'number')
  t.ok(first.duration > 0 && first.duration < Date.now() - opened + 60_000, `the duration in ms (${first.duration})`)
  t.notOk(JSON.stringify(first).includes('secret'), 'the route pattern, never the query string')
  t.match(second, { reqId: ids[1], route: '/chat/:room', code: 1005, messagesIn: 0, messagesOut: 3 }, 'b: 0 in, 3 broadcasts out, 1005 (no code)')
  t.not(first.connectionId, second.connectionId)
  const incoming = lines.find((line) => line.msg === 'incoming request' && line.reqId === ids[0])
  t.ok(incoming !== undefined, 'the same reqId as Fastify\'s "incoming request" line of the upgrade')
})

t.test('the counts include server-closed connections, and the code onClose gets', async (t) => {
  const { stream, lines } = logCapture()
  const app = await build(t, {}, { logger: { level: 'info', stream } })
  app.ws('/ws', {
    rateLimit: { max: 2, windowMs: 60000 },
    onMessage: (socket) => { app.getWebSocket().send(socket, 'ok') }
  })
  const client = await connect(`${await listen(app)}/ws`)
  // 2 pass, 2 are dropped, the 5th is past 2 × max and closes it.
  for (let n = 0; n < 5; n++) client.send({ n })
  await client.closed()
  await until(() => closedLines(lines).length === 1, 5000, 'the close line')
  t.match(closedLines(lines)[0], { route: '/ws', code: 1008, messagesIn: 5, messagesOut: 2 },
    '5 messages in (the 5th closed it), 2 out (the RATE_LIMITED frames are not app messages)')
})

t.test('the level follows the request logger: nothing under the app level warn', async (t) => {
  const { stream, lines } = logCapture()
  const app = await build(t, {}, { logger: { level: 'warn', stream } })
  echoRoute(app)
  const client = await connect(`${await listen(app)}/chat/x`)
  client.send({ n: 1 })
  await client.waitFor(2)
  client.close()
  await until(() => app.getWebSocket().stats().connections === 0, 5000, 'the close')
  // onClose and the line are on the same turn as the socket's close: give it a few turns anyway.
  await new Promise((resolve) => setTimeout(resolve, 50))
  t.same(closedLines(lines), [])
})

t.test('…and under the logLevel of the encapsulating plugin (Fastify sets the route\'s request logger level)', async (t) => {
  const { stream, lines } = logCapture()
  const app = await build(t, {}, { logger: { level: 'info', stream } })
  await app.register(async (child) => { echoRoute(child as unknown as FastifyInstance, '/quiet/:room') }, { logLevel: 'warn' })
  echoRoute(app, '/loud/:room')
  const base = await listen(app)
  const quiet = await connect(`${base}/quiet/x`)
  quiet.close()
  const loud = await connect(`${base}/loud/x`)
  loud.close()
  await until(() => closedLines(lines).length >= 1 && app.getWebSocket().stats().connections === 0, 5000, 'both closes')
  await new Promise((resolve) => setTimeout(resolve, 50))
  t.same(closedLines(lines).map((line) => line.route), ['/loud/:room'], 'only the route at info logs its close')
})

t.test("…and under the route's own logLevel (passed on to Fastify)", async (t) => {
  const { stream, lines } = logCapture()
  const app = await build(t, {}, { logger: { level: 'info', stream } })
  app.ws('/quiet', { logLevel: 'warn', onMessage: () => {} })
  app.ws('/loud', { onMessage: () => {} })
  const base = await listen(app)
  const quiet = await connect(`${base}/quiet`)
  quiet.close()
  const loud = await connect(`${base}/loud`)
  loud.close()
  await until(() => closedLines(lines).length >= 1 && app.getWebSocket().stats().connections === 0, 5000, 'both closes')
  await new Promise((resolve) => setTimeout(resolve, 50))
  t.same(closedLines(lines).map((line) => line.route), ['/loud'], 'only the route at info logs its close')
})
