import t from 'tap'
import WebSocket from 'ws'
import { connect, type Client } from './helpers/server'
import { delay, until } from './helpers/wait'
import { rig, throwsCode } from './helpers/rig'

// Broadcasting with real `ws` clients against a server on 127.0.0.1, port 0.

/** Every frame a client receives, with its kind, as ws reports it. */
function frames (client: Client): Array<{ binary: boolean, data: Buffer }> {
  const seen: Array<{ binary: boolean, data: Buffer }> = []
  client.ws.on('message', (data, isBinary) => { seen.push({ binary: isBinary, data: data as Buffer }) })
  return seen
}

// ------------------------------------------------------------------ encode once

t.test('one broadcast to 100 real sockets encodes its data once: toJSON runs once, all 100 receive it', async (t) => {
  const { manager, base } = await rig(t, {
    '/ws': { onConnect: (socket, ctx) => { ctx.request.server.getWebSocket().joinRoom('big', socket) } }
  })
  const clients = await Promise.all(Array.from({ length: 100 }, (_, n) => connect(`${base}/ws?name=c${n}`)))
  t.teardown(() => { for (const client of clients) client.close() })
  await until(() => manager.roomSize('big') === 100)

  let calls = 0
  const payload = { toJSON () { calls++; return { type: 'price_update', symbol: 'AAPL', price: '123.45' } } }
  t.equal(manager.broadcast('big', payload), 100, 'written to 100 sockets')
  t.equal(calls, 1, 'toJSON ran once for 100 sockets')
  await Promise.all(clients.map((client) => client.waitFor(1)))
  for (const client of clients) {
    if (client.messages.length !== 1 || client.messages[0].symbol !== 'AAPL') {
      t.fail(`a client got ${JSON.stringify(client.messages)}`)
    }
  }
  t.same(clients.map((client) => client.messages), Array.from({ length: 100 }, () => [{ type: 'price_update', symbol: 'AAPL', price: '123.45' }]))

  calls = 0
  t.equal(manager.broadcastAll(payload), 100)
  t.equal(calls, 1, 'broadcastAll encodes once too')
  calls = 0
  t.equal(manager.broadcast(['big', 'big', 'nobody'], payload), 100)
  t.equal(calls, 1, 'a broadcast to several rooms encodes once too')
  calls = 0
  t.equal(manager.roomManager.broadcast('big', payload), 100)
  t.equal(calls, 1, 'roomManager.broadcast encodes once too')
  await Promise.all(clients.map((client) => client.waitFor(4)))
  t.ok(clients.every((client) => client.messages.length === 4), 'every client got each of the four broadcasts')
})

t.test('data is validated even when no socket would receive it', async (t) => {
  const { manager } = await rig(t)
  let calls = 0
  t.equal(manager.broadcast('empty', { toJSON () { calls++; return 1 } }), 0)
  t.equal(calls, 1, 'encoded once for an empty room')
  throwsCode(t, () => manager.broadcast('empty', 1n), 'FST_NEXUS_INVALID_DATA', 'broadcast of a BigInt to an unknown room')
  throwsCode(t, () => manager.broadcastAll(undefined), 'FST_NEXUS_INVALID_DATA', 'broadcastAll of undefined with no connection')
})

// ------------------------------------------------------------------ encodings

t.test('strings arrive as text, Buffer / Uint8Array / ArrayBuffer as binary, everything else as JSON text', async (t) => {
  const { manager, open } = await rig(t)
  const a = await open('a')
  const seen = frames(a.client)
  manager.joinRoom('room', a.socket)

  const backing = Buffer.from([9, 9, 1, 2, 3, 9, 9])
  const view = new Uint8Array(backing.buffer, backing.byteOffset + 2, 3)
  const arrayBuffer = new Uint8Array([4, 5, 6]).buffer
  const sent: unknown[] = [
    'plain text',
    '{"looks":"like json"}',
    '',
    Buffer.from([0, 1, 2, 255]),
    view,
    arrayBuffer,
    new Uint16Array([0x0102]),
    { a: 1, nested: { list: [1, 'two', null] } },
    [1, 2, 3],
    42,
    true,
    null,
    new Date(0)
  ]
  for (const data of sent) t.equal(manager.broadcast('room', data), 1)
  await until(() => seen.length === sent.length)

  const expected: Array<[boolean, string | number[]]> = [
    [false, 'plain text'],
    [false, '{"looks":"like json"}'],
    [false, ''],
    [true, [0, 1, 2, 255]],
    [true, [1, 2, 3]],
    [true, [4, 5, 6]],
    [true, [...Buffer.from(new Uint16Array([0x0102]).buffer)]],
    [false, '{"a":1,"nested":{"list":[1,"two",null]}}'],
    [false, '[1,2,3]'],
    [false, '42'],
    [false, 'true'],
    [false, 'null'],
    [false, '"1970-01-01T00:00:00.000Z"']
  ]
  t.same(seen.map(({ binary, data }) => [binary, binary ? [...data] : data.toString()]), expected)
})

