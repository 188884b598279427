// Every core of one machine: a node:cluster primary that runs one worker
// (server.ts: Fastify + the plugin on the Redis adapter) per core, all on one
// port, and replaces them one at a time without losing a message.
//
//   redis-server &                  # REDIS_URL says where (default redis://127.0.0.1:6379)
//   npm run example:multicore       # builds dist/, then runs this file
//   kill -HUP <primary pid>         # a rolling restart (the pid is in the first line)
//   curl localhost:3000/worker      # which worker answered
//   curl -X POST localhost:3000/publish -H 'content-type: application/json' \
//        -d '{"room":"news:sport","data":{"text":"goal"}}'
//
// One port for every worker: node:cluster's primary holds the listening
// socket and hands each new connection to a worker (round robin on Linux
// and macOS). Node 20 has no `reusePort` listen option (SO_REUSEPORT: each
// process binding the port itself came with Node 22.12/23.1, Linux and
// some BSDs only), so node:cluster is the way to share a port on Node 20.
// The workers share rooms and history through Redis, exactly as instances
// on several machines do.
//
// Rolling restart (SIGHUP, e.g. after a deploy): for each worker in turn,
// fork its replacement, wait until it is listening, then tell the old one to
// drain: it calls app.close(), which refuses new upgrades, closes every
// WebSocket with 1001 "going away", lets HTTP requests in flight finish and
// closes its Redis connections, then it exits. Only then the next worker.
// At least WORKERS workers accept connections throughout. Official clients
// of a drained worker reconnect by themselves (to another worker: the port
// is the same), present their last position in each history room, and get
// exactly what they missed, then live messages.
//
// SIGTERM / SIGINT: every worker drains at once, then the primary exits.
// A worker that dies without being told to is replaced (three failed starts
// in a row stop everything: e.g. the port is taken).
//
// It logs JSON lines (the workers' own Fastify log lines are JSON too):
//   { primary, workers, port }             started
//   { worker, pid, listening }             a worker listens (its first, or a replacement)
//   { ready, workers }                     every first worker listens
//   { restarting, workers }                a rolling restart began (its number)
//   { replaced: { worker, pid }, by }      one old worker drained and gone
//   { restarted, ms, workers }             the rolling restart finished
//   { crashed, pid, code, signal }         a worker died unasked; a replacement is forked
//   { stopping, reason } … { stopped }     graceful stop (reason: the signal)
//
// Environment: WORKERS (default os.availableParallelism()), PORT (default
// 3000), HOST, REDIS_URL, REDIS_PREFIX, LOG_LEVEL (see server.ts),
// DRAIN_TIMEOUT (ms a worker has to drain before it is killed, default 30000).
import cluster, { type Worker } from 'node:cluster'
import { availableParallelism } from 'node:os'
import { join } from 'node:path'

const size = Number(process.env.WORKERS ?? availableParallelism())
const drainTimeout = Number(process.env.DRAIN_TIMEOUT ?? 30_000)
/** How long a new worker has to listen (tsx compiles server.ts on a cold start). */
const START_TIMEOUT = 60_000
const MAX_FAILED_STARTS = 3

if (!cluster.isPrimary) throw new Error('start.ts is the primary: the workers run server.ts')
if (!Number.isInteger(size) || size < 1) throw new Error(`WORKERS must be a positive integer, got ${process.env.WORKERS}`)

const log = (line: Record<string, unknown>): void => console.log(JSON.stringify(line))
const describe = (worker: Worker): { worker: number, pid: number | undefined } => ({ worker: worker.id, pid: worker.process.pid })

/** A worker the primary runs: whether it listens yet, whether it was told to go. */
interface Slot {
  readonly worker: Worker
  listening: boolean
  draining: boolean
  /** forked by a rolling restart: if it fails to start, the restart stops and the old worker stays */
  replacement: boolean
}

const slots = new Map<number, Slot>()
let stopping = false
let ready = false
let failedStarts = 0

const current = (): Array<{ worker: number, pid: number | undefined }> =>
  [...slots.values()].filter((slot) => !slot.draining).map((slot) => describe(slot.worker))

// Workers run server.ts with the primary's own Node flags (tsx's loader
// included), and write to the primary's stdout and stderr.
cluster.setupPrimary({ exec: join(__dirname, 'server.ts') })

cluster.on('listening', (worker, address) => {
  const slot = slots.get(worker.id)
  // Host `localhost` may mean two addresses: one line per worker.
  if (slot === undefined || slot.listening) return
  slot.listening = true
  failedStarts = 0
  log({ ...describe(worker), listening: address.port })
  if (!ready && [...slots.values()].filter((s) => s.listening && !s.draining).length >= size) {
    ready = true
    log({ ready: true, workers: current() })
  }
})

