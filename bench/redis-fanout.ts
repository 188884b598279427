/**
 * Cross-instance fan-out through Redis: fastify-nexus-realtime's Redis adapter
 * against socket.io 4 with @socket.io/redis-adapter, on one Redis and on a
 * Redis Cluster with sharded pub/sub, all four measured in the same run.
 *
 *   npm run bench:redis [-- --quick] [--repeats=N] [--impls=a,b] [--replicas=1] [--no-write]
 *
 * (`npm run build && node --import tsx bench/redis-fanout.ts …`.) Needs a
 * Redis at REDIS_URL (default redis://127.0.0.1:6379); starts a Redis Cluster
 * of its own for the sharded implementations (test/helpers/redis-cluster.ts,
 * 3 masters, `--masters`, `--replicas`) and stops it at the end. The plugin is
 * loaded as users load it (`fastify-nexus-realtime`, i.e. dist/).
 *
 * | impl                | server                                                        |
 * | nexus               | `redisAdapter({ url })` on the single Redis                   |
 * | socket.io           | `createAdapter(pub, sub)` on the single Redis                 |
 * | nexus-sharded       | `redisAdapter({ cluster: nodes })` (SSUBSCRIBE / SPUBLISH)    |
 * | socket.io-sharded   | `createShardedAdapter(pub, sub)`, ioredis `Cluster` clients   |
 *
 * For each implementation, three processes besides Redis and this one
 * (bench/redis-child.ts): instance A (the publisher, no clients), instance B
 * and a client process with N raw `ws` clients connected to B, all in one
 * room; loopback only, not pinned. A broadcast on A reaches B's clients only
 * through Redis.
 *
 * - burst: A broadcasts M messages in one event-loop turn; the round ends
 *   when every client has all M (each client checks the order). Rate =
 *   N × M deliveries / (last arrival − A's first broadcast), both on
 *   CLOCK_MONOTONIC.
 * - latency: on the N = 100 processes, A broadcasts one message every 5 ms
 *   (on a schedule), each carrying the time it was sent; p50 / p90 / p99 /
 *   p99.9 / max of the time until a client got it, one sample per client and
 *   message, pooled over the rounds.
 *
 * Rounds of the implementations are interleaved (forward, then backward);
 * a figure is the median round, a ratio the median of the paired rounds'
 * ratios (each round against the other implementation's of the same repeat),
 * with their range: on a shared machine the load drifts. The clients are raw
 * `ws` clients for all: for socket.io they speak its wire protocol (engine.io
 * v4 framing, `42["m",…]` events) themselves, so the client side costs the
 * same. Every loop is bounded in messages and every wait in time; the run
 * as a whole too (quick 6 min, full 20 min). BENCH_PROF_DIR=<dir> makes every
 * child write a CPU profile there.
 */
import os from 'node:os'
import {
  codeState, deploy, fmt, fmtPaired, IMPL_LABELS, isSocketIo, machine, markdownTable, measure, numberArg, openTargets, paired,
  parseImpls, percentiles, REDIS_IMPLS, REDIS_URL, checkAlive, socketIoMatch,
  teardown, versionOf, writeResults, type Context, type Deployment, type Paired,
  type Percentiles, type RedisImpl, type Round, isSharded
} from './lib/redis-bench'
import { median } from './lib/stats'

interface Scenario {
  n: number
  m: number
}

interface ScenarioResult extends Scenario {
  /** per implementation, per repeat: the round (undefined: not run) */
  rounds: Partial<Record<RedisImpl, Array<Round | undefined>>>
  broken: Partial<Record<RedisImpl, string>>
}

interface LatencyResult {
  n: number
  count: number
  interval: number
  repeats: number
  rounds: Partial<Record<RedisImpl, Round[]>>
}

const rate = (round: Round | undefined): number | undefined => round?.ok === true ? round.deliveries / (round.ms / 1000) : undefined

