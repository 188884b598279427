import t from 'tap'
import { connect as connectTcp } from 'node:net'
import { once } from 'node:events'
import { connect, rejected } from './helpers/server'
import { delay } from './helpers/wait'
import { printed, startExample } from './helpers/examples'

t.test('robust: auth rejects, onConnect joins, onMessage reports its own errors', async (t) => {
  const example = await startExample(t, 'examples/robust/server.ts')
  t.equal((await rejected(`${example.wsUrl}/ws/robust`)).message, 'Unexpected server response: 401', 'AUTH_REQUIRED')
  t.equal((await rejected(`${example.wsUrl}/ws/robust?token=nope`)).message, 'Unexpected server response: 401', 'INVALID_TOKEN')

  const client = await connect(`${example.wsUrl}/ws/robust?token=token-alice`)
  t.teardown(() => client.close())
  await client.waitFor(1)
  t.same(client.messages[0], { type: 'ready', room: 'main' })
  client.send({ text: 'no type' })
  client.send({ type: 'fail' })
  client.send('{not json')
  client.send({ type: 'note', text: 'ok' })
  await client.waitFor(5)
  t.same(client.messages.slice(1), [
    { type: 'error', message: 'Message type required' },
    { type: 'error', message: 'Cannot process fail for alice' },
    { type: 'error', code: 'INVALID_JSON', message: 'Message is not valid JSON' },
    { type: 'processed', of: 'note' }
  ])
})

t.test('heartbeat: a peer that stops answering pings is dropped; a live client stays', async (t) => {
  const example = await startExample(t, 'examples/heartbeat/server.ts', { HEARTBEAT_MS: '100' })
  const live = await connect(`${example.wsUrl}/ws/with-heartbeat`)
  t.teardown(() => live.close())
  await live.waitFor(1)
  t.same(live.messages[0], { type: 'welcome', heartbeatMs: 100 })

  const { port } = new URL(example.wsUrl)
  const silent = connectTcp(Number(port), '127.0.0.1')
  silent.on('error', () => {})
  silent.write('GET /ws/with-heartbeat HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n' +
    'Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n')
  await once(silent, 'data')
  silent.pause()
  await printed(example, 'with code 1006')
  t.pass('the silent peer was terminated and its onClose ran')
  silent.destroy()
  await delay(250)
  t.equal(live.ws.readyState, live.ws.OPEN, 'the client that answers pings is still connected')
})

t.test('rate-limited: the 101st message in a minute is dropped with RATE_LIMITED, past 200 the socket closes 1008', async (t) => {
  const example = await startExample(t, 'examples/rate-limited/server.ts')
  const client = await connect(`${example.wsUrl}/ws/rate-limited?userId=u1`)
  for (let n = 0; n < 101; n++) client.send({ n })
  await client.waitFor(101)
  t.equal(client.messages.filter((m) => m.type === 'ok').length, 100)
  t.same(client.messages.find((m) => m.type === 'error'), {
    type: 'error',
    code: 'RATE_LIMITED',
    message: 'Too many messages: at most 100 per 60000 ms'
  })
  t.same(client.messages[0], { type: 'ok', user: 'u1', n: 0 })
  const closed = client.closed()
  for (let n = 101; n < 260; n++) client.send({ n })
  t.equal((await closed).code, 1008)
})

t.test('validated: zod rejects bad messages, accepts good ones', async (t) => {
  const example = await startExample(t, 'examples/validated/server.ts')
  const client = await connect(`${example.wsUrl}/ws/validated`)
  t.teardown(() => client.close())
  client.send({ type: 'chat', text: '' })
  client.send({ type: 'join_room', room: 'lobby' })
  client.send({ type: 'chat', room: 'lobby', text: 'hello' })
  await client.waitFor(4)
  t.match(client.messages[0], { type: 'error', message: 'Invalid message format', errors: [{ path: ['text'], code: 'too_small' }] })
  t.same(client.messages[1], { type: 'room_joined', room: 'lobby' })
  t.same(client.messages.slice(2).sort((a, b) => a.type.localeCompare(b.type)), [
    { type: 'chat', text: 'hello' },
    { type: 'sent', length: 5 }
  ])
})
