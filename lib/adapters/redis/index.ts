import { randomBytes } from 'node:crypto'
import type { Adapter, AdapterFetchOptions, AdapterHistory, AdapterHost, AdapterPresence, EncodedMessage, PublishTarget } from '../../../types/index'
import type { RedisAdapterOptions, RedisAdapterStats, RedisClient, RedisConnection, RedisLagEvent, RedisPublishEvent } from '../../../types/index'
import { performance } from 'node:perf_hooks'
import { encodedFrom } from '../../codec'
import { FailureRun, SHARDED_QUIET } from '../../failure-run'
import { redisLagChannel, redisPublishChannel } from '../../diagnostics'
import { Listeners, Outage, connectionsOf, nodesOf, quit, settled } from './client'
import { RedisHistory } from './history'
import { roomTag } from './keys'
import { type PresenceTimings, RedisPresence } from './presence'
import { PendingQueries } from './queries'
import { ShardedSubscriptions } from './sharded'
import { ClassicSubscriptions, type Subscriptions } from './subscriptions'
import { type Question, type ReceivedMessage, UID_BYTES, decode, encode, ownEcho } from './wire'

export { requireIoredis } from './client'

/** Undecodable payloads are logged at most once per this many ms (each one is counted). */
const INVALID_LOG_INTERVAL = 10_000

function noop (): void {}

const isCount = (value: unknown): value is number => typeof value === 'number'
const isRoomList = (value: unknown): value is string[] => Array.isArray(value)

/** A cluster node's address, as ioredis's natMapper takes and gives it. */
interface NodeAddress { host: string, port: number }

/**
 * The transport between instances over Redis pub/sub. The host (the plugin)
 * keeps the rooms and delivers to its own sockets; this adapter publishes
 * each broadcast once for the other instances and hands theirs to the host.
 * Its own messages come back to it and are dropped. A room's channel is
 * subscribed while the room has a local member, so an instance receives only
 * rooms it hosts; `broadcastAll` and multi-room broadcasts go through one
 * channel every instance subscribes to.
 *
 * On a Redis Cluster every channel is a shard channel (SPUBLISH, SSUBSCRIBE on
 * the master of its slot, `sharded.ts`), and a room's channel carries the
 * room's hash tag: it lives on the shard that holds the room's keys.
 *
 * History rooms are kept in Redis Streams (`history`): a message is numbered,
 * stored and published to the room's channel in one script, and comes back to
 * every instance hosting the room, this one included, through `host.sequenced`.
 *
 * Presence rooms are kept in Redis hashes (`presence`): an instance's changes
 * in a room are applied, numbered and published to the room's channel in one
 * script, and come back to every instance hosting the room, this one included,
 * through `host.presenceChanged`. Instances beat; the entries of one that
 * stops beating are removed by another.
 */
export class RedisAdapter implements Adapter {
  /** This instance's id in the cluster (hex). */
  readonly uid: string
  private readonly uidBytes: Buffer
  private readonly pub: RedisClient
  /** the subscribed side: one connection, or one per master of a cluster */
  private readonly subscriptions: Subscriptions
  /** sharded pub/sub (a Redis Cluster) */
  private readonly sharded: boolean
  /** after a failed command: on a cluster, reads the slots again soon (a master may have failed over) */
  private readonly slotsMayHaveMoved: () => void
  /** the connections init() opens and waits for: the publisher, and the subscriber on one Redis (on a cluster the subscriptions open their own) */
  private readonly connections: readonly RedisClient[]
  /** the connections this adapter made, and quits on close */
  private readonly owned: RedisClient[]
  private readonly prefix: string
  private readonly allChannel: string
  private readonly queryChannel: string
  private readonly answerChannel: string
  /** followed by the uid of the instance that asked */
  private readonly answerChannelPrefix: string
  private readonly roomChannelPrefix: string
  /** rooms with a local member: their channels (to be) subscribed, to their rooms */
  private readonly roomChannels = new Map<string, string>()
  private readonly queries = new PendingQueries()
  /** The history rooms' store, shared by the instances: Redis Streams on the publishing connection. */
  readonly history: AdapterHistory
  private readonly store: RedisHistory
  /** The presence rooms' store, shared by the instances: Redis hashes on the publishing connection. */
  readonly presence: AdapterPresence
  private readonly presenceStore: RedisPresence
  private readonly listeners = new Listeners()
  private readonly counters = {
    redisPublished: 0,
    redisPublishErrors: 0,
    redisReceived: 0,
    redisDelivered: 0,
    redisInvalidMessages: 0
  }

  /** what the adapter answers for and delivers to; also its logger */
  private host: AdapterHost | undefined
  private closed = false
  /** failed publishes, logged once per run */
  private readonly failedRun: FailureRun
  private lastInvalidLog = -Infinity
  private invalidSinceLog = 0

