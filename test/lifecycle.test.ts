import t from 'tap'
import Fastify from 'fastify'
import { once } from 'node:events'
import WebSocket from 'ws'
import nexusRealtime from '../lib/index'
import { build, connect, listen, rawHandshake, rejected } from './helpers/server'
import { delay, until } from './helpers/wait'
import { logCapture } from './helpers/logs'

const unhandled: unknown[] = []
process.on('unhandledRejection', (reason) => { unhandled.push(reason) })
t.teardown(() => {
  if (unhandled.length > 0) throw new Error(`unhandled rejections: ${unhandled.map(String).join(', ')}`)
})

t.test('50 messages sent on open while an async onConnect awaits 200 ms all arrive in order', async (t) => {
  const app = await build(t)
  const received: number[] = []
  let connected = false
  app.ws('/ws', {
    onConnect: async () => {
      await delay(200)
      connected = true
    },
    onMessage: async (socket, message: { n: number }) => {
      if (!connected) t.fail('onMessage ran before onConnect settled')
      received.push(message.n)
      if (received.length === 50) socket.send('done')
    }
  })
  const base = await listen(app)
  const client = await connect(`${base}/ws`)
  for (let n = 0; n < 50; n++) client.send({ n })
  await client.waitFor(1)
  t.same(received, Array.from({ length: 50 }, (_, n) => n))
})

t.test('an onMessage that awaits random delays never overlaps itself', async (t) => {
  const app = await build(t)
  let running = 0
  let maxRunning = 0
  const order: number[] = []
  app.ws('/ws', {
    onMessage: async (socket, message: { n: number }) => {
      running++
      maxRunning = Math.max(maxRunning, running)
      await delay(Math.random() * 8)
      order.push(message.n)
      running--
      if (order.length === 40) socket.send('done')
    }
  })
  const client = await connect(`${await listen(app)}/ws`)
  for (let n = 0; n < 40; n++) client.send({ n })
  await client.waitFor(1)
  t.equal(maxRunning, 1, 'never more than one onMessage at a time')
  t.same(order, Array.from({ length: 40 }, (_, n) => n))
})

t.test('beforeConnect runs before onConnect, both before messages, with rooms usable', async (t) => {
  const app = await build(t)
  const calls: string[] = []
  app.ws('/ws', {
    beforeConnect: async (socket, ctx) => {
      calls.push('beforeConnect')
      app.getWebSocket().joinRoom('early', socket)
      ctx.metadata.step = 1
    },
    onConnect: async (_socket, ctx) => {
      calls.push(`onConnect:${ctx.metadata.step}:${app.getWebSocket().roomSize('early')}`)
    },
    onMessage: async (socket) => {
      calls.push('onMessage')
      socket.send('ok')
    }
  })
  const client = await connect(`${await listen(app)}/ws`)
  client.send({ hi: 1 })
  await client.waitFor(1)
  t.same(calls, ['beforeConnect', 'onConnect:1:1', 'onMessage'])
})

for (const phase of ['beforeConnect', 'onConnect'] as const) {
  t.test(`an error in ${phase} goes to onError, closes with 1011 and drops queued messages`, async (t) => {
    const app = await build(t)
    const errors: Error[] = []
    let onConnectRan = false
    let messages = 0
    let closes = 0
    let closeCode = 0
    const boom = new Error(`${phase} failed`)
    app.ws('/ws', {
      [phase]: async () => {
        await delay(50)
        throw boom
      },
      ...(phase === 'beforeConnect' ? { onConnect: () => { onConnectRan = true } } : {}),
      onMessage: () => { messages++ },
      onError: async (socket, error) => {
        errors.push(error)
        // The socket is still open while onError runs: it may tell the client.
        socket.send(JSON.stringify({ type: 'error', message: 'Failed to setup connection' }))
        await delay(100)
      },
      onClose: (_socket, _ctx, code) => {
        closes++
        closeCode = code
      }
    })
    const client = await connect(`${await listen(app)}/ws`)
    client.send({ queued: true })
    await client.waitFor(1)
    // Sent after the failure, while onError still runs: ignored as well.
    client.send({ late: true })
    const { code } = await client.closed()
    t.equal(code, 1011)
    t.same(client.messages, [{ type: 'error', message: 'Failed to setup connection' }])
    t.same(errors, [boom])
    t.equal(onConnectRan, false)
    t.equal(messages, 0, 'queued messages are dropped')
    await until(() => closes === 1)
    t.equal(closeCode, 1011)
    t.equal(app.getWebSocket().stats().errors, 1)
  })
}

