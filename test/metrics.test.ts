import t, { type Test } from 'tap'
import Fastify from 'fastify'
import diagnosticsChannel from 'node:diagnostics_channel'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { inspect } from 'node:util'
import { Counter, Registry, register as defaultRegistry } from 'prom-client'
import { METRICS } from '../lib/metrics/definitions'
import { closeCodeBucket, RoomClasses } from '../lib/metrics/labels'
import { requirePromClient } from '../lib/metrics/prom'
import { defaultRoomClass } from '../lib/options'
import nexusRealtime, { redisAdapter } from '../lib/index'
import type { NexusRealtimeOptions } from '../types/index'
import { parseExposition, valueOf, type Family } from './helpers/prometheus'
import { connectProtocol, connectResuming, positionsOf } from './helpers/protocol'
import { REDIS_URL, redisClient, uniquePrefix, withRedis } from './helpers/redis'
import { build, connect, freePort, listen, rawHandshake, rejected } from './helpers/server'
import { delay, until } from './helpers/wait'

// The Prometheus metrics on a real prom-client registry, each one made to
// move by what it counts (real sockets on 127.0.0.1), read back from the
// registry's text output, which every scrape here also checks against the
// exposition format (helpers/prometheus.ts).

t.setTimeout(180_000)

type Families = Map<string, Family>

/** The registry's text output, checked and parsed. */
async function scrape (registry: Registry): Promise<Families> {
  return parseExposition(await registry.metrics())
}

/** An app with metrics on a registry of its own. */
async function metricsApp (t: Test, options: NexusRealtimeOptions = {}): Promise<{ app: Awaited<ReturnType<typeof build>>, registry: Registry }> {
  const registry = new Registry()
  const app = await build(t, { ...options, metrics: { registry, ...(typeof options.metrics === 'object' ? options.metrics : {}) } })
  return { app, registry }
}

async function rejectsOption (t: Test, metrics: unknown, field: string): Promise<void> {
  const app = Fastify()
  t.teardown(() => app.close())
  await t.rejects(async () => { await app.register(nexusRealtime, { metrics } as NexusRealtimeOptions) }, { code: 'FST_NEXUS_INVALID_OPTION', message: new RegExp(`Invalid option "${field.replace('.', '\\.')}"`) }, `${inspect(metrics, { depth: 0 })} → ${field}`)
}

t.test('the metrics option is checked, naming the field', async (t) => {
  await rejectsOption(t, null, 'metrics')
  await rejectsOption(t, 'yes', 'metrics')
  await rejectsOption(t, [], 'metrics')
  await rejectsOption(t, { registery: new Registry() }, 'metrics.registery')
  await rejectsOption(t, { registry: {} }, 'metrics.registry')
  await rejectsOption(t, { registry: null }, 'metrics.registry')
  await rejectsOption(t, { prefix: 3 }, 'metrics.prefix')
  await rejectsOption(t, { prefix: '1app_' }, 'metrics.prefix')
  await rejectsOption(t, { prefix: 'my-app_' }, 'metrics.prefix')
  await rejectsOption(t, { roomClass: 'chat' }, 'metrics.roomClass')
  await rejectsOption(t, { maxRoomClasses: -1 }, 'metrics.maxRoomClasses')
  await rejectsOption(t, { maxRoomClasses: 1.5 }, 'metrics.maxRoomClasses')
  await rejectsOption(t, { maxRoomClasses: 101 }, 'metrics.maxRoomClasses')
})

t.test('prom-client is loaded only for the option; a missing one is a coded error naming the package', async (t) => {
  t.throws(() => requirePromClient('prom-client-that-is-not-installed'), {
    code: 'FST_NEXUS_INVALID_OPTION',
    message: /Invalid option "metrics": expected the "prom-client-that-is-not-installed" package to be installed \(npm install prom-client\)/
  })
  t.equal(typeof requirePromClient().Registry, 'function')
})

t.test('metrics: true registers on prom-client\'s default registry, beside the app\'s own metrics; app.close() takes them off', async (t) => {
  const own = new Counter({ name: 'app_orders_total', help: 'Orders taken' })
  t.teardown(() => { defaultRegistry.removeSingleMetric('app_orders_total') })
  own.inc(2)
  const app = Fastify()
  await app.register(nexusRealtime, { metrics: true })
  app.ws('/ws', {})
  const base = await listen(app)
  const client = await connect(`${base}/ws`)
  await until(() => app.getWebSocket().connections === 1)
  const families = await scrape(defaultRegistry)
  t.equal(valueOf(families, 'app_orders_total'), 2, 'the app\'s own metric is there')
  t.equal(valueOf(families, 'nexus_connections', { route: '/ws' }), 1)
  client.close()
  await app.close()
  const after = await scrape(defaultRegistry)
  t.same([...after.keys()], ['app_orders_total'], 'only the app\'s own metric stays')
})

