import t from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import type { WebSocket } from 'ws'
import nexusRealtime from '../lib/index'
import { redisAdapter } from '../lib/adapters/redis'
import { connectProtocol, type ProtocolClient } from './helpers/protocol'
import { RedisServer, REDIS_URL, startInstance, uniquePrefix, withRedis } from './helpers/redis'
import { connect, type TestContext } from './helpers/server'
import { until } from './helpers/wait'
import type { NexusRealtimeOptions, PresenceMember } from '../types/index'

// Bounded per file, not by tap's 30 s default: a crashed instance is reaped within 30 s by design.
t.setTimeout(180_000)

// Presence across instances on a real Redis: members of both instances
// listed on both, watchers on one instance following changes made on the
// other, an instance killed with SIGKILL reaped by the survivor, and Redis
// going away and coming back empty.

const POLICIES: NexusRealtimeOptions['roomPolicies'] = { 'doc:*': { presence: true } }

function closing<C extends { ws: WebSocket }> (t: TestContext, client: C): C {
  t.teardown(() => client.ws.close())
  return client
}

/** An app on the Redis adapter whose connections are `?user=<key>&name=<meta name>&rooms=a,b`. */
async function instance (t: TestContext, prefix: string, url = REDIS_URL): Promise<{ app: FastifyInstance, url: string }> {
  const app = Fastify()
  await app.register(nexusRealtime, { adapter: redisAdapter({ url }, { prefix }), roomPolicies: POLICIES })
  t.teardown(() => app.close())
  app.ws<{ query: { user?: string, name?: string, rooms?: string } }>('/ws', {
    rooms: { authorize: () => true },
    presence: { key: (ctx) => ctx.query.user ?? ctx.id, meta: (ctx) => ctx.query.name === undefined ? null : { name: ctx.query.name } },
    onConnect: (socket, ctx) => {
      for (const room of (ctx.query.rooms ?? '').split(',').filter(Boolean)) app.getWebSocket().joinRoom(room, socket)
    }
  })
  await app.listen({ host: '127.0.0.1', port: 0 })
  return { app, url: `ws://127.0.0.1:${(app.server.address() as { port: number }).port}/ws` }
}

function sorted (members: readonly PresenceMember[]): PresenceMember[] {
  return [...members].sort((a, b) => a.key < b.key ? -1 : a.key > b.key ? 1 : 0)
}

/** The list a watcher holds after applying its `p` and `d` frames of a room, in order. */
function listOf (client: ProtocolClient, room: string): PresenceMember[] | null {
  let members: Map<string, PresenceMember> | null = null
  for (const { kind, header } of client.frames) {
    if (header.r !== room) continue
    if (kind === 'p') members = header.m === undefined ? null : new Map(header.m.map(([key, connections, meta]: [string, number, unknown]) => [key, { key, meta, connections }]))
    if (kind !== 'd') continue
    for (const [key, connections, meta] of header.u) members?.set(key, { key, meta, connections })
    for (const key of header.l) members?.delete(key)
  }
  return members === null ? null : sorted([...members.values()])
}

async function watch (t: TestContext, url: string, room: string, user: string): Promise<ProtocolClient> {
  const client = closing(t, await connectProtocol(`${url}?user=${user}`))
  client.frame('s', { i: 1000, r: room, w: 1 })
  await client.next((frame) => frame.kind === 'p' && frame.header.r === room, 20_000)
  return client
}

async function membersOf (app: FastifyInstance, room: string): Promise<PresenceMember[]> {
  return sorted(await app.getWebSocket().presence(room))
}

