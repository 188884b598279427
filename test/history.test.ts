import t from 'tap'
import type { WebSocket } from 'ws'
import type { FastifyInstance } from 'fastify'
import { connectProtocol, connectResuming, positionsOf, roomMessages, ProtocolClient } from './helpers/protocol'
import { build, connect, listen, type TestContext } from './helpers/server'
import { until } from './helpers/wait'
import type { NexusRealtimeOptions } from '../types/index'

// Bounded per file, not by tap's 30 s default: the file's waits are bounded themselves, and a busy 2-core machine stretches them.
t.setTimeout(180_000)

// History rooms on the memory store: positions, resume for rooms joined by
// server code and rooms subscribed by the client, and every way a resume
// cannot be exact. Clients are real sockets speaking nexus.v1 by hand.

const POLICIES: NexusRealtimeOptions['roomPolicies'] = {
  'chat:*': { history: { size: 100, ttl: 60_000 } },
  'chat:vip:*': { history: { size: 3, ttl: 60_000 } },
  feed: { history: { size: 1000, ttl: 60_000 } },
  'short:*': { history: { size: 100, ttl: 1 } },
  'flow:*': { history: { size: 100_000, ttl: 60_000 } }
}

function closing<C extends { ws: WebSocket }> (t: TestContext, client: C): C {
  t.teardown(() => client.ws.close())
  return client
}

/** An app whose route joins every connection to the rooms of `?rooms=a,b` in onConnect (the seed's style), and lets clients subscribe to any room. */
async function chatApp (t: TestContext, options: NexusRealtimeOptions = {}, more?: (app: FastifyInstance) => void): Promise<{ app: FastifyInstance, url: string }> {
  const app = await build(t, { roomPolicies: POLICIES, ...options })
  more?.(app)
  app.ws<{ query: { rooms?: string } }>('/ws', {
    rooms: { authorize: (room) => !room.startsWith('secret') },
    onConnect: (socket, ctx) => {
      for (const room of (ctx.query.rooms ?? '').split(',').filter(Boolean)) app.getWebSocket().joinRoom(room, socket)
    }
  })
  const url = `${await listen(app)}/ws`
  return { app, url }
}

async function dropped (client: ProtocolClient): Promise<void> {
  client.close()
  await client.closed()
}

t.test('roomPolicies: exact names and prefixes, the longest match wins; rooms without a policy keep the plain frames', async (t) => {
  const { app, url } = await chatApp(t)
  const manager = app.getWebSocket()
  const client = closing(t, await connectProtocol(`${url}?rooms=chat:1,chat:vip:1,feed,plain`))
  await until(() => manager.roomSize('plain') === 1)
  manager.broadcast('plain', 'p')
  for (let i = 0; i < 5; i++) manager.broadcast('chat:vip:1', i)
  manager.broadcast('chat:1', 'c')
  manager.broadcast('feed', 'f')
  await client.next((frame) => frame.header.r === 'feed' && frame.kind === 'm')
  const joined = client.frames.filter((frame) => frame.kind === 'j').map((frame) => frame.header.r)
  t.same(joined.sort(), ['chat:1', 'chat:vip:1', 'feed'], 'a j frame with the position for each history room joined, none for the plain room')
  t.same(client.frames.find((frame) => frame.header.r === 'plain')?.header, { r: 'plain' }, 'a plain room keeps its header')
  t.same(roomMessages(client, 'chat:vip:1').map(([offset]) => offset), [1, 2, 3, 4, 5])

  // chat:vip:* keeps 3: the longer prefix won over chat:* (100).
  t.same((await manager.history('chat:vip:1')).messages.map((message) => message.data), [2, 3, 4])
  t.same((await manager.history('chat:2')).messages, [], 'a room of a prefix with no message yet')
  await t.rejects(manager.history('plain'), { code: 'FST_NEXUS_NO_HISTORY' })
  await t.rejects(manager.publish('plain', 'x'), { code: 'FST_NEXUS_NO_HISTORY' })
})

