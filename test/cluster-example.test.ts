import t from 'tap'
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { childEnv } from './helpers/processes'
import { REDIS_URL, redisClient, subscribers, uniquePrefix, withRedis } from './helpers/redis'
import { type Client, connect, rejected } from './helpers/server'
import { until as eventually } from './helpers/wait'

// examples/cluster/server.ts run as a user runs it: two instances, each in its
// own process, on ports the system picks, sharing rooms over REDIS_URL. The
// example imports the package by its name, which resolves to dist/.

const root = join(__dirname, '..')

interface TestContext {
  teardown (fn: () => unknown): void
}

interface Instance {
  child: ChildProcess
  url: string
  wsUrl: string
  output (): string
}

async function startInstance (t: TestContext, name: string, prefix: string): Promise<Instance> {
  if (!existsSync(join(root, 'dist', 'index.js'))) {
    throw new Error('dist/ is missing: the examples import the built package, run `npm run build` first')
  }
  const child = spawn(process.execPath, ['--import', 'tsx', join(root, 'examples', 'cluster', 'server.ts')], {
    cwd: root,
    env: childEnv({ PORT: '0', HOST: '127.0.0.1', REDIS_URL, REDIS_PREFIX: prefix, INSTANCE: name }),
    stdio: ['ignore', 'pipe', 'pipe']
  })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => { stdout += chunk })
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk })
  const exited = once(child, 'exit')
  t.teardown(async () => {
    if (child.exitCode !== null || child.signalCode !== null) return
    child.kill('SIGTERM')
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000)
    await exited
    clearTimeout(timer)
  })
  await eventually(() => /Server running at http:\/\/[^\s:]+:\d+/.test(stdout) || child.exitCode !== null, 20000, `${name} listening`)
  const match = /Server running at http:\/\/[^\s:]+:(\d+) \((.+)\)/.exec(stdout)
  if (match === null) throw new Error(`${name} did not start\nstdout: ${stdout}\nstderr: ${stderr}`)
  return { child, url: `http://127.0.0.1:${match[1]}`, wsUrl: `ws://127.0.0.1:${match[1]}`, output: () => stdout }
}

async function post (url: string, body: unknown): Promise<{ status: number, body: any }> {
  const response = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
  return { status: response.status, body: await response.json() }
}

function user (t: TestContext, instance: Instance, name: string): Promise<Client> {
  return connect(`${instance.wsUrl}/ws?user=${name}`).then((client) => {
    t.teardown(() => client.close())
    return client
  })
}

withRedis(t, 'examples/cluster: two instances share rooms over Redis', async (t) => {
  const prefix = uniquePrefix('example')
  const [a, b] = await Promise.all([startInstance(t, 'A', prefix), startInstance(t, 'B', prefix)])
  t.match(a.output(), '(A)')

  t.test('an HTTP route on one instance notifies a user connected to the other', async (t) => {
    const alice = await user(t, b, 'alice')
    await alice.waitFor(1)
    t.match(alice.messages[0], { type: 'welcome', instance: 'B', user: 'alice', connectionId: String })
    const redis = redisClient(t)
    await eventually(async () => (await subscribers(redis, `${prefix}:room:user:alice`))[0] === 1)

    const answer = await post(`${a.url}/notify`, { user: 'alice', text: 'Your report is ready' })
    t.equal(answer.status, 200)
    t.same(answer.body, { room: 'user:alice', deliveredHere: 0, online: 1 }, 'nobody on A; one socket of alice in the cluster')
    await alice.waitFor(2)
    t.same(alice.messages[1], { type: 'notification', text: 'Your report is ready', from: 'A' })

    const bad = await post(`${a.url}/notify`, { user: 'alice' })
    t.equal(bad.status, 400, 'the body is validated')
  })

  t.test('chat reaches everyone on both instances except the sender; /cluster sees both', async (t) => {
    const bob = await user(t, a, 'bob')
    const carol = await user(t, b, 'carol')
    await Promise.all([bob.waitFor(1), carol.waitFor(1)])
    const redis = redisClient(t)
    await eventually(async () => (await subscribers(redis, `${prefix}:room:everyone`))[0] === 2)

    bob.send({ type: 'chat', text: 'hello from A' })
    await carol.waitFor(2)
    t.same(carol.messages[1], { type: 'chat', from: 'bob', text: 'hello from A', instance: 'A' })
    bob.send({ type: 'whoami' })
    await bob.waitFor(2)
    t.same(bob.messages[1], { type: 'whoami', instance: 'A', user: 'bob' }, 'the sender did not get its own chat')

    const response = await fetch(`${b.url}/cluster`)
    const cluster: any = await response.json()
    t.equal(cluster.instance, 'B')
    t.ok(cluster.connections >= 2)
    t.ok(cluster.rooms.includes('user:bob') && cluster.rooms.includes('user:carol') && cluster.rooms.includes('everyone'))
    t.equal(cluster.stats.redisConnected, 1)
  })

  t.test('a connection without ?user= is refused before the upgrade', async (t) => {
    t.match((await rejected(`${a.wsUrl}/ws`)).message, '401')
  })

  t.test('SIGTERM: the instance closes its sockets with 1001 and its process exits on its own', async (t) => {
    const dave = await user(t, a, 'dave')
    await dave.waitFor(1)
    const closed = dave.closed()
    const exited = once(a.child, 'exit')
    a.child.kill('SIGTERM')
    t.equal((await closed).code, 1001)
    const [code] = await exited
    t.equal(code, 0)
  })
})
