import t from 'tap'
import { once } from 'node:events'
import { readFile } from 'node:fs/promises'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { WebSocketServer, type WebSocket } from 'ws'
import type { FastifyInstance } from 'fastify'
import type { Page } from 'playwright-core'
import type { NexusClient } from '../client/index'
import { build, listen, type TestContext } from './helpers/server'
import { until } from './helpers/wait'
import { browserSkip, launchBrowser } from './helpers/browser'

// The official client in Chromium, loaded as it ships (dist/client/index.mjs,
// built by `npm run build`) by a page's <script type="module">, unbundled,
// against the real plugin.

t.setTimeout(180000)

/** What the page keeps: its client module, and what each client saw. */
interface PageGlobals {
  NexusClient: typeof NexusClient
  log: Array<[string, ...unknown[]]>
  client: NexusClient<any, any>
}

const PAGE = `<!doctype html>
<html>
<head><meta charset="utf-8"><title>client test</title></head>
<body>
<script type="module">
  import { NexusClient } from '/client/index.mjs'
  globalThis.NexusClient = NexusClient
  globalThis.log = []
</script>
</body>
</html>`

const dist = join(__dirname, '..', 'dist', 'client')

/** The page and the client module, served by the app under test like any static file. */
function servePage (app: FastifyInstance): void {
  app.get('/', async (_request, reply) => reply.type('text/html; charset=utf-8').send(PAGE))
  app.get('/client/:file', async (request, reply) => {
    const { file } = request.params as { file: string }
    if (file !== 'index.mjs' && file !== 'index.mjs.map') return reply.code(404).send()
    return reply.type(file.endsWith('.map') ? 'application/json' : 'text/javascript; charset=utf-8').send(await readFile(join(dist, file)))
  })
}

/** A tab with the page loaded and the module imported; page errors are collected in `errors`. */
async function openPage (t: TestContext, base: string, errors: string[]): Promise<Page> {
  const browser = await launchBrowser(t)
  const page = await browser.newPage()
  page.on('pageerror', (error) => errors.push(error.message))
  await page.goto(base.replace('ws:', 'http:') + '/')
  await page.waitForFunction(() => typeof (globalThis as unknown as PageGlobals).NexusClient === 'function')
  return page
}

/** Waits until the page's log has an entry for which `match` holds (run in the page). */
async function logged (page: Page, kind: string, count = 1): Promise<void> {
  await page.waitForFunction(([kind, count]) => (globalThis as unknown as PageGlobals).log.filter(([k]) => k === kind).length >= (count as number), [kind, count] as const, { timeout: 30000 })
}

async function log (page: Page, kind?: string): Promise<unknown[][]> {
  const entries = await page.evaluate(() => (globalThis as unknown as PageGlobals).log)
  return kind === undefined ? entries : entries.filter(([k]) => k === kind).map(([, ...rest]) => rest)
}

