import t, { type Test } from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import fastifyWebsocket from '@fastify/websocket'
import { MemoryAdapter } from '../lib/adapters/memory'
import { ADAPTER_METHODS } from '../lib/options'
import type { Adapter, AdapterHost, EncodedMessage, NexusRealtimeOptions, PublishTarget, WebSocketRouteConfig } from '../types/index'
import { connect, listen } from './helpers/server'
import entry = require('../lib/index')

// lib/index.ts assigns module.exports, which TypeScript does not see as
// exports: the public types say what the entry is.
const nexusRealtime = entry as unknown as typeof import('../types/index')

/** A bare Fastify app, closed when the test ends. */
function bare (t: Test): FastifyInstance {
  const app = Fastify({ logger: false })
  t.teardown(() => app.close())
  return app
}

/** Registers the plugin with `options` as given, whatever their type. */
async function register (t: Test, options: unknown): Promise<FastifyInstance> {
  const app = bare(t)
  await app.register(nexusRealtime, options as NexusRealtimeOptions)
  return app
}

/** Asserts that registering with `options` fails with FST_NEXUS_INVALID_OPTION naming `name` (and saying `says`). */
async function rejectsOption (t: Test, options: unknown, name: string, says?: RegExp | string): Promise<void> {
  let error: any
  try {
    await register(t, options)
  } catch (err) {
    error = err
  }
  t.ok(error instanceof TypeError, `${name}: a TypeError`)
  t.equal(error?.code, 'FST_NEXUS_INVALID_OPTION', `${name}: coded`)
  t.equal(error?.name, 'FastifyError', `${name}: a FastifyError`)
  t.match(error?.message, `Invalid option "${name}"`, `${name}: the message names the option`)
  if (says !== undefined) t.match(error?.message, says, `${name}: the message says ${says}`)
}

/** An adapter written against the interface alone: records every call, publishes nowhere. */
function recordingAdapter (): Adapter & { calls: string[] } {
  const calls: string[] = []
  return {
    calls,
    init (_host: AdapterHost) { calls.push('init') },
    roomActive (_room: string) { calls.push('roomActive') },
    roomIdle (_room: string) { calls.push('roomIdle') },
    publish (_message: EncodedMessage, _target: PublishTarget) { calls.push('publish') },
    close () { calls.push('close') }
  }
}

const echo: WebSocketRouteConfig = {
  onMessage: (socket, message) => {
    socket.send(Buffer.isBuffer(message) ? `binary ${message.length}` : JSON.stringify({ echo: message }))
  }
}

// ------------------------------------------------------------ invalid options

t.test('options that are not an object are rejected', async (t) => {
  await rejectsOption(t, 42, 'options', 'number 42')
  await rejectsOption(t, 'memory', 'options', 'the string "memory"')
  await rejectsOption(t, true, 'options', 'boolean true')
  await rejectsOption(t, [], 'options', 'an array')
})

t.test('an adapter missing a method is rejected, naming the method', async (t) => {
  t.plan(ADAPTER_METHODS.length * 5)
  for (const method of ADAPTER_METHODS) {
    const adapter = recordingAdapter() as unknown as Record<string, unknown>
    delete adapter[method]
    await rejectsOption(t, { adapter }, 'adapter', `${method}()`)
  }
})

t.test('an adapter whose method is not a function is rejected, naming the method', async (t) => {
  const adapter = { ...recordingAdapter(), publish: 'everyone' }
  await rejectsOption(t, { adapter }, 'adapter', 'publish()')
})

t.test('an adapter that is not an object is rejected', async (t) => {
  await rejectsOption(t, { adapter: 'redis' }, 'adapter', 'the string "redis"')
  await rejectsOption(t, { adapter: 42 }, 'adapter', 'number 42')
  await rejectsOption(t, { adapter: MemoryAdapter }, 'adapter', 'a function')
  await rejectsOption(t, { adapter: true }, 'adapter', 'boolean true')
})

