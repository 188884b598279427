import { randomBytes } from 'node:crypto'
import type { FastifyBaseLogger } from 'fastify'
import type {
  AdapterFetchOptions,
  AdapterHost,
  AdapterMember,
  BroadcastTarget,
  EncodedMessage,
  RedisAdapterOptions,
  RedisAdapterStats,
  RedisClient,
  RedisConnection
} from '../../types/index'
import { MAX_ROOM_NAME_LENGTH } from '../constants'
import { describe, errors } from '../errors'
import { MemoryAdapter } from './memory'

// ------------------------------------------------------------------ wire format
//
// Every message an instance publishes is one binary frame:
//
//   offset 0    u8    format version (FORMAT_VERSION)
//   offset 1    u8    kind: broadcast, query or answer
//   offset 2    16 B  uid of the publishing instance
//   offset 18   u32   length H of the JSON header (big-endian)
//   offset 22   H B   the JSON header
//   offset 22+H       the body: for a broadcast, the message exactly as the
//                     publisher's own sockets got it (encoded once, never again)
//
// Headers: broadcast `{ b: 0|1 (binary), r: rooms | null (every connection),
// x?: connection ids to skip }`; query `{ id, q: 'rooms'|'size'|'connections',
// room? }`; answer `{ id, v }`.

const FORMAT_VERSION = 1
const KIND_BROADCAST = 1
const KIND_QUERY = 2
const KIND_ANSWER = 3
const UID_BYTES = 16
const UID_END = 2 + UID_BYTES
const HEADER_START = UID_END + 4

/** Undecodable payloads are logged at most once per this many ms (each one is counted). */
const INVALID_LOG_INTERVAL = 10_000

const DEFAULT_PREFIX = 'nexus'

type QueryKind = 'rooms' | 'size' | 'connections'

interface BroadcastHeader { b: 0 | 1, r: readonly string[] | null, x?: string[] }
interface QueryHeader { id: number, q: QueryKind, room?: string }
interface AnswerHeader { id: number, v: unknown }

interface PendingQuery {
  readonly kind: QueryKind
  readonly answers: unknown[]
  /** uids of the instances that answered: one answer each */
  readonly from: Set<string>
  /** how many other instances received the query; unknown until PUBLISH answers */
  expected: number
  readonly timer: NodeJS.Timeout
  readonly resolve: (answers: unknown[]) => void
}

type RedisConstructor = new (url: string, options: Record<string, unknown>) => RedisClient

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

function isRoomName (value: unknown): value is string {
  return typeof value === 'string' && value.length > 0 && value.length <= MAX_ROOM_NAME_LENGTH
}

function isStringArray (value: unknown): value is string[] {
  return Array.isArray(value) && value.every((item) => typeof item === 'string')
}

function isCount (value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0
}

function noop (): void {}

/**
 * Rooms and delivery over several instances: local membership and local
 * delivery stay in MemoryAdapter; this class adds the transport through Redis
 * pub/sub. Each instance publishes a broadcast once, delivers it to its own
 * sockets itself and drops it when it comes back. A room's channel is
 * subscribed while the room has a local member, so an instance receives only
 * rooms it hosts; `broadcastAll` and multi-room broadcasts go through one
 * channel every instance subscribes to.
 */
export class RedisAdapter extends MemoryAdapter {
  /** This instance's id in the cluster (hex). */
  readonly uid: string
  private readonly uidBytes: Buffer
  private readonly pub: RedisClient
  private readonly sub: RedisClient
  /** the connections this adapter made, and quits on close */
  private readonly owned: RedisClient[] = []
  private readonly allChannel: string
  private readonly queryChannel: string
  private readonly answerChannel: string
  /** followed by the uid of the instance that asked */
  private readonly answerChannelPrefix: string
  private readonly roomChannelPrefix: string
  private readonly prefix: string
  /** rooms with a local member: their channels are (to be) subscribed */
  private readonly roomChannels = new Set<string>()
  /** channels whose unsubscribe could not be sent: undone when the subscriber is ready again */
  private readonly staleChannels = new Set<string>()
  private readonly pending = new Map<number, PendingQuery>()
  private readonly counters = {
    redisPublished: 0,
    redisPublishErrors: 0,
    redisReceived: 0,
    redisDelivered: 0,
    redisInvalidMessages: 0,
    redisQueryTimeouts: 0
  }