t.test('without the option nothing listens on the channels', async (t) => {
  const app = await build(t)
  app.ws('/ws', {})
  for (const name of ['nexus.connection.open', 'nexus.connection.close', 'nexus.connection.refused', 'nexus.redis.publish', 'nexus.redis.lag']) {
    t.equal(diagnosticsChannel.channel(name).hasSubscribers, false, `${name}: no subscriber`)
  }
  const { app: withMetrics } = await metricsApp(t)
  t.equal(diagnosticsChannel.channel('nexus.connection.open').hasSubscribers, true, 'the option subscribes')
  await withMetrics.close()
  t.equal(diagnosticsChannel.channel('nexus.connection.open').hasSubscribers, false, 'and app.close() unsubscribes')
  t.equal(diagnosticsChannel.tracingChannel('nexus.publish').start.hasSubscribers, false)
})

t.test('connections, handshakes, closes by code bucket, messages and broadcasts', async (t) => {
  const { app, registry } = await metricsApp(t)
  app.ws('/ws/chat/:id', {
    onConnect: (socket) => { app.getWebSocket().joinRoom('chat:1', socket) },
    onMessage: (_socket, message) => { app.getWebSocket().broadcast('chat:1', message) }
  })
  app.ws('/ws/other', {})
  const base = await listen(app)
  const a = await connect(`${base}/ws/chat/1`)
  const b = await connect(`${base}/ws/chat/2`)
  const other = await connect(`${base}/ws/other`)
  await until(() => app.getWebSocket().connections === 3)
  let families = await scrape(registry)
  t.equal(valueOf(families, 'nexus_connections', { route: '/ws/chat/:id' }), 2, 'by route pattern, never the URL')
  t.equal(valueOf(families, 'nexus_connections', { route: '/ws/other' }), 1)
  t.equal(valueOf(families, 'nexus_handshakes_total', { route: '/ws/chat/:id', outcome: 'accepted' }), 2)

  a.send({ text: 'hi' })
  await a.waitFor(1)
  await b.waitFor(1)
  families = await scrape(registry)
  t.equal(valueOf(families, 'nexus_messages_received_total'), 1)
  t.equal(valueOf(families, 'nexus_messages_sent_total'), 2)
  t.equal(valueOf(families, 'nexus_broadcasts_total'), 1)
  t.equal(valueOf(families, 'nexus_rooms'), 1)
  t.equal(valueOf(families, 'nexus_broadcast_recipients_count', { room_class: 'chat' }), 1)
  t.equal(valueOf(families, 'nexus_broadcast_recipients_sum', { room_class: 'chat' }), 2, 'two sockets written')
  t.equal(valueOf(families, 'nexus_broadcast_duration_seconds_count', { room_class: 'chat' }), 1)
  t.equal(valueOf(families, 'nexus_handler_duration_seconds_count', { route: '/ws/chat/:id', handler: 'onMessage' }), 1)
  t.equal(valueOf(families, 'nexus_handler_duration_seconds_count', { route: '/ws/chat/:id', handler: 'onConnect' }), 2)
  const stats = app.getWebSocket().stats()
  t.equal(valueOf(families, 'nexus_messages_sent_total'), stats.messagesSent, 'the manager\'s own counter, read at scrape time')

  app.getWebSocket().broadcastAll('all')
  await other.waitFor(1)
  families = await scrape(registry)
  t.equal(valueOf(families, 'nexus_broadcast_recipients_sum', { room_class: 'all' }), 3, 'broadcastAll is room_class="all"')

  const closed = [a.closed(), b.closed(), other.closed()]
  a.close(1000)
  b.close(4001)
  other.ws.terminate()
  await Promise.all(closed)
  await until(() => app.getWebSocket().connections === 0)
  families = await scrape(registry)
  t.equal(valueOf(families, 'nexus_connections', { route: '/ws/chat/:id' }), 0)
  t.equal(valueOf(families, 'nexus_closes_total', { route: '/ws/chat/:id', code: '1000' }), 1)
  t.equal(valueOf(families, 'nexus_closes_total', { route: '/ws/chat/:id', code: '4xxx' }), 1)
  t.equal(valueOf(families, 'nexus_closes_total', { route: '/ws/other', code: '1006' }), 1)
  t.equal(valueOf(families, 'nexus_connection_duration_seconds_count', { route: '/ws/chat/:id' }), 2)
})

