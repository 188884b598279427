import t from 'tap'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { existsSync } from 'node:fs'
import { request } from 'node:http'
import { join } from 'node:path'
import WebSocket from 'ws'
import { NexusClient, type CloseInfo, type ResumeInfo, type SubscribedInfo } from '../client/index'
import { childEnv, root, stopChild } from './helpers/processes'
import { REDIS_URL, deleteKeys, uniquePrefix, withRedis } from './helpers/redis'
import { freePort, type TestContext } from './helpers/server'
import { delay, until } from './helpers/wait'

// Every wait below is bounded on its own, generously: a busy 2-core machine
// runs the primary, its workers (each compiling server.ts through tsx), 20
// clients and the publishing loop at once.
t.setTimeout(180_000)

// examples/multicore/start.ts run as a user runs it: a node:cluster primary
// with two workers on one port, sharing a history room over the Redis at
// REDIS_URL. Twenty official clients (ws's WebSocket, as in Node 20) are
// subscribed to that room while the test publishes numbered messages over
// HTTP every few ms, and two rolling restarts (SIGHUP) replace every worker
// twice under that traffic. Then every client must hold exactly what was
// published: every message once, in order, and be connected, on new workers.

const CLIENTS = 20
const ROOM = 'news:multicore'
/** the pause between two publishes (each waits for the previous one's answer) */
const PUBLISH_GAP = 3

interface Line { [key: string]: any }
interface WorkerRef { worker: number, pid: number }

interface Primary {
  lines: Line[]
  output (): string
  /** the first line that `match`es, once there is one (bounded; fails if the primary exits first) */
  line (match: (line: Line) => boolean, timeout: number, what: string): Promise<Line>
  signal (name: NodeJS.Signals): void
  /** its exit code once it exited by itself (null before, or when a signal ended it) */
  exitCode (): number | null
}

function startPrimary (t: TestContext, env: Record<string, string>): Primary {
  const child = spawn(process.execPath, ['--import', 'tsx', join(root, 'examples', 'multicore', 'start.ts')], {
    cwd: root,
    env: childEnv(env),
    stdio: ['ignore', 'pipe', 'pipe']
  })
  const lines: Line[] = []
  let stdout = ''
  let stderr = ''
  let partial = ''
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk
    partial += chunk
    const complete = partial.split('\n')
    partial = complete.pop() as string
    for (const text of complete) {
      if (text.trim() === '') continue
      try {
        lines.push(JSON.parse(text))
      } catch {
        lines.push({ text })
      }
    }
  })
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk })
  const exited = once(child, 'exit')
  const output = (): string => `stdout:\n${stdout.split('\n').slice(-40).join('\n')}\nstderr:\n${stderr.slice(-4000)}`

  t.teardown(async () => {
    await stopChild(child, exited, 20_000)
    // node:cluster workers leave when their primary does; any still there
    // (the primary was killed mid-fork) are killed here.
    for (const pid of workerPids(lines)) {
      if (alive(pid)) process.kill(pid, 'SIGKILL')
    }
  })

  return {
    lines,
    output,
    exitCode: () => child.exitCode,
    signal: (name) => { child.kill(name) },
    async line (match, timeout, what) {
      await until(() => lines.some(match) || child.exitCode !== null || child.signalCode !== null, timeout, what).catch((error: Error) => {
        throw new Error(`${error.message}\n${output()}`)
      })
      const found = lines.find(match)
      if (found === undefined) throw new Error(`the primary exited (${child.exitCode ?? child.signalCode}) before ${what}\n${output()}`)
      return found
    }
  }
}

/** Every worker pid the primary reported listening. */
function workerPids (lines: Line[]): number[] {
  return lines.filter((line) => typeof line.listening === 'number' && typeof line.pid === 'number').map((line) => line.pid as number)
}

function alive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

/**
 * One HTTP request on a connection of its own (no keep-alive): a request is
 * then never written to a connection the server is closing, so a failure
 * before any answer means it was not handled.
 */
function call (port: number, method: string, path: string, body?: unknown): Promise<{ status: number, body: any }> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body)
    const req = request({
      host: '127.0.0.1',
      port,
      method,
      path,
      agent: false,
      timeout: 10_000,
      headers: payload === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) }
    }, (res) => {
      let text = ''
      res.setEncoding('utf8').on('data', (chunk: string) => { text += chunk })
      res.on('end', () => {
        try {
          resolve({ status: res.statusCode as number, body: JSON.parse(text) })
        } catch {
          resolve({ status: res.statusCode as number, body: text })
        }
      })
      res.on('error', reject)
    })
    req.on('timeout', () => req.destroy(new Error('no answer within 10 s')))
    req.on('error', reject)
    req.end(payload)
  })
}

