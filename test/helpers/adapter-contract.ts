// The behaviour every Adapter must show (types/index.d.ts, `Adapter`) together
// with the plugin's own side of the rooms (lib/hub.ts), run against real
// adapter instances: test/memory-adapter.test.ts runs it on MemoryAdapter,
// test/redis-adapter.test.ts on RedisAdapter. Only the Adapter interface is
// used of the adapter, nothing of one implementation.
//
// Membership and local delivery are the hub's, the same for every adapter, and
// synchronous; what an adapter sends to other instances (and gets back from
// its transport) arrives later. `settle` waits for that, so that the suite
// also sees an adapter that echoes its own broadcasts to this instance.
import 'tap'
import type { FastifyBaseLogger } from 'fastify'
import type { Adapter, EncodedMessage } from '../../types/index'
import { encodedFrom } from '../../lib/codec'
import { Hub, type Member } from '../../lib/hub'

/**
 * A small real member: it records every message delivered to it and says
 * whether it wrote it, as `Connection.deliver` does for an OPEN socket.
 */
export class TestMember implements Member {
  readonly id: string
  readonly received: EncodedMessage[] = []
  /** calls of deliver(), written or not */
  calls = 0
  open: boolean
  /** calls of historyLost() */
  lost = 0
  /** called on each delivery before it is written (to act as a slow consumer, say) */
  onDeliver: (() => void) | null = null

  constructor (id: string, open = true) {
    this.id = id
    this.open = open
  }

  /** presence frames written to it */
  readonly presenceFrames: Buffer[] = []

  presenceIdentity (): { key: string, meta: string } {
    return { key: this.id, meta: 'null' }
  }

  presenceFrame (frame: Buffer): void {
    this.presenceFrames.push(frame)
  }

  deliver (message: EncodedMessage): boolean {
    this.calls++
    this.onDeliver?.()
    if (!this.open) return false
    this.received.push(message)
    return true
  }

  historyLost (): void {
    this.lost++
  }

  /** What it received, as text. */
  texts (): string[] {
    return this.received.map((message) => message.data.toString())
  }
}

function noop (): void {}

