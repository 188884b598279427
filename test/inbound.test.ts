import t from 'tap'
import WebSocket from 'ws'
import { connect as connectTcp } from 'node:net'
import { once } from 'node:events'
import { build, connect, listen } from './helpers/server'
import { delay, until } from './helpers/wait'

t.test('invalid JSON gets an INVALID_JSON error frame and the connection stays open', async (t) => {
  const app = await build(t)
  const received: unknown[] = []
  app.ws('/ws', {
    onMessage: (socket, message) => {
      received.push(message)
      socket.send(JSON.stringify({ echo: message }))
    }
  })
  const client = await connect(`${await listen(app)}/ws`)
  client.send('{"type": "chat", "text": ')
  client.send('not json at all')
  client.send({ type: 'chat', text: 'hi' })
  await client.waitFor(3)
  t.same(client.messages, [
    { type: 'error', code: 'INVALID_JSON', message: 'Message is not valid JSON' },
    { type: 'error', code: 'INVALID_JSON', message: 'Message is not valid JSON' },
    { echo: { type: 'chat', text: 'hi' } }
  ])
  t.same(received, [{ type: 'chat', text: 'hi' }], 'the handler never saw the invalid frames')
  t.equal(app.getWebSocket().stats().invalidMessages, 2)
  t.equal(app.getWebSocket().stats().messagesReceived, 3)
  t.equal(client.ws.readyState, WebSocket.OPEN)
})

t.test('error frames keep arrival order behind a slow handler', async (t) => {
  const app = await build(t)
  app.ws('/ws', {
    onMessage: async (socket, message: { n: number }) => {
      await delay(50)
      socket.send(JSON.stringify({ done: message.n }))
    }
  })
  const client = await connect(`${await listen(app)}/ws`)
  client.send({ n: 1 })
  client.send('{oops')
  client.send({ n: 3 })
  await client.waitFor(3)
  t.same(client.messages.map((m) => m.done ?? m.code), [1, 'INVALID_JSON', 3])
})

t.test('prototype poisoning', async (t) => {
  const payloads = {
    proto: '{"type":"x","__proto__":{"polluted":true}}',
    constructor: '{"type":"x","constructor":{"prototype":{"polluted":true}}}'
  }

  t.test('is rejected with INVALID_JSON by default (Fastify defaults: error, error)', async (t) => {
    const app = await build(t)
    let calls = 0
    app.ws('/ws', { onMessage: () => { calls++ } })
    const client = await connect(`${await listen(app)}/ws`)
    client.send(payloads.proto)
    client.send(payloads.constructor)
    await client.waitFor(2)
    for (const frame of client.messages) {
      t.same(frame, { type: 'error', code: 'INVALID_JSON', message: 'Message contains a forbidden __proto__ or constructor.prototype key' })
    }
    t.equal(calls, 0)
    t.equal(({} as Record<string, unknown>).polluted, undefined, 'Object.prototype is untouched')
  })

  t.test("honours the instance's onProtoPoisoning and onConstructorPoisoning: remove", async (t) => {
    const app = await build(t, {}, { onProtoPoisoning: 'remove', onConstructorPoisoning: 'remove' })
    const received: Array<Record<string, unknown>> = []
    app.ws('/ws', {
      onMessage: (socket, message) => {
        received.push(message)
        socket.send('ok')
      }
    })
    const client = await connect(`${await listen(app)}/ws`)
    client.send(payloads.proto)
    client.send(payloads.constructor)
    await client.waitFor(2)
    t.same(client.messages, ['ok', 'ok'])
    t.notOk(Object.hasOwn(received[0], '__proto__'), '__proto__ removed')
    t.notOk(Object.hasOwn(received[1], 'constructor'), 'constructor removed')
    t.equal(({} as Record<string, unknown>).polluted, undefined)
  })

  t.test('ignore passes the keys through as own properties, never into Object.prototype', async (t) => {
    const app = await build(t, {}, { onProtoPoisoning: 'ignore', onConstructorPoisoning: 'ignore' })
    const received: Array<Record<string, unknown>> = []
    app.ws('/ws', {
      onMessage: (socket, message) => {
        received.push(message)
        socket.send('ok')
      }
    })
    const client = await connect(`${await listen(app)}/ws`)
    client.send(payloads.proto)
    await client.waitFor(1)
    t.ok(Object.hasOwn(received[0], '__proto__'))
    t.equal(({} as Record<string, unknown>).polluted, undefined)
  })
})

t.test('binary frames arrive as Buffer under the default json parse', async (t) => {
  const app = await build(t)
  const received: unknown[] = []
  app.ws('/ws', {
    onMessage: (socket, message) => {
      received.push(message)
      socket.send('ok')
    }
  })
  const client = await connect(`${await listen(app)}/ws`)
  client.ws.send(Buffer.from([1, 2, 3]))
  await client.waitFor(1)
  t.ok(Buffer.isBuffer(received[0]))
  t.same([...(received[0] as Buffer)], [1, 2, 3])
})

