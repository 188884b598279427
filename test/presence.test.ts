import t from 'tap'
import type { WebSocket } from 'ws'
import type { FastifyInstance } from 'fastify'
import nexusRealtime from '../lib/index'
import Fastify from 'fastify'
import { connectProtocol, type Frame, type ProtocolClient } from './helpers/protocol'
import { build, connect, listen, type TestContext } from './helpers/server'
import { until } from './helpers/wait'
import type { NexusRealtimeOptions, PresenceMember } from '../types/index'

// Bounded per file, not by tap's 30 s default: the waits below are bounded themselves, and a busy 2-core machine stretches them.
t.setTimeout(180_000)

// Presence on the memory store: members by key, tabs, the frames a watcher
// gets (snapshot, batched changes, counts above the list limit), and every
// refusal and failure. Clients are real sockets speaking nexus.v1 by hand.

const POLICIES: NexusRealtimeOptions['roomPolicies'] = {
  'doc:*': { presence: true },
  'small:*': { presence: { listLimit: 3 } },
  'both:*': { presence: true, history: { size: 10, ttl: 60_000 } },
  'plain:*': { history: { size: 10, ttl: 60_000 } }
}

function closing<C extends { ws: WebSocket }> (t: TestContext, client: C): C {
  t.teardown(() => client.ws.close())
  return client
}

/**
 * An app whose connections are `?user=<id>&name=<name>`: the user is the
 * presence key, the name its meta; `?rooms=a,b` are joined in onConnect.
 */
async function presenceApp (t: TestContext, options: NexusRealtimeOptions = {}, more?: (app: FastifyInstance) => void): Promise<{ app: FastifyInstance, url: string, errors: Error[] }> {
  const app = await build(t, { roomPolicies: POLICIES, ...options })
  more?.(app)
  const errors: Error[] = []
  app.ws<{ query: { user?: string, name?: string, rooms?: string } }>('/ws', {
    rooms: { authorize: (room) => !room.startsWith('secret') },
    presence: {
      key: (ctx) => ctx.query.user ?? ctx.id,
      meta: (ctx) => ctx.query.name === undefined ? undefined : { name: ctx.query.name }
    },
    onConnect: (socket, ctx) => {
      for (const room of (ctx.query.rooms ?? '').split(',').filter(Boolean)) app.getWebSocket().joinRoom(room, socket)
    },
    onError: (_socket, error) => { errors.push(error) }
  })
  const url = `${await listen(app)}/ws`
  return { app, url, errors }
}

/** What a client following the presence frames of a room holds: the list (null: counts only), the count, the version. */
function presenceOf (client: ProtocolClient, room: string): { members: PresenceMember[] | null, count: { members: number, connections: number } | null, version: number, frames: Frame[] } {
  let members: Map<string, PresenceMember> | null = null
  let count: { members: number, connections: number } | null = null
  let version = -1
  const frames = client.frames.filter((frame) => (frame.kind === 'p' || frame.kind === 'd') && frame.header.r === room)
  for (const { kind, header } of frames) {
    if (kind === 'p') {
      version = header.v
      if (header.m !== undefined) {
        members = new Map(header.m.map(([key, connections, meta]: [string, number, unknown]) => [key, { key, meta, connections }]))
        count = null
      } else {
        members = null
        count = { members: header.n, connections: header.c }
      }
      continue
    }
    if (header.v !== version + 1) throw new Error(`version gap: ${version} then ${header.v as number}`)
    version = header.v
    for (const [key, connections, meta] of header.u) members?.set(key, { key, meta, connections })
    for (const key of header.l) members?.delete(key)
  }
  return { members: members === null ? null : sortedMembers([...members.values()]), count, version, frames }
}

function sortedMembers (members: readonly PresenceMember[]): PresenceMember[] {
  return [...members].sort((a, b) => a.key < b.key ? -1 : a.key > b.key ? 1 : 0)
}