t.test('refused handshakes: auth, origin, schema, timeout, shutdown', async (t) => {
  const registry = new Registry()
  const app = Fastify()
  await app.register(nexusRealtime, { metrics: { registry }, allowedOrigins: ['https://app.example.com'] })
  let release: () => void = () => {}
  const slowClose = new Promise<void>((resolve) => { release = resolve })
  app.ws('/ws/auth', { auth: (ctx) => { if (ctx.query.token !== 'ok') throw Object.assign(new Error('no'), { statusCode: 401 }); return { id: 1 } }, onClose: () => slowClose })
  app.ws('/ws/schema', { schema: { querystring: { type: 'object', required: ['room'], properties: { room: { type: 'string' } } } } })
  app.ws('/ws/slow', { authTimeout: 50, auth: () => new Promise(() => {}) })
  const base = await listen(app)

  t.match((await rejected(`${base}/ws/auth?token=bad`)).message, /401/)
  await connect(`${base}/ws/auth?token=ok`)
  t.match((await rejected(`${base}/ws/schema`)).message, /400/)
  t.match((await rejected(`${base}/ws/slow`)).message, /503/)
  const origin = await rawHandshake(base, '/ws/auth?token=ok', { Origin: 'https://evil.example.net' })
  t.equal(origin.status, 403)

  let families = await scrape(registry)
  t.equal(valueOf(families, 'nexus_handshakes_total', { route: '/ws/auth', outcome: 'auth' }), 1)
  t.equal(valueOf(families, 'nexus_handshakes_total', { route: '/ws/auth', outcome: 'accepted' }), 1)
  t.equal(valueOf(families, 'nexus_handshakes_total', { route: '/ws/auth', outcome: 'origin' }), 1)
  t.equal(valueOf(families, 'nexus_handshakes_total', { route: '/ws/schema', outcome: 'schema' }), 1)
  t.equal(valueOf(families, 'nexus_handshakes_total', { route: '/ws/slow', outcome: 'timeout' }), 1)
  t.equal(valueOf(families, 'nexus_handler_errors_total', { route: '/ws/auth', handler: 'auth' }), 1, 'a refusing auth counts as a failed auth call')
  t.equal(valueOf(families, 'nexus_handler_duration_seconds_count', { route: '/ws/auth', handler: 'auth' }), 2, 'the origin refusal came before auth')

  const closing = app.close()
  await delay(20)
  t.equal((await rawHandshake(base, '/ws/auth?token=ok')).status, 503)
  families = await scrape(registry)
  t.equal(valueOf(families, 'nexus_handshakes_total', { route: '', outcome: 'shutdown' }), 1, 'answered before routing: no route')
  t.equal(valueOf(families, 'nexus_closes_total', { route: '/ws/auth', code: '1001' }), 1, 'the open socket closed with 1001')
  release()
  await closing
})

