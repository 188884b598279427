import t from 'tap'
import { execFileSync } from 'node:child_process'
import { redisAdapter } from '../lib/adapters/redis'
import { delay, until as eventually } from './helpers/wait'
import { RedisServer, after, messagesOf, node, redisClient, startInstance, subscribers, uniquePrefix } from './helpers/redis'
import type { Client } from './helpers/server'

// This file starts a redis-server of its own (not the one at REDIS_URL), so
// that it can kill it mid-traffic and start it again on the same port.

function hasRedisServer (): boolean {
  try {
    execFileSync('redis-server', ['--version'], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

/** The `n`s of the messages a client got from one sender, in arrival order. */
const from = (client: Client, sender: string): number[] => after(client).filter((message) => message.from === sender).map((message) => message.n)

/** Whether `values` is strictly increasing: nothing twice, nothing out of order. */
const increasing = (values: number[]): boolean => values.every((value, i) => i === 0 || value > values[i - 1])

const NAME = 'Redis killed mid-traffic and restarted'
if (!hasRedisServer() && process.env.CI === 'true') {
  t.fail(`${NAME}: redis-server is not on the PATH, and CI=true`)
} else {
  t.test(NAME, { skip: hasRedisServer() ? false : 'redis-server is not on the PATH' }, async (t) => {
    const unhandled: unknown[] = []
    const onUnhandled = (reason: unknown): void => { unhandled.push(reason) }
    process.on('unhandledRejection', onUnhandled)
    t.teardown(() => { process.off('unhandledRejection', onUnhandled) })

    const server = await RedisServer.start(t)
    const prefix = uniquePrefix('failover')
    // A runs in this process, B in its own.
    const a = await node(t, redisAdapter({ url: server.url }, { prefix }))
    const b = await startInstance(t, 'B', { REDIS_URL: server.url, PREFIX: prefix })
    const onA = await a.join(['feed'])
    const onB = await b.join(['feed'])
    const probe = redisClient(t, server.url)
    await eventually(async () => (await subscribers(probe, `${prefix}:room:feed`))[0] === 2)
    probe.disconnect()

    // Traffic from both sides, every 10 ms, for the whole test.
    const manager = a.app.getWebSocket()
    let sentA = 0
    let sentB = 0
    let bBusy = false
    const traffic = setInterval(() => {
      t.equal(manager.broadcast('feed', { from: 'A', n: sentA++ }), 1, 'broadcast never throws and reaches the local socket')
      if (bBusy) return
      bBusy = true
      b.post('/broadcast', { steps: [{ to: 'feed', data: { from: 'B', n: sentB++ } }] })
        .catch((err) => t.fail(err))
        .finally(() => { bBusy = false })
    }, 10)
    t.teardown(() => clearInterval(traffic))

    await eventually(() => from(onB, 'A').length >= 20 && from(onA, 'B').length >= 20, 5000, 'cross-instance traffic before the outage')

    await server.kill()
    const killedAt = Date.now()
    const beforeKillA = sentA
    await delay(1500)
    t.ok(sentA - beforeKillA > 50, 'A kept broadcasting while Redis was gone')
    t.ok(manager.stats().redisPublishErrors > 0, 'failed publishes are counted')
    t.equal(manager.stats().redisConnected, 0)

    await server.start()
    const restartedAt = Date.now()
    const receivedA = from(onB, 'A').length
    const receivedB = from(onA, 'B').length
    await eventually(() => from(onB, 'A').length > receivedA + 5 && from(onA, 'B').length > receivedB + 5, 10000, 'cross-instance delivery back')
    const back = Date.now() - restartedAt
    t.ok(back < 10000, `cross-instance delivery back ${back} ms after Redis restarted (down ${restartedAt - killedAt} ms)`)
    clearInterval(traffic)
    await eventually(() => !bBusy)

    // Let the last messages through: a marker from each side, sent after everything else.
    manager.broadcast('feed', { from: 'A', n: sentA++ })
    await b.post('/broadcast', { steps: [{ to: 'feed', data: { from: 'B', n: sentB++ } }] })
    await eventually(() => from(onA, 'A').length === sentA && from(onB, 'B').length === sentB, 5000, 'local delivery complete')
    await eventually(() => from(onB, 'A').at(-1) === sentA - 1, 5000, 'A\'s marker reached B')

    t.same(from(onA, 'A'), Array.from({ length: sentA }, (_, i) => i), 'A\'s socket got every local broadcast of A, in order, throughout')
    t.same(from(onB, 'B'), Array.from({ length: sentB }, (_, i) => i), 'B\'s socket got every local broadcast of B, in order, throughout')
    t.ok(increasing(from(onB, 'A')), 'what crossed from A to B crossed once and in order')
    t.ok(increasing(from(onA, 'B')), 'what crossed from B to A crossed once and in order')
    t.ok(from(onB, 'A').length < sentA, 'broadcasts during the outage reached A only (they are not queued)')

    await eventually(() => manager.stats().redisPublished + manager.stats().redisPublishErrors === sentA, 5000, 'every broadcast was either published or counted as failed')
    const stats = manager.stats()
    t.equal(stats.redisConnected, 1)
    t.equal(messagesOf(a.lines, 'Redis connection failed: broadcasts reach this instance only until Redis is back').length, 1, 'the outage was logged once')
    t.equal(messagesOf(a.lines, 'Redis connection restored').length, 1, 'and its end')
    t.equal(messagesOf(a.lines, 'Redis publish failed: this broadcast reached this instance only').length, 1, 'one line for the run of failed publishes')
    t.match(messagesOf(a.lines, 'Redis publish works again'), [{ failed: stats.redisPublishErrors }])
    t.same(unhandled, [], 'no unhandled rejection in this process')
    t.notMatch(b.stderr(), /UNHANDLED|UNCAUGHT|Unhandled error event/, 'none in B\'s process')
    t.equal(b.child.exitCode, null, 'B is still running')
  })
}
