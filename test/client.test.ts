import t from 'tap'
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import WebSocket, { WebSocketServer } from 'ws'
import type { FastifyInstance } from 'fastify'
import { NexusClient, type ClientOptions, type ClientState, type NexusError } from '../client/index'
import { build, freePort, listen, type TestContext } from './helpers/server'
import { delay, until } from './helpers/wait'
import type { WebSocketRouteConfig } from '../types/index'

// The official client (client/index.ts) in Node, with ws's WebSocket class
// passed in as Node 20 needs, against the real plugin. The machine may be a
// busy 2-core box: every wait is for an event, with generous bounds.
// Child processes (dist/ as shipped, a process that must exit by itself) are
// in client-process.test.ts; the build and its size in client-build.test.ts.

// Reconnects, backoff and outages take a few seconds each.
t.setTimeout(180000)

type AnyClient = NexusClient<any, any>
interface Events {
  on: (event: any, handler: any) => unknown
  off: (event: any, handler: any) => unknown
}

/** A client with ws's class, closed when the test ends. */
function open<I = any, O = any> (t: TestContext, url: string, options: ClientOptions = {}): NexusClient<I, O> {
  const client = new NexusClient<I, O>(url, { WebSocket, ...options })
  t.teardown(() => client.close())
  return client
}

/** The arguments of the next `event` for which `test` holds. */
function next (emitter: Events, event: string, test: (...args: any[]) => boolean = () => true, timeout = 15000): Promise<any[]> {
  return new Promise((resolve, reject) => {
    const handler = (...args: any[]): void => {
      if (!test(...args)) return
      clearTimeout(timer)
      emitter.off(event, handler)
      resolve(args)
    }
    const timer = setTimeout(() => {
      emitter.off(event, handler)
      reject(new Error(`no "${event}" event within ${timeout} ms`))
    }, timeout)
    emitter.on(event, handler)
  })
}

/** Resolves once the client is in `state` (at once if it already is). */
async function reach (client: AnyClient, state: ClientState, timeout?: number): Promise<void> {
  if (client.state !== state) await next(client, 'state', (s) => s === state, timeout)
}

/** Every call of `event`, as argument lists. */
function record (emitter: Events, event: string): any[][] {
  const calls: any[][] = []
  emitter.on(event, (...args: any[]) => calls.push(args))
  return calls
}

interface ServeOptions {
  /** default 0: any free port */
  port?: number
  /** default '/ws' */
  path?: string
  /** runs before the route is declared (hooks, other routes) */
  setup?: (app: FastifyInstance) => void
}

/** The real plugin with one route, listening on 127.0.0.1. */
async function serve (t: TestContext, config: WebSocketRouteConfig<any>, { port = 0, path = '/ws', setup }: ServeOptions = {}): Promise<{ app: FastifyInstance, url: string, base: string }> {
  const app = await build(t)
  setup?.(app)
  app.ws(path, config)
  let base: string
  if (port === 0) {
    base = await listen(app)
  } else {
    await app.listen({ host: '127.0.0.1', port })
    base = `ws://127.0.0.1:${port}`
  }
  return { app, url: base + path, base }
}

/**
 * A bare ws server that accepts `nexus.v1` and lets a test write frames the
 * real server never sends (malformed ones, future header keys), and read what
 * the client sent: its frames, and per connection the URL and the offered
 * subprotocols (the Sec-WebSocket-Protocol request header).
 */
async function peer (t: TestContext): Promise<{ url: string, connection: () => Promise<WebSocket>, frames: Array<string | Buffer>, urls: string[], protocols: string[][] }> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, handleProtocols: (protocols) => protocols.has('nexus.v1') ? 'nexus.v1' : false })
  await once(wss, 'listening')
  t.teardown(() => new Promise<void>((resolve) => {
    for (const ws of wss.clients) ws.terminate()
    wss.close(() => resolve())
  }))
  const frames: Array<string | Buffer> = []
  const urls: string[] = []
  const protocols: string[][] = []
  wss.on('connection', (ws, request) => {
    urls.push(request.url as string)
    protocols.push((request.headers['sec-websocket-protocol'] as string).split(/\s*,\s*/))
    ws.on('message', (data: Buffer, isBinary) => frames.push(isBinary ? data : data.toString()))
  })
  return {
    url: `ws://127.0.0.1:${(wss.address() as AddressInfo).port}/`,
    connection: async () => (await once(wss, 'connection'))[0],
    frames,
    urls,
    protocols
  }
}

t.test('state: connecting at construction, connected after the hello, closed by close()', async (t) => {
  const { url } = await serve(t, { onMessage: () => {} })
  const client = open(t, url)
  const states = record(client, 'state')
  t.equal(client.state, 'connecting', 'connecting at once')
  t.equal(client.id, undefined)
  await reach(client, 'connected')
  t.type(client.id, 'string', 'the connection id from the hello')
  client.close()
  t.equal(client.state, 'closed')
  client.close()
  t.same(states.map(([s]) => s), ['connected', 'closed'], 'each change once; close() twice is a no-op')
})