t.test('roomPolicies is checked at register', async (t) => {
  const bad: Array<[unknown, RegExp]> = [
    ['nope', /roomPolicies/],
    [{ '': { history: { size: 1, ttl: 1 } } }, /roomPolicies/],
    [{ '**': { history: { size: 1, ttl: 1 } } }, /roomPolicies/],
    [{ 'a*b': { history: { size: 1, ttl: 1 } } }, /roomPolicies/],
    [{ a: null }, /roomPolicies\["a"\]/],
    [{ a: { history: 'all' } }, /roomPolicies\["a"\]\.history/],
    [{ a: { history: { size: 1, ttl: 1 }, presence: 1 } }, /roomPolicies\["a"\]\.presence/],
    [{ a: { history: { size: 0, ttl: 1 } } }, /history\.size/],
    [{ a: { history: { size: 100_001, ttl: 1 } } }, /history\.size/],
    [{ a: { history: { size: 1, ttl: 0 } } }, /history\.ttl/],
    [{ a: { history: { size: 1, ttl: 1.5 } } }, /history\.ttl/]
  ]
  const { default: Fastify } = await import('fastify')
  const { default: nexusRealtime } = await import('../lib/index')
  for (const [roomPolicies, message] of bad) {
    await t.rejects(async () => {
      await Fastify().register(nexusRealtime, { roomPolicies } as NexusRealtimeOptions)
    }, { code: 'FST_NEXUS_INVALID_OPTION', message }, JSON.stringify(roomPolicies))
  }
  // No policy at all: nothing is kept.
  const app = await build(t, { roomPolicies: {} })
  await t.rejects(app.getWebSocket().publish('chat:1', 'x'), { code: 'FST_NEXUS_NO_HISTORY' })
  await t.rejects(app.getWebSocket().history('chat:1'), { code: 'FST_NEXUS_NO_HISTORY' })
  // '*' alone: every room.
  const every = await build(t, { roomPolicies: { '*': { history: { size: 1, ttl: 1000 } } } })
  t.same(await every.getWebSocket().publish('anything', 'x'), { offset: 1, epoch: (await every.getWebSocket().history('anything')).position.epoch })
})

t.test('a client dropped for a second while 1,000 messages/s flow into its room gets exactly what it missed, then live, with no gap and no duplicate', async (t) => {
  const { app, url } = await chatApp(t)
  const manager = app.getWebSocket()
  const first = closing(t, await connectProtocol(`${url}?rooms=flow:1`))
  let sent = 0
  const timer = setInterval(() => manager.broadcast('flow:1', { n: ++sent }), 1)
  t.teardown(() => clearInterval(timer))
  await first.next((frame) => frame.kind === 'm' && frame.header.o >= 100)
  await dropped(first)
  const atDrop = sent
  await until(() => sent >= atDrop + 500, 10_000, 'messages sent while away')
  const positions = positionsOf(first.frames)
  const second = closing(t, await connectResuming(`${url}?rooms=flow:1`, positions))
  const target = sent + 100
  await second.next((frame) => frame.kind === 'm' && frame.header.o >= target, 20_000)
  clearInterval(timer)
  const last = sent
  await second.next((frame) => frame.kind === 'm' && frame.header.o === last)

  const status = await second.next((frame) => frame.kind === 'j')
  t.equal(status.header.recovered, true)
  const firstOffsets = roomMessages(first, 'flow:1').map(([offset]) => offset as number)
  t.equal(status.header.missed, status.header.o - firstOffsets[firstOffsets.length - 1], 'missed: what came while it was away')
  const all = [...firstOffsets, ...roomMessages(second, 'flow:1').map(([offset]) => offset as number)]
  t.equal(all.length, last, 'every message once')
  t.ok(all.every((offset, index) => offset === index + 1), 'exactly 1..N in order')
  t.ok([...roomMessages(first, 'flow:1'), ...roomMessages(second, 'flow:1')].every(([offset, data]) => (data as { n: number }).n === offset), 'each with its own data')
  t.equal(manager.stats().resumeRecovered, 1)
})

t.test('a quiet room and a client that received nothing recover with missed: 0', async (t) => {
  const { app, url } = await chatApp(t)
  const first = closing(t, await connectProtocol(`${url}?rooms=chat:quiet`))
  const joined = await first.next((frame) => frame.kind === 'j')
  t.same(joined.header, { r: 'chat:quiet', o: 0, e: joined.header.e })
  await dropped(first)
  const second = closing(t, await connectResuming(`${url}?rooms=chat:quiet`, positionsOf(first.frames)))
  const status = await second.next((frame) => frame.kind === 'j')
  t.same(status.header, { r: 'chat:quiet', o: 0, e: joined.header.e, recovered: true, missed: 0 })
  app.getWebSocket().broadcast('chat:quiet', 'live')
  t.same(roomMessages(second, 'chat:quiet').length === 0 ? (await second.next((frame) => frame.kind === 'm')).header : null, { r: 'chat:quiet', o: 1, e: joined.header.e })

  // Something was sent while it was away and nothing before: it gets that.
  await dropped(second)
  app.getWebSocket().broadcast('chat:quiet', 'while away')
  const third = closing(t, await connectResuming(`${url}?rooms=chat:quiet`, positionsOf(second.frames)))
  await third.next((frame) => frame.kind === 'm')
  t.same(roomMessages(third, 'chat:quiet'), [[2, 'while away']])
})

