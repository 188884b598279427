import t from 'tap'
import { build, connect, listen, rawHandshake } from './helpers/server'
import { until } from './helpers/wait'

t.test('allowedOrigins as a list: other origins get 403 before the upgrade, auth never runs', async (t) => {
  const app = await build(t, { allowedOrigins: ['https://app.example.com', /^https:\/\/[a-z]+\.example\.org$/] })
  let auths = 0
  app.ws('/ws', {
    auth: () => { auths++; return { id: 1 } },
    onConnect: (socket) => { socket.send('hi') }
  })
  const base = await listen(app)
  const denied = await rawHandshake(base, '/ws', { Origin: 'https://evil.example.net' })
  t.equal(denied.status, 403)
  t.match(JSON.parse(denied.body), { statusCode: 403, code: 'FST_NEXUS_ORIGIN_NOT_ALLOWED', message: 'Origin "https://evil.example.net" is not allowed to open a WebSocket' })
  t.equal(auths, 0)

  for (const origin of ['https://app.example.com', 'HTTPS://APP.EXAMPLE.COM', 'https://chat.example.org']) {
    const client = await connect(`${base}/ws`, { origin })
    await client.waitFor(1)
    t.same(client.messages, ['hi'], `${origin} is allowed`)
    client.close()
  }
  const noOrigin = await connect(`${base}/ws`)
  await noOrigin.waitFor(1)
  t.pass('a request without Origin (not a browser) is allowed')
  await until(() => auths === 4)
})

t.test('allowedOrigins as a predicate, sync or async, sees the request', async (t) => {
  const seen: string[] = []
  const app = await build(t, {
    allowedOrigins: async (origin, request) => {
      seen.push(`${origin} ${request.url}`)
      return origin.endsWith('.trusted.test')
    }
  })
  app.ws('/ws', {})
  const base = await listen(app)
  t.equal((await rawHandshake(base, '/ws', { Origin: 'http://x.untrusted.test' })).status, 403)
  const client = await connect(`${base}/ws`, { origin: 'http://a.trusted.test' })
  t.equal(client.ws.readyState, client.ws.OPEN)
  t.same(seen, ['http://x.untrusted.test /ws', 'http://a.trusted.test /ws'])
})

t.test('plain HTTP requests are not checked', async (t) => {
  const app = await build(t, { allowedOrigins: ['https://app.example.com'] })
  app.ws('/ws', {})
  const response = await app.inject({ url: '/ws', headers: { origin: 'https://evil.example.net' } })
  t.equal(response.statusCode, 404)
})
