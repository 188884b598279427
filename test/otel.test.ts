import t from 'tap'
import { execFile } from 'node:child_process'
import diagnosticsChannel from 'node:diagnostics_channel'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { context, propagation, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api'
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks'
import { W3CTraceContextPropagator } from '@opentelemetry/core'
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base'
import Fastify, { type FastifyInstance, type FastifyPluginCallback } from 'fastify'
import nexusRealtime, { redisAdapter } from '../lib/index'
import { nexusOpenTelemetry } from '../lib/otel'
import type { Adapter } from '../types/index'
import { ProtocolClient } from './helpers/protocol'
import { REDIS_URL, uniquePrefix, withRedis } from './helpers/redis'
import { build, connect, listen, rejected, type TestContext } from './helpers/server'
import { until } from './helpers/wait'

// The OpenTelemetry bridge with a real SDK: @fastify/otel makes the upgrade
// request's span, the bridge the spans of the connection, its messages, a
// broadcast and its delivery by another instance over Redis.

t.setTimeout(180_000)

interface FastifyOtel {
  setTracerProvider (provider: unknown): void
  plugin (): FastifyPluginCallback
}
// Loaded without its types: they add an `otel` field to Fastify's route
// config for every file of the program, which then no longer takes the
// other tests' own config fields.
const fastifyOtel = '@fastify/otel'
const { FastifyOtelInstrumentation } = require(fastifyOtel) as { FastifyOtelInstrumentation: new () => FastifyOtel }

const exporter = new InMemorySpanExporter()
const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] })
const contextManager = new AsyncLocalStorageContextManager().enable()
context.setGlobalContextManager(contextManager)
propagation.setGlobalPropagator(new W3CTraceContextPropagator())
trace.setGlobalTracerProvider(provider)
t.teardown(async () => {
  await provider.shutdown()
  trace.disable()
  propagation.disable()
  context.disable()
})

const spans = (name: string): ReadableSpan[] => exporter.getFinishedSpans().filter((span) => span.name === name)
const idOf = (span: ReadableSpan): string => span.spanContext().spanId
const traceOf = (span: ReadableSpan): string => span.spanContext().traceId
const parentOf = (span: ReadableSpan): string | undefined => span.parentSpanContext?.spanId
/** The ids of a span's ancestors, as far as finished spans (and the last parent id) tell. */
function ancestorsOf (span: ReadableSpan): string[] {
  const ids: string[] = []
  for (let parent = parentOf(span); parent !== undefined;) {
    ids.push(parent)
    const next = exporter.getFinishedSpans().find((candidate) => idOf(candidate) === parent)
    parent = next === undefined ? undefined : parentOf(next)
  }
  return ids
}

/** An app traced by @fastify/otel, on `adapter`, whose /ws route broadcasts what it gets to its room. */
async function tracedApp (t: TestContext, adapter?: Adapter): Promise<FastifyInstance & { requestSpans: Map<string, { request: string, active: string }> }> {
  const app = Fastify()
  const instrumentation = new FastifyOtelInstrumentation()
  instrumentation.setTracerProvider(provider)
  await app.register(instrumentation.plugin())
  await app.register(nexusRealtime, adapter === undefined ? {} : { adapter })
  t.teardown(() => app.close())
  /** the upgrade request's span id and the one active during auth, by what the client asked to be called */
  const requestSpans = new Map<string, { request: string, active: string }>()
  app.ws('/ws/:name', {
    auth: (ctx) => {
      const name = (ctx.params as { name: string }).name
      const request = (ctx.request as unknown as { opentelemetry (): { span: { spanContext (): { spanId: string } } } }).opentelemetry().span
      requestSpans.set(name, { request: request.spanContext().spanId, active: trace.getSpan(context.active())?.spanContext().spanId ?? 'none' })
      return name
    },
    onConnect: (socket, ctx) => {
      if (ctx.query.room !== undefined) app.getWebSocket().joinRoom(String(ctx.query.room), socket)
    },
    rooms: { authorize: (room) => room !== 'secret' },
    onMessage: (_socket, message: any) => {
      if (message?.fail === true) throw new Error('handler failed')
      return app.getWebSocket().broadcast('room', { from: 'a', message })
    },
    onError: () => {}
  })
  return Object.assign(app as FastifyInstance, { requestSpans })
}

t.test('without @fastify/otel or a propagator: spans still nest under their connection', async (t) => {
  exporter.reset()
  const stop = nexusOpenTelemetry()
  t.teardown(stop)
  const app = await build(t)
  app.ws('/ws', { onMessage: (socket) => { socket.send('ok') } })
  const client = await connect(`${await listen(app)}/ws`)
  client.send({ hi: 1 })
  await client.waitFor(1)
  client.close()
  await until(() => spans('nexus connection').length === 1)
  const [connection] = spans('nexus connection')
  const [message] = spans('nexus message')
  t.equal(parentOf(message), idOf(connection))
  t.match(connection.attributes, { 'nexus.route': '/ws', 'nexus.protocol': 'raw', 'nexus.close.code': 1005, 'nexus.messages.in': 1 })
})