t.test('frames the real server does not send yet: future header keys, binary control frames, malformed frames', async (t) => {
  const server = await peer(t)
  const client = open(t, server.url)
  const ws = await server.connection()
  const errors = record(client, 'error')
  const messages = record(client, 'message')
  ws.send('h{"v":1,"id":"peer-1"}\n')
  await reach(client, 'connected')
  t.equal(client.id, 'peer-1')

  const sub = client.subscribe('r', { params: { invite: 'x' } })
  await until(() => server.frames.length === 1, 10000, 'the subscribe')
  t.equal(server.frames[0], 's{"i":1,"r":"r","p":{"invite":"x"}}\n', 'subscribe frame: id, room, params')
  const subscribed = next(sub, 'subscribed')
  ws.send('s{"i":1,"r":"r","recovered":false,"missed":3,"reason":"trimmed"}\n')
  t.same((await subscribed)[0], { recovered: false, missed: 3, reason: 'trimmed' }, 'what the answer says overrides recovered: true, missed: 0')
  t.equal(sub.state, 'subscribed')

  const subMessage = next(sub, 'message')
  ws.send('m{"r":"r","o":7}\n{"a":1}')
  t.same(await subMessage, [{ a: 1 }, { offset: 7 }], 'the offset reaches the subscription')
  await until(() => messages.length === 1)
  t.same(messages[0], [{ a: 1 }, { room: 'r', offset: 7 }], '…and the client')

  // A control frame may come as a binary frame; its payload is decoded as text.
  const answered = client.request({ q: 1 })
  await until(() => server.frames.length === 2, 10000, 'the request')
  t.equal(server.frames[1], 'q{"i":2}\n{"q":1}')
  ws.send(Buffer.from('a{"i":2}\n{"x":1}'))
  t.same(await answered, { x: 1 }, 'a binary answer')
  const empty = client.request(null)
  const text = client.request('t')
  await until(() => server.frames.length === 4)
  t.equal(server.frames[2], 'q{"i":3}\nnull')
  ws.send('a{"i":3}\n')
  ws.send('a{"i":4}\nnot json')
  t.equal(await empty, undefined, 'an empty answer is undefined')
  t.equal(await text, 'not json', 'an answer that is not JSON comes as its text')

  // Unknown ids, unknown rooms and unknown kinds are ignored.
  ws.send('a{"i":99}\n1')
  ws.send('e{"i":99,"c":"X","m":"x"}\n')
  ws.send('u{"r":"not-held"}\n')
  ws.send('z{}\nfuture')
  ws.send('m{}\n"marker"')
  await until(() => messages.length === 2)
  t.same(messages[1], ['marker', {}], 'still fine after frames it ignores')
  t.same(errors, [], 'ignored frames are not errors')

  for (const bad of ['garbage', 'm5\n', 'mnull\n', '\n{}', 'm{"unterminated"\n', Buffer.from([0x6d, 0x7b])]) ws.send(bad)
  await until(() => errors.length === 6, 10000, 'six INVALID_FRAME errors')
  t.same(errors.map(([e]) => e.code), Array(6).fill('INVALID_FRAME'))
  t.ok(errors[0][0] instanceof Error)

  const binary = next(client, 'message')
  ws.send(Buffer.concat([Buffer.from('m{}\n'), Buffer.from([0, 1, 2, 255])]))
  const [bytes, info] = await binary
  t.ok(bytes instanceof Uint8Array, 'binary data comes as a Uint8Array')
  t.same([...bytes], [0, 1, 2, 255])
  t.same(info, {})

  const error = next(client, 'error')
  ws.send('e{"c":"INVALID_MESSAGE","m":"Message does not match the schema","x":[{"path":"/a"}]}\n')
  const [e] = await error
  t.match(e, { code: 'INVALID_MESSAGE', message: 'Message does not match the schema', details: [{ path: '/a' }] }, 'an error without i reaches the client\'s error event')
})

t.test('a WebSocket that opens without nexus.v1: UNSUPPORTED_PROTOCOL, closed, no retry', async (t) => {
  let upgrades = 0
  const { url } = await serve(t, { onMessage: () => {} }, { setup: (app) => app.addHook('onRequest', async () => { upgrades++ }) })
  // Browsers, ws and undici fail a handshake whose answer drops the offered
  // subprotocol (a retry with backoff follows, as after network trouble). A
  // WebSocket implementation that opens anyway is stopped at once: here one
  // that offers no subprotocol, so the server answers raw.
  class NoSubprotocol extends WebSocket {
    // ws's constructor takes (address, protocols): the protocols are dropped.
    // eslint-disable-next-line @typescript-eslint/no-useless-constructor -- it narrows the signature
    constructor (address: string) {
      super(address)
    }
  }
  const client = open(t, url, { WebSocket: NoSubprotocol, reconnect: { minDelay: 5, maxDelay: 10 } })
  const [error] = await next(client, 'error')
  t.match(error, { code: 'UNSUPPORTED_PROTOCOL', message: 'The server does not speak nexus.v1' })
  t.equal(client.state, 'closed')
  await delay(200)
  t.equal(upgrades, 1, 'not retried')
})

t.test('a throwing handler is reported as uncaught, and neither the other handlers nor the client stop', async (t) => {
  const server = await peer(t)
  const client = open(t, server.url)
  const ws = await server.connection()
  const boom = new Error('handler bug')
  const uncaught: unknown[] = []
  process.setUncaughtExceptionCaptureCallback((error) => uncaught.push(error))
  t.teardown(() => process.setUncaughtExceptionCaptureCallback(null))
  const thrower = (): void => { throw boom }
  client.on('state', thrower)
  const connected = next(client, 'state')
  ws.send('h{"v":1,"id":"x"}\n')
  await connected
  t.equal(client.state, 'connected')
  await until(() => uncaught.length === 1)
  t.equal(uncaught[0], boom, 'the error is the handler\'s own')
  const request = client.request(1)
  await until(() => server.frames.length === 1)
  ws.send('a{"i":1}\n2')
  t.equal(await request, 2, 'the client still works')
  client.off('state', thrower)
  client.close()
  t.equal(uncaught.length, 1, 'a handler removed with off() is not called')
})

t.test('a relative URL resolves against the page, http becomes ws, and the global WebSocket is the default', async (t) => {
  const server = await peer(t)
  const { port } = new URL(server.url)
  const g = globalThis as { location?: unknown, WebSocket?: unknown }
  g.location = { href: `http://127.0.0.1:${port}/app/page.html` }
  g.WebSocket = WebSocket
  t.teardown(() => {
    delete g.location
    delete g.WebSocket
  })
  const client = new NexusClient('/ws/chat?room=1', { params: { token: 'a b', n: 2, yes: true, none: null, skip: undefined } })
  t.teardown(() => client.close())
  await server.connection()
  t.same(server.urls, ['/ws/chat?room=1&token=a+b&n=2&yes=true'], 'params merged into the query; null and undefined left out')
})

t.test('send and request: the app\'s data both ways, onMessage\'s return value, coded errors', async (t) => {
  const received: unknown[] = []
  const { url } = await serve(t, {
    schema: { message: { not: { type: 'string', const: 'invalid' } } },
    onMessage: (socket, message: any) => {
      received.push(message)
      switch (message?.op) {
        case 'echo': return { echo: message.value }
        case 'nothing': return undefined
        case 'fail': throw Object.assign(new Error('Not yours'), { code: 'NOT_OWNER', statusCode: 403 })
        case 'bug': throw new Error('secret internals')
        case 'push':
          socket.send(JSON.stringify({ pushed: true }))
          socket.send('plain text')
          return 'pushed'
      }
    }
  })
  const client = open(t, url)
  const messages = record(client, 'message')
  client.send({ op: 'hello' })
  client.send(undefined)
  t.same(await client.request({ op: 'echo', value: [1, 'two'] }), { echo: [1, 'two'] }, 'queued before the connection, answered after it')
  t.same(received.slice(0, 2), [{ op: 'hello' }, null], 'send() reached onMessage in order; undefined goes as null')
  t.equal(await client.request({ op: 'nothing' }), undefined, 'undefined answers undefined')
  await t.rejects(client.request({ op: 'fail' }), { code: 'NOT_OWNER', message: 'Not yours' }, 'a coded error is the server\'s code and message')
  const bug = await client.request({ op: 'bug' }).catch((e: NexusError) => e) as NexusError
  t.equal(bug.code, 'INTERNAL')
  t.notMatch(bug.message, /secret/, 'an uncoded error never shows its message')
  t.ok(bug instanceof Error)
  t.equal(await client.request({ op: 'push' }), 'pushed')
  t.same(messages, [[{ pushed: true }, {}], ['plain text', {}]], 'socket.send reaches message: JSON-parsed when it parses, else the string, no room')
  const invalid = await client.request('invalid').catch((e: NexusError) => e)
  t.match(invalid, { code: 'INVALID_MESSAGE', details: Array }, 'a request refused by schema.message carries the details')
  const error = next(client, 'error')
  client.send('invalid')
  t.match((await error)[0], { code: 'INVALID_MESSAGE', details: Array }, 'a message refused by schema.message reaches the error event')
})

