import t from 'tap'
import { connect, rawHandshake } from './helpers/server'
import { startExample } from './helpers/examples'

t.test('typebox example: schema-checked query and messages', async (t) => {
  const example = await startExample(t, 'examples/typebox/server.ts')
  const missing = await rawHandshake(example.wsUrl, '/ws/chat')
  t.equal(missing.status, 400, 'a handshake without ?token= is answered 400 before the upgrade')

  const ann = await connect(`${example.wsUrl}/ws/chat?token=ann`)
  t.teardown(() => ann.close())
  ann.send({ type: 'chat', text: '' })
  ann.send({ type: 'shout', text: 'x' })
  ann.send({ type: 'join_room', room: 'lobby' })
  ann.send({ type: 'chat', room: 'lobby', text: 'hello' })
  await ann.waitFor(4)
  t.match(ann.messages[0], { type: 'error', code: 'INVALID_MESSAGE', message: 'Message does not match the schema' })
  t.match(ann.messages[1], { type: 'error', code: 'INVALID_MESSAGE' })
  t.same(ann.messages[2], { type: 'room_joined', room: 'lobby' })
  t.same(ann.messages[3], { type: 'chat', user: 'ann', text: 'hello' })
})