t.test('an error in onMessage reaches onError and the connection stays open', async (t) => {
  const app = await build(t)
  const errors: string[] = []
  app.ws('/ws', {
    onMessage: async (socket, message: { fail?: boolean, n: number }) => {
      if (message.fail) throw new Error(`bad ${message.n}`)
      socket.send(JSON.stringify({ ok: message.n }))
    },
    onError: async (_socket, error) => {
      await delay(10)
      errors.push(error.message)
    }
  })
  const client = await connect(`${await listen(app)}/ws`)
  client.send({ n: 1, fail: true })
  client.send({ n: 2 })
  client.send({ n: 3, fail: true })
  client.send({ n: 4 })
  await client.waitFor(2)
  t.same(client.messages, [{ ok: 2 }, { ok: 4 }])
  t.same(errors, ['bad 1', 'bad 3'], 'onError settles before the next message runs')
  t.equal(client.ws.readyState, WebSocket.OPEN)
})

t.test('without onError, handler errors go to the request logger', async (t) => {
  const { stream, lines } = logCapture()
  const app = Fastify({ logger: { level: 'error', stream } })
  await app.register(nexusRealtime)
  t.teardown(() => app.close())
  app.ws('/ws', {
    onMessage: async () => { throw new Error('handler exploded') }
  })
  const client = await connect(`${await listen(app)}/ws`)
  client.send({})
  await until(() => lines.some((line) => line.err?.message === 'handler exploded'))
  const line = lines.find((line) => line.err?.message === 'handler exploded')
  t.equal(line.level, 50)
  t.type(line.connectionId, 'string', 'the log line carries the connection id')
  t.type(line.reqId, 'string', 'and the request id')
  t.equal(client.ws.readyState, WebSocket.OPEN)
})

t.test('an onError that throws, and non-Error throws, are logged and never escape', async (t) => {
  const { stream, lines } = logCapture()
  const app = Fastify({ logger: { level: 'error', stream } })
  await app.register(nexusRealtime)
  t.teardown(() => app.close())
  const seen: Error[] = []
  app.ws('/ws', {
    onMessage: async () => {
      // eslint-disable-next-line no-throw-literal -- the case under test: a handler that throws a non-Error
      throw 'plain string'
    },
    onError: async (_socket, error) => {
      seen.push(error)
      throw new Error('onError itself failed')
    }
  })
  const client = await connect(`${await listen(app)}/ws`)
  client.send({})
  await until(() => lines.some((line) => line.err?.message === 'onError itself failed'))
  t.equal(seen.length, 1)
  t.ok(seen[0] instanceof Error, 'a non-Error throw reaches onError as an Error')
  t.match(seen[0].message, 'plain string')
  t.equal(client.ws.readyState, WebSocket.OPEN)
})

t.test('onClose runs exactly once, after onConnect settled, with code and reason', async (t) => {
  const app = await build(t)
  const events: string[] = []
  let closeArgs: [number, string] | undefined
  app.ws('/ws', {
    onConnect: async () => {
      events.push('onConnect:start')
      await delay(150)
      events.push('onConnect:end')
    },
    onClose: async (_socket, _ctx, code, reason) => {
      events.push('onClose')
      closeArgs = [code, reason.toString()]
    }
  })
  const client = await connect(`${await listen(app)}/ws`)
  client.ws.close(4000, 'bye')
  await until(() => events.includes('onClose'))
  await delay(50)
  t.same(events, ['onConnect:start', 'onConnect:end', 'onClose'])
  t.same(closeArgs, [4000, 'bye'])
})

