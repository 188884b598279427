import type { FastifyBaseLogger } from 'fastify'
import type { Adapter, AdapterHost, DeliverEvent, EncodedMessage, HistoryPage, Position, PresenceMember, PublishTarget } from '../types/index'
import { asEncoded, Encoded } from './codec'
import { createCounters, type Counters } from './counters'
import { deliverChannel, NO_CARRIER } from './diagnostics'
import { errors } from './errors'
import { History, type Admission } from './history/index'
import type { Policies } from './policies'
import { Presence } from './presence/index'
import { MemoryPresence } from './presence/memory'
import { RoomIndex, type Member } from './rooms'

export type { Member, Admission }

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
  /** the history rooms of `roomPolicies`; null when no room has a policy (the plain path, at no cost) */
  readonly history: History<M> | null
  /** the presence rooms of `roomPolicies`; null when no room tracks presence (nothing to pay) */
  readonly presence: Presence<M> | null
  private logger: FastifyBaseLogger | undefined

  constructor (adapter: Adapter, live: ReadonlySet<M>, policies: Policies | null = null, counters: Counters = createCounters()) {
    this.adapter = adapter
    this.live = live
    const history = this.history = policies === null || !policies.history
      ? null
      : new History<M>(policies, adapter.history ?? null, this, counters, () => this.log)
    this.presence = policies === null || !policies.presence
      ? null
      : new Presence<M>(policies, adapter.presence ?? new MemoryPresence((room, seq, joined, left) => this.presenceChanged(room, seq, joined, left)), counters, () => this.log)
    this.index = new RoomIndex<M>(history === null
      ? { active: (room) => { adapter.roomActive(room) }, idle: (room) => { adapter.roomIdle(room) } }
      : {
          active: (room) => {
            adapter.roomActive(room)
            history.roomActive(room)
          },
          idle: (room) => {
            adapter.roomIdle(room)
            history.roomIdle(room)
          }
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
    this.presence?.start()
  }

  // ------------------------------------------------------------ membership

  create (room: string): void {
    this.index.create(room)
  }

  delete (room: string): boolean {
    const presence = this.presenceIn(room)
    if (presence !== null) {
      for (const member of this.index.membersOf(room)) presence.left(room, member)
    }
    return this.index.delete(room)
  }

  has (room: string): boolean {
    return this.index.has(room)
  }

  join (room: string, member: M): void {
    const presence = this.presenceIn(room)
    if (presence !== null && !this.index.membersOf(room).has(member)) {
      this.index.join(room, member)
      presence.joined(room, member)
      return
    }
    this.index.join(room, member)
  }

  /**
   * Joins a member to a room. In a history room it is then admitted: `tell`
   * gets its position (and the outcome of a resume from `presented`) before
   * any message of the room reaches it. `tell(null)`: a room without history,
   * or one it was in already.
   */
  enter (room: string, member: M, presented: Position | undefined, tell: (admission: Admission | null) => void): void {
    const history = this.history
    const policy = history === null ? null : history.policyOf(room)
    if (policy === null || this.index.membersOf(room).has(member)) {
      this.join(room, member)
      tell(null)
      return
    }
    this.join(room, member)
    ;(history as History<M>).admit(room, policy, member, presented, tell)
  }

  leave (room: string, member: M): void {
    if (this.presence !== null && this.index.membersOf(room).has(member)) this.presenceIn(room)?.left(room, member)
    this.index.leave(room, member)
  }

  leaveAll (member: M): void {
    if (this.presence !== null) {
      for (const room of this.index.roomsOf(member)) this.presenceIn(room)?.left(room, member)
    }
    this.index.leaveAll(member)
  }

  /** The presence of a room that tracks it; null for any other room (and when none does: one check). */
  private presenceIn (room: string): Presence<M> | null {
    const presence = this.presence
    return presence !== null && presence.policyOf(room) !== null ? presence : null
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
    if (this.history !== null && target.rooms !== null) return this.broadcastToHistory(this.history, message, target, target.rooms, except)
    const written = this.deliverLocal(message, target.rooms, skipOf(except, target.exceptIds))
    this.adapter.publish(message, target)
    return written
  }

  /**
   * A broadcast when some rooms have a history: each history room numbers
   * and keeps its copy (a socket in two of them gets it once per room, each
   * with its position); the other rooms go the plain way, each socket once.
   */
  private broadcastToHistory (history: History<M>, message: Encoded, target: PublishTarget, rooms: readonly string[], except: ReadonlySet<M> | null): number {
    const { exceptIds, carrier } = target
    let plain: string[] | null = null
    let written = 0
    let copies = 0
    const skip = skipOf(except, exceptIds)
    for (const room of rooms) {
      const policy = history.policyOf(room)
      if (policy === null) {
        (plain ??= []).push(room)
        continue
      }
      // Each history room places its own copy (the bytes are shared).
      const copy = copies++ === 0 ? message : new Encoded(message.data, message.binary)
      written += history.broadcast(room, policy, copy, this.sharedExcept(history, except, exceptIds), skip)
      // A store of this process only: other instances get it the plain way, through the adapter.
      if (history.shared === null) this.adapter.publish(message, targetOf([room], exceptIds, carrier))
    }
    if (plain !== null) {
      written += this.deliverLocal(message, plain, skip)
      this.adapter.publish(message, targetOf(plain, exceptIds, carrier))
    }
    return written
  }

  /**
   * `manager.publish`: one history room, resolved once stored. `carrier`
   * goes with it to the other instances when the store is this process's
   * (a shared store publishes the message itself).
   */
  async publish (room: string, message: Encoded, exceptIds: ReadonlySet<string> | null, except: ReadonlySet<M> | null, carrier?: Readonly<Record<string, string>>): Promise<Position> {
    const history = this.history
    const policy = history === null ? null : history.policyOf(room)
    if (policy === null) throw new errors.FST_NEXUS_NO_HISTORY(JSON.stringify(room))
    const h = history as History<M>
    const position = await h.publish(room, policy, message, this.sharedExcept(h, except, exceptIds), skipOf(except, exceptIds))
    if (h.shared === null) this.adapter.publish(message, targetOf([room], exceptIds, carrier))
    return position
  }

  /** `manager.history`. */
  async read (room: string, since: number | null, limit: number | null): Promise<HistoryPage> {
    const history = this.history
    const policy = history === null ? null : history.policyOf(room)
    if (policy === null) throw new errors.FST_NEXUS_NO_HISTORY(JSON.stringify(room))
    return await (history as History<M>).read(room, policy, since, limit ?? policy.size)
  }

  /**
   * The connection ids a shared store must skip: the `except` sockets go by
   * id, since the store delivers to this instance too.
   */
  private sharedExcept (history: History<M>, except: ReadonlySet<M> | null, exceptIds: ReadonlySet<string> | null): ReadonlySet<string> | null {
    if (history.shared === null || except === null || except.size === 0) return exceptIds
    const ids = new Set(exceptIds)
    for (const member of except) ids.add(member.id)
    return ids
  }

  /** A message of a history room from the shared store, delivered in offset order. */
  sequenced (room: string, position: Position, message: EncodedMessage, exceptIds: ReadonlySet<string> | null): void {
    const history = this.history
    if (history !== null && history.policyOf(room) !== null) {
      history.sequenced(room, position, message, exceptIds)
      return
    }
    // Another instance has a history policy for a room this one has not: delivered the plain way.
    this.deliver(message, { rooms: [room], exceptIds })
  }

  resync (room: string): void {
    this.history?.resync(room)
    this.presence?.resync(room)
  }

  presenceChanged (room: string, seq: number, joined: readonly PresenceMember[], left: readonly string[]): void {
    this.presence?.changed(room, seq, joined, left)
  }

  presenceLost (): void {
    this.presence?.lost()
  }

  /** Writes a message to a room's local members but `skip`; returns how many were written. */
  deliverRoom (room: string, message: Encoded, skip: ((member: M) => boolean) | null): number {
    return deliverAll(this.index.membersOf(room), message, room, skip)
  }

  /** A broadcast of another instance, from the adapter: local members only. */
  deliver (message: EncodedMessage, target: PublishTarget): number {
    const written = this.deliverLocal(asEncoded(message), target.rooms, skipOf(null, target.exceptIds))
    if (deliverChannel.hasSubscribers) deliverChannel.publish({ rooms: target.rooms, recipients: written, carrier: target.carrier ?? NO_CARRIER } satisfies DeliverEvent)
    return written
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

/** A target for the adapter, with the broadcast's carrier when it has one. */
function targetOf (rooms: readonly string[], exceptIds: ReadonlySet<string> | null, carrier: Readonly<Record<string, string>> | undefined): PublishTarget {
  return carrier === undefined ? { rooms, exceptIds } : { rooms, exceptIds, carrier }
}

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
function deliverAll<M extends Member> (members: Iterable<M>, message: Encoded, room: string | null, skip: ((member: M) => boolean) | null): number {
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
