import t from 'tap'
import Fastify from 'fastify'
import { execFile } from 'node:child_process'
import { join } from 'node:path'
import { Redis } from 'ioredis'
import type { WebSocket } from 'ws'
import { MemoryAdapter } from '../lib/adapters/memory'
import { RedisAdapter, redisAdapter, requireIoredis } from '../lib/adapters/redis'
import { PendingQueries } from '../lib/adapters/redis/queries'
import { errors } from '../lib/errors'
import { Hub } from '../lib/hub'
import type { Adapter, RedisClient } from '../types/index'
import { adapterContract, silentLogger, TestMember, text } from './helpers/adapter-contract'
import { logCapture } from './helpers/logs'
import { childEnv } from './helpers/processes'
import { delay, until as eventually } from './helpers/wait'
import { freePort } from './helpers/server'
import { REDIS_URL, after, messagesOf, node, type Node, redisClient, subscribers, uniquePrefix, withRedis } from './helpers/redis'
import type { Client } from './helpers/server'

const root = join(__dirname, '..')

// ------------------------------------------------------------------ helpers

interface TestContext {
  teardown (fn: () => unknown): void
}

/** The wire format of lib/adapters/redis/wire.ts, written out again: a test of it. */
function frame (kind: number, header: unknown, body: Buffer = Buffer.alloc(0), uid: Buffer = Buffer.alloc(16, 0xee)): Buffer {
  const json = Buffer.from(JSON.stringify(header))
  const head = Buffer.alloc(22)
  head[0] = 1
  head[1] = kind
  uid.copy(head, 2)
  head.writeUInt32BE(json.length, 18)
  return Buffer.concat([head, json, body])
}

/** A real ioredis connection whose commands can be made to fail, given to redisAdapter() as a user's client. */
class Flaky implements RedisClient {
  readonly inner: Redis
  failPublish = false
  failSubscribe = false
  failUnsubscribe = false
  /** ms a PUBLISH waits before it is sent */
  publishDelay = 0

  constructor (inner: Redis) {
    this.inner = inner
  }

  get status (): string { return this.inner.status }
  publish (channel: string, message: Buffer): Promise<number> {
    if (this.publishDelay > 0) return delay(this.publishDelay).then(() => this.send(channel, message))
    return this.send(channel, message)
  }

  private send (channel: string, message: Buffer): Promise<number> {
    return this.failPublish ? Promise.reject(new Error('PUBLISH refused by the test')) : this.inner.publish(channel, message)
  }

  subscribe (...channels: string[]): Promise<unknown> {
    return this.failSubscribe ? Promise.reject(new Error('SUBSCRIBE refused by the test')) : this.inner.subscribe(...channels)
  }

  unsubscribe (...channels: string[]): Promise<unknown> {
    return this.failUnsubscribe ? Promise.reject(new Error('UNSUBSCRIBE refused by the test')) : this.inner.unsubscribe(...channels)
  }

  connect (): Promise<void> { return this.inner.connect() }
  quit (): Promise<unknown> { return this.inner.quit() }
  disconnect (): void { this.inner.disconnect() }
  on (event: string, listener: (...args: any[]) => void): this {
    this.inner.on(event, listener)
    return this
  }

  removeListener (event: string, listener: (...args: any[]) => void): this {
    this.inner.removeListener(event, listener)
    return this
  }
}

/** Two apps sharing rooms through REDIS_URL under one prefix. */
async function pair (t: TestContext, name: string): Promise<{ a: Node, b: Node, prefix: string, redis: Redis }> {
  const prefix = uniquePrefix(name)
  const a = await node(t, redisAdapter({ url: REDIS_URL }, { prefix }))
  // The form of DESIGN.md, with the prefix beside the URL, shares rooms with the two-argument form.
  const b = await node(t, redisAdapter({ url: REDIS_URL, prefix }))
  return { a, b, prefix, redis: redisClient(t) }
}

// ------------------------------------------------------------------ without Redis

t.test('the package exports redisAdapter and RedisAdapter', async (t) => {
  const plugin = require('../lib/index')
  t.equal(plugin.redisAdapter, redisAdapter)
  t.equal(plugin.RedisAdapter, RedisAdapter)
  const adapter = plugin.redisAdapter({ url: REDIS_URL })
  t.ok(adapter instanceof RedisAdapter)
  t.notOk(adapter instanceof MemoryAdapter, 'a transport only: the rooms are the plugin\'s')
  for (const method of ['init', 'roomActive', 'roomIdle', 'publish', 'close', 'fetchRooms', 'fetchRoomSize', 'fetchConnections', 'stats']) {
    t.type(adapter[method], 'function', `it has ${method}()`)
  }
  t.match(adapter.uid, /^[0-9a-f]{32}$/)
  t.not(adapter.uid, plugin.redisAdapter({ url: REDIS_URL }).uid, 'each instance has its own uid')
  await adapter.close()
})