t.test('slow consumers, heartbeat timeouts, rate-limited and invalid messages, handler errors', async (t) => {
  const { app, registry } = await metricsApp(t, { maxBufferedBytes: 64 * 1024, heartbeat: { interval: 100 } })
  app.ws('/ws', {
    heartbeat: false,
    onMessage: (_socket, message) => { if ((message as { fail?: boolean }).fail === true) throw new Error('handler failed') }
  })
  app.ws('/ws/limited', { heartbeat: false, rateLimit: { max: 1, windowMs: 60_000 } })
  app.ws('/ws/connect-fails', { heartbeat: false, onConnect: async () => { throw new Error('no room for you') } })
  app.ws('/ws/beat', {})
  app.ws('/ws/feed', { heartbeat: false, onConnect: (socket) => { app.getWebSocket().joinRoom('feed:1', socket) } })
  const base = await listen(app)

  const chatty = await connect(`${base}/ws`)
  chatty.send('not json')
  await chatty.waitFor(1)
  t.match(chatty.messages[0], { code: 'INVALID_JSON' })
  chatty.send({ fail: true })
  await until(() => app.getWebSocket().stats().errors === 1)
  const limited = await connect(`${base}/ws/limited`)
  limited.send({ n: 1 })
  limited.send({ n: 2 })
  await limited.waitFor(1)
  t.match(limited.messages[0], { code: 'RATE_LIMITED' }, 'the bucket held one token')

  const failing = await connect(`${base}/ws/connect-fails`)
  t.equal((await failing.closed()).code, 1011)

  const slow = await connect(`${base}/ws/feed`)
  await until(() => app.getWebSocket().roomSize('feed:1') === 1)
  ;(slow.ws as unknown as { _socket: { pause: () => void } })._socket.pause()
  const chunk = 'x'.repeat(16 * 1024)
  // What the kernel buffers on loopback varies: write until the plugin's own bound is crossed (at most 64 MiB).
  for (let i = 0; i < 4096 && app.getWebSocket().stats().slowConsumers === 0; i++) {
    app.getWebSocket().broadcast('feed:1', chunk)
    if (i % 16 === 15) await new Promise((resolve) => setImmediate(resolve))
  }
  await until(() => app.getWebSocket().stats().slowConsumers === 1)

  // A client that never answers pings: ws answers them by itself unless told not to.
  const silent = await connect(`${base}/ws/beat`, { autoPong: false })
  await until(() => app.getWebSocket().stats().heartbeatTimeouts === 1, 5000)
  void silent

  await until(() => app.getWebSocket().connections === 2)
  const families = await scrape(registry)
  t.equal(valueOf(families, 'nexus_invalid_messages_total'), 1)
  t.equal(valueOf(families, 'nexus_rate_limited_total'), 1)
  t.equal(valueOf(families, 'nexus_handler_errors_total', { route: '/ws', handler: 'onMessage' }), 1)
  t.equal(valueOf(families, 'nexus_handler_errors_total', { route: '/ws/connect-fails', handler: 'onConnect' }), 1)
  t.equal(valueOf(families, 'nexus_errors_total'), 2)
  t.equal(valueOf(families, 'nexus_closes_total', { route: '/ws/connect-fails', code: '1011' }), 1)
  t.equal(valueOf(families, 'nexus_slow_consumers_total'), 1)
  t.equal(valueOf(families, 'nexus_closes_total', { route: '/ws/feed', code: '1013' }), 1)
  t.equal(valueOf(families, 'nexus_heartbeat_timeouts_total'), 1)
  t.equal(valueOf(families, 'nexus_closes_total', { route: '/ws/beat', code: '1006' }), 1)
  t.equal(valueOf(families, 'nexus_connections', { route: '/ws' }), 1)
})

t.test('registry.resetMetrics() starts the histograms from zero, and they keep counting', async (t) => {
  const { app, registry } = await metricsApp(t)
  app.ws('/ws', { onMessage: (socket) => { socket.send('ok') } })
  const client = await connect(`${await listen(app)}/ws`)
  client.send('1')
  await client.waitFor(1)
  let families = await scrape(registry)
  t.equal(valueOf(families, 'nexus_handler_duration_seconds_count', { route: '/ws', handler: 'onMessage' }), 1)
  registry.resetMetrics()
  families = await scrape(registry)
  t.equal(valueOf(families, 'nexus_handler_duration_seconds_count', { route: '/ws', handler: 'onMessage' }), 0)
  t.equal(valueOf(families, 'nexus_handler_duration_seconds_bucket', { route: '/ws', handler: 'onMessage', le: '+Inf' }), 0)
  client.send('2')
  await client.waitFor(2)
  families = await scrape(registry)
  t.equal(valueOf(families, 'nexus_handler_duration_seconds_count', { route: '/ws', handler: 'onMessage' }), 1, 'the next message is counted')
  t.equal(valueOf(families, 'nexus_messages_received_total'), 2, 'a counter of stats() is the manager\'s, whatever the reset')
  client.close()
})

t.test('an async handler is measured until it settles, a sync one until it returns', async (t) => {
  const { app, registry } = await metricsApp(t)
  let release: () => void = () => {}
  app.ws('/ws', {
    onMessage: async (socket, message) => {
      if (message === 'wait') await new Promise<void>((resolve) => { release = resolve })
      socket.send('done')
    }
  })
  const client = await connect(`${await listen(app)}/ws`)
  client.send('"wait"')
  await until(() => app.getWebSocket().stats().messagesReceived === 1)
  await delay(60)
  let families = await scrape(registry)
  t.equal(valueOf(families, 'nexus_handler_duration_seconds_count', { route: '/ws', handler: 'onMessage' }), 0, 'not observed before it settled')
  release()
  await client.waitFor(1)
  families = await scrape(registry)
  t.equal(valueOf(families, 'nexus_handler_duration_seconds_count', { route: '/ws', handler: 'onMessage' }), 1)
  t.ok(valueOf(families, 'nexus_handler_duration_seconds_sum', { route: '/ws', handler: 'onMessage' }) >= 0.05, 'the time it waited is in it')
  t.equal(valueOf(families, 'nexus_handler_duration_seconds_bucket', { route: '/ws', handler: 'onMessage', le: '0.025' }), 0)
})