  private log: FastifyBaseLogger | undefined
  private lastQuery = 0
  /** init() has set up the subscriptions once; later 'ready' events restore them */
  private started = false
  private closed = false
  /** failed publishes since the last one that went through (logged once per run) */
  private failedRun = 0
  /** a connection problem was logged and its end has not been yet */
  private degraded = false
  private lastInvalidLog = -Infinity
  private invalidSinceLog = 0
  private readonly listeners: Array<[RedisClient, string, (...args: any[]) => void]> = []

  constructor (connection: RedisConnection, options: RedisAdapterOptions = {}) {
    super()
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
      this.pub = new Redis(given.url, clientOptions)
      this.sub = new Redis(given.url, clientOptions)
      this.owned.push(this.pub, this.sub)
    } else {
      if (!isClient(given.client)) {
        throw new errors.FST_NEXUS_INVALID_OPTION('redisAdapter().client', 'an ioredis client', describe(given.client))
      }
      this.pub = given.client
      if (given.subscriber === undefined) {
        if (typeof given.client.duplicate !== 'function') {
          throw new errors.FST_NEXUS_INVALID_OPTION('redisAdapter().subscriber', 'an ioredis client (the client has no duplicate())', 'undefined')
        }
        this.sub = given.client.duplicate()
        this.owned.push(this.sub)
      } else {
        if (!isClient(given.subscriber)) {
          throw new errors.FST_NEXUS_INVALID_OPTION('redisAdapter().subscriber', 'an ioredis client', describe(given.subscriber))
        }
        if (given.subscriber === given.client) {
          throw new errors.FST_NEXUS_INVALID_OPTION('redisAdapter().subscriber', 'a second connection (a subscribed connection cannot publish)', 'the client itself')
        }
        this.sub = given.subscriber
      }
    }