withRedis(t, 'members of two instances are listed on both; tabs on different instances are one member', async (t) => {
  const prefix = uniquePrefix('presence')
  const a = await instance(t, prefix)
  const b = await instance(t, prefix)
  const annA = closing(t, await connect(`${a.url}?user=ann&name=Ann&rooms=doc:1`))
  const annB = closing(t, await connect(`${b.url}?user=ann&name=Ann&rooms=doc:1`))
  closing(t, await connect(`${b.url}?user=bob&rooms=doc:1`))
  const expected = [{ key: 'ann', meta: { name: 'Ann' }, connections: 2 }, { key: 'bob', meta: null, connections: 1 }]
  await until(async () => JSON.stringify(await membersOf(a.app, 'doc:1')) === JSON.stringify(expected), 20_000, 'A lists both')
  t.same(await membersOf(b.app, 'doc:1'), expected, 'B lists the same')
  t.same(await a.app.getWebSocket().presenceCount('doc:1'), { members: 2, connections: 3 }, 'counts across instances')

  const watcherB = await watch(t, b.url, 'doc:1', 'watcher')
  await until(async () => JSON.stringify(listOf(watcherB, 'doc:1')) === JSON.stringify(await membersOf(a.app, 'doc:1')) && listOf(watcherB, 'doc:1')?.length === 3, 20_000, 'the watcher on B converges')

  annA.close()
  await until(async () => (await a.app.getWebSocket().presenceCount('doc:1')).connections === 3, 20_000, 'ann keeps one tab')
  t.same((await membersOf(b.app, 'doc:1'))[0], { key: 'ann', meta: { name: 'Ann' }, connections: 1 }, 'one tab closing on A keeps the member')
  annB.close()
  await until(async () => (await a.app.getWebSocket().presenceCount('doc:1')).connections === 2, 20_000, 'ann\'s last tab, on B, closed')
  t.same((await membersOf(a.app, 'doc:1')).map((member) => member.key), ['bob', 'watcher'], 'both tabs closed: ann left, on both instances')
  await until(() => listOf(watcherB, 'doc:1')?.some((member) => member.key === 'ann') === false, 20_000, 'the watcher saw ann leave')

  // 50 joins on A as fast as they come reach the watcher on B in far fewer frames.
  const before = watcherB.frames.length
  await Promise.all(Array.from({ length: 50 }, async (_, i) => closing(t, await connect(`${a.url}?user=u${i}&rooms=doc:1`))))
  await until(async () => {
    const list = listOf(watcherB, 'doc:1')
    return list?.length === 52 && JSON.stringify(list) === JSON.stringify(await membersOf(a.app, 'doc:1'))
  }, 20_000, 'the watcher on B lists the 50 joiners')
  const frames = watcherB.frames.slice(before).filter((frame) => frame.kind === 'd' || frame.kind === 'p').length
  t.ok(frames < 15, `50 joins on A reached the watcher on B in ${frames} frames`)
  t.ok(a.app.getWebSocket().stats().presenceUpdates < 30, 'A wrote them in a few coalesced updates')
})

withRedis(t, 'an instance killed with SIGKILL: its members are removed and their leaves told within 30 s', async (t) => {
  const prefix = uniquePrefix('presence-kill')
  const a = await instance(t, prefix)
  const doomed = await startInstance(t, 'doomed', { PREFIX: prefix, REDIS_URL, ROOM_POLICIES: JSON.stringify(POLICIES) })
  for (const user of ['k1', 'k2', 'k3']) {
    const client = closing(t, await connect(`${doomed.wsUrl}/ws?user=${user}&rooms=doc:k`))
    await client.waitFor(1)
  }
  const watcher = await watch(t, a.url, 'doc:k', 'survivor')
  await until(() => listOf(watcher, 'doc:k')?.length === 4, 20_000, 'the watcher on A sees the three members of the doomed instance')
  t.same((await membersOf(a.app, 'doc:k')).map((member) => member.key), ['k1', 'k2', 'k3', 'survivor'])

  const killed = Date.now()
  doomed.child.kill('SIGKILL')
  await until(() => listOf(watcher, 'doc:k')?.length === 1, 30_000, 'the leaves told to the watcher within 30 s')
  const elapsed = Date.now() - killed
  t.ok(elapsed <= 30_000, `leaves told ${elapsed} ms after the SIGKILL`)
  t.same(await membersOf(a.app, 'doc:k'), [{ key: 'survivor', meta: null, connections: 1 }], 'presence() dropped them')
  t.same(await a.app.getWebSocket().presenceCount('doc:k'), { members: 1, connections: 1 })
  t.equal(a.app.getWebSocket().stats().redisPresenceReaped, 1, 'reaped by the survivor')
})

withRedis(t, 'Redis away: presence() rejects with the code; Redis back empty: the members are written again', async (t) => {
  const redis = await RedisServer.start(t)
  const prefix = uniquePrefix('presence-outage')
  const a = await instance(t, prefix, redis.url)
  closing(t, await connect(`${a.url}?user=ann&rooms=doc:o`))
  const watcher = await watch(t, a.url, 'doc:o', 'watcher')
  await until(() => listOf(watcher, 'doc:o')?.length === 2, 20_000)

  await redis.kill()
  await t.rejects(a.app.getWebSocket().presence('doc:o'), { code: 'FST_NEXUS_PRESENCE_UNAVAILABLE', statusCode: 503 })
  await t.rejects(a.app.getWebSocket().presenceCount('doc:o'), { code: 'FST_NEXUS_PRESENCE_UNAVAILABLE' })
  // A change while Redis is away is written once it is back.
  closing(t, await connect(`${a.url}?user=carl&rooms=doc:o`))
  await until(() => a.app.getWebSocket().stats().presenceFailures > 0, 20_000, 'the write failed and was counted')

  await redis.start()
  await until(async () => {
    try {
      return JSON.stringify((await membersOf(a.app, 'doc:o')).map((member) => member.key)) === '["ann","carl","watcher"]'
    } catch {
      return false
    }
  }, 30_000, 'the instance wrote its members again into the empty Redis')
  await until(() => listOf(watcher, 'doc:o')?.length === 3, 30_000, 'the watcher converges after the outage')
})
