import t from 'tap'
import { connect as connectTcp, type Socket } from 'node:net'
import { once } from 'node:events'
import { build, connect, listen } from './helpers/server'
import { delay, until } from './helpers/wait'

/** A peer that completes the handshake, then never reads nor answers anything. */
async function silentPeer (base: string, path: string): Promise<Socket> {
  const { port } = new URL(base)
  const socket = connectTcp(Number(port), '127.0.0.1')
  socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n` +
    'Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n')
  await once(socket, 'data')
  socket.pause()
  socket.on('error', () => {})
  return socket
}

t.test('a peer that never answers pings is terminated within two intervals and its onClose runs', async (t) => {
  const app = await build(t, { heartbeat: { interval: 100 } })
  let closedAt = 0
  let closeCode = 0
  app.ws('/ws', { onClose: (_socket, _ctx, code) => { closedAt = Date.now(); closeCode = code } })
  const base = await listen(app)
  const healthy = await connect(`${base}/ws`)
  const peer = await silentPeer(base, '/ws')
  await until(() => app.getWebSocket().connections === 2)
  const start = Date.now()
  await until(() => closedAt !== 0, 2000)
  t.ok(closedAt - start <= 350, `terminated after ${closedAt - start} ms`)
  t.equal(closeCode, 1006, 'a terminated socket closes abnormally')
  t.equal(app.getWebSocket().stats().heartbeatTimeouts, 1)
  await delay(300)
  t.equal(healthy.ws.readyState, healthy.ws.OPEN, 'a client that answers pings stays connected')
  peer.destroy()
})

t.test('heartbeat: false turns it off, and a route can override the interval', async (t) => {
  const app = await build(t, { heartbeat: false })
  let closes = 0
  app.ws('/quiet', { onClose: () => { closes++ } })
  app.ws('/checked', { heartbeat: { interval: 80 }, onClose: () => { closes++ } })
  const base = await listen(app)
  const quiet = await silentPeer(base, '/quiet')
  const checked = await silentPeer(base, '/checked')
  await until(() => closes === 1, 2000)
  await delay(300)
  t.equal(closes, 1, 'only the route with a heartbeat dropped its silent peer')
  t.equal(app.getWebSocket().connections, 1)
  quiet.destroy()
  checked.destroy()
})

t.test('a route can turn off the plugin heartbeat', async (t) => {
  const app = await build(t, { heartbeat: { interval: 60 } })
  app.ws('/ws', { heartbeat: false })
  const base = await listen(app)
  const peer = await silentPeer(base, '/ws')
  await delay(300)
  t.equal(app.getWebSocket().connections, 1)
  peer.destroy()
})

t.test('real clients answer pings and are never dropped; inbound messages count as alive', async (t) => {
  const app = await build(t, { heartbeat: { interval: 50 } })
  app.ws('/ws', { onMessage: (socket) => { socket.send('pong') } })
  const base = await listen(app)
  const client = await connect(`${base}/ws`)
  let pings = 0
  client.ws.on('ping', () => { pings++ })
  await delay(400)
  t.ok(pings >= 4, `pinged ${pings} times`)
  t.equal(app.getWebSocket().stats().heartbeatTimeouts, 0)
  t.equal(client.ws.readyState, client.ws.OPEN)
})

t.test('a socket paused by backpressure is not taken for dead', async (t) => {
  const app = await build(t, { heartbeat: { interval: 50 } })
  let release: () => void = () => {}
  const gate = new Promise<void>((resolve) => { release = resolve })
  let handled = 0
  app.ws('/ws', {
    onMessage: async () => {
      await gate
      handled++
    }
  })
  const client = await connect(`${await listen(app)}/ws`)
  for (let n = 0; n < 2100; n++) client.send({ n })
  await delay(400)
  t.equal(app.getWebSocket().stats().heartbeatTimeouts, 0)
  release()
  await until(() => handled === 2100, 10000)
  t.equal(client.ws.readyState, client.ws.OPEN)
})

t.test('the heartbeat keeps no handle open: a closed app leaves no timer', async (t) => {
  const app = await build(t, { heartbeat: { interval: 1000 } })
  app.ws('/ws', {})
  const client = await connect(`${await listen(app)}/ws`)
  const closed = client.closed()
  await app.close()
  t.equal((await closed).code, 1001)
})
