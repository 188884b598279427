/**
 * Scaling across processes on one machine: 1 … N instances, each with a Redis
 * adapter, the same clients spread over them, one publisher.
 *
 *   npm run bench:scaling [-- --quick] [--n=1,2,4] [--impls=a,b] [--clients=C] [--messages=M]
 *                         [--client-processes=K] [--repeats=R] [--interval=MS] [--replicas=1] [--no-write]
 *
 * (`npm run build && node --import tsx bench/redis-scaling.ts …`.) Needs a
 * Redis at REDIS_URL (default redis://127.0.0.1:6379); starts a Redis Cluster
 * of its own for the sharded implementations (test/helpers/redis-cluster.ts)
 * and stops it at the end.
 *
 * For each N (default: 1, 2, 4 … up to the cores, the cores, and cores + 2
 * and cores + 4 to show oversubscription; quick: 1, 2, cores + 2) and each
 * implementation (default `nexus`, `nexus-sharded`, `socket.io`; all four of
 * bench/redis-fanout.ts can be named): one publisher instance (no clients),
 * N instances with C raw `ws` clients in all (client g on instance g mod N),
 * held by K client processes (default: as many as cores, whatever N, so
 * that only the number of instances changes), all in one room; the
 * processes of bench/redis-child.ts, not pinned (the scheduler spreads them;
 * with more processes than cores, pinning would only choose which share a
 * core). Per N, the implementations run interleaved as in redis-fanout.ts:
 *
 * - burst: the publisher broadcasts M messages in one event-loop turn;
 *   deliveries/s = C × M ÷ (the last arrival − its first broadcast);
 * - CPU of every process over each burst round (process.cpuUsage(), Redis:
 *   INFO used_cpu_*), as cores (CPU-s per s of the round);
 * - latency at a steady rate (one message every `--interval` ms, 50: with
 *   1,000 clients, 20,000 deliveries/s, the rate of redis-fanout.ts's latency
 *   rounds), p50 / p99 over every client and message.
 *
 * Every wait is bounded, and the run as a whole (quick 6 min, full 20 min).
 */
import os from 'node:os'
import {
  checkAlive, codeState, deploy, fmt, fmtPaired, isSharded, machine, markdownTable, measure,
  numberArg, openTargets, paired, parseImpls, percentiles, REDIS_URL, teardown, versionOf,
  writeResults, type Context, type Deployment, type RedisImpl, type Round
} from './lib/redis-bench'
import { median } from './lib/stats'

interface Step {
  n: number
  /** per implementation, per repeat */
  bursts: Partial<Record<RedisImpl, Array<Round | undefined>>>
  paced: Partial<Record<RedisImpl, Round[]>>
  broken: Partial<Record<RedisImpl, string>>
}

const rate = (round: Round | undefined): number | undefined => round?.ok === true ? round.deliveries / (round.ms / 1000) : undefined

/** 1, 2, 4 … below the cores, the cores, then cores + 2 and cores + 4 (quick: 1, 2, cores + 2). */
function defaultSteps (cores: number, quick: boolean): number[] {
  const steps = new Set<number>([1, Math.min(2, cores), cores, cores + 2])
  if (!quick) {
    for (let n = 4; n < cores; n *= 2) steps.add(n)
    steps.add(cores + 4)
  }
  return [...steps].sort((a, b) => a - b)
}

