import t from 'tap'
import diagnosticsChannel from 'node:diagnostics_channel'
import { EventEmitter } from 'node:events'
import type { FastifyRequest } from 'fastify'
import type { WebSocket } from 'ws'
import { EmitterAdapter } from '../examples/custom-adapter/emitter-adapter'
import { redisAdapter } from '../lib/index'
import type { PublishTarget } from '../types/index'
import { ProtocolClient } from './helpers/protocol'
import { REDIS_URL, node, redisClient, uniquePrefix, withRedis } from './helpers/redis'
import { build, connect, freePort, listen, rawHandshake, rejected, type TestContext } from './helpers/server'
import { until } from './helpers/wait'

// The diagnostics channels (README, "Traces"), seen by a subscriber of
// node:diagnostics_channel, as an APM or the OpenTelemetry bridge subscribes.

t.setTimeout(180_000)

const TRACING = ['nexus.auth', 'nexus.connect', 'nexus.message', 'nexus.subscribe', 'nexus.publish']
const EVENTS = ['start', 'end', 'asyncStart', 'asyncEnd', 'error'] as const

interface Seen {
  /** `nexus.message:start`, `nexus.connection.open`, … */
  name: string
  /** a shallow copy of the context as it was when published (contexts change as a trace goes) */
  context: Record<string, any>
}

/** Records what the named channels publish until the test ends; tracing channels by event. */
function record (t: TestContext, ...names: string[]): Seen[] {
  const seen: Seen[] = []
  for (const name of names) {
    if (TRACING.includes(name)) {
      const handlers = Object.fromEntries(EVENTS.map((event) => [event, (context: object) => { seen.push({ name: `${name}:${event}`, context: { ...context } }) }]))
      const channel = diagnosticsChannel.tracingChannel(name)
      channel.subscribe(handlers as any)
      t.teardown(() => { channel.unsubscribe(handlers as any) })
    } else {
      const handler = (message: unknown): void => { seen.push({ name, context: { ...(message as object) } }) }
      diagnosticsChannel.subscribe(name, handler)
      t.teardown(() => { diagnosticsChannel.unsubscribe(name, handler) })
    }
  }
  return seen
}

/** The names of what was seen, or of one tracing channel's events only. */
const names = (seen: Seen[], channel = ''): string[] => seen.filter((s) => channel === '' || s.name.startsWith(`${channel}:`)).map((s) => s.name)
const of = (seen: Seen[], name: string): Array<Record<string, any>> => seen.filter((s) => s.name === name).map((s) => s.context)