t.test('500 concurrent requests each get their own answer', async (t) => {
  const { url } = await serve(t, {
    onMessage: async (_socket, n: number) => {
      // Every fifth answer waits a turn, so answers do not all come back in one burst.
      if (n % 5 === 0) await new Promise((resolve) => setImmediate(resolve))
      return { n, double: n * 2 }
    }
  })
  const client = open(t, url)
  await reach(client, 'connected')
  const numbers = Array.from({ length: 500 }, (_, i) => i)
  const answers = await Promise.all(numbers.map((n) => client.request<{ n: number, double: number }>(n)))
  t.same(answers, numbers.map((n) => ({ n, double: n * 2 })))
})

t.test('a request made offline with a 300 ms timeout rejects with TIMEOUT and never reaches the server', async (t) => {
  const port = await freePort()
  const client = open(t, `ws://127.0.0.1:${port}/ws`, { reconnect: { minDelay: 20, maxDelay: 100 } })
  const start = Date.now()
  await t.rejects(client.request({ op: 'stale' }, { timeout: 300 }), { code: 'TIMEOUT', message: 'No answer within 300 ms' })
  t.ok(Date.now() - start >= 290, 'after its timeout')
  const received: unknown[] = []
  await serve(t, { onMessage: (_socket, message) => { received.push(message) } }, { port })
  await reach(client, 'connected', 30000)
  client.send({ op: 'fresh' })
  await until(() => received.length > 0, 10000, 'the fresh message')
  t.same(received, [{ op: 'fresh' }], 'only the message sent after; the timed-out request was never sent')
})

t.test('requests in flight when the connection drops reject with DISCONNECTED and are never sent again', async (t) => {
  const seen: Array<{ id: string, message: unknown }> = []
  const sockets: WebSocket[] = []
  let release = (): void => {}
  const hang = new Promise<void>((resolve) => { release = resolve })
  t.teardown(() => release())
  const { url } = await serve(t, {
    onConnect: (socket) => { sockets.push(socket) },
    onMessage: async (_socket, message, ctx) => {
      seen.push({ id: ctx.id, message })
      if (message === 'hang') await hang
      return 'ok'
    }
  })
  const client = open(t, url, { reconnect: { minDelay: 20, maxDelay: 100 } })
  await reach(client, 'connected')
  const first = client.id
  const hanging = client.request('hang')
  const queued = client.request('queued')
  await until(() => seen.length === 1)
  const disconnected = next(client, 'state', (s) => s === 'disconnected')
  sockets[0].close(1012, 'Restarting')
  await t.rejects(hanging, { code: 'DISCONNECTED' })
  await t.rejects(queued, { code: 'DISCONNECTED' })
  t.same((await disconnected)[1], { code: 1012, reason: 'Restarting' }, 'state disconnected carries the close')
  await reach(client, 'connected')
  release()
  t.equal(await client.request('check'), 'ok')
  t.not(client.id, first, 'a new connection')
  t.same(seen.filter((s) => s.id === client.id).map((s) => s.message), ['check'], 'the new connection got only the new request')
})

t.test('server restart on the same port: the client reconnects and resubscribes by itself, and authorize runs again', async (t) => {
  const authorized: string[] = []
  const route = (label: string): WebSocketRouteConfig<any> => ({
    rooms: {
      authorize: (room, _ctx, params) => {
        authorized.push(`${label} ${room} ${JSON.stringify(params)}`)
        return true
      }
    },
    onMessage: () => {}
  })
  const first = await serve(t, route('first'))
  const port = Number(new URL(first.url).port)
  const client = open(t, first.url, { reconnect: { minDelay: 50, maxDelay: 500 } })
  const sub = client.subscribe('chat:1', { params: { invite: 'abc' } })
  t.equal(sub.state, 'subscribing', 'queued before the first connection')
  const subscribed = record(sub, 'subscribed')
  const roomMessages = record(sub, 'message')
  const states = record(client, 'state')
  await until(() => subscribed.length === 1, 15000, 'subscribed')
  t.same(subscribed[0], [{ recovered: true, missed: 0, reason: undefined }])
  t.equal(sub.state, 'subscribed')
  first.app.getWebSocket().broadcast('chat:1', { n: 1 })
  await until(() => roomMessages.length === 1)

  await first.app.close()
  await reach(client, 'disconnected')
  t.equal(sub.state, 'subscribing', 'waiting for the next connection')
  const second = await serve(t, route('second'), { port })
  await until(() => subscribed.length === 2, 30000, 'subscribed again')
  t.same(authorized, ['first chat:1 {"invite":"abc"}', 'second chat:1 {"invite":"abc"}'], 'authorize ran on both servers, with the same params')
  second.app.getWebSocket().broadcast('chat:1', { n: 2 })
  await until(() => roomMessages.length === 2)
  t.same(roomMessages.map(([data]) => data), [{ n: 1 }, { n: 2 }])
  const changes = states.map(([s]) => s)
  t.equal(changes[0], 'connected')
  t.same(changes.slice(1, 3), ['disconnected', 'connecting'])
  t.equal(changes.at(-1), 'connected')
  t.equal(states[1][1].code, 1001, 'the shutdown closed with 1001, which is not final')
})

