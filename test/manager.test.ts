import t from 'tap'
import WebSocket from 'ws'
import type { WebSocketManager } from '../types/index'
import { build, connect, listen } from './helpers/server'
import { delay, until } from './helpers/wait'
import { rig, throwsCode, type Peer } from './helpers/rig'

// Every test here uses real `ws` clients against a server on 127.0.0.1, port 0;
// `sockets` maps a client's `?name=` to its server-side socket.

const sortedRooms = (rooms: string[]): string[] => [...rooms].sort()

// ------------------------------------------------------------------ seed API

t.test('the seed Room Manager API: createRoom, joinRoom, leaveRoom, broadcast', async (t) => {
  const { manager, open } = await rig(t)
  const a = await open('a')
  const b = await open('b')

  manager.createRoom('vip-lounge')
  t.equal(manager.hasRoom('vip-lounge'), true)
  manager.joinRoom('vip-lounge', a.socket)
  manager.joinRoom('vip-lounge', b.socket)
  t.equal(manager.broadcast('vip-lounge', { message: 'VIP announcement' }), 2)
  await a.client.waitFor(1)
  await b.client.waitFor(1)
  t.same(a.client.messages, [{ message: 'VIP announcement' }])
  t.same(b.client.messages, [{ message: 'VIP announcement' }])

  manager.leaveRoom('vip-lounge', a.socket)
  t.equal(manager.broadcast('vip-lounge', { message: 'second' }), 1)
  await b.client.waitFor(2)
  t.same(b.client.messages[1], { message: 'second' })
  await delay(30)
  t.equal(a.client.messages.length, 1, 'a left the room: it got nothing more')

  manager.leaveRoom('vip-lounge', b.socket)
  t.equal(manager.hasRoom('vip-lounge'), true, 'a created room stays once empty')
  t.equal(manager.broadcast('vip-lounge', 'nobody'), 0)
})

t.test('the seed roomManager helper: create, join, leave, broadcast, list', async (t) => {
  const { manager, open } = await rig(t)
  const a = await open('a')
  const b = await open('b')
  const rm = manager.roomManager
  t.equal(manager.roomManager, rm, 'the helper is one object')

  t.same(rm.list(), [])
  rm.create('new-room')
  t.same(rm.list(), ['new-room'])
  rm.join('new-room', a.socket)
  rm.join('new-room', b.socket)
  rm.join('other', b.socket)
  t.same(sortedRooms(rm.list()), ['new-room', 'other'])
  t.equal(manager.roomSize('new-room'), 2, 'the helper and the manager share the rooms')
  t.equal(rm.broadcast('new-room', { hello: 'room' }), 2)
  await a.client.waitFor(1)
  await b.client.waitFor(1)
  t.same(a.client.messages, [{ hello: 'room' }])
  t.same(b.client.messages, [{ hello: 'room' }])

  rm.leave('new-room', a.socket)
  rm.leave('other', b.socket)
  t.same(rm.list(), ['new-room'], 'the implicit room vanished, the created one stayed')
  t.same(manager.socketsIn('new-room'), [b.socket])
  t.equal(rm.broadcast('new-room', 'x'), 1)
  t.equal(rm.broadcast('other', 'x'), 0)
})