t.test('websocket options that are not an object are rejected', async (t) => {
  await rejectsOption(t, { websocket: 1024 }, 'websocket', 'number 1024')
  await rejectsOption(t, { websocket: 'fast' }, 'websocket', 'the string "fast"')
  await rejectsOption(t, { websocket: [{ maxPayload: 1 }] }, 'websocket', 'an array')
})

t.test('websocket.maxPayload must be a non-negative integer', async (t) => {
  await rejectsOption(t, { websocket: { maxPayload: -1 } }, 'websocket.maxPayload', 'number -1')
  await rejectsOption(t, { websocket: { maxPayload: 1.5 } }, 'websocket.maxPayload', 'number 1.5')
  await rejectsOption(t, { websocket: { maxPayload: Number.NaN } }, 'websocket.maxPayload', 'number NaN')
  await rejectsOption(t, { websocket: { maxPayload: Number.POSITIVE_INFINITY } }, 'websocket.maxPayload', 'number Infinity')
  await rejectsOption(t, { websocket: { maxPayload: '1mb' } }, 'websocket.maxPayload', 'the string "1mb"')
  await rejectsOption(t, { websocket: { maxPayload: null } }, 'websocket.maxPayload', 'null')
})

t.test('websocket.noServer, server, port and path are the plugin\'s own and are rejected', async (t) => {
  await rejectsOption(t, { websocket: { noServer: true } }, 'websocket.noServer', 'boolean true')
  await rejectsOption(t, { websocket: { noServer: false } }, 'websocket.noServer', 'boolean false')
  await rejectsOption(t, { websocket: { server: {} } }, 'websocket.server', 'an object')
  await rejectsOption(t, { websocket: { port: 8080 } }, 'websocket.port', 'number 8080')
  await rejectsOption(t, { websocket: { path: '/ws' } }, 'websocket.path', 'the string "/ws"')
  // Given as undefined is still given: the plugin's wiring is not the caller's to touch.
  await rejectsOption(t, { websocket: { port: undefined } }, 'websocket.port', 'undefined')
})

t.test('shutdownTimeout must be a non-negative integer', async (t) => {
  await rejectsOption(t, { shutdownTimeout: -1 }, 'shutdownTimeout', 'number -1')
  await rejectsOption(t, { shutdownTimeout: '5000' }, 'shutdownTimeout', 'the string "5000"')
  await rejectsOption(t, { shutdownTimeout: 2.5 }, 'shutdownTimeout', 'number 2.5')
  await rejectsOption(t, { shutdownTimeout: Number.NaN }, 'shutdownTimeout', 'number NaN')
})

t.test('options given as a function of the instance are checked too', async (t) => {
  await rejectsOption(t, () => ({ shutdownTimeout: -1 }), 'shutdownTimeout', 'number -1')
})

t.test('a failed register leaves no decorator and no route behind', async (t) => {
  const app = bare(t)
  await t.rejects(async () => { await app.register(nexusRealtime, { shutdownTimeout: -1 }) }, { code: 'FST_NEXUS_INVALID_OPTION' })
  t.notOk(app.hasDecorator('ws'))
  t.notOk(app.hasDecorator('getWebSocket'))
})

t.test('hardening options are checked: heartbeat, maxBufferedBytes, rateLimit, allowedOrigins', async (t) => {
  await rejectsOption(t, { heartbeat: true }, 'heartbeat', 'boolean true')
  await rejectsOption(t, { heartbeat: 30000 }, 'heartbeat', 'number 30000')
  await rejectsOption(t, { heartbeat: { interval: 0 } }, 'heartbeat.interval', 'number 0')
  await rejectsOption(t, { heartbeat: { interval: 1.5 } }, 'heartbeat.interval', 'number 1.5')
  await rejectsOption(t, { maxBufferedBytes: 0 }, 'maxBufferedBytes', 'number 0')
  await rejectsOption(t, { maxBufferedBytes: '4mb' }, 'maxBufferedBytes', 'the string "4mb"')
  await rejectsOption(t, { rateLimit: true }, 'rateLimit', 'boolean true')
  await rejectsOption(t, { rateLimit: { max: 0, windowMs: 1000 } }, 'rateLimit.max', 'number 0')
  await rejectsOption(t, { rateLimit: { max: 10, windowMs: -1 } }, 'rateLimit.windowMs', 'number -1')
  await rejectsOption(t, { allowedOrigins: 'https://app.example.com' }, 'allowedOrigins', 'the string "https://app.example.com"')
  await rejectsOption(t, { allowedOrigins: ['https://a.test', 42] }, 'allowedOrigins', 'number 42')
})