t.test('a connection and its messages: connect and message with the route pattern and the connection id', async (t) => {
  const app = await build(t)
  const sockets = new Map<string, WebSocket>()
  const errors: string[] = []
  app.ws<{ message: { kind: string } }>('/ws/chat/:room', {
    onConnect: (socket, ctx) => { sockets.set(ctx.id, socket) },
    onMessage: (_socket, message) => {
      switch (message.kind) {
        case 'async': return Promise.resolve('done') as any
        case 'throw': throw new Error('sync failure')
        case 'reject': return Promise.reject(new Error('async failure'))
        default: return 'ok' as any
      }
    },
    onError: (_socket, error) => { errors.push(error.message) }
  })
  const base = await listen(app)
  const seen = record(t, 'nexus.connect', 'nexus.message', 'nexus.connection.open', 'nexus.connection.close')

  const client = await connect(`${base}/ws/chat/lobby?token=secret`)
  await until(() => sockets.size === 1)
  const [[id, socket]] = [...sockets]
  for (const kind of ['sync', 'async', 'throw', 'reject']) client.send({ kind })
  await until(() => errors.length === 2)

  const [open] = of(seen, 'nexus.connection.open')
  t.match(open, { route: '/ws/chat/:room', id, protocol: 'raw' }, 'open: the route pattern (never the URL, whose query may hold a token) and the id')
  t.equal((open.request as FastifyRequest<{ Params: { room: string } }>).params.room, 'lobby', 'open: the upgrade request')

  t.same(names(seen, 'nexus.connect'), ['nexus.connect:start', 'nexus.connect:end'], 'a synchronous connect phase: start, end')
  const [connectStart] = of(seen, 'nexus.connect:start')
  t.match(connectStart, { route: '/ws/chat/:room', id })
  t.equal(connectStart.socket, socket, 'connect: the socket')
  t.equal(connectStart.ctx.id, id, 'connect: the context')
  t.equal(connectStart.request, open.request, 'connect: the request')
  t.equal(of(seen, 'nexus.connect:end')[0].async, undefined)

  t.same(names(seen, 'nexus.message'), [
    'nexus.message:start', 'nexus.message:end',
    'nexus.message:start', 'nexus.message:end', 'nexus.message:asyncStart', 'nexus.message:asyncEnd',
    'nexus.message:start', 'nexus.message:error', 'nexus.message:end',
    'nexus.message:start', 'nexus.message:end', 'nexus.message:error', 'nexus.message:asyncStart', 'nexus.message:asyncEnd'
  ], 'sync, async, throwing and rejecting handlers, in Node\'s tracing order')
  const messages = seen.filter((s) => s.name.startsWith('nexus.message:')).map((s) => s.context)
  for (const context of messages) {
    t.match(context, { route: '/ws/chat/:room', id, request: false })
    t.equal(context.ctx.id, id)
  }
  t.same(messages.map((context) => context.message.kind), ['sync', 'sync', 'async', 'async', 'async', 'async', 'throw', 'throw', 'throw', 'reject', 'reject', 'reject', 'reject', 'reject'])
  t.match(messages[1], { result: 'ok' }, 'a synchronous result by end')
  t.match(messages[3], { async: true }, 'async is set by end when the handler returned a promise')
  t.match(messages[5], { async: true, result: 'done' }, 'the settled value by asyncEnd')
  t.match(messages[7].error, { message: 'sync failure' })
  t.match(messages[11].error, { message: 'async failure' })

  client.close(1000)
  await until(() => of(seen, 'nexus.connection.close').length === 1)
  const [close] = of(seen, 'nexus.connection.close')
  t.match(close, { route: '/ws/chat/:room', id, code: 1000, messagesIn: 4, messagesOut: 0 })
  t.ok(close.duration >= 0 && close.duration < 60_000, `duration in ms (${close.duration})`)
})

t.test('an asynchronous connect phase, and failing ones', async (t) => {
  const app = await build(t)
  app.ws('/ws/:mode', {
    beforeConnect: (_socket, ctx) => {
      if (ctx.params.mode === 'sync-throw') throw new Error('before failed')
      return ctx.params.mode === 'async' || ctx.params.mode === 'async-throw' ? Promise.resolve() : undefined
    },
    onConnect: async (_socket, ctx) => {
      if (ctx.params.mode === 'async-throw') throw new Error('connect failed')
    },
    onError: () => {}
  })
  const base = await listen(app)
  const seen = record(t, 'nexus.connect', 'nexus.connection.close')

  for (const mode of ['async', 'sync-throw', 'async-throw']) {
    const client = await connect(`${base}/ws/${mode}`)
    const closing = mode === 'async' ? null : client.closed()
    await until(() => of(seen, 'nexus.connect:end').length > 0 && (of(seen, 'nexus.connect:asyncEnd').length > 0 || of(seen, 'nexus.connect:error').length > 0))
    const trace = [...seen]
    seen.length = 0
    if (mode === 'async') {
      t.same(names(trace), ['nexus.connect:start', 'nexus.connect:end', 'nexus.connect:asyncStart', 'nexus.connect:asyncEnd'], 'async: asyncStart and asyncEnd when onConnect settled')
      t.equal(trace[1].context.async, true)
      client.close()
      await until(() => of(seen, 'nexus.connection.close').length === 1)
      seen.length = 0
      continue
    }
    t.equal((await closing)?.code, 1011, `${mode}: closed with 1011`)
    await until(() => of(seen, 'nexus.connection.close').length === 1)
    if (mode === 'sync-throw') {
      t.same(names(trace), ['nexus.connect:start', 'nexus.connect:error', 'nexus.connect:end'], 'a synchronous throw: error, then end')
      t.match(trace[1].context.error, { message: 'before failed' })
    } else {
      t.same(names(trace), ['nexus.connect:start', 'nexus.connect:end', 'nexus.connect:error', 'nexus.connect:asyncStart', 'nexus.connect:asyncEnd'], 'a rejection: error, asyncStart, asyncEnd')
      t.match(trace[2].context.error, { message: 'connect failed' })
    }
    t.match(of(seen, 'nexus.connection.close')[0], { code: 1011, route: '/ws/:mode' })
    seen.length = 0
  }
})