async function orchestrate (argv: string[]): Promise<void> {
  const startedAt = new Date()
  const began = Date.now()
  const quick = argv.includes('--quick')
  const write = !argv.includes('--no-write')
  const impls = parseImpls(argv, REDIS_IMPLS)
  const repeats = numberArg(argv, 'repeats', quick ? 3 : 7)
  const masters = numberArg(argv, 'masters', 3)
  const replicas = numberArg(argv, 'replicas', 0)
  const scenarios: Scenario[] = quick ? [{ n: 100, m: 500 }, { n: 1000, m: 50 }] : [{ n: 100, m: 2000 }, { n: 1000, m: 200 }]
  const latency = quick ? { count: 300, interval: 5, repeats: 2 } : { count: 1000, interval: 5, repeats: 3 }

  const targets = await openTargets(impls, masters, replicas, quick ? 6 * 60_000 : 20 * 60_000)
  const { single, cluster, clusterMeter, clusterError } = targets
  try {
    const code = codeState()
    const box = machine()
    const environment = {
      node: process.version,
      machine: box.text,
      redis: `Redis ${single.version} at ${REDIS_URL}`,
      cluster: cluster === null ? (impls.some(isSharded) ? clusterError : 'not started') : `${masters} masters, ${replicas} replica(s) each, Redis ${clusterMeter?.version ?? '?'}: ${cluster.nodes.map(({ host, port }) => `${host}:${port}`).join(', ')}`,
      versions: { ioredis: versionOf('ioredis'), 'socket.io': versionOf('socket.io'), '@socket.io/redis-adapter': versionOf('@socket.io/redis-adapter') },
      code: code.text,
      loadAverageBefore: os.loadavg()
    }
    console.log(`Cross-instance fan-out through Redis, ${quick ? 'quick' : 'full'} run: ${impls.join(', ')}; ${repeats} repeats; node ${process.version}; ${box.text}; processes not pinned`)
    console.log(`${environment.redis}; cluster: ${environment.cluster}`)
    console.log(`Measured: ${code.text}`)
    console.log('A publishes, B\'s clients receive: every message crosses Redis.\n')

    const results: ScenarioResult[] = []
    let latencyResult: LatencyResult | null = null
    for (const [index, { n, m }] of scenarios.entries()) {
      const deployments: Deployment[] = []
      for (const impl of impls) {
        const d = await deploy(impl, { servers: 1, clientProcesses: 1, clients: n, prefix: `bench-${process.pid}-${n}-${impl}`, cluster: cluster?.nodes ?? null, clusterError })
        if (d.broken !== undefined) console.error(`${impl}: cannot run: ${d.broken}`)
        deployments.push(d)
      }
      const context: Context = { deployments, single, cluster: clusterMeter }
      const result: ScenarioResult = { n, m, rounds: {}, broken: {} }
      const run = async (d: Deployment, kind: 'burst' | 'paced', count: number, interval?: number): Promise<Round | undefined> => {
        checkAlive(d)
        if (d.broken !== undefined) return undefined
        const round = await measure(d, context, kind, count, interval)
        if (!round.ok) console.error(`${d.impl}: round failed: ${round.error ?? ''}`)
        checkAlive(d)
        return round
      }
      console.log(`burst N=${n} M=${m}: warm-up`)
      for (const d of deployments) for (let i = 0; i < 2; i++) await run(d, 'burst', m)
      for (let r = 0; r < repeats; r++) {
        const order = r % 2 === 0 ? deployments : [...deployments].reverse()
        for (const d of order) (result.rounds[d.impl] ??= [])[r] = await run(d, 'burst', m)
        console.log(`burst N=${n} M=${m}: repeat ${r + 1}/${repeats}: ${deployments.map((d) => `${d.impl} ${fmt(rate(result.rounds[d.impl]?.[r]))}/s`).join(', ')}`)
      }
      if (index === 0) {
        latencyResult = { n, ...latency, rounds: {} }
        for (let r = 0; r < latency.repeats; r++) {
          const order = r % 2 === 0 ? deployments : [...deployments].reverse()
          for (const d of order) {
            const round = await run(d, 'paced', latency.count, latency.interval)
            if (round !== undefined) (latencyResult.rounds[d.impl] ??= []).push(round)
          }
          console.log(`latency N=${n}, 1 per ${latency.interval} ms: round ${r + 1}/${latency.repeats}`)
        }
      }
      for (const d of deployments) if (d.broken !== undefined) result.broken[d.impl] = d.broken
      await teardown(deployments)
      results.push(result)
    }

    const wallSeconds = (Date.now() - began) / 1000
    const text = report(impls, results, latencyResult, { quick, repeats, startedAt, environment, wallSeconds })
    console.log(`\n${text}`)
    if (write) {
      const files = writeResults('redis-fanout', startedAt, text, {
        date: startedAt.toISOString(),
        command: `node --import tsx bench/redis-fanout.ts ${argv.join(' ')}`.trim(),
        mode: quick ? 'quick' : 'full',
        wallSeconds,
        environment: { ...environment, loadAverageAfter: os.loadavg() },
        plan: { impls, repeats, scenarios, latency: { n: scenarios[0].n, ...latency }, masters, replicas },
        scenarios: results.map((s) => ({ ...s, rounds: Object.fromEntries(Object.entries(s.rounds).map(([impl, rounds]) => [impl, rounds.map((round) => round === undefined ? null : { ...round, rate: rate(round) })])) })),
        latency: latencyResult === null
          ? null
          : {
              ...latencyResult,
              rounds: Object.fromEntries(Object.entries(latencyResult.rounds).map(([impl, rounds]) => [impl, rounds.map(({ latencies, ...rest }) => ({ ...rest, percentiles: percentiles(latencies ?? []) }))])),
              pooled: Object.fromEntries(Object.entries(latencyResult.rounds).map(([impl, rounds]) => [impl, percentiles(rounds.flatMap((round) => round.latencies ?? []))]))
            }
      })
      console.log(`written: ${files.join(', ')}`)
    }
  } finally {
    await targets.close()
  }
}

