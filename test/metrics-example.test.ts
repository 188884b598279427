import t from 'tap'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { METRICS } from '../lib/metrics/definitions'
import { startExample, printed } from './helpers/examples'
import { root } from './helpers/processes'
import { parseExposition, valueOf } from './helpers/prometheus'
import { connect, rejected } from './helpers/server'
import { until } from './helpers/wait'

// examples/metrics run as its own process: its GET /metrics passes the strict
// exposition-format reader (helpers/prometheus.ts: what `promtool check
// metrics` checks), with the plugin's metrics beside prom-client's own; and
// examples/grafana-dashboard.json only graphs metrics the plugin exports.

t.setTimeout(180_000)

t.test('examples/metrics: /metrics is valid exposition format and counts what happened', async (t) => {
  const example = await startExample(t, 'examples/metrics/server.ts')
  await printed(example, `Metrics at http://localhost:${new URL(example.url).port}/metrics`)

  const alice = await connect(`${example.wsUrl}/ws/chat/lobby?token=alice`)
  const bob = await connect(`${example.wsUrl}/ws/chat/lobby?token=bob`)
  t.teardown(() => { alice.close(); bob.close() })
  t.match((await rejected(`${example.wsUrl}/ws/chat/lobby`)).message, /401/)
  alice.send({ text: 'hi "bob"\n' })
  await bob.waitFor(1)
  t.same(bob.messages[0], { from: 'alice', message: { text: 'hi "bob"\n' } })
  const closed = bob.closed()
  bob.close(4000)
  await closed

  // The close reaches the server a moment after the client saw it.
  let text = ''
  await until(async () => {
    const response = await fetch(`${example.url}/metrics`)
    t.match(response.headers.get('content-type'), /^text\/plain; version=0\.0\.4/)
    text = await response.text()
    return valueOf(parseExposition(text), 'nexus_closes_total', { route: '/ws/chat/:room', code: '4xxx' }) === 1
  }, 10_000, 'the close counted')
  const families = parseExposition(text)
  t.ok(families.has('process_cpu_seconds_total') && families.has('nodejs_heap_size_used_bytes'), 'prom-client\'s own metrics are there too')
  t.equal(valueOf(families, 'nexus_connections', { route: '/ws/chat/:room' }), 1)
  t.equal(valueOf(families, 'nexus_handshakes_total', { route: '/ws/chat/:room', outcome: 'accepted' }), 2)
  t.equal(valueOf(families, 'nexus_handshakes_total', { route: '/ws/chat/:room', outcome: 'auth' }), 1)
  t.equal(valueOf(families, 'nexus_messages_received_total'), 1)
  t.equal(valueOf(families, 'nexus_messages_sent_total'), 2)
  t.equal(valueOf(families, 'nexus_broadcast_recipients_sum', { room_class: 'chat' }), 2)
  for (const metric of METRICS.filter((metric) => metric.family === 'core')) t.ok(families.has(metric.name), `${metric.name} is exported`)
})

// ------------------------------------------------------------ the Grafana dashboard

/** Every name a scrape can show: metric names, and a histogram's _bucket, _sum and _count. */
const EXPORTED = new Map<string, readonly string[]>()
for (const metric of METRICS) {
  if (metric.type === 'histogram') {
    EXPORTED.set(`${metric.name}_bucket`, [...metric.labels, 'le'])
    EXPORTED.set(`${metric.name}_sum`, metric.labels)
    EXPORTED.set(`${metric.name}_count`, metric.labels)
  } else {
    EXPORTED.set(metric.name, metric.labels)
  }
}

/** Grafana's reference to the dashboard's data source variable. */
const DATASOURCE = '$' + '{datasource}'

/** Labels Prometheus adds to every series of a scrape target. */
const TARGET_LABELS = ['instance', 'job']

/** The Prometheus query of every panel target, with the panel's title. */
function queries (dashboard: any): Array<{ title: string, expr: string }> {
  const found: Array<{ title: string, expr: string }> = []
  const visit = (panels: any[]): void => {
    for (const panel of panels) {
      if (Array.isArray(panel.panels)) visit(panel.panels)
      for (const target of panel.targets ?? []) found.push({ title: panel.title, expr: target.expr })
    }
  }
  visit(dashboard.panels)
  return found
}

t.test('examples/grafana-dashboard.json: a Grafana dashboard whose every query names exported metrics and labels', async (t) => {
  const dashboard = JSON.parse(readFileSync(join(root, 'examples', 'grafana-dashboard.json'), 'utf8'))
  t.type(dashboard.title, 'string')
  t.type(dashboard.uid, 'string')
  t.ok(Number.isInteger(dashboard.schemaVersion) && dashboard.schemaVersion >= 36, 'a current schemaVersion')
  t.ok(Array.isArray(dashboard.panels) && dashboard.panels.length > 0, 'panels')
  const datasource = dashboard.templating?.list?.find((variable: any) => variable.type === 'datasource')
  t.match(datasource, { name: 'datasource', query: 'prometheus' }, 'a Prometheus data source variable')

  const ids = new Set<number>()
  const used = new Set<string>()
  const all = queries(dashboard)
  t.ok(all.length >= 10, `${all.length} queries`)
  for (const panel of dashboard.panels) {
    t.notOk(ids.has(panel.id), `panel id ${panel.id} once`)
    ids.add(panel.id)
    t.match(panel.gridPos, { x: Number, y: Number, w: Number, h: Number }, `${panel.title}: placed`)
    if (panel.type !== 'row') t.match(panel.datasource, { uid: DATASOURCE }, `${panel.title}: on the data source variable`)
  }
  for (const { title, expr } of all) {
    t.type(expr, 'string', `${title}: a query`)
    const names = expr.match(/\bnexus_[a-z0-9_]+/g) ?? []
    t.not(names.length, 0, `${title}: names a metric of the plugin`)
    for (const name of names) {
      const labels = EXPORTED.get(name)
      t.ok(labels !== undefined, `${title}: ${name} is exported`)
      used.add(name.replace(/_(bucket|sum|count)$/, ''))
      // Label matchers right after the name: {route="…", code=~"…"}
      const selector = new RegExp(`${name}\\{([^}]*)\\}`, 'g')
      for (const [, matchers] of expr.matchAll(selector)) {
        for (const [, label] of matchers.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!=|!~|=)/g)) {
          t.ok(labels?.includes(label) === true || TARGET_LABELS.includes(label), `${title}: ${name} has the label ${label}`)
        }
      }
    }
    // Aggregations keep labels the metrics have (by (route, le), …).
    for (const [, list] of expr.matchAll(/\b(?:by|without)\s*\(([^)]*)\)/g)) {
      for (const label of list.split(',').map((part) => part.trim()).filter(Boolean)) {
        t.ok(names.some((name) => EXPORTED.get(name)?.includes(label)), `${title}: grouped by ${label}, a label of its metrics`)
      }
    }
  }
  t.same(METRICS.map((metric) => metric.name).filter((name) => !used.has(name)), [], 'every metric is on the dashboard')
})