/** A silent logger: adapters may log, the contract does not look at it. */
export function silentLogger (): FastifyBaseLogger {
  const log: Record<string, unknown> = { level: 'silent' }
  for (const level of ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']) log[level] = noop
  log.child = () => log
  return log as unknown as FastifyBaseLogger
}

/** A message as the manager encodes it. */
export function text (value: string) {
  return encodedFrom(Buffer.from(value), false)
}

export interface ContractOptions {
  /**
   * Resolves once whatever the adapter sent through its transport so far has
   * come back to it and been handled. The memory adapter has no transport.
   */
  settle?: (adapter: Adapter) => Promise<void>
}

/** A broadcast target as the cases below write it: members to skip, and connection ids to skip. */
interface Target {
  rooms: readonly string[] | null
  except: ReadonlySet<TestMember> | null
  exceptIds?: ReadonlySet<string> | null
}

/**
 * One instance's rooms, as the manager drives them: the hub's membership and
 * delivery under the names the manager's API uses, and the adapter's
 * optional queries and counters.
 */
export class LocalRooms {
  readonly hub: Hub<TestMember>
  readonly adapter: Adapter

  constructor (hub: Hub<TestMember>) {
    this.hub = hub
    this.adapter = hub.adapter
  }

  createRoom (room: string): void { this.hub.create(room) }
  deleteRoom (room: string): boolean { return this.hub.delete(room) }
  hasRoom (room: string): boolean { return this.hub.has(room) }
  join (room: string, member: TestMember): void { this.hub.join(room, member) }
  leave (room: string, member: TestMember): void { this.hub.leave(room, member) }
  leaveAll (member: TestMember): void { this.hub.leaveAll(member) }
  roomSize (room: string): number { return this.hub.roomSize(room) }
  membersOf (room: string): Iterable<TestMember> { return this.hub.membersOf(room) }
  roomsOf (member: TestMember): Iterable<string> { return this.hub.roomsOf(member) }
  rooms (): string[] { return this.hub.rooms() }
  broadcast (message: EncodedMessage, target: Target): number {
    return this.hub.broadcast(encodedFrom(message.data, message.binary), { rooms: target.rooms, exceptIds: target.exceptIds ?? null }, target.except)
  }
}

interface Fixture {
  local: LocalRooms
  adapter: Adapter
  /** waits for the adapter's transport (see ContractOptions.settle) */
  settle (): Promise<void>
  /** every local member, what a broadcast to every connection reaches */
  members: Set<TestMember>
  /** a new member, registered as a live connection */
  member (id: string, open?: boolean): TestMember
}

const sorted = (values: Iterable<string>): string[] => [...values].sort()
const ids = (members: Iterable<Member>): string[] => [...members].map((member) => member.id).sort()

/**
 * Runs the adapter contract as a subtest of `t` named `name`. `makeAdapter`
 * is called once per test; each adapter is initialised through a hub whose
 * live members are the test's members, and closed when its test ends.
 */
export function adapterContract (t: tap.Test, name: string, makeAdapter: () => Adapter, options: ContractOptions = {}): Promise<unknown> {
  let unique = 0
  /** room names unique to each test, so that an adapter sharing state between instances cannot leak rooms from test to test */
  const roomName = (base: string): string => `${base}-${process.pid}-${++unique}-${Date.now().toString(36)}`

  async function setup (t: tap.Test): Promise<Fixture> {
    const adapter = makeAdapter()
    const members = new Set<TestMember>()
    const hub = new Hub<TestMember>(adapter, members)
    await hub.init(silentLogger())
    t.teardown(() => adapter.close())
    return {
      local: new LocalRooms(hub),
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
      const { local, member } = await setup(t)
      const room = roomName('nowhere')
      const a = member('a')
      t.same(local.rooms(), [])
      t.equal(local.hasRoom(room), false)
      t.equal(local.roomSize(room), 0)
      t.same([...local.membersOf(room)], [])
      t.same([...local.roomsOf(a)], [])
      t.equal(local.deleteRoom(room), false, 'deleting an unknown room says it did not exist')
      t.same(local.rooms(), [], 'deleteRoom of an unknown room creates nothing')
    })

    t.test('join creates the room implicitly and keeps both views in step', async (t) => {
      const { local, member } = await setup(t)
      const room = roomName('lobby')
      const a = member('a')
      const b = member('b')
      local.join(room, a)
      t.equal(local.hasRoom(room), true)
      t.equal(local.roomSize(room), 1)
      t.same(local.rooms(), [room])
      local.join(room, b)
      t.equal(local.roomSize(room), 2)
      t.same(ids(local.membersOf(room)), ['a', 'b'])
      t.same([...local.roomsOf(a)], [room])
      t.same([...local.roomsOf(b)], [room])
      const members = [...local.membersOf(room)]
      t.ok(members.includes(a) && members.includes(b), 'membersOf yields the very member objects that joined')
    })

    t.test('joining twice is a no-op', async (t) => {
      const { local, member } = await setup(t)
      const room = roomName('twice')
      const a = member('a')
      local.join(room, a)
      local.join(room, a)
      t.equal(local.roomSize(room), 1)
      t.same(ids(local.membersOf(room)), ['a'])
      t.same([...local.roomsOf(a)], [room])
      t.equal(local.broadcast(text('once'), { rooms: [room], except: null }), 1)
      t.same(a.texts(), ['once'])
      local.leave(room, a)
      t.equal(local.hasRoom(room), false, 'one leave undoes a double join')
    })

    t.test('an implicit room vanishes when its last member leaves', async (t) => {
      const { local, member } = await setup(t)
      const room = roomName('implicit')
      const a = member('a')
      const b = member('b')
      local.join(room, a)
      local.join(room, b)
      local.leave(room, a)
      t.equal(local.hasRoom(room), true, 'still there with one member')
      t.equal(local.roomSize(room), 1)
      t.same(ids(local.membersOf(room)), ['b'])
      t.same([...local.roomsOf(a)], [])
      local.leave(room, b)
      t.equal(local.hasRoom(room), false)
      t.equal(local.roomSize(room), 0)
      t.same(local.rooms(), [])
      t.same([...local.roomsOf(b)], [])
    })

    t.test('a created room stays, empty, until deleteRoom', async (t) => {
      const { local, member } = await setup(t)
      const room = roomName('kept')
      const a = member('a')
      local.createRoom(room)
      t.equal(local.hasRoom(room), true)
      t.equal(local.roomSize(room), 0)
      t.same(local.rooms(), [room])
      t.same([...local.membersOf(room)], [])
      local.join(room, a)
      local.leave(room, a)
      t.equal(local.hasRoom(room), true, 'still there after its last member left')
      local.join(room, a)
      local.leaveAll(a)
      t.equal(local.hasRoom(room), true, 'still there after its last member left all rooms')
      t.equal(local.roomSize(room), 0)
      t.equal(local.deleteRoom(room), true)
      t.equal(local.hasRoom(room), false)
      t.same(local.rooms(), [])
      t.equal(local.deleteRoom(room), false, 'a second delete finds nothing')
    })

    t.test('createRoom is idempotent and keeps the members of an existing room', async (t) => {
      const { local, member } = await setup(t)
      const room = roomName('again')
      const a = member('a')
      local.createRoom(room)
      local.createRoom(room)
      t.same(local.rooms(), [room])
      local.join(room, a)
      local.createRoom(room)
      t.equal(local.roomSize(room), 1, 'createRoom on a room with members does not empty it')
      t.same(ids(local.membersOf(room)), ['a'])
    })

    t.test('createRoom on an implicitly joined room makes it kept', async (t) => {
      const { local, member } = await setup(t)
      const room = roomName('promoted')
      const a = member('a')
      local.join(room, a)
      local.createRoom(room)
      local.leave(room, a)
      t.equal(local.hasRoom(room), true)
      t.equal(local.roomSize(room), 0)
    })

    t.test('a deleted room that is joined again is implicit again', async (t) => {
      const { local, member } = await setup(t)
      const room = roomName('reborn')
      const a = member('a')
      local.createRoom(room)
      t.equal(local.deleteRoom(room), true)
      local.join(room, a)
      t.equal(local.hasRoom(room), true)
      local.leave(room, a)
      t.equal(local.hasRoom(room), false, 'deleteRoom forgot that the room was kept')
    })

    t.test('deleteRoom removes every member from the room and only from it', async (t) => {
      const { local, member } = await setup(t)
      const room = roomName('doomed')
      const other = roomName('other')
      const a = member('a')
      const b = member('b')
      local.join(room, a)
      local.join(room, b)
      local.join(other, a)
      t.equal(local.deleteRoom(room), true, 'an implicit room can be deleted too')
      t.equal(local.hasRoom(room), false)
      t.equal(local.roomSize(room), 0)
      t.same([...local.membersOf(room)], [])
      t.same([...local.roomsOf(a)], [other])
      t.same([...local.roomsOf(b)], [])
      t.same(local.rooms(), [other])
      t.equal(local.broadcast(text('gone'), { rooms: [room], except: null }), 0)
      t.equal(a.calls + b.calls, 0, 'nobody is delivered a broadcast to a deleted room')
      local.leave(room, a)
      t.equal(local.hasRoom(room), false, 'leaving a deleted room does not bring it back')
    })

    t.test('leave of a room the member is not in, or of an unknown room, changes nothing', async (t) => {
      const { local, member } = await setup(t)
      const room = roomName('here')
      const unknown = roomName('unknown')
      const kept = roomName('kept')
      const a = member('a')
      const b = member('b')
      local.join(room, a)
      local.createRoom(kept)
      local.leave(room, b)
      local.leave(unknown, a)
      local.leave(kept, a)
      t.equal(local.roomSize(room), 1)
      t.same(ids(local.membersOf(room)), ['a'])
      t.same([...local.roomsOf(a)], [room])
      t.same([...local.roomsOf(b)], [])
      t.equal(local.hasRoom(unknown), false, 'leave does not create a room')
      t.same(sorted(local.rooms()), sorted([room, kept]))
    })

    t.test('leaveAll removes the member from every room, dropping implicit rooms it emptied', async (t) => {
      const { local, member } = await setup(t)
      const solo = roomName('solo')
      const shared = roomName('shared')
      const kept = roomName('kept')
      const a = member('a')
      const b = member('b')
      local.createRoom(kept)
      local.join(solo, a)
      local.join(shared, a)
      local.join(shared, b)
      local.join(kept, a)
      t.same(sorted(local.roomsOf(a)), sorted([solo, shared, kept]))
      local.leaveAll(a)
      t.same([...local.roomsOf(a)], [])
      t.equal(local.hasRoom(solo), false, 'the implicit room it emptied is gone')
      t.equal(local.hasRoom(shared), true, 'a room with other members stays')
      t.same(ids(local.membersOf(shared)), ['b'])
      t.equal(local.hasRoom(kept), true, 'a created room stays')
      t.equal(local.roomSize(kept), 0)
      t.same(sorted(local.rooms()), sorted([shared, kept]))
      t.same([...local.roomsOf(b)], [shared], 'the other member is untouched')
      local.leaveAll(a)
      local.leaveAll(member('c'))
      t.same(sorted(local.rooms()), sorted([shared, kept]), 'leaveAll of a member in no room is a no-op')
    })

    t.test('roomsOf, membersOf and rooms list every room and member', async (t) => {
      const { local, member } = await setup(t)
      const names = [roomName('r1'), roomName('r2'), roomName('r3')]
      const a = member('a')
      const b = member('b')
      const c = member('c')
      local.join(names[0], a)
      local.join(names[1], a)
      local.join(names[1], b)
      local.join(names[2], c)
      t.same(sorted(local.rooms()), sorted(names))
      t.same(sorted(local.roomsOf(a)), sorted([names[0], names[1]]))
      t.same([...local.roomsOf(b)], [names[1]])
      t.same([...local.roomsOf(c)], [names[2]])
      t.same(ids(local.membersOf(names[1])), ['a', 'b'])
      t.same([local.roomSize(names[0]), local.roomSize(names[1]), local.roomSize(names[2])], [1, 2, 1])
      const listed = local.rooms()
      listed.length = 0
      t.equal(local.rooms().length, 3, 'rooms() returns a copy, not the adapter state')
    })

    t.test('broadcast to one room reaches its members only, and counts them', async (t) => {
      const { local, member } = await setup(t)
      const room = roomName('news')
      const other = roomName('sports')
      const a = member('a')
      const b = member('b')
      const c = member('c')
      const loner = member('loner')
      local.join(room, a)
      local.join(room, b)
      local.join(other, c)
      const message = text('{"headline":1}')
      t.equal(local.broadcast(message, { rooms: [room], except: null }), 2)
      t.same(a.texts(), ['{"headline":1}'])
      t.same(b.texts(), ['{"headline":1}'])
      t.equal(a.received[0].binary, false)
      t.equal(c.calls, 0, 'a member of another room is not delivered')
      t.equal(loner.calls, 0, 'a member of no room is not delivered')
    })

    t.test('broadcast hands the encoded message on as it is, binary flag included', async (t) => {
      const { local, member } = await setup(t)
      const room = roomName('bin')
      const a = member('a')
      local.join(room, a)
      const bytes = Buffer.from([0, 1, 2, 255])
      t.equal(local.broadcast({ data: bytes, binary: true }, { rooms: [room], except: null }), 1)
      t.equal(a.received.length, 1)
      t.equal(a.received[0].binary, true)
      t.same([...a.received[0].data], [0, 1, 2, 255])
    })

    t.test('broadcast to an unknown room, or to no room at all, delivers nothing', async (t) => {
      const { local, member } = await setup(t)
      const a = member('a')
      local.join(roomName('elsewhere'), a)
      t.equal(local.broadcast(text('x'), { rooms: [roomName('unknown')], except: null }), 0)
      t.equal(local.broadcast(text('x'), { rooms: [], except: null }), 0)
      t.equal(a.calls, 0)
      t.equal(local.hasRoom(roomName('unknown')), false)
    })

    t.test('broadcast to several rooms reaches each member once', async (t) => {
      const { local, member } = await setup(t)
      const [r1, r2, r3] = [roomName('r1'), roomName('r2'), roomName('r3')]
      const a = member('a')
      const b = member('b')
      const c = member('c')
      const d = member('d')
      local.join(r1, a)
      local.join(r2, a)
      local.join(r3, a)
      local.join(r1, b)
      local.join(r2, c)
      local.join(roomName('r4'), d)
      t.equal(local.broadcast(text('multi'), { rooms: [r1, r2, r3], except: null }), 3)
      t.same(a.texts(), ['multi'], 'the member of three rooms gets it once')
      t.equal(a.calls, 1, 'and is delivered once')
      t.same(b.texts(), ['multi'])
      t.same(c.texts(), ['multi'])
      t.equal(d.calls, 0)
      t.equal(local.broadcast(text('dup'), { rooms: [r1, r1, r2], except: null }), 3, 'a room named twice counts once')
      t.equal(a.calls, 2)
      t.equal(local.broadcast(text('some'), { rooms: [roomName('unknown'), r3], except: null }), 1, 'unknown rooms among them add nobody')
    })

    t.test('broadcast with rooms: null reaches every member of the host, in rooms or not', async (t) => {
      const { local, member } = await setup(t)
      const room = roomName('some')
      const a = member('a')
      const b = member('b')
      const c = member('c')
      local.join(room, a)
      local.join(roomName('another'), a)
      t.equal(local.broadcast(text('all'), { rooms: null, except: null }), 3)
      t.same([a.texts(), b.texts(), c.texts()], [['all'], ['all'], ['all']])
      t.equal(a.calls, 1, 'a member of two rooms gets it once')
      const late = member('late')
      t.equal(local.broadcast(text('again'), { rooms: null, except: null }), 4, 'members are read from the host at each broadcast')
      t.same(late.texts(), ['again'])
    })

    t.test('except skips the given members, for one room, several rooms and all members', async (t) => {
      const { local, member } = await setup(t)
      const [r1, r2] = [roomName('r1'), roomName('r2')]
      const a = member('a')
      const b = member('b')
      const c = member('c')
      const outsider = member('outsider')
      for (const m of [a, b, c]) local.join(r1, m)
      local.join(r2, a)
      local.join(r2, c)

      t.equal(local.broadcast(text('one'), { rooms: [r1], except: new Set([a]) }), 2)
      t.same([a.texts(), b.texts(), c.texts()], [[], ['one'], ['one']])

      t.equal(local.broadcast(text('two'), { rooms: [r1, r2], except: new Set<TestMember>([a, c]) }), 1)
      t.same([a.texts(), b.texts(), c.texts()], [[], ['one', 'two'], ['one']])

      t.equal(local.broadcast(text('three'), { rooms: null, except: new Set([b]) }), 3)
      t.same([a.texts(), b.texts(), c.texts(), outsider.texts()], [['three'], ['one', 'two'], ['one', 'three'], ['three']])

      t.equal(local.broadcast(text('four'), { rooms: [r1], except: new Set() }), 3, 'an empty except skips nobody')
      t.equal(local.broadcast(text('five'), { rooms: [r2], except: new Set([outsider]) }), 2, 'an except member outside the rooms changes nothing')
    })

    t.test('the count only includes members whose deliver() returned true', async (t) => {
      const { local, member } = await setup(t)
      const [r1, r2] = [roomName('r1'), roomName('r2')]
      const open1 = member('open1')
      const closed1 = member('closed1', false)
      const open2 = member('open2')
      const closed2 = member('closed2', false)
      local.join(r1, open1)
      local.join(r1, closed1)
      local.join(r2, open2)
      local.join(r2, closed2)
      local.join(r2, open1)
      t.equal(local.broadcast(text('a'), { rooms: [r1], except: null }), 1)
      t.equal(closed1.calls, 1, 'a member that is not open is still asked')
      t.same(closed1.texts(), [])
      t.equal(local.broadcast(text('b'), { rooms: [r1, r2], except: null }), 2)
      t.equal(local.broadcast(text('c'), { rooms: null, except: null }), 2)
      t.equal(local.broadcast(text('d'), { rooms: [r2], except: new Set([open2]) }), 1)
      closed2.open = true
      t.equal(local.broadcast(text('e'), { rooms: [r2], except: null }), 3, 'counted again once it writes')
      t.same(open1.texts(), ['a', 'b', 'c', 'd', 'e'])
      t.same(closed2.texts(), ['e'])
    })

    t.test('a member that left is no longer delivered', async (t) => {
      const { local, member } = await setup(t)
      const room = roomName('left')
      const a = member('a')
      const b = member('b')
      local.join(room, a)
      local.join(room, b)
      local.leave(room, a)
      t.equal(local.broadcast(text('after leave'), { rooms: [room], except: null }), 1)
      local.join(room, a)
      local.leaveAll(b)
      t.equal(local.broadcast(text('after leaveAll'), { rooms: [room], except: null }), 1)
      t.same(a.texts(), ['after leaveAll'])
      t.same(b.texts(), ['after leave'])
    })

    t.test('every kind of broadcast reaches each member once, also after the transport settled', async (t) => {
      const { local, member, settle } = await setup(t)
      const [r1, r2] = [roomName('r1'), roomName('r2')]
      const a = member('a')
      const b = member('b')
      const c = member('c')
      local.join(r1, a)
      local.join(r2, a)
      local.join(r2, b)
      t.equal(local.broadcast(text('one room'), { rooms: [r1], except: null }), 1)
      t.equal(local.broadcast(text('two rooms'), { rooms: [r1, r2], except: null }), 2)
      t.equal(local.broadcast({ data: Buffer.from([7]), binary: true }, { rooms: [r2], except: new Set([b]) }), 1)
      t.equal(local.broadcast(text('everyone'), { rooms: null, except: null }), 3)
      await settle()
      t.same(a.texts(), ['one room', 'two rooms', '\u0007', 'everyone'], 'no second copy came back through the transport')
      t.same(a.received.map((message) => message.binary), [false, false, true, false])
      t.same(b.texts(), ['two rooms', 'everyone'])
      t.same(c.texts(), ['everyone'])
      t.equal(a.calls + b.calls + c.calls, 7)
    })

    t.test('exceptIds skips members by connection id, alone or with except', async (t) => {
      const { local, member, settle } = await setup(t)
      const [r1, r2] = [roomName('r1'), roomName('r2')]
      const a = member('a')
      const b = member('b')
      const c = member('c')
      for (const m of [a, b, c]) local.join(r1, m)
      local.join(r2, c)

      t.equal(local.broadcast(text('one'), { rooms: [r1], except: null, exceptIds: new Set(['a']) }), 2)
      t.equal(local.broadcast(text('two'), { rooms: [r1, r2], except: new Set([b]), exceptIds: new Set(['c']) }), 1)
      t.equal(local.broadcast(text('three'), { rooms: null, except: null, exceptIds: new Set(['b', 'not-here']) }), 2)
      t.equal(local.broadcast(text('four'), { rooms: [r1], except: null, exceptIds: new Set() }), 3, 'an empty exceptIds skips nobody')
      t.equal(local.broadcast(text('five'), { rooms: [r1], except: null, exceptIds: null }), 3)
      await settle()
      t.same([a.texts(), b.texts(), c.texts()], [
        ['two', 'three', 'four', 'five'],
        ['one', 'four', 'five'],
        ['one', 'three', 'four', 'five']
      ])
    })

    t.test('the optional cluster queries answer, for an adapter alone, what it holds', async (t) => {
      const { adapter, local, member } = await setup(t)
      if (adapter.fetchRooms === undefined || adapter.fetchRoomSize === undefined || adapter.fetchConnections === undefined) {
        t.equal(adapter.fetchRooms ?? adapter.fetchRoomSize ?? adapter.fetchConnections, undefined, 'an adapter without them leaves all three to the manager')
        return
      }
      const [room, kept] = [roomName('asked'), roomName('kept')]
      local.createRoom(kept)
      local.join(room, member('a'))
      local.join(room, member('b'))
      member('c')
      const started = Date.now()
      t.same((await adapter.fetchRooms({ timeout: 2000 })).sort(), [room, kept].sort())
      t.equal(await adapter.fetchRoomSize(room, { timeout: 2000 }), 2)
      t.equal(await adapter.fetchRoomSize(roomName('unknown'), { timeout: 2000 }), 0)
      t.equal(await adapter.fetchConnections({ timeout: 2000 }), 3)
      t.ok(Date.now() - started < 1000, 'alone, it does not wait for its timeout')
    })

    t.test('the optional stats() gives finite numbers', async (t) => {
      const { adapter, local, member } = await setup(t)
      if (adapter.stats === undefined) {
        t.pass('no adapter counters')
        return
      }
      local.join(roomName('counted'), member('a'))
      const stats = adapter.stats()
      t.ok(Object.keys(stats).length > 0)
      for (const [key, value] of Object.entries(stats)) t.ok(Number.isFinite(value), `${key} is a finite number`)
    })

    t.test('a member closed by the slow-consumer rule during a broadcast: the others get it, and it leaves when its close completes', async (t) => {
      const { local, member, settle } = await setup(t)
      const room = roomName('slow')
      const [a, slow, c] = [member('a'), member('slow'), member('c')]
      for (const m of [a, slow, c]) local.join(room, m)
      let closes = 0
      slow.onDeliver = () => {
        if (!slow.open) return
        // What Connection does: it stops taking writes (CLOSING) at once, and
        // leaves its rooms when the close completes, never inside the broadcast.
        slow.open = false
        closes++
        setImmediate(() => { local.leaveAll(slow) })
      }
      t.equal(local.broadcast(text('first'), { rooms: [room], except: null }), 2, 'the slow consumer is not counted')
      t.equal(local.broadcast(text('second'), { rooms: [room, roomName('other')], except: null }), 2, 'nor on a later broadcast while it closes')
      t.equal(local.roomSize(room), 3, 'membership did not change inside the broadcast')
      await new Promise((resolve) => setImmediate(resolve))
      t.equal(local.roomSize(room), 2, 'it left once closed')
      t.equal(local.broadcast(text('third'), { rooms: [room], except: null }), 2)
      await settle()
      t.same(a.texts(), ['first', 'second', 'third'])
      t.same(c.texts(), ['first', 'second', 'third'])
      t.same(slow.texts(), [])
      t.equal(slow.calls, 2, 'not asked again once it left')
      t.equal(closes, 1)
    })

    t.test('rooms are kept per adapter instance', async (t) => {
      const first = await setup(t)
      const second = await setup(t)
      const room = roomName('mine')
      first.local.createRoom(room)
      first.local.join(room, first.member('a'))
      t.same(first.local.rooms(), [room])
      t.same(second.local.rooms(), [], 'another instance does not list the room')
      t.equal(second.local.roomSize(room), 0, 'nor count its local members')
      t.equal(second.local.broadcast(text('x'), { rooms: [room], except: null }), 0)
    })
  })
}