  /** `presenceTimings`: for tests, shorter heartbeats than the defaults (5 s, dead after 15 s). */
  constructor (connection: RedisConnection, options: RedisAdapterOptions = {}, presenceTimings: Partial<PresenceTimings> = {}) {
    const connections = connectionsOf(connection, options)
    const { pub, owned, prefix } = connections
    this.pub = pub
    this.owned = owned
    this.sharded = connections.sub === null
    this.connections = connections.sub === null ? [pub] : [pub, connections.sub]
    this.failedRun = new FailureRun(this.sharded ? SHARDED_QUIET : 0)
    this.uidBytes = randomBytes(UID_BYTES)
    this.uid = this.uidBytes.toString('hex')
    this.prefix = prefix
    this.allChannel = `${prefix}:all`
    this.queryChannel = `${prefix}:query`
    this.answerChannelPrefix = `${prefix}:answer:`
    this.answerChannel = this.answerChannelPrefix + this.uid
    this.roomChannelPrefix = `${prefix}:room:`
    const fixed = [this.allChannel, this.queryChannel, this.answerChannel]
    if (connections.sub === null) {
      // The cluster client routes commands by its own map of the slots; the subscriptions
      // compare it with each read of theirs and have it read again when it lags.
      // Its nodes' addresses go through its `natMap` (ioredis's natMapper), the shard connections' too.
      // (An ioredis Cluster has all three; the client was checked to be one.)
      const cluster = pub as unknown as { slots: Array<string[] | undefined>, refreshSlotsCache: () => void, natMapper: (node: NodeAddress) => NodeAddress }
      const sharded = new ShardedSubscriptions(pub, connections.shard, fixed, {
        routeOf: (slot) => cluster.slots[slot]?.[0],
        refresh: () => cluster.refreshSlotsCache(),
        addressOf: (host, port) => {
          const mapped = cluster.natMapper({ host, port })
          return `${mapped.host}:${mapped.port}`
        }
      })
      this.subscriptions = sharded
      this.slotsMayHaveMoved = () => sharded.check()
    } else {
      this.subscriptions = new ClassicSubscriptions(connections.sub, !owned.includes(connections.sub), fixed)
      this.slotsMayHaveMoved = noop
    }
    const publishing = { command: this.sharded ? 'SPUBLISH' : 'PUBLISH', channelOf: this.channelOf, failed: this.slotsMayHaveMoved } as const
    this.store = new RedisHistory(pub, prefix, publishing, this.uidBytes)
    this.history = this.store
    this.presenceStore = new RedisPresence(pub, prefix, publishing, this.uidBytes, presenceTimings)
    this.presence = this.presenceStore
  }

  /** A room's channel: `<prefix>:room:<room>` on one Redis; on a cluster with the room's hash tag, on the shard of its keys. */
  private readonly channelOf = (room: string): string => this.roomChannelPrefix + (this.sharded ? roomTag(room) : room)

  /** PUBLISH, or SPUBLISH on a cluster (routed by ioredis to the master of the channel's slot). */
  private send (channel: string, frame: Buffer): Promise<number> {
    return this.sharded ? (this.pub.spublish as NonNullable<RedisClient['spublish']>)(channel, frame) as Promise<number> : this.pub.publish(channel, frame)
  }

  // ---------------------------------------------------------------- lifecycle

  /**
   * Connects (when the adapter made its connections) and subscribes. It does
   * not fail when Redis is away: the instance then starts with local delivery
   * only, and subscribes as soon as Redis answers.
   */
  async init (host: AdapterHost): Promise<void> {
    this.host = host
    this.presenceStore.attach(host)
    const outage = new Outage(host.log, () => this.healthy)
    this.listeners.on(this.pub, 'error', (err: Error) => outage.failed('publisher', err))
    this.listeners.on(this.pub, 'ready', () => outage.ready())

    await settled(this.connections)
    // ioredis connects to a cluster's node at its first command, and refuses the commands that come while
    // it connects (they would be retried after newer ones): every node is connected as soon as it is known.
    if (this.sharded) await settled(nodesOf(this.pub, 'master'))
    // Closed while it connected (the app's register failed, say): nothing more is set up.
    if (this.closed) return
    if (this.sharded) this.listeners.on(this.pub, '+node', (added: RedisClient) => { void settled([added]) })
    await this.subscriptions.start({
      message: (channel, payload) => this.receive(host, channel, payload),
      subscribed: (channel) => this.resubscribed(channel),
      failed: (role, err) => outage.failed(role, err),
      ready: () => outage.ready(),
      debug: (err, message) => host.log.debug({ err }, message)
    })
    if (!this.healthy) {
      host.log.warn({ prefix: this.prefix }, 'Redis is not reachable at startup: broadcasts reach this instance only until it is')
    }
  }