t.test('null is not a value of any option', async (t) => {
  await rejectsOption(t, { adapter: null }, 'adapter', 'null')
  await rejectsOption(t, { websocket: null }, 'websocket', 'null')
  await rejectsOption(t, { shutdownTimeout: null }, 'shutdownTimeout', 'null')
  await rejectsOption(t, { heartbeat: null }, 'heartbeat', 'null')
  await rejectsOption(t, { rateLimit: null }, 'rateLimit', 'null')
})

// ------------------------------------------------------------ valid options

t.test('defaults: no options, {} and null all register, and routes work', async (t) => {
  for (const options of [undefined, {}, null]) {
    const app = await register(t, options)
    t.equal(typeof app.ws, 'function', `app.ws with ${JSON.stringify(options)}`)
    t.equal(typeof app.getWebSocket, 'function', `app.getWebSocket with ${JSON.stringify(options)}`)
    app.ws('/ws', echo)
    const client = await connect(`${await listen(app)}/ws`)
    client.send({ hello: 'world' })
    t.same(await client.waitFor(1), [{ echo: { hello: 'world' } }])
    client.close()
  }
})

t.test('the default maxPayload is 1 MiB: a frame of 1 MiB arrives, one byte more closes with 1009', async (t) => {
  const app = await register(t, {})
  const errors: Error[] = []
  app.ws('/ws', { ...echo, onError: (_socket, error) => { errors.push(error) } })
  const base = await listen(app)

  const fits = await connect(`${base}/ws`)
  fits.send(Buffer.alloc(1024 * 1024))
  t.same(await fits.waitFor(1), [`binary ${1024 * 1024}`])
  fits.close()

  const tooBig = await connect(`${base}/ws`)
  const closed = tooBig.closed()
  tooBig.send(Buffer.alloc(1024 * 1024 + 1))
  t.equal((await closed).code, 1009)
  t.same(tooBig.messages, [], 'the oversized frame never reached onMessage')
})

t.test('a custom maxPayload of 1024: 1024 bytes arrive, a larger frame closes with 1009 at the client', async (t) => {
  const app = await register(t, { websocket: { maxPayload: 1024 } })
  let received = 0
  app.ws('/ws', {
    parse: 'text',
    onMessage: (socket, message: Buffer | string) => {
      received++
      socket.send(`got ${message.length}`)
    }
  })
  const base = await listen(app)

  const fits = await connect(`${base}/ws`)
  fits.send('x'.repeat(1024))
  t.same(await fits.waitFor(1), ['got 1024'])
  fits.close()

  const tooBig = await connect(`${base}/ws`)
  const closed = tooBig.closed()
  tooBig.send('x'.repeat(1025))
  t.equal((await closed).code, 1009)
  t.equal(received, 1, 'only the frame that fits reached onMessage')
})

t.test('other ws server options are passed on', async (t) => {
  const app = await register(t, { websocket: { maxPayload: 2048, clientTracking: true, perMessageDeflate: false } })
  t.equal(app.websocketServer.options.maxPayload, 2048)
  t.equal(app.websocketServer.options.perMessageDeflate, false)
})

t.test('shutdownTimeout 0 is valid', async (t) => {
  const app = await register(t, { shutdownTimeout: 0 })
  app.ws('/ws', echo)
  const client = await connect(`${await listen(app)}/ws`)
  const closed = client.closed()
  await app.close()
  t.equal((await closed).code, 1001)
})

