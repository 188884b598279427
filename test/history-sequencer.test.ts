import t from 'tap'
import type { FastifyBaseLogger } from 'fastify'
import type { Adapter, AdapterHistory, EncodedMessage, HistoryRead, Position } from '../types/index'
import { MemoryAdapter } from '../lib/adapters/memory'
import { encodedFrom, type Encoded } from '../lib/codec'
import { Hub } from '../lib/hub'
import type { Admission } from '../lib/history/index'
import { Policies } from '../lib/policies'
import type { Member } from '../lib/rooms'
import type { TestContext } from './helpers/server'
import { until } from './helpers/wait'

// Bounded per file, not by tap's 30 s default: the file's waits are bounded themselves, and a busy 2-core machine stretches them.
t.setTimeout(180_000)

// The ordering side of history rooms with a shared store, driven step by
// step: a store whose every call waits until the test answers it, so that
// each race (a message ahead of a gap, a read that returns after its member
// left, an epoch that changes during a read) happens when the test says.
// The store is the interface's own contract (types/index.d.ts,
// AdapterHistory); the Redis store itself is tested on Redis
// (test/redis-history.test.ts, test/history-redis.test.ts).

interface Call {
  kind: 'append' | 'position' | 'read' | 'renew'
  room: string
  args: unknown[]
  resolve: (value: unknown) => void
  reject: (error: Error) => void
}

class ScriptedStore implements AdapterHistory {
  readonly calls: Call[] = []
  private waiters: Array<() => void> = []

  async append (room: string, message: EncodedMessage, ...args: unknown[]): Promise<Position> {
    return await this.call('append', room, [message, ...args]) as Position
  }

  async position (room: string): Promise<Position> {
    return await this.call('position', room, []) as Position
  }

  async read (room: string, after: number, limit: number): Promise<HistoryRead> {
    return await this.call('read', room, [after, limit]) as HistoryRead
  }

  async renew (room: string, epoch: string, candidate: string): Promise<Position> {
    return await this.call('renew', room, [epoch, candidate]) as Position
  }

  private async call (kind: Call['kind'], room: string, args: unknown[]): Promise<unknown> {
    return await new Promise((resolve, reject) => {
      this.calls.push({ kind, room, args, resolve, reject })
      for (const waiter of this.waiters) waiter()
    })
  }

  /** The next unanswered call of a kind (waiting for it), taken off the list. */
  async next (kind: Call['kind']): Promise<Call> {
    await until(() => this.calls.some((call) => call.kind === kind), 5000, `a ${kind} call`)
    const index = this.calls.findIndex((call) => call.kind === kind)
    return this.calls.splice(index, 1)[0]
  }
}

class Recorder implements Member {
  readonly id: string
  readonly got: Array<[number, string]> = []
  readonly lost: Admission[] = []
  constructor (id: string) {
    this.id = id
  }

  deliver (message: Encoded): boolean {
    this.got.push([message.offset, message.data.toString()])
    return true
  }

  historyLost (_room: string, status: Admission): void {
    this.lost.push(status)
  }

  presenceIdentity (): null {
    return null
  }

  presenceFrame (): void {}
}

const logged: string[] = []
const logger = {
  level: 'info',
  info: (_: unknown, message: string) => { logged.push(message) },
  warn: (_: unknown, message: string) => { logged.push(message) },
  error: (_: unknown, message: string) => { logged.push(message) },
  debug: () => {},
  trace: () => {},
  fatal: () => {},
  silent: () => {},
  child: () => logger
} as unknown as FastifyBaseLogger

const policies = Policies.from({ 'r:*': { history: { size: 100, ttl: 60_000 } } }, () => { throw new Error('bad policy') }) as Policies

async function setup (t: TestContext): Promise<{ hub: Hub<Recorder>, store: ScriptedStore, members: Set<Recorder> }> {
  const store = new ScriptedStore()
  const adapter: Adapter = Object.assign(new MemoryAdapter(), { history: store })
  const members = new Set<Recorder>()
  const hub = new Hub<Recorder>(adapter, members, policies)
  await hub.init(logger)
  t.teardown(() => hub.history?.close())
  return { hub, store, members }
}