t.test('in Chromium: connect by a relative URL, request, send, subscribe, binary, reconnect and resubscribe', { skip: browserSkip }, async (t) => {
  const app = await build(t)
  servePage(app)
  const received: unknown[] = []
  const authorized: string[] = []
  const sockets: WebSocket[] = []
  app.ws('/ws', {
    auth: (ctx) => ({ name: (ctx.query as { token: string }).token }),
    rooms: { authorize: (room, ctx) => { authorized.push(`${(ctx.user as { name: string }).name} ${room}`); return true } },
    onConnect: (socket) => {
      sockets.push(socket)
      app.getWebSocket().joinRoom('lobby', socket)
    },
    onMessage: (socket, message: any, ctx) => {
      received.push(message)
      if (message instanceof Buffer) socket.send(message)
      else if (message?.op === 'whoami') return ctx.user
      else if (message?.op === 'fail') throw Object.assign(new Error('Nope'), { code: 'NOPE', statusCode: 400 })
    }
  })
  const base = await listen(app)
  const errors: string[] = []
  const page = await openPage(t, base, errors)

  await page.evaluate(() => {
    const g = globalThis as unknown as PageGlobals
    // Relative to the page: http://host/ becomes ws://host/ws.
    const client = g.client = new g.NexusClient('/ws', { params: () => ({ token: 'alice' }), reconnect: { minDelay: 50, maxDelay: 500 } })
    client.on('state', (state, info) => g.log.push(['state', state, info?.code]))
    client.on('message', (data, info) => g.log.push(['message', data instanceof Uint8Array ? ['bytes', ...data] : data, info]))
    client.on('error', (error) => g.log.push(['error', error.code, error.message]))
    const sub = client.subscribe('news')
    sub.on('subscribed', (info) => g.log.push(['subscribed', info]))
    sub.on('message', (data, info) => g.log.push(['sub message', data, info]))
    client.send({ op: 'hello' })
  })
  await logged(page, 'subscribed')
  t.same(await log(page, 'state'), [['connected', null]])
  t.same(received, [{ op: 'hello' }], 'the message queued before the connection was sent')
  t.same(authorized, ['alice news'])

  const answers = await page.evaluate(async () => {
    const { client } = globalThis as unknown as PageGlobals
    const whoami = await client.request({ op: 'whoami' })
    const failure = await client.request({ op: 'fail' }).catch((error) => [error.code, error.message, error instanceof Error])
    client.send(new Uint8Array([0, 10, 255]))
    return { whoami, failure }
  })
  t.same(answers, { whoami: { name: 'alice' }, failure: ['NOPE', 'Nope', true] })
  await logged(page, 'message')
  t.same(await log(page, 'message'), [[['bytes', 0, 10, 255], {}]], 'binary goes as binary and comes back as a Uint8Array')
  t.ok(Buffer.isBuffer(received[received.length - 1]))

  const manager = app.getWebSocket()
  manager.broadcast('news', { headline: 'one' })
  manager.broadcast('lobby', { hello: 'all' })
  await logged(page, 'message', 3)
  t.same((await log(page, 'message')).slice(1), [[{ headline: 'one' }, { room: 'news' }], [{ hello: 'all' }, { room: 'lobby' }]])
  t.same(await log(page, 'sub message'), [[{ headline: 'one' }, {}]], 'the subscription gets its room only')

  // The server drops the connection: the page reconnects and subscribes again by itself.
  sockets[0].close(1012, 'Restarting')
  await logged(page, 'subscribed', 2)
  t.same(authorized, ['alice news', 'alice news'], 'authorize ran again')
  t.same((await log(page, 'state')).map(([state, code]) => [state, code]), [['connected', null], ['disconnected', 1012], ['connecting', null], ['connected', null]])
  manager.broadcast('news', { headline: 'two' })
  await logged(page, 'sub message', 2)
  t.same(await log(page, 'error'), [])
  await page.evaluate(() => (globalThis as unknown as PageGlobals).client.close())
  await until(() => manager.stats().connections === 0, 10000, 'the page\'s connection closed')
  t.same(errors, [], 'no errors in the page')
})

t.test('in Chromium: a refused auth is told apart from network trouble and never retried', { skip: browserSkip }, async (t) => {
  const app = await build(t)
  servePage(app)
  let upgrades = 0
  app.addHook('onRequest', async (request) => { if (request.url.startsWith('/ws')) upgrades++ })
  app.ws('/ws', {
    auth: (ctx) => {
      if ((ctx.query as { token?: string }).token !== 'valid') throw Object.assign(new Error('Token expired'), { statusCode: 401 })
    }
  })
  const base = await listen(app)
  const errors: string[] = []
  const page = await openPage(t, base, errors)
  await page.evaluate(() => {
    const g = globalThis as unknown as PageGlobals
    const client = g.client = new g.NexusClient('/ws', { params: { token: 'old' }, reconnect: { minDelay: 10, maxDelay: 20 } })
    client.on('state', (state, info) => g.log.push(['state', state, info?.code, info?.reason]))
    client.on('error', (error) => g.log.push(['error', error.code, error.closeCode, error.reason]))
  })
  await logged(page, 'error')
  t.same(await log(page), [['error', 'REFUSED', 4401, 'Token expired'], ['state', 'closed', 4401, 'Token expired']], 'the browser sees 4401 and its reason, not 1006')
  // A loop would have retried dozens of times by now (maxDelay is 20 ms).
  await page.waitForTimeout(500)
  t.equal(upgrades, 1, 'one attempt')
  t.same(errors, [])
})

