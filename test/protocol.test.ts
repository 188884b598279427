import t from 'tap'
import type { WebSocket } from 'ws'
import { connectProtocol, ProtocolClient } from './helpers/protocol'
import { build, connect, listen, rawHandshake, type Client } from './helpers/server'
import { until } from './helpers/wait'
import type { TestContext } from './helpers/server'

function closing<C extends Client | ProtocolClient> (t: TestContext, client: C): C {
  t.teardown(() => client.ws.close())
  return client
}

t.test('nexus.v1 is chosen per connection: a hello first, the connection id in it; raw clients see no change', async (t) => {
  const app = await build(t)
  const ids: string[] = []
  app.ws('/ws', {
    onConnect: (socket, ctx) => {
      ids.push(ctx.id)
      socket.send('welcome')
    }
  })
  const base = await listen(app)
  const client = closing(t, await connectProtocol(`${base}/ws`))
  t.equal(client.ws.protocol, 'nexus.v1')
  t.same(client.frames[0], { kind: 'h', header: { v: 1, id: ids[0] }, payload: '', binary: false }, 'the hello comes before anything onConnect writes')
  await client.next((frame) => frame.kind === 'm')
  t.same(client.messages(), [{ room: undefined, data: 'welcome' }], 'socket.send() reaches it as a message of no room')

  const raw = closing(t, await connect(`${base}/ws`))
  await raw.waitFor(1)
  t.same(raw.messages, ['welcome'], 'a raw client gets the bytes as they were written')
  t.equal(raw.ws.protocol, '')
})

t.test('a client offering nexus.v1 among other subprotocols speaks nexus.v1; one that does not keeps its own', async (t) => {
  const app = await build(t)
  app.ws('/ws', {})
  const base = await listen(app)
  const both = closing(t, await connectProtocol(`${base}/ws`, ['chat', 'nexus.v1']))
  t.equal(both.ws.protocol, 'nexus.v1')
  const other = closing(t, new ProtocolClient(`${base}/ws`, ['chat', 'other']))
  await other.opened()
  t.equal(other.ws.protocol, 'chat', 'ws picks the first one offered, as without the plugin')
})

t.test('one broadcast: raw sockets get the raw bytes, protocol sockets the same bytes under a header, encoded once for all of them', async (t) => {
  const app = await build(t)
  app.ws('/ws', { onConnect: (socket) => { app.getWebSocket().joinRoom('news', socket) } })
  const base = await listen(app)
  const raws = await Promise.all([connect(`${base}/ws`), connect(`${base}/ws`)])
  const protos = await Promise.all([connectProtocol(`${base}/ws`), connectProtocol(`${base}/ws`)])
  for (const client of [...raws, ...protos]) closing(t, client)
  await until(() => app.getWebSocket().roomSize('news') === 4)
  // What reaches ws's sender of each socket: the protocol sockets share one buffer.
  const written = new Map<WebSocket, Buffer[]>()
  for (const socket of app.getWebSocket().socketsIn('news')) {
    const sender = (socket as unknown as { _sender: { sendFrame: (list: Buffer[], cb?: () => void) => void } })._sender
    const original = sender.sendFrame.bind(sender)
    sender.sendFrame = (list, cb) => {
      written.set(socket, list)
      original(list, cb)
    }
  }
  let stringified = 0
  const data = { toJSON: () => { stringified++; return { headline: 'hi' } } }
  t.equal(app.getWebSocket().broadcast('news', data), 4)
  t.equal(stringified, 1, 'the data is encoded once')
  await Promise.all(raws.map((client) => client.waitFor(1)))
  await Promise.all(protos.map((client) => client.next((frame) => frame.kind === 'm')))
  for (const raw of raws) t.same(raw.messages, [{ headline: 'hi' }])
  for (const proto of protos) t.same(proto.messages(), [{ room: 'news', data: { headline: 'hi' } }])
  const protocolSockets = app.getWebSocket().socketsIn('news').filter((socket) => socket.protocol === 'nexus.v1')
  const rawSockets = app.getWebSocket().socketsIn('news').filter((socket) => socket.protocol !== 'nexus.v1')
  t.equal(written.get(protocolSockets[0]), written.get(protocolSockets[1]), 'one frame for every protocol socket')
  t.equal(written.get(rawSockets[0]), written.get(rawSockets[1]), 'one frame for every raw socket')
  t.not(written.get(rawSockets[0]), written.get(protocolSockets[0]))

  // Several rooms: each socket once, named by a room it is in.
  app.getWebSocket().createRoom('sports')
  t.equal(app.getWebSocket().broadcast(['news', 'sports'], 'both'), 4)
  t.equal(app.getWebSocket().broadcastAll(Buffer.from([1, 2])), 4)
  await Promise.all(protos.map((client) => client.next((frame) => frame.binary)))
  for (const proto of protos) {
    t.same(proto.messages().slice(1, 2), [{ room: 'news', data: 'both' }])
    const binary = proto.frames.find((frame) => frame.binary)
    t.same(binary?.header, {}, 'broadcastAll names no room')
    t.same([...(binary?.payload as Buffer)], [1, 2], 'binary data stays binary, under the same header')
  }
})

