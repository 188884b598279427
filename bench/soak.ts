/**
 * Soak: `npx tsx bench/soak.ts` (or `npm run soak`), not a test.
 *
 * Opens `--connections` (10,000) WebSocket connections to a plugin server on
 * 127.0.0.1, holds them (every one joins rooms, sends a message and gets its
 * echo, and receives one broadcast), closes them, and repeats `--cycles` (10)
 * times. After each cycle it reports the server's heap and RSS after gc, and at
 * the end whether the heap after the last cycle is within 5% of the heap after
 * the first. Exit code 1 if it is not, or if any phase fails or times out.
 *
 * The server is a separate child process, run with --expose-gc through
 * `bash -c 'ulimit -n …'` so that it raises its own open-files limit; this
 * process, which holds the client ends, re-runs itself the same way when its
 * own limit is too low. It loads the plugin from lib/ (the current source).
 *
 *   npx tsx bench/soak.ts --cycles 3 --connections 2000   # a quicker run
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import path from 'node:path'
import { createInterface } from 'node:readline'
import { parseArgs } from 'node:util'
import WebSocket from 'ws'

const ROOT = path.resolve(__dirname, '..')
const SCRIPT = path.join('bench', 'soak.ts')
const MiB = 1024 * 1024
/** the open-files limit asked for; capped to the hard limit when that is lower */
const WANTED_NOFILE = 65536
/** file descriptors kept aside beside the sockets (stdio, HTTP control connections, node internals) */
const FD_MARGIN = 256
const TOLERANCE = 0.05
const ROOM_GROUPS = 100

const { values: flags } = parseArgs({
  options: {
    role: { type: 'string', default: 'orchestrator' },
    connections: { type: 'string', default: '10000' },
    cycles: { type: 'string', default: '10' },
    hold: { type: 'string', default: '1000' },
    concurrency: { type: 'string', default: '250' },
    timeout: { type: 'string', default: '120000' }
  },
  strict: true
})

function positive (name: string, value: string | undefined): number {
  const number = Number(value)
  if (!Number.isInteger(number) || number <= 0) {
    console.error(`--${name} must be a positive integer, received ${value}`)
    process.exit(2)
  }
  return number
}

/** The soft open-files limit of this process (Linux), or Infinity when it cannot be read. */
function openFilesLimit (): number {
  try {
    const line = readFileSync('/proc/self/limits', 'utf8').split('\n').find((l) => l.startsWith('Max open files'))
    const soft = line?.split(/\s{2,}/)[1]
    return soft === undefined || soft === 'unlimited' ? Infinity : Number(soft)
  } catch {
    return Infinity
  }
}

/** Runs node with `args` through bash, after raising the open-files limit as far as it may go. */
function spawnWithUlimit (args: string[], stdout: 'pipe' | 'inherit', env: NodeJS.ProcessEnv = process.env): ChildProcess {
  const script = `ulimit -n ${WANTED_NOFILE} 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec "$@"`
  return spawn('bash', ['-c', script, 'soak', process.execPath, ...args], { cwd: ROOT, env, stdio: ['ignore', stdout, 'inherit'] })
}

// ---------------------------------------------------------------- server

