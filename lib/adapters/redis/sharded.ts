import type { RedisClient } from '../../../types/index'
import { noop } from './client'
import { keySlot } from './keys'
import type { SubscriptionEvents, Subscriptions } from './subscriptions'

/** Retries after a failure start this soon (ms), doubling up to RETRY_MAX. */
const RETRY_MIN = 100
/** While something is not subscribed, the slots are read again at least this often (ms): a failover is followed within it. */
const RETRY_MAX = 250
/** The slots are read again this often when all is well (ms), in case a slot moved without telling. */
const CHECK_INTERVAL = 10_000
/** A CLUSTER SLOTS that takes longer than this (ms) is given up (its node may be the one that died). */
const SLOTS_TIMEOUT = 2000
const SLOTS = 16_384
/** start() waits at most this long (ms) for the first subscriptions */
const START_WAIT = 10_000

/** One subscription of a channel on a shard: its own object, so that a late reply of an earlier one is told apart. */
interface Subscription {
  confirmed: boolean
}

/** A connection to one master, subscribed (SSUBSCRIBE) to the channels of its slots. */
interface Shard {
  readonly node: string
  readonly client: RedisClient
  readonly channels: Map<string, Subscription>
  ready: boolean
  /** false once the connection ended or the shard was dropped */
  live: boolean
}

/** Makes the connection to a master (host, port): the adapter's, with the cluster's connection options. */
export type ShardConnector = (host: string, port: number) => RedisClient

/** The cluster client's own map of the slots, by which it routes publishes and scripts. */
export interface ClusterRouting {
  /** `host:port` it sends this slot's commands to; undefined before it read the slots (then it is told to) */
  routeOf: (slot: number) => string | undefined
  /** reads the slots again (a refresh already running is not restarted) */
  refresh: () => void
  /** `host:port` to connect to for a node as CLUSTER SLOTS names it: through the client's `natMap`, if any */
  addressOf: (host: string, port: number) => string
}

/**
 * Sharded pub/sub on a Redis Cluster: each channel is subscribed on the
 * master that serves its slot, with one connection per master, and a
 * message published with SPUBLISH goes to that master only (and its
 * replicas), not to every node as PUBLISH does.
 *
 * The slots' owners are read with CLUSTER SLOTS. A shard connection that ends
 * (its master died), a channel moved away by the server, or a subscribe that
 * failed makes it read them again and subscribe each channel where it now
 * lives, retrying every 250 ms at most until all are subscribed: delivery
 * resumes within a quarter of a second of the cluster promoting a replica. Channels on
 * other shards are not touched. Each channel subscribed again is reported
 * (`subscribed`), so that the adapter reads the rooms' history again.
 */
export class ShardedSubscriptions implements Subscriptions {
  private readonly cluster: RedisClient
  private readonly connect: ShardConnector
  private readonly routing: ClusterRouting
  private readonly wanted: Set<string>
  private readonly shards = new Map<string, Shard>()
  /** slot -> `host:port` of its master; empty until read */
  private owners: string[] = []
  private events: SubscriptionEvents | null = null
  private syncing = false
  /** a sync was asked for while one ran: run again after it (refreshing the slots when `refreshAgain`) */
  private again = false
  private refreshAgain = false
  private retryTimer: NodeJS.Timeout | null = null
  private retryDelay = RETRY_MIN
  private checkTimer: NodeJS.Timeout | null = null
  private closed = false
  /** a sync is due at the end of this turn (the rooms that became active or idle in it, together) */
  private due = false
  /** start() waiting for the first subscriptions, or the first failure */
  private starting: (() => void) | null = null

  constructor (cluster: RedisClient, connect: ShardConnector, fixed: readonly string[], routing: ClusterRouting) {
    this.cluster = cluster
    this.connect = connect
    this.routing = routing
    this.wanted = new Set(fixed)
  }

  get ready (): boolean {
    // Before the slots were read, no channel has a shard.
    for (const channel of this.wanted) {
      const shard = this.shards.get(this.owners[keySlot(channel)])
      if (shard === undefined || !shard.ready || shard.channels.get(channel)?.confirmed !== true) return false
    }
    return true
  }

  async start (events: SubscriptionEvents): Promise<void> {
    this.events = events
    this.checkTimer = setInterval(() => { void this.sync(true) }, CHECK_INTERVAL).unref()
    // Like one connection's start: resolved once all is subscribed, or at the first sign that Redis is away.
    const started = new Promise<void>((resolve) => { this.starting = resolve })
    const timer = setTimeout(() => this.started(), START_WAIT).unref()
    await this.sync(true)
    await started
    clearTimeout(timer)
  }

  private started (): void {
    const resolve = this.starting
    this.starting = null
    resolve?.()
  }

