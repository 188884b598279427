import t from 'tap'
import { existsSync } from 'node:fs'
import { Cluster, Redis } from 'ioredis'
import { clusterSupported, keySlot, RedisCluster, type ClusterMaster, type ClusterNodeAddress } from './helpers/redis-cluster'
import { until } from './helpers/wait'

// The harness of test/helpers/redis-cluster.ts: a real Redis Cluster of
// local redis-server processes, which a test can crash and watch fail over.

t.setTimeout(120_000)

t.test('keySlot is Redis\' CRC16 keyslot, hash tags honoured', async (t) => {
  t.equal(keySlot('foo'), 12182)
  t.equal(keySlot('123456789'), 12739, 'CRC16-XMODEM check value 0x31C3, modulo 16384')
  t.equal(keySlot(Buffer.from('foo')), 12182, 'a Buffer hashes as its bytes')
  t.equal(keySlot('{user1000}.following'), keySlot('{user1000}.followers'), 'one hash tag, one slot')
  t.equal(keySlot('{user1000}.following'), keySlot('user1000'), 'only the tag is hashed')
  t.equal(keySlot('foo{}{bar}'), keySlot(Buffer.from('foo{}{bar}')), 'an empty first tag: the whole key')
  t.not(keySlot('foo{}{bar}'), keySlot('bar'), 'an empty first tag: not the second tag')
  t.equal(keySlot('foo{{bar}}zap'), keySlot('{bar'), 'the tag runs from the first { to the next }')
  t.equal(keySlot(''), 0)
})

/** A plain connection to one node, closed when the test ends. */
function plain (t: tap.Test, node: ClusterNodeAddress): Redis {
  const redis = new Redis({ host: node.host, port: node.port, maxRetriesPerRequest: 1 })
  redis.on('error', () => {})
  t.teardown(() => { redis.disconnect() })
  return redis
}

/** A key whose slot is the first of this range. */
function keyIn (first: number, last: number, prefix = 'key'): string {
  for (let n = 0; ; n++) {
    const slot = keySlot(`${prefix}:${n}`)
    if (first <= slot && slot <= last) return `${prefix}:${n}`
  }
}

t.test('start() refuses fewer than 3 masters before starting anything', async (t) => {
  await t.rejects(RedisCluster.start({ masters: 2 }), /at least 3 masters/)
})