  /** Every connection is ready and every channel subscribed. */
  private get healthy (): boolean {
    return this.pub.status === 'ready' && this.subscriptions.ready
  }

  /** Quits the connections it made; leaves the ones it was given as they were, minus its subscriptions and listeners. */
  async close (): Promise<void> {
    if (this.closed) return
    this.closed = true
    this.queries.close()
    this.store.close()
    this.presenceStore.close()
    this.listeners.removeAll()
    await this.subscriptions.close()
    await quit(this.owned)
    // Rooms emptied after close (the host's bookkeeping) find no channel to release.
    this.roomChannels.clear()
  }

  // ---------------------------------------------------------------- rooms

  roomActive (room: string): void {
    if (this.closed) return
    const channel = this.channelOf(room)
    if (this.roomChannels.has(channel)) return
    this.roomChannels.set(channel, room)
    this.subscriptions.add(channel)
  }

  /**
   * A channel is subscribed (again): from now on its messages arrive, and for
   * a room's channel the host reads from the stores what it may have missed before.
   */
  private resubscribed (channel: string): void {
    const room = this.roomChannels.get(channel)
    if (room === undefined) return
    const host = this.host as AdapterHost
    try {
      host.resync(room)
    } catch (err) {
      host.log.error({ err, channel }, 'Failed to resync a room after its channel was subscribed')
    }
  }

  roomIdle (room: string): void {
    const channel = this.channelOf(room)
    if (!this.roomChannels.delete(channel)) return
    this.subscriptions.remove(channel)
  }

  // ---------------------------------------------------------------- publish

  /** Publishes once for the other instances (the host delivered locally already). Never throws because of Redis. */
  publish (message: EncodedMessage, target: PublishTarget): void {
    if (this.closed) return
    let channel = this.allChannel
    let rooms: readonly string[] | null = null
    if (target.rooms !== null) {
      rooms = target.rooms.length > 1 ? [...new Set(target.rooms)] : target.rooms
      if (rooms.length === 0) return
      // One room: its own channel, which only instances hosting it subscribe.
      if (rooms.length === 1) channel = this.channelOf(rooms[0])
    }
    // The publish time goes with every broadcast: the receiving instance's
    // `nexus.redis.lag` subscribers need it, whoever listens here.
    const frame = encode(this.uidBytes, {
      kind: 'broadcast',
      binary: message.binary,
      rooms,
      exceptIds: target.exceptIds,
      sentAt: Date.now(),
      carrier: target.carrier ?? null,
      data: message.data
    })
    if (this.pub.status !== 'ready') {
      this.publishFailed(new Error(`Redis connection is ${this.pub.status}`))
      return
    }
    const reply = this.send(channel, frame)
    if (redisPublishChannel.hasSubscribers) {
      const sent = performance.now()
      reply.then(() => {
        redisPublishChannel.publish({ duration: performance.now() - sent } satisfies RedisPublishEvent)
        this.published()
      }, this.publishFailed)
      return
    }
    reply.then(this.published, this.publishFailed)
  }

  private readonly published = (): void => {
    this.counters.redisPublished++
    const failed = this.failedRun.succeeded()
    if (failed > 0) this.host?.log.info({ failed }, 'Redis publish works again')
  }

  private readonly publishFailed = (err: Error): void => {
    this.counters.redisPublishErrors++
    this.slotsMayHaveMoved()
    if (redisPublishChannel.hasSubscribers) redisPublishChannel.publish({ error: err } satisfies RedisPublishEvent)
    // Logged once per run of failures; the count is in stats() and in the line that ends the run.
    if (this.failedRun.failed()) {
      this.host?.log.error({ err }, 'Redis publish failed: this broadcast reached this instance only')
    }
  }

  // ---------------------------------------------------------------- receive

  private receive (host: AdapterHost, channel: string, payload: Buffer): void {
    // A subscriber that was given to the adapter may carry the app's own channels too.
    if (channel !== this.allChannel && channel !== this.queryChannel && channel !== this.answerChannel && !channel.startsWith(this.roomChannelPrefix)) return
    // Its own messages come back to the instance: it has delivered them locally
    // already (not those of history and presence rooms: it handles them now, as every instance).
    if (ownEcho(payload, this.uidBytes)) return
    const decoded = decode(payload)
    if (!decoded.ok) {
      this.invalid(channel, decoded.reason)
      return
    }
    // Delivery writes to sockets from inside ioredis's reply parser: nothing may throw back into it.
    try {
      this.dispatch(host, channel, decoded.message)
    } catch (err) {
      host.log.error({ err, channel }, 'Failed to handle a message from Redis')
    }
  }