async function watcher (t: TestContext, url: string, room: string, query = 'user=watcher'): Promise<ProtocolClient> {
  const client = closing(t, await connectProtocol(`${url}?${query}`))
  // An id of its own, apart from the ones the client's helpers count from 1.
  client.frame('s', { i: 1000, r: room, w: 1 })
  await client.next((frame) => frame.kind === 'p' && frame.header.r === room)
  return client
}

/** Waits until the room has `size` members and a watcher's list equals what the manager says. */
async function converged (app: FastifyInstance, client: ProtocolClient, room: string, size: number): Promise<PresenceMember[]> {
  let expected: PresenceMember[] = []
  await until(async () => {
    expected = sortedMembers(await app.getWebSocket().presence(room))
    return expected.length === size && JSON.stringify(presenceOf(client, room).members) === JSON.stringify(expected)
  }, 10_000, `the watcher's list of ${room} to equal manager.presence() with ${size} members`)
  return expected
}

t.test('two tabs of one user are one member with two connections; it leaves with its last tab', async (t) => {
  const { app, url } = await presenceApp(t)
  const manager = app.getWebSocket()
  const tab1 = closing(t, await connect(`${url}?user=ann&name=Ann&rooms=doc:1`))
  const tab2 = closing(t, await connect(`${url}?user=ann&name=Ann&rooms=doc:1`))
  const bob = closing(t, await connect(`${url}?user=bob&rooms=doc:1`))
  await until(async () => (await manager.presenceCount('doc:1')).connections === 3, 10_000, 'three connections counted')
  t.same(sortedMembers(await manager.presence('doc:1')), [
    { key: 'ann', meta: { name: 'Ann' }, connections: 2 },
    { key: 'bob', meta: null, connections: 1 }
  ], 'one member per key, meta of its connection (null without meta)')
  t.same(await manager.presenceCount('doc:1'), { members: 2, connections: 3 })

  tab1.close()
  await until(async () => (await manager.presenceCount('doc:1')).connections === 2, 10_000)
  t.same(sortedMembers(await manager.presence('doc:1'))[0], { key: 'ann', meta: { name: 'Ann' }, connections: 1 }, 'one tab closing keeps the member')
  tab2.close()
  bob.close()
  await until(async () => (await manager.presenceCount('doc:1')).members === 0, 10_000)
  t.same(await manager.presence('doc:1'), [], 'both tabs closing removes it')
  t.same(await manager.presenceCount('doc:1'), { members: 0, connections: 0 })
})

t.test('a watcher gets the members, then batched changes; its list always converges to manager.presence()', async (t) => {
  const { app, url } = await presenceApp(t)
  const ann = closing(t, await connect(`${url}?user=ann&name=Ann&rooms=doc:2`))
  await until(async () => (await app.getWebSocket().presenceCount('doc:2')).members === 1, 10_000)
  const watching = await watcher(t, url, 'doc:2', 'user=watcher&name=W')
  const first = watching.frames.find((frame) => frame.kind === 'p')
  t.same(first?.header.m, [['ann', 1, { name: 'Ann' }]], 'the snapshot lists who is there')
  const answer = watching.frames.findIndex((frame) => frame.kind === 's')
  t.ok(answer >= 0 && answer < watching.frames.indexOf(first as Frame), 'the subscribe answer comes before the members')
  t.same(await converged(app, watching, 'doc:2', 2), [
    { key: 'ann', meta: { name: 'Ann' }, connections: 1 },
    { key: 'watcher', meta: { name: 'W' }, connections: 1 }
  ], 'a subscriber to a presence room is a member of it, listed like any other')

  // 50 joins as fast as they come: far fewer frames than joins, and the full list at the end.
  const before = presenceOf(watching, 'doc:2').frames.length
  const joiners = await Promise.all(Array.from({ length: 50 }, async (_, i) => closing(t, await connect(`${url}?user=u${i}&rooms=doc:2`))))
  const members = await converged(app, watching, 'doc:2', 52)
  t.equal(members.length, 52, 'every joiner listed')
  const frames = presenceOf(watching, 'doc:2').frames.length - before
  t.ok(frames < 15, `50 joins reached the watcher in ${frames} frames`)

  ann.close()
  for (const joiner of joiners.slice(0, 25)) joiner.close()
  t.equal((await converged(app, watching, 'doc:2', 26)).length, 26, 'leaves applied')
  const stats = app.getWebSocket().stats()
  t.ok(stats.presenceUpdates > 0 && stats.presenceFrames > 0, 'counted in stats()')
})