t.test('nexus.v1: a request is a message with request: true; a subscribe says whether it was allowed', async (t) => {
  const app = await build(t)
  let release: () => void = () => {}
  const held = new Promise<boolean>((resolve) => { release = () => { resolve(true) } })
  let waiting = false
  app.ws('/ws', {
    rooms: {
      authorize: (room) => {
        if (room === 'slow') {
          waiting = true
          return held
        }
        return room.startsWith('open:')
      }
    },
    onMessage: (_socket, message) => ({ echo: message })
  })
  const base = await listen(app)
  const seen = record(t, 'nexus.message', 'nexus.subscribe', 'nexus.connection.open')

  const client = new ProtocolClient(`${base}/ws`)
  t.teardown(() => client.ws.close())
  await client.opened()
  await until(() => of(seen, 'nexus.connection.open').length === 1)
  const [{ id }] = of(seen, 'nexus.connection.open')
  t.equal(of(seen, 'nexus.connection.open')[0].protocol, 'nexus.v1')

  t.equal((await client.request({ hi: 1 })).kind, 'a')
  t.same(names(seen, 'nexus.message'), ['nexus.message:start', 'nexus.message:end'], 'a synchronous handler answers a request')
  t.match(of(seen, 'nexus.message:end')[0], { route: '/ws', id, request: true, message: { hi: 1 }, result: { echo: { hi: 1 } } })

  t.equal((await client.subscribe('open:1')).kind, 's')
  t.equal((await client.subscribe('closed:1')).kind, 'e')
  const subscribes = seen.filter((s) => s.name.startsWith('nexus.subscribe:'))
  t.same(subscribes.map((s) => s.name), [
    'nexus.subscribe:start', 'nexus.subscribe:end', 'nexus.subscribe:asyncStart', 'nexus.subscribe:asyncEnd',
    'nexus.subscribe:start', 'nexus.subscribe:end', 'nexus.subscribe:asyncStart', 'nexus.subscribe:asyncEnd'
  ], 'always asynchronous: authorize is awaited')
  t.match(subscribes[0].context, { route: '/ws', id, room: 'open:1' })
  t.equal(subscribes[1].context.async, true)
  t.equal(subscribes[1].context.allowed, undefined, 'not known by end')
  t.equal(subscribes[3].context.allowed, true, 'allowed by asyncEnd')
  t.match(subscribes[7].context, { room: 'closed:1', allowed: false })

  // A client that leaves while authorize runs subscribes to nothing.
  seen.length = 0
  client.frame('s', { i: 99, r: 'slow' })
  await until(() => waiting)
  client.ws.close()
  await until(() => app.getWebSocket().connections === 0)
  release()
  await until(() => of(seen, 'nexus.subscribe:asyncEnd').length === 1)
  t.match(of(seen, 'nexus.subscribe:asyncEnd')[0], { room: 'slow', allowed: false })
})

