import t from 'tap'
import { execFileSync } from 'node:child_process'
import { RedisAdapter, redisAdapter } from '../lib/adapters/redis'
import { keySlot } from '../lib/adapters/redis/keys'
import { encode } from '../lib/adapters/redis/wire'
import type { EncodedMessage, HistoryPolicy, Position, RedisClient } from '../types/index'
import { RecordingHost } from './helpers/host'
import { REDIS_URL, RedisServer, deleteKeys, messagesOf, redisClient, uniquePrefix, withRedis } from './helpers/redis'
import { freePort, type TestContext } from './helpers/server'
import { until } from './helpers/wait'

// Bounded per file, not by tap's 30 s default: the file's waits are bounded themselves, and a busy 2-core machine stretches them.
t.setTimeout(180_000)

// The Redis adapter's history store (lib/adapters/redis/history.ts), driven
// directly through adapters whose host records what the adapter hands it: no
// plugin, a real Redis. Every test has its own prefix: other test files share
// this Redis.

// ------------------------------------------------------------------ helpers

interface Store {
  adapter: RedisAdapter
  host: RecordingHost
}

/** Prefixes whose keys are deleted when their test ends (the hashes would stay a day in the shared Redis). */
const forgotten = new Set<string>()

/** An adapter on `url` (its own connections), initialised with a recording host; closed when the test ends. */
async function store (t: TestContext, prefix: string, url = REDIS_URL): Promise<Store> {
  const adapter = redisAdapter({ url }, { prefix })
  const host = new RecordingHost()
  t.teardown(() => adapter.close())
  if (url === REDIS_URL && !forgotten.has(prefix)) {
    forgotten.add(prefix)
    t.teardown(() => deleteKeys(prefix))
  }
  await adapter.init(host)
  return { adapter, host }
}

/** The room's channel is subscribed: what is appended from now on comes back to the adapter. */
async function follow ({ adapter, host }: Store, room: string): Promise<void> {
  const before = host.resyncsOf(room)
  adapter.roomActive(room)
  await until(() => host.resyncsOf(room) > before, 10000, `${room} subscribed`)
}

const policy: HistoryPolicy = { size: 1000, ttl: 60_000 }
const text = (value: unknown): EncodedMessage => ({ data: Buffer.from(JSON.stringify(value)), binary: false })
const bytes = (...values: number[]): EncodedMessage => ({ data: Buffer.from(values), binary: true })
const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i)

/** The room's hash tag as the README documents it: `{<room>}`, or `{\0}<room>\0` for a name starting with `}`. */
const tagOf = (room: string): string => room.startsWith('}') ? `{\0}${room}\0` : `{${room}}`
const metaKey = (prefix: string, room: string): string => `${prefix}:h:${tagOf(room)}`
const streamKey = (prefix: string, room: string): string => `${prefix}:s:${tagOf(room)}`

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

// ------------------------------------------------------------------ without Redis

t.test('with Redis unreachable, append, position and read reject promptly; none throws', async (t) => {
  const port = await freePort()
  const { adapter } = await store(t, uniquePrefix('down'), `redis://127.0.0.1:${port}`)
  const calls: Array<[string, () => Promise<unknown>]> = [
    ['append', () => adapter.history.append('r', text('lost'), policy, null)],
    ['position', () => adapter.history.position('r')],
    ['read', () => adapter.history.read('r', 0, 10)]
  ]
  for (const [name, call] of calls) {
    const started = Date.now()
    let pending: Promise<unknown> | undefined
    t.doesNotThrow(() => { pending = call() }, `${name} does not throw`)
    await t.rejects(within(pending as Promise<unknown>, 2000, name), { message: /^Redis connection is / }, `${name} rejects`)
    t.ok(Date.now() - started < 2000, `${name} rejected within 2 s`)
  }
})

t.test('a closed adapter\'s history rejects; so does one whose client cannot run commands with Buffer replies', async (t) => {
  const closed = redisAdapter({ url: `redis://127.0.0.1:${await freePort()}` })
  await closed.close()
  await t.rejects(closed.history.position('r'), { message: 'the Redis adapter is closed' })

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
  await t.rejects(adapter.history.append('r', text('x'), policy, null), { message: /has no callBuffer\(\)/ })
  await t.rejects(adapter.history.read('r', 0, 1), { message: /has no callBuffer\(\)/ })
})