t.test('rooms the client subscribed to resume through their subscribe, authorize runs again, and a refusal replays nothing', async (t) => {
  const { app, url } = await chatApp(t)
  const manager = app.getWebSocket()
  const first = closing(t, await connectProtocol(url))
  const subscribed = await first.subscribe('chat:sub')
  t.same(Object.keys(subscribed.header).sort(), ['e', 'i', 'o', 'r'], 'the answer carries the position')
  manager.broadcast('chat:sub', 1)
  await first.next((frame) => frame.kind === 'm')
  await dropped(first)
  manager.broadcast('chat:sub', 2)
  manager.broadcast('chat:sub', 3)

  const second = closing(t, await connectResuming(url, positionsOf(first.frames)))
  t.same(second.frames.filter((frame) => frame.kind === 'm'), [], 'nothing before it subscribes again')
  const again = await second.subscribe('chat:sub')
  t.same(again.header, { i: 1, r: 'chat:sub', o: 3, e: subscribed.header.e, recovered: true, missed: 2 })
  await second.next((frame) => frame.kind === 'm' && frame.header.o === 3)
  t.same(roomMessages(second, 'chat:sub'), [[2, 2], [3, 3]])
  t.ok(second.frames.indexOf(again) < second.frames.findIndex((frame) => frame.kind === 'm'), 'the status comes before the replay')

  // A room authorize refuses on the way back: no membership, no replay.
  const secretPosition = { 'secret:1': [0, subscribed.header.e] }
  const third = closing(t, await connectResuming(url, secretPosition))
  const refused = await third.subscribe('secret:1')
  t.equal(refused.kind, 'e')
  t.equal(refused.header.c, 'FORBIDDEN')
  t.equal(manager.roomSize('secret:1'), 0)
})

t.test('what cannot be given back exactly is not given at all: trimmed, expired, another epoch, an invalid position', async (t) => {
  const { app, url } = await chatApp(t)
  const manager = app.getWebSocket()
  const rooms = 'chat:vip:t,short:e,chat:x,chat:y,chat:z'
  const first = closing(t, await connectProtocol(`${url}?rooms=${rooms}`))
  await until(() => first.frames.filter((frame) => frame.kind === 'j').length === 5)
  manager.broadcast('chat:vip:t', 'seen')
  manager.broadcast('short:e', 'seen')
  await first.next((frame) => frame.header.r === 'short:e' && frame.kind === 'm')
  await dropped(first)
  for (let i = 0; i < 4; i++) manager.broadcast('chat:vip:t', `away ${i}`)
  // ttl 1 ms: by the time the client is back the message is older than that.
  manager.broadcast('short:e', 'away')
  const start = Date.now()
  await until(() => Date.now() - start > 5)

  const positions: Record<string, unknown> = positionsOf(first.frames)
  positions['chat:x'] = [0, 'another epoch']
  positions['chat:y'] = [5, positionsOf(first.frames)['chat:y'][1]]
  positions['chat:z'] = 'nonsense'
  const second = closing(t, await connectResuming(`${url}?rooms=${rooms}`, positions))
  await until(() => second.frames.filter((frame) => frame.kind === 'j').length === 5)
  const status = Object.fromEntries(second.frames.filter((frame) => frame.kind === 'j').map((frame) => [frame.header.r, frame.header]))
  t.match(status['chat:vip:t'], { recovered: false, reason: 'TRIMMED', o: 5 }, 'more missed than the room keeps')
  t.match(status['short:e'], { recovered: false, reason: 'EXPIRED', o: 2 })
  t.match(status['chat:x'], { recovered: false, reason: 'EPOCH_CHANGED', o: 0 })
  t.match(status['chat:y'], { recovered: false, reason: 'INVALID_POSITION' }, 'an offset the room never reached')
  t.match(status['chat:z'], { recovered: false, reason: 'INVALID_POSITION' }, 'a malformed position')
  t.same(second.messages(), [], 'nothing replayed')

  manager.broadcast('chat:vip:t', 'live')
  await second.next((frame) => frame.kind === 'm')
  t.same(roomMessages(second, 'chat:vip:t'), [[6, 'live']], 'live messages flow after')
  t.equal(manager.stats().resumeFailed, 5)
})