/** Lets the promise callbacks of what the store just answered run. */
const tick = async (): Promise<void> => await new Promise((resolve) => setImmediate(resolve))

const msg = (text: string): EncodedMessage => encodedFrom(Buffer.from(text), false)
const at = (offset: number, epoch = 'E'): Position => ({ offset, epoch })
const stored = (offset: number, text: string, time = Date.now()): { offset: number, message: EncodedMessage, time: number } => ({ offset, message: msg(text), time })

/** Joins a member and records what it is told. */
function enter (hub: Hub<Recorder>, room: string, member: Recorder, presented?: Position): Array<Admission | null> {
  const told: Array<Admission | null> = []
  hub.enter(room, member, presented, (admission) => { told.push(admission) })
  return told
}

t.test('delivery starts at the store\'s position: what came before it is dropped, what came after is delivered in order', async (t) => {
  const { hub, store } = await setup(t)
  const member = new Recorder('a')
  const told = enter(hub, 'r:1', member)
  const position = await store.next('position')
  hub.sequenced('r:1', at(2), msg('two'), null)
  hub.sequenced('r:1', at(3), msg('three'), null)
  hub.sequenced('r:1', at(1, 'OLD'), msg('old epoch'), null)
  t.same(member.got, [], 'nothing before the position is known')
  position.resolve(at(2))
  await tick()
  t.same(told, [{ position: at(2) }], 'admitted at the store\'s position')
  t.same(member.got, [[3, 'three']])
  hub.sequenced('r:1', at(3), msg('again'), null)
  t.same(member.got, [[3, 'three']], 'a message it has is dropped')
  // The subscription is confirmed: the position is read again, and what is new is filled.
  hub.resync('r:1')
  ;(await store.next('position')).resolve(at(4))
  await tick()
  const read = await store.next('read')
  t.same(read.args, [3, 1])
  read.resolve({ position: at(4), messages: [stored(4, 'four')] })
  await tick()
  await until(() => member.got.length === 2)
  t.same(member.got, [[3, 'three'], [4, 'four']])
  t.equal(hub.history?.shared, store)
})

t.test('a gap is read once from the store while later messages wait; what the store no longer has is reported', async (t) => {
  const { hub, store } = await setup(t)
  const a = new Recorder('a')
  const b = new Recorder('b')
  enter(hub, 'r:1', a)
  enter(hub, 'r:1', b)
  ;(await store.next('position')).resolve(at(0))
  await tick()
  hub.sequenced('r:1', at(1), msg('1'), null)
  hub.sequenced('r:1', at(3), msg('3'), null)
  hub.sequenced('r:1', at(4), msg('4'), new Set(['b']))
  const read = await store.next('read')
  t.same(read.args, [1, 1], 'one read for the gap, for both members')
  hub.sequenced('r:1', at(6), msg('6'), null)
  t.equal(store.calls.length, 0, 'no second read while one runs')
  read.resolve({ position: at(6), messages: [stored(2, '2')] })
  await tick()
  // 5 is missing: read, and the store no longer has it.
  const second = await store.next('read')
  t.same(second.args, [4, 1])
  second.resolve({ position: at(6), messages: [] })
  await tick()
  await until(() => a.got.length === 5)
  t.same(a.got.map(([offset]) => offset), [1, 2, 3, 4, 6])
  t.same(b.got.map(([offset]) => offset), [1, 2, 3, 6], 'exceptIds skip b')
  t.same(a.lost, [{ position: at(5), recovered: false, missed: 0, reason: 'TRIMMED' }])
  t.equal(hub.history !== null, true)
})