  /** Something failed on the cluster (a publish, a script): the slots are read again soon. */
  check (): void {
    this.retryLater()
  }

  /** A channel not wanted yet (the adapter keeps track). */
  add (channel: string): void {
    this.wanted.add(channel)
    this.syncSoon()
  }

  /** A channel wanted until now. */
  remove (channel: string): void {
    this.wanted.delete(channel)
    this.syncSoon()
  }

  /** One sync for the rooms of one turn (a client that joins or leaves many): one SSUBSCRIBE per slot and shard. */
  private syncSoon (): void {
    if (this.due || this.events === null) return
    this.due = true
    queueMicrotask(() => {
      this.due = false
      void this.sync(false)
    })
  }

  async close (): Promise<void> {
    this.closed = true
    if (this.retryTimer !== null) clearTimeout(this.retryTimer)
    if (this.checkTimer !== null) clearInterval(this.checkTimer)
    this.started()
    for (const shard of this.shards.values()) this.drop(shard)
    this.wanted.clear()
  }

  /**
   * Brings the subscriptions in line with `wanted`: each channel on the shard
   * of its slot, and on no other. Reads the slots first when `refresh` (or
   * when they were never read). One runs at a time; never rejects.
   */
  private async sync (refresh: boolean): Promise<void> {
    if (this.syncing) {
      this.again = true
      this.refreshAgain ||= refresh
      return
    }
    this.syncing = true
    let complete = false
    try {
      if (refresh || this.owners.length === 0) await this.readSlots()
      // Closed meanwhile: nothing more is opened.
      complete = this.closed || this.apply()
    } catch (err) {
      this.events?.debug(err as Error, 'Redis Cluster slots not read: tried again')
      this.started()
    } finally {
      this.syncing = false
    }
    if (this.again) {
      const refreshAgain = this.refreshAgain
      this.again = false
      this.refreshAgain = false
      await this.sync(refreshAgain)
      return
    }
    if (!complete) {
      this.retryLater()
      return
    }
    this.retryDelay = RETRY_MIN
    this.events?.ready()
  }

  /** Subscribes and unsubscribes what differs from the plan; false when something is still to be done (a shard not connected yet, a master unknown). */
  private apply (): boolean {
    // node -> slot -> its wanted channels
    const plan = new Map<string, Map<number, string[]>>()
    let complete = true
    for (const channel of this.wanted) {
      const slot = keySlot(channel)
      const node = this.owners[slot]
      /* c8 ignore next 4 -- a slot no master serves: only a cluster being set up, or resharded by hand, has one, and Redis refuses commands then (cluster_state:fail) */
      if (node === '') {
        complete = false
        continue
      }
      let slots = plan.get(node)
      if (slots === undefined) plan.set(node, slots = new Map())
      const channels = slots.get(slot)
      if (channels === undefined) slots.set(slot, [channel])
      else channels.push(channel)
    }

    for (const shard of this.shards.values()) {
      const slots = plan.get(shard.node)
      if (slots === undefined) {
        // No wanted channel lives there (any more): its subscriptions go with the connection.
        this.drop(shard)
        continue
      }
      const leaving: string[] = []
      for (const channel of shard.channels.keys()) {
        if (slots.get(keySlot(channel))?.includes(channel) !== true) leaving.push(channel)
      }
      if (leaving.length > 0) this.unsubscribe(shard, leaving)
    }

    for (const [node, slots] of plan) {
      const shard = this.shards.get(node) ?? this.open(node)
      if (!shard.ready) {
        complete = false
        continue
      }
      for (const channels of slots.values()) {
        const missing = channels.filter((channel) => !shard.channels.has(channel))
        if (missing.length > 0) this.subscribe(shard, missing)
      }
    }
    return complete
  }

  /** SSUBSCRIBE of channels of one slot (Redis refuses several slots in one). */
  private subscribe (shard: Shard, channels: string[]): void {
    const subscriptions = channels.map((channel) => {
      const subscription: Subscription = { confirmed: false }
      shard.channels.set(channel, subscription)
      return subscription
    })
    const ssubscribe = shard.client.ssubscribe as NonNullable<RedisClient['ssubscribe']>
    ssubscribe.apply(shard.client, channels).then(() => {
      channels.forEach((channel, i) => {
        // Unsubscribed, or subscribed again, meanwhile: that one reports.
        if (!shard.live || shard.channels.get(channel) !== subscriptions[i]) return
        subscriptions[i].confirmed = true
        this.events?.subscribed(channel)
      })
      this.events?.ready()
      if (this.ready) this.started()
    /* c8 ignore start -- refused (MOVED: the slots read were stale) or cut short (the connection dropped): seen in the failover tests under load, not on demand */
    }, (err: Error) => {
      for (const [i, channel] of channels.entries()) {
        if (shard.channels.get(channel) === subscriptions[i]) shard.channels.delete(channel)
      }
      // MOVED (the slot is elsewhere now) or a dropped connection: read the slots again.
      this.events?.debug(err, 'Redis Cluster channel not subscribed yet')
      this.retryLater()
    })
    /* c8 ignore stop */
  }