  private dispatch (host: AdapterHost, channel: string, message: ReceivedMessage): void {
    switch (message.kind) {
      case 'broadcast': {
        this.counters.redisReceived++
        const { sentAt, carrier } = message
        // Another machine's clock may be ahead: a lag is never negative.
        if (sentAt !== null && redisLagChannel.hasSubscribers) redisLagChannel.publish({ lag: Math.max(0, Date.now() - sentAt) } satisfies RedisLagEvent)
        // The body is the message as the publisher encoded it: handed on as it is.
        const encoded = encodedFrom(message.data, message.binary)
        this.counters.redisDelivered += host.deliver(encoded, carrier === null
          ? { rooms: message.rooms, exceptIds: message.exceptIds }
          : { rooms: message.rooms, exceptIds: message.exceptIds, carrier })
        break
      }
      case 'history':
        this.counters.redisReceived++
        // In offset order, with the gaps filled, by the host: it counts what it writes.
        host.sequenced(message.room, { offset: message.offset, epoch: message.epoch }, encodedFrom(message.data, message.binary), message.exceptIds)
        break
      case 'presence':
        this.counters.redisReceived++
        // In seq order, with the gaps filled (by a read), by the host.
        host.presenceChanged(message.room, message.seq, message.joined, message.left)
        break
      case 'query': {
        // Answered with this instance's own view; the asking instance times out on its own if the answer is lost.
        const value = message.query === 'rooms' ? host.rooms() : message.query === 'size' ? host.roomSize(message.room) : host.connections()
        const answer = encode(this.uidBytes, { kind: 'answer', id: message.id, value })
        this.send(this.answerChannelPrefix + message.origin, answer).catch(noop)
        break
      }
      case 'answer':
        if (this.queries.answer(message.id, message.origin, message.value) === 'unexpected') this.invalid(channel, 'bad answer')
        break
    }
  }

  private invalid (channel: string, reason: string): void {
    this.counters.redisInvalidMessages++
    this.invalidSinceLog++
    const now = Date.now()
    if (now - this.lastInvalidLog < INVALID_LOG_INTERVAL) return
    this.lastInvalidLog = now
    this.host?.log.warn({ channel, reason, dropped: this.invalidSinceLog }, 'Dropped a message from Redis that does not decode')
    this.invalidSinceLog = 0
  }

  // ---------------------------------------------------------------- queries

  /** The room names of every instance (each once). Instances that do not answer in time are left out. */
  async fetchRooms (options: AdapterFetchOptions): Promise<string[]> {
    const names = new Set(this.host?.rooms())
    for (const answer of await this.ask({ query: 'rooms' }, options.timeout, isRoomList)) {
      for (const name of answer) names.add(name)
    }
    return [...names]
  }

  /** The number of members of a room on every instance. */
  async fetchRoomSize (room: string, options: AdapterFetchOptions): Promise<number> {
    let size = this.host?.roomSize(room) ?? 0
    for (const answer of await this.ask({ query: 'size', room }, options.timeout, isCount)) size += answer
    return size
  }

  /** The number of connections on every instance. */
  async fetchConnections (options: AdapterFetchOptions): Promise<number> {
    let count = this.host?.connections() ?? 0
    for (const answer of await this.ask({ query: 'connections' }, options.timeout, isCount)) count += answer
    return count
  }

  stats (): RedisAdapterStats {
    return {
      redisConnected: this.healthy ? 1 : 0,
      redisRoomChannels: this.roomChannels.size,
      ...this.counters,
      redisQueryTimeouts: this.queries.timeouts,
      redisPresenceReaped: this.presenceStore.reaped
    }
  }

  /**
   * Asks every other instance; resolves with the answers that arrived within
   * `timeout` ms. PUBLISH says how many instances received the question, so it
   * resolves as soon as all of them answered. With a timeout of 0 nobody is asked.
   * Answers were checked at decode; `accepts` only tells a count from a list.
   */
  private async ask<T> (question: Question, timeout: number, accepts: (value: unknown) => value is T): Promise<T[]> {
    if (timeout === 0 || this.closed || !this.healthy) return []
    return await this.queries.ask(timeout, accepts, async (id) => {
      const receivers = await this.send(this.queryChannel, encode(this.uidBytes, { kind: 'query', id, ...question }))
      // Every instance's subscriber received it, this one's included (on a cluster, all subscribe on the channel's master).
      return receivers - 1
    })
  }
}

/**
 * The Redis adapter: `adapter: redisAdapter({ url })`, or with your own ioredis
 * connections `redisAdapter({ client, subscriber })`. Instances that share
 * rooms use the same Redis and the same `prefix`.
 */
export function redisAdapter (connection: RedisConnection, options?: RedisAdapterOptions): RedisAdapter {
  return new RedisAdapter(connection, options)
}