t.test('the seed chat flow: join_room / chat / leave_room from onMessage, user_joined from onConnect', async (t) => {
  const { open } = await rig(t, {
    '/ws/chat': {
      onConnect: async (socket, ctx) => {
        const ws = ctx.request.server.getWebSocket()
        const room = ctx.query.room as string || 'general'
        ws.joinRoom(room, socket)
        ws.broadcast(room, { type: 'user_joined', message: `New user joined ${room}` })
        socket.send(JSON.stringify({ type: 'joined', room }))
      },
      onMessage: async (socket, message, ctx) => {
        const ws = ctx.request.server.getWebSocket()
        if (message.type === 'chat') ws.broadcast(message.room, { type: 'chat', text: message.text })
        if (message.type === 'join_room') {
          ws.joinRoom(message.room, socket)
          socket.send(JSON.stringify({ type: 'room_joined', room: message.room }))
        }
        if (message.type === 'leave_room') {
          ws.leaveRoom(message.room, socket)
          socket.send(JSON.stringify({ type: 'room_left', room: message.room }))
        }
      }
    }
  })
  const a = await open('a', '/ws/chat')
  await a.client.waitFor(2)
  t.same(a.client.messages, [
    { type: 'user_joined', message: 'New user joined general' },
    { type: 'joined', room: 'general' }
  ])
  const b = await open('b', '/ws/chat')
  await a.client.waitFor(3)
  t.same(a.client.messages[2], { type: 'user_joined', message: 'New user joined general' }, 'a hears b join')

  b.client.send({ type: 'join_room', room: 'side' })
  await b.client.waitFor(3)
  t.same(b.client.messages[2], { type: 'room_joined', room: 'side' })
  b.client.send({ type: 'chat', room: 'side', text: 'only b' })
  a.client.send({ type: 'chat', room: 'general', text: 'to everyone' })
  await b.client.waitFor(5)
  await a.client.waitFor(4)
  t.same(sortedTexts(b.client.messages.slice(3)), ['only b', 'to everyone'])
  t.same(a.client.messages.slice(3), [{ type: 'chat', text: 'to everyone' }], 'a is not in side')

  b.client.send({ type: 'leave_room', room: 'side' })
  await b.client.waitFor(6)
  t.same(b.client.messages[5], { type: 'room_left', room: 'side' })
})

function sortedTexts (messages: Array<{ text: string }>): string[] {
  return messages.map((message) => message.text).sort()
}

t.test('getWebSocket() is one manager, in the root and in encapsulated contexts', async (t) => {
  const app = await build(t)
  let inChild: WebSocketManager | undefined
  await app.register(async (child) => {
    inChild = child.getWebSocket()
  })
  t.ok(app.getWebSocket() !== undefined)
  t.equal(app.getWebSocket(), app.getWebSocket())
  t.equal(inChild, app.getWebSocket())
})

t.test('sockets of several app.ws routes share the rooms', async (t) => {
  const { manager, open } = await rig(t, { '/ws/a': {}, '/ws/b/:id': {} })
  const a = await open('a', '/ws/a')
  const b = await open('b', '/ws/b/7')
  manager.joinRoom('shared', a.socket)
  manager.joinRoom('shared', b.socket)
  t.equal(manager.roomSize('shared'), 2)
  t.equal(manager.broadcast('shared', { to: 'both' }), 2)
  await a.client.waitFor(1)
  await b.client.waitFor(1)
  t.same([a.client.messages, b.client.messages], [[{ to: 'both' }], [{ to: 'both' }]])
})

// ------------------------------------------------------------------ room names

const BAD_ROOMS: Array<[label: string, value: unknown, named: RegExp]> = [
  ['the empty string', '', /""/],
  ['a 257-character string', 'x'.repeat(257), /xxxxxxxxxx/],
  ['a number', 42, /\b42\b/],
  ['null', null, /\bnull\b/],
  ['undefined', undefined, /\bundefined\b/]
]

t.test('every method that takes a room name throws FST_NEXUS_INVALID_ROOM, a TypeError naming the value', async (t) => {
  const { manager, open } = await rig(t)
  const a = await open('a')
  const rm = manager.roomManager
  const methods: Array<[string, (room: any) => unknown]> = [
    ['createRoom', (room) => manager.createRoom(room)],
    ['joinRoom', (room) => manager.joinRoom(room, a.socket)],
    ['leaveRoom', (room) => manager.leaveRoom(room, a.socket)],
    ['broadcast', (room) => manager.broadcast(room, 'data')],
    ['broadcast (in a list of rooms)', (room) => manager.broadcast(['fine', room], 'data')],
    ['deleteRoom', (room) => manager.deleteRoom(room)],
    ['hasRoom', (room) => manager.hasRoom(room)],
    ['roomSize', (room) => manager.roomSize(room)],
    ['socketsIn', (room) => manager.socketsIn(room)],
    ['roomManager.create', (room) => rm.create(room)],
    ['roomManager.join', (room) => rm.join(room, a.socket)],
    ['roomManager.leave', (room) => rm.leave(room, a.socket)],
    ['roomManager.broadcast', (room) => rm.broadcast(room, 'data')]
  ]
  manager.joinRoom('fine', a.socket)
  for (const [method, call] of methods) {
    for (const [label, value, named] of BAD_ROOMS) {
      const error = throwsCode(t, () => call(value), 'FST_NEXUS_INVALID_ROOM', `${method} with ${label}`)
      if (error === undefined) continue
      t.ok(error instanceof TypeError, `${method} with ${label}: a TypeError`)
      t.match(error.message, named, `${method} with ${label}: the message names the value`)
    }
  }
  t.same(manager.roomManager.list(), ['fine'], 'no bad call created or removed a room')
  t.same(manager.roomsOf(a.socket), ['fine'])
  await delay(30)
  t.same(a.client.messages, [], 'a broadcast with a bad room in its list sent nothing, not even to the good rooms')
})

