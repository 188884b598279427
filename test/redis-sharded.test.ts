import { type AddressInfo, connect as connectTcp, createServer, type Socket } from 'node:net'
import t from 'tap'
import { Cluster, Redis } from 'ioredis'
import { RedisAdapter, redisAdapter } from '../lib/adapters/redis'
import { errors } from '../lib/errors'
import type { Adapter, RedisAdapterStats, RedisClient } from '../types/index'
import { adapterContract } from './helpers/adapter-contract'
import { type Changed, RecordingHost } from './helpers/host'
import { type Node, messagesOf, node, uniquePrefix } from './helpers/redis'
import { type ClusterMaster, type ClusterNodeAddress, RedisCluster, clusterSupported, keySlot } from './helpers/redis-cluster'
import { type Client, freePort, type TestContext } from './helpers/server'
import { until } from './helpers/wait'

// The Redis adapter on a real Redis Cluster (test/helpers/redis-cluster.ts
// starts one of local redis-server processes): sharded pub/sub, each room's
// keys and channel on one shard, the adapter contract, and a master killed
// mid-traffic.

// Bounded per file: starting clusters and failing one over takes seconds on a busy 2-core machine.
t.setTimeout(300_000)

/** A room's channel on a cluster, with the room's hash tag. */
const channelOf = (prefix: string, room: string): string => `${prefix}:room:{${room}}`

/** Room names `<base>-<n>`, `count` of them on each master, in the masters' order. */
async function roomsOnEveryShard (cluster: RedisCluster, prefix: string, base: string, count = 1): Promise<string[][]> {
  const masters = await cluster.masters()
  const byMaster = masters.map(() => [] as string[])
  for (let n = 0; byMaster.some((rooms) => rooms.length < count); n++) {
    const room = `${base}-${n}`
    const slot = keySlot(channelOf(prefix, room))
    const i = masters.findIndex(({ slots }) => slots.some(([first, last]) => first <= slot && slot <= last))
    if (byMaster[i].length < count) byMaster[i].push(room)
  }
  return byMaster
}

/** A plain connection to one node, closed when the test ends. */
function plain (t: TestContext, address: ClusterNodeAddress): Redis {
  const redis = new Redis({ host: address.host, port: address.port, maxRetriesPerRequest: 1 })
  redis.on('error', () => {})
  t.teardown(() => { redis.disconnect() })
  return redis
}

/**
 * Waits, while traffic runs, until this node has run no SPUBLISH for 500 ms;
 * resolves with the time it was last seen running one (INFO commandstats).
 */
async function lastSpublish (t: TestContext, address: ClusterNodeAddress): Promise<number> {
  const redis = plain(t, address)
  const calls = async (): Promise<string> => /cmdstat_spublish:calls=(\d+)/.exec(await redis.info('commandstats'))?.[1] ?? '0'
  let seen = await calls()
  let changedAt = Date.now()
  await until(async () => {
    const now = await calls()
    if (now !== seen) [seen, changedAt] = [now, Date.now()]
    return Date.now() - changedAt >= 500
  }, 30_000, `no more SPUBLISH through ${address.port}`)
  return changedAt
}

/** The stats of the adapter of a node. */
const statsOf = (instance: Node): RedisAdapterStats & Record<string, number> => instance.app.getWebSocket().stats() as unknown as RedisAdapterStats & Record<string, number>

/** Every channel of the adapter subscribed, on every shard. */
async function subscribed (instance: Node, rooms: number): Promise<void> {
  await until(() => statsOf(instance).redisConnected === 1 && statsOf(instance).redisRoomChannels === rooms, 20_000, `${rooms} room channels subscribed`)
}

const received = (client: Client): any[] => client.messages.slice(1)

/** Whether this machine can start a cluster; under CI=true it must. */
async function clusterRuns (t: tap.Test): Promise<boolean> {
  if (await clusterSupported()) return true
  if (process.env.CI === 'true') t.fail('redis-server and redis-cli of version 7 or later are missing, and CI=true: the cluster tests must run in CI')
  else t.plan(0, 'no redis-server and redis-cli of version 7 or later on this machine')
  return false
}