t.test('redisAdapter() checks its arguments', async (t) => {
  const fake = (): RedisClient => ({
    status: 'wait',
    publish: async () => 0,
    subscribe: async () => 0,
    unsubscribe: async () => 0,
    connect: async () => {},
    quit: async () => 'OK',
    disconnect: () => {},
    on: () => {},
    removeListener: () => {}
  })
  const client = fake()
  const cases: Array<[string, () => unknown, RegExp]> = [
    ['no connection', () => redisAdapter(undefined as never), /"redisAdapter\(\)": expected \{ url \} or \{ client, subscriber \}, received undefined/],
    ['a string', () => redisAdapter('redis://x' as never), /"redisAdapter\(\)".*received the string "redis:\/\/x"/],
    ['options not an object', () => redisAdapter({ url: REDIS_URL }, 'p' as never), /"redisAdapter\(\) options": expected an object/],
    ['an empty prefix', () => redisAdapter({ url: REDIS_URL }, { prefix: '' }), /"redisAdapter\(\).prefix": expected a non-empty string, received the string ""/],
    ['a prefix that is not a string', () => redisAdapter({ url: REDIS_URL }, { prefix: 3 as never }), /"redisAdapter\(\).prefix".*number 3/],
    ['url and client', () => redisAdapter({ url: REDIS_URL, client } as never), /one of \{ url \}, \{ client, subscriber \} or \{ cluster \}, received url and client/],
    ['url and subscriber', () => redisAdapter({ url: REDIS_URL, subscriber: client } as never), /received both/],
    ['a url of another scheme', () => redisAdapter({ url: 'http://127.0.0.1:6379' }), /"redisAdapter\(\).url": expected a redis:\/\/ or rediss:\/\/ URL, received the string "http/],
    ['a url that is not a string', () => redisAdapter({ url: 6379 as never }), /"redisAdapter\(\).url".*number 6379/],
    ['no client', () => redisAdapter({} as never), /"redisAdapter\(\).client": expected an ioredis client, received undefined/],
    ['a client without publish', () => redisAdapter({ client: { ...client, publish: undefined } as never }), /"redisAdapter\(\).client"/],
    ['a subscriber that is not a client', () => redisAdapter({ client, subscriber: {} as never }), /"redisAdapter\(\).subscriber": expected an ioredis client, received an object/],
    ['the client as its own subscriber', () => redisAdapter({ client, subscriber: client }), /"redisAdapter\(\).subscriber": expected a second connection.*received the client itself/],
    ['a client without duplicate() and no subscriber', () => redisAdapter({ client }), /"redisAdapter\(\).subscriber": expected an ioredis client \(the client has no duplicate\(\)\)/]
  ]
  for (const [name, make, message] of cases) {
    t.throws(make, errors.FST_NEXUS_INVALID_OPTION, name)
    t.throws(make, { code: 'FST_NEXUS_INVALID_OPTION', message }, name)
  }
  t.ok(redisAdapter({ client, subscriber: fake() }) instanceof RedisAdapter, 'two clients are accepted without connecting')
  t.ok(redisAdapter({ url: 'REDISS://example.com:6380' }, { prefix: 'p' }) instanceof RedisAdapter, 'rediss:// and any case')
})

t.test('a missing ioredis is reported with a coded error naming the way out', async (t) => {
  t.throws(() => requireIoredis('ioredis-that-is-not-installed'), {
    code: 'FST_NEXUS_INVALID_OPTION',
    message: /"redisAdapter\(\).url": expected the "ioredis-that-is-not-installed" package to be installed \(npm install ioredis\), or \{ client, subscriber \}, received Cannot find module/
  })
  t.equal(typeof requireIoredis(), 'function', 'ioredis itself loads')
})

t.test('ioredis is loaded only when redisAdapter() makes its own connections', async (t) => {
  const script = `
    const loaded = () => Object.keys(require.cache).some((file) => file.includes('/node_modules/ioredis/'))
    const nexus = require('./lib/index')
    const report = { atLoad: loaded() }
    const fake = { status: 'wait', publish () {}, subscribe () {}, unsubscribe () {}, on () {}, removeListener () {}, disconnect () {} }
    nexus.redisAdapter({ client: fake, subscriber: { ...fake } })
    report.withClients = loaded()
    const adapter = nexus.redisAdapter({ url: 'redis://127.0.0.1:6379' })
    report.withUrl = loaded()
    adapter.close().then(() => console.log(JSON.stringify(report)))
  `
  const stdout = await new Promise<string>((resolve, reject) => {
    execFile(process.execPath, ['--import', 'tsx', '-e', script], { cwd: root, env: childEnv(), timeout: 20000 }, (error, out, err) => {
      if (error !== null) reject(new Error(`${error.message}\n${err}`))
      else resolve(out)
    })
  })
  t.same(JSON.parse(stdout.trim().split('\n').pop() as string), { atLoad: false, withClients: false, withUrl: true })
})

t.test('an adapter that is never registered opens no connection, and closes', async (t) => {
  const adapter = redisAdapter({ url: `redis://127.0.0.1:${await freePort()}` })
  await adapter.close()
  await adapter.close()
  t.equal(adapter.stats().redisConnected, 0)
  t.same(await adapter.fetchRooms({ timeout: 1000 }), [], 'a closed adapter answers for itself, at once')
  t.equal(await adapter.fetchRoomSize('r', { timeout: 1000 }), 0)
  t.equal(await adapter.fetchConnections({ timeout: 1000 }), 0)
})

t.test('a pending query resolves once every instance that received it answered, one answer each', async (t) => {
  const queries = new PendingQueries()
  const isCount = (value: unknown): value is number => typeof value === 'number'
  const asked: number[] = []
  let received!: (count: number) => void
  const pending = queries.ask(10000, isCount, async (id) => {
    asked.push(id)
    return await new Promise<number>((resolve) => { received = resolve })
  })
  const [id] = asked
  t.equal(queries.answer(id, 'b', 1), 'recorded', 'answers may come before the transport says how many to expect')
  t.equal(queries.answer(id, 'b', 5), 'dropped', 'a second answer of one instance')
  t.equal(queries.answer(id, 'c', ['r']), 'unexpected', 'an answer to another question')
  t.equal(queries.answer(id + 1, 'c', 1), 'dropped', 'an answer to no query')
  received(2)
  await delay(10)
  t.equal(queries.answer(id, 'c', 2), 'recorded')
  t.same(await pending, [1, 2])
  t.equal(queries.answer(id, 'd', 3), 'dropped', 'a late answer')

  // Every answer in before the count: complete when the count comes.
  const early = queries.ask(10000, isCount, async (id) => {
    queries.answer(id, 'b', 7)
    return 1
  })
  t.same(await early, [7])
  t.same(await queries.ask(10000, isCount, async () => 0), [], 'nobody else received it: complete at once')
  t.equal(queries.timeouts, 0)
})

t.test('a pending query resolves with what it has at its timeout, when it cannot be sent, and at close', async (t) => {
  const queries = new PendingQueries()
  const isList = (value: unknown): value is string[] => Array.isArray(value)
  // The query timers do not hold the process open: this does, for the test.
  const alive = setInterval(() => {}, 1000)
  t.teardown(() => clearInterval(alive))
  let started = Date.now()
  const timedOut = await queries.ask(50, isList, async (id) => {
    queries.answer(id, 'b', ['r'])
    return 2
  })
  t.same(timedOut, [['r']])
  t.ok(Date.now() - started >= 45, 'at the timeout')
  t.equal(queries.timeouts, 1)

  // The transport's count after the timeout changes nothing.
  let late!: (count: number) => void
  t.same(await queries.ask(20, isList, async () => await new Promise<number>((resolve) => { late = resolve })), [])
  late(0)
  t.equal(queries.timeouts, 2)

  started = Date.now()
  t.same(await queries.ask(10000, isList, async () => { throw new Error('not sent') }), [], 'a question that could not be sent')
  t.ok(Date.now() - started < 1000, 'at once')

  const open = [
    queries.ask(10000, isList, async (id) => { queries.answer(id, 'b', ['x']); return 3 }),
    queries.ask(10000, isList, async () => 3)
  ]
  await delay(10)
  queries.close()
  t.same(await Promise.all(open), [[['x']], []], 'close resolves every open query with its answers')
  t.equal(queries.timeouts, 2, 'close is not a timeout')
})

// ------------------------------------------------------------------ with Redis

withRedis(t, 'RedisAdapter against a real Redis', async (t) => {
  // The shared contract, on adapters given their connections, so that the
  // suite can tell when everything an adapter published came back to it:
  // a marker published on the same connection arrives after it.
  const contractPrefix = uniquePrefix('contract')
  const publisher = redisClient(t)
  const subscriberOf = new WeakMap<Adapter, Redis>()
  await adapterContract(t, 'RedisAdapter', () => {
    const subscriber = redisClient(t)
    const adapter = redisAdapter({ client: publisher, subscriber }, { prefix: contractPrefix })
    subscriberOf.set(adapter, subscriber)
    return adapter
  }, {
    settle: async (adapter) => {
      const subscriber = subscriberOf.get(adapter) as Redis
      const marker = `${contractPrefix}-marker`
      await subscriber.subscribe(marker)
      const arrived = new Promise<void>((resolve) => {
        const onMessage = (channel: string): void => {
          if (channel !== marker) return
          subscriber.removeListener('message', onMessage)
          resolve()
        }
        subscriber.on('message', onMessage)
      })
      await publisher.publish(marker, 'settled')
      await arrived
    }
  })

  t.test('a broadcast reaches the sockets of another instance; broadcast() counts the local ones', async (t) => {
    const { a, b, prefix, redis } = await pair(t, 'basic')
    const onA = await a.join(['room'])
    const onB = await b.join(['room'])
    const elsewhere = await b.join(['other'])
    await eventually(async () => (await subscribers(redis, `${prefix}:room:room`))[0] === 2)

    t.equal(a.app.getWebSocket().broadcast('room', { hello: 'cluster' }), 1)
    t.equal(a.app.getWebSocket().broadcast('room', Buffer.from([0, 1, 255])), 1)
    t.equal(b.app.getWebSocket().broadcast('room', 'from b'), 1)
    await Promise.all([onA.waitFor(4), onB.waitFor(4)])
    // Each instance's messages in the order it sent them (the two instances' interleave).
    const fromA = (client: Client): any[] => after(client).filter((message) => message !== 'from b')
    for (const client of [onA, onB]) {
      t.same(fromA(client), [{ hello: 'cluster' }, Buffer.from([0, 1, 255])], 'JSON as text, bytes as binary')
      t.ok(after(client).includes('from b'))
    }
    // Its own message came back from Redis to each publisher: a marker from the
    // other side, published afterwards, arrives after any duplicate would have.
    b.app.getWebSocket().broadcast('room', 'marker')
    a.app.getWebSocket().broadcast('room', 'marker')
    await Promise.all([onA.waitFor(6), onB.waitFor(6)])
    t.same(fromA(onA), [{ hello: 'cluster' }, Buffer.from([0, 1, 255]), 'marker', 'marker'], 'nothing twice')
    t.equal(onB.messages.length, 6, 'nothing twice')
    t.equal(elsewhere.messages.length, 1, 'a socket of another room got nothing')

    // PUBLISH is counted when Redis confirms it.
    await eventually(() => a.app.getWebSocket().stats().redisPublished === 3)
    const statsA = a.app.getWebSocket().stats()
    t.match(statsA, { redisConnected: 1, redisRoomChannels: 1, redisPublished: 3, redisPublishErrors: 0, redisReceived: 2, redisDelivered: 2, redisInvalidMessages: 0, connections: 1, broadcasts: 3 })
    t.equal(statsA.messagesSent, 3, 'the manager\'s own counter counts local writes only')
  })

  t.test('a room channel is subscribed while the room has a local member, and only then', async (t) => {
    const { a, b, prefix, redis } = await pair(t, 'channels')
    const channel = (room: string): string => `${prefix}:room:${room}`
    const managerB = b.app.getWebSocket()
    const count = async (...rooms: string[]): Promise<number[]> => await subscribers(redis, ...rooms.map(channel))

    managerB.createRoom('kept')
    t.same(await count('kept'), [0], 'a created room without members is not subscribed')
    const first = await b.join(['r1', 'r2'])
    const second = await b.join(['r1'])
    await eventually(async () => (await count('r1', 'r2')).join() === '1,1')
    t.equal(managerB.stats().redisRoomChannels, 2)

    managerB.leaveRoom('r1', b.sockets.get(first.id) as WebSocket)
    await delay(50)
    t.same(await count('r1'), [1], 'still subscribed with one local member left')
    managerB.leaveRoom('r2', b.sockets.get(first.id) as WebSocket)
    await eventually(async () => (await count('r2'))[0] === 0, 5000, 'r2 unsubscribed after its last member left')

    managerB.joinRoom('kept', b.sockets.get(second.id) as WebSocket)
    await eventually(async () => (await count('kept'))[0] === 1)
    t.equal(managerB.deleteRoom('kept'), true)
    await eventually(async () => (await count('kept'))[0] === 0, 5000, 'deleteRoom unsubscribes')
    t.equal(managerB.deleteRoom('kept'), false)

    second.close()
    await eventually(async () => (await count('r1'))[0] === 0, 5000, 'a closing socket releases its rooms')
    t.equal(managerB.stats().redisRoomChannels, 0)

    // B hosts no room: room traffic of A does not reach it; broadcastAll does.
    await a.join(['r1'])
    a.app.getWebSocket().broadcast('r1', 'not for B')
    a.app.getWebSocket().broadcast(['r1', 'r9'], 'for every instance')
    a.app.getWebSocket().broadcastAll('for everyone')
    await first.waitFor(2)
    t.same(after(first), ['for everyone'])
    t.equal(managerB.stats().redisReceived, 2, 'the multi-room broadcast and broadcastAll reached B; the single-room one did not')
    t.equal(managerB.stats().redisDelivered, 1)
  })

  t.test('except skips sockets by socket and by connection id, on every instance', async (t) => {
    const { a, b, prefix, redis } = await pair(t, 'except')
    const a1 = await a.join(['r'])
    const a2 = await a.join(['r'])
    const b1 = await b.join(['r'])
    const b2 = await b.join(['r'])
    await eventually(async () => (await subscribers(redis, `${prefix}:room:r`))[0] === 2)
    const manager = a.app.getWebSocket()
    t.equal(manager.broadcast('r', 1, { except: [a.sockets.get(a1.id) as WebSocket, b1.id] }), 1)
    t.equal(manager.broadcast('r', 2, { except: a2.id }), 1, 'an id of a local socket skips it too')
    t.equal(manager.broadcastAll(3, { except: [b2.id, a1.id] }), 1)
    t.equal(manager.broadcast(['r', 'x'], 4, { except: b2.id }), 2)
    t.equal(manager.broadcast('r', 5, { except: [] }), 2)
    await Promise.all([a1.waitFor(4), a2.waitFor(5), b1.waitFor(5), b2.waitFor(4)])
    t.same(after(a1), [2, 4, 5])
    t.same(after(a2), [1, 3, 4, 5])
    t.same(after(b1), [2, 3, 4, 5])
    t.same(after(b2), [1, 2, 5])
  })

  t.test('cluster-wide queries: every instance adds its own; a silent instance costs the timeout, not a hang', async (t) => {
    const { a, b, prefix, redis } = await pair(t, 'queries')
    await a.join(['r1'])
    await a.join(['r1', 'r2'])
    await b.join(['r1'])
    b.app.getWebSocket().createRoom('empty')
    await eventually(async () => (await subscribers(redis, `${prefix}:query`))[0] === 2)
    const manager = a.app.getWebSocket()
    t.same((await manager.fetchRooms()).sort(), ['empty', 'r1', 'r2'])
    t.equal(await manager.fetchRoomSize('r1'), 3)
    t.equal(await manager.fetchRoomSize('empty'), 0)
    t.equal(await b.app.getWebSocket().fetchConnections(), 3)

    // A third subscriber of the query channel that never answers.
    const silent = redisClient(t)
    await silent.subscribe(`${prefix}:query`)
    let started = Date.now()
    t.equal(await manager.fetchConnections({ timeout: 300 }), 3, 'what arrived in time')
    const waited = Date.now() - started
    t.ok(waited >= 290 && waited < 2000, `answered at the timeout (${waited} ms)`)
    t.equal(manager.stats().redisQueryTimeouts, 1)
    t.equal(await manager.fetchRoomSize('r1', { timeout: 0 }), 2, 'timeout 0: this instance alone, nobody asked')
    t.equal(manager.stats().redisQueryTimeouts, 1)

    // The silent one now answers, badly, then twice.
    const uid = (payload: Buffer): Buffer => payload.subarray(2, 18)
    silent.on('messageBuffer', (_channel: Buffer, payload: Buffer) => {
      const header = JSON.parse(payload.toString('utf8', 22, 22 + payload.readUInt32BE(18)))
      const answerTo = `${prefix}:answer:${uid(payload).toString('hex')}`
      const rooms = header.q === 'rooms'
      // One that does not decode, one that answers another question, the answer, and one too many.
      void redis.publish(answerTo, frame(3, { id: header.id, v: rooms ? [''] : -1 }))
      void redis.publish(answerTo, frame(3, { id: header.id, v: rooms ? 7 : ['r1'] }))
      void redis.publish(answerTo, frame(3, { id: header.id, v: rooms ? ['from-silent'] : 10 }))
      void redis.publish(answerTo, frame(3, { id: header.id, v: 100 }))
    })
    t.equal(await manager.fetchRoomSize('r1', { timeout: 2000 }), 13, 'the bad answers were dropped, and a second answer of one instance')
    t.same((await manager.fetchRooms({ timeout: 2000 })).sort(), ['empty', 'from-silent', 'r1', 'r2'])
    await delay(50)
    t.equal(manager.stats().redisInvalidMessages, 4, 'each bad answer counted')

    // Closing while a query waits answers it with what it has.
    await silent.unsubscribe()
    const hanging = redisClient(t)
    await hanging.subscribe(`${prefix}:query`)
    started = Date.now()
    const pending = manager.fetchConnections({ timeout: 10000 })
    await delay(100)
    await a.app.close()
    t.equal(await pending, 3)
    t.ok(Date.now() - started < 5000, 'answered when the app closed')
  })

  t.test('a reply or an answer that comes after the timeout changes nothing', async (t) => {
    const prefix = uniquePrefix('late')
    const client = new Flaky(redisClient(t))
    const redis = redisClient(t)
    const a = await node(t, redisAdapter({ client, subscriber: redisClient(t) }, { prefix }))
    const b = await node(t, redisAdapter({ url: REDIS_URL, prefix }))
    await b.join(['r'])
    await eventually(async () => (await subscribers(redis, `${prefix}:query`))[0] === 2)
    const manager = a.app.getWebSocket()
    // The question leaves after its timeout: PUBLISH's reply, then B's answer, find it answered.
    client.publishDelay = 200
    t.equal(await manager.fetchRoomSize('r', { timeout: 50 }), 0)
    await delay(400)
    // And a question whose PUBLISH fails after its timeout.
    client.failPublish = true
    t.equal(await manager.fetchRoomSize('r', { timeout: 50 }), 0)
    await delay(250)
    client.failPublish = false
    client.publishDelay = 0
    t.equal(await manager.fetchRoomSize('r'), 1, 'the next query is answered in full')
    t.match(manager.stats(), { redisQueryTimeouts: 2, redisInvalidMessages: 0 })
  })

  t.test('payloads that do not decode are counted, logged at most once per interval, and dropped', async (t) => {
    const { a, b, prefix, redis } = await pair(t, 'invalid')
    const member = await b.join(['r'])
    await eventually(async () => (await subscribers(redis, `${prefix}:room:r`))[0] === 1)
    const room = `${prefix}:room:r`
    const all = `${prefix}:all`
    const json = (kind: number, header: string): Buffer => {
      const body = Buffer.from(header)
      const head = Buffer.alloc(22)
      head[0] = 1
      head[1] = kind
      head.writeUInt32BE(body.length, 18)
      return Buffer.concat([head, body])
    }
    const bad: Array<[string, Buffer]> = [
      [room, Buffer.from('hello')],
      [room, Buffer.alloc(30)],
      [all, Buffer.concat([frame(1, { b: 0, r: null }).subarray(0, 18), Buffer.from([0, 0, 1, 0])])],
      [all, json(1, '{not json')],
      [all, json(1, 'null')],
      [all, json(1, '7')],
      [all, frame(9, { b: 0, r: null })],
      [all, frame(1, { b: 2, r: null })],
      [all, frame(1, { b: 0, r: 'r' })],
      [all, frame(1, { b: 0, r: [''] })],
      [all, frame(1, { b: 0, r: ['x'.repeat(257)] })],
      [all, frame(1, { b: 0, r: ['r'], x: [1] })],
      [`${prefix}:query`, frame(2, { id: -1, q: 'rooms' })],
      [`${prefix}:query`, frame(2, { id: 1, q: 'everything' })],
      [`${prefix}:query`, frame(2, { id: 1, q: 'size' })],
      [`${prefix}:query`, frame(2, { id: 1, q: 'size', room: 42 })]
    ]
    for (const [channel, payload] of bad) await redis.publish(channel, payload)
    // A good message after the bad ones: when it arrives, they all have.
    await redis.publish(room, frame(1, { b: 0, r: ['r'] }, Buffer.from('"still fine"')))
    await member.waitFor(2)
    t.same(after(member), ['still fine'])
    const countedB = b.app.getWebSocket().stats().redisInvalidMessages
    t.equal(countedB, bad.length, 'B counted every one')
    const logged = messagesOf(b.lines, 'Dropped a message from Redis that does not decode')
    t.equal(logged.length, 1, 'and logged the first only, within the interval')
    t.match(logged[0], { level: 40, channel: room, reason: 'unknown format', dropped: 1 })
    t.ok(a.app.getWebSocket().stats().redisInvalidMessages >= 4, 'A saw those of the channels it subscribes too')
  })

  t.test('a throw while delivering a message from Redis is logged, never thrown into ioredis', async (t) => {
    const prefix = uniquePrefix('throw')
    const { stream, lines } = logCapture()
    const log = Fastify({ logger: { stream } }).log
    const receiving = redisAdapter({ url: REDIS_URL }, { prefix })
    const members = new Set<TestMember>()
    const broken = new TestMember('broken')
    broken.deliver = () => { throw new Error('socket exploded') }
    const fine = new TestMember('fine')
    members.add(broken).add(fine)
    await new Hub(receiving, members).init(log)
    t.teardown(() => receiving.close())
    const sending = redisAdapter({ url: REDIS_URL }, { prefix })
    const sender = new Hub(sending, new Set<TestMember>())
    await sender.init(silentLogger())
    t.teardown(() => sending.close())

    sender.broadcast(text('boom'), { rooms: null, exceptIds: null }, null)
    await eventually(() => messagesOf(lines, 'Failed to handle a message from Redis').length === 1)
    t.match(messagesOf(lines, 'Failed to handle a message from Redis')[0], { level: 50, err: { message: 'socket exploded' } })
    members.delete(broken)
    sender.broadcast(text('after'), { rooms: null, exceptIds: null }, null)
    await eventually(() => fine.received.length === 1)
    t.same(fine.texts(), ['after'], 'the subscriber goes on with the next message')
  })

  t.test('after close(), rooms are the hub\'s bookkeeping only: nothing reaches Redis', async (t) => {
    const prefix = uniquePrefix('closed')
    const redis = redisClient(t)
    const subscriber = redisClient(t)
    const adapter = redisAdapter({ client: redisClient(t), subscriber }, { prefix })
    const member = new TestMember('m')
    const hub = new Hub(adapter, new Set([member]))
    await hub.init(silentLogger())
    hub.join('r', member)
    await eventually(async () => (await subscribers(redis, `${prefix}:room:r`))[0] === 1)
    await adapter.close()
    t.same(await subscribers(redis, `${prefix}:room:r`), [0])
    hub.leaveAll(member)
    t.same([...hub.roomsOf(member)], [])
    t.equal(hub.broadcast(text('after close'), { rooms: null, exceptIds: null }, null), 1, 'local delivery is the hub\'s')
    t.match(adapter.stats(), { redisRoomChannels: 0, redisPublished: 0, redisPublishErrors: 0 }, 'and nothing was published')
    hub.join('again', member)
    await delay(50)
    t.same(await subscribers(redis, `${prefix}:room:again`), [0], 'a room that becomes active is not subscribed')
    t.same(await adapter.fetchRooms({ timeout: 1000 }), ['again'], 'queries answer for this instance alone, at once')
    t.equal(subscriber.status, 'ready')
  })

  t.test('a room that became active before init() is subscribed by init()', async (t) => {
    const prefix = uniquePrefix('early')
    const redis = redisClient(t)
    const adapter = redisAdapter({ url: REDIS_URL }, { prefix })
    t.teardown(() => adapter.close())
    const member = new TestMember('m')
    const hub = new Hub(adapter, new Set([member]))
    hub.join('early', member)
    t.same(await subscribers(redis, `${prefix}:room:early`), [0], 'nothing is connected yet')
    await hub.init(silentLogger())
    t.same(await subscribers(redis, `${prefix}:all`, `${prefix}:room:early`), [1, 1])
    t.equal(adapter.stats().redisRoomChannels, 1)
    // The hub tells each change once; told twice, the adapter stays as it is.
    adapter.roomActive('early')
    t.equal(adapter.stats().redisRoomChannels, 1, 'a room active twice is one channel')
    adapter.roomIdle('early')
    adapter.roomIdle('early')
    await eventually(async () => (await subscribers(redis, `${prefix}:room:early`))[0] === 0)
    t.equal(adapter.stats().redisRoomChannels, 0)
  })

  t.test('connections given to the adapter are left open, without its subscriptions and listeners', async (t) => {
    const prefix = uniquePrefix('given')
    const client = redisClient(t)
    const subscriber = redisClient(t)
    const redis = redisClient(t)
    await subscriber.subscribe('app-channel')
    // Both connected first: ioredis's own one-time 'ready' listener of a connecting client is gone.
    await client.ping()
    const listenersBefore = ['error', 'ready', 'messageBuffer'].map((event) => subscriber.listenerCount(event) + client.listenerCount(event))
    const a = await node(t, redisAdapter({ client, subscriber }, { prefix }))
    const b = await node(t, redisAdapter({ url: REDIS_URL, prefix }))
    const onA = await a.join(['r'])
    await eventually(async () => (await subscribers(redis, `${prefix}:room:r`))[0] === 1)

    t.same(await subscribers(redis, `${prefix}:all`, `${prefix}:query`, `${prefix}:room:r`, 'app-channel'), [2, 2, 1, 1])
    await redis.publish('app-channel', 'the app\'s own message')
    b.app.getWebSocket().broadcast('r', 'over given connections')
    await onA.waitFor(2)
    t.same(after(onA), ['over given connections'])
    t.equal(a.app.getWebSocket().stats().redisInvalidMessages, 0, 'a message of the app\'s own channel is not the adapter\'s business')

    await a.app.close()
    t.equal(client.status, 'ready', 'the client is still open')
    t.equal(subscriber.status, 'ready', 'the subscriber is still open')
    t.same(await subscribers(redis, `${prefix}:all`, `${prefix}:query`, `${prefix}:room:r`, 'app-channel'), [1, 1, 0, 1], 'the adapter\'s subscriptions are gone from the given subscriber, the app\'s own stays')
    t.same(['error', 'ready', 'messageBuffer'].map((event) => subscriber.listenerCount(event) + client.listenerCount(event)), listenersBefore, 'every listener it added is removed')
  })

  t.test('with a client alone, the subscriber is client.duplicate(), which the adapter owns', async (t) => {
    const prefix = uniquePrefix('duplicate')
    const client = redisClient(t, REDIS_URL, { lazyConnect: true })
    const redis = redisClient(t)
    const adapter = redisAdapter({ client }, { prefix })
    const a = await node(t, adapter)
    t.equal(client.status, 'ready', 'a lazy client is connected by init()')
    t.same(await subscribers(redis, `${prefix}:all`), [1])
    await a.app.close()
    t.equal(client.status, 'ready', 'the given client stays open')
    t.same(await subscribers(redis, `${prefix}:all`), [0], 'the duplicate was quit')
  })

  t.test('a given connection that has already ended does not hold up register', async (t) => {
    const client = redisClient(t)
    const subscriber = new Redis(REDIS_URL)
    await subscriber.quit()
    const a = await node(t, redisAdapter({ client, subscriber }, { prefix: uniquePrefix('ended') }))
    t.equal(a.app.getWebSocket().stats().redisConnected, 0)
    t.match(messagesOf(a.lines, 'Redis is not reachable at startup: broadcasts reach this instance only until it is')[0], { level: 40 })
  })

  t.test('when Redis is unreachable at startup, the app starts and delivers locally; broadcast never throws', async (t) => {
    const port = await freePort()
    const started = Date.now()
    const a = await node(t, redisAdapter({ url: `redis://127.0.0.1:${port}` }))
    t.ok(Date.now() - started < 3000, 'register did not wait for Redis')
    const client = await a.join(['r'])
    const manager = a.app.getWebSocket()
    for (let i = 0; i < 5; i++) t.equal(manager.broadcast('r', i), 1)
    t.equal(manager.broadcastAll('all'), 1)
    await client.waitFor(7)
    t.same(after(client), [0, 1, 2, 3, 4, 'all'])
    t.match(manager.stats(), { redisConnected: 0, redisPublished: 0, redisPublishErrors: 6 })
    t.same(await manager.fetchRooms(), ['r'], 'queries answer with this instance at once')
    t.equal(await manager.fetchConnections(), 1)
    t.equal(messagesOf(a.lines, 'Redis publish failed: this broadcast reached this instance only').length, 1, 'one line for the run of failures')
    t.equal(messagesOf(a.lines, 'Redis connection failed: broadcasts reach this instance only until Redis is back').length, 1, 'one line however often ioredis retries')
    t.ok(messagesOf(a.lines, 'Redis is not reachable at startup: broadcasts reach this instance only until it is').length === 1)
  })

  t.test('a failed PUBLISH is counted and logged once per run of failures; a failed query publish answers locally', async (t) => {
    const prefix = uniquePrefix('flaky')
    const client = new Flaky(redisClient(t))
    const a = await node(t, redisAdapter({ client, subscriber: redisClient(t) }, { prefix }))
    const b = await node(t, redisAdapter({ url: REDIS_URL, prefix }))
    const onA = await a.join(['r'])
    const onB = await b.join(['r'])
    const redis = redisClient(t)
    await eventually(async () => (await subscribers(redis, `${prefix}:room:r`))[0] === 2)
    const manager = a.app.getWebSocket()

    client.failPublish = true
    for (let i = 0; i < 3; i++) t.equal(manager.broadcast('r', `lost ${i}`), 1, 'delivered locally')
    t.equal(await manager.fetchRoomSize('r'), 1, 'the query could not be published: this instance answers alone')
    client.failPublish = false
    manager.broadcast('r', 'back')
    await onB.waitFor(2)
    t.same(after(onB), ['back'])
    await onA.waitFor(5)
    t.same(after(onA), ['lost 0', 'lost 1', 'lost 2', 'back'])
    await eventually(() => manager.stats().redisPublished === 1)
    t.match(manager.stats(), { redisPublishErrors: 3, redisPublished: 1 })
    t.match(messagesOf(a.lines, 'Redis publish failed: this broadcast reached this instance only'), [{ level: 50, err: { message: 'PUBLISH refused by the test' } }])
    t.match(messagesOf(a.lines, 'Redis publish works again'), [{ level: 30, failed: 3 }])
  })

  t.test('subscriptions are restored by the adapter when the subscriber reconnects, with the rooms changed meanwhile', async (t) => {
    const prefix = uniquePrefix('restore')
    const name = `${prefix}-subscriber`
    const redis = redisClient(t)
    // Killed by name: other test files share this Redis.
    const kill = async (): Promise<void> => {
      const list = String(await redis.client('LIST'))
      const id = /(?:^|\n)id=(\d+) .*name=(\S+)/g
      for (const [, found, named] of list.matchAll(id)) {
        if (named === name) await redis.client('KILL', 'ID', found)
      }
    }
    // No autoResubscribe at first: what comes back is the adapter's own doing.
    const subscriber = new Flaky(redisClient(t, REDIS_URL, { autoResubscribe: false, connectionName: name }))
    const reconnected = async (): Promise<void> => {
      const closed = new Promise((resolve) => subscriber.inner.once('close', resolve))
      await kill()
      await closed
    }
    const count = async (...rooms: string[]): Promise<string> => (await subscribers(redis, ...rooms.map((room) => `${prefix}:room:${room}`))).join()
    const b = await node(t, redisAdapter({ client: redisClient(t), subscriber }, { prefix }), 'debug')
    const a = await node(t, redisAdapter({ url: REDIS_URL }, { prefix }))
    const manager = b.app.getWebSocket()
    const stay = await b.join(['stay'])
    const moving = await b.join(['gone'])
    await eventually(async () => await count('stay', 'gone') === '1,1')

    // While the subscriber is away, one room is left and another joined.
    await reconnected()
    t.not(subscriber.status, 'ready')
    manager.leaveRoom('gone', b.sockets.get(moving.id) as WebSocket)
    manager.joinRoom('new', b.sockets.get(moving.id) as WebSocket)
    await eventually(async () => await count('stay', 'gone', 'new') === '1,0,1', 5000, 'subscriptions restored')
    t.same(await subscribers(redis, `${prefix}:all`), [2])

    // With ioredis restoring subscriptions too: an unsubscribe that failed is
    // redone by the adapter once a restore succeeds; a refused subscribe too.
    ;(subscriber.inner.options as { autoResubscribe: boolean }).autoResubscribe = true
    subscriber.failUnsubscribe = true
    manager.leaveRoom('stay', b.sockets.get(stay.id) as WebSocket)
    subscriber.failSubscribe = true
    manager.joinRoom('refused', b.sockets.get(stay.id) as WebSocket)
    await delay(50)
    t.equal(await count('stay', 'refused'), '1,0')
    subscriber.failUnsubscribe = false
    await reconnected()
    await eventually(() => messagesOf(b.lines, 'Redis subscriptions not restored yet').length === 1, 5000, 'the failed restore was logged')
    t.match(messagesOf(b.lines, 'Redis subscriptions not restored yet')[0], { level: 20, err: { message: 'SUBSCRIBE refused by the test' } })
    t.equal(await count('stay', 'refused'), '1,0', 'ioredis brought the stale channel back')
    subscriber.failSubscribe = false
    await reconnected()
    await eventually(async () => await count('stay', 'refused', 'new') === '0,1,1', 5000, 'the stale channel dropped, the refused one subscribed')

    a.app.getWebSocket().broadcast(['new', 'refused', 'stay'], 'after the restore')
    await Promise.all([moving.waitFor(2), stay.waitFor(2)])
    t.same([after(moving), after(stay)], [['after the restore'], ['after the restore']])
  })
})
