import t from 'tap'
import WebSocket from 'ws'
import { frameSenderOf, probeFrameBuilder } from '../lib/outbound'
import { build, connect, listen } from './helpers/server'
import { until } from './helpers/wait'
import { RawClient } from './helpers/frames'

t.test('a broadcast writes one pre-built frame to every socket', async (t) => {
  const app = await build(t)
  app.ws('/ws', { onConnect: (socket) => { app.getWebSocket().joinRoom('room', socket) } })
  const base = await listen(app)
  const clients = await Promise.all([connect(`${base}/ws`), connect(`${base}/ws`)])
  await until(() => app.getWebSocket().roomSize('room') === 2)
  const sockets = app.getWebSocket().socketsIn('room')
  // Every socket takes the same frame buffer: capture what reaches each sender.
  const written: Buffer[][] = []
  for (const socket of sockets) {
    const sender = (socket as unknown as { _sender: { sendFrame: (list: Buffer[], cb?: () => void) => void } })._sender
    const original = sender.sendFrame.bind(sender)
    sender.sendFrame = (list, cb) => {
      written.push(list)
      original(list, cb)
    }
  }
  app.getWebSocket().broadcast('room', { hello: 'world' })
  app.getWebSocket().broadcast('room', Buffer.from([1, 2, 3]))
  await Promise.all(clients.map((client) => client.waitFor(2)))
  t.equal(written.length, 4)
  t.equal(written[0], written[1], 'the same list, built once, for both sockets')
  t.equal(written[0][0].length, 2 + '{"hello":"world"}'.length, 'header and payload in one buffer')
  t.equal(written[0][0][0], 0x81, 'a final text frame')
  t.equal(written[2][0][0], 0x82, 'a final binary frame')
  for (const client of clients) {
    t.same(client.messages[0], { hello: 'world' })
    t.same([...client.messages[1]], [1, 2, 3])
  }
})

t.test('with permessage-deflate negotiated the plugin falls back to socket.send, compressed', async (t) => {
  const app = await build(t, { websocket: { perMessageDeflate: { threshold: 0 } } })
  app.ws('/ws', { onConnect: (socket) => { app.getWebSocket().joinRoom('room', socket) } })
  const base = await listen(app)
  const client = await connect(`${base}/ws`, { perMessageDeflate: true })
  await until(() => app.getWebSocket().roomSize('room') === 1)
  const [socket] = app.getWebSocket().socketsIn('room')
  t.equal(socket.extensions, 'permessage-deflate')
  t.equal(frameSenderOf(socket), null, 'no pre-built frames for a compressing socket')
  const big = { text: 'a'.repeat(10000) }
  for (let n = 0; n < 3; n++) app.getWebSocket().broadcast('room', { n, ...big })
  await client.waitFor(3)
  t.same(client.messages.map((m) => m.n), [0, 1, 2], 'every message, in order')
  t.equal(client.messages[2].text.length, 10000)
})

t.test('the guard refuses what it does not recognise', async (t) => {
  t.equal(probeFrameBuilder(undefined), null, 'no Sender.frame')
  t.equal(probeFrameBuilder(() => [Buffer.from('nope')]), null, 'a builder whose frames are not RFC 6455 frames')
  t.equal(probeFrameBuilder(() => { throw new Error('changed signature') }), null, 'a builder that throws')
  t.type(probeFrameBuilder((WebSocket as unknown as { Sender: { frame: unknown } }).Sender.frame), 'function', "ws's own Sender.frame passes")

  const app = await build(t)
  app.ws('/ws', {})
  const base = await listen(app)
  await connect(`${base}/ws`)
  await until(() => app.websocketServer.clients.size === 1)
  const [socket] = [...app.websocketServer.clients]
  t.not(frameSenderOf(socket), null, "a plain socket's sender is used")
  t.equal(frameSenderOf(socket, null), null, 'not without a frame builder')
  t.equal(frameSenderOf({ extensions: '' } as unknown as WebSocket), null, 'not without a sender')
  t.equal(frameSenderOf({ _extensions: {}, _sender: { sendFrame: 'x', _state: 0 } } as unknown as WebSocket), null, 'not with a sender of another shape')
  t.equal(frameSenderOf({ _sender: { sendFrame () {}, _state: 0 } } as unknown as WebSocket), null, 'not when the extensions cannot be read')
  t.equal(frameSenderOf(Object.assign(Object.create({ _extensions: { inherited: true } }), { _sender: { sendFrame () {}, _state: 0 } }) as unknown as WebSocket), null, 'not when the extensions cannot be read')
})

t.test('a sender busy with a frame of its own gets the message through socket.send, in order', async (t) => {
  const app = await build(t)
  app.ws('/ws', { onConnect: (socket) => { app.getWebSocket().joinRoom('room', socket) } })
  const base = await listen(app)
  const client = await connect(`${base}/ws`)
  await until(() => app.getWebSocket().roomSize('room') === 1)
  const [socket] = app.getWebSocket().socketsIn('room')
  const sender = (socket as unknown as { _sender: { _state: number } })._sender
  // A Blob being read keeps ws's sender out of its idle state; messages then queue inside ws.
  socket.send(new Blob(['from a blob']))
  t.not(sender._state, 0, 'the sender is busy')
  app.getWebSocket().broadcast('room', { after: 'blob' })
  await client.waitFor(2)
  t.equal(Buffer.from(client.messages[0]).toString(), 'from a blob')
  t.same(client.messages[1], { after: 'blob' }, 'not ahead of what ws had queued')
})

t.test('several messages to one socket in one turn leave in one write', async (t) => {
  const app = await build(t)
  app.ws('/ws', {
    onConnect: (socket) => {
      for (const room of ['AAPL', 'GOOGL', 'MSFT', 'AMZN']) app.getWebSocket().joinRoom(`stock:${room}`, socket)
    }
  })
  const base = await listen(app)
  const client = await RawClient.open(base, '/ws')
  await until(() => app.getWebSocket().roomSize('stock:AMZN') === 1)
  const chunks: number[] = []
  client.socket.on('data', (chunk: Buffer) => chunks.push(chunk.length))
  // The seed's price feed: four rooms updated in the same turn.
  for (const symbol of ['AAPL', 'GOOGL', 'MSFT', 'AMZN']) {
    app.getWebSocket().broadcast(`stock:${symbol}`, { type: 'price_update', symbol, price: '1.00' })
  }
  await until(() => client.messages().length === 4)
  t.same(client.messages().map((m) => (m as { symbol: string }).symbol), ['AAPL', 'GOOGL', 'MSFT', 'AMZN'])
  t.ok(chunks.length <= 2, `arrived in ${chunks.length} reads (the first write, then the corked rest)`)
  client.socket.destroy()
})
