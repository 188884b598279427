import type { FastifyBaseLogger } from 'fastify'
import type { AdapterHistory, EncodedMessage, HistoryPolicy, HistoryRead, Position } from '../../types/index'
import { asEncoded } from '../codec'
import type { Counters } from '../counters'
import type { Member } from '../rooms'
import { RoomLog, newEpoch, type Entry, type LostReason } from './log'
import type { Admission, HistoryHub } from './index'

/** Messages that arrived ahead of a gap, held per room at most (beyond, they are read from the store with the gap). */
export const MAX_AHEAD = 10_000
/** How long after a failed store call it is tried again, in ms. */
const RETRY_DELAY = 1000

/** A message waiting for the ones before it. */
interface Ahead {
  readonly epoch: string
  readonly message: EncodedMessage
  readonly exceptIds: ReadonlySet<string> | null
}

/** A member that joined before the room's position was known, waiting to be admitted. */
interface Waiting<M> {
  readonly member: M
  readonly presented: Position | undefined
  readonly tell: (admission: Admission) => void
}

/** The state of a history room that only a shared store needs. */
export class Followed<M> extends RoomLog {
  /** the store's position was read: delivery may start */
  ready = false
  syncing = false
  syncAgain = false
  filling = false
  /** the fill in progress; a fill whose number is not this one any more (the epoch changed) is ignored */
  fillId = 0
  /** the store is asked for a new epoch (it gave offsets this instance had delivered again) */
  renewing = false
  /** messages of the current epoch that arrived ahead of a gap, by offset */
  readonly ahead = new Map<number, Ahead>()
  /** joined before `ready` */
  readonly waiting: Array<Waiting<M>> = []
  /** resuming from the store: live messages skip them until their replay is written */
  readonly held = new Set<M>()
}

/** What the sequencer needs of the history rooms: admitting a member, and telling it how its resume went. */
export interface Admitting<M extends Member> {
  settle (room: string, policy: HistoryPolicy, log: RoomLog, member: M, presented: Position | undefined, tell: (admission: Admission) => void): void
  recovered (room: string, member: M, tell: (admission: Admission) => void, position: Position, entries: readonly Entry[]): void
  lost (tell: (admission: Admission) => void, position: Position, reason: LostReason): void
}

/**
 * History rooms on a shared store (Redis), on one instance. The store numbers
 * a room's messages and publishes them to every instance; the sequencer
 * follows the rooms with a local member, delivers each one's messages in
 * offset order, holds back what arrives early, and fills a gap from the
 * store, once for all its members. It reads the store's position when it
 * starts following a room and whenever the adapter subscribed its channel
 * again, and starts a new epoch when the store went back.
 */
export class Sequencer<M extends Member> {
  /** the rooms followed here: those with a local member */
  readonly rooms = new Map<string, Followed<M>>()
  private readonly shared: AdapterHistory
  private readonly hub: HistoryHub<M>
  private readonly admitting: Admitting<M>
  private readonly policyOf: (room: string) => HistoryPolicy | null
  private readonly counters: Counters
  private readonly log: () => FastifyBaseLogger

  constructor (shared: AdapterHistory, hub: HistoryHub<M>, admitting: Admitting<M>, policyOf: (room: string) => HistoryPolicy | null, counters: Counters, log: () => FastifyBaseLogger) {
    this.shared = shared
    this.hub = hub
    this.admitting = admitting
    this.policyOf = policyOf
    this.counters = counters
    this.log = log
  }

  /** A history room gained its first local member: it is followed from the store's position. */
  follow (room: string, policy: HistoryPolicy): void {
    const log = new Followed<M>('', policy.size)
    this.rooms.set(room, log)
    this.sync(room, log)
  }

  /** A history room lost its last local member: the store keeps it, this instance stops following it. */
  unfollow (room: string): void {
    this.rooms.delete(room)
  }