t.test('send() uses the broadcast encoding', async (t) => {
  const { manager, open } = await rig(t)
  const a = await open('a')
  const seen = frames(a.client)
  t.equal(manager.send(a.socket, 'text'), true)
  t.equal(manager.send(a.socket, Buffer.from([7])), true)
  t.equal(manager.send(a.socket, new Uint8Array([8, 9]).subarray(1)), true)
  t.equal(manager.send(a.socket, new Uint8Array([10]).buffer), true)
  t.equal(manager.send(a.socket, { ok: true }), true)
  await until(() => seen.length === 5)
  t.same(seen.map(({ binary, data }) => [binary, binary ? [...data] : data.toString()]), [
    [false, 'text'],
    [true, [7]],
    [true, [9]],
    [true, [10]],
    [false, '{"ok":true}']
  ])
})

// ------------------------------------------------------------------ counts, OPEN sockets, unknown rooms

t.test('broadcast returns the number of sockets written to; only OPEN sockets receive', async (t) => {
  const { manager, open } = await rig(t)
  const a = await open('a')
  const b = await open('b')
  const c = await open('c')
  for (const peer of [a, b, c]) manager.joinRoom('room', peer.socket)
  t.equal(manager.broadcast('room', { n: 1 }), 3)

  // The server starts closing b: it is CLOSING, still in the room until its 'close' event.
  b.socket.close(4000, 'going')
  t.equal(b.socket.readyState, WebSocket.CLOSING)
  t.equal(manager.roomSize('room'), 3, 'the closing socket has not left yet')
  t.equal(manager.broadcast('room', { n: 2 }), 2, 'the closing socket is skipped')
  t.equal(manager.roomManager.broadcast('room', { n: 3 }), 2)
  t.equal(manager.broadcastAll({ n: 4 }), 2)
  t.equal(manager.send(b.socket, { n: 5 }), false, 'send to a closing socket writes nothing')

  // A terminated socket is skipped as well.
  c.socket.terminate()
  t.equal(manager.broadcast('room', { n: 6 }), 1)

  const { code } = await b.client.closed()
  t.equal(code, 4000)
  await until(() => manager.connections === 1)
  await a.client.waitFor(5)
  t.same(a.client.messages, [{ n: 1 }, { n: 2 }, { n: 3 }, { n: 4 }, { n: 6 }])
  t.same(b.client.messages, [{ n: 1 }], 'the closing socket got nothing after close()')
  // terminate() destroys the socket at once: what was written in the same turn
  // may or may not have left (writes of one turn are flushed together).
  t.same(c.client.messages, [{ n: 1 }, { n: 2 }, { n: 3 }, { n: 4 }].slice(0, c.client.messages.length), 'the terminated socket got nothing after terminate()')
  t.ok(c.client.messages.length >= 1)
  t.equal(manager.roomSize('room'), 1)
})

t.test('a broadcast to an unknown room returns 0, throws nothing and creates no room', async (t) => {
  const { manager, open } = await rig(t)
  const a = await open('a')
  manager.joinRoom('known', a.socket)
  t.equal(manager.broadcast('unknown', { x: 1 }), 0)
  t.equal(manager.broadcast(['unknown', 'also-unknown'], { x: 1 }), 0)
  t.equal(manager.roomManager.broadcast('unknown', { x: 1 }), 0)
  t.equal(manager.broadcast([], { x: 1 }), 0, 'an empty list of rooms reaches nobody')
  t.equal(manager.hasRoom('unknown'), false)
  t.same(manager.roomManager.list(), ['known'])
  await delay(30)
  t.same(a.client.messages, [])
})