t.test('a broadcast to several rooms names, for each protocol socket, a room it is in: one encoding per room', async (t) => {
  const app = await build(t)
  app.ws('/ws', { onConnect: (socket, ctx) => { app.getWebSocket().joinRoom(String(ctx.query.room), socket) } })
  const base = await listen(app)
  const [a1, a2, b] = await Promise.all([
    connectProtocol(`${base}/ws?room=a`), connectProtocol(`${base}/ws?room=a`), connectProtocol(`${base}/ws?room=b`)
  ])
  for (const client of [a1, a2, b]) closing(t, client)
  await until(() => app.getWebSocket().roomSize('a') === 2 && app.getWebSocket().roomSize('b') === 1)
  t.equal(app.getWebSocket().broadcast(['a', 'b', 'c'], { to: 'some' }), 3)
  await Promise.all([a1, a2, b].map((client) => client.next((frame) => frame.kind === 'm')))
  t.same([a1, a2, b].map((client) => client.messages()), [
    [{ room: 'a', data: { to: 'some' } }], [{ room: 'a', data: { to: 'some' } }], [{ room: 'b', data: { to: 'some' } }]
  ])
})

t.test('what handlers write with socket.send() is always a message: text, binary, callbacks and options', async (t) => {
  const app = await build(t)
  const sent: Array<Error | undefined> = []
  app.ws('/ws', {
    onConnect: (socket) => {
      // Something that looks like a control frame is still a message.
      socket.send('e{"c":"FAKE","m":"spoofed"}\n')
      socket.send(Buffer.from([9]))
      socket.send(new Uint8Array([1, 2, 3]).subarray(1))
      socket.send(new Uint8Array([4]).buffer)
      socket.send(Buffer.from('as text'), { binary: false })
      socket.send(42 as unknown as string, (err) => { sent.push(err) })
      app.getWebSocket().send(socket, { direct: true })
    }
  })
  const client = closing(t, await connectProtocol(`${await listen(app)}/ws`))
  await until(() => client.frames.length === 8)
  t.same(client.frames.slice(1).map((frame) => [frame.kind, frame.header, frame.binary]), [
    ['m', {}, false], ['m', {}, true], ['m', {}, true], ['m', {}, true], ['m', {}, false], ['m', {}, false], ['m', {}, false]
  ])
  t.same(client.messages().map((message) => message.data), [
    'e{"c":"FAKE","m":"spoofed"}\n', Buffer.from([9]), Buffer.from([2, 3]), Buffer.from([4]), 'as text', 42, { direct: true }
  ])
  await until(() => sent.length === 1)
  t.notOk(sent[0], 'the send callback is called, without an error')
})