t.test('the parse option', async (t) => {
  t.test("'text' gives strings for text frames and Buffers for binary", async (t) => {
    const app = await build(t)
    const received: unknown[] = []
    app.ws('/ws', {
      parse: 'text',
      onMessage: (socket, message) => {
        received.push(message)
        socket.send('ok')
      }
    })
    const client = await connect(`${await listen(app)}/ws`)
    client.send('{not json}')
    client.ws.send(Buffer.from('bin'))
    await client.waitFor(2)
    t.equal(received[0], '{not json}')
    t.ok(Buffer.isBuffer(received[1]))
  })

  t.test("'binary' gives a Buffer for every frame", async (t) => {
    const app = await build(t)
    const received: unknown[] = []
    app.ws('/ws', {
      parse: 'binary',
      onMessage: (socket, message) => {
        received.push(message)
        socket.send('ok')
      }
    })
    const client = await connect(`${await listen(app)}/ws`)
    client.send('text')
    await client.waitFor(1)
    t.ok(Buffer.isBuffer(received[0]))
    t.equal((received[0] as Buffer).toString(), 'text')
  })

  t.test('a function parses; a throw sends INVALID_MESSAGE without leaking its message', async (t) => {
    const app = await build(t)
    const received: unknown[] = []
    app.ws('/ws', {
      parse: (data, isBinary) => {
        const text = data.toString()
        if (text.startsWith('!')) throw new Error('secret internal detail')
        return { text, isBinary }
      },
      onMessage: (socket, message) => {
        received.push(message)
        socket.send('ok')
      }
    })
    const client = await connect(`${await listen(app)}/ws`)
    client.send('hello')
    client.send('!bad')
    await client.waitFor(2)
    t.same(received, [{ text: 'hello', isBinary: false }])
    t.same(client.messages[1], { type: 'error', code: 'INVALID_MESSAGE', message: 'Message could not be parsed' })
    t.notMatch(JSON.stringify(client.messages), 'secret')
  })
})

t.test('a frame over maxPayload (1 MiB by default) closes with 1009 and reaches onError', async (t) => {
  const app = await build(t)
  const errors: Error[] = []
  let closeCode = 0
  app.ws('/ws', {
    onMessage: (socket) => { socket.send('ok') },
    onError: (_socket, error) => { errors.push(error) },
    onClose: (_socket, _ctx, code) => { closeCode = code }
  })
  const base = await listen(app)
  const fits = await connect(`${base}/ws`)
  fits.send(Buffer.alloc(1024 * 1024, 1))
  await fits.waitFor(1)
  t.same(fits.messages, ['ok'], 'exactly 1 MiB is accepted')

  const client = await connect(`${base}/ws`)
  client.send(Buffer.alloc(1024 * 1024 + 1, 1))
  const { code } = await client.closed()
  t.equal(code, 1009)
  await until(() => closeCode === 1009)
  t.equal(errors.length, 1)
  t.match(errors[0], { code: 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH' })
  t.equal(fits.ws.readyState, WebSocket.OPEN, 'other connections are unaffected')
})

t.test('a frame that breaks the protocol (unmasked client frame) closes with 1002 and reaches onError', async (t) => {
  const app = await build(t)
  const errors: Array<Error & { code?: string }> = []
  let closeCode = 0
  app.ws('/ws', {
    onError: (_socket, error) => { errors.push(error) },
    onClose: (_socket, _ctx, code) => { closeCode = code }
  })
  const base = await listen(app)
  const { port } = new URL(base)
  const socket = connectTcp(Number(port), '127.0.0.1')
  socket.write('GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n' +
    'Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n')
  await once(socket, 'data')
  // A text frame "hi" without the mask every client frame must carry.
  socket.write(Buffer.from([0x81, 0x02, 0x68, 0x69]))
  await until(() => closeCode !== 0)
  t.equal(closeCode, 1002)
  t.equal(errors[0]?.code, 'WS_ERR_EXPECTED_MASK')
  socket.destroy()
})

t.test('an invalid frame whose turn comes after the close gets no error frame, and is counted', async (t) => {
  const app = await build(t)
  let closed = false
  app.ws('/ws', {
    onMessage: async () => { await delay(50) },
    onClose: () => { closed = true }
  })
  const client = await connect(`${await listen(app)}/ws`)
  client.send({ slow: true })
  client.send('{broken')
  client.close()
  await until(() => closed)
  t.same(client.messages, [])
  t.equal(app.getWebSocket().stats().invalidMessages, 1)
})

t.test('a route without onMessage accepts and counts messages', async (t) => {
  const app = await build(t)
  app.ws('/ws', {})
  const client = await connect(`${await listen(app)}/ws`)
  client.send({ ignored: true })
  await until(() => app.getWebSocket().stats().messagesReceived === 1)
  t.equal(client.ws.readyState, WebSocket.OPEN)
})