t.test('an epoch that changes is told to every member, and delivery goes on in the new epoch', async (t) => {
  const { hub, store } = await setup(t)
  const member = new Recorder('a')
  enter(hub, 'r:1', member)
  ;(await store.next('position')).resolve(at(5))
  await tick()
  // A message of a new epoch ahead of its own 1: members are told, the gap 1..2 is read.
  hub.sequenced('r:1', at(3, 'F'), msg('f3'), null)
  t.same(member.lost, [{ position: at(0, 'F'), recovered: false, missed: 0, reason: 'EPOCH_CHANGED' }])
  const read = await store.next('read')
  t.same(read.args, [0, 2])
  // ... and during the read the epoch changed again: told again, the read is void, delivery starts in the new epoch.
  hub.sequenced('r:1', at(1, 'G'), msg('g1'), null)
  t.same(member.lost[1], { position: at(0, 'G'), recovered: false, missed: 0, reason: 'EPOCH_CHANGED' })
  t.same(member.got, [[1, 'g1']])
  read.resolve({ position: at(2, 'F'), messages: [stored(1, 'f1'), stored(2, 'f2')] })
  await tick()
  hub.sequenced('r:1', at(3, 'G'), msg('g3'), null)
  const fill = await store.next('read')
  t.same(fill.args, [1, 1], 'the void read delivered nothing')
  t.same(member.got, [[1, 'g1']])
  // The store's epoch changed after the gap was seen: the new epoch is read from its start.
  fill.resolve({ position: at(2, 'H'), messages: [] })
  await tick()
  const fresh = await store.next('read')
  t.same(fresh.args, [0, 2])
  t.same(member.lost[2].position, at(0, 'H'))
  fresh.resolve({ position: at(2, 'H'), messages: [stored(1, 'h1'), stored(2, 'h2')] })
  await tick()
  await until(() => member.got.length === 3)
  t.same(member.got.map(([offset, text]) => `${offset}${text}`), ['1g1', '1h1', '2h2'])
  // A failed read that comes back after the epoch changed is void too.
  hub.sequenced('r:1', at(4, 'H'), msg('h4'), null)
  const failing = await store.next('read')
  hub.sequenced('r:1', at(1, 'K'), msg('k1'), null)
  failing.reject(new Error('down'))
  await tick()
  t.same(member.lost[3].position, at(0, 'K'))

  // A resync that finds another epoch, with messages in it: told, and filled from its start.
  hub.resync('r:1')
  ;(await store.next('position')).resolve(at(2, 'I'))
  await tick()
  const fromStart = await store.next('read')
  t.same(fromStart.args, [0, 2])
  fromStart.resolve({ position: at(2, 'I'), messages: [stored(1, 'i1'), stored(2, 'i2')] })
  await tick()
  await until(() => member.got.length === 6)
  t.same(member.lost[4].position, at(0, 'I'))
  // And one that finds another epoch with nothing in it yet.
  hub.resync('r:1')
  ;(await store.next('position')).resolve(at(0, 'J'))
  await tick()
  await until(() => member.lost.length === 6)
  t.same(member.lost[5].position, at(0, 'J'))
  t.equal(store.calls.length, 0, 'no read for an empty epoch')
})

