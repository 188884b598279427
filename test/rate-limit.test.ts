import t from 'tap'
import { TokenBucket, Verdict } from '../lib/rate-limit'
import { build, connect, listen } from './helpers/server'
import { delay, until } from './helpers/wait'

t.test('excess messages get RATE_LIMITED and are dropped; the connection stays open', async (t) => {
  const app = await build(t, { rateLimit: { max: 5, windowMs: 10000 } })
  const handled: number[] = []
  app.ws('/ws', {
    onMessage: (socket, message: { n: number }) => {
      handled.push(message.n)
      socket.send(JSON.stringify({ ok: message.n }))
    }
  })
  const client = await connect(`${await listen(app)}/ws`)
  for (let n = 0; n < 8; n++) client.send({ n })
  await client.waitFor(8)
  t.same(handled, [0, 1, 2, 3, 4], 'the first max messages pass')
  const limited = client.messages.filter((m) => m.code === 'RATE_LIMITED')
  t.equal(limited.length, 3)
  t.same(limited[0], { type: 'error', code: 'RATE_LIMITED', message: 'Too many messages: at most 5 per 10000 ms' })
  t.equal(app.getWebSocket().stats().rateLimited, 3)
  t.equal(client.ws.readyState, client.ws.OPEN)
})

t.test('more than 2 × max in one window closes the connection with 1008', async (t) => {
  const app = await build(t)
  let closeCode = 0
  let handled = 0
  app.ws('/ws', {
    rateLimit: { max: 10, windowMs: 60000 },
    onMessage: () => { handled++ },
    onClose: (_socket, _ctx, code) => { closeCode = code }
  })
  const client = await connect(`${await listen(app)}/ws`)
  for (let n = 0; n < 50; n++) client.send({ n })
  const { code, reason } = await client.closed()
  t.equal(code, 1008)
  t.equal(reason, 'Rate limit exceeded')
  await until(() => closeCode !== 0)
  t.equal(closeCode, 1008)
  t.equal(handled, 10)
})

t.test('tokens refill over time, so a steady client within the limit is never limited', async (t) => {
  const app = await build(t)
  let handled = 0
  app.ws('/ws', {
    rateLimit: { max: 4, windowMs: 200 },
    onMessage: () => { handled++ }
  })
  const client = await connect(`${await listen(app)}/ws`)
  for (let n = 0; n < 12; n++) {
    client.send({ n })
    await delay(60)
  }
  await until(() => handled === 12)
  t.same(client.messages, [], 'no RATE_LIMITED frame')
})

t.test('a route can turn the plugin rate limit off', async (t) => {
  const app = await build(t, { rateLimit: { max: 1, windowMs: 60000 } })
  let handled = 0
  app.ws('/ws', { rateLimit: false, onMessage: () => { handled++ } })
  const client = await connect(`${await listen(app)}/ws`)
  for (let n = 0; n < 30; n++) client.send({ n })
  await until(() => handled === 30)
  t.equal(client.ws.readyState, client.ws.OPEN)
})

t.test('the token bucket', async (t) => {
  const bucket = new TokenBucket({ max: 2, windowMs: 1000 }, 0)
  t.equal(bucket.take(0), Verdict.ALLOW)
  t.equal(bucket.take(0), Verdict.ALLOW)
  t.equal(bucket.take(0), Verdict.DROP)
  t.equal(bucket.take(0), Verdict.DROP)
  t.equal(bucket.take(0), Verdict.CLOSE, 'the fifth message in one window is past 2 × max')
  t.equal(bucket.take(500), Verdict.ALLOW, 'half a window refills one token')
  t.equal(bucket.take(1000), Verdict.ALLOW, 'a new window starts the count again')
  t.equal(bucket.take(5000), Verdict.ALLOW)
  t.equal(bucket.take(5000), Verdict.ALLOW, 'never more than max tokens are kept')
  t.equal(bucket.take(5000), Verdict.DROP)
})