t.test('a client subscribe is measured as authorize, with its refusals', async (t) => {
  const { app, registry } = await metricsApp(t)
  app.ws('/ws', {
    rooms: {
      authorize: async (room) => {
        if (room === 'boom:1') throw new Error('authorize failed')
        return room.startsWith('open:')
      }
    }
  })
  const client = await connectProtocol(`${await listen(app)}/ws`)
  t.not((await client.subscribe('open:1')).kind, 'e', 'allowed')
  t.equal((await client.subscribe('closed:1')).kind, 'e')
  t.equal((await client.subscribe('boom:1')).kind, 'e')
  const families = await scrape(registry)
  t.equal(valueOf(families, 'nexus_handler_duration_seconds_count', { route: '/ws', handler: 'authorize' }), 3)
  client.close()
})

t.test('history rooms: resume outcomes and the history counters', async (t) => {
  const { app, registry } = await metricsApp(t, { roomPolicies: { 'chat:*': { history: { size: 100, ttl: 60_000 } } } })
  app.ws('/ws', { onConnect: (socket) => { app.getWebSocket().joinRoom('chat:1', socket) } })
  const url = `${await listen(app)}/ws`
  const first = await connectProtocol(url)
  await first.next((frame) => frame.kind === 'j')
  app.getWebSocket().broadcast('chat:1', 'one')
  await first.next((frame) => frame.kind === 'm')
  const positions = positionsOf(first.frames)
  const closed = first.closed()
  first.close()
  await closed
  app.getWebSocket().broadcast('chat:1', 'two')
  const back = await connectResuming(url, positions)
  await back.next((frame) => frame.kind === 'm')
  const stranger = await connectResuming(url, { 'chat:1': [0, 'another epoch'] })
  await stranger.next((frame) => frame.kind === 'j')
  const families = await scrape(registry)
  t.equal(valueOf(families, 'nexus_resumes_total', { outcome: 'recovered' }), 1)
  t.equal(valueOf(families, 'nexus_resumes_total', { outcome: 'failed' }), 1)
  t.equal(valueOf(families, 'nexus_history_appended_total'), 2)
  t.equal(valueOf(families, 'nexus_history_replayed_total'), 1)
  t.equal(valueOf(families, 'nexus_history_failures_total'), 0)
  t.equal(valueOf(families, 'nexus_history_gaps_filled_total'), 0)
  back.close()
  stranger.close()
})

t.test('presence rooms: writes, failures and frames', async (t) => {
  const { app, registry } = await metricsApp(t, { roomPolicies: { 'doc:*': { presence: true } } })
  app.ws('/ws', { rooms: { authorize: () => true } })
  const url = `${await listen(app)}/ws`
  const watcher = await connectProtocol(url)
  watcher.frame('s', { i: 1, r: 'doc:1', w: 1 })
  await watcher.next((frame) => frame.kind === 'p')
  const other = await connectProtocol(url)
  other.frame('s', { i: 1, r: 'doc:1' })
  // Both joins told (in one batch or two).
  await until(() => watcher.frames.filter((frame) => frame.kind === 'd').flatMap((frame) => frame.header.u).length === 2, 10_000)
  await until(async () => valueOf(await scrape(registry), 'nexus_presence_frames_total') >= 2, 10_000)
  const families = await scrape(registry)
  t.ok(valueOf(families, 'nexus_presence_updates_total') >= 1, 'writes counted')
  t.equal(valueOf(families, 'nexus_presence_failures_total'), 0)
  t.equal(valueOf(families, 'nexus_presence_frames_total'), app.getWebSocket().stats().presenceFrames, 'read from stats() at scrape time')
  watcher.close()
  other.close()
})

