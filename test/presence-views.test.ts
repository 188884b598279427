import t from 'tap'
import Fastify from 'fastify'
import { createCounters } from '../lib/counters'
import { Policies } from '../lib/policies'
import { PRESENCE_RETRY_MS, type PresenceHolder, type PresenceIdentity } from '../lib/presence/identity'
import { Presence } from '../lib/presence/index'
import { MemoryPresence } from '../lib/presence/memory'
import { logCapture } from './helpers/logs'
import { until } from './helpers/wait'
import type { AdapterPresence, PresenceChange, PresenceCount, PresenceMember, PresenceSnapshot } from '../types/index'

t.setTimeout(180_000)

// The ordering of a presence room's writes and views, step by step: a store
// whose calls wait for the test (an implementation of AdapterPresence, the
// interface the Redis store implements; that one is tested on a real Redis in
// redis-presence.test.ts and presence-redis.test.ts), and holders that record
// the frames they are given.

interface Pending<T> { resolve: (value: T) => void, reject: (error: Error) => void }

class StepStore implements AdapterPresence {
  readonly updates: Array<{ room: string, changes: readonly PresenceChange[], replace: boolean } & Pending<void>> = []
  readonly reads: Array<{ room: string } & Pending<PresenceSnapshot>> = []
  started = 0
  stopped = 0
  start (): void { this.started++ }
  async update (room: string, changes: readonly PresenceChange[], replace: boolean): Promise<void> {
    return await new Promise((resolve, reject) => this.updates.push({ room, changes, replace, resolve, reject }))
  }

  async read (room: string): Promise<PresenceSnapshot> {
    return await new Promise((resolve, reject) => this.reads.push({ room, resolve, reject }))
  }

  async count (): Promise<PresenceCount> { return { members: 0, connections: 0 } }
  async stop (): Promise<void> { this.stopped++ }
}

class Holder implements PresenceHolder {
  readonly frames: Array<{ kind: string, header: any }> = []
  private readonly identity: PresenceIdentity
  constructor (key: string, meta = 'null') {
    this.identity = { key, meta }
  }

  presenceIdentity (): PresenceIdentity { return this.identity }
  presenceFrame (frame: Buffer): void {
    const end = frame.indexOf(0x0a)
    this.frames.push({ kind: String.fromCharCode(frame[0]), header: JSON.parse(frame.toString('utf8', 1, end)) })
  }
}

function setup (): { presence: Presence<Holder>, store: StepStore, counters: ReturnType<typeof createCounters>, lines: any[] } {
  const policies = Policies.from({ 'r*': { presence: true }, small: { presence: { listLimit: 1 } } }, (field) => { throw new Error(field) }) as Policies
  const { stream, lines } = logCapture()
  const log = Fastify({ logger: { level: 'info', stream } }).log
  const store = new StepStore()
  const counters = createCounters()
  return { presence: new Presence<Holder>(policies, store, counters, () => log), store, counters, lines }
}

const member = (key: string, connections = 1, meta: unknown = null): PresenceMember => ({ key, meta, connections })

t.test('a failed write: counted, logged once, and the room written whole once the store answers', async (t) => {
  const { presence, store, counters, lines } = setup()
  t.teardown(() => presence.close())
  const a = new Holder('a')
  const b = new Holder('b')
  presence.joined('r1', a)
  await until(() => store.updates.length === 1, 5000)
  store.updates[0].reject(new Error('store down'))
  presence.joined('r1', b)
  presence.joined('r2', b)
  await until(() => store.updates.length >= 2, 5000, 'the next window writes r1 and r2')
  // The window after the failure: r2's change goes as usual, r1 is written whole (its pending change is part of it).
  const window = store.updates.slice(1)
  t.same(window.map((u) => [u.room, u.replace, u.changes.map((c) => c.key)]).sort(), [['r1', true, ['a', 'b']], ['r2', false, ['b']]])
  for (const update of window) update.reject(new Error('still down'))
  await until(() => counters.presenceFailures === 3, 5000, 'three failures counted')
  t.equal(lines.filter((line) => line.msg.startsWith('Presence write failed')).length, 1, 'logged once per run of failures')
  presence.left('r1', a)
  presence.left('r1', b)
  await until(() => store.updates.length >= 5, PRESENCE_RETRY_MS * 5, 'retried whole')
  const retried = store.updates.slice(3)
  t.same(retried.map((u) => [u.room, u.replace, u.changes.map((c) => c.key)]).sort(), [['r1', true, []], ['r2', true, ['b']]], 'a room left by all is written whole as empty')
  for (const update of retried) update.resolve()
  await until(() => lines.some((line) => line.msg === 'Presence writes work again'), 5000)
  t.equal(counters.presenceUpdates, 2)
})

