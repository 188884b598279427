import t from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import WebSocket from 'ws'
import nexusRealtime, { redisAdapter } from '../lib/index'
import { NexusClient, type ResumeInfo } from '../client/index'
import type { NexusRealtimeOptions } from '../types/index'
import { REDIS_URL, RedisServer, redisClient, uniquePrefix, withRedis } from './helpers/redis'
import { freePort, type TestContext } from './helpers/server'
import { until } from './helpers/wait'

// Bounded per file, not by tap's 30 s default: the file's waits are bounded themselves, and a busy 2-core machine stretches them.
t.setTimeout(180_000)

// History rooms over Redis Streams, end to end: real instances sharing a real
// Redis, the official client reconnecting by itself, instances and Redis
// stopped under traffic. Destructive cases run on a redis-server of their own.

const POLICIES: NexusRealtimeOptions['roomPolicies'] = {
  'chat:*': { history: { size: 100_000, ttl: 120_000 } },
  'small:*': { history: { size: 5, ttl: 120_000 } }
}

interface Instance {
  app: FastifyInstance
  port: number
  url: string
}

/** An instance on a Redis adapter: /ws joins the rooms of `?rooms=` in onConnect, and lets clients subscribe to any room. */
async function instance (t: TestContext, redisUrl: string, prefix: string, port = 0): Promise<Instance> {
  const app = Fastify({ logger: false })
  await app.register(nexusRealtime, { adapter: redisAdapter({ url: redisUrl, prefix }), roomPolicies: POLICIES, shutdownTimeout: 1000 })
  app.ws<{ query: { rooms?: string } }>('/ws', {
    rooms: { authorize: () => true },
    onConnect: (socket, ctx) => {
      for (const room of (ctx.query.rooms ?? '').split(',').filter(Boolean)) app.getWebSocket().joinRoom(room, socket)
    }
  })
  t.teardown(() => app.close())
  await app.listen({ host: '127.0.0.1', port })
  const bound = (app.server.address() as { port: number }).port
  return { app, port: bound, url: `ws://127.0.0.1:${bound}/ws` }
}

/** An official client that records what it gets: [room, offset, data], resume events, states. */
function client (t: TestContext, url: string, rooms: string, delay = 50): { client: NexusClient, got: Array<[string | undefined, number | undefined, unknown]>, resumes: ResumeInfo[], states: string[] } {
  const c = new NexusClient(url, { WebSocket: WebSocket as never, params: { rooms }, reconnect: { minDelay: delay, maxDelay: delay } })
  t.teardown(() => c.close())
  const got: Array<[string | undefined, number | undefined, unknown]> = []
  const resumes: ResumeInfo[] = []
  const states: string[] = []
  c.on('message', (data, info) => { got.push([info.room, info.offset, data]) })
  c.on('resume', (info) => { resumes.push(info) })
  c.on('state', (state) => { states.push(state) })
  return { client: c, got, resumes, states }
}

const offsetsOf = (got: Array<[string | undefined, number | undefined, unknown]>, room: string): number[] =>
  got.filter(([r]) => r === room).map(([, offset]) => offset as number)

const isOneToN = (offsets: number[], n: number): boolean => offsets.length === n && offsets.every((offset, index) => offset === index + 1)

/** Terminates every server socket of a room on an instance: the client sees a drop (1006) and reconnects. */
function drop (node: Instance, room: string): void {
  for (const socket of node.app.getWebSocket().socketsIn(room)) socket.terminate()
}

