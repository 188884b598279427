// The behaviour every Adapter must show (types/index.d.ts, `Adapter`), run
// against real adapter instances: test/memory-adapter.test.ts runs it on
// MemoryAdapter, test/redis-adapter.test.ts on RedisAdapter.
// Only the Adapter interface is used here, nothing of one implementation.
//
// Everything an adapter does for its local members is synchronous, also for an
// adapter that reaches other instances; what it sends to them (and gets back
// from its transport) arrives later. `settle` waits for that, so that the
// suite also sees an adapter that echoes its own broadcasts to its members.
import 'tap'
import type { FastifyBaseLogger } from 'fastify'
import type { WebSocket } from 'ws'
import type { Adapter, AdapterHost, AdapterMember, EncodedMessage } from '../../types/index'

/** A socket as an adapter sees it: the adapter only keeps it and hands it back. */
interface LooseSocket {
  readyState: number
  label: string
}

/**
 * A small real member: it records every message delivered to it and says
 * whether it wrote it, as `Connection.deliver` does for an OPEN socket.
 */
export class TestMember implements AdapterMember {
  readonly id: string
  readonly socket: WebSocket
  readonly received: EncodedMessage[] = []
  /** calls of deliver(), written or not */
  calls = 0
  open: boolean

  constructor (id: string, open = true) {
    this.id = id
    this.open = open
    const socket: LooseSocket = { readyState: open ? 1 : 3, label: id }
    this.socket = socket as unknown as WebSocket
  }

  deliver (message: EncodedMessage): boolean {
    this.calls++
    if (!this.open) return false
    this.received.push(message)
    return true
  }

  /** What it received, as text. */
  texts (): string[] {
    return this.received.map((message) => message.data.toString())
  }
}

function noop (): void {}