t.test('redisAdapter() checks a cluster connection', async (t) => {
  const fake = (extra: Record<string, unknown> = {}): RedisClient => ({
    status: 'wait',
    isCluster: true,
    publish: async () => 0,
    spublish: async () => 0,
    subscribe: async () => {},
    unsubscribe: async () => {},
    connect: async () => {},
    quit: async () => 'OK',
    disconnect: () => {},
    on: () => {},
    removeListener: () => {},
    nodes: () => [],
    ...extra
  } as unknown as RedisClient)
  const nodes = [{ host: '127.0.0.1', port: 7000 }]
  const cases: Array<[string, () => unknown, RegExp]> = [
    ['an empty list of nodes', () => redisAdapter({ cluster: [] }), /"redisAdapter\(\).cluster": expected a non-empty array of startup nodes/],
    ['nodes that are not a list', () => redisAdapter({ cluster: 'redis://x' as never }), /"redisAdapter\(\).cluster".*received the string/],
    ['cluster options that are not an object', () => redisAdapter({ cluster: nodes, clusterOptions: 3 as never }), /"redisAdapter\(\).clusterOptions": expected ioredis Cluster options/],
    ['cluster and url', () => redisAdapter({ cluster: nodes, url: 'redis://x' } as never), /one of \{ url \}, \{ client, subscriber \} or \{ cluster \}, received url and cluster/],
    ['cluster and client', () => redisAdapter({ cluster: nodes, client: fake() } as never), /received client and cluster/],
    ['a subscriber beside a cluster client', () => redisAdapter({ client: fake(), subscriber: fake({ isCluster: false }) }), /"redisAdapter\(\).subscriber": expected nothing with a Redis Cluster/],
    ['a cluster client without sharded pub/sub', () => redisAdapter({ client: fake({ spublish: undefined }) }), /"redisAdapter\(\).client": expected an ioredis Cluster with sharded pub\/sub/],
    ['a cluster client without nodes()', () => redisAdapter({ client: fake({ nodes: undefined }) }), /"redisAdapter\(\).client": expected an ioredis Cluster.*received a client without spublish\(\) or nodes\(\)/],
    ['a prefix with a brace', () => redisAdapter({ cluster: nodes }, { prefix: 'app{1}' }), /"redisAdapter\(\).prefix": expected no \{ or \} on a Redis Cluster/],
    ['a prefix with a brace, given with the nodes', () => redisAdapter({ cluster: nodes, prefix: '{' }), /"redisAdapter\(\).prefix"/]
  ]
  for (const [name, make, message] of cases) {
    t.throws(make, errors.FST_NEXUS_INVALID_OPTION, name)
    t.throws(make, { code: 'FST_NEXUS_INVALID_OPTION', message }, name)
  }
  const given = redisAdapter({ client: fake() }, { prefix: 'app' })
  t.ok(given instanceof RedisAdapter, 'an ioredis Cluster is taken as it is, without connecting')
  await given.close()
  t.ok(redisAdapter({ cluster: nodes, clusterOptions: { redisOptions: { password: 'x' } } }) instanceof RedisAdapter, 'startup nodes and options')
})

t.test('a cluster that cannot be reached: the app starts, delivers locally, and says so', async (t) => {
  const port = await freePort()
  const instance = await node(t, redisAdapter({ cluster: [{ host: '127.0.0.1', port }], clusterOptions: { clusterRetryStrategy: () => null } }))
  const client = await instance.join(['room'])
  t.equal(instance.app.getWebSocket().broadcast('room', 'local'), 1)
  await client.waitFor(2)
  t.same(received(client), ['local'])
  t.equal(statsOf(instance).redisConnected, 0)
  t.equal(messagesOf(instance.lines, 'Redis is not reachable at startup: broadcasts reach this instance only until it is').length, 1)
  t.same(await instance.app.getWebSocket().fetchRooms(), ['room'], 'queries answer with this instance alone')
})