t.test('only sockets that asked get presence frames; unsubscribing stops them', async (t) => {
  const { app, url } = await presenceApp(t)
  const watching = await watcher(t, url, 'doc:3')
  const quiet = closing(t, await connectProtocol(`${url}?user=quiet`))
  t.equal((await quiet.subscribe('doc:3')).kind, 's')
  const joinedByServer = closing(t, await connectProtocol(`${url}?user=served&rooms=doc:3`))
  const raw = closing(t, await connect(`${url}?user=raw&rooms=doc:3`))
  await until(() => presenceOf(watching, 'doc:3').members?.length === 4, 10_000, 'four members seen by the watcher')
  t.notOk(quiet.frames.some((frame) => frame.kind === 'p' || frame.kind === 'd'), 'a subscriber without presence gets none')
  t.notOk(joinedByServer.frames.some((frame) => frame.kind === 'p' || frame.kind === 'd'), 'a socket joined by server code gets none')
  t.notOk(raw.messages.length > 0, 'a raw socket gets none')

  t.equal((await watching.unsubscribe('doc:3')).kind, 'u')
  const seen = watching.frames.length
  const late = closing(t, await connect(`${url}?user=late&rooms=doc:3`))
  await until(async () => (await app.getWebSocket().presenceCount('doc:3')).members === 4, 10_000, 'late joined, watcher gone')
  // A change after the late one, seen by a second watcher: by then the first would have had its frame.
  const second = await watcher(t, url, 'doc:3', 'user=second')
  await until(() => presenceOf(second, 'doc:3').members?.some((member) => member.key === 'second') === true, 10_000)
  t.equal(watching.frames.length, seen, 'nothing more after unsubscribe')
  late.close()
})

t.test('a leave and a re-join of one key within the window cancel out; server joins and leaves count too', async (t) => {
  let socket: WebSocket | undefined
  const { app, url } = await presenceApp(t, {}, (app) => app.ws('/served', { onConnect: (s) => { socket = s } }))
  const manager = app.getWebSocket()
  const served = closing(t, await connect(`${url.replace(/\/ws$/, '/served')}`))
  await until(() => socket !== undefined)
  const watching = await watcher(t, url, 'doc:4')
  await converged(app, watching, 'doc:4', 1)

  manager.joinRoom('doc:4', socket as WebSocket)
  const withServed = await converged(app, watching, 'doc:4', 2)
  t.equal(withServed.length, 2, 'joinRoom by server code lists the socket (key: its id by default)')
  const frames = presenceOf(watching, 'doc:4').frames.length
  manager.leaveRoom('doc:4', socket as WebSocket)
  manager.joinRoom('doc:4', socket as WebSocket)
  // Something else changes afterwards: its frame is the next one the watcher gets.
  const other = closing(t, await connect(`${url}?user=other&rooms=doc:4`))
  await until(() => presenceOf(watching, 'doc:4').members?.length === 3, 10_000)
  const after = presenceOf(watching, 'doc:4').frames.slice(frames)
  t.notOk(after.some((frame) => JSON.stringify(frame.header).includes((manager.contextOf(socket as WebSocket)?.id) as string)), 'the served socket left and came back: no frame about it')

  t.ok(manager.deleteRoom('doc:4'))
  await until(async () => (await manager.presenceCount('doc:4')).members === 0, 10_000, 'deleteRoom removes every member')
  other.close()
  served.close()
})