// ------------------------------------------------------------------ with Redis

withRedis(t, 'the history store against a real Redis', async (t) => {
  t.test('appends get offsets 1..N, contiguous, in one epoch; each comes back through sequenced()', async (t) => {
    const prefix = uniquePrefix('offsets')
    const one = await store(t, prefix)
    await follow(one, 'feed')
    const positions: Position[] = []
    for (let i = 1; i <= 20; i++) positions.push(await one.adapter.history.append('feed', text({ n: i }), policy, null))
    const epoch = positions[0].epoch
    t.match(epoch, /^[A-Za-z0-9_-]{8}$/, 'a base64url epoch')
    t.same(positions, range(1, 20).map((offset) => ({ offset, epoch })))
    t.same(await one.adapter.history.position('feed'), { offset: 20, epoch })

    await until(() => one.host.received.length === 20, 10000, 'every message back')
    t.same(one.host.received, range(1, 20).map((n) => ({
      room: 'feed', position: { offset: n, epoch }, data: Buffer.from(JSON.stringify({ n })), binary: false, exceptIds: null
    })), 'the appending instance gets its own messages, in offset order')
    t.equal(one.adapter.stats().redisReceived, 20, 'counted as received')
    t.equal(one.adapter.stats().redisDelivered, 0, 'delivery is the host\'s to count')

    // The keys, as documented in history.ts.
    const redis = redisClient(t)
    t.same(await redis.hgetall(metaKey(prefix, 'feed')), { e: epoch, o: '20' })
    const entries = await redis.xrange(streamKey(prefix, 'feed'), '-', '+', 'COUNT', 2)
    t.match(entries, [['1-0', ['d', '{"n":1}', 'b', '0', 't', /^\d{13}$/]], ['2-0', ['d', '{"n":2}', 'b', '0', 't', /^\d{13}$/]]])
  })

  t.test('400 concurrent appends from two instances: unique contiguous offsets, the same order on both', async (t) => {
    const prefix = uniquePrefix('concurrent')
    const a = await store(t, prefix)
    const b = await store(t, prefix)
    await follow(a, 'race')
    await follow(b, 'race')
    const appends: Array<Promise<Position>> = []
    const sent: string[] = []
    for (let i = 0; i < 200; i++) {
      for (const [name, instance] of [['a', a], ['b', b]] as const) {
        const body = `${name}${i}`
        sent.push(body)
        appends.push(instance.adapter.history.append('race', text(body), policy, null))
      }
    }
    const positions = await Promise.all(appends)
    const epoch = positions[0].epoch
    t.ok(positions.every((position) => position.epoch === epoch), 'one epoch')
    t.same(positions.map((position) => position.offset).sort((x, y) => x - y), range(1, 400), 'unique and contiguous')

    await until(() => a.host.received.length === 400 && b.host.received.length === 400, 20000, 'every message on both instances')
    t.same(a.host.offsetsOf('race'), range(1, 400), 'A got them in offset order')
    t.same(b.host.offsetsOf('race'), range(1, 400), 'B too')
    // Each offset carries the message whose append resolved with it, on both.
    const byOffset = new Map(positions.map((position, i) => [position.offset, JSON.stringify(sent[i])]))
    for (const host of [a.host, b.host]) {
      t.ok(host.received.every((call) => call.data.toString() === byOffset.get(call.position.offset) && call.position.epoch === epoch), 'the right message at each offset')
    }
  })

  t.test('the frames carry room, position, skipped ids and the message bytes intact; byte for byte the wire format', async (t) => {
    const prefix = uniquePrefix('frames')
    const one = await store(t, prefix)
    const room = 'chat:{ünï}🎉'
    await follow(one, room)
    const raw = redisClient(t)
    const frames: Buffer[] = []
    raw.on('messageBuffer', (_channel: Buffer, payload: Buffer) => frames.push(payload))
    await raw.subscribe(`${prefix}:room:${room}`)

    // Every byte value: newlines, NUL, invalid UTF-8.
    const binary = bytes(...range(0, 255), 0x0a, 0xc3, 0x28, 0xff, 0x0a)
    const json = text({ text: 'héllo\nwörld', emoji: '🎉' })
    const skipped = new Set(['conn-1', 'conn "2"'])
    const first = await one.adapter.history.append(room, binary, policy, skipped)
    const second = await one.adapter.history.append(room, json, policy, new Set())
    const empty = await one.adapter.history.append(room, { data: Buffer.alloc(0), binary: true }, policy, null)

    await until(() => one.host.received.length === 3 && frames.length === 3, 10000, 'the three messages back')
    t.same(one.host.received, [
      { room, position: first, data: binary.data, binary: true, exceptIds: skipped },
      { room, position: second, data: json.data, binary: false, exceptIds: null },
      { room, position: empty, data: Buffer.alloc(0), binary: true, exceptIds: null }
    ])
    const uid = Buffer.from(one.adapter.uid, 'hex')
    t.same(frames, [
      encode(uid, { kind: 'history', room, ...first, binary: true, exceptIds: skipped, data: binary.data }),
      encode(uid, { kind: 'history', room, ...second, binary: false, exceptIds: null, data: json.data }),
      encode(uid, { kind: 'history', room, ...empty, binary: true, exceptIds: null, data: Buffer.alloc(0) })
    ], 'what the script publishes is what the Node encoder writes')
  })

  t.test('read(after, limit) gives the offsets after `after`, oldest first, with their data and time', async (t) => {
    const prefix = uniquePrefix('read')
    const one = await store(t, prefix)
    const before = Date.now()
    const sent: EncodedMessage[] = []
    for (let i = 1; i <= 10; i++) {
      const message = i % 2 === 0 ? bytes(i, 0x0a, 0xff) : text(`m${i}`)
      sent.push(message)
      await one.adapter.history.append('log', message, policy, null)
    }
    const after = Date.now()
    const { epoch } = await one.adapter.history.position('log')

    const all = await one.adapter.history.read('log', 0, 100)
    t.same(all.position, { offset: 10, epoch })
    t.same(all.messages.map((stored) => stored.offset), range(1, 10))
    t.same(all.messages.map((stored) => ({ data: stored.message.data, binary: stored.message.binary })), sent)
    // Redis TIME and this clock are the same machine's.
    t.ok(all.messages.every((stored) => stored.time >= before - 1000 && stored.time <= after + 1000), 'the time each was stored')
    t.ok(all.messages.every((stored, i) => i === 0 || stored.time >= all.messages[i - 1].time), 'in order')

    const middle = await one.adapter.history.read('log', 3, 4)
    t.same(middle.messages.map((stored) => stored.offset), [4, 5, 6, 7])
    t.same(middle.messages.map((stored) => stored.message.data), sent.slice(3, 7).map((message) => message.data))
    t.same((await one.adapter.history.read('log', 9, 5)).messages.map((stored) => stored.offset), [10])
    t.same(await one.adapter.history.read('log', 10, 5), { position: { offset: 10, epoch }, messages: [] }, 'nothing after the top')
    t.same(await one.adapter.history.read('log', 25, 5), { position: { offset: 10, epoch }, messages: [] }, 'nor after an offset ahead of it')
    t.same(await one.adapter.history.read('log', 2, 0), { position: { offset: 10, epoch }, messages: [] }, 'a limit of 0')
  })

  t.test('the stream keeps about `size` messages (MAXLEN ~): never fewer, and reads start after the trimmed ones', async (t) => {
    const prefix = uniquePrefix('trim')
    const one = await store(t, prefix)
    const redis = redisClient(t)
    // Approximate trimming drops whole stream nodes only: at most this many beyond `size` stay.
    const [, nodeEntries] = await redis.config('GET', 'stream-node-max-entries') as string[]
    const slack = Number(nodeEntries ?? 100)
    const small = { size: 10, ttl: 60_000 }
    for (let i = 1; i <= 250; i++) await one.adapter.history.append('busy', text(i), small, null)

    const kept = await redis.xlen(streamKey(prefix, 'busy'))
    t.ok(kept >= 10 && kept <= 10 + slack, `${kept} kept of 250`)
    const read = await one.adapter.history.read('busy', 0, 1000)
    const first = read.messages[0].offset
    t.ok(first <= 241, 'the newest `size` are there')
    t.ok(first > 1 && first >= 250 - 10 - slack + 1, `trimmed: the first kept is ${first}`)
    t.same(read.messages.map((stored) => stored.offset), range(first, 250), 'contiguous up to the top')
    t.same(read.messages.map((stored) => stored.message.data.toString()), range(first, 250).map(String))
    const late = await one.adapter.history.read('busy', 5, 3)
    t.same(late.messages.map((stored) => stored.offset), [first, first + 1, first + 2], 'a read after a trimmed offset starts later than asked')
  })

  t.test('the stream expires after the ttl; the epoch and top outlive it, for a day at least', async (t) => {
    const prefix = uniquePrefix('expire')
    const one = await store(t, prefix)
    const redis = redisClient(t)
    const short = { size: 100, ttl: 200 }
    for (let i = 1; i <= 3; i++) await one.adapter.history.append('quiet', text(i), short, null)
    const { epoch } = await one.adapter.history.position('quiet')
    const streamTtl = await redis.pttl(streamKey(prefix, 'quiet'))
    t.ok(streamTtl > 0 && streamTtl <= 200, `the stream expires in ${streamTtl} ms`)
    const metaTtl = await redis.pttl(metaKey(prefix, 'quiet'))
    t.ok(metaTtl > 86_400_000 - 60_000 && metaTtl <= 86_400_000, 'the hash lives a day')

    await until(async () => await redis.exists(streamKey(prefix, 'quiet')) === 0, 10000, 'the stream expired')
    t.same(await one.adapter.history.read('quiet', 0, 10), { position: { offset: 3, epoch }, messages: [] }, 'the messages are gone, the position stays')
    t.same(await one.adapter.history.append('quiet', text(4), short, null), { offset: 4, epoch }, 'and goes on')
    t.same((await one.adapter.history.read('quiet', 0, 10)).messages.map((stored) => stored.offset), [4])

    // A ttl over a day: the hash lives as long as the messages.
    const long = { size: 100, ttl: 2 * 86_400_000 }
    await one.adapter.history.append('kept', text(1), long, null)
    t.ok(await redis.pttl(metaKey(prefix, 'kept')) > 86_400_000 * 2 - 60_000)
    t.ok(await redis.pttl(streamKey(prefix, 'kept')) > 86_400_000 * 2 - 60_000)

    // The hash expires too, in the end (sped up here): the room's history is lost.
    await redis.pexpire(metaKey(prefix, 'kept'), 100)
    await until(async () => await redis.exists(metaKey(prefix, 'kept')) === 0, 10000, 'the hash expired')
    const after = await one.adapter.history.position('kept')
    t.equal(after.offset, 0)
    t.not(after.epoch, epoch)
    t.equal(await redis.exists(streamKey(prefix, 'kept')), 0, 'the stream of the lost epoch is gone')
  })

  t.test('a lost hash (history lost): a new epoch, offsets from 1 again, the old stream gone', async (t) => {
    const prefix = uniquePrefix('lost')
    const one = await store(t, prefix)
    await follow(one, 'r')
    const redis = redisClient(t)
    for (let i = 1; i <= 5; i++) await one.adapter.history.append('r', text(i), policy, null)
    const old = await one.adapter.history.position('r')

    // By append.
    await redis.del(metaKey(prefix, 'r'))
    const fresh = await one.adapter.history.append('r', text('fresh'), policy, null)
    t.equal(fresh.offset, 1)
    t.not(fresh.epoch, old.epoch, 'a new epoch')
    t.match(await redis.xrange(streamKey(prefix, 'r'), '-', '+'), [['1-0', ['d', '"fresh"']]], 'the old messages are gone')
    t.equal((await redis.xrange(streamKey(prefix, 'r'), '-', '+')).length, 1)
    t.same(await one.adapter.history.read('r', 0, 10).then((read) => read.messages.map((stored) => [stored.offset, stored.message.data.toString()])), [[1, '"fresh"']])
    await until(() => one.host.received.length === 6, 10000, 'every message back')
    t.same(one.host.received.map((call) => call.position), [...range(1, 5).map((offset) => ({ offset, epoch: old.epoch })), fresh], 'the new epoch in the frames')

    // By position, then by read: the stream of the lost epoch goes with it too.
    for (const lookup of [() => one.adapter.history.position('r'), async () => (await one.adapter.history.read('r', 0, 10)).position]) {
      await one.adapter.history.append('r', text('more'), policy, null)
      await redis.del(metaKey(prefix, 'r'))
      const position = await lookup()
      t.equal(position.offset, 0)
      t.equal(await redis.exists(streamKey(prefix, 'r')), 0)
      t.same(await one.adapter.history.append('r', text('next'), policy, null), { offset: 1, epoch: position.epoch }, 'the next append keeps that epoch')
    }
  })

  t.test('position() of an unknown room makes offset 0 and an epoch that the next append keeps', async (t) => {
    const prefix = uniquePrefix('unknown')
    const one = await store(t, prefix)
    const redis = redisClient(t)
    const position = await one.adapter.history.position('new')
    t.equal(position.offset, 0)
    t.match(position.epoch, /^[A-Za-z0-9_-]{8}$/)
    t.same(await one.adapter.history.position('new'), position, 'the same again')
    const ttl = await redis.pttl(metaKey(prefix, 'new'))
    t.ok(ttl > 86_400_000 - 60_000 && ttl <= 86_400_000, 'kept a day')
    t.equal(await redis.exists(streamKey(prefix, 'new')), 0, 'no stream yet')
    t.same(await one.adapter.history.append('new', text(1), policy, null), { offset: 1, epoch: position.epoch })

    const read = await one.adapter.history.read('other', 0, 10)
    t.equal(read.position.offset, 0)
    t.same(read.messages, [])
    t.same(await one.adapter.history.position('other'), read.position, 'read() made the position of an unknown room too')
    const b = await store(t, prefix)
    t.same(await b.adapter.history.position('other'), read.position, 'which every instance shares')
  })

  t.test('renew(): a new epoch only when the room is still at the one that went back', async (t) => {
    const prefix = uniquePrefix('renew')
    const one = await store(t, prefix)
    const redis = redisClient(t)
    const first = await one.adapter.history.append('r', text(1), policy, null)
    await one.adapter.history.append('r', text(2), policy, null)
    t.same(await one.adapter.history.renew('r', 'not-this-one', 'cand0001'), { offset: 2, epoch: first.epoch }, 'another epoch: left as it is')
    t.equal(await redis.xlen(streamKey(prefix, 'r')), 2)
    t.same(await one.adapter.history.renew('r', first.epoch, 'cand0002'), { offset: 0, epoch: 'cand0002' }, 'the same epoch: the candidate, at 0')
    t.equal(await redis.exists(streamKey(prefix, 'r')), 0, 'the old epoch\'s messages dropped')
    t.same(await one.adapter.history.append('r', text(3), policy, null), { offset: 1, epoch: 'cand0002' })
    t.same(await one.adapter.history.renew('empty', 'whatever', 'cand0003'), { offset: 0, epoch: 'cand0003' }, 'a room with no history starts the candidate')
    t.ok(await redis.pttl(metaKey(prefix, 'empty')) > 0, 'with an expiry')
  })

  t.test('a room name with braces and unicode keeps its own keys and channel', async (t) => {
    const prefix = uniquePrefix('names')
    const one = await store(t, prefix)
    const redis = redisClient(t)
    const rooms = ['a}{b ünï 🎉 {x}', '{', '}', 'a', '{a}']
    for (const room of rooms) await follow(one, room)
    for (const [i, room] of rooms.entries()) {
      t.same(await one.adapter.history.append(room, text(room), policy, null).then((position) => position.offset), 1, room)
      if (i === 0) await one.adapter.history.append(room, bytes(i), policy, null)
    }
    for (const room of rooms) {
      t.equal(await redis.exists(metaKey(prefix, room), streamKey(prefix, room)), 2, `the keys of ${room}`)
      t.equal(keySlot(metaKey(prefix, room)), keySlot(streamKey(prefix, room)), `the keys of ${room} hash to one slot`)
      t.same((await one.adapter.history.read(room, 0, 10)).messages[0].message.data.toString(), JSON.stringify(room))
    }
    await until(() => one.host.received.length === rooms.length + 1, 10000, 'every message back')
    t.same(one.host.received.map((call) => [call.room, call.position.offset]), [[rooms[0], 1], [rooms[0], 2], ...rooms.slice(1).map((room) => [room, 1])], 'each on its own room')
  })

  t.test('a room no instance follows is stored all the same; invalid history frames are counted and dropped', async (t) => {
    const prefix = uniquePrefix('unfollowed')
    const a = await store(t, prefix)
    const b = await store(t, prefix)
    await follow(b, 'r')
    await a.adapter.history.append('r', text(1), policy, null)
    b.adapter.roomIdle('r')
    const redis = redisClient(t)
    await until(async () => (await redis.pubsub('NUMSUB', `${prefix}:room:r`))[1] === 0, 10000, 'r unsubscribed')
    await a.adapter.history.append('r', text(2), policy, null)
    await follow(b, 'r')
    // Bad frames, then a good one: when it arrives, they all have.
    const head = (header: string): Buffer => {
      const json = Buffer.from(header)
      const fixed = Buffer.alloc(22)
      fixed[0] = 1
      fixed[1] = 4
      fixed.writeUInt32BE(json.length, 18)
      return Buffer.concat([fixed, json])
    }
    await redis.publish(`${prefix}:room:r`, head('{"b":0,"r":["r"],"o":0,"e":"E"}'))
    await redis.publish(`${prefix}:room:r`, head('{"b":0,"r":["r","s"],"o":3,"e":"E"}'))
    await a.adapter.history.append('r', text(3), policy, null)
    await until(() => b.host.received.length === 2, 10000, 'the messages while followed')
    t.same(b.host.offsetsOf('r'), [1, 3], 'nothing of the time it did not follow the room: that is read from the store')
    t.equal(a.host.received.length, 0, 'an instance that does not follow the room gets nothing')
    t.equal(b.adapter.stats().redisInvalidMessages, 2)
    t.equal(b.adapter.stats().redisReceived, 2)
    t.same((await b.adapter.history.read('r', 1, 1)).messages.map((stored) => stored.message.data.toString()), ['2'])
  })

  t.test('scripts Redis does not have (after SCRIPT FLUSH) are sent again; a script error rejects', async (t) => {
    const prefix = uniquePrefix('scripts')
    const one = await store(t, prefix)
    const redis = redisClient(t)
    // Other test files on this Redis just send theirs again too.
    await redis.script('FLUSH')
    t.same(await one.adapter.history.append('r', text(1), policy, null).then((position) => position.offset), 1, 'EVAL when EVALSHA finds no script')
    t.same(await one.adapter.history.append('r', text(2), policy, null).then((position) => position.offset), 2, 'EVALSHA once it is loaded')
    await redis.script('FLUSH')
    t.same((await one.adapter.history.read('r', 0, 10)).messages.length, 2)
    await redis.script('FLUSH')
    t.equal((await one.adapter.history.position('r')).offset, 2)

    // A key of the room's that is not what the store wrote.
    await redis.set(metaKey(prefix, 'broken'), 'not a hash')
    await t.rejects(one.adapter.history.append('broken', text(1), policy, null), { message: /WRONGTYPE/ })
    await t.rejects(one.adapter.history.position('broken'), { message: /WRONGTYPE/ })
  })

  t.test('resync(room) after the room channel is subscribed, and again after the subscriber reconnects', async (t) => {
    const prefix = uniquePrefix('resync')
    const name = `${prefix}-subscriber`
    const redis = redisClient(t)
    // The subscriber is one of the test's, named, so that it alone is killed: other test files share this Redis.
    const subscriber = redisClient(t, REDIS_URL, { connectionName: name })
    const adapter = redisAdapter({ client: redisClient(t), subscriber }, { prefix })
    t.teardown(() => adapter.close())
    t.teardown(() => deleteKeys(prefix))
    const host = new RecordingHost()
    adapter.roomActive('early')
    await adapter.init(host)
    t.same(host.resynced, ['early'], 'a room active before init(), once init() subscribed it')
    await follow({ adapter, host }, 'later')
    t.same(host.resynced, ['early', 'later'])

    const killed = new Promise((resolve) => subscriber.once('close', resolve))
    const list = String(await redis.client('LIST'))
    for (const [, id, named] of list.matchAll(/(?:^|\n)id=(\d+) .*name=(\S+)/g)) {
      if (named === name) await redis.client('KILL', 'ID', id)
    }
    await killed
    await until(() => host.resynced.length === 4, 10000, 'both rooms resynced after the reconnect')
    t.same(host.resynced.slice(2).sort(), ['early', 'later'])

    // A host whose resync throws: logged, and the adapter goes on.
    host.failResync = true
    await follow({ adapter, host }, 'broken')
    await until(() => messagesOf(host.lines, 'Failed to resync a room after its channel was subscribed').length === 1, 10000, 'the throw logged')
    t.match(messagesOf(host.lines, 'Failed to resync a room after its channel was subscribed')[0], { level: 50, channel: `${prefix}:room:broken`, err: { message: 'resync exploded' } })
    host.failResync = false
    const position = await adapter.history.append('broken', text('after'), policy, null)
    await until(() => host.received.length === 1, 10000, 'the message back')
    t.same(host.received[0].position, position)
  })
})

