import type { AdapterMember } from '../types/index'

const EMPTY: ReadonlySet<never> = new Set()

/**
 * The two maps of room membership (room → members, member → rooms) and their
 * invariants: a member is in a room exactly when the room is in the member's
 * set; a room joined implicitly is deleted when its last member leaves; a room
 * created explicitly stays until it is deleted.
 */
export class RoomIndex {
  private readonly members = new Map<string, Set<AdapterMember>>()
  private readonly roomsByMember = new Map<AdapterMember, Set<string>>()
  /** rooms made by createRoom: they outlive their members */
  private readonly kept = new Set<string>()

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
    return true
  }

  has (room: string): boolean {
    return this.members.has(room)
  }

  join (room: string, member: AdapterMember): void {
    let members = this.members.get(room)
    if (members === undefined) {
      members = new Set()
      this.members.set(room, members)
    }
    members.add(member)
    let rooms = this.roomsByMember.get(member)
    if (rooms === undefined) {
      rooms = new Set()
      this.roomsByMember.set(member, rooms)
    }
    rooms.add(room)
  }

  leave (room: string, member: AdapterMember): void {
    const members = this.members.get(room)
    if (members === undefined || !members.delete(member)) return
    this.forget(member, room)
    if (members.size === 0 && !this.kept.has(room)) this.members.delete(room)
  }

  leaveAll (member: AdapterMember): void {
    const rooms = this.roomsByMember.get(member)
    if (rooms === undefined) return
    this.roomsByMember.delete(member)
    for (const room of rooms) {
      const members = this.members.get(room)
      /* c8 ignore next -- the two maps are kept in step; this guards the invariant */
      if (members === undefined) continue
      members.delete(member)
      if (members.size === 0 && !this.kept.has(room)) this.members.delete(room)
    }
  }

  size (room: string): number {
    return this.members.get(room)?.size ?? 0
  }

  membersOf (room: string): ReadonlySet<AdapterMember> {
    return this.members.get(room) ?? EMPTY
  }

  roomsOf (member: AdapterMember): ReadonlySet<string> {
    return this.roomsByMember.get(member) ?? EMPTY
  }

  list (): string[] {
    return [...this.members.keys()]
  }

  private forget (member: AdapterMember, room: string): void {
    const rooms = this.roomsByMember.get(member)
    /* c8 ignore next -- the two maps are kept in step; this guards the invariant */
    if (rooms === undefined) return
    rooms.delete(room)
    if (rooms.size === 0) this.roomsByMember.delete(member)
  }
}