t.test('broadcasts arrive in the order they were made', async (t) => {
  const { manager, open } = await rig(t)
  const a = await open('a')
  const b = await open('b')
  manager.joinRoom('r', a.socket)
  manager.joinRoom('r', b.socket)
  for (let n = 0; n < 50; n++) manager.broadcast(n % 2 === 0 ? 'r' : ['r'], { n })
  await a.client.waitFor(50)
  await b.client.waitFor(50)
  const numbers = Array.from({ length: 50 }, (_, n) => ({ n }))
  t.same(a.client.messages, numbers)
  t.same(b.client.messages, numbers)
})

// ------------------------------------------------------------------ several rooms, except

t.test('a broadcast to several rooms reaches a socket in several of them once', async (t) => {
  const { manager, open } = await rig(t)
  const a = await open('a')
  const b = await open('b')
  const c = await open('c')
  const d = await open('d')
  manager.joinRoom('stock:AAPL', a.socket)
  manager.joinRoom('stock:GOOGL', a.socket)
  manager.joinRoom('stock:MSFT', a.socket)
  manager.joinRoom('stock:AAPL', b.socket)
  manager.joinRoom('stock:GOOGL', c.socket)
  manager.joinRoom('stock:AMZN', d.socket)

  t.equal(manager.broadcast(['stock:AAPL', 'stock:GOOGL', 'stock:MSFT'], { type: 'announcement' }), 3)
  t.equal(manager.broadcast(['stock:AAPL', 'stock:AAPL'], { type: 'again' }), 2, 'a room named twice counts once')
  t.equal(manager.broadcast(Object.freeze(['stock:MSFT', 'unknown']), { type: 'frozen list' }), 1)
  t.equal(manager.send(d.socket, 'marker'), true)
  await a.client.waitFor(3)
  await b.client.waitFor(2)
  await c.client.waitFor(1)
  await d.client.waitFor(1)
  await delay(30)
  t.same(a.client.messages, [{ type: 'announcement' }, { type: 'again' }, { type: 'frozen list' }])
  t.same(b.client.messages, [{ type: 'announcement' }, { type: 'again' }])
  t.same(c.client.messages, [{ type: 'announcement' }])
  t.same(d.client.messages, ['marker'], 'a socket in none of the rooms got nothing')
})

t.test('except skips one socket, or a list of sockets', async (t) => {
  const { manager, open, openRaw } = await rig(t)
  const a = await open('a')
  const b = await open('b')
  const c = await open('c')
  const raw = await openRaw('raw')
  for (const peer of [a, b, c]) manager.joinRoom('room', peer.socket)
  manager.joinRoom('second', a.socket)
  manager.joinRoom('second', c.socket)

  t.equal(manager.broadcast('room', { n: 1 }, { except: a.socket }), 2)
  t.equal(manager.broadcast('room', { n: 2 }, { except: [a.socket, b.socket] }), 1)
  t.equal(manager.broadcast(['room', 'second'], { n: 3 }, { except: [c.socket] }), 2)
  t.equal(manager.broadcast('room', { n: 4 }, { except: [] }), 3, 'an empty list skips nobody')
  t.equal(manager.broadcast('room', { n: 5 }, { except: raw.socket }), 3, 'a socket that is not in the room changes nothing')
  t.equal(manager.broadcast('second', { n: 6 }, { except: [a.socket, a.socket, c.socket] }), 0, 'everybody excepted')
  await a.client.waitFor(3)
  await b.client.waitFor(4)
  await c.client.waitFor(4)
  await delay(30)
  t.same(a.client.messages, [{ n: 3 }, { n: 4 }, { n: 5 }])
  t.same(b.client.messages, [{ n: 1 }, { n: 3 }, { n: 4 }, { n: 5 }])
  t.same(c.client.messages, [{ n: 1 }, { n: 2 }, { n: 4 }, { n: 5 }])
  t.same(raw.client.messages, [])
})