t.test('a local Redis Cluster: slots, sharded pub/sub, failover, rejoin', async (t) => {
  if (!(await clusterSupported())) {
    if (process.env.CI === 'true') t.fail('redis-server/redis-cli 7 or later are missing, and CI=true: the cluster tests must run in CI')
    else t.plan(0, 'no redis-server and redis-cli of version 7 or later on this machine')
    return
  }

  let began = Date.now()
  const cluster = await RedisCluster.startFor(t)
  t.comment(`start() took ${Date.now() - began} ms`)
  t.equal(cluster.nodes.length, 6, '3 masters × (1 + 1 replica)')

  const masters = await cluster.masters()
  t.equal(masters.length, 3, '3 masters')
  const ranges = masters.flatMap(({ slots }) => slots).sort((a, b) => a[0] - b[0])
  t.equal(ranges[0][0], 0, 'from slot 0')
  t.equal(ranges[ranges.length - 1][1], 16383, 'to slot 16383')
  for (let i = 1; i < ranges.length; i++) t.equal(ranges[i][0], ranges[i - 1][1] + 1, `no gap or overlap before slot ${ranges[i][0]}`)
  for (const master of masters) {
    t.ok(cluster.nodes.some(({ port }) => port === master.port), `master ${master.port} is one of the nodes`)
    t.match(master.id, /^[0-9a-f]{40}$/, 'with its node id')
  }

  const names = ['foo', '123456789', '{user1000}.following', 'foo{}{bar}', 'foo{{bar}}zap', 'harness:{room-1}', 'ünïcode']
  const answered = await plain(t, cluster.nodes[0]).pipeline(names.map((name) => ['call', 'CLUSTER', 'KEYSLOT', name])).exec()
  t.same(answered?.map(([, slot]) => Number(slot)), names.map((name) => keySlot(name)), 'keySlot agrees with CLUSTER KEYSLOT')

  const client = new Cluster(cluster.nodes, { redisOptions: { maxRetriesPerRequest: 5 } })
  client.on('error', () => {})
  t.teardown(() => { client.disconnect() })
  const keys = masters.map((master) => keyIn(master.slots[0][0], master.slots[0][1]))
  for (const [i, key] of keys.entries()) {
    t.equal(await client.set(key, `value ${i}`), 'OK')
    t.equal(await client.get(key), `value ${i}`, `SET/GET of ${key} on ${masters[i].port}`)
    t.equal((await cluster.masterOf(key)).port, masters[i].port, `masterOf(${key})`)
  }

  await t.test('SSUBSCRIBE/SPUBLISH on the master of the channel\'s slot', async (t) => {
    const channel = 'harness:{room-1}'
    const owner = await cluster.masterOf(channel)
    t.ok(owner.slots.some(([first, last]) => first <= keySlot(channel) && keySlot(channel) <= last), 'masterOf serves the channel\'s slot')
    const subscriber = plain(t, owner)
    const publisher = plain(t, owner)
    const received: Array<[string, string]> = []
    subscriber.on('smessage', (from: string, message: string) => received.push([from, message]))
    await subscriber.ssubscribe(channel)
    t.equal(await publisher.spublish(channel, 'hello shard'), 1, 'one subscriber got it')
    await until(() => received.length === 1, 10_000, 'the sharded message')
    t.same(received, [[channel, 'hello shard']])
  })

  await t.test('a master crashes: its replica takes over, then it rejoins as a replica', async (t) => {
    const victim: ClusterMaster = masters[1]
    // Replication is asynchronous: let the victim's replica have keys[1] before the crash.
    const replicaLines = await plain(t, victim).call('CLUSTER', 'REPLICAS', victim.id) as string[]
    t.equal(replicaLines.length, 1, 'the victim has its replica')
    const replica = plain(t, { host: '127.0.0.1', port: Number(/:(\d+)@/.exec(replicaLines[0])?.[1]) })
    await replica.readonly()
    await until(async () => (await replica.get(keys[1])) === 'value 1', 10_000, `${keys[1]} replicated`)

    began = Date.now()
    await cluster.kill(victim)
    await cluster.waitHealthy()
    t.comment(`failover (kill to waitHealthy) took ${Date.now() - began} ms`)

    const after = await cluster.masters()
    t.equal(after.length, 3, 'still 3 masters')
    t.notOk(after.some(({ port }) => port === victim.port), 'the killed node serves no slot')
    const heir = after.find(({ slots }) => slots.some(([first]) => first === victim.slots[0][0]))
    if (heir === undefined) throw new Error('no master serves the killed master\'s first slot')
    t.not(heir.port, victim.port)
    t.ok(cluster.nodes.some(({ port }) => port === heir.port), 'a node of the cluster')
    t.notOk(masters.some(({ port }) => port === heir.port), 'not one of the other masters: the promoted replica')
    t.same(heir.slots, victim.slots, 'with every slot range of the killed master')

    let value: string | null = null
    await until(async () => {
      value = await client.get(keys[1]).catch(() => null)
      return value !== null
    }, 20_000, 'the ioredis Cluster reading the failed-over slot')
    t.equal(value, 'value 1', 'the replica had the key')
    for (const [first, last] of victim.slots) {
      const key = keyIn(first, last, 'after')
      t.equal(await client.set(key, 'after failover'), 'OK')
      t.equal(await client.get(key), 'after failover', `SET/GET of ${key} (slot ${keySlot(key)}) on the promoted master`)
    }

    began = Date.now()
    await cluster.restart(victim)
    const restarted = plain(t, victim)
    const role = async (): Promise<unknown[]> => await restarted.role() as unknown[]
    await until(async () => {
      const [kind, , port] = await role()
      return kind === 'slave' && Number(port) === heir.port
    }, 30_000, `the restarted node ${victim.port} a replica of ${heir.port}`)
    const listed = plain(t, heir)
    await until(async () => {
      const replicas = await listed.call('CLUSTER', 'REPLICAS', heir.id) as string[]
      return replicas.some((line) => line.includes(`:${victim.port}@`) && line.includes('slave'))
    }, 30_000, `the restarted node listed among the replicas of ${heir.port}`)
    await cluster.waitHealthy()
    t.comment(`rejoin (restart to replica, healthy) took ${Date.now() - began} ms`)
    t.same((await cluster.masters()).map(({ port }) => port).sort(), after.map(({ port }) => port).sort(), 'the masters stay as they were')
  })

  await t.test('stop() kills every node, deletes the temp dir, and may be called again', async (t) => {
    t.ok(existsSync(cluster.dir), 'the temp dir is there while the cluster runs')
    await cluster.stop()
    await cluster.stop()
    t.notOk(existsSync(cluster.dir), 'and gone after stop()')
    for (const node of cluster.nodes) {
      const probe = new Redis({ host: node.host, port: node.port, lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 })
      probe.on('error', () => {})
      await t.rejects(probe.connect(), `nothing answers on ${node.port}`)
      probe.disconnect()
    }
  })
})