t.test('room names of 1 and of 256 characters are accepted', async (t) => {
  const { manager, open } = await rig(t)
  const a = await open('a')
  const long = 'r'.repeat(256)
  manager.joinRoom('r', a.socket)
  manager.createRoom(long)
  manager.joinRoom(long, a.socket)
  t.same(sortedRooms(manager.roomsOf(a.socket)), sortedRooms(['r', long]))
  t.equal(manager.broadcast([long, 'r'], 'ok'), 1)
  await a.client.waitFor(1)
  t.same(a.client.messages, ['ok'])
  t.equal(manager.deleteRoom(long), true)
})

// ------------------------------------------------------------------ implicit vs kept rooms

t.test('implicitly joined rooms vanish when their last member leaves; created rooms stay until deleteRoom', async (t) => {
  const { manager, open } = await rig(t)
  const a = await open('a')
  const b = await open('b')

  manager.joinRoom('implicit', a.socket)
  manager.joinRoom('implicit', b.socket)
  manager.createRoom('kept')
  manager.joinRoom('kept', a.socket)
  t.same(sortedRooms(manager.roomManager.list()), ['implicit', 'kept'])
  t.equal(manager.stats().rooms, 2)

  manager.leaveRoom('implicit', a.socket)
  t.equal(manager.hasRoom('implicit'), true, 'one member left')
  manager.leaveRoom('implicit', b.socket)
  t.equal(manager.hasRoom('implicit'), false, 'the implicit room is gone with its last member')
  t.equal(manager.roomSize('implicit'), 0)

  manager.leaveRoom('kept', a.socket)
  t.equal(manager.hasRoom('kept'), true, 'the created room stays empty')
  t.equal(manager.roomSize('kept'), 0)
  t.same(manager.socketsIn('kept'), [])
  t.same(manager.roomManager.list(), ['kept'])

  t.equal(manager.deleteRoom('kept'), true)
  t.equal(manager.hasRoom('kept'), false)
  t.same(manager.roomManager.list(), [])
  t.equal(manager.stats().rooms, 0)
})

t.test('joining twice is a no-op: one membership, one delivery, one leave undoes it', async (t) => {
  const { manager, open } = await rig(t)
  const a = await open('a')
  manager.joinRoom('twice', a.socket)
  manager.joinRoom('twice', a.socket)
  manager.roomManager.join('twice', a.socket)
  t.equal(manager.roomSize('twice'), 1)
  t.same(manager.socketsIn('twice'), [a.socket])
  t.same(manager.roomsOf(a.socket), ['twice'])
  t.equal(manager.broadcast('twice', 'first'), 1)
  t.equal(manager.broadcast('twice', 'second'), 1)
  await a.client.waitFor(2)
  await delay(30)
  t.same(a.client.messages, ['first', 'second'], 'each broadcast arrived once')
  manager.leaveRoom('twice', a.socket)
  t.equal(manager.hasRoom('twice'), false)
})

t.test('leaving a room the socket is not in, or an unknown room, changes nothing', async (t) => {
  const { manager, open } = await rig(t)
  const a = await open('a')
  const b = await open('b')
  manager.joinRoom('room', a.socket)
  manager.leaveRoom('room', b.socket)
  manager.leaveRoom('unknown', a.socket)
  t.same(manager.socketsIn('room'), [a.socket])
  t.equal(manager.hasRoom('unknown'), false)
  t.same(manager.roomManager.list(), ['room'])
})

// ------------------------------------------------------------------ closed sockets

