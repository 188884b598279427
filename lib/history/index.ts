import { randomBytes } from 'node:crypto'
import type { FastifyBaseLogger } from 'fastify'
import type { AdapterHistory, EncodedMessage, HistoryPage, HistoryPolicy, HistoryRead, Position } from '../../types/index'
import { asEncoded, type Encoded } from '../codec'
import type { Counters } from '../counters'
import { errors } from '../errors'
import { FailureRun, SHARDED_QUIET } from '../failure-run'
import type { Status } from '../protocol'
import type { Member } from '../rooms'
import type { Policies } from '../policies'
import { RoomLog, type Entry, type LostReason } from './log'

export type { LostReason }

/**
 * What a member is told when it enters a history room (or when the room's
 * history broke under it): the position it continues from, and, when it
 * presented a position, whether exactly what it missed follows.
 */
export type Admission = Status

/** What the history needs of the hub: the members of a room and delivery to them. */
export interface HistoryHub<M extends Member> {
  membersOf (room: string): ReadonlySet<M>
  /** Writes a message to the room's local members but `skip`; returns how many were written. */
  deliverRoom (room: string, message: Encoded, skip: ((member: M) => boolean) | null): number
}

/** Rooms without a local member whose memory history is kept, at most (the least recently used go first). */
export const MAX_IDLE_LOGS = 10_000
/** Messages that arrived ahead of a gap, held per room at most (beyond, they are read from the store with the gap). */
export const MAX_AHEAD = 10_000
/** How long `publish` waits for the store, in ms. */
export const PUBLISH_TIMEOUT = 5000
/** How often idle memory histories drop their expired messages, and a failed store call is retried, in ms. */
const SWEEP_INTERVAL = 30_000
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
class Followed<M> extends RoomLog {
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

export function newEpoch (): string {
  return randomBytes(6).toString('base64url')
}

/**
 * History rooms: the rooms a `roomPolicies` entry gives a history. Every
 * message of one gets the next offset of the room; a member that comes back
 * with the position it last got receives exactly what it missed, then live
 * messages, or nothing and the reason.
 *
 * With the memory store (no shared store from the adapter) this instance
 * numbers and keeps the messages itself, synchronously. With a shared store
 * (Redis) the store numbers them and publishes them to every instance; each
 * instance delivers a room's messages in offset order, holds back what
 * arrives early, and fills a gap from the store, once for all its members.
 */
export class History<M extends Member> {
  private readonly policies: Policies
  /** the adapter's store shared by the instances; null: this process keeps the history in memory */
  readonly shared: AdapterHistory | null
  private readonly hub: HistoryHub<M>
  private readonly counters: Counters
  private readonly log: () => FastifyBaseLogger
  /** memory store: every room's log; shared store: the rooms followed here (with a local member) */
  private readonly logs = new Map<string, RoomLog>()
  /** memory store: rooms without a local member, least recently active first */
  private readonly idle = new Set<string>()
  private sweeper: NodeJS.Timeout | null = null
  /** failed appends, logged once per run */
  private readonly failedRun: FailureRun

  constructor (policies: Policies, shared: AdapterHistory | null, hub: HistoryHub<M>, counters: Counters, log: () => FastifyBaseLogger) {
    this.policies = policies
    this.shared = shared
    this.hub = hub
    this.counters = counters
    this.log = log
    this.failedRun = new FailureRun(shared?.sharded === true ? SHARDED_QUIET : 0)
    if (shared === null) {
      this.sweeper = setInterval(() => this.sweep(), SWEEP_INTERVAL)
      this.sweeper.unref()
    }
  }

  policyOf (room: string): HistoryPolicy | null {
    return this.policies.historyOf(room)
  }

  close (): void {
    if (this.sweeper !== null) clearInterval(this.sweeper)
    this.logs.clear()
    this.idle.clear()
  }

  // ------------------------------------------------------------ sending

  /**
   * A broadcast to a history room: stored, then delivered. With the memory
   * store both happen now and the written count is returned; with a shared
   * store delivery comes back through `sequenced`, so 0 is. A failure is
   * counted and logged, never thrown.
   */
  broadcast (room: string, policy: HistoryPolicy, message: Encoded, exceptIds: ReadonlySet<string> | null, skip: ((member: M) => boolean) | null): number {
    if (this.shared === null) return this.append(room, policy, message, skip)
    this.shared.append(room, message, policy, exceptIds).then(this.stored, this.notStored)
    return 0
  }