t.test('a store that went back in one epoch (messages delivered here lost, their offsets given again): a new epoch, members told', async (t) => {
  const { hub, store } = await setup(t)
  const member = new Recorder('a')
  enter(hub, 'r:1', member)
  ;(await store.next('position')).resolve(at(0))
  await tick()
  for (const n of [1, 2, 3]) hub.sequenced('r:1', at(n), msg(`m${n}`), null)
  t.same(member.got.map(([offset]) => offset), [1, 2, 3])

  // The same message again (a fill and live delivery overlapping): nothing.
  hub.sequenced('r:1', at(2), msg('m2'), null)
  t.equal(store.calls.length, 0, 'an echo of a delivered message is dropped')

  // An offset from before this instance followed the room: nothing kept to compare with, dropped.
  const late = new Recorder('late')
  enter(hub, 'r:2', late)
  ;(await store.next('position')).resolve(at(5))
  await tick()
  hub.sequenced('r:2', at(4), msg('before'), null)
  t.same([late.got, store.calls.length], [[], 0], 'nothing delivered, nothing asked')

  // Other bytes at offset 2: the store lost 2 and 3 and numbered a new message 2.
  hub.sequenced('r:1', at(2), msg('new 2'), null)
  hub.sequenced('r:1', at(3), msg('new 3'), null)
  const renew = await store.next('renew')
  t.equal(renew.args[0], 'E', 'only if the room is still at the epoch that went back')
  t.ok(logged.includes('The history store lost messages of a room delivered here (a failover, or a restart from an older file): the room starts a new epoch'))
  t.equal(store.calls.length, 0, 'asked once while it is under way')
  renew.resolve(at(0, renew.args[1] as string))
  await tick()
  t.same(member.lost, [{ position: at(0, renew.args[1] as string), recovered: false, missed: 0, reason: 'EPOCH_CHANGED' }])
  hub.sequenced('r:1', at(1, renew.args[1] as string), msg('fresh'), null)
  t.same(member.got.map(([offset, text]) => `${offset}${text}`), ['1m1', '2m2', '3m3', '1fresh'])

  // The same flag differing is other bytes too; a resync that finds the store behind this instance is the other sign.
  const epoch = renew.args[1] as string
  hub.sequenced('r:1', at(1, epoch), encodedFrom(Buffer.from('fresh'), true), null)
  const again = await store.next('renew')
  t.equal(again.args[0], epoch)
  // Another instance renewed first and messages followed: that epoch, read from its start.
  again.resolve(at(2, 'OTHER'))
  await tick()
  const read = await store.next('read')
  t.same(read.args, [0, 2])
  read.resolve({ position: at(2, 'OTHER'), messages: [stored(1, 'o1'), stored(2, 'o2')] })
  await tick()
  await until(() => member.got.length === 6)

  hub.resync('r:1')
  ;(await store.next('position')).resolve(at(1, 'OTHER'))
  await tick()
  const failing = await store.next('renew')
  failing.reject(new Error('down'))
  await tick()
  t.ok(logged.includes('Could not start a new epoch for a history room whose store lost messages'))
  t.equal(member.lost.length, 2, 'the room goes on in its epoch')

  // A position read while the epoch changed here: lower than what the old epoch delivered, and no sign.
  hub.resync('r:1')
  const reading = await store.next('position')
  hub.sequenced('r:1', at(1, 'NEXT'), msg('n1'), null)
  reading.resolve(at(1, 'NEXT'))
  await tick()
  t.equal(store.calls.length, 0, 'no new epoch asked for')
  t.equal(member.lost.length, 3, 'the epoch that started meanwhile told')

  // Asked again at the next sign; the room is left before the answer: ignored.
  hub.resync('r:1')
  ;(await store.next('position')).resolve(at(0, 'NEXT'))
  await tick()
  const unanswered = await store.next('renew')
  hub.leave('r:1', member)
  unanswered.resolve(at(0, 'LATE'))
  await tick()
  t.equal(member.lost.length, 3)
})