function hasRedisServer (): boolean {
  try {
    execFileSync('redis-server', ['--version'], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

// A redis-server of this test's own: killed and started again, without persistence.
const RESTART = 'a Redis restart (history lost): appends reject while it is away; resync and a new epoch after'
if (!hasRedisServer() && process.env.CI === 'true') t.fail(`${RESTART}: redis-server is not on the PATH, and CI=true`)
t.test(RESTART, { skip: hasRedisServer() ? false : 'redis-server is not on the PATH' }, async (t) => {
  const server = await RedisServer.start(t)
  const prefix = uniquePrefix('restart')
  const one = await store(t, prefix, server.url)
  await follow(one, 'r')
  for (let i = 1; i <= 3; i++) await one.adapter.history.append('r', text(i), policy, null)
  const before = await one.adapter.history.position('r')

  await server.kill()
  await until(() => one.adapter.stats().redisConnected === 0, 10000, 'the connections dropped')
  const started = Date.now()
  await t.rejects(one.adapter.history.append('r', text('lost'), policy, null))
  await t.rejects(one.adapter.history.read('r', 0, 10))
  t.ok(Date.now() - started < 2000, 'at once')
  // ioredis failed to reconnect at least once: the end of the outage is logged too.
  await until(() => messagesOf(one.host.lines, 'Redis connection failed: broadcasts reach this instance only until Redis is back').length === 1, 10000, 'the outage logged')

  await server.start()
  await until(() => one.host.resyncsOf('r') >= 2, 20000, 'r resynced after the reconnect')
  await until(() => messagesOf(one.host.lines, 'Redis connection restored').length >= 1, 10000, 'the outage ended')
  const after = await one.adapter.history.position('r')
  t.equal(after.offset, 0, 'Redis came back empty')
  t.not(after.epoch, before.epoch, 'a new epoch')
  const next = await one.adapter.history.append('r', text('again'), policy, null)
  t.same(next, { offset: 1, epoch: after.epoch })
  await until(() => one.host.received.length === 4, 10000, 'the message back')
  t.same(one.host.received.map((call) => call.position), [...range(1, 3).map((offset) => ({ offset, epoch: before.epoch })), next])
})