withRedis(t, 'one trace across two instances: request → connection → message → publish, then deliver on the other', async (t) => {
  exporter.reset()
  const stop = nexusOpenTelemetry({ tracerProvider: provider })
  t.teardown(stop)
  const prefix = uniquePrefix('otel')
  const a = await tracedApp(t, redisAdapter({ url: REDIS_URL, prefix }))
  const b = await tracedApp(t, redisAdapter({ url: REDIS_URL, prefix }))
  const [baseA, baseB] = [await listen(a), await listen(b)]

  const receiver = await connect(`${baseB}/ws/bob?room=room`)
  await until(async () => (await a.getWebSocket().fetchRoomSize('room', { timeout: 1000 })) === 1)
  const sender = new ProtocolClient(`${baseA}/ws/ann`)
  await sender.opened()
  t.equal((await sender.subscribe('open')).kind, 's')
  t.equal((await sender.subscribe('secret')).kind, 'e')
  sender.message({ text: 'hello' })
  await receiver.waitFor(1)
  t.same(receiver.messages, [{ from: 'a', message: { text: 'hello' } }])
  sender.message({ fail: true })
  await until(() => spans('nexus message').length === 2)
  sender.ws.close()
  await until(() => spans('nexus connection').length === 1 && spans('nexus deliver').length === 1)

  const [connection] = spans('nexus connection')
  const { request: requestSpan, active: activeDuringAuth } = a.requestSpans.get('ann') as { request: string, active: string }
  t.not(activeDuringAuth, 'none', '@fastify/otel made a span of the request active during auth')
  const [auth] = spans('nexus auth').filter((span) => traceOf(span) === traceOf(connection))
  t.ok(auth, 'an auth span in the connection\'s trace')
  t.equal(parentOf(auth), activeDuringAuth, 'auth: a child of the span active in the request')
  t.ok(ancestorsOf(auth).includes(requestSpan), 'under the request\'s span')

  // The connection span: a child of what was active during the upgrade, under the request's span.
  const upgradeHandler = exporter.getFinishedSpans().find((span) => idOf(span) === parentOf(connection))
  t.equal(upgradeHandler?.name, 'handler - onUpgrade', 'the connection\'s parent: @fastify/otel\'s span of the upgrade handler')
  t.ok(ancestorsOf(connection).includes(requestSpan), 'under the request\'s span')
  t.match(connection.attributes, { 'nexus.route': '/ws/:name', 'nexus.protocol': 'nexus.v1', 'nexus.messages.in': 4 })
  t.equal(connection.kind, SpanKind.INTERNAL)

  const subscribes = spans('nexus subscribe')
  t.same(subscribes.map((span) => [span.attributes['nexus.room'], span.attributes['nexus.allowed'], parentOf(span)]), [
    ['open', true, idOf(connection)],
    ['secret', false, idOf(connection)]
  ], 'subscribes: children of the connection, allowed or not')

  const [message, failed] = spans('nexus message')
  t.equal(parentOf(message), idOf(connection), 'the message: a child of the connection')
  t.equal(parentOf(failed), idOf(connection))
  t.equal(failed.status.code, SpanStatusCode.ERROR, 'a handler that threw: an error status')
  t.match(failed.events, [{ name: 'exception' }])

  const [publish] = spans('nexus publish')
  t.equal(parentOf(publish), idOf(message), 'the broadcast from the handler: a child of the message')
  t.equal(publish.kind, SpanKind.PRODUCER)
  t.same(publish.attributes, { 'nexus.rooms': ['room'], 'nexus.recipients': 0 })

  const [deliver] = spans('nexus deliver')
  t.equal(traceOf(deliver), traceOf(connection), 'the other instance\'s delivery is in the same trace')
  t.equal(parentOf(deliver), idOf(publish), 'a child of the publish, through the carrier that went over Redis')
  t.equal(deliver.kind, SpanKind.CONSUMER)
  t.same(deliver.attributes, { 'nexus.rooms': ['room'], 'nexus.recipients': 1 })
  for (const span of [connection, message, publish, deliver, ...subscribes]) t.equal(traceOf(span), traceOf(auth), `${span.name}: one trace`)
})

