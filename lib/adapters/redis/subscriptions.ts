import type { RedisClient } from '../../../types/index'
import { Listeners, noop } from './client'

/** What the subscribing side tells the adapter. */
export interface SubscriptionEvents {
  /** a message on one of the channels */
  message (channel: string, payload: Buffer): void
  /** the channel is subscribed (again): what was published on it before was not received */
  subscribed (channel: string): void
  /** a connection failed (logged once per outage by the adapter) */
  failed (role: string, err: Error): void
  /** a connection is ready (again) */
  ready (): void
  /** a step that will be retried by itself */
  debug (err: Error, message: string): void
}

/**
 * The channels an adapter is subscribed to: the fixed ones (every broadcast,
 * the queries, this instance's answers) and one per room with a local member.
 * Either one connection with SUBSCRIBE (one Redis, or classic pub/sub), or a
 * connection per shard with SSUBSCRIBE (a Redis Cluster).
 */
export interface Subscriptions {
  /** Adds the listeners and subscribes what it can now; the rest follows when Redis answers. Never rejects. */
  start (events: SubscriptionEvents): Promise<void>
  add (channel: string): void
  remove (channel: string): void
  /** every wanted channel is subscribed */
  readonly ready: boolean
  /** Drops its subscriptions (and the connections it made). */
  close (): Promise<void>
}

/**
 * Classic pub/sub on one connection. Subscriptions are restored by this class
 * after a reconnect (the connections it makes have autoResubscribe off, and a
 * given one's own resubscribe does not tell which rooms to read again).
 */
export class ClassicSubscriptions implements Subscriptions {
  private readonly sub: RedisClient
  /** the connection was given: on close its subscriptions are undone, the connection is left open */
  private readonly given: boolean
  private readonly fixed: readonly string[]
  /** room channels (to be) subscribed */
  private readonly rooms = new Set<string>()
  /** channels whose unsubscribe could not be sent: undone when the subscriber is ready again */
  private readonly stale = new Set<string>()
  private readonly listeners = new Listeners()
  private events: SubscriptionEvents | null = null
  private closed = false

  constructor (sub: RedisClient, given: boolean, fixed: readonly string[]) {
    this.sub = sub
    this.given = given
    this.fixed = fixed
  }

  get ready (): boolean {
    return this.sub.status === 'ready'
  }

  async start (events: SubscriptionEvents): Promise<void> {
    this.events = events
    this.listeners.on(this.sub, 'error', (err: Error) => events.failed('subscriber', err))
    this.listeners.on(this.sub, 'ready', () => {
      events.ready()
      void this.restore()
    })
    this.listeners.on(this.sub, 'messageBuffer', (channel: Buffer, payload: Buffer) => events.message(channel.toString(), payload))
    if (this.sub.status === 'ready') await this.restore()
  }

  /** Subscribes every channel (after a connect or a reconnect). */
  private async restore (): Promise<void> {
    const events = this.events as SubscriptionEvents
    // A channel active again meanwhile is no longer stale (add() took it out).
    const stale = [...this.stale]
    const rooms = [...this.rooms]
    try {
      await this.sub.subscribe(...this.fixed, ...rooms)
      // Messages of these rooms may have been missed while the subscriber was away.
      for (const channel of rooms) events.subscribed(channel)
      if (stale.length > 0) {
        await this.sub.unsubscribe(...stale)
        for (const channel of stale) this.stale.delete(channel)
      }
    } catch (err) {
      // The connection dropped again: its next 'ready' runs this again.
      events.debug(err as Error, 'Redis subscriptions not restored yet')
    }
  }

  add (channel: string): void {
    this.rooms.add(channel)
    this.stale.delete(channel)
    if (this.events !== null && !this.closed && this.sub.status === 'ready') {
      const events = this.events
      // A failure means the connection dropped: its next 'ready' subscribes again.
      this.sub.subscribe(channel).then(() => events.subscribed(channel), noop)
    }
  }

  remove (channel: string): void {
    this.rooms.delete(channel)
    // An unsubscribe that cannot go out now is left to the next restore (on 'ready').
    if (this.sub.status !== 'ready') {
      this.stale.add(channel)
      return
    }
    this.sub.unsubscribe(channel).catch(() => this.stale.add(channel))
  }

  async close (): Promise<void> {
    this.closed = true
    this.listeners.removeAll()
    if (this.given && this.sub.status === 'ready') await this.sub.unsubscribe(...this.fixed, ...this.rooms).catch(noop)
    // Rooms emptied after close (the host's bookkeeping) find no channel to release.
    this.rooms.clear()
  }
}
