import type { FastifyBaseLogger } from 'fastify'
import type { RedisAdapterOptions, RedisClient, RedisConnection } from '../../../types/index'
import { describe, errors } from '../../errors'

const DEFAULT_PREFIX = 'nexus'

type RedisConstructor = new (url: string | Record<string, unknown>, options?: Record<string, unknown>) => RedisClient
type ClusterConstructor = new (nodes: unknown[], options: Record<string, unknown>) => RedisClient

/**
 * The connections of an adapter. On one Redis: `pub` publishes, `sub` is
 * subscribed (and can do nothing else). On a Redis Cluster: `pub` is the
 * cluster client, `sub` is null and `shard(host, port)` makes the subscribed
 * connection to one master.
 */
export type Connections = {
  readonly pub: RedisClient
  /** the connections the adapter made, and quits on close */
  readonly owned: RedisClient[]
  readonly prefix: string
} & ({ readonly sub: RedisClient, readonly shard: null } | { readonly sub: null, readonly shard: (host: string, port: number) => RedisClient })

/**
 * The options of the connections the adapter makes. Commands are not queued
 * while Redis is away: a broadcast then fails at once, and is counted. (Those
 * already written when the connection dropped are sent again, first, when it
 * is back: ioredis would otherwise leave their promises pending for ever.)
 * Subscriptions are restored by the adapter itself when the subscriber is
 * ready again.
 */
const CONNECTION_OPTIONS = { lazyConnect: true, enableOfflineQueue: false, autoResubscribe: false }

export function noop (): void {}

/**
 * Loads ioredis, an optional peer dependency: only `redisAdapter({ url })`
 * needs it, to make its own connections.
 */
export function requireIoredis (id = 'ioredis', field = 'redisAdapter().url'): RedisConstructor {
  return loadIoredis(id, field).Redis
}

function loadIoredis (id: string, field: string): { Redis: RedisConstructor, Cluster: ClusterConstructor } {
  try {
    // ioredis 5 and 6 both export the classes by these names.
    return require(id)
  } catch (err) {
    throw new errors.FST_NEXUS_INVALID_OPTION(field, `the "${id}" package to be installed (npm install ioredis), or { client, subscriber }`, (err as Error).message)
  }
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

  const given = connection as { url?: unknown, client?: unknown, subscriber?: unknown, cluster?: unknown, clusterOptions?: unknown }
  const forms = ['url', 'client', 'cluster'].filter((form) => given[form as keyof typeof given] !== undefined)
  if (forms.length > 1) {
    throw new errors.FST_NEXUS_INVALID_OPTION('redisAdapter()', 'one of { url }, { client, subscriber } or { cluster }', forms.join(' and '))
  }
  if (given.cluster !== undefined || (given.client as { isCluster?: unknown } | undefined)?.isCluster === true) {
    return clusterConnections(given, prefix)
  }
  if (given.url !== undefined) {
    if (given.subscriber !== undefined) {
      throw new errors.FST_NEXUS_INVALID_OPTION('redisAdapter()', 'either { url } or { client, subscriber }', 'both')
    }
    if (typeof given.url !== 'string' || !/^rediss?:\/\//i.test(given.url)) {
      throw new errors.FST_NEXUS_INVALID_OPTION('redisAdapter().url', 'a redis:// or rediss:// URL', describe(given.url))
    }
    const Redis = requireIoredis()
    // Connected in init(), so that an adapter that is never registered opens nothing.
    const pub = new Redis(given.url, CONNECTION_OPTIONS)
    const sub = new Redis(given.url, CONNECTION_OPTIONS)
    return { pub, sub, shard: null, owned: [pub, sub], prefix }
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
    return { pub, sub, shard: null, owned: [sub], prefix }
  }
  if (!isClient(given.subscriber)) {
    throw new errors.FST_NEXUS_INVALID_OPTION('redisAdapter().subscriber', 'an ioredis client', describe(given.subscriber))
  }
  if (given.subscriber === pub) {
    throw new errors.FST_NEXUS_INVALID_OPTION('redisAdapter().subscriber', 'a second connection (a subscribed connection cannot publish)', 'the client itself')
  }
  return { pub, sub: given.subscriber, shard: null, owned: [], prefix }
}

