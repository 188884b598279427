import type { FastifyBaseLogger } from 'fastify'
import type { AdapterPresence, PresenceMember, PresencePolicy } from '../../types/index'
import type { Counters } from '../counters'
import { presenceChangesFrame, presenceCountFrame, presenceListFrame } from '../protocol'
import { PRESENCE_RETRY_MS, type PresenceHolder } from './identity'

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
 * The views of the presence rooms this instance's connections watch (they
 * subscribed with presence): each kept from the store's snapshot and every
 * change after it, in `seq` order, and told to its watchers once per window
 * (`flush`, at the end of the window the writes end too).
 */
export class Views<W extends PresenceHolder> {
  private readonly store: AdapterPresence
  private readonly counters: Counters
  private readonly log: () => FastifyBaseLogger
  private readonly policyOf: (room: string) => Required<PresencePolicy> | null
  /** asks for the end of a window (a view changed) */
  private readonly schedule: () => void
  private readonly views = new Map<string, View<W>>()
  private readonly dirtyViews = new Set<View<W>>()

  constructor (store: AdapterPresence, counters: Counters, log: () => FastifyBaseLogger, policyOf: (room: string) => Required<PresencePolicy> | null, schedule: () => void) {
    this.store = store
    this.counters = counters
    this.log = log
    this.policyOf = policyOf
    this.schedule = schedule
  }

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

  /** A watcher left the room (or closed). */
  unwatch (room: string, watcher: W): void {
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

  /** The end of a window: every changed view to its watchers. */
  flush (): void {
    for (const view of this.dirtyViews) this.tell(view)
    this.dirtyViews.clear()
  }

  /** `app.close()`: nobody watches any more. */
  clear (): void {
    this.views.clear()
    this.dirtyViews.clear()
  }
}