t.test('on a real Redis Cluster of 3 masters', async (t) => {
  if (!await clusterRuns(t)) return
  const cluster = await RedisCluster.startFor(t, { masters: 3, replicas: 0 })
  const publisher = new Cluster(cluster.nodes)
  t.teardown(() => { publisher.disconnect() })

  // The shared contract, on adapters given the one cluster client. `settle`
  // sends a marker (that does not decode) on every channel of the adapter
  // through that client: on each shard it comes after the adapter's own
  // messages, and it is counted as invalid when it is back.
  const contractPrefix = uniquePrefix('contract')
  await adapterContract(t, 'RedisAdapter on a Redis Cluster', () => redisAdapter({ client: publisher as unknown as RedisClient }, { prefix: contractPrefix }), {
    settle: async (adapter: Adapter) => {
      const inside = adapter as unknown as { allChannel: string, roomChannels: Map<string, string>, stats: () => RedisAdapterStats }
      await until(() => inside.stats().redisConnected === 1, 20_000, 'every channel subscribed')
      const channels = [inside.allChannel, ...inside.roomChannels.keys()]
      const before = inside.stats().redisInvalidMessages
      for (const channel of channels) await publisher.spublish(channel, Buffer.from('settle'))
      await until(() => inside.stats().redisInvalidMessages >= before + channels.length, 20_000, 'the markers back')
    }
  })

  t.test('rooms on every shard: one room, several rooms, everyone, the queries; each channel on its own master only', async (t) => {
    const prefix = uniquePrefix('shards')
    const a = await node(t, redisAdapter({ cluster: cluster.nodes }, { prefix }))
    const b = await node(t, redisAdapter({ cluster: cluster.nodes, prefix }))
    // Two rooms of one hash tag (`same`): one slot, subscribed and unsubscribed together.
    const rooms = [...(await roomsOnEveryShard(cluster, prefix, 'room', 2)).flat(), 'same}1', 'same}2']
    const onB = await b.join(rooms)
    const onA = await a.join([rooms[0]])
    await subscribed(b, rooms.length)
    await subscribed(a, 1)

    const manager = a.app.getWebSocket()
    for (const room of rooms) t.equal(manager.broadcast(room, { room }), room === rooms[0] ? 1 : 0)
    t.equal(manager.broadcast([rooms[1], rooms[2]], 'two rooms'), 0)
    t.equal(manager.broadcastAll('everyone'), 1)
    t.equal(b.app.getWebSocket().broadcast(rooms[0], 'from b'), 1)
    // Order holds per room (one channel), not across the shards' channels.
    const sorted = (messages: any[]): string[] => messages.map((message) => JSON.stringify(message)).sort()
    await onB.waitFor(1 + rooms.length + 3)
    t.same(sorted(received(onB)), sorted([...rooms.map((room) => ({ room })), 'two rooms', 'everyone', 'from b']), 'every room of every shard, once')
    await onA.waitFor(4)
    t.same(sorted(received(onA)), sorted([{ room: rooms[0] }, 'everyone', 'from b']))

    // Each room's channel is a shard channel of the master of its slot, on no other node; no classic channel.
    for (const room of rooms) {
      const owner = await cluster.masterOf(channelOf(prefix, room))
      for (const address of cluster.nodes) {
        const redis = plain(t, address)
        const [, count] = await redis.call('PUBSUB', 'SHARDNUMSUB', channelOf(prefix, room)) as [string, number]
        const expected = address.port !== owner.port ? 0 : room === rooms[0] ? 2 : 1
        t.equal(count, expected, `${room} on ${address.port === owner.port ? 'its master' : 'another node'}`)
        t.same(await redis.call('PUBSUB', 'CHANNELS', `${prefix}:*`), [], 'no classic channel')
      }
    }

    t.same((await manager.fetchRooms()).sort(), [...rooms].sort())
    t.equal(await manager.fetchConnections(), 2)
    t.equal(await manager.fetchRoomSize(rooms[0]), 2)
    t.equal(await manager.fetchRoomSize(rooms[1]), 1)

    // A room without members here any more: its channel goes from its shard.
    onB.close()
    await subscribed(b, 0)
    const owner = plain(t, await cluster.masterOf(channelOf(prefix, rooms[1])))
    await until(async () => (await owner.call('PUBSUB', 'SHARDNUMSUB', channelOf(prefix, rooms[1])) as [string, number])[1] === 0, 10_000, 'the channel unsubscribed')

    // Two channels of one slot left in one turn while their shard keeps another one: unsubscribed together.
    const same = ['same}1', 'same}2', 'same}3'].map((room) => channelOf(prefix, room))
    const both = await b.join(['same}1', 'same}2'])
    const keep = await b.join(['same}3'])
    await subscribed(b, 3)
    both.close()
    await subscribed(b, 1)
    const sameOwner = plain(t, await cluster.masterOf(same[0]))
    const counts = async (): Promise<unknown[]> => (await sameOwner.call('PUBSUB', 'SHARDNUMSUB', ...same) as unknown[]).filter((_, i) => i % 2 === 1)
    await until(async () => JSON.stringify(await counts()) === '[0,0,1]', 10_000, 'same}1 and same}2 unsubscribed, same}3 kept')
    keep.close()
    await subscribed(b, 0)
    t.equal(statsOf(b).redisInvalidMessages, 0)
  })

  t.test('history and presence rooms keep their keys on their room\'s shard, names starting with } included', async (t) => {
    const prefix = uniquePrefix('stores')
    const options = { roomPolicies: { '*': { history: { size: 100, ttl: 60_000 }, presence: true } } }
    const a = await node(t, redisAdapter({ cluster: cluster.nodes }, { prefix }), 'info', options)
    const b = await node(t, redisAdapter({ cluster: cluster.nodes }, { prefix }), 'info', options)
    const rooms = [...(await roomsOnEveryShard(cluster, prefix, 'h')).flat(), '}odd', 'a}b', '{x}']
    const onB = await b.join(rooms)
    await subscribed(b, rooms.length)

    const manager = a.app.getWebSocket()
    for (const room of rooms) {
      t.same(await manager.publish(room, { room }), { offset: 1, epoch: (await manager.history(room)).position.epoch }, `${room} stored and numbered`)
    }
    await onB.waitFor(1 + rooms.length)
    t.same(received(onB).sort((x, y) => x.room < y.room ? -1 : 1), rooms.map((room) => ({ room })).sort((x, y) => x.room < y.room ? -1 : 1))
    for (const room of rooms) {
      const page = await b.app.getWebSocket().history(room)
      t.same(page.messages.map((message) => message.data), [{ room }], `${room}: its history read on the other instance`)
      await until(async () => (await manager.presence(room)).length === 1, 10_000, `${room}: B's member listed on A`)
      t.same((await manager.presence(room)).map((member) => member.key), [onB.id])
      t.same(await manager.presenceCount(room), { members: 1, connections: 1 })
    }
    // Every key the adapter wrote for a room hashes to the slot of the room's channel.
    const keys: string[] = []
    for (const master of await cluster.masters()) keys.push(...await plain(t, master).keys(`${prefix}:*`))
    for (const room of rooms) {
      const tag = room.startsWith('}') ? `{\0}${room}\0` : `{${room}}`
      const own = keys.filter((key) => key.includes(`:${tag}`))
      t.ok(own.length >= 6, `${room}: history and presence keys (${own.length})`)
      t.same([...new Set(own.map(keySlot))], [keySlot(`${prefix}:room:${tag}`)], `${room}: one slot`)
    }
    t.equal(statsOf(a).historyFailures + statsOf(a).presenceFailures + statsOf(b).presenceFailures, 0)
  })

  t.test('closed while it connects: it stops there, subscribed nowhere', async (t) => {
    const prefix = uniquePrefix('early')
    const adapter = redisAdapter({ cluster: cluster.nodes }, { prefix })
    const starting = adapter.init(new RecordingHost())
    await adapter.close()
    await starting
    t.equal(adapter.stats().redisConnected, 0)
    adapter.roomActive('late')
    t.equal(adapter.stats().redisRoomChannels, 0, 'a room active after close is not followed')
    for (const master of await cluster.masters()) {
      t.same(await plain(t, master).call('PUBSUB', 'SHARDCHANNELS', `${prefix}:*`), [], `nothing subscribed on ${master.port}`)
    }
  })

  t.test('a slot moved to another master (resharding): the server drops its channels there, the adapter subscribes them where the slot went', async (t) => {
    const prefix = uniquePrefix('reshard')
    const a = await node(t, redisAdapter({ cluster: cluster.nodes }, { prefix }))
    const b = await node(t, redisAdapter({ cluster: cluster.nodes }, { prefix }))
    const room = 'moving'
    const channel = channelOf(prefix, room)
    const onB = await b.join([room])
    await subscribed(b, 1)
    const manager = a.app.getWebSocket()
    manager.broadcast(room, 'before')
    await onB.waitFor(2)

    // The slot goes from its master to another one, as redis-cli --cluster reshard does (it holds no key).
    const slot = keySlot(channel)
    const masters = await cluster.masters()
    const from = await cluster.masterOf(channel)
    const to = masters.find((master) => master.port !== from.port) as ClusterMaster
    await plain(t, to).call('CLUSTER', 'SETSLOT', slot, 'IMPORTING', from.id)
    await plain(t, from).call('CLUSTER', 'SETSLOT', slot, 'MIGRATING', to.id)
    for (const master of [to, from, ...masters.filter((one) => one.port !== from.port && one.port !== to.port)]) {
      await plain(t, master).call('CLUSTER', 'SETSLOT', slot, 'NODE', to.id)
    }
    await until(async () => (await cluster.masterOf(channel)).port === to.port, 20_000, 'the slot on its new master')
    await until(async () => (await plain(t, to).call('PUBSUB', 'SHARDNUMSUB', channel) as [string, number])[1] === 1, 20_000, 'B subscribed on the new master')
    t.same((await plain(t, from).call('PUBSUB', 'SHARDNUMSUB', channel) as [string, number])[1], 0, 'and no longer on the old one')

    // Published through A's cluster client, which learns of the move from its first failure (MOVED) at the latest.
    let sent = 0
    await until(() => {
      if (received(onB).includes('after')) return true
      if (sent++ % 20 === 0) manager.broadcast(room, 'after')
      return false
    }, 20_000, 'a broadcast after the move delivered')
    t.same(received(onB).filter((message) => message !== 'after'), ['before'])
    t.equal(statsOf(b).redisConnected, 1)
  })

  t.test('a cluster client whose map of the slots lags is told to read them again', async (t) => {
    // As after a failover whose refresh asked a node that did not know yet: the
    // client routes a room's slot to a node that is not its master.
    const prefix = uniquePrefix('routes')
    const client = new Cluster(cluster.nodes, { enableOfflineQueue: false, maxRedirections: 0 })
    client.on('error', () => {})
    t.teardown(() => { client.disconnect() })
    await until(() => client.status === 'ready', 20_000, 'the cluster client ready')
    const room = 'lagging'
    const slot = keySlot(channelOf(prefix, room))
    const owner = await cluster.masterOf(channelOf(prefix, room))
    const other = (await cluster.masters()).find((master) => master.port !== owner.port) as ClusterMaster
    client.slots[slot] = [`${other.host}:${other.port}`]

    const a = await node(t, redisAdapter({ client: client as unknown as RedisClient }, { prefix }))
    await until(() => client.slots[slot][0] === `${owner.host}:${owner.port}`, 20_000, 'the slot routed to its master again')
    const b = await node(t, redisAdapter({ cluster: cluster.nodes }, { prefix }))
    const onB = await b.join([room])
    await subscribed(b, 1)
    t.equal(a.app.getWebSocket().broadcast(room, 'routed'), 0)
    await onB.waitFor(2)
    t.same(received(onB), ['routed'])
    t.equal(statsOf(a).redisPublishErrors, 0, 'no publish went to the wrong node')
  })

  t.test('what a dropped shard connection still reads is not delivered: the channel\'s current connection delivers it', async (t) => {
    const prefix = uniquePrefix('dropped')
    const adapter = redisAdapter({ cluster: cluster.nodes }, { prefix })
    const a = await node(t, adapter)
    const room = 'in-flight'
    const channel = channelOf(prefix, room)
    const onA = await a.join([room])
    await subscribed(a, 1)
    // A frame of the room, as another instance publishes it.
    const spy = plain(t, await cluster.masterOf(channel))
    const frames: Buffer[] = []
    spy.on('smessageBuffer', (_channel: Buffer, frame: Buffer) => frames.push(frame))
    await spy.call('SSUBSCRIBE', channel)
    const b = await node(t, redisAdapter({ cluster: cluster.nodes }, { prefix }))
    b.app.getWebSocket().broadcast(room, 'first')
    await onA.waitFor(2)
    await until(() => frames.length === 1, 20_000, 'the frame seen on the shard')

    // The server drops the channel (ioredis 6's `moved`): the connection goes, the channel is subscribed again.
    const shards = (adapter as unknown as { subscriptions: { shards: Map<string, { client: Cluster, channels: Map<string, unknown> }> } }).subscriptions.shards
    const holding = (): { client: Cluster } => [...shards.values()].find((shard) => shard.channels.has(channel)) as { client: Cluster }
    const old = holding().client
    old.emit('moved')
    await until(() => holding() !== undefined && holding().client !== old && statsOf(a).redisConnected === 1, 20_000, 'the channel subscribed on a new connection')
    // A frame the old connection read after it was dropped (it half-closes, the server may still be writing).
    old.emit('smessageBuffer', Buffer.from(channel), frames[0])
    holding().client.emit('smessageBuffer', Buffer.from(channel), frames[0])
    await onA.waitFor(3)
    b.app.getWebSocket().broadcast(room, 'last')
    await onA.waitFor(4)
    t.same(received(onA), ['first', 'first', 'last'], 'once from the current connection, never from the dropped one')
  })

  t.test('natMap: the shard connections go where the cluster client\'s natMap says, as its own do', async (t) => {
    // A TCP relay per node, named by the natMap instead of the node (as a NAT would): it counts the SSUBSCRIBEs that cross it.
    const subscribesVia = new Map<string, number>()
    const natMap: Record<string, { host: string, port: number }> = {}
    for (const address of cluster.nodes) {
      const key = `${address.host}:${address.port}`
      subscribesVia.set(key, 0)
      const open = new Set<Socket>()
      const relay = createServer((inbound) => {
        const outbound = connectTcp(address.port, address.host)
        for (const socket of [inbound, outbound]) {
          open.add(socket)
          socket.on('error', () => {})
          socket.on('close', () => { open.delete(socket); inbound.destroy(); outbound.destroy() })
        }
        inbound.on('data', (chunk: Buffer) => {
          if (chunk.toString('latin1').toLowerCase().includes('ssubscribe')) subscribesVia.set(key, (subscribesVia.get(key) as number) + 1)
        })
        inbound.pipe(outbound)
        outbound.pipe(inbound)
      })
      await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', resolve))
      natMap[key] = { host: '127.0.0.1', port: (relay.address() as AddressInfo).port }
      t.teardown(async () => {
        for (const socket of open) socket.destroy()
        await new Promise((resolve) => relay.close(resolve))
      })
    }

    const prefix = uniquePrefix('natmap')
    const a = await node(t, redisAdapter({ cluster: cluster.nodes }, { prefix }))
    const b = await node(t, redisAdapter({ cluster: [natMap[`${cluster.nodes[0].host}:${cluster.nodes[0].port}`]], clusterOptions: { natMap } }, { prefix }))
    const rooms = (await roomsOnEveryShard(cluster, prefix, 'mapped')).flat()
    const onB = await b.join(rooms)
    await subscribed(b, rooms.length)
    for (const room of rooms) a.app.getWebSocket().broadcast(room, room)
    await onB.waitFor(1 + rooms.length)
    t.same(received(onB).sort(), [...rooms].sort(), 'every room of every shard, through the relays')
    const masters = await cluster.masters()
    t.same(masters.map((master) => subscribesVia.get(`${master.host}:${master.port}`) as number > 0), masters.map(() => true), 'each master\'s subscriptions went through its relay')
  })

  t.test('an instance that stops beating is reaped by another, across shards', async (t) => {
    const prefix = uniquePrefix('reap')
    const timings = { beatInterval: 100, deadAfter: 600 }
    const dead = new RedisAdapter({ cluster: cluster.nodes }, { prefix }, timings)
    const survivor = new RedisAdapter({ cluster: cluster.nodes }, { prefix }, timings)
    const survivorHost = new RecordingHost()
    t.teardown(() => dead.close())
    t.teardown(() => survivor.close())
    await dead.init(new RecordingHost())
    await survivor.init(survivorHost)
    dead.presence.start()
    survivor.presence.start()
    const rooms = (await roomsOnEveryShard(cluster, prefix, 'p')).flat()
    for (const room of rooms) {
      survivor.roomActive(room)
      await dead.presence.update(room, [{ key: `user-${room}`, connections: 1, meta: 'null' }], false)
      t.same((await survivor.presence.read(room)).members.map((member) => member.key), [`user-${room}`])
    }
    // Its connections are cut: no more beats, no goodbye.
    ;(dead as unknown as { pub: Cluster }).pub.disconnect()
    await until(() => survivor.stats().redisPresenceReaped === 1, 20_000, 'the dead instance reaped')
    for (const room of rooms) {
      t.same((await survivor.presence.read(room)).members, [], `${room} emptied`)
      await until(() => survivorHost.changes.some((change: Changed) => change.room === room && change.left.includes(`user-${room}`)), 10_000, `the leave of ${room} published`)
    }
  })
})

