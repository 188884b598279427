import t from 'tap'
import Fastify from 'fastify'
import fastifyWebsocket from '@fastify/websocket'
import { once } from 'node:events'
import type WebSocket from 'ws'
import nexusRealtime from '../lib/index'
import { build } from './helpers/server'
import { until } from './helpers/wait'

// `app.injectWS()` (from @fastify/websocket) opens a socket without `listen`:
// the way users test their `app.ws` routes. Its fake handshake carries
// `sec-websocket-version` as the number 13, which ws >= 8.23.1 answers 400;
// the plugin turns it into the string a real request carries (lib/handshake.ts).

/**
 * Collects what an injected client receives, from its first frame on: a
 * message the server sends in `onConnect` may arrive before `injectWS`'s
 * promise resolves, so the listener goes on at `onInit`.
 */
function inbox (): { onInit: (ws: WebSocket) => void, next: () => Promise<unknown> } {
  const received: unknown[] = []
  const waiting: Array<(message: unknown) => void> = []
  return {
    onInit: (ws) => {
      ws.on('message', (data) => {
        const message: unknown = JSON.parse(String(data))
        const waiter = waiting.shift()
        if (waiter === undefined) received.push(message)
        else waiter(message)
      })
    },
    next: () => received.length > 0 ? Promise.resolve(received.shift()) : new Promise((resolve) => { waiting.push(resolve) })
  }
}

t.test('injectWS reaches an app.ws route: auth, messages both ways, rooms, onClose', async (t) => {
  const app = await build(t)
  const closes: Array<{ user: unknown, code: number, reason: string }> = []
  app.ws<{ user: { name: string }, message: { text: string } }>('/ws/chat', {
    auth: (ctx) => {
      if (ctx.headers.authorization !== 'Bearer alice') throw new Error('no token')
      return { name: 'alice' }
    },
    onConnect: (socket, ctx) => {
      app.getWebSocket().joinRoom('lobby', socket)
      socket.send(JSON.stringify({ type: 'welcome', name: ctx.user.name }))
    },
    onMessage: (_socket, message, ctx) => {
      app.getWebSocket().broadcast('lobby', { from: ctx.user.name, text: message.text })
    },
    onClose: (_socket, ctx, code, reason) => {
      closes.push({ user: ctx.user, code, reason: reason.toString() })
    }
  })
  await app.ready()

  const messages = inbox()
  const ws = await app.injectWS('/ws/chat', { headers: { authorization: 'Bearer alice' } }, { onInit: messages.onInit })
  t.same(await messages.next(), { type: 'welcome', name: 'alice' }, 'server → client')
  t.equal(app.getWebSocket().roomSize('lobby'), 1)

  const reply = messages.next()
  ws.send(JSON.stringify({ text: 'hello' }))
  t.same(await reply, { from: 'alice', text: 'hello' }, 'client → server → client')

  const closed = once(ws, 'close')
  ws.close(4000, 'bye')
  const [code] = await closed
  t.equal(code, 4000)
  await until(() => closes.length === 1, 5000, 'onClose')
  t.same(closes, [{ user: { name: 'alice' }, code: 4000, reason: 'bye' }], 'onClose ran once with the client\'s code')
  t.equal(app.getWebSocket().roomSize('lobby'), 0, 'the socket left its rooms')
})

t.test('injectWS gets the handshake refusal of auth', async (t) => {
  const app = await build(t)
  app.ws('/ws', { auth: () => { throw new Error('no token') } })
  await app.ready()
  await t.rejects(app.injectWS('/ws'), { message: 'Unexpected server response: 401' })
})

t.test('injectWS works when the app registered @fastify/websocket itself', async (t) => {
  const app = Fastify({ logger: false })
  t.teardown(() => app.close())
  await app.register(fastifyWebsocket)
  await app.register(nexusRealtime)
  app.ws('/ws', { onMessage: (socket, message) => { socket.send(JSON.stringify({ echo: message })) } })
  await app.ready()
  const messages = inbox()
  const ws = await app.injectWS('/ws', {}, { onInit: messages.onInit })
  const reply = messages.next()
  ws.send(JSON.stringify({ n: 1 }))
  t.same(await reply, { echo: { n: 1 } })
  ws.terminate()
})

t.test('an injected handshake is seen with a string version header', async (t) => {
  const app = await build(t)
  let version: unknown
  app.ws('/ws', { onConnect: (_socket, ctx) => { version = ctx.headers['sec-websocket-version'] } })
  await app.ready()
  const ws = await app.injectWS('/ws')
  await until(() => version !== undefined, 5000, 'onConnect')
  t.equal(version, '13', 'an injected handshake is seen with the string a real one carries')
  ws.terminate()
})