t.test('rooms above their listLimit send counts; back under it, the list', async (t) => {
  const { app, url } = await presenceApp(t)
  const watching = await watcher(t, url, 'small:1')
  const others = await Promise.all(['a', 'b', 'c'].map(async (user) => closing(t, await connect(`${url}?user=${user}&rooms=small:1`))))
  await until(() => presenceOf(watching, 'small:1').count?.members === 4, 10_000, 'counts once over the limit')
  t.equal(presenceOf(watching, 'small:1').members, null, 'no list above the limit')
  t.same(presenceOf(watching, 'small:1').count, { members: 4, connections: 4 })
  const late = await watcher(t, url, 'small:1', 'user=late')
  const lateFirst = late.frames.find((frame) => frame.kind === 'p')
  t.same([lateFirst?.header.n, lateFirst?.header.m], [4, undefined], 'a new watcher of a big room gets counts (not yet counting itself)')
  late.close()
  others[0].close()
  others[1].close()
  await until(() => presenceOf(watching, 'small:1').members?.length === 2, 10_000, 'the list again once under the limit')
  t.same(await converged(app, watching, 'small:1', 2), [{ key: 'c', meta: null, connections: 1 }, { key: 'watcher', meta: null, connections: 1 }])
})

t.test('a watcher that asks again (p) gets the members again; p for a room it does not watch is ignored', async (t) => {
  const { app, url } = await presenceApp(t)
  const watching = await watcher(t, url, 'doc:5')
  await converged(app, watching, 'doc:5', 1)
  const snapshots = (): number => watching.frames.filter((frame) => frame.kind === 'p').length
  const before = snapshots()
  watching.frame('p', { r: 'doc:6' })
  watching.frame('p', { r: 42 })
  watching.frame('p', { r: 'doc:5' })
  await until(() => snapshots() === before + 1, 10_000, 'a second snapshot')
  const last = watching.frames.filter((frame) => frame.kind === 'p').at(-1)
  t.same(last?.header.m, [['watcher', 1, null]])
  t.equal(last?.header.v, presenceOf(watching, 'doc:5').version, 'at the current version')
  // Subscribing again with presence to a room it holds: answered, members again.
  watching.frame('s', { i: 9, r: 'doc:5', w: 1 })
  await until(() => snapshots() === before + 2, 10_000, 'a third snapshot')
  t.equal(watching.frames.filter((frame) => frame.kind === 'e').length, 0, 'no error on the way')
})

t.test('presence in a room without a presence policy: refused, and the manager says why', async (t) => {
  const { app, url } = await presenceApp(t)
  const client = closing(t, await connectProtocol(`${url}?user=x`))
  client.frame('s', { i: 1, r: 'plain:1', w: 1 })
  const refusal = await client.answerTo(1)
  t.same([refusal.kind, refusal.header.c, refusal.header.t, refusal.header.m], ['e', 'NOT_ENABLED', undefined, 'This room does not track presence'], 'permanent NOT_ENABLED')
  t.equal(app.getWebSocket().roomSize('plain:1'), 0, 'a refusal has no side effect')
  // Subscribed without presence, then asking for it: refused, the subscription stays.
  client.frame('s', { i: 2, r: 'plain:1' })
  t.equal((await client.answerTo(2)).kind, 's')
  client.frame('s', { i: 3, r: 'plain:1', w: 1 })
  t.equal((await client.answerTo(3)).header.c, 'NOT_ENABLED')
  t.equal(app.getWebSocket().roomSize('plain:1'), 1, 'still subscribed')
  // A room the route's authorize refuses: its refusal, not the presence one.
  client.frame('s', { i: 4, r: 'secret:1', w: 1 })
  t.equal((await client.answerTo(4)).header.c, 'FORBIDDEN')
  await t.rejects(app.getWebSocket().presence('plain:1'), { code: 'FST_NEXUS_NO_PRESENCE' })
  await t.rejects(app.getWebSocket().presenceCount('plain:1'), { code: 'FST_NEXUS_NO_PRESENCE' })
  await t.rejects(app.getWebSocket().presence(''), { code: 'FST_NEXUS_INVALID_ROOM' })
  await t.rejects(app.getWebSocket().presenceCount(7 as unknown as string), { code: 'FST_NEXUS_INVALID_ROOM' })
  // A history room with presence too: both work side by side.
  const both = closing(t, await connectProtocol(`${url}?user=y`))
  both.frame('s', { i: 1, r: 'both:1', w: 1 })
  const answer = await both.answerTo(1)
  t.same([answer.kind, answer.header.o], ['s', 0], 'the history position in the answer')
  await both.next((frame) => frame.kind === 'p')
})