/** Numbered messages from A to every room, one per room every 10 ms, each stamped with when it was sent; what B's client got of each room. */
class Traffic {
  readonly sentAt: number[] = []
  private readonly timer: NodeJS.Timeout

  constructor (t: TestContext, a: Node, rooms: readonly string[], private readonly client: Client) {
    const manager = a.app.getWebSocket()
    this.timer = setInterval(() => {
      const n = this.sentAt.length
      this.sentAt.push(Date.now())
      for (const room of rooms) manager.broadcast(room, { room, n })
    }, 10)
    t.teardown(() => this.stop())
  }

  stop (): void {
    clearInterval(this.timer)
  }

  of (room: string): number[] {
    return received(this.client).filter((message) => message.room === room).map((message) => message.n)
  }

  /** The numbers the room did not get between its first and its last. */
  missing (room: string): number[] {
    const got = this.of(room)
    const set = new Set(got)
    return Array.from({ length: got[got.length - 1] + 1 - got[0] }, (_, i) => got[0] + i).filter((n) => !set.has(n))
  }

  /** When the first message the room got after its last gap was sent (`otherwise` without a gap). */
  resumedAt (room: string, otherwise: number): number {
    const missing = this.missing(room)
    if (missing.length === 0) return otherwise
    return this.sentAt[this.of(room).find((n) => n > missing[missing.length - 1]) as number]
  }
}

