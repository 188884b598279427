import t from 'tap'
import { once } from 'node:events'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { type Client, connect, rejected, type TestContext } from './helpers/server'
import { inbox, printed, startExample } from './helpers/examples'
import { root } from './helpers/processes'

function close (t: TestContext, client: Client): void {
  t.teardown(() => client.close())
}

t.test('quickstart: welcome, then every message echoed', async (t) => {
  const example = await startExample(t, 'examples/quickstart/server.ts')
  await printed(example, `WebSocket at ws://localhost:${new URL(example.url).port}/ws/chat`)

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

t.test('chat: GET / serves the page, and /nexus-client.mjs the client it imports', async (t) => {
  const example = await startExample(t, 'examples/chat/server.ts')
  const response = await fetch(`${example.url}/`)
  t.equal(response.status, 200)
  t.match(response.headers.get('content-type'), /^text\/html/)
  const html = await response.text()
  t.match(html, /<!doctype html>/i)
  t.match(html, "new NexusClient('/ws/chat', { params: { token: name } })")
  t.match(html, "import { NexusClient } from '/nexus-client.mjs'", 'the page imports the official client')
  t.notMatch(html, /<script[^>]+src=/, 'no other scripts')

  // The client's ES module, as the package ships it.
  const client = await fetch(`${example.url}/nexus-client.mjs`)
  t.equal(client.status, 200)
  t.match(client.headers.get('content-type'), /^text\/javascript/)
  t.equal(await client.text(), await readFile(join(root, 'dist', 'client', 'index.mjs'), 'utf8'), 'dist/client/index.mjs, unchanged')

  const plain = await fetch(`${example.url}/ws/chat`)
  t.equal(plain.status, 404, 'a plain GET on the ws route is 404')
})

t.test('chat: the seed scenario with two users', async (t) => {
  const example = await startExample(t, 'examples/chat/server.ts')

  const alice = await connect(`${example.wsUrl}/ws/chat?token=alice`)
  close(t, alice)
  const fromAlice = inbox(alice)
  t.same(await fromAlice.next(), { type: 'welcome', message: 'Welcome alice!', room: 'general' })
  t.same(await fromAlice.next(), { type: 'system', message: 'alice joined the chat' })

  const bob = await connect(`${example.wsUrl}/ws/chat?token=bob`)
  close(t, bob)
  const fromBob = inbox(bob)
  t.same(await fromBob.next(), { type: 'welcome', message: 'Welcome bob!', room: 'general' })
  t.same(await fromBob.next(), { type: 'system', message: 'bob joined the chat' })
  t.same(await fromAlice.next(), { type: 'system', message: 'bob joined the chat' }, 'others hear of the newcomer')

  t.test('chat is broadcast to the room with the sender\'s name', async (t) => {
    alice.send({ type: 'chat', text: 'Hello!' })
    for (const message of [await fromAlice.next(), await fromBob.next()]) {
      t.match(message, { type: 'chat', room: 'general', user: 'alice', text: 'Hello!', timestamp: String })
      t.ok(!Number.isNaN(Date.parse(message.timestamp)), 'timestamp is an ISO date')
    }
  })

  t.test('typing is broadcast', async (t) => {
    bob.send({ type: 'typing' })
    t.same(await fromAlice.next(), { type: 'typing', room: 'general', user: 'bob' })
    t.same(await fromBob.next(), { type: 'typing', room: 'general', user: 'bob' })
  })

  t.test('a private message reaches only its target', async (t) => {
    alice.send({ type: 'private', to: 'bob', text: 'psst' })
    // Alice's next message is handled after the private one: if the private
    // message had gone to her too, it would arrive before this typing notice.
    alice.send({ type: 'typing' })
    t.match(await fromBob.next(), { type: 'private', from: 'alice', text: 'psst', timestamp: String })
    t.same(await fromBob.next(), { type: 'typing', room: 'general', user: 'alice' })
    t.same(await fromAlice.next(), { type: 'typing', room: 'general', user: 'alice' })
  })

  t.test('a private message to a user who is not online is an error for the sender', async (t) => {
    alice.send({ type: 'private', to: 'carol', text: 'anyone?' })
    t.same(await fromAlice.next(), { type: 'error', message: 'carol is not online' })
    alice.send({ type: 'private', text: 'to nobody' })
    t.same(await fromAlice.next(), { type: 'error', message: 'A private message needs "to": the name of a user' })
    alice.send({ type: 'private', to: 'bob' })
    t.match(await fromAlice.next(), { type: 'error', message: /"text"/ })
  })

  t.test('a user with two connections gets private messages on both, and is announced once', async (t) => {
    const bobAgain = await connect(`${example.wsUrl}/ws/chat?token=bob`)
    const fromBobAgain = inbox(bobAgain)
    t.same(await fromBobAgain.next(), { type: 'welcome', message: 'Welcome bob!', room: 'general' })

    alice.send({ type: 'private', to: 'bob', text: 'both tabs' })
    t.match(await fromBob.next(), { type: 'private', from: 'alice', text: 'both tabs' })
    t.match(await fromBobAgain.next(), { type: 'private', from: 'alice', text: 'both tabs' })

    // Closing one of bob's two connections is not announced: alice's next
    // message is her own typing notice, not "bob left the chat".
    const closed = bobAgain.closed()
    bobAgain.close()
    await closed
    alice.send({ type: 'typing' })
    t.same(await fromAlice.next(), { type: 'typing', room: 'general', user: 'alice' })
    t.same(await fromBob.next(), { type: 'typing', room: 'general', user: 'alice' })
  })

  t.test('join_room and leave_room are answered, and room chat stays in the room', async (t) => {
    alice.send({ type: 'join_room', room: 'dev' })
    t.same(await fromAlice.next(), { type: 'room_joined', room: 'dev' })

    alice.send({ type: 'chat', room: 'dev', text: 'dev only' })
    t.match(await fromAlice.next(), { type: 'chat', room: 'dev', user: 'alice', text: 'dev only' })

    alice.send({ type: 'leave_room', room: 'dev' })
    t.same(await fromAlice.next(), { type: 'room_left', room: 'dev' })

    // Bob is not in 'dev': his next message is this one, not 'dev only'.
    bob.send({ type: 'typing' })
    t.same(await fromBob.next(), { type: 'typing', room: 'general', user: 'bob' })
    t.same(await fromAlice.next(), { type: 'typing', room: 'general', user: 'bob' })
  })

  t.test('a client cannot write to a room it is not in, nor enter a user\'s private room', async (t) => {
    bob.send({ type: 'chat', room: 'dev', text: 'let me in' })
    t.same(await fromBob.next(), { type: 'error', message: 'You are not in room dev' })

    bob.send({ type: 'join_room', room: 'user:alice' })
    t.same(await fromBob.next(), { type: 'error', message: 'Room names starting with "user:" are reserved' })
    alice.send({ type: 'private', to: 'alice', text: 'note to self' })
    t.match(await fromAlice.next(), { type: 'private', from: 'alice', text: 'note to self' })
    // Bob did not get alice's private message: his next one is this error.
    bob.send({ type: 'typing', room: 'user:alice' })
    t.same(await fromBob.next(), { type: 'error', message: 'Room names starting with "user:" are reserved' })

    bob.send({ type: 'chat', text: '' })
    t.match(await fromBob.next(), { type: 'error', message: /"text"/ })
    bob.send({ type: 'dance' })
    t.same(await fromBob.next(), { type: 'error', message: 'Unknown message type' })
    bob.send('not json')
    t.match(await fromBob.next(), { type: 'error', code: 'INVALID_JSON' })
  })

  t.test('a client leaving is announced to the others', async (t) => {
    const closed = bob.closed()
    bob.close()
    await closed
    t.same(await fromAlice.next(), { type: 'system', message: 'bob left the chat' })
  })
})

t.test('chat: without a token the user is Anonymous; a name over 50 characters is refused', async (t) => {
  const example = await startExample(t, 'examples/chat/server.ts')
  const client = await connect(`${example.wsUrl}/ws/chat`)
  close(t, client)
  await client.waitFor(2)
  t.same(client.messages[0], { type: 'welcome', message: 'Welcome Anonymous!', room: 'general' })

  const error = await rejected(`${example.wsUrl}/ws/chat?token=${'x'.repeat(51)}`)
  t.match(error.message, /Unexpected server response: 400/, 'refused before the upgrade')
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