t.test('joinRoom after the socket closed is a no-op and creates no room', async (t) => {
  let joinInOnClose: (() => void) | undefined
  const closed: string[] = []
  const { manager, open } = await rig(t, {
    '/ws': {
      onClose: (socket, ctx) => {
        const ws = ctx.request.server.getWebSocket()
        joinInOnClose = () => ws.joinRoom('from-onClose', socket)
        joinInOnClose()
        ws.roomManager.join('from-onClose-helper', socket)
        closed.push(String(ctx.query.name))
      }
    }
  })
  const a = await open('a')
  manager.joinRoom('before', a.socket)
  a.client.close()
  await until(() => closed.length === 1)
  t.equal(manager.hasRoom('from-onClose'), false, 'a join inside onClose created no room')
  t.equal(manager.hasRoom('from-onClose-helper'), false)
  t.doesNotThrow(() => manager.joinRoom('later', a.socket), 'a later join does not throw')
  t.equal(manager.hasRoom('later'), false, 'nor creates the room')
  t.same(manager.roomsOf(a.socket), [])
  t.same(manager.roomManager.list(), [])
  t.equal(manager.broadcast('later', 'x'), 0)
})

t.test('joining a room that was created, after the socket closed, adds nobody', async (t) => {
  const { manager, open } = await rig(t)
  const a = await open('a')
  manager.createRoom('kept')
  a.client.close()
  await until(() => manager.connections === 0)
  manager.joinRoom('kept', a.socket)
  t.equal(manager.roomSize('kept'), 0)
  t.same(manager.socketsIn('kept'), [])
})

for (const [how, closeIt] of [
  ['the client closes', (peer: Peer) => peer.client.close(4001)],
  ['the server closes the socket', (peer: Peer) => peer.socket.close(4002, 'bye')],
  ['the server terminates the socket', (peer: Peer) => peer.socket.terminate()]
] as Array<[string, (peer: Peer) => void]>) {
  t.test(`when ${how}, it has left every room before its onClose runs`, async (t) => {
    t.plan(10)
    let onCloseDone!: () => void
    const done = new Promise<void>((resolve) => { onCloseDone = resolve })
    const { manager, open } = await rig(t, {
      '/ws': {
        onConnect: (socket, ctx) => {
          const ws = ctx.request.server.getWebSocket()
          ws.joinRoom(`own-${String(ctx.query.name)}`, socket)
          ws.joinRoom('shared', socket)
          if (ctx.query.name === 'a') ws.joinRoom('kept', socket)
        },
        onClose: (socket, ctx) => {
          if (ctx.query.name !== 'a') return
          const ws = ctx.request.server.getWebSocket()
          t.same(ws.roomsOf(socket), [], 'roomsOf is empty inside onClose')
          t.equal(ws.roomSize('shared'), 1, 'the shared room lost it')
          t.same(ws.socketsIn('shared'), [peerB.socket], 'only the other member is left')
          t.equal(ws.hasRoom('own-a'), false, 'its implicit room is gone')
          t.equal(ws.hasRoom('kept'), true, 'a created room stays')
          t.equal(ws.roomSize('kept'), 0)
          t.equal(ws.connections, 1, 'it is no longer counted')
          t.equal(ws.broadcast('shared', { type: 'user_left' }), 1, 'a broadcast from onClose reaches the others only')
          onCloseDone()
        }
      }
    })
    const a = await open('a')
    const peerB = await open('b')
    manager.createRoom('kept')
    manager.joinRoom('kept', a.socket)
    t.same(sortedRooms(manager.roomsOf(a.socket)), ['kept', 'own-a', 'shared'], 'before the close')
    closeIt(a)
    await done
    await peerB.client.waitFor(1)
    t.same(peerB.client.messages, [{ type: 'user_left' }])
  })
}

// ------------------------------------------------------------------ rooms: false, unknown sockets

