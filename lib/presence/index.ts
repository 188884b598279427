import type { FastifyBaseLogger } from 'fastify'
import type { AdapterPresence, PresenceChange, PresenceCount, PresenceMember, PresencePolicy } from '../../types/index'
import type { Counters } from '../counters'
import { errors } from '../errors'
import type { Policies } from '../policies'
import { presenceChangesFrame, presenceCountFrame, presenceListFrame } from '../protocol'

/** Changes of a room are gathered this long, then written (and told to its watchers) at once, in ms. */
export const PRESENCE_WINDOW_MS = 100
/** A room whose write failed is written again, whole, this long after, in ms. */
export const PRESENCE_RETRY_MS = 1000

/** Who a connection is in presence rooms: computed once per connection. */
export interface PresenceIdentity {
  readonly key: string
  /** its meta as JSON text */
  readonly meta: string
}

/** A connection as presence sees it. */
export interface PresenceHolder {
  /** Its identity; null when its route's `presence.key` or `meta` failed (it is then being closed, and not listed). */
  presenceIdentity (): PresenceIdentity | null
  /** Writes a presence frame to it (it asked for presence in a room). */
  presenceFrame (frame: Buffer): void
}

/** This instance's connections of one key in one room. */
interface Local {
  connections: number
  /** the meta of its first connection here */
  readonly meta: string
}

/**
 * A presence room as this instance's watchers (the connections that asked
 * for presence) see it: the members across instances, kept from the store's
 * snapshot and every change after it, in `seq` order.
 */
class View<W extends PresenceHolder> {
  readonly room: string
  readonly policy: Required<PresencePolicy>
  readonly members = new Map<string, PresenceMember>()
  connections = 0
  /** the store's seq of the last change applied */
  seq = 0
  /** the version of the last frame the watchers got */
  version = 0
  /** being read from the store: changes wait in `held` */
  loading = true
  /** read again once the read under way ends (the channel was subscribed again meanwhile) */
  again = false
  held: Array<{ seq: number, joined: readonly PresenceMember[], left: readonly string[] }> = []
  /** the watchers that got a snapshot; they get every change from then on */
  readonly watchers = new Set<W>()
  /** the watchers waiting for the first read */
  readonly awaiting = new Set<W>()
  /** the keys changed since the watchers were last told, with their entry then (null: absent) */
  dirty: Map<string, PresenceMember | null> | null = null
  /** whether the watchers were last told counts only (above the list limit), and which */
  counting = false
  toldMembers = -1
  toldConnections = -1
  /** the snapshot frame of the current version, built once for every watcher that asks */
  snapshot: Buffer | null = null

  constructor (room: string, policy: Required<PresencePolicy>) {
    this.room = room
    this.policy = policy
  }
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
  private readonly views = new Map<string, View<W>>()
  private readonly dirtyViews = new Set<View<W>>()
  private timer: NodeJS.Timeout | null = null
  private retry: NodeJS.Timeout | null = null
  /** failed writes since the last one that went through (logged once per run) */
  private failedRun = 0
  private closed = false

  constructor (policies: Policies, store: AdapterPresence, counters: Counters, log: () => FastifyBaseLogger) {
    this.policies = policies
    this.store = store
    this.counters = counters
    this.log = log
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
    this.unwatch(room, holder)
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
    for (const view of this.dirtyViews) this.tell(view)
    this.dirtyViews.clear()
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
      if (this.failedRun > 0) {
        this.log().info({ failed: this.failedRun }, 'Presence writes work again')
        this.failedRun = 0
      }
    } catch (err) {
      this.counters.presenceFailures++
      if (this.failedRun++ === 0) this.log().error({ err, room }, 'Presence write failed: the room is written again, whole, once the store answers')
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
    const view = this.views.get(room)
    if (view === undefined) {
      const created = new View<W>(room, this.policyOf(room) as Required<PresencePolicy>)
      created.awaiting.add(watcher)
      this.views.set(room, created)
      this.load(created)
      return
    }
    if (view.loading && view.watchers.size === 0) {
      view.awaiting.add(watcher)
      return
    }
    view.watchers.add(watcher)
    this.snapshotTo(view, watcher)
  }

  /** A watcher asked for the room's members again (it saw a version gap). */
  resend (room: string, watcher: W): void {
    const view = this.views.get(room)
    if (view !== undefined && view.watchers.has(watcher)) this.snapshotTo(view, watcher)
  }

  private unwatch (room: string, watcher: W): void {
    const view = this.views.get(room)
    if (view === undefined) return
    view.watchers.delete(watcher)
    view.awaiting.delete(watcher)
    if (view.watchers.size > 0 || view.awaiting.size > 0) return
    this.views.delete(room)
    this.dirtyViews.delete(view)
  }

