// Shared by the tests that need Redis: where it is, whether it answers, and
// the processes (fixture instances, a private redis-server) those tests start.
import 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { join } from 'node:path'
import { Redis } from 'ioredis'
import type { WebSocket } from 'ws'
import nexusRealtime from '../../lib/index'
import type { Adapter, NexusRealtimeOptions } from '../../types/index'
import { logCapture } from './logs'
import { childEnv, root, stopChild } from './processes'
import { type Client, connect, freePort, type TestContext } from './server'
import { until } from './wait'

import { REDIS_URL, redisAnswers } from './redis-ping'

export { REDIS_URL, redisAnswers }

/**
 * Runs `fn` as a subtest when a Redis answers at REDIS_URL. Otherwise the
 * subtest is skipped with a visible reason, except under CI=true, where a
 * missing Redis is a failure.
 */
export function withRedis (t: tap.Test, name: string, fn: (t: tap.Test) => Promise<void>): void {
  void (async () => {
    if (await redisAnswers()) {
      t.test(name, fn)
    } else if (process.env.CI === 'true') {
      t.fail(`${name}: no Redis answers at ${REDIS_URL}, and CI=true: the Redis tests must run in CI`)
    } else {
      t.test(name, { skip: `no Redis answers at ${REDIS_URL} (start redis-server or set REDIS_URL)` }, fn)
    }
  })()
}

/** An ioredis connection to REDIS_URL (or `url`), quit when the test ends. */
export function redisClient (t: TestContext, url = REDIS_URL, options: Record<string, unknown> = {}): Redis {
  const client = new Redis(url, options)
  client.on('error', () => {})
  t.teardown(() => {
    if (client.status === 'ready') return client.quit().catch(() => client.disconnect())
    client.disconnect()
  })
  return client
}

/** Deletes every key under a prefix in the shared Redis (what a store test left there); never throws. */
export async function deleteKeys (prefix: string): Promise<void> {
  const redis = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null })
  redis.on('error', () => {})
  try {
    await redis.connect()
    const keys = await redis.keys(`${prefix}:*`)
    if (keys.length > 0) await redis.unlink(...keys)
    await redis.quit()
  } catch {
    redis.disconnect()
  }
}

/** A channel prefix no other test (or test run) uses. */
export function uniquePrefix (name: string): string {
  return `test-${name}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`
}

/** How many connections are subscribed to each of `channels`. */
export async function subscribers (client: Redis, ...channels: string[]): Promise<number[]> {
  const reply = await client.pubsub('NUMSUB', ...channels) as unknown[]
  const counts: number[] = []
  for (let i = 1; i < reply.length; i += 2) counts.push(Number(reply[i]))
  return counts
}

/** What a client of `node()` or of the fixture received after its greeting. */
export const after = (client: Client): any[] => client.messages.slice(1)

/** The log lines with this message. */
export const messagesOf = (lines: any[], msg: string): any[] => lines.filter((line) => line.msg === msg)

export interface Node {
  app: FastifyInstance
  /** ws://127.0.0.1:<port> */
  base: string
  /** every log line of the app */
  lines: any[]
  /** server sockets by connection id */
  sockets: Map<string, WebSocket>
  /** a client of /ws joined to `rooms`, with its connection id */
  join (rooms?: string[]): Promise<Client & { id: string }>
}

/** An app on the given adapter with a /ws route whose `?rooms=` are joined on connect. */
export async function node (t: TestContext, adapter: Adapter, level = 'info', options: Omit<NexusRealtimeOptions, 'adapter'> = {}): Promise<Node> {
  const { stream, lines } = logCapture()
  const app = Fastify({ logger: { level, stream } })
  await app.register(nexusRealtime, { ...options, adapter })
  t.teardown(() => app.close())
  const sockets = new Map<string, WebSocket>()
  app.ws('/ws', {
    onConnect: (socket, ctx) => {
      sockets.set(ctx.id, socket)
      const rooms = typeof ctx.query.rooms === 'string' && ctx.query.rooms !== '' ? ctx.query.rooms.split(',') : []
      for (const room of rooms) app.getWebSocket().joinRoom(room, socket)
      socket.send(JSON.stringify({ hello: ctx.id }))
    }
  })
  await app.listen({ host: '127.0.0.1', port: 0 })
  const base = `ws://127.0.0.1:${(app.server.address() as { port: number }).port}`
  return {
    app,
    base,
    lines,
    sockets,
    async join (rooms = []) {
      const client = await connect(`${base}/ws?rooms=${rooms.join(',')}`)
      t.teardown(() => client.close())
      const [hello] = await client.waitFor(1)
      return Object.assign(client, { id: hello.hello as string })
    }
  }
}