withRedis(t, 'with the Redis adapter', async (t) => {
  /** Two apps of one process on one Redis prefix, sharing one registry (as the apps of a process must). */
  async function pair (t: Test, registry: Registry, prefix: string, options: NexusRealtimeOptions = {}): Promise<Array<{ app: Awaited<ReturnType<typeof build>>, base: string }>> {
    const nodes = []
    for (let i = 0; i < 2; i++) {
      const app = await build(t, { ...options, adapter: redisAdapter({ url: REDIS_URL, prefix }), metrics: { registry } })
      app.ws<{ query: { rooms?: string } }>('/ws', {
        onConnect: (socket, ctx) => { for (const room of (ctx.query.rooms ?? '').split(',').filter(Boolean)) app.getWebSocket().joinRoom(room, socket) }
      })
      nodes.push({ app, base: await listen(app) })
    }
    return nodes
  }

  t.test('connected state, publish latency, pub/sub lag and the adapter\'s counters', async (t) => {
    const registry = new Registry()
    const [a, b] = await pair(t, registry, uniquePrefix('metrics'))
    const onB = await connect(`${b.base}/ws?rooms=chat:1`)
    await until(() => b.app.getWebSocket().stats().redisRoomChannels === 1)
    // B's SUBSCRIBE has been answered once a message of A arrives: send until one does.
    let sent = 0
    while (onB.messages.length === 0) {
      a.app.getWebSocket().broadcast('chat:1', { n: ++sent })
      await until(() => a.app.getWebSocket().stats().redisPublished === sent)
      await new Promise((resolve) => setImmediate(resolve))
      if (onB.messages.length === 0) await delay(10)
    }
    const families = await scrape(registry)
    t.equal(valueOf(families, 'nexus_redis_connected'), 2, 'both apps of the process are connected')
    t.equal(valueOf(families, 'nexus_redis_published_total'), sent)
    t.ok(valueOf(families, 'nexus_redis_received_total') >= 1)
    t.ok(valueOf(families, 'nexus_redis_delivered_total') >= 1)
    t.equal(valueOf(families, 'nexus_redis_room_channels'), 1)
    t.equal(valueOf(families, 'nexus_redis_publish_duration_seconds_count'), sent, 'one PUBLISH latency per broadcast')
    t.ok(valueOf(families, 'nexus_redis_lag_seconds_count') >= 1, 'the lag of what B received')
    t.equal(valueOf(families, 'nexus_redis_publish_errors_total'), 0)
    t.equal(valueOf(families, 'nexus_redis_invalid_messages_total'), 0)
    t.equal(valueOf(families, 'nexus_redis_query_timeouts_total'), 0)
    t.equal(valueOf(families, 'nexus_redis_presence_reaped_total'), 0)
    onB.close()
  })

  t.test('a history room\'s gap filled from the store', async (t) => {
    const registry = new Registry()
    const prefix = uniquePrefix('metrics-gap')
    const [a, b] = await pair(t, registry, prefix, { roomPolicies: { 'chat:*': { history: { size: 100, ttl: 60_000 } } } })
    const redis = redisClient(t)
    const room = 'chat:gap'
    const onB = await connect(`${b.base}/ws?rooms=${room}`)
    await until(() => b.app.getWebSocket().stats().redisRoomChannels === 1)
    // B follows the room once its SUBSCRIBE is answered and it read the room's
    // position: a message published before that is not B's member's (it joined
    // after it, as B sees the room). Publish until one arrives.
    let offset = 0
    while (onB.messages.length === 0) {
      offset = (await a.app.getWebSocket().publish(room, 'one')).offset
      await until(() => onB.messages.length > 0, 500).catch(() => {})
    }
    // What the store's script does, without the PUBLISH: a message stored but never received.
    await redis.hincrby(`${prefix}:h:{${room}}`, 'o', 1)
    await redis.xadd(`${prefix}:s:{${room}}`, `${offset + 1}-0`, 'd', '"lost"', 'b', '0', 't', String(Date.now()))
    await a.app.getWebSocket().publish(room, 'three')
    await until(() => onB.messages.at(-1) === 'three', 10_000, 'three received')
    t.same(onB.messages.slice(-2), ['lost', 'three'], 'the stored-but-unpublished message filled in, in order')
    t.ok(onB.messages.slice(0, -2).every((message: unknown) => message === 'one'))
    const families = await scrape(registry)
    // B filled the gap (A, which published, may see it too, later): the metric is their sum at each scrape.
    t.ok(b.app.getWebSocket().stats().historyGapsFilled >= 1, 'B filled the gap')
    const filled = (): number => a.app.getWebSocket().stats().historyGapsFilled + b.app.getWebSocket().stats().historyGapsFilled
    await until(async () => {
      const before = filled()
      return valueOf(await scrape(registry), 'nexus_history_gaps_filled_total') === before && filled() === before
    }, 10_000, 'the metric is the sum of the apps\' gap fills')
    t.equal(valueOf(families, 'nexus_history_appended_total'), offset + 1)
    t.equal(valueOf(families, 'nexus_broadcast_duration_seconds_count', { room_class: 'chat' }), offset + 1, 'publish is measured until stored')
    onB.close()
  })
})