async function server (): Promise<void> {
  const gc = globalThis.gc
  if (gc === undefined) throw new Error('the soak server must run with --expose-gc')
  const { default: Fastify } = await import('fastify')
  const { default: nexusRealtime } = await import('../lib/index')

  const app = Fastify({ logger: false })
  await app.register(nexusRealtime)
  const manager = app.getWebSocket()
  let opened = 0
  let closed = 0
  let errors = 0

  app.ws('/ws', {
    onConnect: (socket) => {
      const n = opened++
      manager.joinRoom('all', socket)
      manager.joinRoom(`group-${n % ROOM_GROUPS}`, socket)
    },
    onMessage: (socket, message) => {
      manager.send(socket, { echo: message })
    },
    onClose: () => { closed++ },
    onError: () => { errors++ }
  })

  const counts = (): Record<string, number> => ({ connections: manager.connections, opened, closed, errors, rooms: manager.stats().rooms })
  app.get('/soak/counts', async () => counts())
  app.post('/soak/broadcast', async () => ({ written: manager.broadcast('all', { type: 'hello', at: Date.now() }) }))
  app.post('/soak/gc', async () => {
    // Several passes, with turns of the event loop between them, so that
    // closed sockets' handles and weak references are released too.
    for (let i = 0; i < 5; i++) {
      gc()
      await new Promise((resolve) => setImmediate(resolve))
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
    const { heapUsed, heapTotal, rss, external, arrayBuffers } = process.memoryUsage()
    return { ...counts(), heapUsed, heapTotal, rss, external, arrayBuffers }
  })

  await app.listen({ host: '127.0.0.1', port: 0, backlog: 4096 })
  const address = app.server.address()
  const port = typeof address === 'object' && address !== null ? address.port : 0
  process.stdout.write(JSON.stringify({ port, nofile: openFilesLimit() }) + '\n')

  const stop = (): void => {
    const timer = setTimeout(() => process.exit(1), 10000)
    app.close().then(() => { clearTimeout(timer); process.exit(0) }, () => process.exit(1))
  }
  process.once('SIGTERM', stop)
  process.once('SIGINT', stop)
  // Never outlive the orchestrator, even if it was killed without a word.
  setInterval(() => { if (process.ppid === 1) stop() }, 1000).unref()
}

// ---------------------------------------------------------------- orchestrator

interface Sample {
  connections: number
  opened: number
  closed: number
  errors: number
  rooms: number
  heapUsed: number
  heapTotal: number
  rss: number
  external: number
  arrayBuffers: number
}

interface CycleReport {
  cycle: number
  openMs: number
  closeMs: number
  /** the server's memory (after gc) while every connection is open */
  held: Sample
  /** the server's memory (after gc) once they are all closed */
  sample: Sample
}

/** Rejects after `ms` with a message naming what timed out. */
function deadline<T> (promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  return Promise.race([
    promise,
    new Promise<T>((_resolve, reject) => { timer = setTimeout(() => reject(new Error(`${what}: timed out after ${ms} ms`)), ms) })
  ]).finally(() => clearTimeout(timer))
}

const delay = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

async function poll (predicate: () => Promise<boolean>, timeout: number, what: string): Promise<void> {
  const start = Date.now()
  while (!(await predicate())) {
    if (Date.now() - start > timeout) throw new Error(`${what}: not reached after ${timeout} ms`)
    await delay(50)
  }
}

class Soak {
  private readonly base: string
  private readonly http: string
  private sockets: WebSocket[] = []
  private received = 0

  constructor (port: number, private readonly timeout: number) {
    this.base = `ws://127.0.0.1:${port}/ws`
    this.http = `http://127.0.0.1:${port}`
  }

  async control (method: 'GET' | 'POST', route: string): Promise<Sample & { written: number }> {
    const response = await deadline(fetch(`${this.http}/soak/${route}`, { method }), 30000, `${method} /soak/${route}`)
    if (!response.ok) throw new Error(`${method} /soak/${route}: HTTP ${response.status}`)
    return await response.json() as Sample & { written: number }
  }

  /** Opens `count` connections, `concurrency` handshakes at a time. */
  async open (count: number, concurrency: number): Promise<void> {
    this.received = 0
    const sockets: WebSocket[] = new Array(count)
    let next = 0
    const opener = async (): Promise<void> => {
      while (next < count) {
        const index = next++
        const socket = new WebSocket(this.base, { handshakeTimeout: 10000 })
        socket.on('message', () => { this.received++ })
        socket.on('error', () => {})
        sockets[index] = socket
        const [event] = await Promise.race([once(socket, 'open').then(() => ['open']), once(socket, 'close').then(() => ['close'])])
        if (event !== 'open') throw new Error(`connection ${index} failed to open`)
      }
    }
    this.sockets = sockets
    await deadline(Promise.all(Array.from({ length: Math.min(concurrency, count) }, opener)), this.timeout, `opening ${count} connections`)
  }

  /** Every socket sends a message and gets its echo; then one broadcast reaches all; returns the memory while held. */
  async exercise (count: number, holdMs: number): Promise<Sample> {
    for (const [i, socket] of this.sockets.entries()) socket.send(JSON.stringify({ n: i }))
    await deadline(poll(async () => this.received >= count, this.timeout, 'echoes'), this.timeout, 'echoes')
    const { written } = await this.control('POST', 'broadcast')
    if (written !== count) throw new Error(`the broadcast reached ${written} sockets, expected ${count}`)
    await deadline(poll(async () => this.received >= 2 * count, this.timeout, 'broadcast'), this.timeout, 'broadcast')
    await delay(holdMs)
    return await this.control('POST', 'gc')
  }

  /** Closes every connection from the client side and waits until the server has run every onClose. */
  async close (expectedClosed: number): Promise<void> {
    const closing = this.sockets.map((socket) => socket.readyState === WebSocket.CLOSED ? Promise.resolve() : once(socket, 'close'))
    for (const socket of this.sockets) socket.close(1000)
    await deadline(Promise.all(closing), this.timeout, 'client-side closes')
    this.sockets = []
    await poll(async () => {
      const counts = await this.control('GET', 'counts')
      return counts.connections === 0 && counts.closed === expectedClosed
    }, this.timeout, 'server-side closes')
  }
}

const fmtMiB = (bytes: number): string => (bytes / MiB).toFixed(1)
const fmtPct = (ratio: number): string => `${ratio >= 0 ? '+' : ''}${(ratio * 100).toFixed(1)}%`

async function orchestrator (): Promise<number> {
  const connections = positive('connections', flags.connections)
  const cycles = positive('cycles', flags.cycles)
  const holdMs = positive('hold', flags.hold)
  const concurrency = positive('concurrency', flags.concurrency)
  const timeout = positive('timeout', flags.timeout)

  // This process holds the client end of every connection: raise its own limit
  // by re-running itself through bash when it is too low.
  const nofile = openFilesLimit()
  if (nofile < connections + FD_MARGIN) {
    if (process.env.SOAK_RERUN === '1') {
      console.error(`open-files limit ${nofile} is below ${connections + FD_MARGIN} and cannot be raised; try --connections ${Math.max(1, nofile - FD_MARGIN)}`)
      return 2
    }
    const child = spawnWithUlimit([...process.execArgv, ...process.argv.slice(1)], 'inherit', { ...process.env, SOAK_RERUN: '1' })
    const [code] = await once(child, 'exit')
    return code ?? 1
  }

  const server = spawnWithUlimit(['--expose-gc', '--import', 'tsx', SCRIPT, '--role', 'server'], 'pipe')
  const stopServer = (): void => { if (server.exitCode === null && server.signalCode === null) server.kill('SIGTERM') }
  process.once('exit', stopServer)
  try {
    const lines = createInterface({ input: server.stdout as NodeJS.ReadableStream })
    const [line] = await deadline(once(lines, 'line'), 30000, 'server start') as [string]
    lines.close()
    const { port, nofile: serverNofile } = JSON.parse(line) as { port: number, nofile: number }
    if (serverNofile < connections + FD_MARGIN) throw new Error(`the server's open-files limit is ${serverNofile}; ${connections} connections need ${connections + FD_MARGIN}`)

    console.log(`soak: ${cycles} cycles of ${connections} connections to 127.0.0.1:${port} (hold ${holdMs} ms; open-files limits: server ${serverNofile}, clients ${nofile}; node ${process.version})`)
    const soak = new Soak(port, timeout)
    const before = await soak.control('POST', 'gc')
    console.log(`before:   heap ${fmtMiB(before.heapUsed)} MiB, RSS ${fmtMiB(before.rss)} MiB (after gc)`)

    const reports: CycleReport[] = []
    for (let cycle = 1; cycle <= cycles; cycle++) {
      const t0 = performance.now()
      await soak.open(connections, concurrency)
      const counts = await soak.control('GET', 'counts')
      if (counts.connections !== connections) throw new Error(`the server counts ${counts.connections} connections, expected ${connections}`)
      const t1 = performance.now()
      const held = await soak.exercise(connections, holdMs)
      if (held.connections !== connections) throw new Error(`the server held ${held.connections} connections, expected ${connections}`)
      const t2 = performance.now()
      await soak.close(cycle * connections)
      const t3 = performance.now()
      const sample = await soak.control('POST', 'gc')
      if (sample.errors > 0 || sample.rooms !== 0) throw new Error(`after cycle ${cycle}: ${sample.errors} handler errors, ${sample.rooms} rooms left`)
      reports.push({ cycle, openMs: t1 - t0, closeMs: t3 - t2, held, sample })
      const first = reports[0].sample.heapUsed
      console.log(`cycle ${String(cycle).padStart(2)}: open ${((t1 - t0) / 1000).toFixed(1)} s, hold ${((t2 - t1) / 1000).toFixed(1)} s, close ${((t3 - t2) / 1000).toFixed(1)} s; ` +
        `held: heap ${fmtMiB(held.heapUsed)} MiB, RSS ${fmtMiB(held.rss)} MiB; ` +
        `closed: heap ${fmtMiB(sample.heapUsed)} MiB (${fmtPct(sample.heapUsed / first - 1)} vs cycle 1), RSS ${fmtMiB(sample.rss)} MiB, buffers ${fmtMiB(sample.arrayBuffers)} MiB`)
    }

    const first = reports[0].sample
    const last = reports[reports.length - 1].sample
    const drift = last.heapUsed / first.heapUsed - 1
    console.log('')
    console.log('| cycle | open (s) | close (s) | heap held (MiB) | RSS held (MiB) | heap after close (MiB) | vs cycle 1 | RSS after close (MiB) |')
    console.log('|---:|---:|---:|---:|---:|---:|---:|---:|')
    console.log(`| before | | | | | ${fmtMiB(before.heapUsed)} | | ${fmtMiB(before.rss)} |`)
    for (const { cycle, openMs, closeMs, held, sample } of reports) {
      console.log(`| ${cycle} | ${(openMs / 1000).toFixed(1)} | ${(closeMs / 1000).toFixed(1)} | ${fmtMiB(held.heapUsed)} | ${fmtMiB(held.rss)} | ` +
        `${fmtMiB(sample.heapUsed)} | ${fmtPct(sample.heapUsed / first.heapUsed - 1)} | ${fmtMiB(sample.rss)} |`)
    }
    const perConnection = reports.reduce((sum, { held, sample }) => sum + held.heapUsed - sample.heapUsed, 0) / reports.length / connections
    console.log('')
    console.log(`heap per held connection (held minus closed, mean of the cycles): ${(perConnection / 1024).toFixed(2)} KiB`)
    console.log('')
    const ok = Math.abs(drift) <= TOLERANCE
    console.log(`heap after the last cycle: ${fmtMiB(last.heapUsed)} MiB vs ${fmtMiB(first.heapUsed)} MiB after the first: ${fmtPct(drift)} ` +
      `— ${ok ? 'within' : 'NOT within'} ${TOLERANCE * 100}%`)
    console.log(`server: ${last.opened} connections opened and closed, ${last.closed} onClose calls, ${last.errors} handler errors`)
    return ok ? 0 : 1
  } finally {
    stopServer()
    if (server.exitCode === null && server.signalCode === null) await deadline(once(server, 'exit'), 15000, 'server exit').catch(() => server.kill('SIGKILL'))
  }
}

if (flags.role === 'server') {
  server().catch((err) => {
    console.error(err)
    process.exit(1)
  })
} else {
  // Exits explicitly: after a failure, client sockets may still hold the event loop.
  orchestrator().then((code) => process.exit(code), (err) => {
    console.error(`soak failed: ${(err as Error).message}`)
    process.exit(1)
  })
}