// ------------------------------------------------------------------ the report

interface ReportInfo {
  quick: boolean
  repeats: number
  startedAt: Date
  environment: Record<string, unknown> & { machine: string, redis: string, cluster: string, code: string }
  wallSeconds: number
}

function rates (s: ScenarioResult, impl: RedisImpl): Array<number | undefined> {
  return (s.rounds[impl] ?? []).map(rate)
}

/** × nexus and × the matching socket.io of `impl`'s deliveries/s in `s` (paired rounds). */
function ratios (s: ScenarioResult, impl: RedisImpl): { vsNexus: Paired | undefined, vsSocketIo: Paired | undefined } {
  return {
    vsNexus: impl === 'nexus' ? undefined : paired(rates(s, impl), rates(s, 'nexus')),
    vsSocketIo: isSocketIo(impl) ? undefined : paired(rates(s, impl), rates(s, socketIoMatch(impl)))
  }
}

function medianRate (s: ScenarioResult, impl: RedisImpl): number | undefined {
  const ok = rates(s, impl).filter((value): value is number => value !== undefined)
  return ok.length === 0 ? undefined : median(ok)
}

function statusOf (s: ScenarioResult, impl: RedisImpl): string {
  const rounds = s.rounds[impl] ?? []
  const failed = rounds.filter((round) => round !== undefined && !round.ok).length
  const noisy = rounds.filter((round) => round?.noise.flagged === true).length
  return (noisy > 0 ? ` ⚠${noisy}` : '') + (failed > 0 ? ` ✗${failed}` : '')
}

