// Issue 13, point 5: registering the plugin in two encapsulated plugins gives
// one manager and one room space per app, not two that never meet.
import t from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import nexusRealtime, { MemoryAdapter } from '../lib/index'
import { connect, listen, rawHandshake } from './helpers/server'
import { until } from './helpers/wait'

t.test('two encapsulated plugins that each register it share one manager: a broadcast reaches both', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  const managers: unknown[] = []
  for (const name of ['a', 'b']) {
    await app.register(async (child: FastifyInstance) => {
      await child.register(nexusRealtime)
      managers.push(child.getWebSocket())
      child.ws(`/${name}`, {
        onConnect: (socket) => { child.getWebSocket().joinRoom('lobby', socket) },
        onMessage: (_socket, message) => child.getWebSocket().broadcast('lobby', message)
      })
    })
  }
  t.equal(managers[0], managers[1], 'the same manager')
  const base = await listen(app)
  const a = await connect(`${base}/a`)
  const b = await connect(`${base}/b`)
  await until(() => (managers[0] as { stats(): { connections: number } }).stats().connections === 2, 5000, 'both connected')
  a.send({ from: 'a' })
  await b.waitFor(1)
  t.same(b.messages, [{ from: 'a' }], 'a broadcast from a route of plugin a reaches plugin b')
  await a.waitFor(1)
  // One dispatch per upgrade: a plain HTTP answer still comes once.
  const missing = await rawHandshake(base, '/nowhere')
  t.equal(missing.status, 404)
})

t.test('the root registers it, a child registers it again: reused, decorators inherited', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(nexusRealtime, { heartbeat: false })
  const root = app.getWebSocket()
  let inner: unknown
  await app.register(async (child) => {
    await child.register(nexusRealtime, { heartbeat: false })
    inner = child.getWebSocket()
    child.ws('/child', { onConnect: (socket) => { socket.send('child') } })
  })
  t.equal(inner, root)
  const client = await connect(`${await listen(app)}/child`)
  await client.waitFor(1)
  t.same(client.messages, ['child'])
})

t.test('a later registration with different options is a coded error naming the option', async (t) => {
  const adapter = new MemoryAdapter()
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(nexusRealtime, { adapter, rateLimit: { max: 10, windowMs: 1000 }, allowedOrigins: [/x/i, 'https://a'] })
  // The same options (structurally), or none: fine.
  await app.register(async (child) => {
    await child.register(nexusRealtime, { adapter, rateLimit: { max: 10, windowMs: 1000 }, allowedOrigins: [/x/i, 'https://a'] })
  })
  await app.register(async (child) => { await child.register(nexusRealtime) })
  await app.register(async (child) => { await child.register(nexusRealtime, { listen: 'positional' }) })
  for (const [options, name] of [
    [{ adapter: new MemoryAdapter() }, 'adapter'],
    [{ adapter, rateLimit: { max: 11, windowMs: 1000 }, allowedOrigins: [/x/i, 'https://a'] }, 'rateLimit'],
    [{ adapter, rateLimit: { max: 10, windowMs: 1000 }, allowedOrigins: [/x/, 'https://a'] }, 'allowedOrigins'],
    [{ adapter, rateLimit: { max: 10, windowMs: 1000 }, allowedOrigins: ['https://a'] }, 'allowedOrigins'],
    [{ adapter, rateLimit: { max: 10, windowMs: 1000, extra: 1 }, allowedOrigins: [/x/i, 'https://a'] }, 'rateLimit'],
    [{ adapter, rateLimit: { max: 10, windowMs: 1000 }, allowedOrigins: [/x/i, 'https://a'], shutdownTimeout: 1 }, 'shutdownTimeout']
  ] as const) {
    const other = Fastify()
    await other.register(nexusRealtime, { adapter, rateLimit: { max: 10, windowMs: 1000 }, allowedOrigins: [/x/i, 'https://a'] })
    await t.rejects(async () => {
      await other.register(async (child) => { await child.register(nexusRealtime, options as never) })
    }, {
      code: 'FST_NEXUS_INVALID_OPTION',
      message: new RegExp(`^Invalid option "${name}": expected the value given to the first registration of the plugin in this app`)
    }, name)
    await other.close().catch(() => {})
  }
})

t.test('separate apps keep separate managers', async (t) => {
  const one = Fastify()
  const two = Fastify()
  t.teardown(() => Promise.all([one.close(), two.close()]))
  await one.register(nexusRealtime)
  await two.register(nexusRealtime)
  t.not(one.getWebSocket(), two.getWebSocket())
})
