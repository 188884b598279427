import t from 'tap'
import { type ChildProcess, execFileSync, spawn } from 'node:child_process'
import { once } from 'node:events'
import { join } from 'node:path'
import { Redis } from 'ioredis'
import { RedisAdapter, redisAdapter } from '../lib/adapters/redis'
import type { PresenceTimings } from '../lib/adapters/redis/presence'
import { keySlot } from '../lib/adapters/redis/keys'
import { encode } from '../lib/adapters/redis/wire'
import type { PresenceChange, PresenceMember, RedisClient, RedisConnection } from '../types/index'
import { childEnv, root, stopChild } from './helpers/processes'
import { type Changed, RecordingHost } from './helpers/host'
import { REDIS_URL, RedisServer, deleteKeys, messagesOf, redisClient, uniquePrefix, withRedis } from './helpers/redis'
import { freePort, type TestContext } from './helpers/server'
import { until } from './helpers/wait'

// Bounded per file, not by tap's 30 s default: the file's waits are bounded themselves, and a busy 2-core machine stretches them.
t.setTimeout(180_000)

// The Redis adapter's presence store (lib/adapters/redis/presence.ts), driven
// directly through adapters whose host records what the adapter hands it: no
// plugin, a real Redis. Every test has its own prefix: other test files share
// this Redis. Heartbeats are shortened where a test waits for them.

// ------------------------------------------------------------------ helpers

interface Store {
  adapter: RedisAdapter
  host: RecordingHost
}

/** Prefixes whose keys are deleted when their test ends. */
const forgotten = new Set<string>()

interface StoreOptions {
  url?: string
  /** the adapter's connections (the test's own) instead of `url` */
  connection?: RedisConnection
  timings?: Partial<PresenceTimings>
}

/** An adapter (its own connections on `url`, or the given ones), initialised with a recording host; closed when the test ends. */
async function store (t: TestContext, prefix: string, { url = REDIS_URL, connection, timings }: StoreOptions = {}): Promise<Store> {
  const adapter = new RedisAdapter(connection ?? { url }, { prefix }, timings)
  const host = new RecordingHost()
  t.teardown(() => adapter.close())
  if (url === REDIS_URL && !forgotten.has(prefix)) {
    forgotten.add(prefix)
    t.teardown(() => deleteKeys(prefix))
  }
  await adapter.init(host)
  return { adapter, host }
}

/** The room's channel is subscribed: what changes from now on comes back to the adapter. */
async function follow ({ adapter, host }: Store, room: string): Promise<void> {
  const before = host.resynced.filter((name) => name === room).length
  adapter.roomActive(room)
  await until(() => host.resynced.filter((name) => name === room).length > before, 10000, `${room} subscribed`)
}

/** One key of an instance's part of a room, as the plugin writes it (meta as JSON text). */
const change = (key: string, connections: number, meta: unknown = null): PresenceChange => ({ key, connections, meta: JSON.stringify(meta) })
/** A member as the store gives it. */
const member = (key: string, connections: number, meta: unknown = null): PresenceMember => ({ key, meta, connections })

const byKey = (a: PresenceMember, b: PresenceMember): number => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0)
/** A change with its lists sorted: the order within one change is the store's. */
const sorted = (changed: Changed): Changed => ({ ...changed, joined: [...changed.joined].sort(byKey), left: [...changed.left].sort() })

/** The room's hash tag as the README documents it: `{<room>}`, or `{\0}<room>\0` for a name starting with `}`. */
const tagOf = (room: string): string => room.startsWith('}') ? `{\0}${room}\0` : `{${room}}`
const keysOf = (prefix: string, room: string, uid: string): Record<string, string> => ({
  pk: `${prefix}:pk:${tagOf(room)}`,
  pm: `${prefix}:pm:${tagOf(room)}`,
  pn: `${prefix}:pn:${tagOf(room)}`,
  pi: `${prefix}:pi:${tagOf(room)}`,
  inst: `${prefix}:p:${tagOf(room)}:${uid}`,
  pr: `${prefix}:pr:{${uid}}`,
  lock: `${prefix}:reap:{${uid}}`
})
const liveKey = (prefix: string): string => `${prefix}:pl`

/** Resolves once the instance `uid` has beaten `count` more times (its score in the live set moved). */
async function beats (redis: Redis, prefix: string, uid: string, count: number): Promise<void> {
  for (let i = 0; i < count; i++) {
    const before = await redis.zscore(liveKey(prefix), uid)
    await until(async () => {
      const now = await redis.zscore(liveKey(prefix), uid)
      return now !== null && now !== before
    }, 20000, `a beat of ${uid}`)
  }
}

/** Rejects when `promise` does not settle within `ms`. */
async function within<T> (promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  try {
    return await Promise.race([promise, new Promise<never>((_resolve, reject) => {
      timer = setTimeout(reject, ms, new Error(`${what} did not settle within ${ms} ms`))
    })])
  } finally {
    clearTimeout(timer)
  }
}

/** Short heartbeats, for the tests that wait for them; an instance is dead after 5 s (a busy machine can stall a process for seconds). */
const FAST: PresenceTimings = { beatInterval: 250, deadAfter: 5000 }
/** Short heartbeats, but nothing is ever taken for dead (the fake dead instances' beats are at the epoch). */
const BEATING: PresenceTimings = { beatInterval: 50, deadAfter: 3_600_000 }

interface Crashing {
  uid: string
  child: ChildProcess
  /** SIGKILL, resolved once it exited */
  kill (): Promise<void>
}