/** An official client subscribed to ROOM, recording what it gets. */
interface Watcher {
  client: NexusClient
  /** [offset, n] of every message of the room, as the subscription got them */
  got: Array<[number, number]>
  /** connection ids, one per connection (hello) */
  connections: string[]
  closes: CloseInfo[]
  resumes: ResumeInfo[]
  subscribed: SubscribedInfo[]
  errors: string[]
}

function watch (t: TestContext, url: string): Watcher {
  // The defaults: a client moved by a drain (1001) comes back after 0.5–1 s each
  // time, however often it is moved, so what it misses stays well within the
  // 1000 messages the example's rooms keep, at this test's rate.
  const client = new NexusClient(url, { WebSocket: WebSocket as never })
  t.teardown(() => client.close())
  const watcher: Watcher = { client, got: [], connections: [], closes: [], resumes: [], subscribed: [], errors: [] }
  client.on('state', (state, info) => {
    if (state === 'connected') watcher.connections.push(client.id as string)
    if (info !== undefined) watcher.closes.push(info)
  })
  client.on('resume', (info) => { watcher.resumes.push(info) })
  client.on('error', (error) => { watcher.errors.push(`${error.code}: ${error.message}`) })
  const sub = client.subscribe<{ n: number }>(ROOM)
  sub.on('message', (data, { offset }) => { watcher.got.push([offset as number, data.n]) })
  sub.on('subscribed', (info) => { watcher.subscribed.push(info) })
  sub.on('error', (error) => { watcher.errors.push(`subscribe ${error.code}: ${error.message}`) })
  return watcher
}

