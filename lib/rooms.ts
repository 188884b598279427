import type { Encoded } from './codec'
import type { PresenceHolder } from './presence/index'
import type { Status } from './protocol'

/** A local connection as the rooms see it. */
export interface Member extends PresenceHolder {
  readonly id: string
  /** Writes an encoded message of `room` (null: of no room) to this socket; `false` when it is not OPEN (or became a slow consumer). */
  deliver (message: Encoded, room: string | null): boolean
  /** A history room it is in lost messages it cannot get (a new epoch, a gap the store no longer has): it continues from `status.position`. */
  historyLost (room: string, status: Status): void
}

/** Told when a room gains its first member and when it loses its last (the adapter's subscriptions follow it). */
export interface RoomActivity {
  active (room: string): void
  idle (room: string): void
}

const EMPTY: ReadonlySet<never> = new Set()

/**
 * The two maps of room membership (room → members, member → rooms) and their
 * invariants: a member is in a room exactly when the room is in the member's
 * set; a room joined implicitly is deleted when its last member leaves; a room
 * created explicitly stays until it is deleted.
 */
export class RoomIndex<M extends Member = Member> {
  private readonly members = new Map<string, Set<M>>()
  /**
   * A member's rooms: the name itself while it is in one room (most sockets
   * are: a user, a game, a chat), a Set from the second room on. Saves a Set
   * per idle connection.
   */
  private readonly roomsByMember = new Map<M, string | Set<string>>()
  /** rooms made by createRoom: they outlive their members */
  private readonly kept = new Set<string>()
  private readonly activity: RoomActivity

  constructor (activity: RoomActivity) {
    this.activity = activity
  }

  create (room: string): void {
    this.kept.add(room)
    if (!this.members.has(room)) this.members.set(room, new Set())
  }

  delete (room: string): boolean {
    const members = this.members.get(room)
    if (members === undefined) return false
    for (const member of members) this.forget(member, room)
    this.members.delete(room)
    this.kept.delete(room)
    if (members.size > 0) this.activity.idle(room)
    return true
  }

  has (room: string): boolean {
    return this.members.has(room)
  }

  join (room: string, member: M): void {
    let members = this.members.get(room)
    if (members === undefined) {
      members = new Set()
      this.members.set(room, members)
    }
    if (members.has(member)) return
    members.add(member)
    if (members.size === 1) this.activity.active(room)
    const rooms = this.roomsByMember.get(member)
    if (rooms === undefined) {
      this.roomsByMember.set(member, room)
    } else if (typeof rooms === 'string') {
      this.roomsByMember.set(member, new Set([rooms, room]))
    } else {
      rooms.add(room)
    }
  }

  leave (room: string, member: M): void {
    const members = this.members.get(room)
    if (members === undefined || !members.delete(member)) return
    this.forget(member, room)
    if (members.size === 0) this.emptied(room)
  }

  leaveAll (member: M): void {
    const rooms = this.roomsByMember.get(member)
    if (rooms === undefined) return
    this.roomsByMember.delete(member)
    for (const room of typeof rooms === 'string' ? [rooms] : rooms) {
      const members = this.members.get(room)
      /* c8 ignore next -- the two maps are kept in step; this guards the invariant */
      if (members === undefined) continue
      members.delete(member)
      if (members.size === 0) this.emptied(room)
    }
  }

  /** A room lost its last member: it is idle, and gone unless it was created explicitly. */
  private emptied (room: string): void {
    if (!this.kept.has(room)) this.members.delete(room)
    this.activity.idle(room)
  }

  size (room: string): number {
    return this.members.get(room)?.size ?? 0
  }

  membersOf (room: string): ReadonlySet<M> {
    return this.members.get(room) ?? EMPTY
  }

  roomsOf (member: M): Iterable<string> {
    const rooms = this.roomsByMember.get(member)
    if (rooms === undefined) return EMPTY
    return typeof rooms === 'string' ? [rooms] : rooms
  }

  list (): string[] {
    return [...this.members.keys()]
  }

  private forget (member: M, room: string): void {
    const rooms = this.roomsByMember.get(member)
    /* c8 ignore next -- the two maps are kept in step; this guards the invariant */
    if (rooms === undefined) return
    if (typeof rooms === 'string') {
      this.roomsByMember.delete(member)
    } else {
      rooms.delete(room)
      // Back to the inline form once one room is left.
      if (rooms.size === 1) this.roomsByMember.set(member, rooms.values().next().value as string)
    }
  }
}