async function orchestrate (argv: string[]): Promise<void> {
  const startedAt = new Date()
  const began = Date.now()
  const quick = argv.includes('--quick')
  const write = !argv.includes('--no-write')
  const box = machine()
  const impls = parseImpls(argv, ['nexus', 'socket.io', 'nexus-sharded'])
  const nArg = argv.find((arg) => arg.startsWith('--n='))
  const steps = nArg === undefined ? defaultSteps(box.cores, quick) : nArg.slice(4).split(',').map(Number)
  if (steps.some((n) => !Number.isInteger(n) || n < 1)) throw new Error(`--n takes whole numbers ≥ 1, not "${nArg ?? ''}"`)
  const clients = numberArg(argv, 'clients', quick ? 500 : 1000)
  const messages = numberArg(argv, 'messages', quick ? 100 : 200)
  const clientProcesses = numberArg(argv, 'client-processes', box.cores)
  const repeats = numberArg(argv, 'repeats', quick ? 2 : 5)
  const interval = numberArg(argv, 'interval', 50)
  const latency = { count: quick ? 60 : 100, repeats: quick ? 1 : 2 }
  const masters = numberArg(argv, 'masters', 3)
  const replicas = numberArg(argv, 'replicas', 0)

  const targets = await openTargets(impls, masters, replicas, quick ? 6 * 60_000 : 20 * 60_000)
  const { single, cluster, clusterMeter, clusterError } = targets
  try {
    const code = codeState()
    const environment = {
      node: process.version,
      machine: box.text,
      cores: box.cores,
      redis: `Redis ${single.version} at ${REDIS_URL}`,
      cluster: cluster === null ? (impls.some(isSharded) ? clusterError : 'not started') : `${masters} masters, ${replicas} replica(s) each, Redis ${clusterMeter?.version ?? '?'}`,
      versions: { ioredis: versionOf('ioredis'), 'socket.io': versionOf('socket.io'), '@socket.io/redis-adapter': versionOf('@socket.io/redis-adapter') },
      code: code.text,
      loadAverageBefore: os.loadavg()
    }
    console.log(`Scaling across processes, ${quick ? 'quick' : 'full'} run: this machine has ${box.text}.`)
    console.log(`N = ${steps.join(', ')} instances; ${impls.join(', ')}; ${clients} clients in ${Math.min(clientProcesses, clients)} client process(es); bursts of ${messages} messages × ${repeats} repeats; latency at 1 message per ${interval} ms; not pinned`)
    console.log(`${environment.redis}; cluster: ${environment.cluster}; measured: ${code.text}\n`)

    const results: Step[] = []
    for (const n of steps) {
      const deployments: Deployment[] = []
      for (const impl of impls) {
        const d = await deploy(impl, { servers: n, clientProcesses, clients, prefix: `bench-${process.pid}-scale${n}-${impl}`, cluster: cluster?.nodes ?? null, clusterError })
        if (d.broken !== undefined) console.error(`N=${n} ${impl}: cannot run: ${d.broken}`)
        deployments.push(d)
      }
      const context: Context = { deployments, single, cluster: clusterMeter }
      const step: Step = { n, bursts: {}, paced: {}, broken: {} }
      const run = async (d: Deployment, kind: 'burst' | 'paced', count: number, every?: number): Promise<Round | undefined> => {
        checkAlive(d)
        if (d.broken !== undefined) return undefined
        const round = await measure(d, context, kind, count, every)
        if (!round.ok) console.error(`N=${n} ${d.impl}: round failed: ${round.error ?? ''}`)
        checkAlive(d)
        return round
      }
      for (const d of deployments) await run(d, 'burst', messages)
      for (let r = 0; r < repeats; r++) {
        const order = r % 2 === 0 ? deployments : [...deployments].reverse()
        for (const d of order) (step.bursts[d.impl] ??= [])[r] = await run(d, 'burst', messages)
      }
      for (let r = 0; r < latency.repeats; r++) {
        const order = r % 2 === 0 ? deployments : [...deployments].reverse()
        for (const d of order) {
          const round = await run(d, 'paced', latency.count, interval)
          if (round !== undefined) (step.paced[d.impl] ??= []).push(round)
        }
      }
      for (const d of deployments) if (d.broken !== undefined) step.broken[d.impl] = d.broken
      await teardown(deployments)
      results.push(step)
      console.log(`N=${n}: ${impls.map((impl) => `${impl} ${fmt(medianRate(step, impl))}/s`).join(', ')}`)
    }

    const wallSeconds = (Date.now() - began) / 1000
    const plan = { impls, steps, clients, clientProcesses: Math.min(clientProcesses, clients), messages, repeats, interval, latency, masters, replicas }
    const text = report(impls, results, { quick, startedAt, environment, wallSeconds, plan })
    console.log(`\n${text}`)
    if (write) {
      const files = writeResults('redis-scaling', startedAt, text, {
        date: startedAt.toISOString(),
        command: `node --import tsx bench/redis-scaling.ts ${argv.join(' ')}`.trim(),
        mode: quick ? 'quick' : 'full',
        wallSeconds,
        environment: { ...environment, loadAverageAfter: os.loadavg() },
        plan,
        steps: results.map((step) => ({
          n: step.n,
          broken: step.broken,
          bursts: Object.fromEntries(Object.entries(step.bursts).map(([impl, rounds]) => [impl, rounds.map((round) => round === undefined ? null : { ...round, rate: rate(round) })])),
          paced: Object.fromEntries(Object.entries(step.paced).map(([impl, rounds]) => [impl, rounds.map(({ latencies, ...rest }) => ({ ...rest, percentiles: percentiles(latencies ?? []) }))]))
        }))
      })
      console.log(`written: ${files.join(', ')}`)
    }
  } finally {
    await targets.close()
  }
}