/**
 * Starts test/fixtures/presence-instance.ts in its own process: an adapter
 * that writes `members` in `room` and beats. Resolves once they are written
 * and its first beat is recorded. Stopped when the test ends.
 */
async function crashing (t: TestContext, redis: Redis, prefix: string, room: string, members: Array<[string, number, unknown]>): Promise<Crashing> {
  const child = spawn(process.execPath, ['--import', 'tsx', join(root, 'test', 'fixtures', 'presence-instance.ts')], {
    cwd: root,
    env: childEnv({ REDIS_URL, PREFIX: prefix, ROOM: room, MEMBERS: JSON.stringify(members), BEAT: String(FAST.beatInterval), DEAD_AFTER: String(FAST.deadAfter) }),
    stdio: ['ignore', 'pipe', 'pipe']
  })
  const exited = once(child, 'exit')
  t.teardown(() => stopChild(child, exited, 5000))
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => { stdout += chunk })
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk })
  await until(() => stdout.includes('\n') || child.exitCode !== null, 30000, 'the crashing instance started')
  if (!stdout.includes('\n')) throw new Error(`the crashing instance exited: ${stderr}`)
  const { uid } = JSON.parse(stdout.split('\n')[0]) as { uid: string }
  await until(async () => await redis.zscore(liveKey(prefix), uid) !== null, 10000, 'its first beat')
  return {
    uid,
    child,
    async kill () {
      child.kill('SIGKILL')
      await exited
    }
  }
}

/**
 * Makes `uid` look like an instance that died long ago: its beat at the epoch.
 * Its entries are whatever it (an adapter of the test that never beats) wrote.
 */
async function dead (redis: Redis, prefix: string, uid: string, score = 1): Promise<void> {
  await redis.zadd(liveKey(prefix), score, uid)
}

