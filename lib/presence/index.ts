import type { FastifyBaseLogger } from 'fastify'
import type { AdapterPresence, PresenceChange, PresenceCount, PresenceMember, PresencePolicy } from '../../types/index'
import type { Counters } from '../counters'
import { errors } from '../errors'
import { FailureRun, SHARDED_QUIET } from '../failure-run'
import type { Policies } from '../policies'
import { PRESENCE_RETRY_MS, PRESENCE_WINDOW_MS, type PresenceHolder } from './identity'
import { Views } from './views'

export type { PresenceHolder, PresenceIdentity } from './identity'

/** This instance's connections of one key in one room. */
interface Local {
  connections: number
  /** the meta of its first connection here */
  readonly meta: string
}

/**
 * Presence rooms, this instance's side: who of its connections is in each
 * room (by key), written to the store once per window with what changed
 * (a key that left and came back within it is no change), and the views of
 * the rooms its connections watch, told once per window too. Every instance,
 * the writer included, learns of a room's changes from the store only
 * (`changed`), so that all of them apply the same changes in the same order.
 */
export class Presence<W extends PresenceHolder> {
  readonly store: AdapterPresence
  private readonly policies: Policies
  private readonly counters: Counters
  private readonly log: () => FastifyBaseLogger
  /** room → key → this instance's connections of it */
  private readonly local = new Map<string, Map<string, Local>>()
  /** room → key → what the store had of it from this instance before the window (null: nothing) */
  private readonly pending = new Map<string, Map<string, number>>()
  /** rooms to write whole (a write failed, or the store lost this instance's entries) */
  private readonly whole = new Set<string>()
  private readonly views: Views<W>
  private timer: NodeJS.Timeout | null = null
  private retry: NodeJS.Timeout | null = null
  /** failed writes, logged once per run */
  private readonly failedRun: FailureRun
  private closed = false

  constructor (policies: Policies, store: AdapterPresence, counters: Counters, log: () => FastifyBaseLogger) {
    this.policies = policies
    this.store = store
    this.counters = counters
    this.log = log
    this.failedRun = new FailureRun(store.sharded === true ? SHARDED_QUIET : 0)
    this.views = new Views<W>(store, counters, log, (room) => this.policyOf(room), () => { this.schedule() })
  }

  policyOf (room: string): Required<PresencePolicy> | null {
    return this.policies.presenceOf(room)
  }

  // ------------------------------------------------------------ this instance's members

  /** A connection entered a presence room. */
  joined (room: string, holder: W): void {
    const identity = holder.presenceIdentity()
    if (identity === null) return
    let keys = this.local.get(room)
    if (keys === undefined) {
      keys = new Map()
      this.local.set(room, keys)
    }
    const entry = keys.get(identity.key)
    this.note(room, identity.key, entry?.connections ?? 0)
    if (entry === undefined) {
      keys.set(identity.key, { connections: 1, meta: identity.meta })
    } else {
      entry.connections++
    }
  }

  /** A connection left a presence room (or closed). */
  left (room: string, holder: W): void {
    this.views.unwatch(room, holder)
    const identity = holder.presenceIdentity()
    const keys = this.local.get(room)
    /* c8 ignore next -- a holder without identity never joined; the room has keys while a holder is in it */
    if (identity === null || keys === undefined) return
    const entry = keys.get(identity.key)
    /* c8 ignore next -- joined() counted it */
    if (entry === undefined) return
    this.note(room, identity.key, entry.connections)
    if (--entry.connections === 0) {
      keys.delete(identity.key)
      if (keys.size === 0) this.local.delete(room)
    }
  }

  /** Remembers what the store had of a key before this window's first change of it. */
  private note (room: string, key: string, before: number): void {
    let keys = this.pending.get(room)
    if (keys === undefined) {
      keys = new Map()
      this.pending.set(room, keys)
    }
    if (!keys.has(key)) keys.set(key, before)
    this.schedule()
  }

  private schedule (): void {
    if (this.timer !== null || this.closed) return
    this.timer = setTimeout(this.tick, PRESENCE_WINDOW_MS)
  }