t.test('the sender is skipped with except from onMessage (the chat pattern)', async (t) => {
  const { open } = await rig(t, {
    '/ws': {
      onConnect: (socket, ctx) => { ctx.request.server.getWebSocket().joinRoom('general', socket) },
      onMessage: (socket, message, ctx) => {
        const written = ctx.request.server.getWebSocket().broadcast('general', { type: 'chat', from: ctx.query.name, text: message.text }, { except: socket })
        socket.send(JSON.stringify({ type: 'ack', written }))
      }
    }
  })
  const a = await open('a')
  const b = await open('b')
  const c = await open('c')
  a.client.send({ text: 'hi all' })
  await a.client.waitFor(1)
  await b.client.waitFor(1)
  await c.client.waitFor(1)
  t.same(a.client.messages, [{ type: 'ack', written: 2 }])
  t.same(b.client.messages, [{ type: 'chat', from: 'a', text: 'hi all' }])
  t.same(c.client.messages, [{ type: 'chat', from: 'a', text: 'hi all' }])
})

// ------------------------------------------------------------------ broadcastAll

t.test('broadcastAll reaches every app.ws connection, in rooms or not, on every route, with and without except', async (t) => {
  const { manager, open, openRaw } = await rig(t, { '/ws': {}, '/ws/other/:id': {} })
  const a = await open('a')
  const b = await open('b')
  const c = await open('c', '/ws/other/1')
  const raw = await openRaw('raw')
  manager.joinRoom('room', a.socket)

  t.equal(manager.broadcastAll({ n: 1 }), 3)
  t.equal(manager.broadcastAll({ n: 2 }, { except: b.socket }), 2)
  t.equal(manager.broadcastAll({ n: 3 }, { except: [a.socket, c.socket] }), 1)
  t.equal(manager.send(raw.socket, 'marker'), true)
  await a.client.waitFor(2)
  await b.client.waitFor(2)
  await c.client.waitFor(2)
  await raw.client.waitFor(1)
  await delay(30)
  t.same(a.client.messages, [{ n: 1 }, { n: 2 }])
  t.same(b.client.messages, [{ n: 1 }, { n: 3 }])
  t.same(c.client.messages, [{ n: 1 }, { n: 2 }])
  t.same(raw.client.messages, ['marker'], 'a socket of a plain @fastify/websocket route is not an app.ws connection')

  a.client.close()
  await until(() => manager.connections === 2)
  t.equal(manager.broadcastAll({ n: 4 }), 2, 'a closed connection is no longer reached')
})

t.test('broadcastAll with no connection returns 0', async (t) => {
  const { manager } = await rig(t)
  t.equal(manager.broadcastAll('nobody'), 0)
})

// ------------------------------------------------------------------ send

t.test('send() writes to a socket of the plugin and to a socket of a plain @fastify/websocket route', async (t) => {
  const { manager, open, openRaw } = await rig(t)
  const a = await open('a')
  const raw = await openRaw('raw')
  const rawFrames = frames(raw.client)
  t.equal(manager.send(a.socket, { to: 'a' }), true)
  t.equal(manager.send(raw.socket, { to: 'raw' }), true)
  t.equal(manager.send(raw.socket, Buffer.from([1, 2])), true)
  t.equal(manager.send(raw.socket, 'raw text'), true)
  await a.client.waitFor(1)
  await raw.client.waitFor(3)
  t.same(a.client.messages, [{ to: 'a' }])
  t.same(rawFrames.map(({ binary, data }) => [binary, binary ? [...data] : data.toString()]), [
    [false, '{"to":"raw"}'],
    [true, [1, 2]],
    [false, 'raw text']
  ])
  t.equal(manager.stats().messagesSent, 4)

  raw.socket.close()
  t.equal(manager.send(raw.socket, 'late'), false, 'a closing plain socket is not written to')
  a.client.close()
  await until(() => manager.connections === 0)
  t.equal(manager.send(a.socket, 'late'), false, 'a closed socket is not written to')
  t.equal(manager.stats().messagesSent, 4, 'unwritten sends are not counted')
})

t.test('send() to something that is not a socket throws FST_NEXUS_UNKNOWN_SOCKET', async (t) => {
  const { manager } = await rig(t)
  for (const value of [{}, null, undefined, 'socket', 7]) {
    throwsCode(t, () => manager.send(value as unknown as WebSocket, 'x'), 'FST_NEXUS_UNKNOWN_SOCKET', `send to ${String(value)}`)
  }
})

// ------------------------------------------------------------------ invalid data