t.test('a refused auth closes the client with REFUSED and is never retried', async (t) => {
  let upgrades = 0
  const { url } = await serve(t, {
    auth: (ctx) => {
      if (ctx.query.token === 'expired') throw Object.assign(new Error('Token expired'), { statusCode: 403 })
      throw new Error('Token required')
    },
    onMessage: () => 'never'
  }, { setup: (app) => app.addHook('onRequest', async () => { upgrades++ }) })

  const forbidden = open(t, url, { params: { token: 'expired' }, reconnect: { minDelay: 5, maxDelay: 10 } })
  const pending = forbidden.request('buffered before the connection')
  const states = record(forbidden, 'state')
  const [error] = await next(forbidden, 'error')
  t.match(error, { code: 'REFUSED', closeCode: 4403, reason: 'Token expired', message: 'Token expired' })
  t.equal(forbidden.state, 'closed')
  t.same(states, [['closed', { code: 4403, reason: 'Token expired' }]], 'never connected: straight to closed')
  await t.rejects(pending, { code: 'CLOSED' }, 'what waited in the buffer rejects')

  const unauthorized = open(t, url, { reconnect: { minDelay: 5, maxDelay: 10 } })
  t.match((await next(unauthorized, 'error'))[0], { code: 'REFUSED', closeCode: 4401, reason: 'Unauthorized' })
  // A retry loop would have come back many times by now (maxDelay is 10 ms).
  await delay(500)
  t.equal(upgrades, 2, 'one upgrade per client')
  t.throws(() => unauthorized.subscribe('x'), { code: 'CLOSED' }, 'a closed client subscribes nothing')
  await t.rejects(unauthorized.request(1), { code: 'CLOSED' })
  const error2 = next(unauthorized, 'error')
  unauthorized.send({ late: true })
  t.match((await error2)[0], { code: 'CLOSED', data: { late: true } }, 'send() on a closed client is an error event')
})

t.test('close codes: 4400-4499 (but 4408, 4429) are final, every other close is retried', async (t) => {
  const codes = [1000, 1011, 1012, 1013, 4000, 4408, 4429, 4500, 4599, 4600, 4403]
  let connections = 0
  const { url } = await serve(t, {
    onConnect: (socket) => {
      const code = codes[connections++]
      socket.close(code, `code ${code}`)
    }
  })
  const client = open(t, url, { reconnect: { minDelay: 5, maxDelay: 20 } })
  const closes = record(client, 'state')
  const [error] = await next(client, 'error', undefined, 30000)
  t.match(error, { code: 'REFUSED', closeCode: 4403, reason: 'code 4403', message: 'code 4403' })
  t.same(closes.filter(([s]) => s === 'disconnected').map(([, info]) => info.code), codes.slice(0, -1), 'reconnected after each of the others')
  t.equal(client.state, 'closed')
  await delay(200)
  t.equal(connections, codes.length, 'not after 4403')

  const silent = await serve(t, { onConnect: (socket) => socket.close(4499) })
  const other = open(t, silent.url)
  t.match((await next(other, 'error'))[0], { code: 'REFUSED', closeCode: 4499, reason: '', message: 'Connection refused (4499)' }, 'a final close without a reason')
})

t.test('reconnect: false: a drop closes the client', async (t) => {
  const sockets: WebSocket[] = []
  let release = (): void => {}
  const hang = new Promise<void>((resolve) => { release = resolve })
  t.teardown(() => release())
  const { url } = await serve(t, { onConnect: (socket) => { sockets.push(socket) }, onMessage: () => hang })
  const client = open(t, url, { reconnect: false })
  await reach(client, 'connected')
  const pending = client.request('forever', { timeout: 0 })
  const states = record(client, 'state')
  sockets[0].close(1012, 'Restarting')
  await t.rejects(pending, { code: 'DISCONNECTED' })
  t.same(states, [['closed', { code: 1012, reason: 'Restarting' }]])
  release()
})

t.test('refused subscribes: FORBIDDEN is never retried, a temporary refusal is retried with backoff', async (t) => {
  const calls: Record<string, number> = { secret: 0, busy: 0, custom: 0, open: 0 }
  const sockets: WebSocket[] = []
  const { url } = await serve(t, {
    onConnect: (socket) => { sockets.push(socket) },
    rooms: {
      authorize: (room) => {
        calls[room]++
        if (room === 'secret') return false
        if (room === 'custom') return { allow: false, code: 'NOT_INVITED', message: 'Ask for an invite' }
        if (room === 'busy' && calls.busy < 3) return { allow: false, code: 'BUSY', message: 'Try later', temporary: true }
        return true
      }
    }
  })
  const client = open(t, url, { reconnect: { minDelay: 10, maxDelay: 50 } })
  const secret = client.subscribe('secret')
  const custom = client.subscribe('custom')
  const busy = client.subscribe('busy')
  const open1 = client.subscribe('open')
  const busyErrors = record(busy, 'error')
  const busySubscribed = record(busy, 'subscribed')
  const customError = next(custom, 'error')
  const [secretError] = await next(secret, 'error')
  t.match(secretError, { code: 'FORBIDDEN', temporary: false, room: 'secret' })
  t.ok(secretError instanceof Error)
  t.equal(secret.state, 'unsubscribed', 'a final refusal ends the subscription')
  t.match((await customError)[0], { code: 'NOT_INVITED', message: 'Ask for an invite', temporary: false })
  await until(() => busySubscribed.length === 1, 15000, 'busy subscribed in the end')
  t.same(busyErrors.map(([e]) => [e.code, e.message, e.temporary]), [['BUSY', 'Try later', true], ['BUSY', 'Try later', true]])
  t.equal(calls.busy, 3, 'tried again after each temporary refusal')

  // A reconnect renews what is held, and only that.
  sockets[0].close(1012)
  await reach(client, 'disconnected')
  await until(() => busySubscribed.length === 2, 15000, 'busy subscribed again')
  await until(() => calls.open === 2)
  await delay(200)
  t.same(calls, { secret: 1, busy: 4, custom: 1, open: 2 }, 'the final refusals never came back')
  t.doesNotThrow(() => client.subscribe('secret').unsubscribe(), 'an ended subscription frees its room name')
  t.throws(() => client.subscribe('open'), { code: 'ALREADY_SUBSCRIBED' })
  t.equal(open1.state, 'subscribed')
})

t.test('a server-side leaveRoom ends the subscription, and it is not renewed after a reconnect', async (t) => {
  const calls: string[] = []
  const sockets: WebSocket[] = []
  const { app, url } = await serve(t, {
    onConnect: (socket) => { sockets.push(socket) },
    rooms: { authorize: (room) => { calls.push(room); return true } },
    onMessage: (socket, message: { leave: string }) => { app.getWebSocket().leaveRoom(message.leave, socket) }
  })
  const client = open(t, url, { reconnect: { minDelay: 10, maxDelay: 50 } })
  const kicked = client.subscribe('kicked')
  const kept = client.subscribe('kept')
  await next(kicked, 'subscribed')
  const ended = next(kicked, 'unsubscribed')
  client.send({ leave: 'kicked' })
  await ended
  t.equal(kicked.state, 'unsubscribed')
  t.equal(app.getWebSocket().roomSize('kicked'), 0)
  const keptAgain = next(kept, 'subscribed', undefined, 15000)
  sockets[0].close(1012)
  await keptAgain
  await delay(200)
  t.same(calls, ['kicked', 'kept', 'kept'], 'kicked was not subscribed again')
  t.equal(app.getWebSocket().roomSize('kicked'), 0)
})

