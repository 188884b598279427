import t from 'tap'
import { performance } from 'node:perf_hooks'
import { build, connect, listen } from './helpers/server'
import { until } from './helpers/wait'
import { encodeFrame, FrameParser, Opcode, RawClient } from './helpers/frames'

// A client closed with 1008 for flooding is cut off within about a second:
// the server stops reading from it at once and terminates it if the close
// has not completed after CLOSE_GRACE_MS (1 s), instead of reading and
// discarding its flood until ws's 30 s close timeout.

const RATE_LIMIT = { max: 10, windowMs: 60000 }

t.test('a flooder that ignores the 1008 close is cut off within ~1 s, and the server stops reading it', async (t) => {
  const app = await build(t)
  let release!: () => void
  const gate = new Promise<void>((resolve) => { release = resolve })
  let handled = 0
  let closed: { code: number, at: number } | null = null
  app.ws('/ws', {
    rateLimit: RATE_LIMIT,
    // The first message is still being handled when the flood closes the
    // connection: the end of that drain must not start reading again.
    onMessage: async () => {
      if (++handled === 1) await gate
    },
    onClose: (_socket, _ctx, code) => { closed = { code, at: performance.now() } }
  })
  const base = await listen(app)
  const stats = (): number => app.getWebSocket().stats().messagesReceived

  // A raw client that reads the server's frames but never answers the close,
  // and writes ~1 KiB frames as fast as the server takes them.
  const raw = await RawClient.open(base, '/ws', { read: false })
  const socket = raw.socket
  const parser = new FrameParser()
  let closeFrame: { code: number, at: number, received: number } | null = null
  socket.on('data', (chunk: Buffer) => {
    for (const frame of parser.push(chunk)) {
      if (frame.opcode === Opcode.CLOSE && closeFrame === null) {
        closeFrame = { code: frame.payload.readUInt16BE(0), at: performance.now(), received: stats() }
        release()
      }
    }
  })
  socket.resume()
  const frame = encodeFrame(Opcode.TEXT, JSON.stringify({ pad: 'x'.repeat(1000) }))
  const batch = Buffer.concat(Array.from({ length: 64 }, () => frame))
  const pump = (): void => {
    while (!socket.destroyed && socket.write(batch)) { /* until the socket buffers */ }
    if (!socket.destroyed) socket.once('drain', pump)
  }
  const start = performance.now()
  pump()

  await until(() => closeFrame !== null, 5000, 'the 1008 close frame')
  const close = closeFrame as unknown as { code: number, at: number, received: number }
  t.equal(close.code, 1008, 'the server closed with 1008')
  await Promise.race([raw.ended, new Promise((_resolve, reject) => setTimeout(() => reject(new Error('still connected 5 s after the 1008 close (ws would wait 30 s)')), 5000))])
  const cutOff = performance.now() - close.at
  t.ok(cutOff < 5000, `the flooder was disconnected ${Math.round(cutOff)} ms after the close frame (${Math.round(performance.now() - start)} ms after it started; well under ws's 30 s)`)
  await until(() => closed !== null, 5000, 'onClose')
  t.equal((closed as unknown as { code: number }).code, 1008, 'onClose gets 1008')
  const after = stats() - close.received
  // What ws had already read (64 KiB reads of 64 frames each) may still be
  // parsed; reading on until ws's 30 s close timeout would count millions.
  t.ok(after <= 4 * 64, `the server counted ${after} more messages after its close frame reached the client (it stopped reading), while the client wrote ${(socket.bytesWritten / 1024 / 1024).toFixed(1)} MiB in all`)
  t.equal(handled, 1, 'the messages queued behind the one being handled were dropped with the close')
})

t.test('a polite ws client closed for flooding still sees 1008, and is gone within the grace period', async (t) => {
  const app = await build(t)
  let closeCode = 0
  app.ws('/ws', {
    rateLimit: RATE_LIMIT,
    onClose: (_socket, _ctx, code) => { closeCode = code }
  })
  const client = await connect(`${await listen(app)}/ws`)
  const started = performance.now()
  for (let n = 0; n < 3 * RATE_LIMIT.max; n++) client.send({ n })
  const { code, reason } = await client.closed()
  t.same({ code, reason }, { code: 1008, reason: 'Rate limit exceeded' })
  t.ok(performance.now() - started < 5000, `closed after ${Math.round(performance.now() - started)} ms`)
  await until(() => closeCode !== 0, 5000, 'onClose')
  t.equal(closeCode, 1008, 'onClose gets 1008')
})