t.test('data that cannot be encoded throws FST_NEXUS_INVALID_DATA (a TypeError) and nothing is sent', async (t) => {
  const { manager, open } = await rig(t)
  const a = await open('a')
  manager.joinRoom('room', a.socket)
  const circular: Record<string, unknown> = { name: 'loop' }
  circular.self = circular
  const bad: Array<[string, unknown]> = [
    ['a circular object', circular],
    ['a BigInt', 10n],
    ['an object holding a BigInt', { big: 1n }],
    ['undefined', undefined],
    ['a function', () => 1],
    ['a symbol', Symbol('s')],
    ['a toJSON that throws', { toJSON () { throw new Error('no JSON for you') } }]
  ]
  const calls: Array<[string, (data: unknown) => unknown]> = [
    ['broadcast', (data) => manager.broadcast('room', data)],
    ['broadcast to several rooms', (data) => manager.broadcast(['room', 'other'], data)],
    ['broadcastAll', (data) => manager.broadcastAll(data)],
    ['roomManager.broadcast', (data) => manager.roomManager.broadcast('room', data)],
    ['send', (data) => manager.send(a.socket, data)]
  ]
  for (const [method, call] of calls) {
    for (const [label, data] of bad) {
      const error = throwsCode(t, () => call(data), 'FST_NEXUS_INVALID_DATA', `${method} of ${label}`)
      if (error !== undefined) t.ok(error instanceof TypeError, `${method} of ${label}: a TypeError`)
    }
  }
  t.equal(manager.stats().messagesSent, 0, 'no frame was written')
  t.equal(manager.broadcast('room', 'after'), 1, 'the manager still works')
  await a.client.waitFor(1)
  await delay(30)
  t.same(a.client.messages, ['after'], 'the client only got the good broadcast')
})

// ------------------------------------------------------------------ from HTTP

t.test('a broadcast from an ordinary HTTP route reaches the ws clients', async (t) => {
  const { app, manager, open } = await rig(t, {
    '/ws/notifications': {
      onConnect: (socket, ctx) => {
        const ws = ctx.request.server.getWebSocket()
        ws.joinRoom(`user:${String(ctx.query.name)}`, socket)
        if (ctx.query.name === 'admin') ws.joinRoom('role:admin', socket)
      }
    }
  }, (app) => {
    app.post('/notify', async (request) => {
      const body = request.body as { text: string, user?: string }
      const ws = app.getWebSocket()
      const written = body.user === undefined
        ? ws.broadcast('role:admin', { type: 'admin_alert', message: body.text })
        : ws.broadcast(`user:${body.user}`, { type: 'notification', message: body.text })
      return { ok: true, written }
    })
  })
  const admin = await open('admin', '/ws/notifications')
  const user = await open('jo', '/ws/notifications')
  t.equal(manager.roomSize('role:admin'), 1)

  const alert = await app.inject({ method: 'POST', url: '/notify', payload: { text: 'disk full' } })
  t.equal(alert.statusCode, 200)
  t.same(alert.json(), { ok: true, written: 1 })
  const personal = await app.inject({ method: 'POST', url: '/notify', payload: { text: 'hello jo', user: 'jo' } })
  t.same(personal.json(), { ok: true, written: 1 })
  const nobody = await app.inject({ method: 'POST', url: '/notify', payload: { text: 'x', user: 'ghost' } })
  t.same(nobody.json(), { ok: true, written: 0 }, 'an unknown user room answers 0, not an error')

  await admin.client.waitFor(1)
  await user.client.waitFor(1)
  await delay(30)
  t.same(admin.client.messages, [{ type: 'admin_alert', message: 'disk full' }])
  t.same(user.client.messages, [{ type: 'notification', message: 'hello jo' }])
})

t.test('a broadcast from onClose reaches the others, not the socket that closed', async (t) => {
  let written = -1
  const { manager, open } = await rig(t, {
    '/ws': {
      onConnect: (socket, ctx) => { ctx.request.server.getWebSocket().joinRoom('general', socket) },
      onClose: (_socket, ctx) => {
        written = ctx.request.server.getWebSocket().broadcast('general', { type: 'user_left', user: ctx.query.name })
      }
    }
  })
  const a = await open('a')
  const b = await open('b')
  const c = await open('c')
  a.client.close()
  await b.client.waitFor(1)
  await c.client.waitFor(1)
  t.equal(written, 2)
  t.same(b.client.messages, [{ type: 'user_left', user: 'a' }])
  t.same(c.client.messages, [{ type: 'user_left', user: 'a' }])
  t.equal(manager.roomSize('general'), 2)
})
