import t, { type Test } from 'tap'
import type { FastifyInstance } from 'fastify'
import type { NexusRealtimeOptions, WebSocketRouteConfig } from '../types/index'
import { build, connect, listen } from './helpers/server'
import { until } from './helpers/wait'

// Inbound memory is bounded in bytes as well as in messages: behind a slow
// onMessage, a connection queues at most `maxInboundBytes` (plus the message
// that crossed it) before its socket is paused, and reads again once the
// queue is worked off.

const KiB = 1024
const MiB = 1024 * KiB
const SIZE = 256 * KiB
const COUNT = 64
const LIMIT = 1 * MiB

/** A 256 KiB binary message numbered `n` (its first 4 bytes). */
function numbered (n: number): Buffer {
  const data = Buffer.alloc(SIZE, n & 0xff)
  data.writeUInt32BE(n, 0)
  return data
}

/**
 * An app whose onMessage holds message 0 until `release()`; every call notes
 * how many bytes had arrived and were waiting behind the one it handles
 * (received so far, minus those handled, minus itself).
 */
async function slowApp (t: Test, plugin: NexusRealtimeOptions, route: Partial<WebSocketRouteConfig>) {
  const app: FastifyInstance = await build(t, { websocket: { maxPayload: MiB }, ...plugin })
  let release!: () => void
  const gate = new Promise<void>((resolve) => { release = resolve })
  const handled: number[] = []
  let maxQueuedBytes = 0
  app.ws('/ws', {
    parse: 'binary',
    ...route,
    onMessage: async (_socket, message: Buffer) => {
      const waiting = app.getWebSocket().stats().messagesReceived - handled.length - 1
      maxQueuedBytes = Math.max(maxQueuedBytes, waiting * SIZE)
      handled.push(message.readUInt32BE(0))
      if (handled.length === 1) await gate
    }
  })
  const client = await connect(`${await listen(app)}/ws`)
  return { app, client, handled, release, maxQueued: () => maxQueuedBytes, received: () => app.getWebSocket().stats().messagesReceived }
}

async function boundedRead (t: Test, plugin: NexusRealtimeOptions, route: Partial<WebSocketRouteConfig>): Promise<void> {
  const { client, handled, release, maxQueued, received } = await slowApp(t, plugin, route)
  for (let n = 0; n < COUNT; n++) client.ws.send(numbered(n))
  // One message is being handled; the queue behind it grows past the bound, then reading stops.
  const atPause = LIMIT / SIZE + 1
  await until(() => received() >= 1 + atPause, 10000, `the server receiving ${1 + atPause} messages`)
  // While onMessage holds, nothing more is read: the count stays put over a
  // window in which the server, reading freely, would take all 64 (16 MiB
  // over loopback takes a few ms).
  let most = received()
  const window = Date.now() + 1000
  while (Date.now() < window) {
    most = Math.max(most, received())
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
  t.equal(most, 1 + atPause, `the server stopped reading after ${most} messages (${(most - 1) * SIZE / KiB} KiB queued behind the one being handled)`)
  t.ok(client.ws.bufferedAmount > 0, `the client still holds ${(client.ws.bufferedAmount / MiB).toFixed(1)} MiB it could not send`)
  t.same(handled, [0], 'only message 0 has been handled')

  release()
  await until(() => handled.length === COUNT, 20000, `all ${COUNT} messages handled`)
  t.same(handled, Array.from({ length: COUNT }, (_, n) => n), `all ${COUNT} messages (16 MiB) handled, in order`)
  t.ok(maxQueued() <= LIMIT + SIZE, `the queued bytes never exceeded the bound + one message (at most ${maxQueued() / KiB} KiB)`)
  t.equal(client.ws.bufferedAmount, 0, 'the client sent everything')
  t.equal(client.ws.readyState, client.ws.OPEN, 'the connection stays open')
}

t.test('a route maxInboundBytes pauses reading behind a slow onMessage, then resumes', async (t) => {
  await boundedRead(t, {}, { maxInboundBytes: LIMIT })
})

t.test('the plugin maxInboundBytes applies to every route', async (t) => {
  await boundedRead(t, { maxInboundBytes: LIMIT }, {})
})

t.test('the default bound is 4 MiB', async (t) => {
  const { client, handled, release, received } = await slowApp(t, {}, {})
  for (let n = 0; n < COUNT; n++) client.ws.send(numbered(n))
  const atPause = (4 * MiB) / SIZE + 1
  await until(() => received() >= 1 + atPause, 10000, `the server receiving ${1 + atPause} messages`)
  let most = received()
  const window = Date.now() + 1000
  while (Date.now() < window) {
    most = Math.max(most, received())
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
  t.equal(most, 1 + atPause, `4 MiB + one message queued, then the server stopped reading (${most} messages received)`)
  release()
  await until(() => handled.length === COUNT, 20000, `all ${COUNT} messages handled`)
  t.same(handled, Array.from({ length: COUNT }, (_, n) => n), 'all handled, in order')
})

t.test('maxInboundBytes must be a positive integer', async (t) => {
  for (const value of [0, -1, 1.5, '1024', null]) {
    await t.rejects(build(t, { maxInboundBytes: value } as unknown as NexusRealtimeOptions), { code: 'FST_NEXUS_INVALID_OPTION', message: /maxInboundBytes/ }, `plugin: ${String(value)}`)
  }
  const app = await build(t)
  t.throws(() => app.ws('/ws', { maxInboundBytes: 0 }), { code: 'FST_NEXUS_INVALID_ROUTE', message: /maxInboundBytes/ }, 'route: 0')
})