t.test('room messages reach the subscription and the client; rooms the server joined reach the client only', async (t) => {
  const { app, url } = await serve(t, {
    rooms: { authorize: () => true },
    onConnect: (socket) => { app.getWebSocket().joinRoom('server-joined', socket) }
  })
  const manager = app.getWebSocket()
  const client = open<{ n: number }>(t, url)
  const sub = client.subscribe<{ n: number }>('news')
  const subMessages = record(sub, 'message')
  const messages = record(client, 'message')
  await next(sub, 'subscribed')
  manager.broadcast('news', { n: 1 })
  manager.broadcast('server-joined', { n: 2 })
  manager.broadcast('elsewhere', { n: 3 })
  manager.broadcast('news', 'text')
  await until(() => messages.length === 3)
  t.same(subMessages, [[{ n: 1 }, { offset: undefined }], ['text', { offset: undefined }]])
  t.same(messages, [[{ n: 1 }, { room: 'news' }], [{ n: 2 }, { room: 'server-joined' }], ['text', { room: 'news' }]])

  // After unsubscribe the server drops the membership: the next broadcast is not received.
  sub.unsubscribe()
  sub.unsubscribe()
  await until(() => manager.roomSize('news') === 0, 10000, 'left the room')
  manager.broadcast('news', { n: 4 })
  manager.broadcast('server-joined', { n: 5 })
  await until(() => messages.length === 4)
  t.same(messages[3], [{ n: 5 }, { room: 'server-joined' }])
  t.equal(subMessages.length, 2)
})

t.test('unsubscribe while the subscribe is in flight or the client is offline', async (t) => {
  const releases: Array<(allowed: boolean) => void> = []
  const calls: string[] = []
  const sockets: WebSocket[] = []
  const { app, url } = await serve(t, {
    onConnect: (socket) => { sockets.push(socket) },
    rooms: {
      authorize: (room) => {
        calls.push(room)
        return room.startsWith('slow') ? new Promise<boolean>((resolve) => releases.push(resolve)) : true
      }
    }
  })
  const manager = app.getWebSocket()
  const client = open(t, url, { reconnect: { minDelay: 10, maxDelay: 50 } })
  await reach(client, 'connected')
  const accepted = client.subscribe('slow-accepted')
  const refused = client.subscribe('slow-refused')
  const events = [...record(accepted, 'subscribed'), ...record(accepted, 'error'), ...record(refused, 'subscribed'), ...record(refused, 'error')]
  await until(() => releases.length === 1)
  accepted.unsubscribe()
  releases[0](true)
  await until(() => releases.length === 2)
  refused.unsubscribe()
  releases[1](false)
  const marker = client.subscribe('marker')
  await next(marker, 'subscribed')
  t.same(events, [], 'answers for subscriptions already ended fire nothing')
  t.equal(manager.roomSize('slow-accepted'), 0, 'the unsubscribe followed the subscribe')

  const offline = client.subscribe('offline')
  await next(offline, 'subscribed')
  sockets[0].close(1012)
  await reach(client, 'disconnected')
  offline.unsubscribe()
  await next(marker, 'subscribed', undefined, 15000)
  t.same(calls, ['slow-accepted', 'slow-refused', 'marker', 'offline', 'marker'], 'offline was not renewed')
})

t.test('rooms of history: positions from s, j and m frames, duplicates dropped, presented first on reconnect with nexus.resume', async (t) => {
  const server = await peer(t)
  const client = open(t, server.url, { reconnect: { minDelay: 10, maxDelay: 50 } })
  const ws = await server.connection()
  t.same(server.protocols, [['nexus.v1']], 'no position yet: nexus.v1 alone')
  const resumes = record(client, 'resume')
  const messages = record(client, 'message')
  ws.send('h{"v":1,"id":"a"}\n')
  await reach(client, 'connected')
  const sub = client.subscribe('chat:1')
  const subMessages = record(sub, 'message')
  await until(() => server.frames.length === 1, 10000, 'the subscribe')
  t.equal(server.frames[0], 's{"i":1,"r":"chat:1"}\n', 'no r frame: the subscribe is the first frame')
  const subscribed = next(sub, 'subscribed')
  ws.send('s{"i":1,"r":"chat:1","o":5,"e":"E1"}\n')
  t.same((await subscribed)[0], { recovered: true, missed: 0, reason: undefined }, 'a position without resume fields: nothing to recover')
  ws.send('j{"r":"user:7","o":2,"e":"Z"}\n')
  for (const f of [
    'm{"r":"chat:1","o":5,"e":"E1"}\n"at the subscribe position"',
    'm{"r":"chat:1","o":6,"e":"E1"}\n6',
    'm{"r":"chat:1","o":6,"e":"E1"}\n"6 again"',
    'm{"r":"chat:1","o":4,"e":"E1"}\n"older"',
    'm{"r":"user:7","o":2,"e":"Z"}\n"at the join position"',
    'm{"r":"user:7","o":3,"e":"Z"}\n3',
    'm{"r":"chat:1","o":7,"e":"E1"}\n7',
    'm{"r":"chat:1","o":1,"e":"E2"}\n1',
    'm{"r":"chat:1","o":1,"e":"E2"}\n"1 again"',
    'm{"r":"plain"}\n"plain"',
    'm{"r":"not-held","o":3,"e":"X"}\n"not held"',
    'm{}\n"end"'
  ]) ws.send(f)
  await until(() => messages.at(-1)?.[0] === 'end', 10000, 'the last message')
  t.same(messages, [
    [6, { room: 'chat:1', offset: 6 }],
    [3, { room: 'user:7', offset: 3 }],
    [7, { room: 'chat:1', offset: 7 }],
    [1, { room: 'chat:1', offset: 1 }],
    ['plain', { room: 'plain' }],
    ['not held', { room: 'not-held', offset: 3 }],
    ['end', {}]
  ], 'offsets at or before the room\'s position (same epoch) are dropped; a new epoch starts again')
  t.same(subMessages, [[6, { offset: 6 }], [7, { offset: 7 }], [1, { offset: 1 }]], 'the subscription gets its room\'s messages, without the duplicates')
  t.same(resumes, [], 'no resume event without recovered')

  // The connection drops: the positions are presented on the next one, before anything else.
  const sent = server.frames.length
  const again = server.connection()
  ws.close(1012)
  await reach(client, 'disconnected')
  client.send('queued')
  const ws2 = await again
  t.same(server.protocols[1], ['nexus.v1', 'nexus.resume'], 'with positions: nexus.resume offered too')
  await until(() => server.frames.length === sent + 1, 10000, 'the r frame')
  t.equal(server.frames[sent], 'r{"p":{"chat:1":[1,"E2"],"user:7":[3,"Z"]}}\n', 'the first frame, on open: the rooms held, at their last positions (not the rooms only passed through)')
  ws2.send('h{"v":1,"id":"b"}\n')
  await until(() => server.frames.length === sent + 3, 10000, 'the subscribe and the queued message')
  t.same(server.frames.slice(sent + 1), ['s{"i":2,"r":"chat:1"}\n', 'm{}\n"queued"'], 'what was queued goes after the r frame')
})