t.test('store failures: a failed position or read is retried; results for a room no longer followed are ignored', async (t) => {
  const { hub, store } = await setup(t)
  const member = new Recorder('a')
  const told = enter(hub, 'r:1', member)
  ;(await store.next('position')).reject(new Error('down'))
  await tick()
  // Retried after a second, by itself.
  ;(await store.next('position')).resolve(at(1))
  await tick()
  t.same(told, [{ position: at(1) }])
  hub.sequenced('r:1', at(3), msg('3'), null)
  ;(await store.next('read')).reject(new Error('down'))
  await tick()
  // The retry reads the position again, then the gap.
  ;(await store.next('position')).resolve(at(3))
  await tick()
  ;(await store.next('read')).resolve({ position: at(3), messages: [stored(2, '2'), stored(3, '3')] })
  await tick()
  await until(() => member.got.length === 2)
  t.same(member.got.map(([offset]) => offset), [2, 3])
  t.ok(logged.includes('Could not read the position of a history room: retrying'))
  t.ok(logged.includes('Could not read a gap of a history room from the store: retrying'))

  // A resync while a gap is read: the read in progress covers it.
  hub.sequenced('r:1', at(5), msg('5'), null)
  const gap = await store.next('read')
  hub.resync('r:1')
  ;(await store.next('position')).resolve(at(6))
  await tick()
  t.equal(store.calls.length, 0, 'no second read')
  gap.resolve({ position: at(6), messages: [stored(4, '4'), stored(5, '5')] })
  await tick()
  // 6 was read by nobody yet: the next message shows the gap.
  hub.sequenced('r:1', at(7), msg('7'), null)
  ;(await store.next('read')).resolve({ position: at(7), messages: [stored(6, '6')] })
  await tick()
  await until(() => member.got.length === 6)

  // Two resyncs at once: the second waits for the first, then runs.
  hub.resync('r:1')
  hub.resync('r:1')
  ;(await store.next('position')).resolve(at(7))
  await tick()
  ;(await store.next('position')).resolve(at(7))
  await tick()

  // Calls that return after the room lost its last member change nothing.
  hub.sequenced('r:1', at(9), msg('9'), null)
  const read = await store.next('read')
  hub.resync('r:1')
  const position = await store.next('position')
  hub.leaveAll(member)
  read.resolve({ position: at(9), messages: [stored(8, '8')] })
  await tick()
  position.reject(new Error('down'))
  await tick()
  hub.sequenced('r:1', at(10), msg('10'), null)
  t.same(member.got.map(([offset]) => offset), [2, 3, 4, 5, 6, 7], 'nothing after it left')

  // A room that goes idle before its position is known.
  const other = new Recorder('b')
  enter(hub, 'r:2', other)
  const pending = await store.next('position')
  hub.leaveAll(other)
  pending.resolve(at(9))
  await tick()
  hub.resync('r:2')
  t.equal(store.calls.length, 0, 'a room not followed is not read')
})

t.test('a resume older than the instance\'s copy is read from the store while live messages skip the member', async (t) => {
  const { hub, store } = await setup(t)
  const live = new Recorder('live')
  enter(hub, 'r:1', live)
  ;(await store.next('position')).resolve(at(10))
  await tick()
  hub.sequenced('r:1', at(11), msg('11'), null)

  const back = new Recorder('back')
  const told = enter(hub, 'r:1', back, at(8))
  const read = await store.next('read')
  t.same(read.args, [8, 3])
  hub.sequenced('r:1', at(12), msg('12'), new Set(['live']))
  t.same(back.got, [], 'held while its replay is read')
  t.same(live.got.map(([offset]) => offset), [11], 'except by id, beside the held member')
  read.resolve({ position: at(13), messages: [stored(9, '9'), stored(10, '10'), stored(11, '11'), stored(12, '12'), stored(13, 'not here yet')] })
  await tick()
  await until(() => told.length === 1)
  t.same(told, [{ position: at(12), recovered: true, missed: 4 }])
  t.same(back.got.map(([offset, text]) => `${offset}:${text}`), ['9:9', '10:10', '11:11', '12:12'], 'from the store up to what this instance delivered (13 comes live)')

  // A member that presents a position ahead of this instance: nothing to replay (its client drops what it has).
  const ahead = new Recorder('ahead')
  t.same(enter(hub, 'r:1', ahead, at(40)), [{ position: at(12), recovered: true, missed: 0 }])

  const cases: Array<[string, Partial<HistoryRead> & { messages: HistoryRead['messages'] }, string]> = [
    ['another epoch', { position: at(12, 'X'), messages: [] }, 'EPOCH_CHANGED'],
    ['nothing left', { messages: [] }, 'EXPIRED'],
    ['the first ones gone', { messages: [stored(6, '6')] }, 'TRIMMED'],
    ['too old', { messages: [stored(5, '5', 0)] }, 'EXPIRED']
  ]
  for (const [name, answer, reason] of cases) {
    const member = new Recorder(name)
    const status = enter(hub, 'r:1', member, at(4))
    ;(await store.next('read')).resolve({ position: at(12), ...answer })
    await tick()
    await until(() => status.length === 1)
    t.match(status[0], { recovered: false, reason, position: at(12) }, name)
    t.same(member.got, [], `${name}: nothing replayed`)
  }

  // The store is away.
  const unlucky = new Recorder('unlucky')
  const status = enter(hub, 'r:1', unlucky, at(4))
  ;(await store.next('read')).reject(new Error('down'))
  await tick()
  await until(() => status.length === 1)
  t.match(status[0], { recovered: false, reason: 'UNAVAILABLE' })

  // It left during the read, or the read came back after the epoch changed.
  const gone = new Recorder('gone')
  const goneStatus = enter(hub, 'r:1', gone, at(4))
  const goneRead = await store.next('read')
  hub.leave('r:1', gone)
  goneRead.resolve({ position: at(12), messages: [stored(5, '5')] })
  await tick()
  const goneToo = new Recorder('gone too')
  const goneTooStatus = enter(hub, 'r:1', goneToo, at(4))
  const goneTooRead = await store.next('read')
  hub.leave('r:1', goneToo)
  goneTooRead.reject(new Error('down'))
  await tick()
  const changed = new Recorder('changed')
  const changedStatus = enter(hub, 'r:1', changed, at(4))
  const changedRead = await store.next('read')
  hub.sequenced('r:1', at(1, 'NEW'), msg('new'), null)
  changedRead.resolve({ position: at(12), messages: [stored(5, '5')] })
  await tick()
  await until(() => changedStatus.length === 1)
  t.same(goneStatus, [])
  t.same(goneTooStatus, [])
  t.match(changedStatus[0], { recovered: false, reason: 'EPOCH_CHANGED' })
})

