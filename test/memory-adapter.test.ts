import t from 'tap'
import type { WebSocket } from 'ws'
import { MemoryAdapter } from '../lib/adapters/memory'
import type { AdapterMember, EncodedMessage } from '../types/index'
import { adapterContract, TestMember, text } from './helpers/adapter-contract'
import { build, connect, listen, until } from './helpers/server'

void adapterContract(t, 'MemoryAdapter', () => new MemoryAdapter())

t.test('the package exports the MemoryAdapter class', async (t) => {
  // lib/index.ts assigns module.exports: read it the way CommonJS users do.
  const plugin = require('../lib/index')
  t.equal(plugin.MemoryAdapter, MemoryAdapter)
  t.type(new plugin.MemoryAdapter(), MemoryAdapter)
})

t.test('MemoryAdapter hands every member the same EncodedMessage object: nothing is encoded again', async (t) => {
  const adapter = new MemoryAdapter()
  const members = new Set<TestMember>()
  adapter.init({ log: undefined as never, members: () => members })
  const a = new TestMember('a')
  const b = new TestMember('b')
  const c = new TestMember('c')
  members.add(a).add(b).add(c)
  adapter.join('r1', a)
  adapter.join('r1', b)
  adapter.join('r2', c)
  const one: EncodedMessage = text('one')
  const several: EncodedMessage = text('several')
  const all: EncodedMessage = text('all')
  adapter.broadcast(one, { rooms: ['r1'], except: null })
  adapter.broadcast(several, { rooms: ['r1', 'r2'], except: null })
  adapter.broadcast(all, { rooms: null, except: null })
  for (const member of [a, b]) {
    t.equal(member.received[0], one)
    t.equal(member.received[1], several)
    t.equal(member.received[2], all)
  }
  t.equal(c.received[0], several)
  t.equal(c.received[1], all)
})

t.test('MemoryAdapter.roomsOf and membersOf reflect later changes without a stale copy', async (t) => {
  const adapter = new MemoryAdapter()
  const a = new TestMember('a')
  adapter.join('x', a)
  t.same([...adapter.roomsOf(a)], ['x'])
  adapter.join('y', a)
  t.same([...adapter.roomsOf(a)].sort(), ['x', 'y'])
  adapter.leave('x', a)
  t.same([...adapter.roomsOf(a)], ['y'])
  t.same([...adapter.membersOf('x')], [])
})

t.test('the plugin uses the MemoryAdapter it is given for every room operation of the manager', async (t) => {
  const adapter = new MemoryAdapter()
  const app = await build(t, { adapter })
  const sockets: WebSocket[] = []
  app.ws('/ws', {
    onConnect: (socket) => { sockets.push(socket) }
  })
  const base = await listen(app)
  const client = await connect(`${base}/ws`)
  await until(() => sockets.length === 1)
  const manager = app.getWebSocket()

  manager.createRoom('kept')
  manager.joinRoom('chat', sockets[0])
  t.same(adapter.rooms().sort(), ['chat', 'kept'], 'rooms made through the manager are in the given adapter')
  t.equal(adapter.roomSize('chat'), 1)
  const [member] = [...adapter.membersOf('chat')] as AdapterMember[]
  t.equal(member.socket, sockets[0], 'the member the adapter holds carries the server socket')
  t.type(member.id, 'string')
  t.equal(member.id, manager.contextOf(sockets[0])?.id, 'the member id is the connection id')

  // A room created directly in the adapter is seen by the manager.
  adapter.join('direct', member)
  t.equal(manager.hasRoom('direct'), true)
  t.same(manager.roomsOf(sockets[0]).sort(), ['chat', 'direct'])
  t.equal(manager.broadcast('direct', { via: 'adapter room' }), 1)
  await client.waitFor(1)
  t.same(client.messages, [{ via: 'adapter room' }])

  // Members of the adapter's host are the live connections: rooms: null reaches them.
  t.equal(adapter.broadcast(text('"from the adapter"'), { rooms: null, except: null }), 1)
  await client.waitFor(2)
  t.equal(client.messages[1], 'from the adapter')

  client.close()
  await until(() => manager.connections === 0)
  t.same(adapter.rooms(), ['kept'], 'a closed connection left the adapter rooms it was in')
  t.equal(adapter.broadcast(text('x'), { rooms: null, except: null }), 0, 'a closed connection is no longer a member of the host')
})

t.test('a MemoryAdapter subclass sees the manager call it (adapters extend it)', async (t) => {
  const calls: string[] = []
  class Recording extends MemoryAdapter {
    override join (room: string, member: AdapterMember): void {
      calls.push(`join ${room}`)
      super.join(room, member)
    }

    override leaveAll (member: AdapterMember): void {
      calls.push('leaveAll')
      super.leaveAll(member)
    }

    override broadcast (message: EncodedMessage, target: { rooms: readonly string[] | null, except: ReadonlySet<AdapterMember> | null }): number {
      calls.push(`broadcast ${target.rooms === null ? 'null' : target.rooms.join(',')} ${message.data.toString()}`)
      return super.broadcast(message, target)
    }

    override close (): void {
      calls.push('close')
      super.close()
    }
  }
  const adapter = new Recording()
  const app = await build(t, { adapter })
  const sockets: WebSocket[] = []
  app.ws('/ws', { onConnect: (socket) => { sockets.push(socket) } })
  const base = await listen(app)
  const client = await connect(`${base}/ws`)
  await until(() => sockets.length === 1)
  const manager = app.getWebSocket()
  manager.joinRoom('a', sockets[0])
  manager.broadcast('a', { n: 1 })
  manager.broadcast(['a', 'b'], 'text')
  manager.broadcastAll([1])
  await client.waitFor(3)
  client.close()
  await until(() => manager.connections === 0)
  await app.close()
  t.same(calls, [
    'join a',
    'broadcast a {"n":1}',
    'broadcast a,b text',
    'broadcast null [1]',
    'leaveAll',
    'close'
  ])
})