t.test('a failover mid-traffic: the failed shard\'s rooms resume, in order; the other shards\' rooms lose nothing', async (t) => {
  if (!await clusterRuns(t)) return
  const cluster = await RedisCluster.startFor(t, { masters: 3, replicas: 1 })
  const prefix = uniquePrefix('failover')
  const a = await node(t, redisAdapter({ cluster: cluster.nodes }, { prefix }))
  const b = await node(t, redisAdapter({ cluster: cluster.nodes }, { prefix }))

  /**
   * Runs traffic to two rooms per shard while `fail` fails the master `victim`
   * (its index in `masters()`), and checks what B got. `strict`: in order
   * throughout; else in order outside the handover (a manual failover may
   * deliver a message that went through the old master after newer ones).
   */
  async function under (t: tap.Test, name: string, victim: number, strict: boolean, fail: (victim: ClusterMaster) => Promise<void>): Promise<{ failedAt: number, resumedAt: number }> {
    const byMaster = await roomsOnEveryShard(cluster, prefix, name, 2)
    byMaster.unshift(...byMaster.splice(victim, 1))
    const rooms = byMaster.flat()
    const onB = await b.join(rooms)
    await subscribed(b, rooms.length)
    const publishedBefore = statsOf(a).redisPublished + statsOf(a).redisPublishErrors
    const traffic = new Traffic(t, a, rooms, onB)
    await until(() => rooms.every((room) => traffic.of(room).length >= 20), 20_000, 'traffic on every room before the failure')

    const [victimRooms, ...otherRooms] = byMaster
    const failing = await cluster.masterOf(channelOf(prefix, victimRooms[0]))
    const failedAt = Date.now()
    await fail(failing)
    const failedOver = Date.now()
    await until(() => victimRooms.every((room) => traffic.of(room).some((n) => traffic.sentAt[n] > failedOver + 200)), 30_000, 'delivery back on the failed shard')
    // A demoted master still runs the SPUBLISH sent to it (a replica may), and
    // its shard hears them over the cluster bus, later than those sent to the
    // new master: the handover lasts until A stops publishing through it.
    const handedOver = strict ? failedOver : await lastSpublish(t, failing)
    traffic.stop()
    const { sentAt } = traffic
    const last = sentAt.length - 1
    await until(() => otherRooms.flat().every((room) => traffic.of(room).at(-1) === last), 20_000, 'the last message on the other shards')
    await until(() => statsOf(a).redisPublished + statsOf(a).redisPublishErrors - publishedBefore === sentAt.length * rooms.length, 20_000, 'every broadcast published or counted as failed')

    for (const room of otherRooms.flat()) {
      const got = traffic.of(room)
      t.same(got, Array.from({ length: last + 1 - got[0] }, (_, i) => got[0] + i), `${room} (another shard): every message, once, in order`)
    }
    await until(() => victimRooms.every((room) => traffic.of(room).at(-1) === last), 20_000, 'the last message on the failed shard')
    const resumedAt = Math.max(...victimRooms.map((room) => traffic.resumedAt(room, failedAt)))
    for (const room of victimRooms) {
      const got = traffic.of(room)
      const jumps = got.flatMap((n, i) => i > 0 && n !== got[i - 1] + 1 ? [`${got[i - 1]}->${n}`] : [])
      t.equal(new Set(got).size, got.length, `${room}: each message once (jumps: ${jumps.join(' ')})`)
      const ordered = strict ? got : got.filter((n) => sentAt[n] < failedAt || sentAt[n] > handedOver)
      t.ok(ordered.every((n, i) => i === 0 || n > ordered[i - 1]), `${room}: in order${strict ? '' : ` outside the handover (${handedOver - failedAt} ms)`} (jumps: ${jumps.join(' ')})`)
      const missing = traffic.missing(room)
      t.ok(missing.every((n) => sentAt[n] >= failedAt - 50 && sentAt[n] < resumedAt), `${room}: only messages sent during the failover were lost (${missing.length}, ${resumedAt - failedAt} ms)`)
    }
    await subscribed(b, rooms.length)
    onB.close()
    await subscribed(b, 0)
    return { failedAt, resumedAt }
  }

  t.test('a master killed (SIGKILL): delivery resumes within the cluster\'s failover', async (t) => {
    let healthyAt = 0
    const { failedAt, resumedAt } = await under(t, 'killed', 0, true, async (victim) => {
      await cluster.kill(victim)
      await cluster.waitHealthy(60_000)
      healthyAt = Date.now()
    })
    t.ok(statsOf(a).redisPublishErrors > 0, 'the publishes to the dead master failed, counted')
    const failover = healthyAt - failedAt
    const gap = resumedAt - failedAt
    t.ok(gap <= failover + 1000, `delivery resumed ${gap} ms after the kill; the cluster took ${failover} ms to fail over`)
    t.equal(messagesOf(a.lines, 'Redis publish failed: this broadcast reached this instance only').length, 1, 'one line for the failover, however the other shards\' successes interleave')
    // The run of failed publishes ends with a success a second after its last failure.
    await until(() => messagesOf(a.lines, 'Redis publish works again').length === 1 || Date.now() - resumedAt > 5000, 20_000)
  })

  t.test('a manual failover (CLUSTER FAILOVER on a replica): the server moves the channels, the adapter follows', async (t) => {
    // A master that still has its replica (the one promoted by the kill has none).
    const masters = await cluster.masters()
    const replicasOf = async (master: ClusterMaster): Promise<string[]> => await plain(t, master).call('CLUSTER', 'REPLICAS', master.id) as string[]
    const replicated = (await Promise.all(masters.map(replicasOf))).findIndex((replicas) => replicas.length > 0)
    t.not(replicated, -1, 'a master with its replica')
    await under(t, 'manual', replicated, false, async (victim) => {
      const [replica] = await replicasOf(victim)
      // `<id> <host>:<port>@<bus> …`
      const [host, port] = replica.split(' ')[1].split('@')[0].split(':')
      await plain(t, { host, port: Number(port) }).call('CLUSTER', 'FAILOVER')
      await until(async () => (await cluster.masters()).some((one) => one.port === Number(port)), 30_000, 'the replica promoted')
    })
  })
})