t.test('a resume whose read took so long that the instance\'s own copy moved on past it reports TRIMMED', async (t) => {
  const store = new ScriptedStore()
  const small = Policies.from({ 's:*': { history: { size: 2, ttl: 60_000 } } }, () => { throw new Error('bad') }) as Policies
  const hub = new Hub<Recorder>(Object.assign(new MemoryAdapter(), { history: store }), new Set(), small)
  await hub.init(logger)
  const live = new Recorder('live')
  enter(hub, 's:1', live)
  ;(await store.next('position')).resolve(at(2))
  await tick()
  const back = new Recorder('back')
  const told = enter(hub, 's:1', back, at(0))
  const read = await store.next('read')
  for (let offset = 3; offset <= 6; offset++) hub.sequenced('s:1', at(offset), msg(String(offset)), null)
  read.resolve({ position: at(6), messages: [stored(1, '1'), stored(2, '2')] })
  await tick()
  await until(() => told.length === 1)
  t.match(told[0], { recovered: false, reason: 'TRIMMED', position: at(6) })
})

t.test('messages held ahead of a gap are bounded; the rest is read with the gap', async (t) => {
  const { MAX_AHEAD } = await import('../lib/history/sequencer')
  const { hub, store } = await setup(t)
  const member = new Recorder('a')
  enter(hub, 'r:1', member)
  ;(await store.next('position')).resolve(at(0))
  await tick()
  hub.sequenced('r:1', at(2), msg('2'), null)
  const read = await store.next('read')
  for (let offset = 3; offset <= MAX_AHEAD + 10; offset++) hub.sequenced('r:1', at(offset), msg(String(offset)), null)
  read.resolve({ position: at(MAX_AHEAD + 10), messages: [stored(1, '1')] })
  await tick()
  // Held up to the bound; the ones dropped beyond it are read with the gap the next message shows.
  await until(() => member.got.length === MAX_AHEAD + 1)
  hub.sequenced('r:1', at(MAX_AHEAD + 11), msg(String(MAX_AHEAD + 11)), null)
  const again = await store.next('read')
  const [after] = again.args as number[]
  t.equal(after, MAX_AHEAD + 1, 'delivered up to what was held')
  again.resolve({ position: at(MAX_AHEAD + 10), messages: Array.from({ length: 9 }, (_, i) => stored(after + 1 + i, String(after + 1 + i))) })
  await tick()
  await until(() => member.got.length === MAX_AHEAD + 11)
  t.ok(member.got.every(([offset], index) => offset === index + 1), 'every offset once, in order')
})