t.test('resume results and forgetting: replayed messages kept, lost history reported; unsubscribe and the server\'s u forget a room', async (t) => {
  const server = await peer(t)
  const client = open(t, server.url, { reconnect: { minDelay: 10, maxDelay: 50 } })
  const resumes = record(client, 'resume')
  const messages = record(client, 'message')
  let ws = await server.connection()
  ws.send('h{"v":1,"id":"a"}\n')
  const sub = client.subscribe('chat:1')
  await until(() => server.frames.length === 1, 10000, 'the subscribe')
  ws.send('s{"i":1,"r":"chat:1","o":10,"e":"E"}\n')
  ws.send('j{"r":"user:7","o":4,"e":"Z"}\n')
  ws.send('j{"r":"feed","o":0,"e":"F"}\n')
  ws.send('m{}\n"first"')
  await until(() => messages.length === 1, 10000, 'the first connection\'s frames')

  /** Drops the connection and waits for the client's next one. */
  const reconnect = async (): Promise<void> => {
    const again = server.connection()
    ws.close(1012)
    ws = await again
  }
  let sent = server.frames.length
  await reconnect()
  await until(() => server.frames.length === sent + 1, 10000, 'the r frame')
  t.equal(server.frames[sent], 'r{"p":{"chat:1":[10,"E"],"user:7":[4,"Z"],"feed":[0,"F"]}}\n')
  ws.send('h{"v":1,"id":"b"}\n')
  await until(() => server.frames.length === sent + 2, 10000, 'the subscribe')
  const subscribedAgain = next(sub, 'subscribed')
  for (const f of [
    // Recovered: the answer may carry the room's latest position; the replay follows it and is kept.
    's{"i":2,"r":"chat:1","o":12,"e":"E","recovered":true,"missed":2}\n',
    'm{"r":"chat:1","o":11,"e":"E"}\n11',
    'm{"r":"chat:1","o":12,"e":"E"}\n12',
    'm{"r":"chat:1","o":12,"e":"E"}\n"12 again"',
    'j{"r":"user:7","o":4,"e":"Z","recovered":true,"missed":0}\n',
    // Not recovered: nothing replayed, the room goes on from the new position.
    'j{"r":"feed","o":3,"e":"F2","recovered":false,"reason":"EPOCH_CHANGED"}\n',
    'm{"r":"feed","o":3,"e":"F2"}\n"at the new position"',
    'm{"r":"feed","o":4,"e":"F2"}\n4',
    // A room joined with recovered but no position held: the given one is taken.
    'j{"r":"fresh","o":7,"e":"N","recovered":true,"missed":0}\n',
    // While connected, the server says a room's history was lost.
    'j{"r":"chat:1","o":40,"e":"E9","recovered":false,"reason":"TRIMMED"}\n',
    'm{"r":"chat:1","o":40,"e":"E9"}\n"at the trimmed position"',
    'm{"r":"chat:1","o":41,"e":"E9"}\n41',
    'm{}\n"second"'
  ]) ws.send(f)
  t.same((await subscribedAgain)[0], { recovered: true, missed: 2, reason: undefined }, 'subscribed says how the resume went')
  await until(() => messages.at(-1)?.[0] === 'second', 10000, 'the second connection\'s frames')
  t.same(messages.slice(1).map(([data]) => data), [11, 12, 4, 41, 'second'])
  t.same(resumes.map(([info]) => info), [
    { room: 'chat:1', recovered: true, missed: 2, reason: undefined },
    { room: 'user:7', recovered: true, missed: 0, reason: undefined },
    { room: 'feed', recovered: false, missed: 0, reason: 'EPOCH_CHANGED' },
    { room: 'fresh', recovered: true, missed: 0, reason: undefined },
    { room: 'chat:1', recovered: false, missed: 0, reason: 'TRIMMED' }
  ], 'one resume event per s or j frame with recovered')

  // unsubscribe() forgets chat:1 at once: a message of it still in flight is
  // delivered, but not taken as a position. The server's u forgets user:7.
  sub.unsubscribe()
  await until(() => server.frames.length === sent + 3, 10000, 'the unsubscribe')
  t.equal(server.frames[sent + 2], 'u{"i":3,"r":"chat:1"}\n')
  ws.send('m{"r":"chat:1","o":42,"e":"E9"}\n"in flight"')
  ws.send('u{"i":3,"r":"chat:1"}\n')
  ws.send('u{"r":"user:7"}\n')
  ws.send('m{}\n"third"')
  await until(() => messages.at(-1)?.[0] === 'third', 10000, 'the third batch')
  t.same(messages.at(-2), ['in flight', { room: 'chat:1', offset: 42 }])
  sent = server.frames.length
  await reconnect()
  t.same(server.protocols.at(-1), ['nexus.v1', 'nexus.resume'])
  await until(() => server.frames.length === sent + 1, 10000, 'the r frame')
  t.equal(server.frames[sent], 'r{"p":{"feed":[4,"F2"],"fresh":[7,"N"]}}\n', 'only the rooms still held')

  // The server removes the last rooms: the next connection offers nexus.v1 alone and sends no r frame.
  ws.send('h{"v":1,"id":"c"}\n')
  ws.send('u{"r":"feed"}\n')
  ws.send('u{"r":"fresh"}\n')
  ws.send('m{}\n"fourth"')
  await until(() => messages.at(-1)?.[0] === 'fourth', 10000, 'the fourth batch')
  sent = server.frames.length
  await reconnect()
  t.same(server.protocols.at(-1), ['nexus.v1'], 'no position left: nexus.v1 alone')
  ws.send('h{"v":1,"id":"d"}\n')
  await reach(client, 'connected')
  client.send('probe')
  await until(() => server.frames.length === sent + 1, 10000, 'the probe')
  t.same(server.frames.slice(sent), ['m{}\n"probe"'], 'the first frame of the connection is the probe')
})

/** The times (performance.now()) of the client's connection attempts: the first one, then every `connecting`. */
function attempts (client: AnyClient, start: number): number[] {
  const times = [start]
  client.on('state', (state: ClientState) => { if (state === 'connecting') times.push(performance.now()) })
  return times
}

const gaps = (times: number[]): number[] => times.slice(1).map((time, i) => Math.round(time - times[i]))

// A timer fires late on a busy machine, never early; a refused connection on
// 127.0.0.1 fails within a millisecond or two. So a measured gap is at least
// the delay the client chose, and at most that plus LATE.
const LATE = 250