  /** Like `broadcast`, but resolves once stored (with the position) and rejects when it cannot be. */
  async publish (room: string, policy: HistoryPolicy, message: Encoded, exceptIds: ReadonlySet<string> | null, skip: ((member: M) => boolean) | null): Promise<Position> {
    if (this.shared === null) {
      this.counters.messagesSent += this.append(room, policy, message, skip)
      return { offset: message.offset, epoch: message.epoch }
    }
    let timer: NodeJS.Timeout | undefined
    const timedOut = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(reject, PUBLISH_TIMEOUT, new Error(`the store did not answer within ${PUBLISH_TIMEOUT} ms`))
    })
    let position: Position
    try {
      position = await Promise.race([this.shared.append(room, message, policy, exceptIds), timedOut])
    } catch (err) {
      clearTimeout(timer)
      this.notStored(err as Error)
      throw unavailable(err)
    }
    clearTimeout(timer)
    this.stored()
    return position
  }

  private readonly stored = (): void => {
    this.counters.historyAppended++
    const failed = this.failedRun.succeeded()
    if (failed > 0) this.log().info({ failed }, 'History store works again')
  }

  private readonly notStored = (err: Error): void => {
    this.counters.historyFailures++
    // Logged once per run of failures, like the adapter's publish errors.
    if (this.failedRun.failed()) this.log().error({ err }, 'A message of a history room could not be stored: nobody received it')
  }

  /** Memory store: the next offset, kept in the ring, written to the local members. */
  private append (room: string, policy: HistoryPolicy, message: Encoded, skip: ((member: M) => boolean) | null): number {
    const log = this.memoryLog(room, policy)
    // A room without a local member that is written to is active all the same: last out of the bound.
    if (this.idle.has(room)) this.rest(room)
    const offset = log.top + 1
    message.place(room, offset, log.epoch)
    log.push({ offset, message, time: Date.now() })
    this.counters.historyAppended++
    return this.hub.deliverRoom(room, message, skip)
  }

  private memoryLog (room: string, policy: HistoryPolicy): RoomLog {
    let log = this.logs.get(room)
    if (log === undefined) {
      log = new RoomLog(newEpoch(), policy.size)
      this.logs.set(room, log)
      // A room written to before anyone joined it is idle from the start.
      if (this.hub.membersOf(room).size === 0) this.rest(room)
    }
    return log
  }

  // ------------------------------------------------------------ reading

  async read (room: string, policy: HistoryPolicy, since: number | null, limit: number): Promise<HistoryPage> {
    let position: Position
    let entries: ReadonlyArray<{ offset: number, message: EncodedMessage }>
    if (this.shared === null) {
      const log = this.memoryLog(room, policy)
      position = { offset: log.top, epoch: log.epoch }
      entries = log.list(since, limit, Date.now(), policy.ttl)
    } else {
      try {
        position = await this.shared.position(room)
        const after = since ?? Math.max(0, position.offset - limit)
        const read = await this.shared.read(room, after, limit)
        position = read.position
        const oldest = Date.now() - policy.ttl
        entries = read.messages.filter((entry) => entry.time >= oldest)
      } catch (err) {
        throw unavailable(err)
      }
    }
    return { position, messages: entries.map((entry) => ({ offset: entry.offset, data: decode(entry.message) })) }
  }

  // ------------------------------------------------------------ rooms

  /** A history room gained its first local member. */
  roomActive (room: string): void {
    if (this.shared === null) {
      this.idle.delete(room)
      return
    }
    const policy = this.policyOf(room)
    if (policy === null) return
    const log = new Followed<M>('', policy.size)
    this.logs.set(room, log)
    this.sync(room, log)
  }

  /** A history room lost its last local member. */
  roomIdle (room: string): void {
    if (this.shared === null) {
      if (this.logs.has(room)) this.rest(room)
      return
    }
    // The store keeps the room; this instance stops following it.
    this.logs.delete(room)
  }

  /** Memory store: a room is idle; the least recently active idle rooms beyond the bound lose their history. */
  private rest (room: string): void {
    this.idle.delete(room)
    this.idle.add(room)
    if (this.idle.size <= MAX_IDLE_LOGS) return
    const oldest = this.idle.values().next().value as string
    this.idle.delete(oldest)
    this.logs.delete(oldest)
  }

  /** Memory store: idle rooms drop their expired messages (their epoch and offset stay). */
  private sweep (): void {
    const now = Date.now()
    for (const room of this.idle) {
      const policy = this.policyOf(room)
      /* c8 ignore next -- a room in `idle` has a log, and so a policy */
      if (policy !== null) this.logs.get(room)?.expire(now, policy.ttl)
    }
  }

  /**
   * A member entered a history room (it is a member already). `presented`
   * is the position its client came back with, if any. `tell` writes what it
   * is told, before any message of the room: its position, and with a
   * presented position whether what it missed follows (then the missed
   * messages are written right after, then live ones).
   */
  admit (room: string, policy: HistoryPolicy, member: M, presented: Position | undefined, tell: (admission: Admission) => void): void {
    if (this.shared === null) {
      this.settle(room, policy, this.memoryLog(room, policy), member, presented, tell)
      return
    }
    const log = this.logs.get(room) as Followed<M> | undefined
    /* c8 ignore next -- a member is in the room, so the room is followed */
    if (log === undefined) return
    if (!log.ready) {
      log.held.add(member)
      log.waiting.push({ member, presented, tell })
      return
    }
    this.settle(room, policy, log, member, presented, tell)
  }

  private settle (room: string, policy: HistoryPolicy, log: RoomLog, member: M, presented: Position | undefined, tell: (admission: Admission) => void): void {
    const position = { offset: log.top, epoch: log.epoch }
    if (presented === undefined) {
      tell({ position })
      return
    }
    const after = presented.offset
    let lost: LostReason | null = null
    if (after < 0) {
      lost = 'INVALID_POSITION'
    } else if (presented.epoch !== log.epoch) {
      lost = 'EPOCH_CHANGED'
    } else if (after > log.top) {
      // Ahead of this instance: with a shared store it may only lag behind
      // the store (the messages will come, and the client drops what it has).
      if (this.shared === null) lost = 'INVALID_POSITION'
    } else if (log.top - after > policy.size) {
      lost = 'TRIMMED'
    }
    if (lost !== null) {
      this.lost(tell, position, lost)
      return
    }
    if (after >= log.top) {
      this.recovered(room, member, tell, position, [])
      return
    }
    const entries = log.since(after, Date.now(), policy.ttl)
    if (typeof entries !== 'string') {
      this.recovered(room, member, tell, position, entries)
      return
    }
    if (this.shared === null) {
      this.lost(tell, position, entries)
      return
    }
    this.resumeFromStore(room, policy, log as Followed<M>, member, after, tell)
  }

  /** A resume older than this instance's copy: read from the store while live messages skip the member. */
  private resumeFromStore (room: string, policy: HistoryPolicy, log: Followed<M>, member: M, after: number, tell: (admission: Admission) => void): void {
    const shared = this.shared as AdapterHistory
    const epoch = log.epoch
    log.held.add(member)
    shared.read(room, after, log.top - after).then((read) => {
      log.held.delete(member)
      if (!this.stillIn(room, log, member)) return
      const position = { offset: log.top, epoch: log.epoch }
      const lost = log.epoch !== epoch ? 'EPOCH_CHANGED' : lostIn(read, after, epoch, Date.now() - policy.ttl)
      if (lost !== null) {
        this.lost(tell, position, lost)
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
        this.lost(tell, position, rest)
        return
      }
      this.recovered(room, member, tell, position, entries.concat(rest))
    }, () => {
      log.held.delete(member)
      if (!this.stillIn(room, log, member)) return
      this.lost(tell, { offset: log.top, epoch: log.epoch }, 'UNAVAILABLE')
    })
  }

  /** Whether a member is still in a room this instance still follows (it may have left during a read). */
  private stillIn (room: string, log: RoomLog, member: M): boolean {
    return this.logs.get(room) === log && this.hub.membersOf(room).has(member)
  }

  private recovered (room: string, member: M, tell: (admission: Admission) => void, position: Position, entries: readonly Entry[]): void {
    this.counters.resumeRecovered++
    tell({ position, recovered: true, missed: entries.length })
    for (const entry of entries) member.deliver(entry.message, room)
    this.counters.historyReplayed += entries.length
  }

  private lost (tell: (admission: Admission) => void, position: Position, reason: LostReason): void {
    this.counters.resumeFailed++
    tell({ position, recovered: false, missed: 0, reason })
  }

  // ------------------------------------------------------------ shared store: ordering

  /** A message of a history room, from the store (any instance's append). */
  sequenced (room: string, position: Position, message: EncodedMessage, exceptIds: ReadonlySet<string> | null): void {
    const log = this.logs.get(room) as Followed<M> | undefined
    // A room no local member is in: nothing to deliver.
    if (log === undefined || !(log instanceof Followed)) return
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
    const shared = this.shared as AdapterHistory
    const epoch = log.epoch
    shared.read(room, log.top, to - log.top).then((read: HistoryRead) => {
      if (this.logs.get(room) !== log || log.fillId !== id) return
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
      if (this.logs.get(room) !== log || log.fillId !== id) return
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
    const shared = this.shared as AdapterHistory
    shared.renew(room, log.epoch, newEpoch()).then((position) => {
      log.renewing = false
      if (this.logs.get(room) !== log || position.epoch === log.epoch) return
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
    const log = this.logs.get(room)
    if (log instanceof Followed) this.sync(room, log)
  }

  /** Reads the store's position of a followed room: the start of delivery, or a check after a reconnect. */
  private sync (room: string, log: Followed<M>): void {
    if (log.syncing) {
      log.syncAgain = true
      return
    }
    log.syncing = true
    const shared = this.shared as AdapterHistory
    // What was delivered here when the position was asked for: the store has at least that, unless it went back.
    const delivered = { offset: log.top, epoch: log.epoch }
    shared.position(room).then((position) => {
      log.syncing = false
      if (this.logs.get(room) !== log) return
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
    if (this.logs.get(room) !== log) return
    this.log().warn({ err, room }, message)
    setTimeout(() => {
      if (this.logs.get(room) === log) this.sync(room, log)
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
      if (this.hub.membersOf(room).has(member)) this.settle(room, policy, log, member, presented, tell)
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

function unavailable (cause: unknown): Error {
  const error = new errors.FST_NEXUS_HISTORY_UNAVAILABLE((cause as Error).message)
  error.cause = cause
  return error
}

/** A stored message as `history()` gives it: as a client receives it. */
function decode (message: EncodedMessage): unknown {
  if (message.binary) return message.data
  const text = message.data.toString()
  try {
    return JSON.parse(text)
  } catch {
    return text
  }
}