  /** A member entered a followed room: admitted now, or once the room's position is known. */
  admit (room: string, policy: HistoryPolicy, member: M, presented: Position | undefined, tell: (admission: Admission) => void): void {
    const log = this.rooms.get(room)
    /* c8 ignore next -- a member is in the room, so the room is followed */
    if (log === undefined) return
    if (!log.ready) {
      log.held.add(member)
      log.waiting.push({ member, presented, tell })
      return
    }
    this.admitting.settle(room, policy, log, member, presented, tell)
  }

  /** A resume older than this instance's copy: read from the store while live messages skip the member. */
  resume (room: string, policy: HistoryPolicy, log: Followed<M>, member: M, after: number, tell: (admission: Admission) => void): void {
    const epoch = log.epoch
    log.held.add(member)
    this.shared.read(room, after, log.top - after).then((read) => {
      log.held.delete(member)
      if (!this.stillIn(room, log, member)) return
      const position = { offset: log.top, epoch: log.epoch }
      const lost = log.epoch !== epoch ? 'EPOCH_CHANGED' : lostIn(read, after, epoch, Date.now() - policy.ttl)
      if (lost !== null) {
        this.admitting.lost(tell, position, lost)
        return
      }
      // What the store gave, up to what this instance delivered; then this
      // instance's own copy for what was delivered during the read.
      const entries: Entry[] = []
      let last = after
      for (const stored of read.messages) {
        if (stored.offset > log.top) break
        entries.push(placed(room, stored.offset, epoch, stored.message, stored.time))
        last = stored.offset
      }
      const rest = log.since(last, Date.now(), policy.ttl)
      if (typeof rest === 'string') {
        this.admitting.lost(tell, position, rest)
        return
      }
      this.admitting.recovered(room, member, tell, position, entries.concat(rest))
    }, () => {
      log.held.delete(member)
      if (!this.stillIn(room, log, member)) return
      this.admitting.lost(tell, { offset: log.top, epoch: log.epoch }, 'UNAVAILABLE')
    })
  }

  /** Whether a member is still in a room this instance still follows (it may have left during a read). */
  private stillIn (room: string, log: Followed<M>, member: M): boolean {
    return this.rooms.get(room) === log && this.hub.membersOf(room).has(member)
  }

  /** A message of a history room, from the store (any instance's append). */
  sequenced (room: string, position: Position, message: EncodedMessage, exceptIds: ReadonlySet<string> | null): void {
    const log = this.rooms.get(room)
    // A room no local member is in: nothing to deliver.
    if (log === undefined) return
    // Held until the position is known, or while a gap of this epoch is read
    // (a message of another epoch ends that epoch, and the read with it).
    if (!log.ready || (log.filling && position.epoch === log.epoch)) {
      this.hold(log, position, message, exceptIds)
      return
    }
    this.take(room, log, position, message, exceptIds)
  }

  private hold (log: Followed<M>, position: Position, message: EncodedMessage, exceptIds: ReadonlySet<string> | null): void {
    // Beyond the bound it is dropped here and read from the store with the gap.
    if (log.ahead.size < MAX_AHEAD) log.ahead.set(position.offset, { epoch: position.epoch, message, exceptIds })
  }

  private take (room: string, log: Followed<M>, position: Position, message: EncodedMessage, exceptIds: ReadonlySet<string> | null): void {
    if (position.epoch !== log.epoch) this.epochChanged(room, log, position.epoch)
    if (position.offset <= log.top) {
      // Delivered already, normally the same message (a fill and live delivery overlapped). Other bytes
      // at that offset: the store lost messages delivered here and numbers new ones with their offsets.
      const delivered = log.at(position.offset)
      if (delivered !== undefined && (delivered.message.binary !== message.binary || !delivered.message.data.equals(message.data))) this.diverged(room, log)
      return
    }
    if (position.offset === log.top + 1) {
      this.deliver(room, log, position.offset, message, exceptIds)
      this.drain(room, log)
      return
    }
    this.hold(log, position, message, exceptIds)
    this.fill(room, log, position.offset - 1)
  }