withRedis(t, 'examples/multicore: every core, rolling restarts under traffic without losing a message', async (t) => {
  if (!existsSync(join(root, 'dist', 'index.js'))) {
    throw new Error('dist/ is missing: the examples import the built package, run `npm run build` first')
  }
  const prefix = uniquePrefix('multicore')
  t.teardown(() => deleteKeys(prefix))
  const port = await freePort()
  const began = Date.now()
  const primary = startPrimary(t, { WORKERS: '2', PORT: String(port), HOST: '127.0.0.1', REDIS_URL, REDIS_PREFIX: prefix, LOG_LEVEL: 'warn' })
  const ready = await primary.line((line) => line.ready === true, 60_000, 'both workers listening')
  const initial = (ready.workers as WorkerRef[]).map((w) => w.pid)
  t.equal(initial.length, 2, 'WORKERS=2: two workers')
  t.comment(`workers ${initial.join(', ')} listening after ${Date.now() - began} ms`)

  // Both workers answer on the one port (round robin), each with its pid.
  const answering = new Set<number>()
  await until(async () => {
    answering.add((await call(port, 'GET', '/worker')).body.pid)
    return answering.size === 2
  }, 30_000, 'both workers answering GET /worker')
  t.same([...answering].sort(), [...initial].sort(), 'GET /worker: both workers answer on one port')

  const watchers = Array.from({ length: CLIENTS }, () => watch(t, `ws://127.0.0.1:${port}/ws`))
  await until(() => watchers.every((w) => w.subscribed.length > 0), 60_000, 'every client subscribed')

  // The publishing loop: numbered messages, one after the other. A publish
  // refused by a closing worker (503) or cut before any answer was not
  // handled, and is sent again with the same number.
  const acked: Array<{ n: number, offset: number, epoch: string, pid: number }> = []
  const retried: string[] = []
  const publish = async (n: number): Promise<void> => {
    for (let attempt = 1; ; attempt++) {
      let answer: { status: number, body: any } | null = null
      try {
        answer = await call(port, 'POST', '/publish', { room: ROOM, data: { n } })
      } catch (error) {
        retried.push(`${n}: ${(error as Error).message}`)
      }
      if (answer !== null && answer.status === 200) {
        acked.push({ n, offset: answer.body.offset, epoch: answer.body.epoch, pid: answer.body.pid })
        return
      }
      if (answer !== null && answer.status !== 503) throw new Error(`POST /publish ${n}: ${answer.status} ${JSON.stringify(answer.body)}`)
      if (answer !== null) retried.push(`${n}: 503 ${JSON.stringify(answer.body)}`)
      if (attempt === 100) throw new Error(`POST /publish ${n}: 100 attempts failed: ${retried.slice(-3).join('; ')}`)
      await delay(PUBLISH_GAP)
    }
  }
  const publishing = { on: true }
  let failure: Error | null = null
  const loop = (async () => {
    for (let n = 1; publishing.on; n++) {
      await publish(n)
      await delay(PUBLISH_GAP)
    }
  })().catch((error: Error) => { failure = error })
  t.teardown(() => { publishing.on = false })
  const publishedAtLeast = (count: number, what: string): Promise<void> =>
    until(() => failure !== null || acked.length >= count, 60_000, what).then(() => { if (failure !== null) throw failure })

  await publishedAtLeast(100, 'the first 100 messages published')
  const restarts: Line[] = []
  for (const number of [1, 2]) {
    const before = acked.length
    const started = Date.now()
    primary.signal('SIGHUP')
    const done = await primary.line((line) => line.restarted === number || line.restartFailed === number, 90_000, `rolling restart ${number} finished`)
    // A replacement that could not start (e.g. dist/ rebuilt meanwhile): the old workers stayed, the test cannot go on.
    if (done.restartFailed !== undefined) throw new Error(`rolling restart ${number} failed: ${done.reason}\n${primary.output()}`)
    restarts.push(done)
    t.comment(`rolling restart ${number}: ${Date.now() - started} ms, ${acked.length - before} messages published meanwhile`)
    // Traffic goes on through, and after, each restart.
    await publishedAtLeast(acked.length + 100, `100 messages published after restart ${number}`)
  }
  publishing.on = false
  await loop
  if (failure !== null) throw failure

  const total = acked.length
  t.ok(new Set(acked.map((a) => a.pid)).size >= 4, 'publishes were answered by old and new workers')
  t.comment(`${total} messages published, ${retried.length} publishes sent again${retried.length > 0 ? ': ' + retried.slice(0, 5).join('; ') : ''}`)

  // What was published: every number once, at offsets 1..N of one epoch, in
  // the order it was sent (no publish was handled twice). Every client gets
  // to the last one, having received every message exactly once, in order.
  const receivedExactly = async (): Promise<void> => {
    const count = acked.length
    t.ok(acked.every((a, i) => a.n === i + 1 && a.offset === i + 1 && a.epoch === acked[0].epoch), `${count} messages published at offsets 1..${count}, one epoch`)
    await until(() => watchers.every((w) => w.got.length >= count || (w.got.at(-1)?.[0] ?? 0) >= count), 60_000, `every client received message ${count}`).catch((error: Error) => {
      throw new Error(`${error.message}: ${watchers.map((w) => w.got.length).join(', ')}`)
    })
    for (const [i, w] of watchers.entries()) {
      const exact = w.got.length === count && w.got.every(([offset, n], k) => offset === acked[k].offset && n === acked[k].n)
      if (exact) continue
      const offsets = w.got.map(([offset]) => offset)
      const gaps = acked.filter((a) => !offsets.includes(a.offset)).map((a) => a.offset)
      const duplicates = offsets.filter((offset, k) => offsets.indexOf(offset) !== k)
      const disorder = offsets.findIndex((offset, k) => k > 0 && offset <= offsets[k - 1])
      t.fail(`client ${i}: ${w.got.length} of ${count} messages; missing ${JSON.stringify(gaps.slice(0, 20))}, duplicates ${JSON.stringify(duplicates.slice(0, 20))}, first out of order at ${disorder}; resumes ${JSON.stringify(w.resumes)}; closes ${JSON.stringify(w.closes)}; errors ${JSON.stringify(w.errors)}`)
    }
  }
  await receivedExactly()
  const generations = restarts.map((line) => (line.workers as WorkerRef[]).map((w) => w.pid))
  for (const [i, w] of watchers.entries()) {
    // Its workers were drained under it: it came back (at least once per
    // restart, each time told "going away"), resumed without loss every time.
    const goingAway = w.closes.filter((close) => close.code === 1001).length
    if (w.connections.length < 3 || goingAway < 2) t.fail(`client ${i}: ${w.connections.length} connections, closes ${JSON.stringify(w.closes)}`)
    if (w.resumes.length !== w.connections.length - 1 || !w.resumes.every((resume) => resume.recovered)) t.fail(`client ${i}: resumes ${JSON.stringify(w.resumes)} over ${w.connections.length} connections`)
    if (w.errors.length > 0) t.fail(`client ${i}: errors ${JSON.stringify(w.errors)}`)
    if (w.client.state !== 'connected') t.fail(`client ${i} is ${w.client.state}`)
  }
  t.pass(`${CLIENTS} clients: each received the ${total} messages exactly once, in order, and is connected`)
  const reconnects = watchers.map((w) => w.connections.length - 1)
  t.comment(`reconnects per client: min ${Math.min(...reconnects)}, max ${Math.max(...reconnects)}; ${watchers.reduce((sum, w) => sum + w.resumes.reduce((s, r) => s + r.missed, 0), 0)} messages replayed on resume in all`)

  // The workers answering now are the second restart's, none of the first two generations.
  const final = generations[1]
  t.equal(final.length, 2, 'two workers after each restart')
  t.same(generations[0].filter((pid) => initial.includes(pid)), [], 'restart 1 replaced every worker')
  t.same(final.filter((pid) => initial.includes(pid) || generations[0].includes(pid)), [], 'restart 2 replaced every worker')
  const answeringNow = new Set<number>()
  await until(async () => {
    answeringNow.add((await call(port, 'GET', '/worker')).body.pid)
    return answeringNow.size === 2
  }, 30_000, 'both new workers answering GET /worker')
  t.same([...answeringNow].sort(), [...final].sort(), 'GET /worker: the new workers answer')
  t.ok([...initial, ...generations[0]].every((pid) => !alive(pid)), 'the drained workers exited')

  // A worker that dies is replaced; its clients come back (1006: no close
  // frame) on the other worker or the replacement, and resume exactly.
  const victim = final[0]
  const closesAtCrash = watchers.map((w) => w.closes.length)
  const resumesAtCrash = watchers.map((w) => w.resumes.length)
  process.kill(victim, 'SIGKILL')
  await primary.line((line) => line.crashed !== undefined && line.pid === victim, 30_000, 'the primary reporting the crash')
  const known = [...initial, ...generations.flat()]
  const replacement = (await primary.line((line) => typeof line.listening === 'number' && !known.includes(line.pid), 60_000, 'a replacement listening')).pid as number
  const base = acked.length
  for (let n = base + 1; n <= base + 20; n++) {
    await publish(n)
    await delay(PUBLISH_GAP)
  }
  await receivedExactly()
  const moved = watchers.filter((w, i) => w.closes.slice(closesAtCrash[i]).some((close) => close.code === 1006))
  t.ok(moved.length > 0, `${moved.length} clients were on the crashed worker`)
  await until(() => moved.every((w) => w.client.state === 'connected'), 30_000, 'the moved clients connected')
  t.ok(watchers.every((w, i) => w.resumes.slice(resumesAtCrash[i]).every((resume) => resume.recovered)), 'they resumed without loss')
  const answeringAfterCrash = new Set<number>()
  await until(async () => {
    answeringAfterCrash.add((await call(port, 'GET', '/worker')).body.pid)
    return answeringAfterCrash.size === 2
  }, 30_000, 'the surviving worker and the replacement answering GET /worker')
  t.same([...answeringAfterCrash].sort(), [final[1], replacement].sort(), 'GET /worker: the survivor and the replacement answer')
  t.comment(`all ${acked.length} messages received exactly once, in order, by every client, after the crash too`)

  // SIGTERM: every worker drains (the clients are told 1001), then the primary exits 0.
  const closesBefore = watchers.map((w) => w.closes.length)
  primary.signal('SIGTERM')
  await until(() => primary.exitCode() !== null, 60_000, 'the primary exiting after SIGTERM').catch((error: Error) => {
    throw new Error(`${error.message}\n${primary.output()}`)
  })
  t.equal(primary.exitCode(), 0, 'the primary exits 0 after a graceful stop')
  t.ok(primary.lines.some((line) => line.stopped === true), 'it logged { stopped: true }')
  await until(() => watchers.every((w, i) => w.closes.length > closesBefore[i]), 30_000, 'every client told of the stop')
  t.ok(watchers.every((w, i) => w.closes[closesBefore[i]].code === 1001), 'each client got 1001 going away')
  t.ok([final[1], replacement].every((pid) => !alive(pid)), 'the workers exited')
  for (const w of watchers) w.client.close()
  t.comment(`whole run: ${Date.now() - began} ms`)
})