t.test('auth on nexus.auth; refused handshakes on nexus.connection.refused with their reason and status', async (t) => {
  const app = await build(t, { allowedOrigins: ['https://good.example'], authTimeout: 100 })
  app.ws('/ws/:mode', {
    schema: { querystring: { type: 'object', properties: { n: { type: 'integer' } } } },
    auth: (ctx) => {
      switch (ctx.params.mode) {
        case 'sync': return 'ann'
        case 'async': return Promise.resolve('bob')
        case 'throw': throw Object.assign(new Error('go away'), { statusCode: 403 })
        case 'reject': return Promise.reject(new Error('no token'))
        default: return new Promise(() => {})
      }
    }
  })
  const base = await listen(app)
  const seen = record(t, 'nexus.auth', 'nexus.connection.refused')

  for (const mode of ['sync', 'async']) {
    const client = await connect(`${base}/ws/${mode}`)
    client.close()
  }
  t.same(names(seen), [
    'nexus.auth:start', 'nexus.auth:end',
    'nexus.auth:start', 'nexus.auth:end', 'nexus.auth:asyncStart', 'nexus.auth:asyncEnd'
  ])
  t.match(of(seen, 'nexus.auth:start')[0], { route: '/ws/:mode' })
  t.equal((of(seen, 'nexus.auth:start')[0].request as FastifyRequest<{ Params: { mode: string } }>).params.mode, 'sync', 'auth: the request')
  t.match(of(seen, 'nexus.auth:end')[0], { result: 'ann' })
  t.match(of(seen, 'nexus.auth:asyncEnd')[0], { async: true, result: 'bob' })
  seen.length = 0

  t.equal((await rejected(`${base}/ws/throw`)).message, 'Unexpected server response: 403')
  t.equal((await rejected(`${base}/ws/reject`)).message, 'Unexpected server response: 401')
  t.equal((await rejected(`${base}/ws/never`)).message, 'Unexpected server response: 503')
  t.same(names(seen), [
    'nexus.auth:start', 'nexus.auth:error', 'nexus.auth:end', 'nexus.connection.refused',
    'nexus.auth:start', 'nexus.auth:end', 'nexus.auth:error', 'nexus.auth:asyncStart', 'nexus.auth:asyncEnd', 'nexus.connection.refused',
    'nexus.auth:start', 'nexus.auth:end', 'nexus.connection.refused'
  ], 'an auth that never settles is refused by the timeout while its trace stays open')
  t.same(of(seen, 'nexus.connection.refused'), [
    { route: '/ws/:mode', reason: 'auth', statusCode: 403 },
    { route: '/ws/:mode', reason: 'auth', statusCode: 401 },
    { route: '/ws/:mode', reason: 'timeout', statusCode: 503 }
  ])
  seen.length = 0

  // A nexus.v1 client is accepted, then closed with 4000 + the status.
  const refusedClient = new ProtocolClient(`${base}/ws/reject`)
  const [code] = await new Promise<[number]>((resolve) => refusedClient.ws.once('close', (code) => resolve([code])))
  t.equal(code, 4401)
  t.same(of(seen, 'nexus.connection.refused'), [{ route: '/ws/:mode', reason: 'auth', statusCode: 401 }])
  seen.length = 0

  t.equal((await rejected(`${base}/ws/sync?n=x`)).message, 'Unexpected server response: 400')
  const evil = await rawHandshake(base, '/ws/sync', { origin: 'https://evil.example' })
  t.equal(evil.status, 403)
  t.same(of(seen, 'nexus.connection.refused'), [
    { route: '/ws/:mode', reason: 'schema', statusCode: 400 },
    { route: '/ws/:mode', reason: 'origin', statusCode: 403 }
  ])
  seen.length = 0

  // A plain HTTP GET on the route is not a refused handshake.
  const plain = await app.inject({ method: 'GET', url: '/ws/sync?n=x' })
  t.equal(plain.statusCode, 400)
  t.same(seen, [], 'nothing for a request that is not a handshake')
})

t.test('an upgrade during app.close() is refused for shutdown, before routing', async (t) => {
  const app = await build(t)
  let release: () => void = () => {}
  const slowClose = new Promise<void>((resolve) => { release = resolve })
  app.ws('/ws', { onClose: () => slowClose })
  const base = await listen(app)
  const client = await connect(`${base}/ws`)
  const seen = record(t, 'nexus.connection.refused')
  const goingAway = client.closed()
  const closing = app.close()
  t.equal((await goingAway).code, 1001)
  t.equal((await rawHandshake(base, '/ws?token=x')).status, 503)
  t.same(of(seen, 'nexus.connection.refused'), [{ route: null, reason: 'shutdown', statusCode: 503 }])
  release()
  await closing
})