t.test('attempts during an outage: random delays from minDelay, growing, never more than maxDelay', async (t) => {
  const port = await freePort()
  const minDelay = 20
  const maxDelay = 1000
  const times = attempts(open(t, `ws://127.0.0.1:${port}/ws`, { reconnect: { minDelay, maxDelay } }), performance.now())
  await until(() => times.length >= 15, 60000, '15 attempts')
  const measured = gaps(times).slice(0, 14)
  t.comment(`gaps between attempts (ms): ${measured.join(' ')}`)
  t.ok(measured.every((gap) => gap >= minDelay - 2), 'never less than minDelay')
  t.ok(measured.every((gap) => gap <= maxDelay + LATE), 'never more than maxDelay (plus timer lateness)')
  t.ok(measured[0] <= 2 * minDelay + LATE, 'the first delay is at most 2 × minDelay')
  t.ok(new Set(measured).size >= 8, 'jitter: the delays differ')
  t.ok(Math.max(...measured.slice(5)) > 2 * minDelay + LATE, 'they grow')
})

t.test('backoff: doubles per failed attempt up to maxDelay, and starts again after a stable connection', async (t) => {
  // Math.random() = 1 makes every delay the top of its range: minDelay × 2^attempt, capped.
  const random = Math.random
  Math.random = () => 1
  t.teardown(() => { Math.random = random })
  const port = await freePort()
  const minDelay = 20
  const maxDelay = 400
  const client = open(t, `ws://127.0.0.1:${port}/ws`, { reconnect: { minDelay, maxDelay } })
  const times = attempts(client, performance.now())
  await until(() => times.length >= 7, 30000, '7 attempts')
  const expected = [40, 80, 160, 320, 400, 400]
  const measured = gaps(times).slice(0, 6)
  t.comment(`gaps (ms): ${measured.join(' ')}; expected ${expected.join(' ')}`)
  measured.forEach((gap, i) => t.ok(gap >= expected[i] - 2 && gap <= expected[i] + LATE, `attempt ${i + 2}: ${gap} ms, at least ${expected[i]}`))

  // The server comes up. A connection that lasts longer than the stable
  // window (5 s, or maxDelay when shorter: here 400 ms) resets the backoff;
  // one closed at once does not. Without the reset the next delay would be 400 ms.
  const sockets: WebSocket[] = []
  await serve(t, {
    onConnect: (socket) => {
      sockets.push(socket)
      if (sockets.length === 2) socket.close(1011)
    }
  }, { port })
  await reach(client, 'connected', 30000)
  await delay(maxDelay + 100)
  const down = next(client, 'state', (s) => s === 'disconnected')
  sockets[0].close(1012)
  await down
  const downAt = performance.now()
  await reach(client, 'connecting')
  const afterStable = performance.now() - downAt
  t.ok(afterStable >= 2 * minDelay - 2 && afterStable < maxDelay - 2, `after a stable connection: ${Math.round(afterStable)} ms (${2 * minDelay} + lateness), not ${maxDelay}`)
  await next(client, 'state', (s) => s === 'disconnected')
  const againAt = performance.now()
  await reach(client, 'connecting')
  const afterQuick = performance.now() - againAt
  t.ok(afterQuick >= 4 * minDelay - 2 && afterQuick < maxDelay - 2, `after a connection dropped at once: ${Math.round(afterQuick)} ms, the next step (${4 * minDelay})`)
  await reach(client, 'connected')
})

t.test('backoff: a close with 1001 or 1012 (the server going away on purpose) is not a failed attempt, however soon it comes', async (t) => {
  const random = Math.random
  Math.random = () => 1
  t.teardown(() => { Math.random = random })
  const minDelay = 100
  const maxDelay = 2000
  // Every connection is closed at once: with 1001 and 1012 (a rolling restart moving the client on), then with 1011.
  const codes = [1001, 1012, 1001, 1012, 1011, 1011, 1011]
  let connections = 0
  const { url } = await serve(t, {
    onConnect: (socket) => {
      const code = codes[connections++]
      if (code !== undefined) socket.close(code)
    }
  })
  const client = open(t, url, { reconnect: { minDelay, maxDelay } })
  const downs: number[] = []
  const ups: number[] = []
  client.on('state', (state: ClientState) => {
    if (state === 'disconnected') downs.push(performance.now())
    if (state === 'connecting') ups.push(performance.now())
  })
  await until(() => connections > codes.length, 30000, 'every close, then a connection that stays')
  await reach(client, 'connected')
  const waited = downs.map((down, i) => Math.round(ups[i] - down))
  t.comment(`delays after each close (ms): ${waited.join(' ')}`)
  // Counted as failures, they would have been 200, 400, 800 and 1600 ms.
  waited.slice(0, 4).forEach((gap, i) => t.ok(gap >= 2 * minDelay - 2 && gap <= 2 * minDelay + LATE, `after ${codes[i]}: ${gap} ms, the first step (${2 * minDelay})`))
  const expected = [4 * minDelay, 8 * minDelay, 16 * minDelay]
  waited.slice(4, 7).forEach((gap, i) => t.ok(gap >= expected[i] - 2 && gap <= expected[i] + LATE, `after 1011 (${i + 1}): ${gap} ms, growing (${expected[i]})`))
})

t.test('params: evaluated before every attempt, sync or async; a throw is a failed attempt', async (t) => {
  const tokens: string[] = []
  const sockets: WebSocket[] = []
  const { url } = await serve(t, {
    auth: (ctx) => {
      tokens.push((ctx.query as { token: string }).token)
      // 503: a temporary refusal (4503), retried.
      if (tokens.length < 3) throw Object.assign(new Error('Warming up'), { statusCode: 503 })
      return { token: (ctx.query as { token: string }).token }
    },
    onConnect: (socket) => { sockets.push(socket) },
    onMessage: (_socket, _message, ctx) => ctx.user
  })
  let n = 0
  const client = open(t, url, {
    reconnect: { minDelay: 10, maxDelay: 50 },
    params: async () => {
      n++
      if (n === 4) throw new Error('token store offline')
      // eslint-disable-next-line no-throw-literal -- a thrown non-Error value
      if (n === 5) throw 'not an error'
      return { token: `t${n}` }
    }
  })
  const closes = record(client, 'state')
  const errors = record(client, 'error')
  await reach(client, 'connected', 15000)
  t.same(tokens, ['t1', 't2', 't3'])
  t.same(closes.filter(([s]) => s === 'disconnected').map(([, info]) => info), [{ code: 4503, reason: 'Service Unavailable' }, { code: 4503, reason: 'Service Unavailable' }], '5xx refusals close with 4500 + status and are retried')
  t.same(await client.request('who'), { token: 't3' })
  sockets[0].close(1012)
  await next(client, 'state', (s) => s === 'connected', 15000)
  t.same(tokens, ['t1', 't2', 't3', 't6'], 'a new token on the reconnect')
  t.same(errors.map(([e]) => [e.code, e.message]), [['CONNECT_FAILED', 'token store offline'], ['CONNECT_FAILED', 'not an error']])
  t.ok(errors[0][0].cause instanceof Error)
})