// ------------------------------------------------------------------ the report

function okBursts (step: Step, impl: RedisImpl): Round[] {
  return (step.bursts[impl] ?? []).filter((round): round is Round => round?.ok === true)
}

function medianRate (step: Step, impl: RedisImpl): number | undefined {
  const ok = okBursts(step, impl)
  return ok.length === 0 ? undefined : median(ok.map((round) => round.deliveries / (round.ms / 1000)))
}

interface ReportInfo {
  quick: boolean
  startedAt: Date
  environment: { machine: string, cores: number, redis: string, cluster: string, code: string }
  wallSeconds: number
  plan: { clients: number, clientProcesses: number, messages: number, repeats: number, interval: number, latency: { count: number, repeats: number } }
}

function report (impls: readonly RedisImpl[], steps: readonly Step[], info: ReportInfo): string {
  const { plan, environment: env } = info
  const rows: string[][] = []
  for (const step of steps) {
    for (const impl of impls) {
      const ok = okBursts(step, impl)
      const all = (step.bursts[impl] ?? []).filter((round) => round !== undefined)
      const rates = ok.map((round) => round.deliveries / (round.ms / 1000))
      const base = steps[0] === undefined ? undefined : medianRate(steps[0], impl)
      const mine = medianRate(step, impl)
      // CPU as cores: CPU-ms of the round ÷ its ms; median over the rounds.
      const cores = (pick: (round: Round) => number): number | undefined => ok.length === 0 ? undefined : median(ok.map((round) => pick(round) / round.ms))
      const perServer = ok.length === 0 ? undefined : median(ok.map((round) => round.cpu.servers.reduce((a, b) => a + b, 0) / round.cpu.servers.length / round.ms))
      const maxServer = cores((round) => Math.max(...round.cpu.servers))
      const total = cores((round) => round.cpu.publisher + round.cpu.servers.reduce((a, b) => a + b, 0) + round.cpu.clients.reduce((a, b) => a + b, 0) + round.cpu.redis)
      const serverUs = ok.length === 0 ? undefined : median(ok.map((round) => round.cpu.servers.reduce((a, b) => a + b, 0) * 1000 / round.deliveries))
      const samples = (step.paced[impl] ?? []).filter((round) => round.ok).flatMap((round) => round.latencies ?? [])
      const p = samples.length === 0 ? undefined : percentiles(samples)
      const saturated = (step.paced[impl] ?? []).filter((round) => round.ok && (round.lagMs ?? 0) > Math.max(20, 0.1 * round.ms)).length
      const failed = all.length - ok.length
      const noisy = all.filter((round) => round?.noise.flagged === true).length
      const why = step.broken[impl]
      rows.push([
        String(step.n),
        impl,
        why !== undefined && ok.length === 0
          ? `did not run: ${why.replace(/\|/g, '\\|')}`
          : `${fmt(mine)} (${rates.length === 0 ? '–' : `${fmt(Math.min(...rates))}–${fmt(Math.max(...rates))}`})${noisy > 0 ? ` ⚠${noisy}` : ''}${failed > 0 ? ` ✗${failed}` : ''}`,
        mine === undefined || base === undefined ? '–' : `${(mine / base).toFixed(2)}×`,
        impl === 'nexus' ? '–' : fmtPaired(paired((step.bursts[impl] ?? []).map(rate), (step.bursts.nexus ?? []).map(rate))),
        fmt(serverUs),
        `${fmt(perServer, 2)} (${fmt(maxServer, 2)})`,
        fmt(cores((round) => round.cpu.clients.reduce((a, b) => a + b, 0)), 2),
        fmt(cores((round) => round.cpu.publisher), 2),
        fmt(cores((round) => round.cpu.redis), 2),
        fmt(total, 2),
        `${fmt(p?.p50, 2)}${saturated > 0 ? ' (sat.)' : ''}`,
        fmt(p?.p99, 2)
      ])
    }
  }
  const table = markdownTable([
    'N instances', 'implementation', 'deliveries/s, median (range)', '× N=1', '× nexus, paired', 'instances\' CPU, µs/delivery', 'cores per instance, mean (max)',
    'clients, cores', 'publisher, cores', 'Redis, cores', 'all, cores', 'latency p50, ms', 'p99, ms'
  ], rows, (i) => i !== 1)
  return [
    `## Scaling across processes through Redis (${info.quick ? 'quick' : 'full'} run, ${info.startedAt.toISOString().slice(0, 16).replace('T', ' ')} UTC)`,
    '',
    `This machine: ${env.machine}. node ${process.version}; processes not pinned. ${env.redis}; Redis Cluster: ${env.cluster}. Measured: ${env.code}. Wall time ${info.wallSeconds.toFixed(0)} s.`,
    '',
    `One publisher instance (no clients) and N instances with ${plan.clients.toLocaleString('en-US')} raw ws clients in all (client g on instance g mod N) in ${plan.clientProcesses} client process(es), all in one room; bursts of ${plan.messages} messages (${(plan.clients * plan.messages).toLocaleString('en-US')} deliveries per round), ${plan.repeats} rounds per implementation and N, interleaved; latency at 1 message per ${plan.interval} ms (${Math.round(plan.clients * 1000 / plan.interval).toLocaleString('en-US')} deliveries/s), ${plan.latency.count} messages × ${plan.latency.repeats} round(s).`,
    '',
    table,
    '',
    `Deliveries/s: clients × messages ÷ (the last arrival − the publisher's first broadcast), median of the rounds (range). × N=1: this median ÷ the same implementation's at N = ${steps[0]?.n ?? 1} (different times, not paired). × nexus, paired: median (range) of the rounds' ratios to \`nexus\` at the same N and repeat. CPU (burst rounds, medians): instances' = the N instances' CPU together per delivery; cores = CPU-s per s of the round (the instances' mean and busiest; the client processes together; the publisher; the Redis server, or the cluster's nodes together; all of them: at most ${env.cores} on this machine). Latency: the publisher's broadcast call → a client has parsed the message, every client and message, pooled; (sat.): a round in which the last message arrived more than 20 ms and 10 % of the round after it was sent (the instances or the clients fell behind: queueing, not the path). ⚠n: n rounds in which processes outside the benchmark used more than 0.1 core; ✗n: failed rounds.`,
    ''
  ].join('\n')
}

// ------------------------------------------------------------------ entry

orchestrate(process.argv.slice(2)).then(() => process.exit(0), (error: unknown) => {
  console.error(error)
  process.exit(1)
})