t.test('a socket of a rooms: false route cannot join: FST_NEXUS_ROOMS_DISABLED', async (t) => {
  const { manager, open } = await rig(t, { '/ws': {}, '/ws/norooms': { rooms: false } })
  const plain = await open('plain', '/ws/norooms')
  const roomy = await open('roomy')
  throwsCode(t, () => manager.joinRoom('lobby', plain.socket), 'FST_NEXUS_ROOMS_DISABLED', 'joinRoom')
  throwsCode(t, () => manager.roomManager.join('lobby', plain.socket), 'FST_NEXUS_ROOMS_DISABLED', 'roomManager.join')
  manager.createRoom('kept')
  throwsCode(t, () => manager.joinRoom('kept', plain.socket), 'FST_NEXUS_ROOMS_DISABLED', 'joinRoom of a created room')
  t.equal(manager.hasRoom('lobby'), false, 'the refused join created no room')
  t.equal(manager.roomSize('kept'), 0)
  t.same(manager.roomsOf(plain.socket), [])
  t.doesNotThrow(() => manager.joinRoom('lobby', roomy.socket), 'another route still has rooms')
  t.equal(manager.broadcastAll('everyone'), 2, 'the rooms: false socket still gets broadcastAll')
  t.equal(manager.send(plain.socket, 'direct'), true)
  await plain.client.waitFor(2)
  t.same(plain.client.messages, ['everyone', 'direct'])
})

t.test('joinRoom with something that is not a socket, or not a socket of app.ws, throws FST_NEXUS_UNKNOWN_SOCKET', async (t) => {
  const { manager, open, openRaw, base } = await rig(t)
  const a = await open('a')
  const raw = await openRaw('raw')
  const notSockets: Array<[string, unknown]> = [
    ['an object', {}],
    ['null', null],
    ['undefined', undefined],
    ['a string', 'socket'],
    ['a number', 1],
    ['a context', manager.contextOf(a.socket)]
  ]
  for (const [label, value] of notSockets) {
    throwsCode(t, () => manager.joinRoom('room', value as WebSocket), 'FST_NEXUS_UNKNOWN_SOCKET', `joinRoom with ${label}`)
    throwsCode(t, () => manager.roomManager.join('room', value as WebSocket), 'FST_NEXUS_UNKNOWN_SOCKET', `roomManager.join with ${label}`)
  }
  const error = throwsCode(t, () => manager.joinRoom('room', raw.socket), 'FST_NEXUS_UNKNOWN_SOCKET', 'joinRoom with a socket of a plain @fastify/websocket route')
  t.ok(error instanceof TypeError)
  // A real ws client, in the same process: a WebSocket, but not one of app.ws.
  const outsider = await connect(`${base}/raw?name=outsider`)
  t.teardown(() => outsider.close())
  throwsCode(t, () => manager.joinRoom('room', outsider.ws), 'FST_NEXUS_UNKNOWN_SOCKET', 'joinRoom with a client-side WebSocket')
  t.equal(manager.hasRoom('room'), false, 'no refused join created the room')
  t.same(manager.roomsOf(raw.socket), [], 'roomsOf of a foreign socket is empty')
})

t.test('a socket of another app\'s app.ws route is not a socket of this manager', async (t) => {
  const { manager } = await rig(t)
  const other = await build(t)
  let foreign: WebSocket | undefined
  other.ws('/ws', { onConnect: (socket) => { foreign = socket } })
  const otherBase = await listen(other)
  const client = await connect(`${otherBase}/ws`)
  await until(() => foreign !== undefined)
  const socket = foreign as WebSocket

  throwsCode(t, () => manager.joinRoom('leak', socket), 'FST_NEXUS_UNKNOWN_SOCKET', 'joinRoom with a socket of another app')
  t.equal(manager.contextOf(socket), undefined, 'contextOf of another app\'s socket')
  t.same(manager.roomsOf(socket), [])

  // Whatever happened above, a connection of another app must not stay in this app's rooms once it closed.
  client.close()
  await until(() => other.getWebSocket().connections === 0)
  t.equal(manager.hasRoom('leak'), false, 'no room of this app keeps the closed foreign socket')
  t.equal(manager.roomSize('leak'), 0)
})

// ------------------------------------------------------------------ lookups

