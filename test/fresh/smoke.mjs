// The fresh install's smoke test (run by smoke.sh in a temporary project that
// installed the packed plugin without a lockfile): `app.injectWS()` against an
// `app.ws` route, then a real `listen` and a ws client. Exits non-zero on failure.
import assert from 'node:assert/strict'
import { on, once } from 'node:events'
import { createRequire } from 'node:module'
import Fastify from 'fastify'
import WebSocket from 'ws'
import nexusRealtime from 'fastify-nexus-realtime'

const require = createRequire(import.meta.url)
const versions = {}
for (const name of ['fastify', 'ws', '@fastify/websocket', '@types/ws', 'fastify-nexus-realtime']) {
  versions[name] = require(`${name}/package.json`).version
}
console.log('resolved:', JSON.stringify(versions))

const closes = []
const app = Fastify()
await app.register(nexusRealtime)
app.ws('/ws/echo', {
  auth: (ctx) => {
    if (ctx.query.token !== 'secret') throw new Error('Token required')
    return { name: 'alice' }
  },
  onConnect: (socket, ctx) => {
    app.getWebSocket().joinRoom('lobby', socket)
    socket.send(JSON.stringify({ type: 'welcome', name: ctx.user.name }))
  },
  onMessage: (_socket, message, ctx) => { app.getWebSocket().broadcast('lobby', { from: ctx.user.name, echo: message }) },
  onClose: (_socket, _ctx, code) => { closes.push(code) }
})
await app.ready()

/** Reads JSON messages of a socket, buffered from the moment it is called. */
function reader (ws) {
  const incoming = on(ws, 'message')
  return async () => JSON.parse(String((await incoming.next()).value[0]))
}
const until = async (check) => {
  for (let i = 0; i < 400 && !check(); i++) await new Promise((resolve) => setTimeout(resolve, 5))
  assert.ok(check(), 'condition not met within 2 s')
}

// 1. Without a port.
let next
const injected = await app.injectWS('/ws/echo?token=secret', {}, { onInit: (ws) => { next = reader(ws) } })
assert.deepEqual(await next(), { type: 'welcome', name: 'alice' })
injected.send(JSON.stringify({ n: 1 }))
assert.deepEqual(await next(), { from: 'alice', echo: { n: 1 } })
injected.close(4000, 'bye')
assert.equal((await once(injected, 'close'))[0], 4000)
await until(() => closes.length === 1)
assert.deepEqual(closes, [4000], 'onClose ran with the client\'s code')
await assert.rejects(app.injectWS('/ws/echo'), /Unexpected server response: 401/)
console.log('injectWS: ok')

// 2. A real server and client.
await app.listen({ host: '127.0.0.1', port: 0 })
const client = new WebSocket(`ws://127.0.0.1:${app.server.address().port}/ws/echo?token=secret`)
const read = reader(client)
await once(client, 'open')
assert.deepEqual(await read(), { type: 'welcome', name: 'alice' })
client.send(JSON.stringify({ n: 2 }))
assert.deepEqual(await read(), { from: 'alice', echo: { n: 2 } })
const closed = once(client, 'close')
await app.close()
assert.equal((await closed)[0], 1001, 'app.close() closes clients with 1001')
assert.deepEqual(closes, [4000, 1001])
console.log('listen + ws client: ok')