/** A redis-server of the test's own, on a free port, without persistence; killed when the test ends. */
export class RedisServer {
  readonly port: number
  readonly url: string
  private child: ChildProcess | null = null

  constructor (port: number) {
    this.port = port
    this.url = `redis://127.0.0.1:${port}`
  }

  static async start (t: TestContext): Promise<RedisServer> {
    const server = new RedisServer(await freePort())
    t.teardown(() => server.kill())
    await server.start()
    return server
  }

  async start (): Promise<void> {
    const child = spawn('redis-server', ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' })
    this.child = child
    child.on('error', () => {})
    await until(() => redisAnswers(this.url), 5000, `redis-server on port ${this.port} answering`)
  }

  /** SIGKILL: Redis vanishes without a goodbye, as in a crash. */
  async kill (): Promise<void> {
    const child = this.child
    this.child = null
    if (child === null || child.exitCode !== null || child.signalCode !== null) return
    const exited = once(child, 'exit')
    child.kill('SIGKILL')
    await exited
  }
}

export interface Instance {
  readonly name: string
  readonly child: ChildProcess
  /** http://127.0.0.1:<port> */
  readonly url: string
  /** ws://127.0.0.1:<port> */
  readonly wsUrl: string
  /** the JSON lines the instance printed (its log and its reports) */
  readonly lines: any[]
  /** what it printed on stderr */
  stderr (): string
  post (path: string, body: unknown): Promise<any>
  get (path: string): Promise<any>
  /** a client of its /ws joined to `rooms`, once the instance greeted it with its connection id */
  join (rooms?: string[]): Promise<Client & { id: string }>
  /** SIGTERM, then its exit code (the fixture closes the app and exits by itself) */
  stop (): Promise<number | null>
}

/**
 * Starts test/fixtures/redis-instance.ts (an app on the Redis adapter) in its
 * own process, on a free port; stopped when the test ends.
 */
export async function startInstance (t: TestContext, name: string, env: Record<string, string>): Promise<Instance> {
  const child = spawn(process.execPath, ['--import', 'tsx', join(root, 'test', 'fixtures', 'redis-instance.ts')], {
    cwd: root,
    env: childEnv({ INSTANCE: name, ...env }),
    stdio: ['ignore', 'pipe', 'pipe']
  })
  const lines: any[] = []
  let stderr = ''
  let partial = ''
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    partial += chunk
    const complete = partial.split('\n')
    partial = complete.pop() as string
    for (const line of complete) {
      if (line.trim() === '') continue
      try {
        lines.push(JSON.parse(line))
      } catch {
        lines.push({ text: line })
      }
    }
  })
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk })
  const exited = once(child, 'exit')

  const stop = (): Promise<number | null> => stopChild(child, exited, 10000)
  t.teardown(stop)

  await until(() => lines.some((line) => line.listening !== undefined) || child.exitCode !== null, 20000, `instance ${name} listening`)
  const port = lines.find((line) => line.listening !== undefined)?.listening
  if (port === undefined) throw new Error(`instance ${name} exited: ${stderr}`)
  const url = `http://127.0.0.1:${port}`

  const call = async (path: string, init?: RequestInit): Promise<any> => {
    const response = await fetch(url + path, init)
    const body = await response.json()
    if (!response.ok) throw new Error(`${name} ${path}: ${response.status} ${JSON.stringify(body)}`)
    return body
  }
  return {
    name,
    child,
    url,
    wsUrl: `ws://127.0.0.1:${port}`,
    lines,
    stderr: () => stderr,
    post: (path, body) => call(path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }),
    get: (path) => call(path),
    async join (rooms = []) {
      const client = await connect(`ws://127.0.0.1:${port}/ws?rooms=${rooms.join(',')}`)
      t.teardown(() => client.close())
      const [hello] = await client.waitFor(1)
      return Object.assign(client, { id: hello.id as string })
    },
    stop
  }
}