t.test('deleteRoom removes the room and its members from it, without closing them', async (t) => {
  const { manager, open } = await rig(t)
  const a = await open('a')
  const b = await open('b')
  manager.createRoom('kept')
  manager.joinRoom('kept', a.socket)
  manager.joinRoom('implicit', a.socket)
  manager.joinRoom('implicit', b.socket)
  manager.joinRoom('other', b.socket)

  t.equal(manager.deleteRoom('implicit'), true)
  t.equal(manager.hasRoom('implicit'), false)
  t.equal(manager.roomSize('implicit'), 0)
  t.same(manager.socketsIn('implicit'), [])
  t.same(manager.roomsOf(a.socket), ['kept'])
  t.same(manager.roomsOf(b.socket), ['other'])
  t.equal(manager.broadcast('implicit', 'x'), 0)

  t.equal(manager.deleteRoom('kept'), true)
  t.equal(manager.deleteRoom('kept'), false, 'a second delete says it did not exist')
  t.equal(manager.deleteRoom('never'), false)
  t.same(manager.roomsOf(a.socket), [])
  t.same(manager.roomManager.list(), ['other'])

  t.equal(a.client.ws.readyState, WebSocket.OPEN, 'members stay connected')
  t.equal(manager.send(a.socket, 'still here'), true)
  await a.client.waitFor(1)
  t.same(a.client.messages, ['still here'])

  manager.joinRoom('kept', a.socket)
  manager.leaveRoom('kept', a.socket)
  t.equal(manager.hasRoom('kept'), false, 'a deleted room joined again is implicit')
})

t.test('hasRoom, roomSize, socketsIn and roomsOf follow every change', async (t) => {
  const { manager, open } = await rig(t)
  const a = await open('a')
  const b = await open('b')
  const c = await open('c')
  t.equal(manager.hasRoom('r1'), false)
  t.equal(manager.roomSize('r1'), 0)
  t.same(manager.socketsIn('r1'), [])
  t.same(manager.roomsOf(a.socket), [])

  manager.joinRoom('r1', a.socket)
  manager.joinRoom('r1', b.socket)
  manager.joinRoom('r2', b.socket)
  manager.joinRoom('r3', b.socket)
  t.equal(manager.hasRoom('r1'), true)
  t.equal(manager.roomSize('r1'), 2)
  t.equal(manager.roomSize('r2'), 1)
  const inR1 = manager.socketsIn('r1')
  t.equal(inR1.length, 2)
  t.ok(inR1.includes(a.socket) && inR1.includes(b.socket), 'socketsIn gives the server-side sockets themselves')
  t.same(sortedRooms(manager.roomsOf(b.socket)), ['r1', 'r2', 'r3'])
  t.same(manager.roomsOf(c.socket), [])

  inR1.length = 0
  t.equal(manager.socketsIn('r1').length, 2, 'socketsIn returns a copy')
  const roomsOfB = manager.roomsOf(b.socket)
  roomsOfB.length = 0
  t.equal(manager.roomsOf(b.socket).length, 3, 'roomsOf returns a copy')

  manager.leaveRoom('r1', b.socket)
  t.same(manager.socketsIn('r1'), [a.socket])
  t.same(sortedRooms(manager.roomsOf(b.socket)), ['r2', 'r3'])
  t.equal(manager.roomSize('r1'), 1)
})

t.test('contextOf returns the connection context, and undefined for a foreign socket', async (t) => {
  const app = await build(t)
  const contexts = new Map<string, unknown>()
  const sockets = new Map<string, WebSocket>()
  app.ws<{ user: { name: string }, metadata: { tag?: string } }>('/ws/:room', {
    auth: async (ctx) => ({ name: String(ctx.query.name) }),
    onConnect: (socket, ctx) => {
      ctx.metadata.tag = `tag-${ctx.user.name}`
      contexts.set(ctx.user.name, ctx)
      sockets.set(ctx.user.name, socket)
    }
  })
  let raw: WebSocket | undefined
  app.get('/raw', { websocket: true }, (socket) => { raw = socket })
  const base = await listen(app)
  const clients = [await connect(`${base}/ws/lobby?name=ann`), await connect(`${base}/ws/lobby?name=bob`)]
  t.teardown(() => { for (const client of clients) client.close() })
  const rawClient = await connect(`${base}/raw`)
  t.teardown(() => rawClient.close())
  await until(() => sockets.size === 2 && raw !== undefined)
  const manager = app.getWebSocket()

  const ann = manager.contextOf<{ user: { name: string }, metadata: { tag?: string } }>(sockets.get('ann') as WebSocket)
  const bob = manager.contextOf(sockets.get('bob') as WebSocket)
  if (ann === undefined || bob === undefined) {
    t.fail('contextOf found no context')
    return
  }
  t.equal(ann, contexts.get('ann'), 'the very context the handlers were given')
  t.type(ann.id, 'string')
  t.ok(ann.id.length > 0)
  t.not(ann.id, bob.id, 'ids are unique per connection')
  t.same(ann.user, { name: 'ann' })
  t.same(ann.metadata, { tag: 'tag-ann' })
  t.equal(ann.path, '/ws/lobby')
  t.same(ann.params, { room: 'lobby' })
  t.equal(ann.query.name, 'ann')
  t.same(bob.user, { name: 'bob' })

  t.equal(manager.contextOf(raw as WebSocket), undefined, 'a socket of a plain @fastify/websocket route has no context')
  t.equal(manager.contextOf(rawClient.ws), undefined, 'a client-side socket has no context')
})

