import t from 'tap'
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { type Client, connect } from './helpers/server'

// The examples import the package by its name, which resolves to dist/:
// `npm test` builds it before tap runs.
const root = join(__dirname, '..')

interface Example {
  /** http://127.0.0.1:<port> */
  url: string
  /** ws://127.0.0.1:<port> */
  wsUrl: string
  child: ChildProcess
  /** everything the child printed on stdout so far */
  output (): string
}

interface TestContext {
  teardown (fn: () => unknown): void
}

/**
 * Runs an example as its own process, the way a user runs it, on a port the
 * system picks; resolves once it printed the URL it listens on.
 */
async function startExample (t: TestContext, file: string): Promise<Example> {
  if (!existsSync(join(root, 'dist', 'index.js'))) {
    throw new Error('dist/ is missing: the examples import the built package, run `npm run build` first')
  }
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    PORT: '0',
    HOST: '127.0.0.1',
    // tap records coverage in child processes too; an example runs dist/, and
    // its runs must not count towards (or against) the coverage of lib/.
    _TAPJS_PROCESSINFO_COVERAGE_: '0'
  }
  const child = spawn(process.execPath, ['--import', 'tsx', join(root, file)], {
    cwd: root,
    env,
    stdio: ['ignore', 'pipe', 'pipe']
  })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => { stdout += chunk })
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk })
  const exited = once(child, 'exit')

  t.teardown(async () => {
    if (child.exitCode !== null || child.signalCode !== null) return
    child.kill('SIGTERM')
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000)
    await exited
    clearTimeout(timer)
  })

  const port = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(new Error(`${file} printed no URL in time\nstdout: ${stdout}\nstderr: ${stderr}`))
    }, 20000)
    const onData = (): void => {
      const match = /Server running at http:\/\/[^\s:]+:(\d+)/.exec(stdout)
      if (match === null) return
      clearTimeout(timer)
      child.stdout.off('data', onData)
      child.off('exit', onExit)
      resolve(match[1])
    }
    const onExit = (code: number | null): void => {
      clearTimeout(timer)
      reject(new Error(`${file} exited with ${code}\nstdout: ${stdout}\nstderr: ${stderr}`))
    }
    child.stdout.on('data', onData)
    child.once('exit', onExit)
  })

  return {
    url: `http://127.0.0.1:${port}`,
    wsUrl: `ws://127.0.0.1:${port}`,
    child,
    output: () => stdout
  }
}