t.test('messages that arrived before a close still run, then onClose', async (t) => {
  const app = await build(t)
  const events: string[] = []
  app.ws('/ws', {
    onMessage: async (_socket, message: { n: number }) => {
      await delay(20)
      events.push(`message:${message.n}`)
    },
    onClose: () => { events.push('onClose') }
  })
  const client = await connect(`${await listen(app)}/ws`)
  client.send({ n: 1 })
  client.send({ n: 2 })
  client.send({ n: 3 })
  client.close()
  await until(() => events.includes('onClose'))
  t.same(events, ['message:1', 'message:2', 'message:3', 'onClose'])
})

t.test('an onConnect that closes the socket itself drops the queued messages', async (t) => {
  const app = await build(t)
  let messages = 0
  let closes = 0
  app.ws('/ws', {
    onConnect: async (socket, ctx) => {
      await delay(50)
      if (!ctx.query.game) {
        socket.send(JSON.stringify({ type: 'error', message: 'Game ID required' }))
        socket.close()
      }
    },
    onMessage: () => { messages++ },
    onClose: () => { closes++ }
  })
  const client = await connect(`${await listen(app)}/ws`)
  client.send({ type: 'move' })
  await client.closed()
  await until(() => closes === 1)
  t.same(client.messages, [{ type: 'error', message: 'Game ID required' }])
  t.equal(messages, 0)
})

t.test('socket errors reach onError: invalid UTF-8 closes with 1007', async (t) => {
  const app = await build(t)
  const errors: Array<Error & { code?: string }> = []
  let closeCode = 0
  app.ws('/ws', {
    onError: (_socket, error) => { errors.push(error) },
    onClose: (_socket, _ctx, code) => { closeCode = code }
  })
  const client = await connect(`${await listen(app)}/ws`)
  client.ws.send(Buffer.from([0xc3, 0x28]), { binary: false })
  const { code } = await client.closed()
  t.equal(code, 1007)
  await until(() => closeCode !== 0)
  t.equal(closeCode, 1007, 'onClose sees the code the server sent')
  t.equal(errors.length, 1)
  t.equal(errors[0].code, 'WS_ERR_INVALID_UTF8')
})

t.test('a client faster than onMessage is paused, then every message is delivered in order', async (t) => {
  const app = await build(t)
  let release: () => void = () => {}
  const gate = new Promise<void>((resolve) => { release = resolve })
  const received: number[] = []
  let serverSocket: WebSocket | undefined
  app.ws('/ws', {
    onConnect: (socket) => { serverSocket = socket },
    onMessage: async (socket, message: { n: number }) => {
      await gate
      received.push(message.n)
      if (received.length === 3000) socket.send('done')
    }
  })
  const client = await connect(`${await listen(app)}/ws`)
  for (let n = 0; n < 3000; n++) client.send({ n })
  await until(() => serverSocket?.isPaused === true)
  t.pass('the socket is paused while the queue is full')
  release()
  await client.waitFor(1, 10000)
  t.equal(received.length, 3000)
  t.ok(received.every((n, i) => n === i), 'in order')
  t.equal(serverSocket?.isPaused, false, 'resumed once the queue is worked off')
})