/**
 * A Redis Cluster: `{ cluster: startupNodes, clusterOptions }` (the adapter
 * makes an ioredis Cluster) or `{ client: anIoredisCluster }`. Either way the
 * adapter subscribes through connections of its own, one per master, made
 * with the cluster's connection options (password, TLS…).
 */
function clusterConnections (given: { client?: unknown, subscriber?: unknown, cluster?: unknown, clusterOptions?: unknown }, prefix: string): Connections {
  // A brace would make the prefix part of the keys' hash tag, and split a room's keys over several slots.
  if (/[{}]/.test(prefix)) {
    throw new errors.FST_NEXUS_INVALID_OPTION('redisAdapter().prefix', 'no { or } on a Redis Cluster (keys are hash-tagged by room)', describe(prefix))
  }
  if (given.subscriber !== undefined) {
    throw new errors.FST_NEXUS_INVALID_OPTION('redisAdapter().subscriber', 'nothing with a Redis Cluster (the adapter makes one subscribed connection per master)', describe(given.subscriber))
  }
  const { Redis, Cluster } = loadIoredis('ioredis', 'redisAdapter().cluster')
  let pub: RedisClient
  let owned: RedisClient[] = []
  if (given.cluster !== undefined) {
    if (!Array.isArray(given.cluster) || given.cluster.length === 0) {
      throw new errors.FST_NEXUS_INVALID_OPTION('redisAdapter().cluster', 'a non-empty array of startup nodes ({ host, port } or "redis://host:port")', describe(given.cluster))
    }
    const options = given.clusterOptions ?? {}
    if (typeof options !== 'object' || options === null) {
      throw new errors.FST_NEXUS_INVALID_OPTION('redisAdapter().clusterOptions', 'ioredis Cluster options (an object)', describe(options))
    }
    // No retries: ioredis would send a failed publish again later, after newer ones (out of order).
    pub = new Cluster(given.cluster, { ...CONNECTION_OPTIONS, maxRedirections: 0, ...options })
    owned = [pub]
  } else {
    pub = given.client as RedisClient
  }
  if (typeof pub.spublish !== 'function' || typeof (pub as { nodes?: unknown }).nodes !== 'function') {
    throw new errors.FST_NEXUS_INVALID_OPTION('redisAdapter().client', 'an ioredis Cluster with sharded pub/sub (ioredis ≥ 5.3)', 'a client without spublish() or nodes()')
  }
  const redisOptions = (pub as { options?: { redisOptions?: Record<string, unknown> } }).options?.redisOptions ?? {}
  // Never reconnected by ioredis: after a failover the master may be gone, and the adapter opens the new one's.
  const shard = (host: string, port: number): RedisClient => new Redis({ ...redisOptions, host, port, enableOfflineQueue: false, autoResubscribe: false, lazyConnect: false, retryStrategy: () => null })
  return { pub, sub: null, shard, owned, prefix }
}

/** The node connections of an ioredis Cluster. */
export function nodesOf (cluster: RedisClient, role: 'all' | 'master'): RedisClient[] {
  return (cluster as unknown as { nodes: (role: string) => RedisClient[] }).nodes(role)
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
 * however often ioredis then retries, and one when all are ready again.
 */
export class Outage {
  private readonly log: FastifyBaseLogger
  private readonly healthy: () => boolean
  /** a failure was logged and its end has not been yet */
  private degraded = false

  /** `healthy`: every connection is ready (and every channel subscribed) */
  constructor (log: FastifyBaseLogger, healthy: () => boolean) {
    this.log = log
    this.healthy = healthy
  }

  failed (role: string, err: Error): void {
    if (this.degraded) return
    this.degraded = true
    this.log.error({ err, role }, 'Redis connection failed: broadcasts reach this instance only until Redis is back')
  }

  ready (): void {
    if (!this.degraded || !this.healthy()) return
    this.degraded = false
    this.log.info('Redis connection restored')
  }
}