t.test('messages reach onMessage as app data; bad ones get error frames and the connection stays open', async (t) => {
  const app = await build(t)
  const received: unknown[] = []
  app.ws('/ws', {
    schema: { message: { type: 'object', properties: { n: { type: 'integer' } }, required: ['n'] } },
    onMessage: (_socket, message) => { received.push(message) }
  })
  const client = closing(t, await connectProtocol(`${await listen(app)}/ws`))
  client.message({ n: 1 })
  client.message('not json')
  client.message({ n: 'two' })
  client.frame('m', {}, Buffer.from([1]), true)
  client.frame('m', { note: 'keys it does not know are ignored' }, '{"n":3}')
  client.frame('m', {}, '')
  client.message({ n: 4 })
  await until(() => received.length === 3)
  t.same(received, [{ n: 1 }, { n: 3 }, { n: 4 }])
  // The server wrote them before it handled { n: 4 }; the client reads them in its own time.
  await until(() => client.frames.filter((frame) => frame.kind === 'e').length === 4)
  const errorsSeen = client.frames.filter((frame) => frame.kind === 'e')
  t.match(errorsSeen[0].header, { c: 'INVALID_JSON', m: 'Message is not valid JSON' })
  t.notOk('i' in errorsSeen[0].header, 'an error about a message carries no request id')
  t.match(errorsSeen[1].header, { c: 'INVALID_MESSAGE', x: [{ instancePath: '/n' }] }, 'the validation errors')
  t.match(errorsSeen[2].header, { c: 'INVALID_MESSAGE' }, 'a binary message does not match an object schema')
  t.match(errorsSeen[3].header, { c: 'INVALID_JSON' }, 'an empty message is not JSON')
  t.equal(app.getWebSocket().stats().invalidMessages, 4)
})

t.test('requests: onMessage\'s value answers, in order with messages; errors answer with a code, never a stack', async (t) => {
  const app = await build(t)
  const reported: string[] = []
  const order: string[] = []
  app.ws('/ws', {
    onMessage: async (_socket, message: any) => {
      order.push(String(message.op))
      switch (message.op) {
        case 'add': return message.a + message.b
        case 'slow': await new Promise((resolve) => setTimeout(resolve, 50)); return { slow: true }
        case 'nothing': return undefined
        case 'refused': throw Object.assign(new Error('No such item'), { code: 'NOT_FOUND', statusCode: 404 })
        case 'coded-500': throw Object.assign(new Error('db password is hunter2'), { code: 'DB_DOWN', statusCode: 503 })
        case 'uncoded': throw new Error('secret internals')
        case 'cycle': { const value: any = {}; value.self = value; return value }
        case 'object': throw { code: 'PLAIN', statusCode: 409 } // eslint-disable-line no-throw-literal -- a thrown non-Error is answered too
        case 'string': throw 'just a string' // eslint-disable-line no-throw-literal -- a thrown non-Error is answered too
        default: return 'ok'
      }
    },
    onError: (_socket, error) => { reported.push(error.message) }
  })
  const client = closing(t, await connectProtocol(`${await listen(app)}/ws`))
  const slow = client.request({ op: 'slow' })
  client.message({ op: 'after-slow' })
  const add = client.request({ op: 'add', a: 2, b: 3 })
  t.same((await slow).payload, '{"slow":true}')
  t.same((await add), { kind: 'a', header: { i: 2 }, payload: '5', binary: false })
  t.same(order, ['slow', 'after-slow', 'add'], 'requests and messages share one ordered queue')
  t.same((await client.request({ op: 'nothing' })).payload, '', 'undefined answers with an empty payload')
  t.same((await client.request({ op: 'refused' })).header, { c: 'NOT_FOUND', m: 'No such item', i: 4 }, 'a coded 4xx error is the answer')
  t.same((await client.request({ op: 'coded-500' })).header, { c: 'INTERNAL', m: 'Internal error', i: 5 })
  t.same((await client.request({ op: 'uncoded' })).header, { c: 'INTERNAL', m: 'Internal error', i: 6 })
  t.same((await client.request({ op: 'cycle' })).header, { c: 'INTERNAL', m: 'Internal error', i: 7 }, 'a result with no JSON form')
  t.same((await client.request('not json')).header, { c: 'INVALID_JSON', m: 'Message is not valid JSON', i: 8 })
  t.same((await client.request({ op: 'object' })).header, { c: 'PLAIN', m: 'PLAIN', i: 9 }, 'a coded object without a message answers with its code')
  t.same((await client.request({ op: 'string' })).header, { c: 'INTERNAL', m: 'Internal error', i: 10 })
  t.equal(reported.length, 4, 'failures go to onError; the deliberate 4xx answers do not')
  t.notOk(JSON.stringify(client.frames).includes('hunter2'), 'no internal message reached the client')
  t.notOk(JSON.stringify(client.frames).includes('secret'), 'no internal message reached the client')
  t.equal(client.ws.readyState, client.ws.OPEN)
})