t.test('auth', async (t) => {
  t.test('a rejected auth answers 401 and onConnect never runs', async (t) => {
    const app = await build(t)
    let connects = 0
    app.ws('/ws', {
      auth: async () => { throw new Error('Token required') },
      onConnect: () => { connects++ }
    })
    const error = await rejected(`${await listen(app)}/ws`)
    t.equal(error.message, 'Unexpected server response: 401')
    t.equal(connects, 0)
    t.equal(app.getWebSocket().connections, 0)
  })

  t.test("the error's own 4xx/5xx statusCode is kept, others become 401", async (t) => {
    const app = await build(t)
    app.ws('/ws', {
      auth: async (ctx) => {
        const status = Number(ctx.query.status)
        if (status === 0) {
          // eslint-disable-next-line no-throw-literal -- a non-Error rejection must still answer 401
          throw 'nope'
        }
        if (status === 1) {
          // eslint-disable-next-line no-throw-literal -- only an Error can carry the app's own status
          throw { statusCode: 403 }
        }
        throw Object.assign(new Error('rejected'), { statusCode: status })
      }
    })
    const base = await listen(app)
    for (const [status, expected] of [[403, 403], [429, 429], [503, 503], [200, 401], [302, 401], [0, 401], [1, 401]]) {
      const error = await rejected(`${base}/ws?status=${status}`)
      t.equal(error.message, `Unexpected server response: ${expected}`, `statusCode ${status} → ${expected}`)
    }
  })

  t.test("the answer's body is Fastify's error JSON and the socket is ended", async (t) => {
    const app = await build(t)
    app.ws('/ws', {
      auth: () => { throw Object.assign(new Error('Token expired'), { statusCode: 403 }) }
    })
    const answer = await rawHandshake(await listen(app), '/ws')
    t.equal(answer.status, 403)
    t.match(answer.head, /content-type: application\/json/i)
    t.same(JSON.parse(answer.body), { statusCode: 403, error: 'Forbidden', message: 'Token expired' })
  })

  t.test('an error without a status of its own never shows its message: a bare 401 whose cause is the error', async (t) => {
    const app = await build(t)
    let cause: unknown
    app.setErrorHandler((error: Error & { statusCode?: number }, _request, reply) => {
      cause = error.cause
      return reply.code(error.statusCode ?? 500).send({ code: (error as { code?: string }).code })
    })
    app.ws('/ws', {
      auth: () => { throw new Error('connect ECONNREFUSED 10.0.0.5:5432') }
    })
    const answer = await rawHandshake(await listen(app), '/ws')
    t.equal(answer.status, 401)
    t.same(JSON.parse(answer.body), { code: 'FST_NEXUS_UNAUTHORIZED' })
    t.equal((cause as Error).message, 'connect ECONNREFUSED 10.0.0.5:5432', "the app's error handler sees the original as cause")
  })

  t.test('with the default error handler the body is generic', async (t) => {
    const app = await build(t)
    app.ws('/ws', { auth: () => { throw new TypeError("Cannot read properties of undefined (reading 'id')") } })
    const answer = await rawHandshake(await listen(app), '/ws')
    t.equal(answer.status, 401)
    t.same(JSON.parse(answer.body), { statusCode: 401, code: 'FST_NEXUS_UNAUTHORIZED', error: 'Unauthorized', message: 'Unauthorized' })
  })

  t.test("auth's return value is ctx.user, seen by every handler", async (t) => {
    const app = await build(t)
    const users: unknown[] = []
    app.ws<{ user: { name: string } }>('/ws', {
      auth: async (ctx) => {
        t.equal(ctx.user, undefined)
        t.equal(ctx.path, '/ws')
        t.equal(ctx.query.token, 'alice')
        t.equal(ctx.headers['x-test'], 'yes')
        return { name: String(ctx.query.token) }
      },
      onConnect: (socket, ctx) => {
        users.push(ctx.user)
        socket.send(JSON.stringify({ type: 'authenticated', user: ctx.user }))
      },
      onMessage: (_socket, _message, ctx) => { users.push(ctx.user) },
      onClose: (_socket, ctx) => { users.push(ctx.user) }
    })
    const client = await connect(`${await listen(app)}/ws?token=alice`, { headers: { 'x-test': 'yes' } })
    await client.waitFor(1)
    t.same(client.messages[0], { type: 'authenticated', user: { name: 'alice' } })
    client.send({})
    client.close()
    await until(() => users.length === 3)
    t.same(users, [{ name: 'alice' }, { name: 'alice' }, { name: 'alice' }])
  })

  t.test('a plain HTTP GET on a ws route gets 404 and does not run auth', async (t) => {
    const app = await build(t)
    let calls = 0
    app.ws('/ws', { auth: () => { calls++ } })
    const response = await app.inject('/ws')
    t.equal(response.statusCode, 404)
    t.equal(calls, 0)
  })

  t.test('auth works through injectWS', async (t) => {
    const app = await build(t)
    app.ws('/ws', {
      auth: (ctx) => {
        if (ctx.headers.authorization !== 'Bearer good') throw new Error('Invalid token')
        return { id: 1 }
      },
      onMessage: (socket, message, ctx) => { socket.send(JSON.stringify({ message, user: ctx.user })) }
    })
    await app.ready()
    await t.rejects(app.injectWS('/ws', { headers: { authorization: 'Bearer bad' } }), { message: 'Unexpected server response: 401' })
    const ws = await app.injectWS('/ws', { headers: { authorization: 'Bearer good' } })
    ws.send(JSON.stringify({ hi: true }))
    const [data] = await once(ws, 'message')
    t.same(JSON.parse(data.toString()), { message: { hi: true }, user: { id: 1 } })
    ws.terminate()
  })
})

