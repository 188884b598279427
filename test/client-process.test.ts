import t from 'tap'
import { execFile } from 'node:child_process'
import { join } from 'node:path'
import { build, freePort, listen, type TestContext } from './helpers/server'
import { until } from './helpers/wait'
import type { WebSocketRouteConfig } from '../types/index'

// Child processes are bounded at 60 s each: the file gets more than tap's default 30 s.
t.setTimeout(180000)

// The client as it ships (dist/client/, built by `npm run build`), in Node
// processes of its own: a process whose clients are closed must exit by
// itself, and Node's own WebSocket (Node 22, or 20 with a flag) must work
// without ws.

async function serve (t: TestContext, config: WebSocketRouteConfig<any>): Promise<{ app: Awaited<ReturnType<typeof build>>, url: string }> {
  const app = await build(t)
  app.ws('/ws', config)
  return { app, url: `${await listen(app)}/ws` }
}

const run = (args: string[], timeout: number): Promise<{ stdout: string, stderr: string }> => new Promise((resolve, reject) => {
  execFile(process.execPath, args, { cwd: join(__dirname, '..'), timeout }, (error, stdout, stderr) => {
    if (error) reject(Object.assign(error, { stdout, stderr }))
    else resolve({ stdout, stderr })
  })
})

t.test('close() stops everything: a process whose clients are closed exits by itself', async (t) => {
  const received: unknown[] = []
  let release = (): void => {}
  const hang = new Promise<void>((resolve) => { release = resolve })
  t.teardown(() => release())
  const { url } = await serve(t, {
    rooms: { authorize: () => true },
    onMessage: async (_socket, message) => {
      received.push(message)
      await hang
    }
  })
  const port = await freePort()
  // The built CommonJS module with ws, as a Node 20 app uses it: one client
  // connected, subscribed, with a request in flight; one reconnecting during
  // an outage with a buffered request and message. Nothing calls process.exit.
  const script = `
    const { NexusClient } = require('./dist/client/index.cjs')
    const WebSocket = require('ws')
    const [url, down] = process.argv.slice(1)
    const out = []
    const a = new NexusClient(url, { WebSocket, requestTimeout: 60000 })
    const b = new NexusClient(down, { WebSocket, reconnect: { minDelay: 10, maxDelay: 50 }, requestTimeout: 60000 })
    b.request('buffered').catch((e) => out.push('b ' + e.code))
    b.send('buffered message')
    a.on('state', (state) => out.push('a ' + state))
    let closedAt = 0
    a.subscribe('room').on('subscribed', () => {
      a.request('in flight').catch((e) => out.push('a ' + e.code))
      a.request('ping', { timeout: 0 }).catch((e) => out.push('a ' + e.code))
      // The requests are on the wire; b is between attempts or in one.
      setImmediate(() => {
        closedAt = Date.now()
        a.close()
        b.close()
      })
    })
    process.on('exit', () => console.log(JSON.stringify({ out, afterClose: Date.now() - closedAt })))`
  const { stdout } = await run(['-e', script, url, `ws://127.0.0.1:${port}/ws`], 60000)
  release()
  const { out, afterClose } = JSON.parse(stdout)
  t.same(out.sort(), ['a CLOSED', 'a CLOSED', 'a closed', 'a connected', 'b CLOSED'].sort())
  t.ok(afterClose < 5000, `exited ${afterClose} ms after close()`)
})

t.test('Node with its global WebSocket (Node 22, or 20 with --experimental-websocket) runs the ES module as shipped', async (t) => {
  const { app, url } = await serve(t, {
    rooms: { authorize: () => true },
    onMessage: (socket, message: any) => {
      if (Buffer.isBuffer(message)) socket.send(message)
      else return { echo: message }
    }
  })
  const script = `
    import { NexusClient } from './dist/client/index.mjs'
    const client = new NexusClient(process.argv[1])
    // The listener goes on first: the room's broadcast may arrive in the
    // same read as the subscribed answer, before a later listener would.
    const messages = []
    let gotBoth
    const both = new Promise((resolve) => { gotBoth = resolve })
    client.on('message', (data, info) => {
      messages.push([data instanceof Uint8Array ? Array.from(data) : data, info])
      if (messages.length === 2) gotBoth()
    })
    const out = { answer: await client.request('hi') }
    const sub = client.subscribe('room')
    await new Promise((resolve) => sub.on('subscribed', resolve))
    console.log('subscribed')
    client.send(new Uint8Array([1, 2, 3]))
    await both
    client.close()
    console.log(JSON.stringify({ ...out, messages, state: client.state }))`
  const flags = Number(process.versions.node.split('.')[0]) < 22 ? ['--experimental-websocket', '--no-warnings'] : []
  const child = run([...flags, '--input-type=module', '-e', script, url], 60000)
  // The child says when it is subscribed; then the server broadcasts.
  const manager = app.getWebSocket()
  await until(() => manager.roomSize('room') === 1, 30000, 'the child subscribed')
  manager.broadcast('room', { n: 1 })
  const { stdout } = await child
  const result = JSON.parse(stdout.split('\n').filter(Boolean).at(-1) as string)
  t.same(result.answer, { echo: 'hi' })
  t.same(result.messages.sort((a: any[]) => Array.isArray(a[0]) ? 1 : -1), [[{ n: 1 }, { room: 'room' }], [[1, 2, 3], {}]])
  t.equal(result.state, 'closed')
})