t.test('a restarted app is a new epoch: EPOCH_CHANGED, nothing replayed', async (t) => {
  const first = await chatApp(t)
  const client = closing(t, await connectProtocol(`${first.url}?rooms=chat:r`))
  first.app.getWebSocket().broadcast('chat:r', 'before')
  await client.next((frame) => frame.kind === 'm')
  await dropped(client)
  await first.app.close()

  const second = await chatApp(t)
  second.app.getWebSocket().broadcast('chat:r', 'after restart')
  const back = closing(t, await connectResuming(`${second.url}?rooms=chat:r`, positionsOf(client.frames)))
  const status = await back.next((frame) => frame.kind === 'j')
  t.match(status.header, { recovered: false, reason: 'EPOCH_CHANGED', o: 1 })
  t.not(status.header.e, positionsOf(client.frames)['chat:r'][1])
  t.same(back.messages(), [])
})

t.test('publish resolves with the position once stored; history pages through it; broadcast to several rooms numbers each history room', async (t) => {
  const { app, url } = await chatApp(t)
  const manager = app.getWebSocket()
  const client = closing(t, await connectProtocol(`${url}?rooms=feed,chat:m,plain`))
  await until(() => manager.roomSize('plain') === 1)
  const first = await manager.publish('feed', { n: 1 })
  t.same(first, { offset: 1, epoch: first.epoch })
  t.same(await manager.publish('feed', Buffer.from([0, 1, 2])), { offset: 2, epoch: first.epoch })
  t.same(await manager.publish('feed', 'text'), { offset: 3, epoch: first.epoch })
  const page = await manager.history('feed')
  t.same(page, { position: { offset: 3, epoch: first.epoch }, messages: [{ offset: 1, data: { n: 1 } }, { offset: 2, data: Buffer.from([0, 1, 2]) }, { offset: 3, data: 'text' }] })
  t.same((await manager.history('feed', { since: 1, limit: 1 })).messages.map((message) => message.offset), [2])
  t.same((await manager.history('feed', { limit: 2 })).messages.map((message) => message.offset), [2, 3], 'the newest, oldest first')
  await t.rejects(manager.history('feed', { since: -1 }), { code: 'FST_NEXUS_INVALID_OPTION' })
  await t.rejects(manager.history('feed', { limit: 0 }), { code: 'FST_NEXUS_INVALID_OPTION' })
  await t.rejects(manager.history('feed', null as never), { code: 'FST_NEXUS_INVALID_OPTION' })
  await t.rejects(manager.history(''), { code: 'FST_NEXUS_INVALID_ROOM' })
  await t.rejects(manager.publish('', 1), { code: 'FST_NEXUS_INVALID_ROOM' })

  t.equal(manager.broadcast(['feed', 'chat:m', 'plain'], 'multi'), 3, 'one socket in three rooms: once per history room, once for the rest')
  await until(() => client.messages().filter((message) => message.data === 'multi').length === 3)
  const multi = client.frames.filter((frame) => frame.kind === 'm' && frame.payload === 'multi').map((frame) => frame.header)
  t.same(multi, [{ r: 'feed', o: 4, e: first.epoch }, { r: 'chat:m', o: 1, e: multi[1].e }, { r: 'plain' }])
})

t.test('except skips a socket in a history room; raw clients in a history room get the raw bytes', async (t) => {
  const sockets: WebSocket[] = []
  const { app, url } = await chatApp(t, {}, (app) => {
    app.ws('/raw', { onConnect: (socket) => { sockets.push(socket); app.getWebSocket().joinRoom('chat:raw', socket) } })
  })
  const manager = app.getWebSocket()
  const raw = closing(t, await connect(url.replace('/ws', '/raw')))
  const protocol = closing(t, await connectProtocol(`${url}?rooms=chat:raw`))
  await until(() => manager.roomSize('chat:raw') === 2)
  t.equal(manager.broadcast('chat:raw', { to: 'protocol only' }, { except: sockets[0] }), 1)
  await manager.publish('chat:raw', { to: 'both' })
  await manager.publish('chat:raw', { to: 'raw only' }, { except: manager.socketsIn('chat:raw').filter((socket) => socket !== sockets[0]) })
  await raw.waitFor(2)
  t.same(raw.messages, [{ to: 'both' }, { to: 'raw only' }], 'raw frames, no header')
  await protocol.next((frame) => frame.header.o === 2)
  t.same(roomMessages(protocol, 'chat:raw'), [[1, { to: 'protocol only' }], [2, { to: 'both' }]])
})