t.test('close() while params are pending: no connection is made', async (t) => {
  let upgrades = 0
  const { url } = await serve(t, { onMessage: () => {} }, { setup: (app) => app.addHook('onRequest', async () => { upgrades++ }) })
  let resolve: (value: Record<string, string>) => void = () => {}
  const client = open(t, url, { params: () => new Promise((_resolve) => { resolve = _resolve }) })
  client.close()
  resolve({ token: 'late' })
  let reject: (reason: Error) => void = () => {}
  const other = open(t, url, { params: () => new Promise((_resolve, _reject) => { reject = _reject }) })
  const errors = record(other, 'error')
  other.close()
  reject(new Error('late'))
  await delay(100)
  t.equal(upgrades, 0)
  t.same(errors, [])
  t.equal(client.state, 'closed')
})

t.test('the offline buffer: bounded, oldest dropped with BUFFER_OVERFLOW, flushed in order once connected', async (t) => {
  const port = await freePort()
  const client = open(t, `ws://127.0.0.1:${port}/ws`, { reconnect: { minDelay: 20, maxDelay: 100 }, buffer: { maxMessages: 3 } })
  const errors = record(client, 'error')
  client.send(1)
  client.send(2)
  const dropped = client.request('r', { timeout: 0 })
  client.send(3)
  client.send(4)
  t.same(errors.map(([e]) => [e.code, e.data]), [['BUFFER_OVERFLOW', 1], ['BUFFER_OVERFLOW', 2]], 'each dropped message is reported with its data')
  t.match(errors[0][0].message, /More than 3 messages/)
  client.send(5)
  await t.rejects(dropped, { code: 'BUFFER_OVERFLOW' }, 'a dropped request rejects')
  t.equal(errors.length, 2, '…and is not also an error event')

  const received: unknown[] = []
  await serve(t, { onMessage: (_socket, message) => { received.push(message) } }, { port })
  await until(() => received.length === 3, 30000, 'the buffered messages')
  t.same(received, [3, 4, 5])

  const none = open(t, `ws://127.0.0.1:${port}/ws`, { buffer: { maxMessages: 0 } })
  const noneErrors = record(none, 'error')
  none.send('dropped at once')
  t.same(noneErrors.map(([e]) => [e.code, e.data]), [['BUFFER_OVERFLOW', 'dropped at once']], 'maxMessages: 0 buffers nothing')
  await reach(none, 'connected')
})

t.test('1000 messages sent during an outage: only the newest 100 (the default bound) are sent once back', async (t) => {
  // socket.io-client#1358: its buffer replays everything, however stale.
  const port = await freePort()
  const client = open(t, `ws://127.0.0.1:${port}/ws`, { reconnect: { minDelay: 20, maxDelay: 100 } })
  let overflows = 0
  client.on('error', (e: NexusError) => { if (e.code === 'BUFFER_OVERFLOW') overflows++ })
  for (let i = 0; i < 1000; i++) client.send(i)
  t.equal(overflows, 900)
  const received: number[] = []
  await serve(t, { onMessage: (_socket, message: number) => { received.push(message) } }, { port })
  await reach(client, 'connected', 30000)
  client.send('last')
  await until(() => received.length === 101, 15000, '101 messages')
  t.same(received, [...Array.from({ length: 100 }, (_, i) => 900 + i), 'last'])
})

t.test('binary messages: typed arrays, ArrayBuffer and DataView go as binary frames; binary comes back as a Uint8Array', async (t) => {
  const received: Buffer[] = []
  const { app, url } = await serve(t, {
    rooms: { authorize: () => true },
    onMessage: (socket, message: Buffer) => {
      received.push(message)
      socket.send(message)
    }
  })
  const client = open<Uint8Array, ArrayBuffer | ArrayBufferView>(t, url)
  const messages = record(client, 'message')
  const bytes = new Uint8Array([0, 10, 13, 255, 128])
  client.send(bytes)
  client.send(bytes.buffer)
  client.send(new DataView(bytes.buffer, 1, 3))
  client.send(Buffer.from('héllo'))
  client.send(new Uint16Array([1, 2]).subarray(1))
  await until(() => messages.length === 5, 10000, 'five echoes')
  t.ok(received.every((message) => Buffer.isBuffer(message)), 'onMessage got Buffers: binary frames')
  t.same(received.map((b) => [...b]), [[0, 10, 13, 255, 128], [0, 10, 13, 255, 128], [10, 13, 255], [...Buffer.from('héllo')], [2, 0]])
  t.ok(messages.every(([data]) => data instanceof Uint8Array))
  t.same(messages.map(([data]) => [...data]), received.map((b) => [...b]), 'the echoes, byte for byte')
  const sub = client.subscribe('bin')
  await next(sub, 'subscribed')
  const roomMessage = next(sub, 'message')
  app.getWebSocket().broadcast('bin', Buffer.from([1, 2, 3]))
  const [data] = await roomMessage
  t.same([...data], [1, 2, 3], 'a binary broadcast')
})

t.test('request timeouts: a late answer is ignored; timeout 0 waits for ever', async (t) => {
  const releases: Array<() => void> = []
  const { url } = await serve(t, {
    onMessage: async (_socket, message: string) => {
      if (message.startsWith('slow')) await new Promise<void>((resolve) => releases.push(resolve))
      return message
    }
  })
  t.teardown(() => { for (const release of releases) release() })
  const client = open(t, url, { requestTimeout: 100 })
  await reach(client, 'connected')
  const start = Date.now()
  await t.rejects(client.request('slow 1'), { code: 'TIMEOUT', message: 'No answer within 100 ms' }, 'the client\'s requestTimeout')
  t.ok(Date.now() - start >= 95)
  const errors = record(client, 'error')
  releases[0]()
  t.equal(await client.request('fast'), 'fast', 'the late answer did not answer the next request')
  const forever = client.request('slow 2', { timeout: 0 })
  const huge = client.request('slow 3', { timeout: 2 ** 31 })
  await until(() => releases.length === 2)
  await delay(300)
  releases[1]()
  t.equal(await forever, 'slow 2', 'timeout 0: no timeout')
  await until(() => releases.length === 3)
  releases[2]()
  t.equal(await huge, 'slow 3', 'a timeout beyond setTimeout\'s range: no timeout')
  t.same(errors, [])
})