t.test('an app without presence policies: presence() refuses, and a presence subscribe is refused', async (t) => {
  const app = await build(t, {})
  app.ws('/ws', { rooms: { authorize: () => true } })
  const url = `${await listen(app)}/ws`
  await t.rejects(app.getWebSocket().presence('doc:1'), { code: 'FST_NEXUS_NO_PRESENCE', message: /roomPolicies entry with presence: true/ })
  const client = closing(t, await connectProtocol(url))
  client.frame('s', { i: 1, r: 'doc:1', w: 1 })
  t.equal((await client.answerTo(1)).header.c, 'NOT_ENABLED')
  client.frame('p', { r: 'doc:1' })
  client.frame('s', { i: 2, r: 'doc:1' })
  t.equal((await client.answerTo(2)).kind, 's', 'the p frame was ignored; subscribes without presence work')
})

t.test('presence.key and presence.meta that fail: onError, close 1011, not listed', async (t) => {
  const app = await build(t, { roomPolicies: POLICIES })
  const errors: Error[] = []
  app.ws<{ query: { fail: string } }>('/ws', {
    presence: {
      key: (ctx) => {
        if (ctx.query.fail === 'throw') throw new Error('no key today')
        if (ctx.query.fail === 'object') return {} as unknown as string
        if (ctx.query.fail === 'long') return 'k'.repeat(257)
        if (ctx.query.fail === 'number') return 42
        return 'ok'
      },
      meta: (ctx) => ctx.query.fail === 'meta' ? { big: 'x'.repeat(5000) } : ctx.query.fail === 'fn' ? () => {} : undefined
    },
    onConnect: (socket) => { app.getWebSocket().joinRoom('doc:7', socket) },
    onError: (_socket, error) => { errors.push(error) }
  })
  const url = `${await listen(app)}/ws`
  for (const [fail, message] of [['throw', /no key today/], ['object', /a key that is not a string of 1 to 256 characters \(an object/], ['long', /257 characters/], ['meta', /over 4096 bytes/]] as const) {
    const client = closing(t, await connect(`${url}?fail=${fail}`))
    const { code } = await client.closed()
    t.equal(code, 1011, `${fail}: closed with 1011`)
    t.match(errors.at(-1)?.message, message, `${fail}: onError told why`)
  }
  t.equal(errors.filter((error) => (error as Error & { code?: string }).code === 'FST_NEXUS_INVALID_PRESENCE').length, 3, 'bad values are FST_NEXUS_INVALID_PRESENCE')
  const number = closing(t, await connect(`${url}?fail=number`))
  const fn = closing(t, await connect(`${url}?fail=fn`))
  await until(async () => (await app.getWebSocket().presenceCount('doc:7')).members === 2, 10_000)
  t.same(sortedMembers(await app.getWebSocket().presence('doc:7')), [{ key: '42', meta: null, connections: 1 }, { key: 'ok', meta: null, connections: 1 }], 'a number key becomes a string; a meta with no JSON form is null')
  number.close()
  fn.close()
})

t.test('options: presence policies and the route option are checked at register', async (t) => {
  const register = async (roomPolicies: unknown): Promise<unknown> => {
    const app = Fastify()
    t.teardown(() => app.close())
    return await app.register(nexusRealtime, { roomPolicies } as NexusRealtimeOptions)
  }
  await t.rejects(register({ 'a*': { presence: 'yes' } }), { code: 'FST_NEXUS_INVALID_OPTION', message: /roomPolicies\["a\*"\]\.presence.*true, or \{ listLimit \}/ })
  await t.rejects(register({ a: { presence: { listLimit: 0 } } }), { message: /presence\.listLimit.*an integer from 1 to 100000/ })
  await t.rejects(register({ a: { presence: { limit: 5 } } }), { message: /presence\.limit.*a known presence option/ })
  await t.rejects(register({ a: { history: null } }), { message: /roomPolicies\["a"\]\.history/ })
  await t.rejects(register({ a: { members: true } }), { message: /a known policy \(history, presence\)/ })
  await t.resolves(register({ a: { presence: false }, b: { presence: { listLimit: 100_000 } } }), 'presence: false is no presence; listLimit up to 100000')
  await t.resolves(register({ a: { presence: false } }), 'no policy left: the plain path')

  const app = await build(t, {})
  for (const [presence, message] of [
    ['yes', /presence.*\{ key, meta \}/],
    [{ key: 'id' }, /presence\.key.*a function of ctx/],
    [{ name: () => 'x' }, /presence\.name.*presence takes key and meta/]
  ] as const) {
    t.throws(() => app.ws('/x', { presence } as never), { code: 'FST_NEXUS_INVALID_ROUTE', message })
  }
})

t.test('app.close() with members: their leaves are written, and the store stops', async (t) => {
  const app = Fastify()
  await app.register(nexusRealtime, { roomPolicies: POLICIES })
  app.ws('/ws', { onConnect: (socket) => { app.getWebSocket().joinRoom('doc:8', socket) } })
  const url = `${await listen(app)}/ws`
  closing(t, await connect(url))
  await until(async () => (await app.getWebSocket().presenceCount('doc:8')).members === 1, 10_000)
  const manager = app.getWebSocket()
  await app.close()
  t.same(await manager.presenceCount('doc:8'), { members: 0, connections: 0 }, 'nothing left behind')
})

t.test('the official client: presence events hold the list, across a reconnect, and end equal to manager.presence()', async (t) => {
  const { NexusClient } = await import('../client/index')
  const { default: WebSocketClass } = await import('ws')
  const { app, url } = await presenceApp(t)
  const manager = app.getWebSocket()
  const client = new NexusClient(`${url}?user=me&name=Me`, { WebSocket: WebSocketClass as never, reconnect: { minDelay: 10, maxDelay: 50 } })
  t.teardown(() => client.close())
  const sub = client.subscribe('doc:9', { presence: true })
  let latest: { members: PresenceMember[] | null, count: { members: number, connections: number } } = { members: null, count: { members: 0, connections: 0 } }
  sub.on('presence', (members, count) => { latest = { members, count } })
  const same = async (size: number): Promise<void> => {
    await until(async () => {
      const expected = sortedMembers(await manager.presence('doc:9'))
      return expected.length === size && JSON.stringify(sortedMembers(latest.members ?? [])) === JSON.stringify(expected)
    }, 10_000, `the client's list to equal manager.presence() with ${size} members`)
  }
  await same(1)
  t.same(latest.members, [{ key: 'me', meta: { name: 'Me' }, connections: 1 }], 'the client lists itself')
  const other = closing(t, await connect(`${url}?user=ann&rooms=doc:9`))
  await same(2)
  t.same(latest.count, { members: 2, connections: 2 })

  // The server drops the connection: the client reconnects, subscribes again, and gets a fresh list.
  const [socket] = manager.socketsIn('doc:9').filter((s) => manager.contextOf(s)?.query.user === 'me')
  socket.terminate()
  other.close()
  await until(() => client.state !== 'connected', 10_000)
  await until(() => client.state === 'connected', 10_000)
  await same(1)
  t.same(latest.members?.map((member) => member.key), ['me'], 'after the reconnect the list is the room as it is now')
})