t.test('lost(): every room with members here is written whole', async (t) => {
  const { presence, store } = setup()
  t.teardown(() => presence.close())
  presence.joined('r1', new Holder('a'))
  await until(() => store.updates.length === 1, 5000)
  store.updates[0].resolve()
  presence.lost()
  await until(() => store.updates.length === 2, 5000)
  t.same([store.updates[1].replace, store.updates[1].changes], [true, [{ key: 'a', connections: 1, meta: 'null' }]])
  // Failed, with nothing else to write: tried again a second later.
  store.updates[1].reject(new Error('store down'))
  await until(() => store.updates.length === 3, PRESENCE_RETRY_MS * 5, 'tried again')
  t.equal(store.updates[2].replace, true)
  store.updates[2].resolve()
})

t.test('views: watchers wait for the first read; changes during a read are held; gaps and resyncs read again', async (t) => {
  const { presence, store } = setup()
  t.teardown(() => presence.close())
  const w1 = new Holder('w1')
  const w2 = new Holder('w2')
  presence.watch('r1', w1)
  presence.watch('r1', w2)
  t.equal(store.reads.length, 1, 'one read for both')
  presence.changed('r1', 5, [member('x')], [])
  presence.changed('r1', 6, [member('y')], [])
  store.reads[0].resolve({ seq: 5, members: [member('w1')] })
  await until(() => w2.frames.length > 0, 5000)
  t.same(w1.frames[0], { kind: 'p', header: { r: 'r1', v: 0, m: [['w1', 1, null], ['y', 1, null]] } }, 'seq 5 was in the read; 6 applied after it')
  t.same(w2.frames, w1.frames, 'both waiting watchers got it')

  // A gap: read again; the change that showed it is applied if the read is older.
  presence.changed('r1', 9, [member('z')], [])
  t.equal(store.reads.length, 2)
  presence.resync('r1')
  presence.changed('r1', 10, [], ['nobody', 'y'])
  store.reads[1].resolve({ seq: 8, members: [member('w1'), member('y'), member('q')] })
  await until(() => store.reads.length === 3, 5000, 'a resync during the read reads once more')
  store.reads[2].resolve({ seq: 10, members: [member('w1'), member('q'), member('z')] })
  await until(() => w1.frames.length === 2, 5000)
  t.same(w1.frames[1].kind, 'd')
  t.same(w1.frames[1].header.u.map((entry: unknown[]) => entry[0]).sort(), ['q', 'z'])
  t.same(w1.frames[1].header.l, ['y'])

  // A watcher that arrives while a read runs and others are told: a snapshot at once.
  presence.resync('r1')
  const w3 = new Holder('w3')
  presence.watch('r1', w3)
  t.equal(w3.frames.length, 1, 'snapshot from what the view has')
  // A read without q (it left meanwhile, as the store says), then seq 11 brings it back: no change told.
  store.reads[3].resolve({ seq: 10, members: [member('w1'), member('z')] })

  // The same member again (same connections, same meta): no frame. A meta change alone: a frame.
  presence.changed('r1', 11, [member('q')], [])
  presence.changed('r1', 12, [member('z', 1, { n: 1 })], [])
  await until(() => w1.frames.length === 3, 5000)
  t.same(w1.frames[2].header.u, [['z', 1, { n: 1 }]])
  t.same(w1.frames[2].header.l, [])
})

