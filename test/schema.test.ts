import t from 'tap'
import Fastify from 'fastify'
import { Type, TypeBoxValidatorCompiler, type TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { z } from 'zod'
import nexusRealtime from '../lib/index'
import { build, connect, listen, rawHandshake } from './helpers/server'

t.test('schema.message: an invalid message gets INVALID_MESSAGE with errors and never reaches onMessage', async (t) => {
  const app = await build(t)
  const handled: unknown[] = []
  app.ws('/ws', {
    schema: {
      message: {
        type: 'object',
        required: ['type', 'text'],
        properties: {
          type: { const: 'chat' },
          text: { type: 'string', minLength: 1, maxLength: 1000 }
        }
      }
    },
    onMessage: (socket, message) => {
      handled.push(message)
      socket.send(JSON.stringify({ ok: true }))
    }
  })
  const client = await connect(`${await listen(app)}/ws`)
  client.send({ type: 'chat', text: '' })
  client.send({ type: 'other' })
  client.send({ type: 'chat', text: 'hello' })
  await client.waitFor(3)
  t.same(handled, [{ type: 'chat', text: 'hello' }])
  t.match(client.messages[0], {
    type: 'error',
    code: 'INVALID_MESSAGE',
    message: 'Message does not match the schema',
    errors: [{ instancePath: '/text', keyword: 'minLength' }]
  })
  t.match(client.messages[1], { code: 'INVALID_MESSAGE', errors: [{ keyword: 'required' }] })
  t.same(client.messages[2], { ok: true })
  t.equal(app.getWebSocket().stats().invalidMessages, 2)
})

t.test('querystring, params and headers schemas answer 400 before the upgrade', async (t) => {
  const app = await build(t)
  let connects = 0
  app.ws('/ws/game/:id', {
    schema: {
      params: { type: 'object', properties: { id: { type: 'integer' } } },
      querystring: { type: 'object', required: ['name'], properties: { name: { type: 'string', minLength: 2 } } },
      headers: { type: 'object', properties: { 'x-version': { type: 'string', enum: ['1', '2'] } } }
    },
    onConnect: (socket, ctx) => {
      connects++
      socket.send(JSON.stringify({ id: ctx.params.id, name: ctx.query.name }))
    }
  })
  const base = await listen(app)
  for (const [path, headers] of [
    ['/ws/game/abc?name=ann', {}],
    ['/ws/game/1', {}],
    ['/ws/game/1?name=a', {}],
    ['/ws/game/1?name=ann', { 'x-version': '3' }]
  ] as const) {
    const answer = await rawHandshake(base, path, headers)
    t.equal(answer.status, 400, `${path} ${JSON.stringify(headers)} → 400`)
    t.equal(JSON.parse(answer.body).code, 'FST_ERR_VALIDATION')
  }
  t.equal(connects, 0)
  const client = await connect(`${base}/ws/game/7?name=ann`, { headers: { 'x-version': '2' } })
  await client.waitFor(1)
  t.same(client.messages, [{ id: 7, name: 'ann' }], 'params are coerced by the schema, as in any Fastify route')
})

t.test('TypeBox: the message schema is compiled with the instance validator compiler and types the message', async (t) => {
  const app = Fastify().withTypeProvider<TypeBoxTypeProvider>()
  app.setValidatorCompiler(TypeBoxValidatorCompiler)
  await app.register(nexusRealtime)
  t.teardown(() => app.close())
  const ChatMessage = Type.Object({
    type: Type.Literal('chat'),
    room: Type.Optional(Type.String()),
    text: Type.String({ minLength: 1, maxLength: 1000 })
  })
  const texts: string[] = []
  app.ws('/ws', {
    schema: { message: ChatMessage },
    onMessage: (socket, message) => {
      // `message` is typed from the schema: { type: 'chat', room?: string, text: string }
      const text: string = message.text
      texts.push(text)
      socket.send(JSON.stringify({ echo: text, room: message.room ?? 'general' }))
    }
  })
  const client = await connect(`${await listen(app)}/ws`)
  client.send({ type: 'chat', text: '' })
  client.send({ type: 'chat', text: 'typed', room: 'a' })
  await client.waitFor(2)
  t.equal(client.messages[0].code, 'INVALID_MESSAGE')
  t.ok(client.messages[0].errors.length > 0)
  t.same(client.messages[1], { echo: 'typed', room: 'a' })
  t.same(texts, ['typed'])
})

t.test("the seed's zod validation works as written inside onMessage", async (t) => {
  const app = await build(t)
  const ChatMessageSchema = z.object({
    type: z.literal('chat'),
    room: z.string().optional(),
    text: z.string().min(1).max(1000)
  })
  const JoinRoomSchema = z.object({
    type: z.literal('join_room'),
    room: z.string().min(1).max(50)
  })
  const MessageSchema = z.discriminatedUnion('type', [ChatMessageSchema, JoinRoomSchema])
  app.ws('/ws/validated', {
    onMessage: async (socket, message) => {
      const result = MessageSchema.safeParse(message)
      if (!result.success) {
        socket.send(JSON.stringify({
          type: 'error',
          message: 'Invalid message format',
          errors: result.error.errors
        }))
        return
      }
      const validatedMessage = result.data
      switch (validatedMessage.type) {
        case 'chat':
          socket.send(JSON.stringify({ type: 'chat', text: validatedMessage.text }))
          break
        case 'join_room':
          app.getWebSocket().joinRoom(validatedMessage.room, socket)
          socket.send(JSON.stringify({ type: 'room_joined', room: validatedMessage.room }))
          break
      }
    }
  })
  const client = await connect(`${await listen(app)}/ws/validated`)
  client.send({ type: 'chat', text: '' })
  client.send({ type: 'join_room', room: 'lobby' })
  client.send({ type: 'chat', text: 'hi' })
  await client.waitFor(3)
  t.match(client.messages[0], { type: 'error', message: 'Invalid message format', errors: [{ path: ['text'] }] })
  t.same(client.messages[1], { type: 'room_joined', room: 'lobby' })
  t.same(client.messages[2], { type: 'chat', text: 'hi' })
})

t.test('a validator that returns { value } replaces the message; { error } rejects it', async (t) => {
  const app = Fastify()
  app.setValidatorCompiler(() => (data: unknown) => {
    const text = (data as { text?: unknown }).text
    return typeof text === 'string' ? { value: { text: text.toUpperCase() } } : { error: new Error('text must be a string') }
  })
  await app.register(nexusRealtime)
  t.teardown(() => app.close())
  app.ws('/ws', {
    schema: { message: { any: 'schema' } },
    onMessage: (socket, message) => { socket.send(JSON.stringify(message)) }
  })
  const client = await connect(`${await listen(app)}/ws`)
  client.send({ text: 'loud' })
  client.send({ text: 1 })
  await client.waitFor(2)
  t.same(client.messages[0], { text: 'LOUD' })
  t.same(client.messages[1], { type: 'error', code: 'INVALID_MESSAGE', message: 'Message does not match the schema', errors: [{ message: 'text must be a string' }] })
})

t.test('an async validator (a promise of the result) is awaited; its rejection carries the errors', async (t) => {
  const app = Fastify()
  const validate = async (data: unknown): Promise<boolean> => {
    if ((data as { ok?: unknown }).ok === true) return true
    throw Object.assign(new Error('validation failed'), { errors: [{ instancePath: '/ok', message: 'must be true' }] })
  }
  // Fastify's type for a validator's result does not list a plain Promise.
  app.setValidatorCompiler(() => validate as never)
  await app.register(nexusRealtime)
  t.teardown(() => app.close())
  app.ws('/ws', {
    schema: { message: { $async: true } },
    onMessage: (socket, message) => { socket.send(JSON.stringify(message)) }
  })
  const client = await connect(`${await listen(app)}/ws`)
  client.send({ ok: false })
  client.send({ ok: true })
  await client.waitFor(2)
  t.same(client.messages[0], { type: 'error', code: 'INVALID_MESSAGE', message: 'Message does not match the schema', errors: [{ instancePath: '/ok', message: 'must be true' }] })
  t.same(client.messages[1], { ok: true })
})

t.test('errors of any shape reach the client as a list', async (t) => {
  const app = Fastify()
  app.setValidatorCompiler(() => ((data: { kind: string }) => {
    if (data.kind === 'string') return { error: 'bad input' }
    // An async validator that rejects with a plain Error, without `errors`.
    return Promise.reject(new Error('rejected'))
  }) as never)
  await app.register(nexusRealtime)
  t.teardown(() => app.close())
  app.ws('/ws', { schema: { message: {} }, onMessage: () => {} })
  const client = await connect(`${await listen(app)}/ws`)
  client.send({ kind: 'string' })
  client.send({ kind: 'reject' })
  await client.waitFor(2)
  t.same(client.messages.map((m) => m.errors), [[{ message: 'bad input' }], [{ message: 'rejected' }]])
})

t.test('a validator that throws rejects the message, tells onError, and the connection goes on', async (t) => {
  const app = Fastify()
  app.setValidatorCompiler(() => ((data: { boom?: boolean }) => {
    if (data.boom === true) throw new RangeError('Maximum call stack size exceeded')
    return true
  }) as never)
  await app.register(nexusRealtime)
  t.teardown(() => app.close())
  const errors: string[] = []
  app.ws('/ws', {
    schema: { message: {} },
    onMessage: (socket, message) => { socket.send(JSON.stringify(message)) },
    onError: (_socket, error) => { errors.push(error.message) }
  })
  const client = await connect(`${await listen(app)}/ws`)
  client.send({ boom: true })
  client.send({ ok: 1 })
  await client.waitFor(2)
  t.same(client.messages, [{ type: 'error', code: 'INVALID_MESSAGE', message: 'Message could not be validated' }, { ok: 1 }])
  t.same(errors, ['Maximum call stack size exceeded'])
})

t.test('a schema that is not an object is a route error', async (t) => {
  const app = await build(t)
  t.throws(() => app.ws('/ws', { schema: 'nope' as never }), { code: 'FST_NEXUS_INVALID_ROUTE' })
})