cluster.on('exit', (worker, code, signal) => {
  const slot = slots.get(worker.id)
  slots.delete(worker.id)
  if (slot === undefined || slot.draining || stopping) return
  // A rolling restart's new worker that never listened: the restart deals with it.
  if (slot.replacement && !slot.listening) return
  // Died unasked: keep the pool at its size.
  log({ crashed: worker.id, pid: worker.process.pid, code, signal })
  if (!slot.listening && ++failedStarts >= MAX_FAILED_STARTS) {
    log({ error: `${failedStarts} workers in a row exited before listening: stopping` })
    void stop('failed starts', 1)
    return
  }
  fork()
})

function fork (replacement = false): Worker {
  const worker = cluster.fork()
  slots.set(worker.id, { worker, listening: false, draining: false, replacement })
  return worker
}

function exited (worker: Worker): Promise<void> {
  if (worker.isDead()) return Promise.resolve()
  return new Promise((resolve) => worker.once('exit', () => resolve()))
}

/** Resolves once the worker listens; rejects if it exits first or takes longer than START_TIMEOUT. */
function listening (worker: Worker): Promise<void> {
  return new Promise((resolve, reject) => {
    if (slots.get(worker.id)?.listening === true) {
      resolve()
      return
    }
    const done = (error?: Error): void => {
      clearTimeout(timer)
      worker.off('listening', onListening)
      worker.off('exit', onExit)
      if (error === undefined) resolve()
      else reject(error)
    }
    const onListening = (): void => done()
    const onExit = (): void => done(new Error(`worker ${worker.id} exited before listening`))
    const timer = setTimeout(() => done(new Error(`worker ${worker.id} did not listen within ${START_TIMEOUT} ms`)), START_TIMEOUT)
    worker.on('listening', onListening)
    worker.on('exit', onExit)
  })
}

/** Tells a worker to drain (app.close(), then exit), and waits for its exit; killed after DRAIN_TIMEOUT. */
async function drain (worker: Worker): Promise<void> {
  const slot = slots.get(worker.id)
  if (slot !== undefined) slot.draining = true
  if (worker.isDead()) return
  const gone = exited(worker)
  if (worker.isConnected()) {
    // A worker that already left (it got Ctrl-C itself) is just waited for.
    worker.send({ cmd: 'nexus:drain' }, undefined, () => {})
  }
  const timer = setTimeout(() => {
    log({ ...describe(worker), error: `did not drain within ${drainTimeout} ms: killed` })
    worker.process.kill('SIGKILL')
  }, drainTimeout)
  await gone
  clearTimeout(timer)
}

let generation = 0
let restarting = false
let again = false

/** Replaces every worker, one at a time: the new one listens before the old one drains. */
async function rollingRestart (): Promise<void> {
  if (stopping) return
  if (restarting) {
    // SIGHUPs during a restart: one more restart after it (a deploy landed meanwhile).
    again = true
    return
  }
  restarting = true
  try {
    for (;;) {
      again = false
      const number = ++generation
      const started = Date.now()
      log({ restarting: number, workers: current() })
      const previous = [...slots.values()].filter((slot) => !slot.draining).map((slot) => slot.worker)
      let failed = false
      for (const old of previous) {
        if (stopping) return
        // Died meanwhile: already replaced by the crash handler.
        if (!slots.has(old.id)) continue
        const next = fork(true)
        try {
          await listening(next)
        } catch (error) {
          // The new code does not start: keep the old workers serving.
          log({ restartFailed: number, reason: (error as Error).message })
          await drain(next)
          failed = true
          break
        }
        if (stopping) return
        await drain(old)
        log({ replaced: describe(old), by: describe(next) })
      }
      if (!failed) log({ restarted: number, ms: Date.now() - started, workers: current() })
      if (!again || stopping) break
    }
  } finally {
    restarting = false
  }
}

async function stop (reason: string, code = 0): Promise<void> {
  if (stopping) return
  stopping = true
  log({ stopping: true, reason })
  await Promise.all([...slots.values()].map((slot) => drain(slot.worker)))
  log({ stopped: true })
  process.exitCode = code
}

log({ primary: process.pid, workers: size, port: Number(process.env.PORT ?? 3000) })
for (let i = 0; i < size; i++) fork()

process.on('SIGHUP', () => { void rollingRestart() })
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => { void stop(signal) })