    this.uidBytes = randomBytes(UID_BYTES)
    this.uid = this.uidBytes.toString('hex')
    this.prefix = prefix
    this.allChannel = `${prefix}:all`
    this.queryChannel = `${prefix}:query`
    this.answerChannelPrefix = `${prefix}:answer:`
    this.answerChannel = this.answerChannelPrefix + this.uid
    this.roomChannelPrefix = `${prefix}:room:`
  }

  // ---------------------------------------------------------------- lifecycle

  /**
   * Connects (when the adapter made its connections) and subscribes. It does
   * not fail when Redis is away: the instance then starts with local delivery
   * only, and subscribes as soon as Redis answers.
   */
  override async init (host: AdapterHost): Promise<void> {
    super.init(host)
    this.log = host.log
    this.listen(this.pub, 'error', (err: Error) => this.onConnectionError('publisher', err))
    this.listen(this.sub, 'error', (err: Error) => this.onConnectionError('subscriber', err))
    this.listen(this.pub, 'ready', () => this.onReady())
    this.listen(this.sub, 'ready', () => {
      this.onReady()
      if (this.started) void this.restoreSubscriptions()
    })
    this.listen(this.sub, 'messageBuffer', (channel: Buffer, payload: Buffer) => this.receive(channel, payload))

    // Wait for both connections, or for the first sign that Redis is away.
    await new Promise<void>((resolve) => {
      const settle = (): void => {
        if (this.pub.status === 'ready' && this.sub.status === 'ready') done()
      }
      const done = (): void => {
        for (const client of [this.pub, this.sub]) {
          client.removeListener('ready', settle)
          client.removeListener('error', done)
          client.removeListener('end', done)
        }
        resolve()
      }
      for (const client of [this.pub, this.sub]) {
        client.on('ready', settle)
        client.on('error', done)
        client.on('end', done)
        // A lazy connection (ours, or one given with lazyConnect) is opened
        // here; a failure is reported through its 'error' event.
        if (client.status === 'wait') client.connect().catch(noop)
      }
      // A connection that was given already ended never becomes ready.
      if (this.pub.status === 'end' || this.sub.status === 'end') done()
      else settle()
    })
    this.started = true
    if (this.sub.status === 'ready') {
      await this.restoreSubscriptions()
    } else {
      host.log.warn({ prefix: this.prefix }, 'Redis is not reachable at startup: broadcasts reach this instance only until it is')
    }
  }

  /** Quits the connections it made; leaves the ones it was given as they were, minus its subscriptions and listeners. */
  override async close (): Promise<void> {
    if (this.closed) return
    this.closed = true
    for (const query of this.pending.values()) {
      clearTimeout(query.timer)
      query.resolve(query.answers)
    }
    this.pending.clear()
    for (const [client, event, listener] of this.listeners) client.removeListener(event, listener)
    this.listeners.length = 0

    if (!this.owned.includes(this.sub) && this.sub.status === 'ready') {
      await this.sub.unsubscribe(this.allChannel, this.queryChannel, this.answerChannel, ...this.roomChannels).catch(noop)
    }
    await Promise.all(this.owned.map(async (client) => {
      if (client.status !== 'ready') {
        client.disconnect()
        return
      }
      // QUIT lets publishes already written reach Redis before the connection ends.
      await client.quit().catch(() => client.disconnect())
    }))
    this.roomChannels.clear()
    super.close()
  }

  private listen (client: RedisClient, event: string, listener: (...args: any[]) => void): void {
    client.on(event, listener)
    this.listeners.push([client, event, listener])
  }

  private onConnectionError (role: string, err: Error): void {
    // ioredis reports every failed reconnection attempt: one line per outage is enough.
    if (this.degraded) return
    this.degraded = true
    this.log?.error({ err, role }, 'Redis connection failed: broadcasts reach this instance only until Redis is back')
  }

  private onReady (): void {
    if (!this.degraded || this.pub.status !== 'ready' || this.sub.status !== 'ready') return
    this.degraded = false
    this.log?.info('Redis connection restored')
  }

  /** Subscribes every channel this instance needs (after a connect or a reconnect). */
  private async restoreSubscriptions (): Promise<void> {
    // A channel joined again meanwhile is no longer stale (join() took it out).
    const stale = [...this.staleChannels]
    try {
      await this.sub.subscribe(this.allChannel, this.queryChannel, this.answerChannel, ...this.roomChannels)
      if (stale.length > 0) {
        await this.sub.unsubscribe(...stale)
        for (const channel of stale) this.staleChannels.delete(channel)
      }
    } catch (err) {
      // The connection dropped again: its next 'ready' runs this again.
      this.log?.debug({ err }, 'Redis subscriptions not restored yet')
    }
  }

  // ---------------------------------------------------------------- rooms

  override join (room: string, member: AdapterMember): void {
    super.join(room, member)
    const channel = this.roomChannelPrefix + room
    if (this.roomChannels.has(channel)) return
    this.roomChannels.add(channel)
    this.staleChannels.delete(channel)
    if (this.started && !this.closed && this.sub.status === 'ready') {
      // A failure means the connection dropped: its next 'ready' subscribes again.
      this.sub.subscribe(channel).catch(noop)
    }
  }

  override leave (room: string, member: AdapterMember): void {
    super.leave(room, member)
    this.release(room)
  }

  override leaveAll (member: AdapterMember): void {
    const rooms = [...super.roomsOf(member)]
    super.leaveAll(member)
    for (const room of rooms) this.release(room)
  }

  override deleteRoom (room: string): boolean {
    const existed = super.deleteRoom(room)
    this.release(room)
    return existed
  }

  /** Unsubscribes a room's channel once the room has no local member. */
  private release (room: string): void {
    const channel = this.roomChannelPrefix + room
    if (!this.roomChannels.has(channel) || this.index.size(room) > 0) return
    this.roomChannels.delete(channel)
    if (this.sub.status !== 'ready') {
      this.staleChannels.add(channel)
      return
    }
    this.sub.unsubscribe(channel).catch(() => this.staleChannels.add(channel))
  }

  // ---------------------------------------------------------------- broadcast

  /** Delivers to this instance's sockets, then publishes once for the others. Never throws because of Redis. */
  override broadcast (message: EncodedMessage, target: BroadcastTarget): number {
    const written = super.broadcast(message, target)
    if (!this.closed) this.publishBroadcast(message, target)
    return written
  }

  private publishBroadcast (message: EncodedMessage, target: BroadcastTarget): void {
    let channel = this.allChannel
    let rooms: readonly string[] | null = null
    if (target.rooms !== null) {
      rooms = target.rooms.length > 1 ? [...new Set(target.rooms)] : target.rooms
      if (rooms.length === 0) return
      // One room: its own channel, which only instances hosting it subscribe.
      if (rooms.length === 1) channel = this.roomChannelPrefix + rooms[0]
    }
    const header: BroadcastHeader = { b: message.binary ? 1 : 0, r: rooms }
    const exceptIds = target.exceptIds
    if (exceptIds !== undefined && exceptIds !== null && exceptIds.size > 0) header.x = [...exceptIds]
    const frame = this.frame(KIND_BROADCAST, header, message.data)

    if (this.pub.status !== 'ready') {
      this.publishFailed(new Error(`Redis connection is ${this.pub.status}`))
      return
    }
    this.pub.publish(channel, frame).then(this.published, this.publishRejected)
  }

  private readonly published = (): void => {
    this.counters.redisPublished++
    if (this.failedRun === 0) return
    this.log?.info({ failed: this.failedRun }, 'Redis publish works again')
    this.failedRun = 0
  }

  private readonly publishRejected = (err: Error): void => {
    this.publishFailed(err)
  }

  private publishFailed (err: Error): void {
    this.counters.redisPublishErrors++
    // Logged once per run of failures; the count is in stats() and in the line that ends the run.
    if (this.failedRun++ === 0) {
      this.log?.error({ err }, 'Redis publish failed: this broadcast reached this instance only')
    }
  }

  private frame (kind: number, header: object, body?: Buffer): Buffer {
    const json = Buffer.from(JSON.stringify(header))
    const head = Buffer.allocUnsafe(HEADER_START)
    head[0] = FORMAT_VERSION
    head[1] = kind
    this.uidBytes.copy(head, 2)
    head.writeUInt32BE(json.length, UID_END)
    return body === undefined ? Buffer.concat([head, json]) : Buffer.concat([head, json, body])
  }

  // ---------------------------------------------------------------- receive

  private receive (channelBuffer: Buffer, payload: Buffer): void {
    const channel = channelBuffer.toString()
    // A subscriber that was given to the adapter may carry the app's own channels too.
    if (channel !== this.allChannel && channel !== this.queryChannel && channel !== this.answerChannel && !channel.startsWith(this.roomChannelPrefix)) return
    if (payload.length < HEADER_START || payload[0] !== FORMAT_VERSION) {
      this.invalid(channel, 'unknown format')
      return
    }
    // Its own messages come back to the instance: it has delivered them locally already.
    if (this.uidBytes.equals(payload.subarray(2, UID_END))) return
    const headerEnd = HEADER_START + payload.readUInt32BE(UID_END)
    if (headerEnd > payload.length) {
      this.invalid(channel, 'truncated')
      return
    }
    let header: unknown
    try {
      header = JSON.parse(payload.toString('utf8', HEADER_START, headerEnd))
    } catch {
      this.invalid(channel, 'header is not JSON')
      return
    }
    if (typeof header !== 'object' || header === null) {
      this.invalid(channel, 'header is not an object')
      return
    }
    // Delivery writes to sockets from inside ioredis's reply parser: nothing may throw back into it.
    try {
      switch (payload[1]) {
        case KIND_BROADCAST: return this.receiveBroadcast(channel, header as BroadcastHeader, payload.subarray(headerEnd))
        case KIND_QUERY: return this.answer(channel, header as QueryHeader, payload.toString('hex', 2, UID_END))
        case KIND_ANSWER: return this.receiveAnswer(channel, header as AnswerHeader, payload.toString('hex', 2, UID_END))
        default: return this.invalid(channel, `unknown kind ${payload[1]}`)
      }
    } catch (err) {
      this.log?.error({ err, channel }, 'Failed to handle a message from Redis')
    }
  }

  private receiveBroadcast (channel: string, header: BroadcastHeader, data: Buffer): void {
    const { b, r, x } = header
    if ((b !== 0 && b !== 1) || (r !== null && (!Array.isArray(r) || !r.every(isRoomName))) || (x !== undefined && !isStringArray(x))) {
      this.invalid(channel, 'bad broadcast header')
      return
    }
    this.counters.redisReceived++
    // The body is the message as the publisher encoded it: handed on as it is.
    // It is a view into the reply ioredis read, memory ioredis never reuses, so
    // the sockets may hold on to it until their (possibly corked) writes go out.
    this.counters.redisDelivered += super.broadcast({ data, binary: b === 1 }, {
      rooms: r,
      except: null,
      exceptIds: x === undefined ? null : new Set(x)
    })
  }

  private invalid (channel: string, reason: string): void {
    this.counters.redisInvalidMessages++
    this.invalidSinceLog++
    const now = Date.now()
    if (now - this.lastInvalidLog < INVALID_LOG_INTERVAL) return
    this.lastInvalidLog = now
    this.log?.warn({ channel, reason, dropped: this.invalidSinceLog }, 'Dropped a message from Redis that does not decode')
    this.invalidSinceLog = 0
  }

  // ---------------------------------------------------------------- queries

  /** The room names of every instance (each once). Instances that do not answer in time are left out. */
  async fetchRooms (options: AdapterFetchOptions): Promise<string[]> {
    const names = new Set(this.rooms())
    for (const answer of await this.query('rooms', undefined, options.timeout)) {
      for (const name of answer as string[]) names.add(name)
    }
    return [...names]
  }

  /** The number of members of a room on every instance. */
  async fetchRoomSize (room: string, options: AdapterFetchOptions): Promise<number> {
    let size = this.roomSize(room)
    for (const answer of await this.query('size', room, options.timeout)) size += answer as number
    return size
  }

  /** The number of connections on every instance. */
  async fetchConnections (options: AdapterFetchOptions): Promise<number> {
    let count = this.localConnections()
    for (const answer of await this.query('connections', undefined, options.timeout)) count += answer as number
    return count
  }

  stats (): RedisAdapterStats {
    return {
      redisConnected: this.pub.status === 'ready' && this.sub.status === 'ready' ? 1 : 0,
      redisRoomChannels: this.roomChannels.size,
      ...this.counters
    }
  }

  private localConnections (): number {
    // No host once closed.
    if (this.host === undefined) return 0
    let count = 0
    const members = this.host.members()[Symbol.iterator]()
    while (members.next().done !== true) count++
    return count
  }

  /**
   * Asks every other instance; resolves with the answers that arrived within
   * `timeout` ms. PUBLISH says how many instances received the question, so it
   * resolves as soon as all of them answered. With a timeout of 0 nobody is asked.
   */
  private query (kind: QueryKind, room: string | undefined, timeout: number): Promise<unknown[]> {
    if (timeout === 0 || this.closed || this.pub.status !== 'ready' || this.sub.status !== 'ready') return Promise.resolve([])
    const id = ++this.lastQuery
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.counters.redisQueryTimeouts++
        this.finish(id)
      }, timeout)
      timer.unref()
      this.pending.set(id, { kind, answers: [], from: new Set(), expected: Infinity, timer, resolve })
      const header: QueryHeader = room === undefined ? { id, q: kind } : { id, q: kind, room }
      this.pub.publish(this.queryChannel, this.frame(KIND_QUERY, header)).then((receivers) => {
        const query = this.pending.get(id)
        if (query === undefined) return
        // Every instance's subscriber received it, this one's included.
        query.expected = receivers - 1
        if (query.answers.length >= query.expected) this.finish(id)
      }, () => this.finish(id))
    })
  }

  private finish (id: number): void {
    const query = this.pending.get(id)
    if (query === undefined) return
    this.pending.delete(id)
    clearTimeout(query.timer)
    query.resolve(query.answers)
  }

  /** Answers another instance's query with this instance's own view. */
  private answer (channel: string, header: QueryHeader, origin: string): void {
    const { id, q, room } = header
    let value: string[] | number
    if (!isCount(id)) {
      this.invalid(channel, 'bad query header')
      return
    }
    if (q === 'rooms') {
      value = this.rooms()
    } else if (q === 'connections') {
      value = this.localConnections()
    } else if (q === 'size' && isRoomName(room)) {
      value = this.roomSize(room)
    } else {
      this.invalid(channel, 'bad query header')
      return
    }
    const answer: AnswerHeader = { id, v: value }
    // The asking instance times out on its own if this answer is lost.
    this.pub.publish(this.answerChannelPrefix + origin, this.frame(KIND_ANSWER, answer)).catch(noop)
  }

  private receiveAnswer (channel: string, header: AnswerHeader, origin: string): void {
    const { id, v } = header
    const query = this.pending.get(id)
    // Late answers (after the timeout), and a second answer of one instance, are dropped quietly.
    if (query === undefined || query.from.has(origin)) return
    if (query.kind === 'rooms' ? !(isStringArray(v) && v.every(isRoomName)) : !isCount(v)) {
      this.invalid(channel, 'bad answer')
      return
    }
    query.from.add(origin)
    query.answers.push(v)
    if (query.answers.length >= query.expected) this.finish(id)
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
