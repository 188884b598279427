import t from 'tap'
import type { WebSocket } from 'ws'
import { MemoryAdapter } from '../lib/adapters/memory'
import type { AdapterFetchOptions, EncodedMessage, PublishTarget, WebSocketManager } from '../types/index'
import { build, type Client, connect, listen } from './helpers/server'
import { until } from './helpers/wait'

// The parts of the manager made for several instances: cluster-wide queries,
// `except` by connection id, and the adapter's counters in stats(). With the
// memory adapter they answer for this instance; an adapter that reaches other
// instances (test/redis-*.test.ts) answers for all of them.

interface Setup {
  manager: WebSocketManager
  /** the server sockets, their connection ids and their clients, in the same order */
  sockets: WebSocket[]
  ids: string[]
  clients: Client[]
}

/** An app on `adapter` (memory by default) with `count` connections. */
async function withSockets (t: tap.Test, count: number, adapter?: MemoryAdapter): Promise<Setup> {
  const app = await build(t, adapter === undefined ? {} : { adapter })
  const sockets: WebSocket[] = []
  const ids: string[] = []
  app.ws('/ws', {
    onConnect: (socket, ctx) => {
      sockets.push(socket)
      ids.push(ctx.id)
    }
  })
  const base = await listen(app)
  const clients: Client[] = []
  for (let i = 0; i < count; i++) {
    const client = await connect(`${base}/ws`)
    t.teardown(() => client.close())
    clients.push(client)
    await until(() => sockets.length === i + 1)
  }
  return { manager: app.getWebSocket(), sockets, ids, clients }
}

t.test('with the memory adapter, fetchRooms, fetchRoomSize and fetchConnections answer for this instance', async (t) => {
  const { manager, sockets } = await withSockets(t, 3)
  manager.createRoom('kept')
  manager.joinRoom('r1', sockets[0])
  manager.joinRoom('r1', sockets[1])
  manager.joinRoom('r2', sockets[2])
  t.same((await manager.fetchRooms()).sort(), ['kept', 'r1', 'r2'])
  t.same((await manager.fetchRooms({ timeout: 10 })).sort(), ['kept', 'r1', 'r2'])
  t.equal(await manager.fetchRoomSize('r1'), 2)
  t.equal(await manager.fetchRoomSize('nowhere', {}), 0)
  t.equal(await manager.fetchConnections({ timeout: 0 }), 3)
})

t.test('the cluster-wide queries reject bad arguments with coded errors', async (t) => {
  const { manager } = await withSockets(t, 0)
  await t.rejects(manager.fetchRoomSize(''), { code: 'FST_NEXUS_INVALID_ROOM' })
  await t.rejects(manager.fetchRoomSize(7 as never), { code: 'FST_NEXUS_INVALID_ROOM' })
  for (const options of [null, 5, 'fast']) {
    await t.rejects(manager.fetchRooms(options as never), { code: 'FST_NEXUS_INVALID_OPTION', message: /"options": expected an object \(\{ timeout \}\)/ })
  }
  for (const timeout of [-1, Number.NaN, Infinity, 2 ** 31, '100']) {
    await t.rejects(manager.fetchConnections({ timeout: timeout as never }), {
      code: 'FST_NEXUS_INVALID_OPTION',
      message: /"timeout": expected a number of milliseconds from 0 to 2147483647/
    }, String(timeout))
  }
  await t.rejects(manager.fetchRoomSize('r', { timeout: -5 }), { code: 'FST_NEXUS_INVALID_OPTION' })
})

t.test('an adapter with the optional methods answers the queries, with the timeout given or 5000 ms', async (t) => {
  const asked: Array<[string, AdapterFetchOptions, string?]> = []
  class Clustered extends MemoryAdapter {
    async fetchRooms (options: AdapterFetchOptions): Promise<string[]> {
      asked.push(['rooms', options])
      return ['everywhere']
    }

    async fetchRoomSize (room: string, options: AdapterFetchOptions): Promise<number> {
      asked.push(['size', options, room])
      return 42
    }

    async fetchConnections (options: AdapterFetchOptions): Promise<number> {
      asked.push(['connections', options])
      return 7
    }

    stats (): Record<string, number> {
      return { clusterNodes: 3, connections: -1, broadcasts: -1 }
    }
  }
  const { manager } = await withSockets(t, 1, new Clustered())
  t.same(await manager.fetchRooms(), ['everywhere'])
  t.equal(await manager.fetchRoomSize('r', { timeout: 250 }), 42)
  t.equal(await manager.fetchConnections({}), 7)
  t.same(asked, [['rooms', { timeout: 5000 }], ['size', { timeout: 250 }, 'r'], ['connections', { timeout: 5000 }]])

  const stats = manager.stats()
  t.equal(stats.clusterNodes, 3, 'the adapter\'s counters are in stats()')
  t.equal(stats.connections, 1, 'never in place of the manager\'s own')
  t.equal(stats.broadcasts, 0)
})

t.test('stats() of the memory adapter has the manager\'s counters only', async (t) => {
  const { manager } = await withSockets(t, 0)
  t.same(Object.keys(manager.stats()).filter((key) => key.startsWith('redis')), [])
})

t.test('except takes connection ids as well as sockets', async (t) => {
  const targets: PublishTarget[] = []
  class Recording extends MemoryAdapter {
    override publish (message: EncodedMessage, target: PublishTarget): void {
      targets.push(target)
      super.publish(message, target)
    }
  }
  const { manager, sockets, ids, clients } = await withSockets(t, 3, new Recording())
  for (const socket of sockets) manager.joinRoom('r', socket)

  t.equal(manager.broadcast('r', 1, { except: ids[0] }), 2, 'a connection id')
  t.equal(manager.broadcast('r', 2, { except: [sockets[0], ids[1]] }), 1, 'a socket and an id')
  t.equal(manager.broadcastAll(3, { except: [ids[2], 'an-id-of-another-instance'] }), 2)
  t.equal(manager.broadcast(['r', 'x'], 4, { except: [] }), 3)
  await Promise.all([clients[0].waitFor(2), clients[1].waitFor(3), clients[2].waitFor(3)])
  t.same(clients.map((client) => client.messages), [[3, 4], [1, 3, 4], [1, 2, 4]])

  t.same(targets.map((target) => target.exceptIds === null ? null : [...target.exceptIds]), [
    [ids[0]], [ids[1]], [ids[2], 'an-id-of-another-instance'], null
  ], 'ids reach the adapter as exceptIds; sockets, which live on this instance only, do not reach it')
  t.same(targets.map((target) => target.rooms), [['r'], ['r'], null, ['r', 'x']], 'with the rooms of each broadcast')

  t.throws(() => manager.broadcast('r', 5, { except: '' }), { code: 'FST_NEXUS_UNKNOWN_SOCKET', message: /received the string ""/ })
  t.throws(() => manager.broadcast('r', 5, { except: [sockets[0], 5 as never] }), { code: 'FST_NEXUS_UNKNOWN_SOCKET' })
})