t.test('connect spans, a failing connect, broadcasts to all and to many rooms, and stop()', async (t) => {
  exporter.reset()
  const stop = nexusOpenTelemetry()
  const app = await build(t)
  app.ws('/ws/:mode', {
    onConnect: async (_socket, ctx) => {
      if ((ctx.params as { mode: string }).mode === 'fail') throw new Error('no')
      app.getWebSocket().broadcastAll('all')
      app.getWebSocket().broadcast(Array.from({ length: 20 }, (_, i) => `r${i}`), 'many')
    },
    onError: () => {}
  })
  const base = await listen(app)
  const good = await connect(`${base}/ws/good`)
  await good.waitFor(1)
  const bad = await connect(`${base}/ws/fail`)
  t.equal((await bad.closed()).code, 1011)
  await until(() => spans('nexus connection').length === 1)
  const [failedConnection] = spans('nexus connection')
  t.equal(failedConnection.status.code, SpanStatusCode.ERROR, 'closed with 1011: an error')
  const connects = spans('nexus connect')
  t.equal(connects.length, 2)
  t.equal(connects[1].status.code, SpanStatusCode.ERROR)
  t.equal(parentOf(connects[1]), idOf(failedConnection))
  const publishes = spans('nexus publish')
  t.same(publishes.map((span) => span.attributes), [
    { 'nexus.rooms.all': true, 'nexus.recipients': 1 },
    { 'nexus.rooms.count': 20, 'nexus.recipients': 0 }
  ])
  t.equal(parentOf(publishes[0]), idOf(connects[0]), 'a broadcast from onConnect: a child of the connect span')

  stop()
  exporter.reset()
  good.close()
  const again = await connect(`${base}/ws/good`)
  await again.waitFor(1)
  again.close()
  await until(() => app.getWebSocket().connections === 0)
  t.same(exporter.getFinishedSpans(), [], 'stopped: no span')
})

t.test('started while connections are open and calls run: what began before it is left out; a thrown string is an error', async (t) => {
  exporter.reset()
  const app = await build(t)
  const held: Array<(fail: boolean) => void> = []
  app.ws('/ws', {
    auth: (ctx) => ctx.query.hold === undefined
      ? 'now'
      : new Promise((resolve, reject) => { held.push((fail) => { if (fail) reject(new Error('late no')); else resolve('late') }) }),
    // eslint-disable-next-line no-throw-literal
    onMessage: () => { throw 'a string' },
    onError: () => {}
  })
  const base = await listen(app)
  // Someone else listens on nexus.auth: the calls are traced before the bridge starts.
  const other = (): void => {}
  diagnosticsChannel.subscribe('tracing:nexus.auth:end', other)
  t.teardown(() => { diagnosticsChannel.unsubscribe('tracing:nexus.auth:end', other) })

  const early = await connect(`${base}/ws`)
  const pending = connect(`${base}/ws?hold=1`)
  const refused = rejected(`${base}/ws?hold=1`)
  await until(() => held.length === 2)
  const stop = nexusOpenTelemetry()
  t.teardown(stop)
  held[0](false)
  const late = await pending
  held[1](true)
  t.equal((await refused).message, 'Unexpected server response: 401')
  early.send({ n: 1 })
  await until(() => spans('nexus message').length === 1)
  early.close()
  late.close()
  await until(() => spans('nexus connection').length === 1 && app.getWebSocket().connections === 0)
  t.same(spans('nexus auth'), [], 'auth calls that started before the bridge: no span')
  t.equal(spans('nexus connection').length, 1, 'only the connection opened after it has a span')
  const [message] = spans('nexus message')
  t.equal(message.parentSpanContext, undefined, 'the messages of a connection opened before it: root spans')
  t.match(message.status, { code: SpanStatusCode.ERROR, message: 'a string' })
})

t.test('the built package exports the bridge as fastify-nexus-realtime/otel, to require() and to import', async (t) => {
  const root = join(__dirname, '..')
  // The child runs the built dist/, resolved by the package's own name, outside tap's coverage.
  const env = Object.fromEntries(Object.entries(process.env).filter(([key]) => key !== 'NODE_OPTIONS' && key !== 'NODE_V8_COVERAGE' && !key.startsWith('TAP') && !key.startsWith('_TAPJS')))
  const run = async (args: string[]): Promise<string> => {
    const { stdout } = await promisify(execFile)(process.execPath, args, { cwd: root, env, timeout: 30_000 })
    return stdout.trim()
  }
  t.equal(await run(['-e', `
    const otel = require('fastify-nexus-realtime/otel')
    console.log(require.resolve('fastify-nexus-realtime/otel') + ' ' + typeof otel.nexusOpenTelemetry + ' ' + typeof otel.nexusOpenTelemetry())
  `]), `${join(root, 'dist', 'otel.js')} function function`)
  t.equal(await run(['--input-type=module', '-e', `
    import { nexusOpenTelemetry } from 'fastify-nexus-realtime/otel'
    console.log(typeof nexusOpenTelemetry)
  `]), 'function')
})