t.test('an error in onClose reaches onError', async (t) => {
  const app = await build(t)
  const errors: string[] = []
  app.ws('/ws', {
    onClose: async () => { throw new Error('cleanup failed') },
    onError: (_socket, error) => { errors.push(error.message) }
  })
  const client = await connect(`${await listen(app)}/ws`)
  client.close()
  await until(() => errors.length === 1)
  t.same(errors, ['cleanup failed'])
})

t.test('errors of sockets of plain @fastify/websocket routes are logged and those sockets terminated', async (t) => {
  const { stream, lines } = logCapture()
  const app = Fastify({ logger: { level: 'error', stream } })
  await app.register(nexusRealtime)
  t.teardown(() => app.close())
  app.get('/raw', { websocket: true }, () => {})
  const client = await connect(`${await listen(app)}/raw`)
  client.ws.send(Buffer.from([0xc3, 0x28]), { binary: false })
  const { code } = await client.closed()
  t.ok(code === 1007 || code === 1006, `closed (${code})`)
  await until(() => lines.some((line) => line.msg === 'websocket error'))
  t.equal(lines.find((line) => line.msg === 'websocket error').err.code, 'WS_ERR_INVALID_UTF8')
})

t.test('synchronous connect handlers: the same order, and a synchronous throw closes with 1011', async (t) => {
  const app = await build(t)
  const calls: string[] = []
  app.ws('/sync', {
    beforeConnect: (_socket, ctx) => { calls.push('beforeConnect'); ctx.metadata.ready = true },
    onConnect: (socket, ctx) => { calls.push(`onConnect:${String(ctx.metadata.ready)}`); socket.send('hi') },
    onMessage: (socket) => { calls.push('onMessage'); socket.send('ok') }
  })
  const errors: string[] = []
  app.ws('/throws', {
    beforeConnect: () => {},
    onConnect: () => { throw new Error('sync failure') },
    onMessage: () => { calls.push('never') },
    onError: (_socket, error) => { errors.push(error.message) }
  })
  const base = await listen(app)
  const client = await connect(`${base}/sync`)
  client.send({})
  await client.waitFor(2)
  t.same(calls, ['beforeConnect', 'onConnect:true', 'onMessage'])
  t.same(client.messages, ['hi', 'ok'])

  const failing = await connect(`${base}/throws`)
  failing.send({})
  t.equal((await failing.closed()).code, 1011)
  t.same(errors, ['sync failure'])
  t.notOk(calls.includes('never'))
})