t.test('sends through a shared store: except goes by connection id, publish waits for the store (with a bound), failures are logged once per run', async (t) => {
  const { hub, store } = await setup(t)
  const member = new Recorder('me')
  enter(hub, 'r:1', member)
  ;(await store.next('position')).resolve(at(0))
  await tick()
  const skip = new Set([member])
  t.equal(hub.broadcast(encodedFrom(Buffer.from('x'), false), { rooms: ['r:1'], exceptIds: new Set(['other']) }, skip), 0, 'delivery comes back from the store')
  const append = await store.next('append')
  t.same([...(append.args[2] as Set<string>)].sort(), ['me', 'other'], 'the except sockets by id')
  append.resolve(at(1))
  await tick()
  hub.broadcast(encodedFrom(Buffer.from('y'), false), { rooms: ['r:1'], exceptIds: null }, null)
  const plain = await store.next('append')
  t.equal(plain.args[2], null)
  plain.reject(new Error('down'))
  await tick()
  await until(() => logged.includes('A message of a history room could not be stored: nobody received it'))

  const published = hub.publish('r:1', encodedFrom(Buffer.from('z'), false), null, null)
  ;(await store.next('append')).resolve(at(2))
  await tick()
  t.same(await published, at(2))
  t.ok(logged.includes('History store works again'))

  const start = Date.now()
  const slow = hub.publish('r:1', encodedFrom(Buffer.from('slow'), false), null, null)
  await t.rejects(slow, { code: 'FST_NEXUS_HISTORY_UNAVAILABLE', message: /did not answer within 5000 ms/ })
  t.ok(Date.now() - start >= 4900)

  // A message of a room this instance has no history policy for: delivered the plain way.
  const plainMember = new Recorder('p')
  hub.join('other', plainMember)
  hub.sequenced('other', at(1), msg('plain'), null)
  t.same(plainMember.got, [[0, 'plain']])
  // And one of a history room nobody here is in: nothing.
  hub.sequenced('r:nobody', at(1), msg('x'), null)
})

t.test('the memory store drops expired messages of idle rooms, keeping their position', async (t) => {
  const short = Policies.from({ 'm:*': { history: { size: 10, ttl: 1 } } }, () => { throw new Error('bad') }) as Policies
  const hub = new Hub<Recorder>(new MemoryAdapter(), new Set(), short)
  await hub.init(logger)
  t.teardown(() => hub.history?.close())
  hub.broadcast(encodedFrom(Buffer.from('old'), false), { rooms: ['m:1'], exceptIds: null }, null)
  const start = Date.now()
  await until(() => Date.now() - start > 5)
  ;(hub.history as unknown as { sweep: () => void }).sweep()
  const page = await hub.read('m:1', 0, 10)
  t.same(page.messages, [])
  t.equal(page.position.offset, 1, 'its position stays')
  const member = new Recorder('late')
  const told = enter(hub, 'm:1', member, page.position)
  t.same(told, [{ position: page.position, recovered: true, missed: 0 }])
  const older = new Recorder('older')
  t.match(enter(hub, 'm:1', older, { offset: 0, epoch: page.position.epoch }), [{ recovered: false, reason: 'EXPIRED' }])
})

t.test('a room log drops what is older than its ttl, oldest first, and keeps the rest', async (t) => {
  const { RoomLog } = await import('../lib/history/log')
  const log = new RoomLog('E', 3)
  const entry = (offset: number, time: number): { offset: number, message: Encoded, time: number } => ({ offset, message: encodedFrom(Buffer.from(String(offset)), false), time })
  log.push(entry(1, 0))
  log.push(entry(2, 10))
  log.push(entry(3, 20))
  log.expire(15, 10)
  t.same(log.list(null, 10, 15, 10).map((kept) => kept.offset), [2, 3])
  t.equal(log.since(0, 15, 10), 'EXPIRED')
  t.same((log.since(1, 15, 10) as Array<{ offset: number }>).map((kept) => kept.offset), [2, 3])
  log.push(entry(4, 30))
  t.equal(log.since(0, 30, 100), 'EXPIRED', 'expired before it was trimmed')
  log.push(entry(5, 40))
  log.push(entry(6, 50))
  t.equal(log.since(2, 50, 100), 'TRIMMED', 'pushed out by the size')
})