  private snapshotTo (view: View<W>, watcher: W): void {
    view.snapshot ??= view.members.size > view.policy.listLimit
      ? presenceCountFrame(view.room, view.version, view.members.size, view.connections)
      : presenceListFrame(view.room, view.version, view.members.values())
    this.counters.presenceFrames++
    watcher.presenceFrame(view.snapshot)
  }

  /** Reads a room's members from the store, then applies what changed meanwhile. */
  private load (view: View<W>): void {
    view.loading = true
    view.held = []
    this.store.read(view.room).then((snapshot) => {
      // Nobody watches it any more.
      if (this.views.get(view.room) !== view) return
      const seen = new Set<string>()
      for (const member of snapshot.members) {
        seen.add(member.key)
        this.set(view, member)
      }
      for (const key of [...view.members.keys()]) if (!seen.has(key)) this.remove(view, key)
      view.seq = snapshot.seq
      view.loading = false
      const held = view.held
      view.held = []
      for (const change of held) if (change.seq > view.seq) this.changed(view.room, change.seq, change.joined, change.left)
      for (const watcher of view.awaiting) {
        view.watchers.add(watcher)
        this.snapshotTo(view, watcher)
      }
      view.awaiting.clear()
      if (view.again) {
        view.again = false
        this.load(view)
      }
    }, (err: unknown) => {
      if (this.views.get(view.room) !== view) return
      this.log().warn({ err, room: view.room }, 'Presence read failed: tried again in a second')
      setTimeout(() => { if (this.views.get(view.room) === view) this.load(view) }, PRESENCE_RETRY_MS).unref()
    })
  }

  /** A change of a room's members, from the store (every instance's, this one's too), in seq order. */
  changed (room: string, seq: number, joined: readonly PresenceMember[], left: readonly string[]): void {
    const view = this.views.get(room)
    if (view === undefined) return
    if (view.loading) {
      view.held.push({ seq, joined, left })
      return
    }
    if (seq !== view.seq + 1) {
      // A change missed (a lost pub/sub message) or a store that started again: the room is read again.
      this.load(view)
      view.held.push({ seq, joined, left })
      return
    }
    view.seq = seq
    for (const member of joined) this.set(view, member)
    for (const key of left) this.remove(view, key)
  }

  /** The adapter subscribed the room's channel again: changes may have been missed meanwhile. */
  resync (room: string): void {
    const view = this.views.get(room)
    if (view === undefined) return
    if (view.loading) {
      view.again = true
      return
    }
    this.load(view)
  }

  private set (view: View<W>, member: PresenceMember): void {
    const before = view.members.get(member.key)
    this.mark(view, member.key, before ?? null)
    view.connections += member.connections - (before?.connections ?? 0)
    view.members.set(member.key, member)
  }

  private remove (view: View<W>, key: string): void {
    const before = view.members.get(key)
    if (before === undefined) return
    this.mark(view, key, before)
    view.connections -= before.connections
    view.members.delete(key)
  }

  private mark (view: View<W>, key: string, before: PresenceMember | null): void {
    view.snapshot = null
    if (view.watchers.size === 0) return
    const dirty = view.dirty ??= new Map()
    if (!dirty.has(key)) dirty.set(key, before)
    this.dirtyViews.add(view)
    this.schedule()
  }

  /** Tells a view's watchers what changed since they were last told: one frame for all of them. */
  private tell (view: View<W>): void {
    const dirty = view.dirty
    view.dirty = null
    let frame: Buffer | null = null
    if (view.members.size > view.policy.listLimit) {
      if (!view.counting || view.toldMembers !== view.members.size || view.toldConnections !== view.connections) {
        frame = presenceCountFrame(view.room, ++view.version, view.members.size, view.connections)
      }
      view.counting = true
      view.toldMembers = view.members.size
      view.toldConnections = view.connections
    } else if (view.counting) {
      view.counting = false
      frame = presenceListFrame(view.room, ++view.version, view.members.values())
    } else if (dirty !== null) {
      const updated: PresenceMember[] = []
      const gone: string[] = []
      for (const [key, before] of dirty) {
        const now = view.members.get(key)
        if (now === undefined) {
          if (before !== null) gone.push(key)
        } else if (before === null || before.connections !== now.connections || JSON.stringify(before.meta) !== JSON.stringify(now.meta)) {
          updated.push(now)
        }
      }
      if (updated.length > 0 || gone.length > 0) frame = presenceChangesFrame(view.room, ++view.version, updated, gone)
    }
    if (frame === null) return
    view.snapshot = null
    this.counters.presenceFrames += view.watchers.size
    for (const watcher of view.watchers) watcher.presenceFrame(frame)
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
    this.dirtyViews.clear()
    await this.write()
    await this.store.stop()
  }
}