withRedis(t, 'history over Redis', async (t) => {
  t.test('a client on B dropped for a second while A publishes 1,000 messages/s ends with exactly 1..N, recovered, missed as it missed', async (t) => {
    const prefix = uniquePrefix('hist-flow')
    const a = await instance(t, REDIS_URL, prefix)
    const b = await instance(t, REDIS_URL, prefix)
    const room = 'chat:flow'
    const c = client(t, b.url, room, 1000)
    await until(() => c.client.state === 'connected' && b.app.getWebSocket().roomSize(room) === 1, 10_000, 'connected')
    let sent = 0
    const timer = setInterval(() => { sent++; a.app.getWebSocket().broadcast(room, { n: sent }) }, 1)
    t.teardown(() => clearInterval(timer))
    await until(() => c.got.length >= 200, 20_000, 'first messages')
    const before = c.got.length
    drop(b, room)
    await until(() => c.resumes.length === 1, 20_000, 'the resume after the drop')
    const resumedAt = c.got.length
    await until(() => c.got.length >= resumedAt + 200, 20_000, 'live messages after the resume')
    clearInterval(timer)
    const stored = (): number => (a.app.getWebSocket().stats().historyAppended)
    await until(() => stored() === sent, 20_000, 'every broadcast stored')
    await until(() => c.got.length >= sent, 20_000, 'every message')

    t.match(c.resumes[0], { room, recovered: true })
    t.ok(c.resumes[0].missed > 0, `missed ${c.resumes[0].missed}`)
    const offsets = offsetsOf(c.got, room)
    t.ok(isOneToN(offsets, sent), `exactly 1..${sent}, no gap, no duplicate`)
    t.ok(c.got.every(([, offset, data]) => (data as { n: number }).n === offset), 'each with its own data')
    t.ok(c.got[before + c.resumes[0].missed - 1] !== undefined, 'the missed ones came first')
    t.equal(a.app.getWebSocket().stats().historyFailures, 0)
  })

  t.test('an instance closed and started again on the same port while the publisher goes on: the client ends with exactly 1..N', async (t) => {
    const prefix = uniquePrefix('hist-restart')
    const a = await instance(t, REDIS_URL, prefix)
    const port = await freePort()
    const b1 = await instance(t, REDIS_URL, prefix, port)
    const room = 'chat:restart'
    const c = client(t, b1.url, room, 100)
    await until(() => b1.app.getWebSocket().roomSize(room) === 1, 10_000, 'connected')
    let sent = 0
    const timer = setInterval(() => { sent++; a.app.getWebSocket().broadcast(room, { n: sent }) }, 2)
    t.teardown(() => clearInterval(timer))
    await until(() => c.got.length >= 100, 20_000, 'first messages')
    await b1.app.close()
    const b2 = await instance(t, REDIS_URL, prefix, port)
    await until(() => c.resumes.length === 1, 20_000, 'the resume on the new instance')
    const resumedAt = c.got.length
    await until(() => c.got.length >= resumedAt + 100, 20_000, 'live after')
    clearInterval(timer)
    await until(() => a.app.getWebSocket().stats().historyAppended === sent, 20_000, 'every broadcast stored')
    await until(() => c.got.length >= sent, 20_000, 'every message')
    t.match(c.resumes[0], { room, recovered: true })
    t.ok(isOneToN(offsetsOf(c.got, room), sent), `exactly 1..${sent}`)
    t.equal(b2.app.getWebSocket().stats().resumeRecovered, 1)
  })

  t.test('400 concurrent publishes from two instances get unique contiguous offsets, and every client sees the same order', async (t) => {
    const prefix = uniquePrefix('hist-order')
    const a = await instance(t, REDIS_URL, prefix)
    const b = await instance(t, REDIS_URL, prefix)
    const room = 'chat:order'
    const onA = client(t, a.url, room)
    const onB = client(t, b.url, room)
    await until(() => a.app.getWebSocket().roomSize(room) === 1 && b.app.getWebSocket().roomSize(room) === 1, 10_000, 'both in the room')
    await until(() => onA.got.length === 0 && onB.client.state === 'connected', 10_000, 'ready')
    const publishes: Array<Promise<{ offset: number, epoch: string }>> = []
    for (let i = 0; i < 200; i++) {
      publishes.push(a.app.getWebSocket().publish(room, { from: 'a', i }))
      publishes.push(b.app.getWebSocket().publish(room, { from: 'b', i }))
    }
    const positions = await Promise.all(publishes)
    const offsets = positions.map((position) => position.offset).sort((x, y) => x - y)
    t.ok(isOneToN(offsets, 400), 'offsets 1..400, each once')
    t.equal(new Set(positions.map((position) => position.epoch)).size, 1, 'one epoch')
    await until(() => onA.got.length === 400 && onB.got.length === 400, 20_000, 'both clients got all')
    t.ok(isOneToN(offsetsOf(onA.got, room), 400), 'A: in offset order')
    t.same(onA.got, onB.got, 'the same messages in the same order on both instances')
    // The position a publish resolved with is the one its message came with.
    const byData = new Map(onA.got.map(([, offset, data]) => [JSON.stringify(data), offset]))
    t.equal(byData.get(JSON.stringify({ from: 'b', i: 7 })), positions[15].offset)
  })

  t.test('size exceeded while away: recovered false (TRIMMED), nothing replayed, live messages flow after', async (t) => {
    const prefix = uniquePrefix('hist-trim')
    const a = await instance(t, REDIS_URL, prefix)
    const room = 'small:1'
    const c = client(t, a.url, room, 500)
    await until(() => a.app.getWebSocket().roomSize(room) === 1, 10_000, 'connected')
    await a.app.getWebSocket().publish(room, 'seen')
    await until(() => c.got.length === 1)
    drop(a, room)
    for (let i = 0; i < 10; i++) await a.app.getWebSocket().publish(room, `away ${i}`)
    await until(() => c.resumes.length === 1, 20_000, 'resume')
    t.match(c.resumes[0], { room, recovered: false, reason: 'TRIMMED' })
    await a.app.getWebSocket().publish(room, 'live')
    await until(() => c.got.length === 2, 10_000, 'live message')
    t.same(c.got, [[room, 1, 'seen'], [room, 12, 'live']])

    // What the stream keeps, read back through the manager.
    const page = await a.app.getWebSocket().history(room)
    t.same(page.position.offset, 12)
    t.same(page.messages.map((message) => message.offset), [8, 9, 10, 11, 12], 'the newest `size`, oldest first')
    t.same((await a.app.getWebSocket().history(room, { since: 9, limit: 2 })).messages, [{ offset: 10, data: 'away 8' }, { offset: 11, data: 'away 9' }])
  })

  t.test('history deleted: a connected client is told (EPOCH_CHANGED) and continues in the new epoch; one that comes back replays nothing', async (t) => {
    const prefix = uniquePrefix('hist-del')
    const a = await instance(t, REDIS_URL, prefix)
    const redis = redisClient(t)
    const room = 'chat:del'
    const c = client(t, a.url, room, 500)
    await until(() => a.app.getWebSocket().roomSize(room) === 1, 10_000, 'connected')
    const first = await a.app.getWebSocket().publish(room, 'one')
    await until(() => c.got.length === 1)

    await redis.del(`${prefix}:h:{${room}}`, `${prefix}:s:{${room}}`)
    const second = await a.app.getWebSocket().publish(room, 'two')
    t.not(second.epoch, first.epoch, 'a new epoch')
    t.equal(second.offset, 1)
    await until(() => c.got.length === 2 && c.resumes.length === 1, 10_000, 'told while connected')
    t.match(c.resumes[0], { room, recovered: false, reason: 'EPOCH_CHANGED' })
    t.same(c.got[1], [room, 1, 'two'], 'it takes the new epoch\'s messages')

    drop(a, room)
    await redis.del(`${prefix}:h:{${room}}`, `${prefix}:s:{${room}}`)
    await a.app.getWebSocket().publish(room, 'three')
    await until(() => c.resumes.length === 2, 20_000, 'resume')
    t.match(c.resumes[1], { room, recovered: false, reason: 'EPOCH_CHANGED' })
    t.equal(c.got.length, 2, 'nothing replayed')
  })

  t.test('the store went back in one epoch (a failover to a replica that missed the last writes): a new epoch, the client told', async (t) => {
    const prefix = uniquePrefix('hist-back')
    const a = await instance(t, REDIS_URL, prefix)
    const redis = redisClient(t)
    const room = 'chat:back'
    const c = client(t, a.url, room, 500)
    await until(() => a.app.getWebSocket().roomSize(room) === 1, 10_000, 'connected')
    const manager = a.app.getWebSocket()
    const first = await manager.publish(room, 'one')
    await manager.publish(room, 'two')
    await manager.publish(room, 'three')
    await until(() => c.got.length === 3)

    // What a promoted replica that had not received the last two writes holds.
    const stream = `${prefix}:s:{${room}}`
    const [[, fields]] = await redis.xrange(stream, '1-0', '1-0')
    await redis.del(stream)
    await redis.xadd(stream, '1-0', ...fields)
    await redis.hset(`${prefix}:h:{${room}}`, 'o', 1)
    t.same(await manager.publish(room, 'other two'), { offset: 2, epoch: first.epoch }, 'the store gives offset 2 again')
    await until(() => c.resumes.length === 1, 10_000, 'the client told')
    t.match(c.resumes[0], { room, recovered: false, reason: 'EPOCH_CHANGED' })
    const renewed = await manager.history(room)
    t.not(renewed.position.epoch, first.epoch, 'a new epoch in the store')
    t.same(renewed.messages, [], 'the old epoch\'s messages dropped')
    await manager.publish(room, 'after')
    await until(() => c.got.length === 4, 10_000, 'the new epoch\'s messages')
    t.same(c.got.map(([, offset, data]) => [offset, data]), [[1, 'one'], [2, 'two'], [3, 'three'], [1, 'after']], 'no message under an offset the client had')
  })

  t.test('a lost pub/sub message is filled by the instance, once, without any client reconnecting', async (t) => {
    const prefix = uniquePrefix('hist-gap')
    const a = await instance(t, REDIS_URL, prefix)
    const b = await instance(t, REDIS_URL, prefix)
    const redis = redisClient(t)
    const room = 'chat:gap'
    const clients = [client(t, b.url, room), client(t, b.url, room), client(t, b.url, room)]
    await until(() => b.app.getWebSocket().roomSize(room) === 3, 10_000, 'connected')
    await a.app.getWebSocket().publish(room, 'one')
    await until(() => clients.every((c) => c.got.length === 1), 10_000, 'first')
    // What the store's script does, without the PUBLISH: a message stored but never received.
    await redis.hincrby(`${prefix}:h:{${room}}`, 'o', 1)
    await redis.xadd(`${prefix}:s:{${room}}`, '2-0', 'd', '"lost"', 'b', '0', 't', String(Date.now()))
    await a.app.getWebSocket().publish(room, 'three')
    await until(() => clients.every((c) => c.got.length === 3), 10_000, 'all three')
    for (const c of clients) {
      t.same(c.got, [[room, 1, 'one'], [room, 2, 'lost'], [room, 3, 'three']])
      t.same(c.states, ['connected'], 'never reconnected')
    }
    t.equal(b.app.getWebSocket().stats().historyGapsFilled, 1, 'one read for three clients')
  })

  t.test('Redis down: publish rejects with the code within a bound; rooms without history keep working here', async (t) => {
    const redis = await RedisServer.start(t)
    const a = await instance(t, redis.url, uniquePrefix('hist-down'))
    const history = client(t, a.url, 'chat:down,plain')
    await until(() => a.app.getWebSocket().roomSize('plain') === 1, 10_000, 'connected')
    await redis.kill()
    await until(() => a.app.getWebSocket().stats().redisConnected === 0, 10_000, 'seen down')
    const start = Date.now()
    await t.rejects(a.app.getWebSocket().publish('chat:down', 'x'), { code: 'FST_NEXUS_HISTORY_UNAVAILABLE', statusCode: 503 })
    t.ok(Date.now() - start < 6000, `rejected in ${Date.now() - start} ms`)
    t.equal(a.app.getWebSocket().broadcast('chat:down', 'y'), 0, 'broadcast does not throw')
    await until(() => a.app.getWebSocket().stats().historyFailures === 2, 10_000, 'counted')
    t.equal(a.app.getWebSocket().broadcast('plain', 'still here'), 1)
    await until(() => history.got.length === 1, 10_000, 'plain delivered')
    t.same(history.got, [['plain', undefined, 'still here']])
    await t.rejects(a.app.getWebSocket().history('chat:down'), { code: 'FST_NEXUS_HISTORY_UNAVAILABLE' })
  })

  t.test('Redis restarted without persistence: clients are told the epoch changed, and what is published after reaches them', async (t) => {
    const redis = await RedisServer.start(t)
    const a = await instance(t, redis.url, uniquePrefix('hist-restart-redis'))
    const c = client(t, a.url, 'chat:r')
    await until(() => a.app.getWebSocket().roomSize('chat:r') === 1, 10_000, 'connected')
    const before = await a.app.getWebSocket().publish('chat:r', 'before')
    await until(() => c.got.length === 1)
    await redis.kill()
    await until(() => a.app.getWebSocket().stats().redisConnected === 0, 10_000, 'seen down')
    await redis.start()
    await until(() => a.app.getWebSocket().stats().redisConnected === 1, 20_000, 'reconnected')
    await until(() => c.resumes.length === 1, 20_000, 'told')
    t.match(c.resumes[0], { room: 'chat:r', recovered: false, reason: 'EPOCH_CHANGED' })
    const after = await a.app.getWebSocket().publish('chat:r', 'after')
    t.not(after.epoch, before.epoch)
    await until(() => c.got.length === 2, 10_000, 'the new message')
    t.same(c.got[1], ['chat:r', 1, 'after'])
  })
})