t.test('a client that says it presents positions: the connect phase waits for them; another first frame, or a close, starts it anyway', async (t) => {
  let closed = 0
  const { app, url } = await chatApp(t, {}, (app) => {
    app.ws('/count', { onConnect: () => {}, onClose: () => { closed++ } })
  })
  const manager = app.getWebSocket()
  manager.broadcast('chat:w', 'one')

  // Its first frame is a subscribe, not positions: it starts without them and the subscribe is answered.
  const other = closing(t, new ProtocolClient(`${url}?rooms=chat:w`, ['nexus.v1', 'nexus.resume']))
  await other.opened()
  other.frame('s', { i: 100, r: 'chat:w2' })
  t.equal((await other.answerTo(100)).kind, 's')
  t.same((await other.next((frame) => frame.kind === 'j')).header.recovered, undefined, 'no position, no resume')

  // Positions presented later than first count for the rooms joined after.
  const epoch = (await manager.history('chat:w')).position.epoch
  other.frame('r', { p: { 'chat:w3': [0, epoch] } })
  const late = await other.subscribe('chat:w3')
  t.equal(late.header.reason, 'EPOCH_CHANGED', 'chat:w3 has its own epoch')

  // Closed before it presented anything: onConnect and onClose still run, as a pair.
  const gone = new ProtocolClient(url.replace('/ws', '/count'), ['nexus.v1', 'nexus.resume'])
  await gone.opened()
  gone.close()
  await until(() => closed === 1, 10_000, 'onClose')
  t.pass('paired')
})

t.test('memory history of idle rooms is bounded: beyond the bound the least recently active room starts a new epoch', async (t) => {
  const { MAX_IDLE_LOGS } = await import('../lib/history/index')
  const { app } = await chatApp(t)
  const manager = app.getWebSocket()
  const first = await manager.publish('chat:idle:0', 'first')
  const kept = await manager.publish('chat:idle:kept', 'kept')
  for (let i = 1; i <= MAX_IDLE_LOGS; i++) {
    manager.broadcast(`chat:idle:${i}`, i)
    // Written to while the others come: it stays among the most recently active.
    if (i % 1000 === 0) manager.broadcast('chat:idle:kept', i)
  }
  t.equal((await manager.history('chat:idle:kept')).position.epoch, kept.epoch, 'a room written to meanwhile keeps its history')
  const again = await manager.history('chat:idle:0')
  t.not(again.position.epoch, first.epoch, 'its history was dropped')
  t.same(again.messages, [])
  t.equal((await manager.history(`chat:idle:${MAX_IDLE_LOGS}`)).position.offset, 1, 'the newest are kept')
})

t.test('the positions frame: malformed parts are ignored or answered INVALID_POSITION; at most 1,024 positions count', async (t) => {
  const { MAX_PRESENTED } = await import('../lib/protocol')
  const { app, url } = await chatApp(t)
  const manager = app.getWebSocket()
  const epoch = (await manager.history('chat:p')).position.epoch

  // `p` that is not an object, then an empty one: nothing is presented.
  for (const p of ['nonsense', {}]) {
    const client = closing(t, await connectResuming(`${url}?rooms=chat:p`, p as Record<string, unknown>))
    t.same((await client.next((frame) => frame.kind === 'j')).header, { r: 'chat:p', o: 0, e: epoch }, `${JSON.stringify(p)}: joined without a resume`)
  }

  // More than the bound: the first ones count. A key that is no room name is skipped.
  const many: Record<string, unknown> = { '': [0, epoch] }
  for (let i = 0; i < MAX_PRESENTED; i++) many[`chat:many:${i}`] = [0, 'x']
  many['chat:p'] = [0, epoch]
  const client = closing(t, await connectResuming(`${url}?rooms=chat:many:0,chat:p`, many))
  await until(() => client.frames.filter((frame) => frame.kind === 'j').length === 2)
  const status = Object.fromEntries(client.frames.filter((frame) => frame.kind === 'j').map((frame) => [frame.header.r, frame.header]))
  t.equal(status['chat:many:0'].reason, 'EPOCH_CHANGED', 'a presented position')
  t.equal(status['chat:p'].recovered, undefined, 'beyond the bound: not presented')
})

t.test('a client that says it presents positions and never does: onConnect runs after the wait, without them', async (t) => {
  const { POSITIONS_WAIT_MS } = await import('../lib/constants')
  const { app, url } = await chatApp(t)
  app.getWebSocket().broadcast('chat:silent', 'before')
  const start = Date.now()
  const client = closing(t, new ProtocolClient(`${url}?rooms=chat:silent`, ['nexus.v1', 'nexus.resume']))
  await client.opened()
  const joined = await client.next((frame) => frame.kind === 'j', POSITIONS_WAIT_MS + 10_000)
  t.ok(Date.now() - start >= POSITIONS_WAIT_MS - 100, 'after the wait')
  t.same(joined.header, { r: 'chat:silent', o: 1, e: joined.header.e }, 'joined, no resume')
})