t.test('views: a read that ends after its last watcher left, or that fails, is dropped or tried again', async (t) => {
  const { presence, store, lines } = setup()
  t.teardown(() => presence.close())
  const w = new Holder('w')
  presence.watch('r1', w)
  presence.left('r1', w)
  store.reads[0].resolve({ seq: 1, members: [member('w')] })
  presence.watch('r2', w)
  store.reads[1].reject(new Error('read failed'))
  await until(() => store.reads.length === 3, PRESENCE_RETRY_MS * 5, 'read again a second later')
  t.ok(lines.some((line) => line.msg.startsWith('Presence read failed')))
  store.reads[2].resolve({ seq: 0, members: [] })
  await until(() => w.frames.length === 1, 5000)
  t.equal(w.frames[0].header.r, 'r2', 'the first room, left, never told anything')
  // A failed read of a room nobody watches any more: no retry.
  const x = new Holder('x')
  presence.watch('r3', x)
  presence.left('r3', x)
  store.reads[3].reject(new Error('read failed'))
  await new Promise((resolve) => setTimeout(resolve, PRESENCE_RETRY_MS + 200))
  t.equal(store.reads.length, 4, 'no retry for a room nobody watches')
})

t.test('counts above the list limit: a frame only when the counts change', async (t) => {
  const { presence, store } = setup()
  t.teardown(() => presence.close())
  const w = new Holder('w')
  presence.watch('small', w)
  store.reads[0].resolve({ seq: 1, members: [member('w'), member('a')] })
  await until(() => w.frames.length === 1, 5000)
  t.same(w.frames[0].header, { r: 'small', v: 0, n: 2, c: 2 })
  presence.changed('small', 2, [member('a')], [])
  presence.changed('small', 3, [member('b')], [])
  await until(() => w.frames.length === 2, 5000)
  t.same(w.frames[1].header, { r: 'small', v: 1, n: 3, c: 3 })
  // A window where the counts stay the same: nothing; a tick ran (another room's watcher was told).
  const other = new Holder('o')
  presence.watch('r9', other)
  store.reads[1].resolve({ seq: 1, members: [member('o')] })
  await until(() => other.frames.length === 1, 5000)
  presence.changed('small', 4, [member('b')], [])
  presence.changed('r9', 2, [member('p')], [])
  await until(() => other.frames.length === 2, 5000)
  // Connections alone change: a frame.
  presence.changed('small', 5, [member('b', 2)], [])
  await until(() => w.frames.length === 3, 5000)
  t.same(w.frames.map((frame) => frame.header.v), [0, 1, 2], 'the unchanged window sent nothing')
  t.same(w.frames[2].header, { r: 'small', v: 2, n: 3, c: 4 })
})

t.test('the memory store: replace removes the keys left out; meta kept when unchanged', async (t) => {
  const told: Array<[string, number, readonly PresenceMember[], readonly string[]]> = []
  const store = new MemoryPresence((room, seq, joined, left) => told.push([room, seq, joined, left]))
  store.start()
  await store.update('m', [{ key: 'a', connections: 2, meta: '{"n":1}' }, { key: 'b', connections: 1, meta: 'null' }], false)
  const meta = (await store.read('m')).members[0].meta
  await store.update('m', [{ key: 'a', connections: 3, meta: '{"n":1}' }], true)
  t.equal((await store.read('m')).members[0].meta, meta, 'the same meta object when its JSON did not change')
  t.same(told[1], ['m', 2, [{ key: 'a', meta: { n: 1 }, connections: 3 }], ['b']])
  await store.update('m', [{ key: 'a', connections: 3, meta: '{"n":1}' }, { key: 'zz', connections: 0, meta: 'null' }], false)
  t.equal(told.length, 2, 'no change, nothing told')
  t.same(await store.count('m'), { members: 1, connections: 3 })
  await store.update('m', [], true)
  t.same([await store.read('m'), await store.count('m')], [{ seq: 0, members: [] }, { members: 0, connections: 0 }], 'an empty room is forgotten')
  await store.stop()
})