t.test('in Chromium: a server that does not pick nexus.v1 fails the handshake; the client keeps trying and never talks to it', { skip: browserSkip }, async (t) => {
  const app = await build(t)
  servePage(app)
  const base = await listen(app)
  // A plain ws server that selects no subprotocol. Browsers fail such a
  // handshake (the client offered one), as they fail a network error.
  const plain = new WebSocketServer({ host: '127.0.0.1', port: 0, handleProtocols: () => false })
  await once(plain, 'listening')
  let handshakes = 0
  let frames = 0
  plain.on('headers', () => { handshakes++ })
  plain.on('connection', (ws) => ws.on('message', () => { frames++ }))
  t.teardown(() => new Promise<void>((resolve) => {
    for (const ws of plain.clients) ws.terminate()
    plain.close(() => resolve())
  }))
  const errors: string[] = []
  const page = await openPage(t, base, errors)
  const url = `ws://127.0.0.1:${(plain.address() as AddressInfo).port}/`
  await page.evaluate((url) => {
    const g = globalThis as unknown as PageGlobals
    const client = g.client = new g.NexusClient(url, { reconnect: { minDelay: 10, maxDelay: 40 } })
    client.on('state', (state) => g.log.push(['state', state]))
    client.on('error', (error) => g.log.push(['error', error.code]))
    client.send('never sent to a server that does not speak nexus.v1')
  }, url)
  await until(() => handshakes >= 3, 30000, 'three handshakes')
  const states = (await log(page, 'state')).map(([state]) => state)
  t.notOk(states.includes('connected'), 'never connected')
  t.ok(states.includes('disconnected'), 'retried with backoff, as after network trouble')
  t.equal(frames, 0, 'nothing was sent')
  await page.evaluate(() => (globalThis as unknown as PageGlobals).client.close())
  t.same(errors, [])
})

t.test('in Chromium: offline, a request times out and is never sent; buffered messages go once connected', { skip: browserSkip }, async (t) => {
  const app = await build(t)
  servePage(app)
  const received: unknown[] = []
  let accept = false
  app.ws('/ws', {
    // 503 until the test says so: a temporary refusal (4503), retried.
    auth: () => { if (!accept) throw Object.assign(new Error('Starting'), { statusCode: 503 }) },
    onMessage: (_socket, message) => { received.push(message) }
  })
  const base = await listen(app)
  const errors: string[] = []
  const page = await openPage(t, base, errors)
  const outcome = await page.evaluate(async () => {
    const g = globalThis as unknown as PageGlobals
    const client = g.client = new g.NexusClient('/ws', { reconnect: { minDelay: 20, maxDelay: 100 }, buffer: { maxMessages: 3 } })
    client.on('state', (state, info) => g.log.push(['state', state, info?.code]))
    client.on('error', (error) => g.log.push(['error', error.code, error.data]))
    for (const n of [1, 2, 3, 4]) client.send(n)
    return await client.request('stale', { timeout: 300 }).catch((error) => error.code)
  })
  t.equal(outcome, 'TIMEOUT')
  t.same(await log(page, 'error'), [['BUFFER_OVERFLOW', 1], ['BUFFER_OVERFLOW', 2]], 'beyond maxMessages the oldest is dropped')
  t.ok((await log(page, 'state')).some(([state, code]) => state === 'disconnected' && code === 4503), 'a 5xx refusal is temporary: 4503, retried')
  accept = true
  await page.waitForFunction(() => (globalThis as unknown as PageGlobals).client.state === 'connected', undefined, { timeout: 30000 })
  await page.evaluate(() => (globalThis as unknown as PageGlobals).client.send('after'))
  await until(() => received.length === 3, 10000, 'the buffered messages')
  t.same(received, [3, 4, 'after'], 'the buffered messages, in order; never the timed-out request')
  await page.evaluate(() => (globalThis as unknown as PageGlobals).client.close())
  t.same(errors, [])
})