  private unsubscribe (shard: Shard, channels: string[]): void {
    // Only a ready shard has channels: what was subscribed on it.
    for (const channel of channels) shard.channels.delete(channel)
    const sunsubscribe = shard.client.sunsubscribe as NonNullable<RedisClient['sunsubscribe']>
    // Grouped by slot, as SSUBSCRIBE. A failure means the connection dropped, and its subscriptions with it.
    const bySlot = new Map<number, string[]>()
    for (const channel of channels) {
      const slot = keySlot(channel)
      const group = bySlot.get(slot)
      if (group === undefined) bySlot.set(slot, [channel])
      else group.push(channel)
    }
    for (const group of bySlot.values()) sunsubscribe.apply(shard.client, group).catch(noop)
  }

  private open (node: string): Shard {
    const colon = node.lastIndexOf(':')
    const client = this.connect(node.slice(0, colon), Number(node.slice(colon + 1)))
    const shard: Shard = { node, client, channels: new Map(), ready: false, live: true }
    this.shards.set(node, shard)
    const events = this.events as SubscriptionEvents
    client.on('ready', () => {
      shard.ready = true
      events.ready()
      void this.sync(false)
    })
    client.on('smessageBuffer', (channel: Buffer, payload: Buffer) => {
      const name = channel.toString()
      // Only from where the channel is subscribed now. A connection dropped (or a
      // channel left) still reads what was sent before the server saw it go, and
      // after a failover the old master, a replica now, still passes on what its
      // shard publishes: the channel's new master delivers that too.
      if (shard.live && shard.channels.has(name)) events.message(name, payload)
    })
    client.on('error', (err: Error) => events.failed(`subscriber ${node}`, err))
    // The server dropped channels of a slot that moved (ioredis 6 tells so): the slots are read again.
    client.on('moved', () => {
      this.drop(shard)
      void this.sync(true)
    })
    // The connection does not reconnect by itself: the master may be gone for good (a failover).
    client.on('end', () => {
      this.started()
      if (!shard.live) return
      this.drop(shard)
      this.retryLater()
    })
    return shard
  }

  private drop (shard: Shard): void {
    shard.live = false
    shard.ready = false
    if (this.shards.get(shard.node) === shard) this.shards.delete(shard.node)
    shard.client.disconnect()
  }

  /** Reads the slots again soon, then more slowly while that does not settle everything. */
  private retryLater (): void {
    // After close(): a subscribe it cut short, or a sync that was under way, ends here.
    if (this.closed || this.retryTimer !== null) return
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null
      void this.sync(true)
    }, this.retryDelay)
    this.retryDelay = Math.min(this.retryDelay * 2, RETRY_MAX)
  }

  /** CLUSTER SLOTS, on whichever node the cluster client picks: each slot's master as `host:port`. */
  private async readSlots (): Promise<void> {
    const call = this.cluster.callBuffer as NonNullable<RedisClient['callBuffer']>
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => reject(new Error(`CLUSTER SLOTS gave no answer in ${SLOTS_TIMEOUT} ms`)), SLOTS_TIMEOUT)
    })
    try {
      const ranges = await Promise.race([call.call(this.cluster, 'CLUSTER', 'SLOTS'), timeout]) as Array<[number, number, [Buffer, number, ...unknown[]], ...unknown[]]>
      const owners = new Array<string>(SLOTS).fill('')
      for (const [start, end, [host, port]] of ranges) {
        const address = host.toString()
        // An empty or `?` endpoint: the master's address is not known; its slots stay unserved for now.
        /* c8 ignore next -- seen only while a node joins (its endpoint is not announced yet) */
        if (address === '' || address === '?') continue
        owners.fill(this.routing.addressOf(address, port), start, end + 1)
      }
      this.owners = owners
      // The cluster client reads the slots only when told, from a node of its
      // choice, which during a failover may not know yet: one that still routes
      // a slot to its old master is told again at each read (every 10 s, and
      // after each failure). A demoted master still runs an SPUBLISH sent to it
      // and passes it on, so nothing fails to show that the route is stale.
      const { routeOf, refresh } = this.routing
      if (owners.some((owner, slot) => routeOf(slot) !== owner)) refresh()
    } finally {
      clearTimeout(timer)
    }
  }
}