function report (impls: readonly RedisImpl[], scenarios: readonly ScenarioResult[], latency: LatencyResult | null, info: ReportInfo): string {
  const pooled = (impl: RedisImpl): Percentiles | undefined => {
    const samples = (latency?.rounds[impl] ?? []).filter((round) => round.ok).flatMap((round) => round.latencies ?? [])
    return samples.length === 0 ? undefined : percentiles(samples)
  }
  const brokenOf = (impl: RedisImpl): string | undefined => scenarios.map((s) => s.broken[impl]).find((why) => why !== undefined)

  // The summary: one row per implementation, to paste into the README.
  const head = ['implementation']
  for (const { n, m } of scenarios) head.push(`N=${n.toLocaleString('en-US')}, M=${m.toLocaleString('en-US')}: deliveries/s`, '× nexus', '× socket.io, same Redis')
  head.push('latency p50', 'p90', 'p99', 'p99.9', 'max (ms)')
  const rows = impls.map((impl) => {
    const cells = [IMPL_LABELS[impl]]
    for (const s of scenarios) {
      const { vsNexus, vsSocketIo } = ratios(s, impl)
      cells.push(`${fmt(medianRate(s, impl))}${statusOf(s, impl)}`, fmtPaired(vsNexus), fmtPaired(vsSocketIo))
    }
    const p = pooled(impl)
    cells.push(fmt(p?.p50, 2), fmt(p?.p90, 2), fmt(p?.p99, 2), fmt(p?.p999, 2), fmt(p?.max, 1))
    return cells
  })
  const summary = markdownTable(head, rows, (i) => i > 0)

  // Per scenario: where the time and the CPU went.
  const details = scenarios.map((s) => {
    const deliveries = s.n * s.m
    const detailRows = impls.map((impl) => {
      const ok = (s.rounds[impl] ?? []).filter((round): round is Round => round?.ok === true)
      const values = ok.map((round) => round.deliveries / (round.ms / 1000))
      const med = (pick: (round: Round) => number): number | undefined => ok.length === 0 ? undefined : median(ok.map(pick))
      const range = values.length === 0 ? '–' : `${fmt(Math.min(...values))}–${fmt(Math.max(...values))}`
      return [
        IMPL_LABELS[impl],
        `${ok.length}/${(s.rounds[impl] ?? []).filter((round) => round !== undefined).length}`,
        fmt(med((round) => round.ms)),
        `${fmt(medianRate(s, impl))} (${range})`,
        String(ok.reduce((sum, round) => sum + round.outOfOrder, 0)),
        fmt(med((round) => round.cpu.publisher)),
        fmt(med((round) => round.cpu.servers[0] * 1000 / deliveries)),
        fmt(med((round) => round.cpu.clients[0] * 1000 / deliveries)),
        fmt(med((round) => round.cpu.redis)),
        `${fmt(med((round) => (round.commands?.publish ?? Number.NaN) / round.messages), 2)} / ${fmt(med((round) => (round.commands?.spublish ?? Number.NaN) / round.messages), 2)}`,
        String((s.rounds[impl] ?? []).filter((round) => round?.noise.flagged === true).length)
      ]
    })
    return `#### Burst, N = ${s.n.toLocaleString('en-US')} clients on B, M = ${s.m.toLocaleString('en-US')} messages (${deliveries.toLocaleString('en-US')} deliveries per round)\n\n` +
      markdownTable(['implementation', 'rounds ok', 'round, ms (median)', 'deliveries/s, median (range)', 'out of order', 'A\'s CPU, ms', 'B\'s CPU, µs/delivery', 'clients\' CPU, µs/delivery', 'Redis CPU, ms', 'PUBLISH / SPUBLISH per message', 'noisy rounds'], detailRows, (i) => i > 0)
  })

  let latencyText = ''
  if (latency !== null) {
    const latencyRows = impls.map((impl) => {
      const rounds = latency.rounds[impl] ?? []
      const ok = rounds.filter((round) => round.ok)
      const p = pooled(impl)
      const seconds = ok.reduce((sum, round) => sum + round.ms, 0) / 1000
      const cores = (pick: (round: Round) => number): string => seconds === 0 ? '–' : fmt(ok.reduce((sum, round) => sum + pick(round), 0) / 1000 / seconds, 2)
      return [
        IMPL_LABELS[impl],
        `${ok.length}/${rounds.length}`,
        p === undefined ? '–' : p.count.toLocaleString('en-US'),
        fmt(p?.p50, 2), fmt(p?.p90, 2), fmt(p?.p99, 2), fmt(p?.p999, 2), fmt(p?.max, 1),
        String(ok.filter((round) => (round.lagMs ?? 0) > Math.max(20, 0.1 * round.ms)).length),
        cores((round) => round.cpu.servers[0]),
        cores((round) => round.cpu.redis),
        String(rounds.filter((round) => round.noise.flagged).length)
      ]
    })
    latencyText = `#### Latency, N = ${latency.n} clients on B, 1 message per ${latency.interval} ms (${Math.round(1000 / latency.interval * latency.n).toLocaleString('en-US')} deliveries/s), ${latency.count.toLocaleString('en-US')} messages × ${latency.repeats} rounds\n\n` +
      markdownTable(['implementation', 'rounds ok', 'samples', 'p50, ms', 'p90', 'p99', 'p99.9', 'max', 'saturated rounds', 'B\'s CPU, cores', 'Redis CPU, cores', 'noisy rounds'], latencyRows, (i) => i > 0)
  }

  const broken = impls.flatMap((impl) => {
    const why = brokenOf(impl)
    return why === undefined ? [] : [`- **${impl} did not run**: ${why}`]
  })
  const { environment: env } = info
  return [
    `## Cross-instance fan-out through Redis (${info.quick ? 'quick' : 'full'} run, ${info.startedAt.toISOString().slice(0, 16).replace('T', ' ')} UTC)`,
    '',
    `${env.machine}; node ${process.version}; processes not pinned. ${env.redis}; Redis Cluster: ${env.cluster}. Measured: ${env.code}. ${info.repeats} repeats per implementation, interleaved; wall time ${info.wallSeconds.toFixed(0)} s.`,
    '',
    ...(broken.length === 0 ? [] : [...broken, '']),
    summary,
    '',
    `Deliveries/s: median of the burst rounds (N clients × M messages ÷ A's first broadcast → the last arrival). × nexus, × socket.io: median of the paired rounds' ratios of deliveries/s (the same repeat), range in brackets; above 1 is faster than the implementation named. The socket.io variant on the same kind of Redis: \`socket.io\` for \`nexus\`, \`socket.io-sharded\` for \`nexus-sharded\`. Latency: A's broadcast call → a client on B has parsed the message, one sample per client and message, pooled over the rounds (N = ${latency?.n ?? '–'}, 1 message per ${latency?.interval ?? '–'} ms). ⚠n: n rounds in which processes outside the benchmark used more than 0.1 core; ✗n: n rounds that failed.`,
    '',
    ...details.flatMap((text) => [text, '']),
    latencyText,
    '',
    'A\'s CPU: the publisher\'s, ms per round; B\'s: the instance with the clients, per delivery; clients\': the process of the N raw ws clients, per delivery; Redis: `used_cpu_user + used_cpu_sys` of the Redis server (the cluster\'s nodes together), ms per round (latency: cores, i.e. CPU-s per s). PUBLISH / SPUBLISH per message: the calls Redis counted (INFO commandstats) during the round ÷ the messages A broadcast, on the single Redis (which may also count other clients\' commands) or the cluster (the benchmark\'s own). Saturated: the last message arrived more than 20 ms and 10 % of the round after A had sent it: B or its clients fell behind, and the latency is mostly queueing.',
    ''
  ].join('\n')
}

// ------------------------------------------------------------------ entry

orchestrate(process.argv.slice(2)).then(() => process.exit(0), (error: unknown) => {
  console.error(error)
  process.exit(1)
})
