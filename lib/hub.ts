import type { FastifyBaseLogger } from 'fastify'
import type { Adapter, AdapterHost, EncodedMessage, PublishTarget } from '../types/index'
import { asEncoded, type Encoded } from './codec'
import { RoomIndex, type Member } from './rooms'

export type { Member }

/**
 * This instance's side of every room: membership (the room index), delivery
 * to local members, and the adapter, which is told when a room gains its
 * first local member or loses its last, sends each broadcast to the other
 * instances and hands back what they publish (`deliver`). Whatever the
 * adapter, membership lives here and nowhere else.
 */
export class Hub<M extends Member = Member> implements AdapterHost {
  readonly adapter: Adapter
  private readonly index: RoomIndex<M>
  /** every local member, for broadcasts to every connection */
  private readonly live: ReadonlySet<M>
  private logger: FastifyBaseLogger | undefined

  constructor (adapter: Adapter, live: ReadonlySet<M>) {
    this.adapter = adapter
    this.live = live
    this.index = new RoomIndex<M>({
      active: (room) => { adapter.roomActive(room) },
      idle: (room) => { adapter.roomIdle(room) }
    })
  }

  get log (): FastifyBaseLogger {
    /* c8 ignore next -- the plugin calls init() before the adapter can read it */
    if (this.logger === undefined) throw new Error('Hub used before init()')
    return this.logger
  }

  async init (log: FastifyBaseLogger): Promise<void> {
    this.logger = log
    await this.adapter.init(this)
  }

  // ------------------------------------------------------------ membership

  create (room: string): void {
    this.index.create(room)
  }

  delete (room: string): boolean {
    return this.index.delete(room)
  }

  has (room: string): boolean {
    return this.index.has(room)
  }

  join (room: string, member: M): void {
    this.index.join(room, member)
  }

  leave (room: string, member: M): void {
    this.index.leave(room, member)
  }

  leaveAll (member: M): void {
    this.index.leaveAll(member)
  }

  roomSize (room: string): number {
    return this.index.size(room)
  }

  membersOf (room: string): ReadonlySet<M> {
    return this.index.membersOf(room)
  }

  roomsOf (member: M): Iterable<string> {
    return this.index.roomsOf(member)
  }

  rooms (): string[] {
    return this.index.list()
  }

  connections (): number {
    return this.live.size
  }

  // ------------------------------------------------------------ delivery

  /**
   * A broadcast of this instance: written to the local members of the target
   * first, then handed to the adapter once for the other instances. Returns
   * the number of local sockets written to.
   */
  broadcast (message: Encoded, target: PublishTarget, except: ReadonlySet<M> | null): number {
    const written = this.deliverLocal(message, target.rooms, skipOf(except, target.exceptIds))
    this.adapter.publish(message, target)
    return written
  }

  /** A broadcast of another instance, from the adapter: local members only. */
  deliver (message: EncodedMessage, target: PublishTarget): number {
    return this.deliverLocal(asEncoded(message), target.rooms, skipOf(null, target.exceptIds))
  }

  private deliverLocal (message: Encoded, rooms: readonly string[] | null, skip: Skip | null): number {
    if (rooms === null) return deliverAll(this.live, message, null, skip)
    if (rooms.length === 1) return deliverAll(this.index.membersOf(rooms[0]), message, rooms[0], skip)

    // Several rooms: a member of more than one of them gets the message once.
    let written = 0
    const seen = new Set<Member>()
    for (const room of rooms) {
      for (const member of this.index.membersOf(room)) {
        if (seen.has(member)) continue
        seen.add(member)
        if (skip !== null && skip(member)) continue
        if (member.deliver(message, room)) written++
      }
    }
    return written
  }
}

type Skip = (member: Member) => boolean

/** Whether a member is excluded by `except` (members) or `exceptIds` (connection ids); `null` when nobody is. */
function skipOf (except: ReadonlySet<Member> | null, exceptIds: ReadonlySet<string> | null): Skip | null {
  const members = except !== null && except.size > 0 ? except : null
  const ids = exceptIds !== null && exceptIds.size > 0 ? exceptIds : null
  if (ids === null) return members === null ? null : (member) => members.has(member)
  if (members === null) return (member) => ids.has(member.id)
  return (member) => members.has(member) || ids.has(member.id)
}

/**
 * Delivery never changes membership: a member that turns out to be a slow
 * consumer only closes its socket, and leaves its rooms when the close
 * completes, so the sets iterated here do not change under the loop.
 */
function deliverAll (members: Iterable<Member>, message: Encoded, room: string | null, skip: Skip | null): number {
  let written = 0
  if (skip === null) {
    for (const member of members) {
      if (member.deliver(message, room)) written++
    }
  } else {
    for (const member of members) {
      if (!skip(member) && member.deliver(message, room)) written++
    }
  }
  return written
}