function hasRedisServer (): boolean {
  try {
    execFileSync('redis-server', ['--version'], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

/** A test on a redis-server of its own (killed, blocked, restarted): skipped without redis-server, a failure under CI. */
function withRedisServer (name: string, fn: (t: tap.Test) => Promise<void>): void {
  if (!hasRedisServer() && process.env.CI === 'true') t.fail(`${name}: redis-server is not on the PATH, and CI=true`)
  t.test(name, { skip: hasRedisServer() ? false : 'redis-server is not on the PATH' }, fn)
}

// ------------------------------------------------------------------ without Redis

t.test('with Redis unreachable, update, read and count reject promptly; none throws; stop() resolves', async (t) => {
  const port = await freePort()
  const { adapter } = await store(t, uniquePrefix('down'), { url: `redis://127.0.0.1:${port}` })
  adapter.presence.start()
  const calls: Array<[string, () => Promise<unknown>]> = [
    ['update', () => adapter.presence.update('r', [change('k', 1)], false)],
    ['read', () => adapter.presence.read('r')],
    ['count', () => adapter.presence.count('r')]
  ]
  for (const [name, call] of calls) {
    const started = Date.now()
    let pending: Promise<unknown> | undefined
    t.doesNotThrow(() => { pending = call() }, `${name} does not throw`)
    await t.rejects(within(pending as Promise<unknown>, 2000, name), { message: /^Redis connection is / }, `${name} rejects`)
    t.ok(Date.now() - started < 2000, `${name} rejected within 2 s`)
  }
  // Its entries (had it any) are the other instances' to remove, once its beats are missed.
  await within(adapter.presence.stop(), 2000, 'stop')
  t.pass('stop() resolves')
})

t.test('a closed adapter\'s presence rejects; so does one whose client cannot run commands with Buffer replies', async (t) => {
  const closed = redisAdapter({ url: `redis://127.0.0.1:${await freePort()}` })
  await closed.close()
  await t.rejects(closed.presence.update('r', [], true), { message: 'the Redis adapter is closed' })
  await t.rejects(closed.presence.read('r'), { message: 'the Redis adapter is closed' })
  await t.rejects(closed.presence.count('r'), { message: 'the Redis adapter is closed' })
  closed.presence.start()
  await closed.presence.stop()
  t.pass('start() and stop() after close do nothing')

  // A client of the app's own, ready but without callBuffer (not an ioredis one).
  const fake = (): RedisClient => ({
    status: 'ready',
    publish: async () => 0,
    subscribe: async () => 0,
    unsubscribe: async () => 0,
    connect: async () => {},
    quit: async () => 'OK',
    disconnect: () => {},
    on: () => {},
    removeListener: () => {}
  })
  const adapter = redisAdapter({ client: fake(), subscriber: fake() })
  await t.rejects(adapter.presence.update('r', [change('k', 1)], false), { message: /has no callBuffer\(\)/ })
  await t.rejects(adapter.presence.read('r'), { message: /has no callBuffer\(\)/ })
  await t.rejects(adapter.presence.count('r'), { message: /has no callBuffer\(\)/ })
  await adapter.presence.stop()
  t.pass('stop() of a store never used does nothing')
})

// ------------------------------------------------------------------ with Redis

withRedis(t, 'the presence store against a real Redis', async (t) => {
  t.test('two instances writing one key: one member, connections summed; it leaves when both are at 0', async (t) => {
    const prefix = uniquePrefix('sum')
    const a = await store(t, prefix)
    const b = await store(t, prefix)
    await follow(a, 'lobby')
    await follow(b, 'lobby')
    const redis = redisClient(t)
    const ka = keysOf(prefix, 'lobby', a.adapter.uid)
    const kb = keysOf(prefix, 'lobby', b.adapter.uid)
    const ann = { name: 'Ann' }

    await a.adapter.presence.update('lobby', [change('ann', 1, ann)], false)
    await b.adapter.presence.update('lobby', [change('ann', 2, ann)], false)
    t.same(await a.adapter.presence.count('lobby'), { members: 1, connections: 3 })
    t.same(await b.adapter.presence.read('lobby'), { seq: 2, members: [member('ann', 3, ann)] })
    t.same(await redis.hgetall(ka.inst), { ann: '1' }, 'each instance\'s part')
    t.same(await redis.hgetall(kb.inst), { ann: '2' })
    t.same((await redis.smembers(ka.pi)).sort(), [a.adapter.uid, b.adapter.uid].sort(), 'the instances with entries in the room')
    t.same(await redis.smembers(ka.pr), ['lobby'], 'the rooms of each instance')
    t.same(await redis.smembers(kb.pr), ['lobby'])

    await a.adapter.presence.update('lobby', [change('ann', 0, ann)], false)
    t.same(await b.adapter.presence.count('lobby'), { members: 1, connections: 2 }, 'one tab closed: still a member')
    t.same(await redis.smembers(ka.pr), [], 'A has no entries in the room any more')
    t.same(await redis.smembers(ka.pi), [b.adapter.uid])
    await b.adapter.presence.update('lobby', [change('ann', 0, ann)], false)
    t.same(await a.adapter.presence.count('lobby'), { members: 0, connections: 0 })
    t.same(await a.adapter.presence.read('lobby'), { seq: 4, members: [] })

    const expected: Changed[] = [
      { room: 'lobby', seq: 1, joined: [member('ann', 1, ann)], left: [] },
      { room: 'lobby', seq: 2, joined: [member('ann', 3, ann)], left: [] },
      { room: 'lobby', seq: 3, joined: [member('ann', 2, ann)], left: [] },
      { room: 'lobby', seq: 4, joined: [], left: ['ann'] }
    ]
    await until(() => a.host.changes.length === 4 && b.host.changes.length === 4, 10000, 'every change on both instances')
    t.same(a.host.changes, expected, 'the writer gets its own changes too')
    t.same(b.host.changes, expected, 'in the same order on both')
    t.equal(a.adapter.stats().redisReceived, 4, 'counted as received')
    t.equal(a.adapter.stats().redisPresenceReaped, 0)

    t.same(await redis.exists(ka.pk, ka.pm, ka.pi, ka.inst, kb.inst, ka.pr, kb.pr), 0, 'nothing left of the members')
    t.same(await redis.hgetall(ka.pn), { c: '0', s: '4' }, 'the seq stays: the next change is 5')
  })

  t.test('seq goes up by exactly 1 per update that changes something; nothing is published for one that does not', async (t) => {
    const prefix = uniquePrefix('seq')
    const one = await store(t, prefix)
    await follow(one, 'r')
    const { presence } = one.adapter
    await presence.update('r', [change('k', 1)], false)
    await presence.update('r', [change('k', 1)], false)
    await presence.update('r', [], false)
    await presence.update('r', [change('nobody', 0)], false)
    await presence.update('r', [change('k', 1)], true)
    t.same(await presence.read('r'), { seq: 1, members: [member('k', 1)] }, 'the no-op updates did not count')
    await presence.update('r', [change('k', 2)], false)
    await presence.update('r', [change('x', 1), change('y', 3)], false)
    await presence.update('r', [change('k', 2, { now: 'meta' })], false)
    await presence.update('r', [change('x', 0), change('y', 0)], false)

    await until(() => one.host.changes.length === 5, 10000, 'the five changes')
    t.same(one.host.changes.map(sorted), [
      { room: 'r', seq: 1, joined: [member('k', 1)], left: [] },
      { room: 'r', seq: 2, joined: [member('k', 2)], left: [] },
      { room: 'r', seq: 3, joined: [member('x', 1), member('y', 3)], left: [] },
      { room: 'r', seq: 4, joined: [member('k', 2, { now: 'meta' })], left: [] },
      { room: 'r', seq: 5, joined: [], left: ['x', 'y'] }
    ], 'one frame per update that changed something, with every change of it, numbered without gaps')
    t.same(await presence.count('r'), { members: 1, connections: 2 })
    // A frame published for a no-op would have come before the next one, on the same channel.
    await presence.update('r', [change('k', 2, { now: 'meta' })], false)
    await presence.update('r', [change('z', 1)], false)
    await until(() => one.host.changes.length === 6, 10000, 'the next change')
    t.equal(one.host.changes[5].seq, 6)
  })

  t.test('replace: the given keys are all of the instance\'s in the room; the others are removed', async (t) => {
    const prefix = uniquePrefix('replace')
    const a = await store(t, prefix)
    const b = await store(t, prefix)
    await follow(a, 'r')
    const redis = redisClient(t)
    await b.adapter.presence.update('r', [change('a', 1)], false)
    await a.adapter.presence.update('r', [change('a', 1), change('b', 1), change('c', 2)], false)
    await a.adapter.presence.update('r', [change('b', 2, 'B'), change('d', 1)], true)
    await until(() => a.host.changes.length === 3, 10000, 'the three changes')
    t.same(sorted(a.host.changes[2]), {
      room: 'r',
      seq: 3,
      joined: [member('a', 1), member('b', 2, 'B'), member('d', 1)],
      left: ['c']
    }, 'a stays (B has it), b changed, c left, d joined')
    t.same(await redis.hgetall(keysOf(prefix, 'r', a.adapter.uid).inst), { b: '2', d: '1' })
    t.same(await a.adapter.presence.count('r'), { members: 3, connections: 4 })

    // Replace with nothing: every entry of the instance goes.
    await a.adapter.presence.update('r', [], true)
    await until(() => a.host.changes.length === 4, 10000, 'the fourth change')
    t.same(sorted(a.host.changes[3]), { room: 'r', seq: 4, joined: [], left: ['b', 'd'] })
    t.same(await a.adapter.presence.read('r'), { seq: 4, members: [member('a', 1)] })
    t.same(await redis.smembers(keysOf(prefix, 'r', a.adapter.uid).pr), [])
    t.same(await redis.smembers(keysOf(prefix, 'r', a.adapter.uid).pi), [b.adapter.uid])
  })

  t.test('meta: the last one written wins; a change of meta alone is a change; a key leaving does not write its meta', async (t) => {
    const prefix = uniquePrefix('meta')
    const a = await store(t, prefix)
    const b = await store(t, prefix)
    await follow(a, 'r')
    const rich = { name: 'Zoë "quoted" \\ \n\t\u0001 🎉', tags: ['a', { b: null }], n: -1.5e-7, ok: true, nothing: null, empty: {}, list: [] }
    await a.adapter.presence.update('r', [change('ann', 1, { name: 'Ann' })], false)
    await a.adapter.presence.update('r', [change('ann', 1, { name: 'Ann B' })], false)
    await b.adapter.presence.update('r', [change('ann', 1, { name: 'Ann' })], false)
    await a.adapter.presence.update('r', [change('ann', 1, { name: 'Ann' })], false)
    await a.adapter.presence.update('r', [change('ann', 0, { name: 'Zed' })], false)
    await b.adapter.presence.update('r', [change('zoe', 2, rich), change('num', 1, 42), change('str', 1, 'text')], false)
    await until(() => a.host.changes.length === 5, 10000, 'the five changes')
    t.same(a.host.changes.map(sorted), [
      { room: 'r', seq: 1, joined: [member('ann', 1, { name: 'Ann' })], left: [] },
      { room: 'r', seq: 2, joined: [member('ann', 1, { name: 'Ann B' })], left: [] },
      { room: 'r', seq: 3, joined: [member('ann', 2, { name: 'Ann' })], left: [] },
      { room: 'r', seq: 4, joined: [member('ann', 1, { name: 'Ann' })], left: [] },
      { room: 'r', seq: 5, joined: [member('num', 1, 42), member('str', 1, 'text'), member('zoe', 2, rich)], left: [] }
    ], 'the same meta again changes nothing; the meta of a key\'s last connection here is not written')
    t.same([...(await a.adapter.presence.read('r')).members].sort(byKey), [
      member('ann', 1, { name: 'Ann' }), member('num', 1, 42), member('str', 1, 'text'), member('zoe', 2, rich)
    ], 'read() parses the metas')
    const redis = redisClient(t)
    t.equal(await redis.hget(keysOf(prefix, 'r', '').pm, 'zoe'), JSON.stringify(rich), 'kept as the JSON text written')
  })

  t.test('frames byte for byte the wire format; rooms and keys with unicode, quotes, braces keep their own keys', async (t) => {
    const prefix = uniquePrefix('names')
    const one = await store(t, prefix)
    const redis = redisClient(t)
    const raw = redisClient(t)
    const frames: Array<[string, Buffer]> = []
    raw.on('messageBuffer', (channel: Buffer, payload: Buffer) => frames.push([channel.toString(), payload]))
    const rooms = ['a}{b ünï 🎉 {x}', 'say "hi" \\ \u0001\n\u007f\u2028', '{', '}', '{a}', 'a', 'x'.repeat(256)]
    await raw.subscribe(...rooms.map((room) => `${prefix}:room:${room}`))
    const key = 'k "q" \\ \u0000\u001f\b\f\n\r\t é 🎉 {x}'
    const meta = { name: 'ü "x"', n: [1, 2] }
    for (const room of rooms) await one.adapter.presence.update(room, [change(key, 2, meta), change(room, 1)], false)
    await until(() => frames.length === rooms.length, 10000, 'a frame per room')
    const uid = Buffer.from(one.adapter.uid, 'hex')
    for (const [i, room] of rooms.entries()) {
      t.equal(frames[i][0], `${prefix}:room:${room}`, 'on the room\'s channel')
      t.same(frames[i][1], encode(uid, { kind: 'presence', room, seq: 1, joined: [member(key, 2, meta), member(room, 1)], left: [] }),
        `what the script publishes is what the Node encoder writes (room ${i})`)
      const read = await one.adapter.presence.read(room)
      t.same({ ...read, members: [...read.members].sort(byKey) }, { seq: 1, members: [member(key, 2, meta), member(room, 1)].sort(byKey) })
    }

    // Every key of a room has the room as its hash tag.
    const all = (await redis.keys(`${prefix}:*`)).sort()
    const expected = [`${prefix}:pr:{${one.adapter.uid}}`]
    for (const room of rooms) {
      const keys = keysOf(prefix, room, one.adapter.uid)
      expected.push(keys.pk, keys.pm, keys.pn, keys.pi, keys.inst)
    }
    t.same(all, expected.sort(), 'the documented keys, and only those')
    t.same((await redis.smembers(`${prefix}:pr:{${one.adapter.uid}}`)).sort(), [...rooms].sort())
    t.ok(all.every((name) => name === `${prefix}:pr:{${one.adapter.uid}}` || rooms.some((room) => name.includes(tagOf(room)))), '{room} in every room key')
    for (const [i, room] of rooms.entries()) {
      const { pk, pm, pn, pi, inst } = keysOf(prefix, room, one.adapter.uid)
      const slots = new Set([pk, pm, pn, pi, inst, `${prefix}:room:${tagOf(room)}`].map(keySlot))
      // The room in the message would be raw control characters in the TAP stream: its index instead.
      t.equal(slots.size, 1, `the keys of room ${i} and its cluster channel hash to one slot`)
    }
  })

  t.test('count() is the number of members and of connections; read() lists them all', async (t) => {
    const prefix = uniquePrefix('count')
    const a = await store(t, prefix)
    const b = await store(t, prefix)
    t.same(await a.adapter.presence.count('empty'), { members: 0, connections: 0 }, 'a room nobody wrote')
    t.same(await a.adapter.presence.read('empty'), { seq: 0, members: [] })

    const keys = Array.from({ length: 300 }, (_, i) => `user-${i}`)
    await a.adapter.presence.update('big', keys.map((key, i) => change(key, 1 + (i % 3), { i })), false)
    await b.adapter.presence.update('big', keys.slice(200).concat(['b-0', 'b-1']).map((key) => change(key, 1, { b: key })), false)
    // A: 300 keys, 100 × (1 + 2 + 3) = 600 connections; B: 100 of them again and 2 more, 102 connections.
    t.same(await a.adapter.presence.count('big'), { members: 302, connections: 702 })
    const { seq, members } = await b.adapter.presence.read('big')
    t.equal(seq, 2)
    t.equal(members.length, 302)
    const found = new Map(members.map((one) => [one.key, one]))
    t.same(found.get('user-4'), member('user-4', 2, { i: 4 }))
    t.same(found.get('user-250'), member('user-250', 1 + (250 % 3) + 1, { b: 'user-250' }), 'summed; the meta B wrote last')
    t.same(found.get('b-1'), member('b-1', 1, { b: 'b-1' }))

    await a.adapter.presence.update('big', [], true)
    t.same(await b.adapter.presence.count('big'), { members: 102, connections: 102 })
    await b.adapter.presence.update('big', [], true)
    t.same(await b.adapter.presence.count('big'), { members: 0, connections: 0 })
  })

  t.test('updates of one room sent together: the room is listed for the instance while it has entries there', async (t) => {
    const prefix = uniquePrefix('pending')
    const one = await store(t, prefix)
    const redis = redisClient(t)
    const { pr, inst } = keysOf(prefix, 'r', one.adapter.uid)
    const { presence } = one.adapter
    await presence.update('r', [change('k', 1)], false)
    t.same(await redis.smembers(pr), ['r'])
    await presence.update('r', [change('k', 0)], false)
    t.same(await redis.smembers(pr), [])

    // The second leaves none, the third gives some again: the second must not unlist the room.
    await Promise.all([
      presence.update('r', [change('k', 1)], false),
      presence.update('r', [change('k', 0)], false),
      presence.update('r', [change('k', 1)], false)
    ])
    t.same(await redis.hgetall(inst), { k: '1' })
    t.same(await redis.smembers(pr), ['r'], 'listed')
    // Both leave none: the last one unlists it.
    await Promise.all([
      presence.update('r', [change('k', 0)], false),
      presence.update('r', [change('j', 0)], false)
    ])
    t.same(await redis.smembers(pr), [], 'unlisted')
    t.same(await presence.count('r'), { members: 0, connections: 0 })
  })

  t.test('scripts Redis does not have (after SCRIPT FLUSH) are sent again; a script error rejects', async (t) => {
    const prefix = uniquePrefix('scripts')
    const one = await store(t, prefix)
    const redis = redisClient(t)
    await redis.script('FLUSH')
    await one.adapter.presence.update('r', [change('k', 1)], false)
    await redis.script('FLUSH')
    t.same(await one.adapter.presence.read('r'), { seq: 1, members: [member('k', 1)] })
    await redis.script('FLUSH')
    t.same(await one.adapter.presence.count('r'), { members: 1, connections: 1 })

    // A key of the room's that is not what the store wrote.
    await redis.set(keysOf(prefix, 'broken', '').pk, 'not a hash')
    await t.rejects(one.adapter.presence.update('broken', [change('k', 1)], false), { message: /WRONGTYPE/ })
    await t.rejects(one.adapter.presence.read('broken'), { message: /WRONGTYPE/ })
    await t.rejects(one.adapter.presence.count('broken'), { message: /WRONGTYPE/ })

    // Counts the script could not add up are refused before anything is sent.
    for (const bad of [1.5, -1, Number.NaN, 2 ** 53]) {
      await t.rejects(one.adapter.presence.update('r', [change('j', 1), change('k', bad)], false), { name: 'TypeError', message: /must be a count/ }, String(bad))
    }
    t.same(await one.adapter.presence.read('r'), { seq: 1, members: [member('k', 1)] }, 'nothing written')
  })

  t.test('an instance SIGKILLed in its own process: the survivor publishes its members\' leaves; the count drops to 0', async (t) => {
    const prefix = uniquePrefix('crash')
    const redis = redisClient(t)
    const survivor = await store(t, prefix, { timings: FAST })
    await follow(survivor, 'room')
    survivor.adapter.presence.start()
    await survivor.adapter.presence.update('room', [change('dan', 1, { name: 'Dan' })], false)
    const child = await crashing(t, redis, prefix, 'room', [['ann', 1, { name: 'Ann' }], ['bob', 2, null], ['dan', 1, { name: 'Dan (2)' }]])
    const keys = keysOf(prefix, 'room', child.uid)
    await until(() => survivor.host.changes.length === 2, 10000, 'the crashing instance\'s members')
    t.same(sorted(survivor.host.changes[1]), {
      room: 'room', seq: 2, joined: [member('ann', 1, { name: 'Ann' }), member('bob', 2), member('dan', 2, { name: 'Dan (2)' })], left: []
    })
    t.same(await survivor.adapter.presence.count('room'), { members: 3, connections: 5 })

    const killed = Date.now()
    await child.kill()
    await until(() => survivor.adapter.stats().redisPresenceReaped === 1, 30000, 'the dead instance removed')
    const elapsed = Date.now() - killed
    t.ok(elapsed < FAST.deadAfter + FAST.beatInterval + 5000, `within ${FAST.deadAfter} ms and a beat (and slack): ${elapsed} ms`)
    await until(() => survivor.host.changes.length === 3, 10000, 'the leaves')
    t.same(sorted(survivor.host.changes[2]), { room: 'room', seq: 3, joined: [member('dan', 1, { name: 'Dan (2)' })], left: ['ann', 'bob'] },
      'its members left; the one the survivor has too stays, with its own connections')
    t.same(await survivor.adapter.presence.count('room'), { members: 1, connections: 1 })
    await survivor.adapter.presence.update('room', [change('dan', 0)], false)
    t.same(await survivor.adapter.presence.count('room'), { members: 0, connections: 0 })

    t.equal(await redis.zscore(liveKey(prefix), child.uid), null, 'forgotten')
    t.equal(await redis.exists(keys.pr, keys.inst, keys.lock), 0, 'its room list, its entries and the lock are gone')
    t.same(await redis.smembers(keys.pi), [])
    t.match(messagesOf(survivor.host.lines, 'Removed the presence entries of an instance that stopped heartbeating'), [{ level: 30, uid: child.uid, rooms: 1 }])
  })

  t.test('two survivors: exactly one of them removes the dead instance; both see the leaves once', async (t) => {
    const prefix = uniquePrefix('survivors')
    const redis = redisClient(t)
    const s1 = await store(t, prefix, { timings: FAST })
    const s2 = await store(t, prefix, { timings: FAST })
    for (const survivor of [s1, s2]) {
      await follow(survivor, 'room')
      survivor.adapter.presence.start()
    }
    const child = await crashing(t, redis, prefix, 'room', [['ann', 1, null], ['bob', 1, null], ['cy', 3, { x: 1 }]])
    await until(() => s1.host.changes.length === 1 && s2.host.changes.length === 1, 10000, 'the members on both')
    await child.kill()
    const reaped = (): number => s1.adapter.stats().redisPresenceReaped + s2.adapter.stats().redisPresenceReaped
    await until(() => reaped() >= 1, 30000, 'the dead instance removed')
    await until(() => s1.host.changes.length === 2 && s2.host.changes.length === 2, 10000, 'the leaves on both')
    // Beats are one at a time: two more of each, and any removal either had under way is over.
    await Promise.all([beats(redis, prefix, s1.adapter.uid, 2), beats(redis, prefix, s2.adapter.uid, 2)])
    t.equal(reaped(), 1, 'one removal')
    for (const { host } of [s1, s2]) {
      t.same(host.changes.map(sorted), [
        { room: 'room', seq: 1, joined: [member('ann', 1), member('bob', 1), member('cy', 3, { x: 1 })], left: [] },
        { room: 'room', seq: 2, joined: [], left: ['ann', 'bob', 'cy'] }
      ])
    }
    t.same(await s1.adapter.presence.count('room'), { members: 0, connections: 0 })
  })

  t.test('the removal skips an instance another is removing (its lock), gone meanwhile, or beating again', async (t) => {
    const prefix = uniquePrefix('lock')
    const redis = redisClient(t)
    // The survivor's connections are the test's: what the test sends on them goes in order with the survivor's commands.
    const pub = redisClient(t)
    const survivor = await store(t, prefix, { connection: { client: pub, subscriber: redisClient(t) }, timings: BEATING })
    const [held, x, y, z] = [await store(t, prefix), await store(t, prefix), await store(t, prefix), await store(t, prefix)]
    for (const [i, other] of [held, x, y, z].entries()) {
      await other.adapter.presence.update(`room-${i}`, [change(`k${i}`, 1)], false)
      await dead(redis, prefix, other.adapter.uid, i + 1)
    }
    const heldKeys = keysOf(prefix, 'room-0', held.adapter.uid)
    await redis.set(heldKeys.lock, 'another instance')

    // Once X is removed, and before the survivor looks at Y and Z (found dead by the same beat): Y is
    // removed by someone else, Z beats again.
    let hooked = false
    survivor.host.onLog = (msg) => {
      if (hooked || msg !== 'Removed the presence entries of an instance that stopped heartbeating') return
      hooked = true
      pub.zrem(liveKey(prefix), y.adapter.uid).catch(() => {})
      pub.zadd(liveKey(prefix), Date.now() + 3_600_000, z.adapter.uid).catch(() => {})
    }
    survivor.adapter.presence.start()
    await until(() => survivor.adapter.stats().redisPresenceReaped === 1, 10000, 'X removed')
    await beats(redis, prefix, survivor.adapter.uid, 2)
    t.equal(survivor.adapter.stats().redisPresenceReaped, 1, 'only X')
    t.same(await survivor.adapter.presence.count('room-1'), { members: 0, connections: 0 }, 'X\'s entries are gone')
    for (const [i, other] of [[0, held], [2, y], [3, z]] as const) {
      t.same(await survivor.adapter.presence.count(`room-${i}`), { members: 1, connections: 1 }, `the entries of the instance ${i} stay`)
      t.equal(await redis.exists(keysOf(prefix, `room-${i}`, other.adapter.uid).pr), 1)
    }
    t.equal(await redis.get(heldKeys.lock), 'another instance', 'a lock of another instance is left alone')
    t.equal(await redis.exists(keysOf(prefix, '', y.adapter.uid).lock, keysOf(prefix, '', z.adapter.uid).lock), 0, 'the locks it took are let go')
    t.same(await redis.zscore(liveKey(prefix), held.adapter.uid), '1', 'still listed, for whoever holds its lock')

    // The lock expires (sped up here): the next beat removes it.
    await redis.del(heldKeys.lock)
    await until(() => survivor.adapter.stats().redisPresenceReaped === 2, 10000, 'the locked one removed once its lock is gone')
    t.same(await survivor.adapter.presence.count('room-0'), { members: 0, connections: 0 })
  })

  t.test('a removal that fails keeps the lock and the dead instance: tried again once the lock expires', async (t) => {
    const prefix = uniquePrefix('reapfail')
    const redis = redisClient(t)
    const survivor = await store(t, prefix, { timings: BEATING })
    const gone = await store(t, prefix)
    await gone.adapter.presence.update('ok', [change('k', 1)], false)
    await gone.adapter.presence.update('bad', [change('j', 1)], false)
    const bad = keysOf(prefix, 'bad', gone.adapter.uid)
    await redis.del(bad.pk)
    await redis.set(bad.pk, 'not a hash')
    await dead(redis, prefix, gone.adapter.uid)
    survivor.adapter.presence.start()
    const failed = 'Failed to remove the presence entries of a dead instance: tried again in a minute'
    await until(() => messagesOf(survivor.host.lines, failed).length === 1, 10000, 'the failure logged')
    t.match(messagesOf(survivor.host.lines, failed)[0], { level: 50, uid: gone.adapter.uid, err: { message: /WRONGTYPE/ } })
    await beats(redis, prefix, survivor.adapter.uid, 2)
    t.equal(messagesOf(survivor.host.lines, failed).length, 1, 'not again while the lock holds')
    t.equal(survivor.adapter.stats().redisPresenceReaped, 0)
    t.equal(await redis.get(bad.lock), survivor.adapter.uid, 'its lock')
    const ttl = await redis.pttl(bad.lock)
    t.ok(ttl > 0 && ttl <= 60_000, `expiring in ${ttl} ms`)
    t.same(await redis.zscore(liveKey(prefix), gone.adapter.uid), '1', 'still listed')

    // Repaired, and the lock expired (sped up here).
    await redis.del(bad.pk, bad.lock)
    await until(() => survivor.adapter.stats().redisPresenceReaped === 1, 10000, 'removed at last')
    t.same(await survivor.adapter.presence.count('ok'), { members: 0, connections: 0 })
    t.equal(await redis.exists(bad.pr, bad.inst, keysOf(prefix, 'ok', gone.adapter.uid).inst), 0)
  })

  t.test('presenceLost(): at the first beat, and when the instance was taken off the live set while alive', async (t) => {
    const prefix = uniquePrefix('lost')
    const redis = redisClient(t)
    // start() before init(): the beats wait for the host.
    const adapter = new RedisAdapter({ url: REDIS_URL }, { prefix }, BEATING)
    t.teardown(() => adapter.close())
    t.teardown(() => deleteKeys(prefix))
    adapter.presence.start()
    adapter.presence.start()
    const host = new RecordingHost()
    await adapter.init(host)
    await until(() => host.lost === 1, 10000, 'the first beat')
    const { uid } = adapter
    await beats(redis, prefix, uid, 2)
    t.equal(host.lost, 1, 'once: later beats find it there')

    // Reaped while alive: its entries may be gone; the host writes them again.
    await redis.zrem(liveKey(prefix), uid)
    await until(() => host.lost === 2, 10000, 'lost after it was taken off')
    await beats(redis, prefix, uid, 1)
    t.equal(host.lost, 2)

    // A host that throws: logged, and the beats go on.
    host.failLost = true
    await redis.zrem(liveKey(prefix), uid)
    await until(() => host.lost === 3, 10000, 'lost again')
    t.match(messagesOf(host.lines, 'Failed to write the presence entries of this instance again'), [{ level: 50, err: { message: 'presenceLost exploded' } }])
    await beats(redis, prefix, uid, 1)

    // A beat that fails: logged; the beats go on.
    host.failLost = false
    await redis.del(liveKey(prefix))
    await redis.set(liveKey(prefix), 'not a zset')
    await until(() => messagesOf(host.lines, 'Presence heartbeat failed').length >= 1, 10000, 'the failure logged')
    t.match(messagesOf(host.lines, 'Presence heartbeat failed')[0], { level: 40, err: { message: /WRONGTYPE/ } })
    await redis.del(liveKey(prefix))
    await until(() => host.lost === 4, 10000, 'beating again')

    await adapter.close()
    adapter.presence.start()
    t.pass('start() after close does nothing')
  })

  t.test('stop(): the instance\'s entries are removed (leaves published), its room list and beat too; safe twice, before close and after', async (t) => {
    const prefix = uniquePrefix('stop')
    const redis = redisClient(t)
    const other = await store(t, prefix)
    await follow(other, 'r1')
    const one = await store(t, prefix, { timings: BEATING })
    one.adapter.presence.start()
    await until(() => one.host.lost === 1, 10000, 'the first beat')
    await one.adapter.presence.update('r1', [change('k', 1), change('shared', 1)], false)
    await one.adapter.presence.update('r2', [change('j', 2)], false)
    await other.adapter.presence.update('r1', [change('shared', 1)], false)
    await one.adapter.presence.stop()
    await until(() => other.host.changes.length === 3, 10000, 'the leaves')
    t.same(sorted(other.host.changes[2]), { room: 'r1', seq: 3, joined: [member('shared', 1)], left: ['k'] })
    t.same(await other.adapter.presence.count('r1'), { members: 1, connections: 1 })
    t.same(await other.adapter.presence.count('r2'), { members: 0, connections: 0 })
    const keys = keysOf(prefix, 'r1', one.adapter.uid)
    t.equal(await redis.zscore(liveKey(prefix), one.adapter.uid), null, 'off the live set')
    t.equal(await redis.exists(keys.pr, keys.inst), 0)
    await one.adapter.presence.stop()
    await one.adapter.close()
    await one.adapter.presence.stop()
    t.equal(other.host.changes.length, 3, 'nothing more')

    // Never started, nothing written: nothing to do.
    const idlePrefix = uniquePrefix('stop-idle')
    const idle = await store(t, idlePrefix)
    await idle.adapter.presence.stop()
    t.same(await redis.keys(`${idlePrefix}:*`), [], 'no key written')
  })

  t.test('a stop() that fails leaves the instance on the live set: the others remove it when its beats are missed', async (t) => {
    const prefix = uniquePrefix('stopfail')
    const redis = redisClient(t)
    const one = await store(t, prefix, { timings: BEATING })
    one.adapter.presence.start()
    await until(() => one.host.lost === 1, 10000, 'the first beat')
    await one.adapter.presence.update('r', [change('k', 1)], false)
    const keys = keysOf(prefix, 'r', one.adapter.uid)
    await redis.del(keys.pr)
    await redis.set(keys.pr, 'not a set')
    await one.adapter.presence.stop()
    t.match(messagesOf(one.host.lines, 'Presence entries of this instance not removed at close: the other instances remove them when its heartbeat is missed'),
      [{ level: 40, err: { message: /WRONGTYPE/ } }])
    t.not(await redis.zscore(liveKey(prefix), one.adapter.uid), null, 'still on the live set')
    t.same(await one.adapter.presence.count('r'), { members: 1, connections: 1 })
  })
})

// ------------------------------------------------------------------ on a redis-server of the test's own

withRedisServer('a Redis restart (presence lost): calls reject while it is away; presenceLost() once it is back, empty', async (t) => {
  const server = await RedisServer.start(t)
  const prefix = uniquePrefix('restart')
  const one = await store(t, prefix, { url: server.url, timings: BEATING })
  one.adapter.presence.start()
  await until(() => one.host.lost === 1, 10000, 'the first beat')
  await one.adapter.presence.update('r', [change('k', 1)], false)

  await server.kill()
  // Both connections: the subscriber may notice first, and the store runs on the publishing one.
  const publisher = (one.adapter as unknown as { pub: Redis }).pub
  await until(() => one.adapter.stats().redisConnected === 0 && publisher.status !== 'ready', 10000, 'the connections dropped')
  const started = Date.now()
  await t.rejects(one.adapter.presence.update('r', [change('k', 2)], false), { message: /^Redis connection is / })
  await t.rejects(one.adapter.presence.read('r'), { message: /^Redis connection is / })
  await t.rejects(one.adapter.presence.count('r'), { message: /^Redis connection is / })
  t.ok(Date.now() - started < 2000, 'at once')

  await server.start()
  await until(() => one.host.lost === 2, 20000, 'presenceLost after the restart')
  t.same(await one.adapter.presence.read('r'), { seq: 0, members: [] }, 'Redis came back empty: the host writes its entries again')
  t.equal(messagesOf(one.host.lines, 'Presence heartbeat failed').length, 0, 'beats while Redis was away were skipped, not failed')
})

withRedisServer('a beat that outlasts the interval: the next ones are skipped, not queued', async (t) => {
  const server = await RedisServer.start(t)
  const prefix = uniquePrefix('slow')
  const admin = redisClient(t, server.url)
  const pub = redisClient(t, server.url)
  const timings = { beatInterval: 100, deadAfter: 3_600_000 }
  const one = await store(t, prefix, { url: server.url, connection: { client: pub, subscriber: redisClient(t, server.url) }, timings })
  one.adapter.presence.start()
  await until(() => one.host.lost === 1, 10000, 'the first beat')

  // A blocking command on the adapter's connection: the commands sent after it wait behind it, in Redis.
  const blocked = pub.blpop(`${prefix}:unblock`, 0)
  await until(async () => /blocked_clients:1/.test(await admin.info('clients')), 10000, 'the connection blocked')
  // The interval is a timer: thirty of them pass.
  const since = Date.now()
  await until(() => Date.now() - since >= 30 * timings.beatInterval, 10000, 'thirty intervals')
  await admin.config('RESETSTAT')
  // Unblocked, Redis runs whatever waited behind the BLPOP at once: one beat, not thirty.
  await admin.lpush(`${prefix}:unblock`, 'go')
  await blocked
  await beats(admin, prefix, one.adapter.uid, 1)
  const stats = await admin.info('commandstats')
  const calls = Number(/cmdstat_evalsha:calls=(\d+)/.exec(stats)?.[1] ?? 0) + Number(/cmdstat_eval:calls=(\d+)/.exec(stats)?.[1] ?? 0)
  t.ok(calls >= 1 && calls < 15, `the beat under way, then the next ones at their interval: ${calls} scripts, not one per interval missed`)
})