  private deliver (room: string, log: Followed<M>, offset: number, message: EncodedMessage, exceptIds: ReadonlySet<string> | null): void {
    const entry = placed(room, offset, log.epoch, message, Date.now())
    log.push(entry)
    const held = log.held.size > 0 ? log.held : null
    const skip = held === null
      ? (exceptIds === null || exceptIds.size === 0 ? null : (member: M) => exceptIds.has(member.id))
      : (member: M) => held.has(member) || (exceptIds !== null && exceptIds.has(member.id))
    this.counters.messagesSent += this.hub.deliverRoom(room, entry.message, skip)
  }

  /** Delivers what waited for the messages now delivered; reads the next gap, if any. */
  private drain (room: string, log: Followed<M>): void {
    if (log.filling || log.ahead.size === 0) return
    for (let next = log.ahead.get(log.top + 1); next !== undefined; next = log.ahead.get(log.top + 1)) {
      log.ahead.delete(log.top + 1)
      this.deliver(room, log, log.top + 1, next.message, next.exceptIds)
    }
    // Drop what is behind; a gap before the rest is read from the store.
    let lowest = Infinity
    for (const offset of log.ahead.keys()) {
      if (offset <= log.top) log.ahead.delete(offset)
      else if (offset < lowest) lowest = offset
    }
    if (lowest !== Infinity) this.fill(room, log, lowest - 1)
  }

  /** Reads the messages after `top` up to `to` from the store, once for every member here. */
  private fill (room: string, log: Followed<M>, to: number): void {
    if (log.filling) return
    log.filling = true
    const id = ++log.fillId
    const epoch = log.epoch
    this.shared.read(room, log.top, to - log.top).then((read: HistoryRead) => {
      if (this.rooms.get(room) !== log || log.fillId !== id) return
      log.filling = false
      if (read.position.epoch !== epoch) {
        // The store's history was lost after the gap was seen: the new epoch is read from its start.
        this.epochChanged(room, log, read.position.epoch)
        if (read.position.offset > 0) this.fill(room, log, read.position.offset)
        return
      }
      this.counters.historyGapsFilled++
      for (const stored of read.messages) {
        if (stored.offset === log.top + 1 && stored.offset <= to) this.deliver(room, log, stored.offset, stored.message, null)
      }
      if (log.top < to) this.gapLost(room, log, to)
      this.drain(room, log)
    }, (err: Error) => {
      if (this.rooms.get(room) !== log || log.fillId !== id) return
      log.filling = false
      this.retry(room, log, err, 'Could not read a gap of a history room from the store: retrying')
    })
  }

  /** Messages of the room are gone from the store before this instance could deliver them: members are told, and it goes on after them. */
  private gapLost (room: string, log: Followed<M>, to: number): void {
    log.reset(log.epoch, to)
    this.tellAll(room, { position: { offset: to, epoch: log.epoch }, recovered: false, missed: 0, reason: 'TRIMMED' })
  }

  /** The room's history was lost (Redis flushed or restarted without persistence): a new epoch starts at 0. */
  private epochChanged (room: string, log: Followed<M>, epoch: string): void {
    log.reset(epoch, 0)
    log.ahead.clear()
    // A read of the old epoch in progress is void.
    log.filling = false
    log.fillId++
    this.tellAll(room, { position: { offset: 0, epoch }, recovered: false, missed: 0, reason: 'EPOCH_CHANGED' })
  }

  /**
   * The store went back in one epoch: it lost messages this instance
   * delivered (Redis failed over to a replica that had not received them yet,
   * or restarted from a file older than its last writes), and gives, or will
   * give, their offsets to other messages. Clients holding those offsets
   * would skip the new ones: the store starts a new epoch (only if the room
   * is still at this one: another instance may have done so), and the
   * room's members are told, as when its history is lost.
   */
  private diverged (room: string, log: Followed<M>): void {
    if (log.renewing) return
    log.renewing = true
    this.log().warn({ room, epoch: log.epoch, top: log.top }, 'The history store lost messages of a room delivered here (a failover, or a restart from an older file): the room starts a new epoch')
    this.shared.renew(room, log.epoch, newEpoch()).then((position) => {
      log.renewing = false
      if (this.rooms.get(room) !== log || position.epoch === log.epoch) return
      this.epochChanged(room, log, position.epoch)
      if (position.offset > 0) this.fill(room, log, position.offset)
    }, (err: Error) => {
      log.renewing = false
      // Tried again at the next sign of it (a message, a resync); meanwhile the room goes on in the old epoch.
      this.log().error({ err, room }, 'Could not start a new epoch for a history room whose store lost messages')
    })
  }