/** A silent logger: adapters may log, the contract does not look at it. */
function silentLogger (): FastifyBaseLogger {
  const log: Record<string, unknown> = { level: 'silent' }
  for (const level of ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']) log[level] = noop
  log.child = () => log
  return log as unknown as FastifyBaseLogger
}

/** A message as the manager encodes it. */
export function text (value: string): EncodedMessage {
  return { data: Buffer.from(value), binary: false }
}

export interface ContractOptions {
  /**
   * Resolves once whatever the adapter sent through its transport so far has
   * come back to it and been handled. The memory adapter has no transport.
   */
  settle?: (adapter: Adapter) => Promise<void>
}

interface Fixture {
  adapter: Adapter
  /** waits for the adapter's transport (see ContractOptions.settle) */
  settle (): Promise<void>
  /** every local member, what host.members() yields */
  members: Set<TestMember>
  /** a new member, registered with the host as a live connection */
  member (id: string, open?: boolean): TestMember
}

const sorted = (values: Iterable<string>): string[] => [...values].sort()
const ids = (members: Iterable<AdapterMember>): string[] => [...members].map((member) => member.id).sort()

/**
 * Runs the adapter contract as a subtest of `t` named `name`. `makeAdapter`
 * is called once per test; each adapter is initialised with a host whose
 * members are the test's members, and closed when its test ends.
 */
export function adapterContract (t: tap.Test, name: string, makeAdapter: () => Adapter, options: ContractOptions = {}): Promise<unknown> {
  let unique = 0
  /** room names unique to each test, so that an adapter sharing state between instances cannot leak rooms from test to test */
  const roomName = (base: string): string => `${base}-${process.pid}-${++unique}-${Date.now().toString(36)}`

  async function setup (t: tap.Test): Promise<Fixture> {
    const adapter = makeAdapter()
    const members = new Set<TestMember>()
    const host: AdapterHost = {
      log: silentLogger(),
      members: () => members
    }
    await adapter.init(host)
    t.teardown(() => adapter.close())
    return {
      adapter,
      members,
      settle: async () => { await options.settle?.(adapter) },
      member (id, open = true) {
        const member = new TestMember(id, open)
        members.add(member)
        return member
      }
    }
  }

  return t.test(`adapter contract: ${name}`, async (t) => {
    t.test('a new adapter has no rooms and answers queries about unknown rooms and members', async (t) => {
      const { adapter, member } = await setup(t)
      const room = roomName('nowhere')
      const a = member('a')
      t.same(adapter.rooms(), [])
      t.equal(adapter.hasRoom(room), false)
      t.equal(adapter.roomSize(room), 0)
      t.same([...adapter.membersOf(room)], [])
      t.same([...adapter.roomsOf(a)], [])
      t.equal(adapter.deleteRoom(room), false, 'deleting an unknown room says it did not exist')
      t.same(adapter.rooms(), [], 'deleteRoom of an unknown room creates nothing')
    })

    t.test('join creates the room implicitly and keeps both views in step', async (t) => {
      const { adapter, member } = await setup(t)
      const room = roomName('lobby')
      const a = member('a')
      const b = member('b')
      adapter.join(room, a)
      t.equal(adapter.hasRoom(room), true)
      t.equal(adapter.roomSize(room), 1)
      t.same(adapter.rooms(), [room])
      adapter.join(room, b)
      t.equal(adapter.roomSize(room), 2)
      t.same(ids(adapter.membersOf(room)), ['a', 'b'])
      t.same([...adapter.roomsOf(a)], [room])
      t.same([...adapter.roomsOf(b)], [room])
      const members = [...adapter.membersOf(room)]
      t.ok(members.includes(a) && members.includes(b), 'membersOf yields the very member objects that joined')
    })

    t.test('joining twice is a no-op', async (t) => {
      const { adapter, member } = await setup(t)
      const room = roomName('twice')
      const a = member('a')
      adapter.join(room, a)
      adapter.join(room, a)
      t.equal(adapter.roomSize(room), 1)
      t.same(ids(adapter.membersOf(room)), ['a'])
      t.same([...adapter.roomsOf(a)], [room])
      t.equal(adapter.broadcast(text('once'), { rooms: [room], except: null }), 1)
      t.same(a.texts(), ['once'])
      adapter.leave(room, a)
      t.equal(adapter.hasRoom(room), false, 'one leave undoes a double join')
    })

    t.test('an implicit room vanishes when its last member leaves', async (t) => {
      const { adapter, member } = await setup(t)
      const room = roomName('implicit')
      const a = member('a')
      const b = member('b')
      adapter.join(room, a)
      adapter.join(room, b)
      adapter.leave(room, a)
      t.equal(adapter.hasRoom(room), true, 'still there with one member')
      t.equal(adapter.roomSize(room), 1)
      t.same(ids(adapter.membersOf(room)), ['b'])
      t.same([...adapter.roomsOf(a)], [])
      adapter.leave(room, b)
      t.equal(adapter.hasRoom(room), false)
      t.equal(adapter.roomSize(room), 0)
      t.same(adapter.rooms(), [])
      t.same([...adapter.roomsOf(b)], [])
    })

    t.test('a created room stays, empty, until deleteRoom', async (t) => {
      const { adapter, member } = await setup(t)
      const room = roomName('kept')
      const a = member('a')
      adapter.createRoom(room)
      t.equal(adapter.hasRoom(room), true)
      t.equal(adapter.roomSize(room), 0)
      t.same(adapter.rooms(), [room])
      t.same([...adapter.membersOf(room)], [])
      adapter.join(room, a)
      adapter.leave(room, a)
      t.equal(adapter.hasRoom(room), true, 'still there after its last member left')
      adapter.join(room, a)
      adapter.leaveAll(a)
      t.equal(adapter.hasRoom(room), true, 'still there after its last member left all rooms')
      t.equal(adapter.roomSize(room), 0)
      t.equal(adapter.deleteRoom(room), true)
      t.equal(adapter.hasRoom(room), false)
      t.same(adapter.rooms(), [])
      t.equal(adapter.deleteRoom(room), false, 'a second delete finds nothing')
    })

    t.test('createRoom is idempotent and keeps the members of an existing room', async (t) => {
      const { adapter, member } = await setup(t)
      const room = roomName('again')
      const a = member('a')
      adapter.createRoom(room)
      adapter.createRoom(room)
      t.same(adapter.rooms(), [room])
      adapter.join(room, a)
      adapter.createRoom(room)
      t.equal(adapter.roomSize(room), 1, 'createRoom on a room with members does not empty it')
      t.same(ids(adapter.membersOf(room)), ['a'])
    })

    t.test('createRoom on an implicitly joined room makes it kept', async (t) => {
      const { adapter, member } = await setup(t)
      const room = roomName('promoted')
      const a = member('a')
      adapter.join(room, a)
      adapter.createRoom(room)
      adapter.leave(room, a)
      t.equal(adapter.hasRoom(room), true)
      t.equal(adapter.roomSize(room), 0)
    })

    t.test('a deleted room that is joined again is implicit again', async (t) => {
      const { adapter, member } = await setup(t)
      const room = roomName('reborn')
      const a = member('a')
      adapter.createRoom(room)
      t.equal(adapter.deleteRoom(room), true)
      adapter.join(room, a)
      t.equal(adapter.hasRoom(room), true)
      adapter.leave(room, a)
      t.equal(adapter.hasRoom(room), false, 'deleteRoom forgot that the room was kept')
    })

    t.test('deleteRoom removes every member from the room and only from it', async (t) => {
      const { adapter, member } = await setup(t)
      const room = roomName('doomed')
      const other = roomName('other')
      const a = member('a')
      const b = member('b')
      adapter.join(room, a)
      adapter.join(room, b)
      adapter.join(other, a)
      t.equal(adapter.deleteRoom(room), true, 'an implicit room can be deleted too')
      t.equal(adapter.hasRoom(room), false)
      t.equal(adapter.roomSize(room), 0)
      t.same([...adapter.membersOf(room)], [])
      t.same([...adapter.roomsOf(a)], [other])
      t.same([...adapter.roomsOf(b)], [])
      t.same(adapter.rooms(), [other])
      t.equal(adapter.broadcast(text('gone'), { rooms: [room], except: null }), 0)
      t.equal(a.calls + b.calls, 0, 'nobody is delivered a broadcast to a deleted room')
      adapter.leave(room, a)
      t.equal(adapter.hasRoom(room), false, 'leaving a deleted room does not bring it back')
    })

    t.test('leave of a room the member is not in, or of an unknown room, changes nothing', async (t) => {
      const { adapter, member } = await setup(t)
      const room = roomName('here')
      const unknown = roomName('unknown')
      const kept = roomName('kept')
      const a = member('a')
      const b = member('b')
      adapter.join(room, a)
      adapter.createRoom(kept)
      adapter.leave(room, b)
      adapter.leave(unknown, a)
      adapter.leave(kept, a)
      t.equal(adapter.roomSize(room), 1)
      t.same(ids(adapter.membersOf(room)), ['a'])
      t.same([...adapter.roomsOf(a)], [room])
      t.same([...adapter.roomsOf(b)], [])
      t.equal(adapter.hasRoom(unknown), false, 'leave does not create a room')
      t.same(sorted(adapter.rooms()), sorted([room, kept]))
    })

    t.test('leaveAll removes the member from every room, dropping implicit rooms it emptied', async (t) => {
      const { adapter, member } = await setup(t)
      const solo = roomName('solo')
      const shared = roomName('shared')
      const kept = roomName('kept')
      const a = member('a')
      const b = member('b')
      adapter.createRoom(kept)
      adapter.join(solo, a)
      adapter.join(shared, a)
      adapter.join(shared, b)
      adapter.join(kept, a)
      t.same(sorted(adapter.roomsOf(a)), sorted([solo, shared, kept]))
      adapter.leaveAll(a)
      t.same([...adapter.roomsOf(a)], [])
      t.equal(adapter.hasRoom(solo), false, 'the implicit room it emptied is gone')
      t.equal(adapter.hasRoom(shared), true, 'a room with other members stays')
      t.same(ids(adapter.membersOf(shared)), ['b'])
      t.equal(adapter.hasRoom(kept), true, 'a created room stays')
      t.equal(adapter.roomSize(kept), 0)
      t.same(sorted(adapter.rooms()), sorted([shared, kept]))
      t.same([...adapter.roomsOf(b)], [shared], 'the other member is untouched')
      adapter.leaveAll(a)
      adapter.leaveAll(member('c'))
      t.same(sorted(adapter.rooms()), sorted([shared, kept]), 'leaveAll of a member in no room is a no-op')
    })

    t.test('roomsOf, membersOf and rooms list every room and member', async (t) => {
      const { adapter, member } = await setup(t)
      const names = [roomName('r1'), roomName('r2'), roomName('r3')]
      const a = member('a')
      const b = member('b')
      const c = member('c')
      adapter.join(names[0], a)
      adapter.join(names[1], a)
      adapter.join(names[1], b)
      adapter.join(names[2], c)
      t.same(sorted(adapter.rooms()), sorted(names))
      t.same(sorted(adapter.roomsOf(a)), sorted([names[0], names[1]]))
      t.same([...adapter.roomsOf(b)], [names[1]])
      t.same([...adapter.roomsOf(c)], [names[2]])
      t.same(ids(adapter.membersOf(names[1])), ['a', 'b'])
      t.same([adapter.roomSize(names[0]), adapter.roomSize(names[1]), adapter.roomSize(names[2])], [1, 2, 1])
      const listed = adapter.rooms()
      listed.length = 0
      t.equal(adapter.rooms().length, 3, 'rooms() returns a copy, not the adapter state')
    })

    t.test('broadcast to one room reaches its members only, and counts them', async (t) => {
      const { adapter, member } = await setup(t)
      const room = roomName('news')
      const other = roomName('sports')
      const a = member('a')
      const b = member('b')
      const c = member('c')
      const loner = member('loner')
      adapter.join(room, a)
      adapter.join(room, b)
      adapter.join(other, c)
      const message = text('{"headline":1}')
      t.equal(adapter.broadcast(message, { rooms: [room], except: null }), 2)
      t.same(a.texts(), ['{"headline":1}'])
      t.same(b.texts(), ['{"headline":1}'])
      t.equal(a.received[0].binary, false)
      t.equal(c.calls, 0, 'a member of another room is not delivered')
      t.equal(loner.calls, 0, 'a member of no room is not delivered')
    })

    t.test('broadcast hands the encoded message on as it is, binary flag included', async (t) => {
      const { adapter, member } = await setup(t)
      const room = roomName('bin')
      const a = member('a')
      adapter.join(room, a)
      const bytes = Buffer.from([0, 1, 2, 255])
      t.equal(adapter.broadcast({ data: bytes, binary: true }, { rooms: [room], except: null }), 1)
      t.equal(a.received.length, 1)
      t.equal(a.received[0].binary, true)
      t.same([...a.received[0].data], [0, 1, 2, 255])
    })

    t.test('broadcast to an unknown room, or to no room at all, delivers nothing', async (t) => {
      const { adapter, member } = await setup(t)
      const a = member('a')
      adapter.join(roomName('elsewhere'), a)
      t.equal(adapter.broadcast(text('x'), { rooms: [roomName('unknown')], except: null }), 0)
      t.equal(adapter.broadcast(text('x'), { rooms: [], except: null }), 0)
      t.equal(a.calls, 0)
      t.equal(adapter.hasRoom(roomName('unknown')), false)
    })

    t.test('broadcast to several rooms reaches each member once', async (t) => {
      const { adapter, member } = await setup(t)
      const [r1, r2, r3] = [roomName('r1'), roomName('r2'), roomName('r3')]
      const a = member('a')
      const b = member('b')
      const c = member('c')
      const d = member('d')
      adapter.join(r1, a)
      adapter.join(r2, a)
      adapter.join(r3, a)
      adapter.join(r1, b)
      adapter.join(r2, c)
      adapter.join(roomName('r4'), d)
      t.equal(adapter.broadcast(text('multi'), { rooms: [r1, r2, r3], except: null }), 3)
      t.same(a.texts(), ['multi'], 'the member of three rooms gets it once')
      t.equal(a.calls, 1, 'and is delivered once')
      t.same(b.texts(), ['multi'])
      t.same(c.texts(), ['multi'])
      t.equal(d.calls, 0)
      t.equal(adapter.broadcast(text('dup'), { rooms: [r1, r1, r2], except: null }), 3, 'a room named twice counts once')
      t.equal(a.calls, 2)
      t.equal(adapter.broadcast(text('some'), { rooms: [roomName('unknown'), r3], except: null }), 1, 'unknown rooms among them add nobody')
    })

    t.test('broadcast with rooms: null reaches every member of the host, in rooms or not', async (t) => {
      const { adapter, member } = await setup(t)
      const room = roomName('some')
      const a = member('a')
      const b = member('b')
      const c = member('c')
      adapter.join(room, a)
      adapter.join(roomName('another'), a)
      t.equal(adapter.broadcast(text('all'), { rooms: null, except: null }), 3)
      t.same([a.texts(), b.texts(), c.texts()], [['all'], ['all'], ['all']])
      t.equal(a.calls, 1, 'a member of two rooms gets it once')
      const late = member('late')
      t.equal(adapter.broadcast(text('again'), { rooms: null, except: null }), 4, 'members are read from the host at each broadcast')
      t.same(late.texts(), ['again'])
    })

    t.test('except skips the given members, for one room, several rooms and all members', async (t) => {
      const { adapter, member } = await setup(t)
      const [r1, r2] = [roomName('r1'), roomName('r2')]
      const a = member('a')
      const b = member('b')
      const c = member('c')
      const outsider = member('outsider')
      for (const m of [a, b, c]) adapter.join(r1, m)
      adapter.join(r2, a)
      adapter.join(r2, c)

      t.equal(adapter.broadcast(text('one'), { rooms: [r1], except: new Set([a]) }), 2)
      t.same([a.texts(), b.texts(), c.texts()], [[], ['one'], ['one']])

      t.equal(adapter.broadcast(text('two'), { rooms: [r1, r2], except: new Set<AdapterMember>([a, c]) }), 1)
      t.same([a.texts(), b.texts(), c.texts()], [[], ['one', 'two'], ['one']])

      t.equal(adapter.broadcast(text('three'), { rooms: null, except: new Set([b]) }), 3)
      t.same([a.texts(), b.texts(), c.texts(), outsider.texts()], [['three'], ['one', 'two'], ['one', 'three'], ['three']])

      t.equal(adapter.broadcast(text('four'), { rooms: [r1], except: new Set() }), 3, 'an empty except skips nobody')
      t.equal(adapter.broadcast(text('five'), { rooms: [r2], except: new Set([outsider]) }), 2, 'an except member outside the rooms changes nothing')
    })

    t.test('the count only includes members whose deliver() returned true', async (t) => {
      const { adapter, member } = await setup(t)
      const [r1, r2] = [roomName('r1'), roomName('r2')]
      const open1 = member('open1')
      const closed1 = member('closed1', false)
      const open2 = member('open2')
      const closed2 = member('closed2', false)
      adapter.join(r1, open1)
      adapter.join(r1, closed1)
      adapter.join(r2, open2)
      adapter.join(r2, closed2)
      adapter.join(r2, open1)
      t.equal(adapter.broadcast(text('a'), { rooms: [r1], except: null }), 1)
      t.equal(closed1.calls, 1, 'a member that is not open is still asked')
      t.same(closed1.texts(), [])
      t.equal(adapter.broadcast(text('b'), { rooms: [r1, r2], except: null }), 2)
      t.equal(adapter.broadcast(text('c'), { rooms: null, except: null }), 2)
      t.equal(adapter.broadcast(text('d'), { rooms: [r2], except: new Set([open2]) }), 1)
      closed2.open = true
      t.equal(adapter.broadcast(text('e'), { rooms: [r2], except: null }), 3, 'counted again once it writes')
      t.same(open1.texts(), ['a', 'b', 'c', 'd', 'e'])
      t.same(closed2.texts(), ['e'])
    })

    t.test('a member that left is no longer delivered', async (t) => {
      const { adapter, member } = await setup(t)
      const room = roomName('left')
      const a = member('a')
      const b = member('b')
      adapter.join(room, a)
      adapter.join(room, b)
      adapter.leave(room, a)
      t.equal(adapter.broadcast(text('after leave'), { rooms: [room], except: null }), 1)
      adapter.join(room, a)
      adapter.leaveAll(b)
      t.equal(adapter.broadcast(text('after leaveAll'), { rooms: [room], except: null }), 1)
      t.same(a.texts(), ['after leaveAll'])
      t.same(b.texts(), ['after leave'])
    })

    t.test('every kind of broadcast reaches each member once, also after the transport settled', async (t) => {
      const { adapter, member, settle } = await setup(t)
      const [r1, r2] = [roomName('r1'), roomName('r2')]
      const a = member('a')
      const b = member('b')
      const c = member('c')
      adapter.join(r1, a)
      adapter.join(r2, a)
      adapter.join(r2, b)
      t.equal(adapter.broadcast(text('one room'), { rooms: [r1], except: null }), 1)
      t.equal(adapter.broadcast(text('two rooms'), { rooms: [r1, r2], except: null }), 2)
      t.equal(adapter.broadcast({ data: Buffer.from([7]), binary: true }, { rooms: [r2], except: new Set([b]) }), 1)
      t.equal(adapter.broadcast(text('everyone'), { rooms: null, except: null }), 3)
      await settle()
      t.same(a.texts(), ['one room', 'two rooms', '\u0007', 'everyone'], 'no second copy came back through the transport')
      t.same(a.received.map((message) => message.binary), [false, false, true, false])
      t.same(b.texts(), ['two rooms', 'everyone'])
      t.same(c.texts(), ['everyone'])
      t.equal(a.calls + b.calls + c.calls, 7)
    })

    t.test('exceptIds skips members by connection id, alone or with except', async (t) => {
      const { adapter, member, settle } = await setup(t)
      const [r1, r2] = [roomName('r1'), roomName('r2')]
      const a = member('a')
      const b = member('b')
      const c = member('c')
      for (const m of [a, b, c]) adapter.join(r1, m)
      adapter.join(r2, c)

      t.equal(adapter.broadcast(text('one'), { rooms: [r1], except: null, exceptIds: new Set(['a']) }), 2)
      t.equal(adapter.broadcast(text('two'), { rooms: [r1, r2], except: new Set([b]), exceptIds: new Set(['c']) }), 1)
      t.equal(adapter.broadcast(text('three'), { rooms: null, except: null, exceptIds: new Set(['b', 'not-here']) }), 2)
      t.equal(adapter.broadcast(text('four'), { rooms: [r1], except: null, exceptIds: new Set() }), 3, 'an empty exceptIds skips nobody')
      t.equal(adapter.broadcast(text('five'), { rooms: [r1], except: null, exceptIds: null }), 3)
      await settle()
      t.same([a.texts(), b.texts(), c.texts()], [
        ['two', 'three', 'four', 'five'],
        ['one', 'four', 'five'],
        ['one', 'three', 'four', 'five']
      ])
    })

    t.test('the optional cluster queries answer, for an adapter alone, what it holds', async (t) => {
      const { adapter, member } = await setup(t)
      if (adapter.fetchRooms === undefined || adapter.fetchRoomSize === undefined || adapter.fetchConnections === undefined) {
        t.equal(adapter.fetchRooms ?? adapter.fetchRoomSize ?? adapter.fetchConnections, undefined, 'an adapter without them leaves all three to the manager')
        return
      }
      const [room, kept] = [roomName('asked'), roomName('kept')]
      adapter.createRoom(kept)
      adapter.join(room, member('a'))
      adapter.join(room, member('b'))
      member('c')
      const started = Date.now()
      t.same((await adapter.fetchRooms({ timeout: 2000 })).sort(), [room, kept].sort())
      t.equal(await adapter.fetchRoomSize(room, { timeout: 2000 }), 2)
      t.equal(await adapter.fetchRoomSize(roomName('unknown'), { timeout: 2000 }), 0)
      t.equal(await adapter.fetchConnections({ timeout: 2000 }), 3)
      t.ok(Date.now() - started < 1000, 'alone, it does not wait for its timeout')
    })

    t.test('the optional stats() gives finite numbers', async (t) => {
      const { adapter, member } = await setup(t)
      if (adapter.stats === undefined) {
        t.pass('no adapter counters')
        return
      }
      adapter.join(roomName('counted'), member('a'))
      const stats = adapter.stats()
      t.ok(Object.keys(stats).length > 0)
      for (const [key, value] of Object.entries(stats)) t.ok(Number.isFinite(value), `${key} is a finite number`)
    })

    t.test('rooms are kept per adapter instance', async (t) => {
      const first = await setup(t)
      const second = await setup(t)
      const room = roomName('mine')
      first.adapter.createRoom(room)
      first.adapter.join(room, first.member('a'))
      t.same(first.adapter.rooms(), [room])
      t.same(second.adapter.rooms(), [], 'another instance does not list the room')
      t.equal(second.adapter.roomSize(room), 0, 'nor count its local members')
      t.equal(second.adapter.broadcast(text('x'), { rooms: [room], except: null }), 0)
    })
  })
}