t.test('a request to a route without onMessage is answered with nothing', async (t) => {
  const app = await build(t)
  app.ws('/ws', {})
  const client = closing(t, await connectProtocol(`${await listen(app)}/ws`))
  t.same(await client.request({ any: 'thing' }), { kind: 'a', header: { i: 1 }, payload: '', binary: false })
})

t.test('500 concurrent requests each get their own answer', async (t) => {
  const app = await build(t)
  app.ws('/ws', { onMessage: async (_socket, message: any) => ({ n: message.n, twice: message.n * 2 }) })
  const client = closing(t, await connectProtocol(`${await listen(app)}/ws`))
  const answers = await Promise.all(Array.from({ length: 500 }, async (_, n) => await client.request({ n }, 30000)))
  t.ok(answers.every((answer, n) => answer.kind === 'a' && answer.payload === JSON.stringify({ n, twice: n * 2 })))
})

t.test('frames that do not decode get INVALID_FRAME, with the request id when there is one', async (t) => {
  const app = await build(t)
  let messages = 0
  app.ws('/ws', { onMessage: () => { messages++ } })
  const client = closing(t, await connectProtocol(`${await listen(app)}/ws`))
  const bad: Array<[string, Buffer]> = [
    ['no line feed', Buffer.from('m{}')],
    ['no kind', Buffer.from('\n{}')],
    ['a header that is not JSON', Buffer.from('m{oops\n')],
    ['a header that is an array', Buffer.from('m[1]\n')],
    ['a header that is a string', Buffer.from('m"x"\n')],
    ['a poisoned header', Buffer.from('q{"i":1,"__proto__":{"x":1}}\n{}')],
    ['a request without an id', Buffer.from('q{}\n{}')],
    ['a request with id 0', Buffer.from('q{"i":0}\n{}')],
    ['a request with a string id', Buffer.from('q{"i":"1"}\n{}')],
    ['an unknown kind', Buffer.from('z{"i":5}\n')],
    ['a subscribe with a fractional id', Buffer.from('s{"i":1.5,"r":"x"}\n')]
  ]
  for (const [, frame] of bad) client.ws.send(frame)
  await until(() => client.frames.filter((frame) => frame.kind === 'e').length === bad.length)
  const codes = client.frames.filter((frame) => frame.kind === 'e')
  t.ok(codes.every((frame) => frame.header.c === 'INVALID_FRAME'), 'each one is INVALID_FRAME')
  t.equal(codes[9].header.i, 5, 'an unknown kind with an id answers that id')
  t.equal(messages, 0)
  t.equal(({} as Record<string, unknown>).x, undefined, 'no prototype was polluted')
  t.equal((await client.request('"still open"')).kind, 'a', 'the connection stays open')
})

