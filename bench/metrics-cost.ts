/**
 * What the Prometheus metrics add to one broadcast, without sockets:
 * `node --import tsx bench/metrics-cost.ts` (after `npm run build`) times
 * broadcasts to a room with no member (the work that does not depend on the
 * room's size: encoding, the trace, the histograms, the room class), metrics
 * off, on, and off again, in one process; best of 5 runs of 500,000 each.
 */
import Fastify from 'fastify'
import { Registry } from 'prom-client'
import nexusRealtime from 'fastify-nexus-realtime'

async function nsPerBroadcast (metrics: boolean): Promise<number> {
  const app = Fastify()
  await app.register(nexusRealtime, metrics ? { metrics: { registry: new Registry() } } : {})
  await app.ready()
  const manager = app.getWebSocket()
  manager.createRoom('chat:1')
  const data = { type: 'tick', seq: 1 }
  for (let i = 0; i < 200_000; i++) manager.broadcast('chat:1', data)
  let best = Infinity
  for (let run = 0; run < 5; run++) {
    const start = process.hrtime.bigint()
    for (let i = 0; i < 500_000; i++) manager.broadcast('chat:1', data)
    best = Math.min(best, Number(process.hrtime.bigint() - start) / 500_000)
  }
  await app.close()
  return best
}

async function main (): Promise<void> {
  const off = await nsPerBroadcast(false)
  const on = await nsPerBroadcast(true)
  const offAgain = await nsPerBroadcast(false)
  console.log(`per broadcast to an empty room: metrics off ${off.toFixed(0)} ns, on ${on.toFixed(0)} ns, off again ${offAgain.toFixed(0)} ns`)
  console.log(`the metrics add ${(on - Math.min(off, offAgain)).toFixed(0)} ns per broadcast, whatever the room's size`)
}

main().catch((error: unknown) => {
  console.error(error)
  process.exitCode = 1
})
