import t from 'tap'
import { Registry } from 'prom-client'
import { parseExposition, seriesCount, valueOf } from './helpers/prometheus'
import { build, connect, listen, rejected } from './helpers/server'
import { until } from './helpers/wait'

// The series of a scrape do not grow with rooms, users or connections: with
// 100,000 rooms in use, every one of them broadcast to, each of another room
// class, and every other label moved (two routes, refusals, close codes,
// handler errors, history), a scrape stays under 500 series.

t.setTimeout(180_000)

const ROOMS = 100_000
const SOCKETS = 10

t.test(`with ${ROOMS.toLocaleString('en-US')} rooms in use the scrape stays under 500 series`, async (t) => {
  const registry = new Registry()
  const app = await build(t, {
    metrics: { registry },
    roomPolicies: { 'h0:*': { history: { size: 10, ttl: 60_000 } } },
    heartbeat: false
  })
  app.ws('/ws/rooms/:shard', {
    auth: (ctx) => { if (ctx.query.token !== 'ok') throw new Error('refused') },
    onMessage: () => { throw new Error('handler error') }
  })
  app.ws('/ws/other', { onConnect: async () => { throw new Error('connect error') } })
  const base = await listen(app)
  const manager = app.getWebSocket()

  const clients = []
  for (let i = 0; i < SOCKETS; i++) clients.push(await connect(`${base}/ws/rooms/${i}?token=ok`))
  await until(() => manager.connections === SOCKETS)
  // Rooms joined by server code on a few sockets: each room name its own
  // class under the default roomClass (the text before ':'), so that the
  // cap, not the names, bounds the room_class label.
  const sockets = [...app.websocketServer.clients]
  for (let i = 0; i < ROOMS; i++) manager.joinRoom(`h${i}:room`, sockets[i % SOCKETS])
  t.equal(manager.stats().rooms, ROOMS)
  for (let i = 0; i < ROOMS; i++) manager.broadcast(`h${i}:room`, i)
  manager.broadcast(['h1:room', 'h2:room'], 'mixed')
  manager.broadcastAll('all')

  t.match((await rejected(`${base}/ws/rooms/x?token=no`)).message, /401/)
  clients[0].send('"boom"')
  const failed = await connect(`${base}/ws/other`)
  await failed.closed()
  clients[1].close(1000)
  clients[2].close(4000)
  clients[3].ws.terminate()
  await until(() => manager.connections === SOCKETS - 3 && manager.stats().errors >= 2, 20_000)

  const started = process.hrtime.bigint()
  const text = await registry.metrics()
  const scrapeMs = Number(process.hrtime.bigint() - started) / 1e6
  const families = parseExposition(text)
  const series = seriesCount(families)
  t.ok(series < 500, `${series} series in the scrape`)
  t.equal(valueOf(families, 'nexus_rooms'), ROOMS - 3 * (ROOMS / SOCKETS), 'rooms of the closed sockets are gone')
  const classes = new Set(families.get('nexus_broadcast_duration_seconds')?.samples.map((sample) => sample.labels.room_class))
  t.same([...classes].sort(), ['all', 'h0', 'h1', 'h2', 'h3', 'h4', 'h5', 'h6', 'h7', 'h8', 'h9', 'mixed', 'other'], 'ten classes, then other')
  const roomNames = [...families.values()].flatMap((family) => family.samples).flatMap((sample) => Object.values(sample.labels)).filter((value) => value.endsWith(':room'))
  t.same(roomNames, [], 'no label carries a room name')
  t.comment(`scrape of ${ROOMS} rooms: ${scrapeMs.toFixed(1)} ms, ${text.length} bytes, ${series} series`)
  for (const client of clients) client.close()
})