t.test('Redis unreachable: connected 0, every broadcast a publish error', async (t) => {
  const registry = new Registry()
  const app = await build(t, { adapter: redisAdapter({ url: `redis://127.0.0.1:${await freePort()}` }), metrics: { registry } })
  app.ws('/ws', {})
  for (let i = 0; i < 3; i++) app.getWebSocket().broadcast('chat:1', i)
  await until(() => app.getWebSocket().stats().redisPublishErrors === 3)
  const families = await scrape(registry)
  t.equal(valueOf(families, 'nexus_redis_connected'), 0)
  t.equal(valueOf(families, 'nexus_redis_publish_errors_total'), 3)
  t.equal(valueOf(families, 'nexus_redis_publish_duration_seconds_count'), 0, 'a failed PUBLISH has no latency')

  const memory = await build(t, { metrics: { registry } })
  memory.ws('/ws', {})
  memory.getWebSocket().broadcast('chat:1', 'here')
  const both = await scrape(registry)
  t.equal(valueOf(both, 'nexus_redis_publish_errors_total'), 3, 'an app without Redis adds nothing to the Redis counters')
  t.equal(valueOf(both, 'nexus_broadcasts_total'), 4)
})

t.test('room classes: the app\'s function, capped; every other room is other', async (t) => {
  const { app, registry } = await metricsApp(t, { metrics: { roomClass: (room) => room.split('/')[0], maxRoomClasses: 2 } })
  app.ws('/ws', {})
  const manager = app.getWebSocket()
  for (const room of ['game/1', 'lobby/2', 'game/3', 'chat/4', 'news/5']) manager.broadcast(room, 'x')
  manager.broadcast(['game/1', 'game/2'], 'x')
  manager.broadcast(['game/1', 'lobby/2'], 'x')
  manager.broadcast([], 'x')
  const families = await scrape(registry)
  const classes = families.get('nexus_broadcast_duration_seconds')?.samples.filter((sample) => sample.name.endsWith('_count')).map((sample) => [sample.labels.room_class, sample.value])
  t.same(Object.fromEntries(classes ?? []), { game: 3, lobby: 1, other: 3, mixed: 1 })

  const classesOf = new RoomClasses((room) => {
    if (room === 'throws') throw new Error('no')
    if (room === 'number') return 42 as unknown as string
    if (room === 'long') return 'x'.repeat(65)
    return room
  }, 1)
  t.equal(classesOf.of(['throws']), 'other', 'a throw')
  t.equal(classesOf.of(['number']), 'other', 'not a string')
  t.equal(classesOf.of(['long']), 'other', 'a room name passed through, taken for a mistake')
  t.equal(classesOf.of(['']), 'other', 'empty')
  t.equal(classesOf.of(['a']), 'a')
  t.equal(classesOf.of(['b']), 'other', 'past the cap')
  t.equal(classesOf.of(['a', 'a']), 'a')
  t.equal(classesOf.of(null), 'all')
  t.equal(defaultRoomClass('chat:42'), 'chat')
  t.equal(defaultRoomClass('user:alice:inbox'), 'user')
  t.equal(defaultRoomClass('general'), 'other', 'a room name without a kind never becomes a label')
  t.equal(defaultRoomClass(':x'), 'other')
})

t.test('close codes are bucketed', async (t) => {
  const buckets = Object.fromEntries([1000, 1001, 1005, 1006, 1008, 1009, 1011, 1013, 3000, 4000, 4503, 4999, 5000].map((code) => [code, closeCodeBucket(code)]))
  t.same(buckets, { 1000: '1000', 1001: '1001', 1005: 'other', 1006: '1006', 1008: '1008', 1009: 'other', 1011: '1011', 1013: '1013', 3000: 'other', 4000: '4xxx', 4503: '4xxx', 4999: '4xxx', 5000: 'other' })
})

t.test('a prefix is put before every name', async (t) => {
  const { app, registry } = await metricsApp(t, { metrics: { prefix: 'shop_' } })
  app.ws('/ws', {})
  const families = await scrape(registry)
  t.ok(families.has('shop_nexus_rooms'))
  t.notOk([...families.keys()].some((name) => name.startsWith('nexus_')))
})