t.test('a rate-limited request is answered with RATE_LIMITED, a message gets an error frame', async (t) => {
  const app = await build(t, { rateLimit: { max: 2, windowMs: 60000 } })
  app.ws('/ws', { onMessage: () => 'ok' })
  const client = closing(t, await connectProtocol(`${await listen(app)}/ws`))
  t.equal((await client.request(1)).kind, 'a')
  t.equal((await client.request(2)).kind, 'a')
  t.match((await client.request(3)).header, { c: 'RATE_LIMITED', i: 3, m: 'Too many messages: at most 2 per 60000 ms' })
  client.message(4)
  const limited = await client.next((frame) => frame.kind === 'e' && frame.header.i === undefined)
  t.match(limited.header, { c: 'RATE_LIMITED' })
})

t.test('a nexus.v1 client refused by auth is told by the close code; a raw one still gets the HTTP answer', async (t) => {
  const app = await build(t)
  let connects = 0
  let closes = 0
  app.ws('/ws', {
    auth: (ctx) => {
      const kind = ctx.query.kind
      if (kind === 'ok') return { name: 'ok' }
      if (kind === 'banned') throw Object.assign(new Error('You are banned'), { statusCode: 403 })
      if (kind === 'broken') throw Object.assign(new Error('db password is hunter2'), { statusCode: 503 })
      if (kind === 'long') throw Object.assign(new Error('é'.repeat(100)), { statusCode: 401 })
      if (kind === 'odd') throw Object.assign(new Error('odd'), { statusCode: 599 })
      throw new Error('Token required: internal detail')
    },
    onConnect: () => { connects++ },
    onClose: () => { closes++ }
  })
  const base = await listen(app)
  const cases: Array<[string, number, string]> = [
    ['none', 4401, 'Unauthorized'],
    ['banned', 4403, 'You are banned'],
    ['broken', 4503, 'Service Unavailable'],
    ['odd', 4599, 'Error']
  ]
  for (const [kind, code, reason] of cases) {
    const client = new ProtocolClient(`${base}/ws?kind=${kind}`)
    t.same(await client.closed(), { code, reason }, `${kind}: ${code}`)
    t.same(client.frames, [], 'no frame, not even a hello')
  }
  const long = new ProtocolClient(`${base}/ws?kind=long`)
  const { code, reason } = await long.closed()
  t.equal(code, 4401)
  t.ok(Buffer.byteLength(reason) <= 123 && reason.startsWith('éé') && !reason.includes('\uFFFD'), 'a long reason is cut to 123 bytes on a character boundary')
  t.equal(connects, 0, 'no handler ran')
  t.equal(closes, 0)
  const ok = closing(t, await connectProtocol(`${base}/ws?kind=ok`))
  t.equal(ok.ws.protocol, 'nexus.v1')
  const raw = await rawHandshake(base, '/ws?kind=banned')
  t.equal(raw.status, 403, 'a raw client gets the HTTP answer')
})

