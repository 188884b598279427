import type { FastifyBaseLogger } from 'fastify'
import type { RedisAdapterOptions, RedisClient, RedisConnection } from '../../../types/index'
import { describe, errors } from '../../errors'

const DEFAULT_PREFIX = 'nexus'

type RedisConstructor = new (url: string, options: Record<string, unknown>) => RedisClient

/** The two connections of an adapter: `pub` publishes, `sub` is subscribed (and can do nothing else). */
export interface Connections {
  readonly pub: RedisClient
  readonly sub: RedisClient
  /** the connections the adapter made, and quits on close */
  readonly owned: RedisClient[]
  readonly prefix: string
}

function noop (): void {}

/**
 * Loads ioredis, an optional peer dependency: only `redisAdapter({ url })`
 * needs it, to make its own connections.
 */
export function requireIoredis (id = 'ioredis'): RedisConstructor {
  let ioredis: { Redis: RedisConstructor }
  try {
    ioredis = require(id)
  } catch (err) {
    throw new errors.FST_NEXUS_INVALID_OPTION('redisAdapter().url', `the "${id}" package to be installed (npm install ioredis), or { client, subscriber }`, (err as Error).message)
  }
  // ioredis 5 and 6 both export the class by this name.
  return ioredis.Redis
}

function isClient (value: unknown): value is RedisClient {
  if (typeof value !== 'object' || value === null) return false
  const client = value as Record<string, unknown>
  return ['publish', 'subscribe', 'unsubscribe', 'on', 'removeListener', 'disconnect'].every((method) => typeof client[method] === 'function')
}

/**
 * Checks the arguments of `redisAdapter()` and gives its connections: made
 * here from a URL, or the ones given. Nothing is connected yet.
 */
export function connectionsOf (connection: RedisConnection, options: RedisAdapterOptions): Connections {
  if (typeof connection !== 'object' || connection === null) {
    throw new errors.FST_NEXUS_INVALID_OPTION('redisAdapter()', '{ url } or { client, subscriber }', describe(connection))
  }
  if (typeof options !== 'object' || options === null) {
    throw new errors.FST_NEXUS_INVALID_OPTION('redisAdapter() options', 'an object', describe(options))
  }
  // The prefix may come with the connection (`redisAdapter({ url, prefix })`) or as options.
  const prefix = options.prefix ?? (connection as { prefix?: unknown }).prefix ?? DEFAULT_PREFIX
  if (typeof prefix !== 'string' || prefix.length === 0) {
    throw new errors.FST_NEXUS_INVALID_OPTION('redisAdapter().prefix', 'a non-empty string', describe(prefix))
  }

  const given = connection as { url?: unknown, client?: unknown, subscriber?: unknown }
  if (given.url !== undefined) {
    if (given.client !== undefined || given.subscriber !== undefined) {
      throw new errors.FST_NEXUS_INVALID_OPTION('redisAdapter()', 'either { url } or { client, subscriber }', 'both')
    }
    if (typeof given.url !== 'string' || !/^rediss?:\/\//i.test(given.url)) {
      throw new errors.FST_NEXUS_INVALID_OPTION('redisAdapter().url', 'a redis:// or rediss:// URL', describe(given.url))
    }
    const Redis = requireIoredis()
    // Connected in init(), so that an adapter that is never registered opens
    // nothing. Commands are not queued while Redis is away: a broadcast then
    // fails at once, and is counted. (Those already written when the
    // connection dropped are sent again, first, when it is back: ioredis
    // would otherwise leave their promises pending for ever.) Subscriptions
    // are restored by the adapter itself when the subscriber is ready again.
    const clientOptions = { lazyConnect: true, enableOfflineQueue: false, autoResubscribe: false }
    const pub = new Redis(given.url, clientOptions)
    const sub = new Redis(given.url, clientOptions)
    return { pub, sub, owned: [pub, sub], prefix }
  }

  if (!isClient(given.client)) {
    throw new errors.FST_NEXUS_INVALID_OPTION('redisAdapter().client', 'an ioredis client', describe(given.client))
  }
  const pub = given.client
  if (given.subscriber === undefined) {
    if (typeof pub.duplicate !== 'function') {
      throw new errors.FST_NEXUS_INVALID_OPTION('redisAdapter().subscriber', 'an ioredis client (the client has no duplicate())', 'undefined')
    }
    const sub = pub.duplicate()
    return { pub, sub, owned: [sub], prefix }
  }
  if (!isClient(given.subscriber)) {
    throw new errors.FST_NEXUS_INVALID_OPTION('redisAdapter().subscriber', 'an ioredis client', describe(given.subscriber))
  }
  if (given.subscriber === pub) {
    throw new errors.FST_NEXUS_INVALID_OPTION('redisAdapter().subscriber', 'a second connection (a subscribed connection cannot publish)', 'the client itself')
  }
  return { pub, sub: given.subscriber, owned: [], prefix }
}

/**
 * Opens the lazy connections among `clients` and resolves once all of them
 * are ready, or at the first sign that Redis is away (an error, an end).
 * Never rejects: the adapter starts either way.
 */
export function settled (clients: readonly RedisClient[]): Promise<void> {
  return new Promise<void>((resolve) => {
    const settle = (): void => {
      if (clients.every((client) => client.status === 'ready')) done()
    }
    const done = (): void => {
      for (const client of clients) {
        client.removeListener('ready', settle)
        client.removeListener('error', done)
        client.removeListener('end', done)
      }
      resolve()
    }
    for (const client of clients) {
      client.on('ready', settle)
      client.on('error', done)
      client.on('end', done)
      // A lazy connection (ours, or one given with lazyConnect) is opened
      // here; a failure is reported through its 'error' event.
      if (client.status === 'wait') client.connect().catch(noop)
    }
    // A connection that was given already ended never becomes ready.
    if (clients.some((client) => client.status === 'end')) done()
    else settle()
  })
}

/** Ends connections the adapter made. */
export async function quit (clients: readonly RedisClient[]): Promise<void> {
  await Promise.all(clients.map(async (client) => {
    if (client.status !== 'ready') {
      client.disconnect()
      return
    }
    // QUIT lets publishes already written reach Redis before the connection ends.
    await client.quit().catch(() => client.disconnect())
  }))
}

/** Listeners added to connections that may outlive the adapter (given ones): removed all at once on close. */
export class Listeners {
  private readonly added: Array<[RedisClient, string, (...args: any[]) => void]> = []

  on (client: RedisClient, event: string, listener: (...args: any[]) => void): void {
    client.on(event, listener)
    this.added.push([client, event, listener])
  }

  removeAll (): void {
    for (const [client, event, listener] of this.added) client.removeListener(event, listener)
    this.added.length = 0
  }
}

/**
 * The log of the connections' health: one line when one of them fails,
 * however often ioredis then retries, and one when both are ready again.
 */
export class Outage {
  private readonly log: FastifyBaseLogger
  private readonly clients: readonly RedisClient[]
  /** a failure was logged and its end has not been yet */
  private degraded = false

  constructor (log: FastifyBaseLogger, clients: readonly RedisClient[]) {
    this.log = log
    this.clients = clients
  }

  failed (role: string, err: Error): void {
    if (this.degraded) return
    this.degraded = true
    this.log.error({ err, role }, 'Redis connection failed: broadcasts reach this instance only until Redis is back')
  }

  ready (): void {
    if (!this.degraded || !this.clients.every((client) => client.status === 'ready')) return
    this.degraded = false
    this.log.info('Redis connection restored')
  }
}