t.test('publish: broadcasts, broadcastAll and publish, with recipients; the carrier goes to the adapter and comes back in deliver', async (t) => {
  const bus = new EventEmitter()
  const targets: PublishTarget[] = []
  bus.on('broadcast', (_from: unknown, _message: unknown, target: PublishTarget) => { targets.push(target) })
  const apps = await Promise.all([0, 1].map(async () => {
    const app = await build(t, { adapter: new EmitterAdapter(bus), roomPolicies: { 'h:*': { history: { size: 10, ttl: 60_000 } } } })
    app.ws('/ws', {
      onConnect: (socket, ctx) => {
        for (const room of String(ctx.query.rooms).split(',')) app.getWebSocket().joinRoom(room, socket)
      }
    })
    return app
  }))
  const [a, b] = apps
  const bases = await Promise.all(apps.map(listen))
  const local = await connect(`${bases[0]}/ws?rooms=r1,r2,h:1`)
  const remote = await connect(`${bases[1]}/ws?rooms=r1,h:1`)
  await until(() => a.getWebSocket().connections === 1 && b.getWebSocket().roomSize('h:1') === 1)
  const seen = record(t, 'nexus.publish', 'nexus.deliver')

  // A subscriber puts its trace context in the carrier at start.
  const fill = (context: any): void => { context.carrier.traceparent = `tp-${String(context.rooms)}` }
  diagnosticsChannel.subscribe('tracing:nexus.publish:start', fill)
  t.teardown(() => { diagnosticsChannel.unsubscribe('tracing:nexus.publish:start', fill) })

  const manager = a.getWebSocket()
  t.equal(manager.broadcast('r1', 'one'), 1)
  t.equal(manager.broadcast(['r1', 'r2'], 'two'), 1)
  t.equal(manager.broadcastAll('all'), 1)
  t.equal(manager.broadcast(['h:1', 'r2'], 'mixed'), 2, 'a history room and a plain one: one copy each')
  const position = await manager.publish('h:1', 'stored')
  t.equal(position.offset, 2)
  await Promise.all([local.waitFor(6), remote.waitFor(5)])

  t.same(names(seen, 'nexus.publish'), [
    ...Array<string[]>(4).fill(['nexus.publish:start', 'nexus.publish:end']).flat(),
    'nexus.publish:start', 'nexus.publish:end', 'nexus.publish:asyncStart', 'nexus.publish:asyncEnd'
  ], 'broadcasts are synchronous, publish is not')
  const ends = of(seen, 'nexus.publish:end')
  t.same(ends.map((end) => [end.rooms, end.recipients]), [[['r1'], 1], [['r1', 'r2'], 1], [null, 1], [['h:1', 'r2'], 2], [['h:1'], undefined]])
  t.equal(ends[4].async, true)
  t.same(targets.map((target) => [target.rooms, target.carrier]), [
    [['r1'], { traceparent: 'tp-r1' }],
    [['r1', 'r2'], { traceparent: 'tp-r1,r2' }],
    [null, { traceparent: 'tp-null' }],
    [['h:1'], { traceparent: 'tp-h:1,r2' }],
    [['r2'], { traceparent: 'tp-h:1,r2' }],
    [['h:1'], { traceparent: 'tp-h:1' }]
  ], 'the adapter gets the carrier with every part of each broadcast')
  t.same(of(seen, 'nexus.deliver').map((deliver) => [deliver.rooms, deliver.recipients, deliver.carrier]), [
    [['r1'], 1, { traceparent: 'tp-r1' }],
    [['r1', 'r2'], 1, { traceparent: 'tp-r1,r2' }],
    [null, 1, { traceparent: 'tp-null' }],
    [['h:1'], 1, { traceparent: 'tp-h:1,r2' }],
    [['h:1'], 1, { traceparent: 'tp-h:1' }]
  ], 'the other app delivers each with the carrier it was sent (r2 has no member there)')

  // Without a subscriber that fills it, no carrier is sent, and deliver says {}.
  diagnosticsChannel.unsubscribe('tracing:nexus.publish:start', fill)
  seen.length = 0
  targets.length = 0
  t.equal(manager.broadcast('r1', 'bare'), 1)
  await manager.publish('h:1', 'bare')
  t.same(targets.map((target) => 'carrier' in target), [false, false], 'an empty carrier is left out')
  t.same(of(seen, 'nexus.deliver').map((deliver) => deliver.carrier), [{}, {}])
})

