import t from 'tap'
import diagnosticsChannel from 'node:diagnostics_channel'
import { build, connect, listen } from './helpers/server'
import { until } from './helpers/wait'

// Metrics cost nothing when they are off: neither prom-client nor the
// plugin's metrics code is loaded, and nothing listens on the channels. This
// file imports no prom-client of its own, so that the module cache tells.

const loaded = (part: string): string[] => Object.keys(require.cache).filter((file) => file.includes(part))

t.test('an app without the metrics option loads neither prom-client nor lib/metrics, and subscribes to nothing', async (t) => {
  const app = await build(t, { heartbeat: false })
  app.ws('/ws', { onMessage: (socket, message) => { app.getWebSocket().broadcast('chat:1', message); socket.send('ok') } })
  const client = await connect(`${await listen(app)}/ws`)
  client.send('"hi"')
  await client.waitFor(1)
  t.same(loaded('/node_modules/prom-client/'), [], 'prom-client is not loaded')
  t.same(loaded('/lib/metrics/'), [], 'the metrics code is not loaded')
  for (const name of ['nexus.connection.open', 'nexus.connection.close', 'nexus.connection.refused', 'nexus.deliver', 'nexus.redis.publish', 'nexus.redis.lag']) {
    t.equal(diagnosticsChannel.channel(name).hasSubscribers, false, `nobody listens on ${name}`)
  }
  for (const name of ['nexus.auth', 'nexus.connect', 'nexus.message', 'nexus.subscribe', 'nexus.publish']) {
    t.equal(diagnosticsChannel.tracingChannel(name).start.hasSubscribers, false, `nobody traces ${name}`)
  }
  client.close()
  await until(() => app.getWebSocket().connections === 0)

  // The same look at the cache sees them once the option is set.
  const withMetrics = await build(t, { metrics: true })
  withMetrics.ws('/ws', {})
  t.not(loaded('/node_modules/prom-client/').length, 0, 'the option loads prom-client')
  t.not(loaded('/lib/metrics/').length, 0, 'and the metrics code')
})