  private tellAll (room: string, admission: Admission): void {
    this.counters.resumeFailed++
    for (const member of this.hub.membersOf(room)) member.historyLost(room, admission)
  }

  /** The adapter (re)subscribed the room's channel: what the store has that this instance did not deliver is read. */
  resync (room: string): void {
    const log = this.rooms.get(room)
    if (log !== undefined) this.sync(room, log)
  }

  /** Reads the store's position of a followed room: the start of delivery, or a check after a reconnect. */
  private sync (room: string, log: Followed<M>): void {
    if (log.syncing) {
      log.syncAgain = true
      return
    }
    log.syncing = true
    // What was delivered here when the position was asked for: the store has at least that, unless it went back.
    const delivered = { offset: log.top, epoch: log.epoch }
    this.shared.position(room).then((position) => {
      log.syncing = false
      if (this.rooms.get(room) !== log) return
      if (!log.ready) {
        this.start(room, log, position)
      } else if (position.epoch !== log.epoch) {
        this.epochChanged(room, log, position.epoch)
        if (position.offset > 0) this.fill(room, log, position.offset)
      } else if (position.offset > log.top) {
        this.fill(room, log, position.offset)
      } else if (position.offset < delivered.offset && position.epoch === delivered.epoch) {
        this.diverged(room, log)
      }
      if (log.syncAgain) {
        log.syncAgain = false
        this.sync(room, log)
      }
    }, (err: Error) => {
      log.syncing = false
      this.retry(room, log, err, 'Could not read the position of a history room: retrying')
    })
  }

  /** A store call failed (Redis away): the position is read again later, and what is missing with it. */
  private retry (room: string, log: Followed<M>, err: Error, message: string): void {
    if (this.rooms.get(room) !== log) return
    this.log().warn({ err, room }, message)
    setTimeout(() => {
      if (this.rooms.get(room) === log) this.sync(room, log)
    }, RETRY_DELAY).unref()
  }

  /** The store's position is known: delivery starts from it, and the members that joined meanwhile are admitted. */
  private start (room: string, log: Followed<M>, position: Position): void {
    log.ready = true
    log.reset(position.epoch, position.offset)
    // What arrived before, of another epoch, is from before the history was lost.
    for (const [offset, ahead] of log.ahead) {
      if (ahead.epoch !== position.epoch) log.ahead.delete(offset)
    }
    const policy = this.policyOf(room) as HistoryPolicy
    const waiting = log.waiting.splice(0)
    for (const waiter of waiting) log.held.delete(waiter.member)
    for (const { member, presented, tell } of waiting) {
      if (this.hub.membersOf(room).has(member)) this.admitting.settle(room, policy, log, member, presented, tell)
    }
    this.drain(room, log)
  }
}

/** A stored message as the write path takes it, with its room and position for `nexus.v1` sockets. */
function placed (room: string, offset: number, epoch: string, message: EncodedMessage, time: number): Entry {
  const encoded = asEncoded(message)
  encoded.place(room, offset, epoch)
  return { offset, message: encoded, time }
}

/** Why a read from the store cannot give back exactly the messages after `after`, or null when it can. */
function lostIn (read: HistoryRead, after: number, epoch: string, oldest: number): LostReason | null {
  if (read.position.epoch !== epoch) return 'EPOCH_CHANGED'
  const first = read.messages[0]
  // Nothing left of what it missed: aged out with the stream (its expiry), else trimmed.
  if (first === undefined) return 'EXPIRED'
  if (first.offset !== after + 1) return 'TRIMMED'
  return first.time < oldest ? 'EXPIRED' : null
}