/** Resolves once the example printed `text`. */
async function printed (example: Example, text: string, timeout = 5000): Promise<void> {
  const start = Date.now()
  while (!example.output().includes(text)) {
    if (Date.now() - start > timeout) throw new Error(`the example did not print ${JSON.stringify(text)}; it printed:\n${example.output()}`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

function close (t: TestContext, client: Client): void {
  t.teardown(() => client.close())
}

t.test('quickstart: welcome, then every message echoed', async (t) => {
  const example = await startExample(t, 'examples/quickstart/server.ts')
  await printed(example, `WebSocket at ${example.wsUrl}/ws/chat`)

  const client = await connect(`${example.wsUrl}/ws/chat`)
  close(t, client)
  await client.waitFor(1)
  t.same(client.messages[0], { type: 'welcome', message: 'Hello!' })
  await printed(example, 'Client connected')

  client.send({ type: 'chat', text: 'hi' })
  client.send('not json')
  await client.waitFor(3)
  t.same(client.messages[1], { echo: { type: 'chat', text: 'hi' } })
  t.match(client.messages[2], { type: 'error', code: 'INVALID_JSON' }, 'invalid JSON gets an error frame, not an echo')
  await printed(example, 'Received: { type: \'chat\', text: \'hi\' }')

  const closed = client.closed()
  client.close()
  await closed
  await printed(example, 'Client disconnected')
})

t.test('chat: GET / serves the page', async (t) => {
  const example = await startExample(t, 'examples/chat/server.ts')
  const response = await fetch(`${example.url}/`)
  t.equal(response.status, 200)
  t.match(response.headers.get('content-type'), /^text\/html/)
  const html = await response.text()
  t.match(html, /<!doctype html>/i)
  t.match(html, '/ws/chat?token=')
  t.notMatch(html, /<script[^>]+src=/, 'no external scripts')

  const plain = await fetch(`${example.url}/ws/chat`)
  t.equal(plain.status, 404, 'a plain GET on the ws route is 404')
})

t.test('chat: the seed scenario with two users', async (t) => {
  const example = await startExample(t, 'examples/chat/server.ts')

  const alice = await connect(`${example.wsUrl}/ws/chat?token=alice`)
  close(t, alice)
  await alice.waitFor(2)
  t.same(alice.messages[0], { type: 'welcome', message: 'Welcome alice!', room: 'general' })
  t.same(alice.messages[1], { type: 'system', message: 'alice joined the chat' })

  const bob = await connect(`${example.wsUrl}/ws/chat?token=bob`)
  close(t, bob)
  await bob.waitFor(2)
  t.same(bob.messages[0], { type: 'welcome', message: 'Welcome bob!', room: 'general' })
  t.same(bob.messages[1], { type: 'system', message: 'bob joined the chat' })
  await alice.waitFor(3)
  t.same(alice.messages[2], { type: 'system', message: 'bob joined the chat' }, 'others hear of the newcomer')

  t.test('chat is broadcast to the room with the sender\'s name', async (t) => {
    alice.send({ type: 'chat', text: 'Hello!' })
    await Promise.all([alice.waitFor(4), bob.waitFor(3)])
    for (const message of [alice.messages[3], bob.messages[2]]) {
      t.match(message, { type: 'chat', user: 'alice', text: 'Hello!', timestamp: String })
      t.ok(!Number.isNaN(Date.parse(message.timestamp)), 'timestamp is an ISO date')
    }
  })

  t.test('typing is broadcast', async (t) => {
    bob.send({ type: 'typing' })
    await Promise.all([alice.waitFor(5), bob.waitFor(4)])
    t.same(alice.messages[4], { type: 'typing', user: 'bob' })
    t.same(bob.messages[3], { type: 'typing', user: 'bob' })
  })

  t.test('a private message reaches only its target', async (t) => {
    alice.send({ type: 'private', to: 'bob', text: 'psst' })
    // Alice's next message is handled after the private one: if the private
    // message had gone to her too, it would arrive before this typing notice.
    alice.send({ type: 'typing' })
    await Promise.all([alice.waitFor(6), bob.waitFor(6)])
    t.match(bob.messages[4], { type: 'private', from: 'alice', text: 'psst', timestamp: String })
    t.same(bob.messages[5], { type: 'typing', user: 'alice' })
    t.same(alice.messages[5], { type: 'typing', user: 'alice' })

    alice.send({ type: 'private', to: 'carol', text: 'anyone?' })
    await alice.waitFor(7)
    t.same(alice.messages[6], { type: 'error', message: 'carol is not online' })
  })

  t.test('join_room and leave_room are answered, and room chat stays in the room', async (t) => {
    alice.send({ type: 'join_room', room: 'dev' })
    await alice.waitFor(8)
    t.same(alice.messages[7], { type: 'room_joined', room: 'dev' })

    alice.send({ type: 'chat', room: 'dev', text: 'dev only' })
    await alice.waitFor(9)
    t.match(alice.messages[8], { type: 'chat', user: 'alice', text: 'dev only' })

    alice.send({ type: 'leave_room', room: 'dev' })
    await alice.waitFor(10)
    t.same(alice.messages[9], { type: 'room_left', room: 'dev' })

    // Bob is not in 'dev': his next message is this one, not 'dev only'.
    bob.send({ type: 'typing' })
    await bob.waitFor(7)
    t.same(bob.messages[6], { type: 'typing', user: 'bob' })
    await alice.waitFor(11)
  })

  t.test('a client leaving is announced to the others', async (t) => {
    const closed = bob.closed()
    bob.close()
    await closed
    await alice.waitFor(12)
    t.same(alice.messages[11], { type: 'system', message: 'bob left the chat' })
  })
})

t.test('chat: without a token the user is Anonymous', async (t) => {
  const example = await startExample(t, 'examples/chat/server.ts')
  const client = await connect(`${example.wsUrl}/ws/chat`)
  close(t, client)
  await client.waitFor(2)
  t.same(client.messages[0], { type: 'welcome', message: 'Welcome Anonymous!', room: 'general' })
})

t.test('chat: SIGTERM closes sockets with 1001 and the process exits on its own', async (t) => {
  const example = await startExample(t, 'examples/chat/server.ts')
  const client = await connect(`${example.wsUrl}/ws/chat?token=alice`)
  await client.waitFor(2)
  const closed = client.closed()
  const exited = once(example.child, 'exit')
  example.child.kill('SIGTERM')
  t.same(await closed, { code: 1001, reason: 'Server shutting down' })
  const [code] = await exited
  t.equal(code, 0)
})