t.test('apps of one process share one registry: values summed, each event counted once; another registry or other settings are refused', async (t) => {
  const registry = new Registry()
  const first = await build(t, { metrics: { registry } })
  const second = await build(t, { metrics: { registry } })
  first.ws('/ws', {})
  second.ws('/ws', {})
  const one = await connect(`${await listen(first)}/ws`)
  const two = await connect(`${await listen(second)}/ws`)
  one.send('"a"')
  two.send('"b"')
  await until(() => first.getWebSocket().stats().messagesReceived === 1 && second.getWebSocket().stats().messagesReceived === 1)
  let families = await scrape(registry)
  t.equal(valueOf(families, 'nexus_messages_received_total'), 2, 'summed over the apps')
  t.equal(valueOf(families, 'nexus_connections', { route: '/ws' }), 2)
  t.equal(valueOf(families, 'nexus_handshakes_total', { route: '/ws', outcome: 'accepted' }), 2, 'each handshake once')

  for (const [metrics, field] of [
    [{ registry: new Registry() }, 'metrics.registry'],
    [true, 'metrics.registry'],
    [{ registry, prefix: 'x_' }, 'metrics.prefix'],
    [{ registry, roomClass: () => 'x' }, 'metrics.roomClass'],
    [{ registry, maxRoomClasses: 3 }, 'metrics.maxRoomClasses']
  ] as const) {
    const third = Fastify()
    t.teardown(() => third.close())
    await t.rejects(async () => { await third.register(nexusRealtime, { metrics }) }, { code: 'FST_NEXUS_INVALID_OPTION', message: new RegExp(`"${field.replace('.', '\\.')}"`) })
  }

  await first.close()
  families = await scrape(registry)
  t.equal(valueOf(families, 'nexus_messages_received_total'), 1, 'a closed app leaves the sum')
  await second.close()
  t.equal(await registry.metrics(), '\n', 'the last one takes the metrics off the registry')
})

t.test('a name already taken in the registry is refused, and nothing of ours stays', async (t) => {
  const registry = new Registry()
  const taken = new Counter({ name: 'nexus_errors_total', help: 'someone else\'s', registers: [registry] })
  const app = Fastify()
  t.teardown(() => app.close())
  await t.rejects(async () => { await app.register(nexusRealtime, { metrics: { registry } }) }, { code: 'FST_NEXUS_INVALID_OPTION', message: /"metrics\.prefix".*nexus_errors_total/ })
  t.same(registry.getMetricsAsArray().map((metric) => metric.name), ['nexus_errors_total'])
  t.equal(registry.getSingleMetric('nexus_errors_total'), taken)
  const { registry: free } = await metricsApp(t)
  t.ok((await scrape(free)).has('nexus_rooms'), 'and a later app starts afresh')

  await app.close()
  await free.metrics()
})

t.test('a history metric\'s name taken: refused with what it made undone, for a first app and for a later one', async (t) => {
  const registry = new Registry()
  void new Counter({ name: 'nexus_history_appended_total', help: 'taken', registers: [registry] })
  const history = { roomPolicies: { 'chat:*': { history: { size: 10, ttl: 1000 } } } }
  const alone = Fastify()
  t.teardown(() => alone.close())
  await t.rejects(async () => { await alone.register(nexusRealtime, { ...history, metrics: { registry } }) }, { code: 'FST_NEXUS_INVALID_OPTION', message: /nexus_history_appended_total/ })
  t.same(registry.getMetricsAsArray().map((metric) => metric.name), ['nexus_history_appended_total'], 'the core metrics it made are gone')
  t.equal(diagnosticsChannel.channel('nexus.connection.open').hasSubscribers, false, 'and nothing listens')

  const first = await build(t, { metrics: { registry } })
  const later = Fastify()
  t.teardown(() => later.close())
  await t.rejects(async () => { await later.register(nexusRealtime, { ...history, metrics: { registry } }) }, { code: 'FST_NEXUS_INVALID_OPTION' })
  first.ws('/ws', {})
  const families = await scrape(registry)
  t.ok(families.has('nexus_rooms'), 'the first app\'s metrics stay')
  t.notOk(families.has('nexus_history_replayed_total'), 'none of the history family')
})

t.test('every metric of the table has the same name, type and help in a scrape', async (t) => {
  const registry = new Registry()
  const app = await build(t, { metrics: { registry }, roomPolicies: { 'chat:*': { history: { size: 10, ttl: 1000 } }, 'doc:*': { presence: true } }, adapter: redisAdapter({ url: `redis://127.0.0.1:${await freePort()}` }) })
  app.ws('/ws', {})
  const families = await scrape(registry)
  for (const metric of METRICS) {
    const family = families.get(metric.name)
    t.match(family, { type: metric.type, help: metric.help }, metric.name)
  }
  t.equal(families.size, METRICS.length, 'and nothing else')
})

t.test('the README lists every metric with its type and labels', async (t) => {
  const readme = readFileSync(join(__dirname, '..', 'README.md'), 'utf8')
  const section = readme.slice(readme.indexOf('### Prometheus metrics'), readme.indexOf('## Scaling out'))
  const rows = [...section.matchAll(/^\| `(nexus_[a-z_]+)` \| (\w+) \| ([^|]+) \|/gm)].map(([, name, type, labels]) => ({
    name,
    type,
    labels: labels.trim() === '–' ? [] : labels.split(',').map((label) => label.trim().replace(/`/g, ''))
  }))
  t.same(rows, METRICS.map(({ name, type, labels }) => ({ name, type, labels: [...labels] })))
})