t.test('rooms on demand: subscribe with authorize, each refusal code, no side effect on refusal', async (t) => {
  const app = await build(t)
  const calls: Array<[string, unknown, string]> = []
  const reported: string[] = []
  app.ws('/ws', {
    auth: () => ({ name: 'ann' }),
    rooms: {
      maxRooms: 2,
      timeout: 200,
      authorize: async (room, ctx, params) => {
        calls.push([room, params, ctx.user.name])
        if (room === 'open' || room === 'open2' || room === 'open3') return true
        if (room === 'allowed-object') return { allow: true }
        if (room === 'vip') return { allow: false, code: 'NEEDS_INVITE', message: 'Ask for an invite', temporary: true }
        if (room === 'broken') throw new Error('authorize crashed')
        if (room === 'slow') return await new Promise(() => {})
        if (room === 'bare') return { allow: false }
        if (room === 'odd') return 'yes' as unknown as boolean
        return false
      }
    },
    onError: (_socket, error) => { reported.push(error.message) }
  })
  const base = await listen(app)
  const client = closing(t, await connectProtocol(`${base}/ws`))
  const manager = app.getWebSocket()

  t.same((await client.subscribe('open', { invite: 'x' })).header, { i: 1, r: 'open' })
  t.equal(manager.roomSize('open'), 1, 'the membership is in place when the answer arrives')
  t.same(calls[0], ['open', { invite: 'x' }, 'ann'], 'authorize gets the room, the context and the params')
  t.same((await client.subscribe('open')).header, { i: 2, r: 'open' }, 'subscribing twice answers again')
  t.equal(calls.length, 1, 'without asking again')
  t.same((await client.subscribe('secret')).header, { c: 'FORBIDDEN', m: 'Not allowed to subscribe to this room', i: 3, r: 'secret' })
  t.same((await client.subscribe('vip')).header, { c: 'NEEDS_INVITE', m: 'Ask for an invite', i: 4, r: 'vip', t: true })
  t.same((await client.subscribe('broken')).header, { c: 'INTERNAL', m: 'Internal error', i: 5, r: 'broken', t: true })
  t.same(reported, ['authorize crashed'], 'a throwing authorize goes to onError; its message is not sent')
  t.same((await client.subscribe('slow')).header, { c: 'TIMEOUT', m: 'The subscription was not authorized in time', i: 6, r: 'slow', t: true })
  t.same((await client.subscribe('')).header, { c: 'INVALID_ROOM', m: 'A room name is a string of 1 to 256 characters', i: 7 })
  t.same((await client.subscribe(42)).header.c, 'INVALID_ROOM')
  t.same((await client.subscribe('x'.repeat(257))).header.c, 'INVALID_ROOM')
  t.same((await client.subscribe('bare')).header, { c: 'FORBIDDEN', m: 'Not allowed to subscribe to this room', i: 10, r: 'bare' }, 'a bare refusal gets the defaults')
  t.same((await client.subscribe('odd')).header.c, 'FORBIDDEN', 'anything but true or { allow: true } refuses')
  for (const room of ['secret', 'vip', 'broken', 'slow', 'bare', 'odd']) t.equal(manager.hasRoom(room), false, `no membership after a refused ${room}`)

  t.same((await client.subscribe('allowed-object')).header, { i: 12, r: 'allowed-object' })
  t.same((await client.subscribe('open2')).header, { c: 'LIMIT', m: 'This connection holds as many rooms as it may', i: 13, r: 'open2' })
  t.same((await client.unsubscribe('allowed-object')).header, { i: 14, r: 'allowed-object' })
  t.equal(manager.hasRoom('allowed-object'), false)
  t.same((await client.subscribe('open2')).header, { i: 15, r: 'open2' }, 'an unsubscribe frees a slot')

  // Rooms joined by server code do not count, and the client cannot leave them.
  manager.joinRoom('user:ann', manager.socketsIn('open')[0])
  t.same((await client.unsubscribe('user:ann')).header, { i: 16, r: 'user:ann' })
  t.equal(manager.roomSize('user:ann'), 1, 'a server-joined room stays')
  t.same((await client.unsubscribe(7)).header.c, 'INVALID_ROOM')

  // A broadcast sent after `s` arrives reaches it.
  manager.broadcast('open2', { hello: 'open2' })
  const message = await client.next((frame) => frame.kind === 'm')
  t.same(message.header, { r: 'open2' })

  const closed = client.closed()
  client.close()
  await closed
  await until(() => manager.connections === 0)
  t.equal(manager.hasRoom('open'), false, 'a closed connection left the rooms it subscribed to')
})