t.test('connections counts the open sockets of app.ws routes only', async (t) => {
  const { manager, open, openRaw } = await rig(t, { '/ws': {}, '/ws/other': {} })
  t.equal(manager.connections, 0)
  const a = await open('a')
  const b = await open('b', '/ws/other')
  t.equal(manager.connections, 2)
  const raw = await openRaw('raw')
  t.equal(manager.connections, 2, 'a plain @fastify/websocket socket is not counted')
  t.equal(manager.stats().connections, 2)
  a.client.close()
  await until(() => manager.connections === 1)
  t.equal(manager.connections, 1)
  b.socket.terminate()
  await until(() => manager.connections === 0)
  t.equal(manager.stats().connections, 0)
  raw.client.close()
})

t.test('stats() counts connections, rooms, messages, broadcasts, invalid messages and errors', async (t) => {
  const errors: Error[] = []
  const handled: unknown[] = []
  const { manager, open } = await rig(t, {
    '/ws': {
      onConnect: (socket, ctx) => { ctx.request.server.getWebSocket().joinRoom('room', socket) },
      onMessage: (_socket, message) => {
        if (message.type === 'boom') throw new Error('boom')
        handled.push(message)
      },
      onError: (_socket, error) => { errors.push(error) }
    }
  })
  // Every field, written out: stats() has exactly these.
  const zero = {
    connections: 0,
    rooms: 0,
    messagesReceived: 0,
    messagesSent: 0,
    broadcasts: 0,
    invalidMessages: 0,
    errors: 0,
    slowConsumers: 0,
    heartbeatTimeouts: 0,
    rateLimited: 0,
    historyAppended: 0,
    historyFailures: 0,
    resumeRecovered: 0,
    resumeFailed: 0,
    historyReplayed: 0,
    historyGapsFilled: 0,
    presenceUpdates: 0,
    presenceFailures: 0,
    presenceFrames: 0
  }
  t.same(manager.stats(), zero, 'all zero at first')

  const a = await open('a')
  const b = await open('b')
  manager.createRoom('kept')

  a.client.send({ type: 'hi' })
  a.client.send('not json')
  a.client.send({ type: 'boom' })
  b.client.send({ type: 'hello' })
  await a.client.waitFor(1)
  await until(() => errors.length === 1 && handled.length === 2)
  t.equal(a.client.messages[0].code, 'INVALID_JSON')

  t.equal(manager.broadcast('room', { n: 1 }), 2)
  t.equal(manager.broadcast('nobody-here', { n: 2 }), 0)
  t.equal(manager.broadcastAll({ n: 3 }, { except: a.socket }), 1)
  t.equal(manager.roomManager.broadcast('room', { n: 4 }), 2)
  t.equal(manager.send(a.socket, { n: 5 }), true)

  t.same(manager.stats(), { ...zero, connections: 2, rooms: 2, messagesReceived: 4, messagesSent: 6, broadcasts: 4, invalidMessages: 1, errors: 1 })

  const snapshot = manager.stats()
  snapshot.broadcasts = 1000
  t.equal(manager.stats().broadcasts, 4, 'stats() returns a snapshot')

  b.client.close()
  await until(() => manager.connections === 1)
  t.equal(manager.stats().connections, 1)
  t.equal(manager.stats().rooms, 2, 'the room keeps its other member')
  a.client.close()
  await until(() => manager.connections === 0)
  t.equal(manager.stats().rooms, 1, 'the implicit room went with its last member')
  t.equal(manager.stats().messagesSent, 6, 'counters are totals, they do not drop with connections')
})
