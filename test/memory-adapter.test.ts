import t, { type Test } from 'tap'
import type { WebSocket } from 'ws'
import { MemoryAdapter } from '../lib/adapters/memory'
import { Hub } from '../lib/hub'
import type { AdapterHost, EncodedMessage, PublishTarget } from '../types/index'
import { adapterContract, LocalRooms, silentLogger, TestMember, text } from './helpers/adapter-contract'
import { build, connect, listen } from './helpers/server'
import { until } from './helpers/wait'

void adapterContract(t, 'MemoryAdapter', () => new MemoryAdapter())

t.test('the package exports the MemoryAdapter class', async (t) => {
  // lib/index.ts assigns module.exports: read it the way CommonJS users do.
  const plugin = require('../lib/index')
  t.equal(plugin.MemoryAdapter, MemoryAdapter)
  t.type(new plugin.MemoryAdapter(), MemoryAdapter)
})

/** One instance's rooms over a MemoryAdapter, as the manager drives them. */
async function localRooms (members: Set<TestMember>): Promise<LocalRooms> {
  const hub = new Hub<TestMember>(new MemoryAdapter(), members)
  await hub.init(silentLogger())
  return new LocalRooms(hub)
}

t.test('every member gets the same encoded message object: nothing is encoded again', async (t) => {
  const members = new Set<TestMember>()
  const local = await localRooms(members)
  const a = new TestMember('a')
  const b = new TestMember('b')
  const c = new TestMember('c')
  members.add(a).add(b).add(c)
  local.join('r1', a)
  local.join('r1', b)
  local.join('r2', c)
  const one = text('one')
  const several = text('several')
  const all = text('all')
  local.hub.broadcast(one, { rooms: ['r1'], exceptIds: null }, null)
  local.hub.broadcast(several, { rooms: ['r1', 'r2'], exceptIds: null }, null)
  local.hub.broadcast(all, { rooms: null, exceptIds: null }, null)
  for (const member of [a, b]) {
    t.equal(member.received[0], one)
    t.equal(member.received[1], several)
    t.equal(member.received[2], all)
  }
  t.equal(c.received[0], several)
  t.equal(c.received[1], all)
})

t.test('roomsOf and membersOf reflect later changes without a stale copy', async (t) => {
  const local = await localRooms(new Set())
  const a = new TestMember('a')
  local.join('x', a)
  t.same([...local.roomsOf(a)], ['x'])
  local.join('y', a)
  t.same([...local.roomsOf(a)].sort(), ['x', 'y'])
  local.leave('x', a)
  t.same([...local.roomsOf(a)], ['y'])
  t.same([...local.membersOf('x')], [])
})

/** A MemoryAdapter that records what the plugin tells it, and keeps the host it was given. */
class Recording extends MemoryAdapter {
  readonly calls: string[] = []
  host: AdapterHost | undefined

  override init (host: AdapterHost): void {
    this.calls.push('init')
    this.host = host
  }

  override roomActive (room: string): void {
    this.calls.push(`active ${room}`)
  }

  override roomIdle (room: string): void {
    this.calls.push(`idle ${room}`)
  }

  override publish (message: EncodedMessage, target: PublishTarget): void {
    const except = target.exceptIds === null ? '' : ` except ${[...target.exceptIds].join(',')}`
    this.calls.push(`publish ${target.rooms === null ? 'null' : target.rooms.join(',')} ${message.data.toString()}${except}`)
  }

  override close (): void {
    this.calls.push('close')
  }
}

/** An app on a Recording adapter, with two clients connected. */
async function twoClients (t: Test) {
  const adapter = new Recording()
  const app = await build(t, { adapter })
  const sockets: WebSocket[] = []
  app.ws('/ws', { onConnect: (socket) => { sockets.push(socket) } })
  const base = await listen(app)
  const clients = await Promise.all([connect(`${base}/ws`), connect(`${base}/ws`)])
  await until(() => sockets.length === 2)
  return { adapter, app, sockets, clients, manager: app.getWebSocket() }
}

t.test('the adapter is told when a room gains its first local member and loses its last, and sees every broadcast once', async (t) => {
  const { adapter, app, sockets, clients, manager } = await twoClients(t)
  manager.createRoom('kept')
  manager.joinRoom('a', sockets[0])
  manager.joinRoom('a', sockets[1])
  manager.joinRoom('kept', sockets[0])
  manager.broadcast('a', { n: 1 })
  manager.broadcast(['a', 'b'], 'text', { except: String(manager.contextOf(sockets[1])?.id) })
  manager.broadcastAll([1])
  manager.leaveRoom('a', sockets[1])
  await Promise.all(clients.map((client, i) => client.waitFor(i === 0 ? 3 : 2)))
  for (const client of clients) client.close()
  await until(() => manager.connections === 0)
  const id = manager.contextOf(sockets[1])?.id
  await app.close()
  t.equal(adapter.calls[0], 'init')
  t.same(adapter.calls.slice(1, 6), ['active a', 'active kept', 'publish a {"n":1}', `publish a,b text except ${String(id)}`, 'publish null [1]'])
  t.same(adapter.calls.slice(6, 8).sort(), ['idle a', 'idle kept'], 'both rooms went idle as the first socket closed')
  t.equal(adapter.calls[8], 'close')
  t.equal(adapter.calls.length, 9)
})

t.test('the host an adapter is given: what other instances publish reaches the local members, and the local view', async (t) => {
  const { adapter, sockets, clients, manager } = await twoClients(t)
  const host = adapter.host as AdapterHost
  manager.createRoom('kept')
  manager.joinRoom('chat', sockets[0])
  t.same(host.rooms().sort(), ['chat', 'kept'], 'rooms made through the manager are the host\'s')
  t.equal(host.roomSize('chat'), 1)
  t.equal(host.connections(), 2)

  // A message of another instance, as a custom adapter would hand it on: a plain object.
  t.equal(host.deliver({ data: Buffer.from('"to the room"'), binary: false }, { rooms: ['chat'], exceptIds: null }), 1)
  t.equal(host.deliver({ data: Buffer.from('"to everyone"'), binary: false }, { rooms: null, exceptIds: new Set([String(manager.contextOf(sockets[1])?.id)]) }), 1)
  t.equal(host.deliver({ data: Buffer.from([1, 2]), binary: true }, { rooms: null, exceptIds: null }), 2)
  await clients[0].waitFor(3)
  await clients[1].waitFor(1)
  t.same(clients[0].messages.slice(0, 2), ['to the room', 'to everyone'])
  t.same([...clients[1].messages[0]], [1, 2])
  t.equal(adapter.calls.filter((call) => call.startsWith('publish')).length, 0, 'what the host delivers is not published again')

  for (const client of clients) client.close()
  await until(() => manager.connections === 0)
  t.same(host.rooms(), ['kept'], 'a closed connection left the rooms it was in')
  t.equal(host.deliver({ data: Buffer.from('x'), binary: false }, { rooms: null, exceptIds: null }), 0, 'closed connections are no longer local members')
})