t.test('subscribing is refused with NOT_ENABLED unless the route has rooms.authorize', async (t) => {
  const app = await build(t)
  app.ws('/plain', {})
  app.ws('/no-rooms', { rooms: false })
  app.ws('/no-authorize', { rooms: { maxRooms: 4 } })
  const base = await listen(app)
  for (const path of ['/plain', '/no-rooms', '/no-authorize']) {
    const client = closing(t, await connectProtocol(`${base}${path}`))
    t.same((await client.subscribe('room')).header, { c: 'NOT_ENABLED', m: 'This route does not let clients subscribe to rooms', i: 1, r: 'room' }, path)
    t.same((await client.subscribe(5)).header, { c: 'NOT_ENABLED', m: 'This route does not let clients subscribe to rooms', i: 2 }, `${path}, not naming a bad room`)
  }
  t.equal(app.getWebSocket().fetchRooms !== undefined, true)
  t.same(await app.getWebSocket().fetchRooms(), [])
})

t.test('a server-side leaveRoom or deleteRoom of a subscribed room tells the client; of a server-joined room it does not', async (t) => {
  const app = await build(t)
  app.ws('/ws', {
    onConnect: (socket) => { app.getWebSocket().joinRoom('server-joined', socket) },
    rooms: { authorize: () => true }
  })
  const client = closing(t, await connectProtocol(`${await listen(app)}/ws`))
  const manager = app.getWebSocket()
  await client.subscribe('mine')
  await client.subscribe('doomed')
  const [socket] = manager.socketsIn('mine')
  manager.leaveRoom('server-joined', socket)
  manager.leaveRoom('mine', socket)
  manager.leaveRoom('mine', socket)
  t.equal(manager.deleteRoom('doomed'), true)
  await until(() => client.frames.filter((frame) => frame.kind === 'u').length === 2)
  await client.request('"sync"').catch(() => {})
  t.same(client.frames.filter((frame) => frame.kind === 'u').map((frame) => frame.header), [{ r: 'mine' }, { r: 'doomed' }], 'one u frame each, none for the server-joined room')
  // The slot is free again: it may subscribe once more.
  t.same((await client.subscribe('mine')).header, { i: 4, r: 'mine' })
})

t.test('the rooms option is checked when the route is declared', async (t) => {
  const app = await build(t)
  const cases: Array<[unknown, string]> = [
    ['yes', 'rooms'],
    [[], 'rooms'],
    [null, 'rooms'],
    [{ authorize: 'allow' }, 'rooms.authorize'],
    [{ authorize: () => true, maxRooms: 0 }, 'rooms.maxRooms'],
    [{ authorize: () => true, maxRooms: 1.5 }, 'rooms.maxRooms'],
    [{ authorize: () => true, maxRooms: '8' }, 'rooms.maxRooms'],
    [{ authorize: () => true, timeout: 0 }, 'rooms.timeout'],
    [{ authorize: () => true, timeout: 2 ** 31 }, 'rooms.timeout']
  ]
  for (const [rooms, field] of cases) {
    t.throws(() => app.ws('/ws', { rooms } as never), { code: 'FST_NEXUS_INVALID_ROUTE', message: `"${field}" must be` }, `${JSON.stringify(rooms)} names ${field}`)
  }
})

t.test('a client that leaves while authorize runs subscribes to nothing', async (t) => {
  const app = await build(t)
  let allow: (value: boolean) => void = () => {}
  let asked = 0
  app.ws('/ws', {
    rooms: {
      authorize: async () => {
        asked++
        return await new Promise<boolean>((resolve) => { allow = resolve })
      }
    }
  })
  const client = await connectProtocol(`${await listen(app)}/ws`)
  client.frame('s', { i: 1, r: 'late' })
  await until(() => asked === 1)
  const closed = client.closed()
  client.close()
  await closed
  await until(() => app.getWebSocket().connections === 0)
  allow(true)
  await new Promise((resolve) => setImmediate(resolve))
  t.equal(app.getWebSocket().hasRoom('late'), false)
})