t.test('a MemoryAdapter given as an option is the one used', async (t) => {
  class SpyAdapter extends MemoryAdapter {
    hosts: AdapterHost[] = []
    closes = 0
    override init (host: AdapterHost): void {
      this.hosts.push(host)
      super.init(host)
    }

    override close (): void {
      this.closes++
      super.close()
    }
  }
  const adapter = new SpyAdapter()
  const app = await register(t, { adapter })
  t.equal(adapter.hosts.length, 1, 'init ran once, at register')
  app.ws('/ws', {
    onConnect: (socket) => { app.getWebSocket().joinRoom('lobby', socket) },
    onMessage: (socket) => { socket.send('ok') }
  })
  const client = await connect(`${await listen(app)}/ws`)
  client.send({ ping: 1 })
  await client.waitFor(1)
  t.same(adapter.hosts[0].rooms(), ['lobby'], 'the adapter is given the rooms of the instance')
  t.equal(adapter.hosts[0].roomSize('lobby'), 1)
  t.equal(app.getWebSocket().broadcast('lobby', 'hello'), 1)
  t.same(await client.waitFor(2), ['ok', 'hello'])
  await app.close()
  t.equal(adapter.closes, 1, 'close ran once, at app.close()')
})

t.test('an adapter object with every method is accepted and used', async (t) => {
  const adapter = recordingAdapter()
  const app = await register(t, { adapter })
  app.ws('/ws', { onConnect: (socket) => { app.getWebSocket().joinRoom('room', socket) } })
  const client = await connect(`${await listen(app)}/ws`)
  t.equal(app.getWebSocket().broadcast('room', { to: 'room' }), 1)
  t.same(await client.waitFor(1), [{ to: 'room' }])
  await app.close()
  for (const method of ['init', 'roomActive', 'publish', 'roomIdle', 'close']) t.ok(adapter.calls.includes(method), `${method} was called`)
  t.equal(adapter.calls[0], 'init')
  t.equal(adapter.calls.at(-1), 'close')
})

t.test('an app that registered @fastify/websocket itself: the plugin uses it', async (t) => {
  const app = bare(t)
  await app.register(fastifyWebsocket, { options: { maxPayload: 4096 } })
  const server = app.websocketServer
  await app.register(nexusRealtime)
  t.equal(app.websocketServer, server, 'the same ws server, not a second one')

  const closes: number[] = []
  app.ws('/nexus', { ...echo, onClose: (_socket, _ctx, code) => { closes.push(code) } })
  app.get('/plain', { websocket: true }, (socket) => {
    socket.on('message', (data) => socket.send(`plain ${data.toString()}`))
  })
  const base = await listen(app)

  const nexus = await connect(`${base}/nexus`)
  nexus.send({ n: 1 })
  t.same(await nexus.waitFor(1), [{ echo: { n: 1 } }])
  t.equal(app.getWebSocket().connections, 1)

  const plain = await connect(`${base}/plain`)
  plain.send('hi')
  t.same(await plain.waitFor(1), ['plain hi'])

  // The app's own ws options hold (maxPayload 4096, not the plugin's 1 MiB):
  // the plugin registered no server of its own.
  const fits = await connect(`${base}/nexus`)
  const text = 'x'.repeat(4094)
  fits.send(JSON.stringify(text))
  t.same(await fits.waitFor(1), [{ echo: text }], 'a 4096-byte frame fits')
  const tooBig = await connect(`${base}/nexus`)
  const tooBigClosed = tooBig.closed()
  tooBig.send(JSON.stringify(`${text}x`))
  t.equal((await tooBigClosed).code, 1009, 'a 4097-byte frame closes with 1009')

  const closing = Promise.all([nexus.closed(), fits.closed(), plain.closed()])
  await app.close()
  const [nexusClose, fitsClose, plainClose] = await closing
  // @fastify/websocket's own default preClose runs first and closes every
  // socket without a code; the plugin's 1001 is for the server it registers.
  t.equal(nexusClose.code, 1005, "@fastify/websocket's default preClose closes without a code")
  t.equal(fitsClose.code, 1005)
  t.equal(plainClose.code, 1005, "the plain route's socket is closed too")
  t.equal(closes.length, 3, 'onClose ran for every app.ws connection before app.close() resolved')
  t.same(closes.sort(), [1005, 1005, 1009])
})

