import t from 'tap'
import { until as eventually } from './helpers/wait'
import { REDIS_URL, after, redisClient, startInstance, subscribers, uniquePrefix, withRedis, type Instance } from './helpers/redis'

// Instances of test/fixtures/redis-instance.ts, each in its own process,
// sharing rooms through the Redis at REDIS_URL.

const range = (count: number): number[] => Array.from({ length: count }, (_, i) => i)

function noUnhandledErrors (t: tap.Test, instances: Instance[]): void {
  for (const instance of instances) t.notMatch(instance.stderr(), /UNHANDLED|UNCAUGHT|Unhandled error event/, `${instance.name}: no unhandled error`)
}

withRedis(t, 'instances in separate processes share rooms over Redis', async (t) => {
  t.test('1,000 broadcasts from A arrive at B\'s clients in the order sent, and at A\'s own', async (t) => {
    const prefix = uniquePrefix('order')
    const [a, b] = await Promise.all([startInstance(t, 'A', { REDIS_URL, PREFIX: prefix }), startInstance(t, 'B', { REDIS_URL, PREFIX: prefix })])
    const redis = redisClient(t)
    const remote = await Promise.all([b.join(['feed']), b.join(['feed'])])
    const local = await a.join(['feed'])
    await eventually(async () => (await subscribers(redis, `${prefix}:room:feed`))[0] === 2, 5000, 'both instances subscribed to the room')

    const { written } = await a.post('/broadcast', { steps: [{ to: 'feed', data: { type: 'tick' } }], repeat: 1000 })
    t.equal(written, 1000, 'broadcast() counts A\'s own socket only')
    for (const client of [...remote, local]) {
      await client.waitFor(1001, 20000)
      t.same(after(client).map((message) => message.n), range(1000), 'every message, once, in order')
    }
    t.same(after(remote[0]), after(local), 'B\'s clients got what A\'s client got')
    const stats = await b.get('/stats')
    t.equal(stats.redisReceived, 1000)
    t.equal(stats.redisDelivered, 2000)
    t.equal((await a.get('/stats')).redisPublished, 1000)
    noUnhandledErrors(t, [a, b])
  })

  t.test('order holds across room, multi-room and broadcastAll messages of one instance', async (t) => {
    const prefix = uniquePrefix('mixed')
    const [a, b] = await Promise.all([startInstance(t, 'A', { REDIS_URL, PREFIX: prefix }), startInstance(t, 'B', { REDIS_URL, PREFIX: prefix })])
    const redis = redisClient(t)
    const both = await b.join(['r1', 'r2'])
    const none = await b.join()
    await eventually(async () => (await subscribers(redis, `${prefix}:room:r1`))[0] === 1)

    await a.post('/broadcast', {
      steps: [{ to: 'r1', data: {} }, { to: ['r1', 'r2'], data: {} }, { to: null, data: {} }],
      repeat: 200
    })
    await both.waitFor(601, 20000)
    t.same(after(both).map((message) => message.n), range(600), 'a member of both rooms gets each message once, in order')
    await none.waitFor(201, 20000)
    t.same(after(none).map((message) => message.n), range(600).filter((n) => n % 3 === 2), 'a socket in no room gets broadcastAll only')
  })

  t.test('except by connection id reaches across instances; multi-room broadcasts reach each socket once', async (t) => {
    const prefix = uniquePrefix('except')
    const [a, b] = await Promise.all([startInstance(t, 'A', { REDIS_URL, PREFIX: prefix }), startInstance(t, 'B', { REDIS_URL, PREFIX: prefix })])
    const redis = redisClient(t)
    const x = await b.join(['r1', 'r2'])
    const y = await b.join(['r1'])
    const z = await a.join(['r1'])
    await eventually(async () => (await subscribers(redis, `${prefix}:room:r1`, `${prefix}:room:r2`)).join() === '2,1')

    await a.post('/broadcast', { steps: [{ to: ['r1', 'r2'], data: { step: 1 }, except: [x.id] }] })
    await a.post('/broadcast', { steps: [{ to: 'r1', data: { step: 2 }, except: [z.id, y.id] }] })
    await a.post('/broadcast', { steps: [{ to: null, data: { step: 3 }, except: [y.id, 'someone-elsewhere'] }] })
    await a.post('/broadcast', { steps: [{ to: ['r2', 'r1', 'r2'], data: { step: 4 } }] })
    await Promise.all([x.waitFor(4), y.waitFor(3), z.waitFor(4)])
    // A last marker: anything still in flight would arrive before it.
    await a.post('/broadcast', { steps: [{ to: null, data: { step: 5 } }] })
    await Promise.all([x.waitFor(5), y.waitFor(4), z.waitFor(5)])
    t.same(after(x).map((message) => message.step), [2, 3, 4, 5])
    t.same(after(y).map((message) => message.step), [1, 4, 5])
    t.same(after(z).map((message) => message.step), [1, 3, 4, 5])
  })

  t.test('cluster-wide queries add up every instance, and answer with what came in time when one hangs', async (t) => {
    const prefix = uniquePrefix('fetch')
    const env = { REDIS_URL, PREFIX: prefix }
    const [a, b, c] = await Promise.all([startInstance(t, 'A', env), startInstance(t, 'B', env), startInstance(t, 'C', env)])
    const redis = redisClient(t)
    await a.join(['r1'])
    await a.join(['r1'])
    await b.join(['r1', 'r2'])
    await c.join()
    await eventually(async () => (await subscribers(redis, `${prefix}:query`))[0] === 3)

    const rooms = await a.get('/fetch?what=rooms')
    t.same(rooms.value, ['r1', 'r2'])
    t.ok(rooms.elapsed < 1000, `answered as soon as every instance did (${rooms.elapsed} ms)`)
    t.equal((await a.get('/fetch?what=size&room=r1')).value, 3)
    t.equal((await c.get('/fetch?what=size&room=r2')).value, 1)
    t.equal((await b.get('/fetch?what=size&room=nowhere')).value, 0)
    t.equal((await c.get('/fetch?what=connections')).value, 4)

    // A stopped process keeps its Redis connection, subscribed, but never answers.
    c.child.kill('SIGSTOP')
    t.teardown(() => c.child.kill('SIGCONT'))
    const partial = await a.get('/fetch?what=connections&timeout=500')
    t.equal(partial.value, 3, 'the instances that answered')
    t.ok(partial.elapsed >= 450 && partial.elapsed < 3000, `after the timeout (${partial.elapsed} ms), not a hang`)
    t.equal((await a.get('/stats')).redisQueryTimeouts, 1)
    c.child.kill('SIGCONT')

    // A process that is gone is no longer subscribed: no wait at all.
    b.child.kill('SIGKILL')
    await eventually(async () => (await subscribers(redis, `${prefix}:query`))[0] === 2)
    const fast = await a.get('/fetch?what=size&room=r1&timeout=5000')
    t.equal(fast.value, 2)
    t.ok(fast.elapsed < 1000, `${fast.elapsed} ms`)
    noUnhandledErrors(t, [a, c])
  })

  t.test('an instance stopped with app.close() quits its Redis connections and its process exits by itself', async (t) => {
    const prefix = uniquePrefix('exit')
    const a = await startInstance(t, 'A', { REDIS_URL, PREFIX: prefix })
    const redis = redisClient(t)
    await a.join(['r1'])
    t.same(await subscribers(redis, `${prefix}:all`, `${prefix}:room:r1`), [1, 1])
    const started = Date.now()
    t.equal(await a.stop(), 0, 'exit code 0, not killed')
    t.ok(Date.now() - started < 8000, `exited ${Date.now() - started} ms after SIGTERM`)
    t.ok(a.lines.some((line) => line.closed === true), 'app.close() resolved')
    t.same(await subscribers(redis, `${prefix}:all`, `${prefix}:room:r1`), [0, 0])
    noUnhandledErrors(t, [a])
  })
})
