import t from 'tap'
import { build, connect, listen } from './helpers/server'
import { until } from './helpers/wait'

t.test('a client that stops reading is closed with 1013, leaves its rooms, and the others get everything', async (t) => {
  const app = await build(t, { maxBufferedBytes: 256 * 1024 })
  let slowClose = 0
  app.ws('/ws', {
    onConnect: (socket) => { app.getWebSocket().joinRoom('feed', socket) },
    onClose: (_socket, ctx, code) => { if (ctx.query.slow === '1') slowClose = code }
  })
  const base = await listen(app)
  const fast = await connect(`${base}/ws`)
  const slow = await connect(`${base}/ws?slow=1`)
  await until(() => app.getWebSocket().roomSize('feed') === 2)
  // The slow client's socket stops reading: the server's unsent bytes pile up.
  ;(slow.ws as unknown as { _socket: { pause: () => void } })._socket.pause()

  const chunk = 'x'.repeat(16 * 1024)
  let n = 0
  // Fan out in batches, each once the healthy client has read the previous
  // one: its socket has drained by then, whatever the machine's load, while
  // the slow client's unsent bytes pile up. (Waiting one turn instead let a
  // busy machine leave the healthy client behind too, and close it as slow.)
  while (n < 400) {
    for (let i = 0; i < 20; i++) app.getWebSocket().broadcast('feed', { n: n++, chunk })
    await fast.waitFor(n, 10000)
  }
  t.same(fast.messages.map((m) => m.n), Array.from({ length: 400 }, (_, i) => i), 'the healthy client got every message, in order')
  await until(() => slowClose !== 0, 5000)
  t.equal(slowClose, 1013, 'onClose receives 1013')
  t.equal(app.getWebSocket().stats().slowConsumers, 1)
  t.equal(app.getWebSocket().roomSize('feed'), 1, 'the slow consumer left its rooms')
})

t.test('a route can set its own maxBufferedBytes', async (t) => {
  const app = await build(t)
  let code = 0
  app.ws('/ws', {
    maxBufferedBytes: 1024,
    onClose: (_socket, _ctx, closeCode) => { code = closeCode }
  })
  const base = await listen(app)
  const client = await connect(`${base}/ws`)
  ;(client.ws as unknown as { _socket: { pause: () => void } })._socket.pause()
  await until(() => app.getWebSocket().connections === 1)
  // send() goes through the same check: a message larger than the budget is refused.
  const serverSocket = [...app.websocketServer.clients][0]
  t.equal(app.getWebSocket().send(serverSocket, 'y'.repeat(2048)), false)
  await until(() => code !== 0, 5000)
  t.equal(code, 1013)
})

t.test('bytes written straight with socket.send() are caught at the next heartbeat tick', async (t) => {
  const app = await build(t, { heartbeat: { interval: 50 }, maxBufferedBytes: 64 * 1024 })
  let code = 0
  app.ws('/ws', {
    onMessage: (socket) => {
      for (let i = 0; i < 1000; i++) socket.send('z'.repeat(16 * 1024))
    },
    onClose: (_socket, _ctx, closeCode) => { code = closeCode }
  })
  const client = await connect(`${await listen(app)}/ws`)
  client.send({ go: true })
  ;(client.ws as unknown as { _socket: { pause: () => void } })._socket.pause()
  await until(() => code !== 0, 5000)
  t.equal(code, 1013)
  t.equal(app.getWebSocket().stats().slowConsumers, 1)
})