// ------------------------------------------------------------ app.ws with an invalid config

t.test('app.ws with an invalid config throws FST_NEXUS_INVALID_ROUTE naming the field', async (t) => {
  const app = await register(t, {})
  const ws = app.ws as (path: unknown, config: unknown) => FastifyInstance

  function throwsRoute (path: unknown, config: unknown, field: string, says: string): void {
    let error: any
    try {
      ws.call(app, path, config)
    } catch (err) {
      error = err
    }
    const label = `${field}: ${says}`
    t.ok(error instanceof TypeError, `${label}: a TypeError`)
    t.equal(error?.code, 'FST_NEXUS_INVALID_ROUTE', `${label}: coded`)
    t.match(error?.message, `"${field}" must be`, `${label}: names the field`)
    t.match(error?.message, says, `${label}: says what it received`)
  }

  throwsRoute(42, {}, 'path', 'number 42')
  throwsRoute(undefined, {}, 'path', 'undefined')
  throwsRoute('', {}, 'path', 'the string ""')
  throwsRoute(['/ws'], {}, 'path', 'an array')
  throwsRoute('/ws', undefined, 'config', 'undefined')
  throwsRoute('/ws', null, 'config', 'null')
  throwsRoute('/ws', 'onMessage', 'config', 'the string "onMessage"')
  throwsRoute('/ws', [], 'config', 'an array')
  throwsRoute('/ws', () => {}, 'config', 'a function')
  throwsRoute('/ws', { onMessage: 'echo' }, 'onMessage', 'the string "echo"')
  throwsRoute('/ws', { onMessage: {} }, 'onMessage', 'an object')
  for (const handler of ['auth', 'beforeConnect', 'onConnect', 'onClose', 'onError']) {
    throwsRoute('/ws', { [handler]: true }, handler, 'boolean true')
  }
  throwsRoute('/ws', { rooms: 'yes' }, 'rooms', 'the string "yes"')
  throwsRoute('/ws', { rooms: 1 }, 'rooms', 'number 1')
  throwsRoute('/ws', { parse: 'xml' }, 'parse', 'the string "xml"')
  throwsRoute('/ws', { parse: 42 }, 'parse', 'number 42')
  throwsRoute('/ws', { parse: {} }, 'parse', 'an object')
  throwsRoute('/ws', { heartbeat: true }, 'heartbeat', 'boolean true')
  throwsRoute('/ws', { heartbeat: { interval: 0 } }, 'heartbeat.interval', 'number 0')
  throwsRoute('/ws', { maxBufferedBytes: -1 }, 'maxBufferedBytes', 'number -1')
  throwsRoute('/ws', { rateLimit: { max: 1 } }, 'rateLimit.windowMs', 'undefined')
  throwsRoute('/ws', { rateLimit: 10 }, 'rateLimit', 'number 10')

  // None of those declared a route.
  await app.ready()
  t.notOk(app.hasRoute({ method: 'GET', url: '/ws' }), 'no route was added')
})

t.test('the path in an invalid route error is the one given', async (t) => {
  const app = await register(t, {})
  t.throws(() => app.ws('/ws/game/:id', { rooms: 'no' as unknown as boolean }), {
    code: 'FST_NEXUS_INVALID_ROUTE',
    message: /^Invalid ws route "\/ws\/game\/:id": "rooms" must be a boolean or { authorize, maxRooms, timeout }, received the string "no"$/
  })
})

t.test('valid configs declare their route', async (t) => {
  const app = await register(t, {})
  app.ws('/a', {})
  app.ws('/b', { rooms: false, parse: 'text' })
  app.ws('/c', { parse: 'binary', onMessage: undefined })
  app.ws('/d', { parse: (data) => data.length })
  await app.ready()
  for (const url of ['/a', '/b', '/c', '/d']) t.ok(app.hasRoute({ method: 'GET', url }), url)
})