withRedis(t, 'over Redis: the carrier and the publish time travel in the frame; deliver, redis.publish and redis.lag', async (t) => {
  const prefix = uniquePrefix('diagnostics')
  const [a, b] = await Promise.all([node(t, redisAdapter({ url: REDIS_URL, prefix })), node(t, redisAdapter({ url: REDIS_URL, prefix }))])
  const receiver = await b.join(['room'])
  await until(async () => (await a.app.getWebSocket().fetchRoomSize('room', { timeout: 1000 })) === 1)

  // What goes over the wire, read by a subscriber of our own.
  const frames: Buffer[] = []
  const spy = redisClient(t)
  await spy.subscribe(`${prefix}:room:room`)
  spy.on('messageBuffer', (_channel: Buffer, payload: Buffer) => { frames.push(payload) })
  const header = (frame: Buffer): Record<string, unknown> => JSON.parse(frame.toString('utf8', 22, 22 + frame.readUInt32BE(18)))

  const seen = record(t, 'nexus.deliver', 'nexus.redis.publish', 'nexus.redis.lag')
  const fill = (context: any): void => { context.carrier.traceparent = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' }
  diagnosticsChannel.subscribe('tracing:nexus.publish:start', fill)
  const before = Date.now()
  a.app.getWebSocket().broadcast('room', { n: 1 })
  await receiver.waitFor(2)
  await until(() => frames.length === 1 && of(seen, 'nexus.deliver').length === 1 && of(seen, 'nexus.redis.publish').length === 1)
  const sent = header(frames[0])
  t.ok(typeof sent.s === 'number' && sent.s >= before && sent.s <= Date.now(), 's: when it was published')
  t.same(sent.t, { traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' }, 't: the carrier')
  t.same(of(seen, 'nexus.deliver'), [{ rooms: ['room'], recipients: 1, carrier: { traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' } }])
  const [published] = of(seen, 'nexus.redis.publish')
  t.ok(published.duration >= 0 && published.duration < 60_000, `redis.publish: PUBLISH answered in ${published.duration} ms`)
  const [lag] = of(seen, 'nexus.redis.lag')
  t.ok(lag.lag >= 0 && lag.lag < 60_000, `redis.lag: ${lag.lag} ms`)

  // Nobody fills the carrier any more: no t in the frame.
  diagnosticsChannel.unsubscribe('tracing:nexus.publish:start', fill)
  a.app.getWebSocket().broadcast('room', { n: 2 })
  await receiver.waitFor(3)
  await until(() => frames.length === 2)
  t.equal(header(frames[1]).t, undefined, 'no carrier, no t')
  t.equal(typeof header(frames[1]).s, 'number', 'the publish time always goes')
})

t.test('redis.publish reports a broadcast that could not be published', async (t) => {
  // Nothing listens there: the adapter starts anyway, and a broadcast fails at once.
  const app = await build(t, { adapter: redisAdapter({ url: `redis://127.0.0.1:${await freePort()}`, prefix: uniquePrefix('down') }) }, { logger: { level: 'silent' } })
  await app.ready()
  const seen = record(t, 'nexus.redis.publish')
  app.getWebSocket().broadcastAll('lost')
  t.equal(seen.length, 1)
  t.match(seen[0].context.error, { message: /Redis connection is/ })
})

t.test('nobody listening: nothing is built, and the handlers are called straight', async (t) => {
  // A handler's own stack shows whether it was called through the traced path.
  const stacks: Record<string, string> = {}
  const stack = (): string => new Error('where').stack as string
  const app = await build(t)
  app.ws('/ws', {
    auth: () => { stacks.auth = stack() },
    onConnect: () => { stacks.connect = stack() },
    rooms: { authorize: () => { stacks.authorize = stack(); return true } },
    onMessage: () => { stacks.message = stack() }
  })
  const base = await listen(app)
  const run = async (): Promise<void> => {
    for (const key of Object.keys(stacks)) delete stacks[key]
    const client = new ProtocolClient(`${base}/ws`)
    await client.opened()
    client.message({ hi: 1 })
    await client.subscribe('room')
    await until(() => stacks.message !== undefined)
    client.ws.close()
    await until(() => app.getWebSocket().connections === 0)
  }

  const seen: unknown[] = []
  const listener = (message: unknown): void => { seen.push(message) }
  const handlers = { start: listener, end: listener, asyncStart: listener, asyncEnd: listener, error: listener }
  const tracing = TRACING.map((name) => diagnosticsChannel.tracingChannel(name))
  const plain = ['nexus.connection.open', 'nexus.connection.close', 'nexus.connection.refused', 'nexus.deliver']
  for (const channel of tracing) channel.subscribe(handlers)
  for (const name of plain) diagnosticsChannel.subscribe(name, listener)
  await run()
  t.ok(seen.length > 0, 'subscribed: events')
  for (const key of ['auth', 'connect', 'authorize', 'message']) t.match(stacks[key], /traceCall|runStores/, `subscribed: ${key} is called through the traced path`)

  // Every subscriber removed: the channels are inactive again.
  for (const channel of tracing) channel.unsubscribe(handlers)
  for (const name of plain) diagnosticsChannel.unsubscribe(name, listener)
  seen.length = 0
  await run()
  t.same(seen, [], 'no event')
  for (const key of ['auth', 'connect', 'authorize', 'message']) t.notMatch(stacks[key], /traceCall|runStores/, `unsubscribed: ${key} is called straight`)
})