  /** The end of a window: this instance's changes to the store, then every changed view to its watchers. */
  private readonly tick = (): void => {
    this.timer = null
    void this.write()
    this.views.flush()
  }

  /** Writes what changed in each room since the last window; settles when every write did. */
  private async write (): Promise<void> {
    const writes: Array<Promise<void>> = []
    for (const [room, keys] of this.pending) {
      if (this.whole.has(room)) continue
      const local = this.local.get(room)
      const changes: PresenceChange[] = []
      for (const [key, before] of keys) {
        const entry = local?.get(key)
        const now = entry?.connections ?? 0
        // Left and back within the window, or the other way round: no change.
        if (now !== before) changes.push({ key, connections: now, meta: entry?.meta ?? 'null' })
      }
      if (changes.length > 0) writes.push(this.send(room, changes, false))
    }
    this.pending.clear()
    for (const room of this.whole) {
      this.whole.delete(room)
      writes.push(this.send(room, this.all(room), true))
    }
    await Promise.all(writes)
  }

  /** All of this instance's keys in a room, as `update` with `replace` takes them. */
  private all (room: string): PresenceChange[] {
    const changes: PresenceChange[] = []
    for (const [key, entry] of this.local.get(room) ?? []) changes.push({ key, connections: entry.connections, meta: entry.meta })
    return changes
  }

  private async send (room: string, changes: PresenceChange[], replace: boolean): Promise<void> {
    try {
      await this.store.update(room, changes, replace)
      this.counters.presenceUpdates++
      const failed = this.failedRun.succeeded()
      if (failed > 0) this.log().info({ failed }, 'Presence writes work again')
    } catch (err) {
      this.counters.presenceFailures++
      if (this.failedRun.failed()) this.log().error({ err, room }, 'Presence write failed: the room is written again, whole, once the store answers')
      // Written whole later: whatever went through of this write and the ones after it, the store ends up with what is here.
      this.whole.add(room)
      this.retry ??= setTimeout(() => {
        this.retry = null
        this.schedule()
      }, PRESENCE_RETRY_MS)
    }
  }

  /** The store may have lost this instance's entries: every room is written whole. */
  lost (): void {
    for (const room of this.local.keys()) this.whole.add(room)
    this.schedule()
  }

  // ------------------------------------------------------------ watchers

  /** A connection subscribed with presence: it gets the room's members, then every change. */
  watch (room: string, watcher: W): void {
    this.views.watch(room, watcher)
  }

  /** A watcher asked for the room's members again (it saw a version gap). */
  resend (room: string, watcher: W): void {
    this.views.resend(room, watcher)
  }

  /** A change of a room's members, from the store (every instance's, this one's too), in seq order. */
  changed (room: string, seq: number, joined: readonly PresenceMember[], left: readonly string[]): void {
    this.views.changed(room, seq, joined, left)
  }

  /** The adapter subscribed the room's channel again: changes may have been missed meanwhile. */
  resync (room: string): void {
    this.views.resync(room)
  }

  // ------------------------------------------------------------ the manager's questions

  async members (room: string): Promise<PresenceMember[]> {
    this.assertPresence(room)
    try {
      return [...(await this.store.read(room)).members]
    } catch (err) {
      throw new errors.FST_NEXUS_PRESENCE_UNAVAILABLE((err as Error).message)
    }
  }

  async count (room: string): Promise<PresenceCount> {
    this.assertPresence(room)
    try {
      return await this.store.count(room)
    } catch (err) {
      throw new errors.FST_NEXUS_PRESENCE_UNAVAILABLE((err as Error).message)
    }
  }

  private assertPresence (room: string): void {
    if (this.policyOf(room) === null) throw new errors.FST_NEXUS_NO_PRESENCE(JSON.stringify(room))
  }

  // ------------------------------------------------------------ lifecycle

  start (): void {
    this.store.start()
  }

  /** `app.close()`, after every socket closed: their leaves are written now, then the store stops. */
  async close (): Promise<void> {
    this.closed = true
    if (this.timer !== null) clearTimeout(this.timer)
    if (this.retry !== null) clearTimeout(this.retry)
    this.timer = this.retry = null
    this.views.clear()
    await this.write()
    await this.store.stop()
  }
}
