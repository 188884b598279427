import type { FastifyBaseLogger } from 'fastify'
import type { AdapterHistory, EncodedMessage, HistoryPage, HistoryPolicy, Position } from '../../types/index'
import type { Encoded } from '../codec'
import type { Counters } from '../counters'
import { errors } from '../errors'
import { FailureRun, SHARDED_QUIET } from '../failure-run'
import type { Status } from '../protocol'
import type { Member } from '../rooms'
import type { Policies } from '../policies'
import { RoomLog, newEpoch, type Entry, type LostReason } from './log'
import { type Admitting, type Followed, Sequencer } from './sequencer'

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
/** How long `publish` waits for the store, in ms. */
export const PUBLISH_TIMEOUT = 5000
/** How often idle memory histories drop their expired messages, in ms. */
const SWEEP_INTERVAL = 30_000

/**
 * History rooms: the rooms a `roomPolicies` entry gives a history. Every
 * message of one gets the next offset of the room; a member that comes back
 * with the position it last got receives exactly what it missed, then live
 * messages, or nothing and the reason.
 *
 * With the memory store (no shared store from the adapter) this instance
 * numbers and keeps the messages itself, synchronously. With a shared store
 * (Redis) the store numbers them and publishes them to every instance, and
 * the `Sequencer` delivers them here in order.
 */
export class History<M extends Member> implements Admitting<M> {
  private readonly policies: Policies
  /** the adapter's store shared by the instances; null: this process keeps the history in memory */
  readonly shared: AdapterHistory | null
  private readonly hub: HistoryHub<M>
  private readonly counters: Counters
  private readonly log: () => FastifyBaseLogger
  /** memory store: every room's log */
  private readonly logs = new Map<string, RoomLog>()
  /** shared store: the rooms followed here, in order */
  private readonly sequencer: Sequencer<M> | null
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
    this.sequencer = shared === null ? null : new Sequencer(shared, hub, this, (room) => this.policyOf(room), counters, log)
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
    this.sequencer?.rooms.clear()
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
    if (this.sequencer === null) {
      this.idle.delete(room)
      return
    }
    const policy = this.policyOf(room)
    if (policy !== null) this.sequencer.follow(room, policy)
  }

  /** A history room lost its last local member. */
  roomIdle (room: string): void {
    if (this.sequencer !== null) this.sequencer.unfollow(room)
    else if (this.logs.has(room)) this.rest(room)
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
    if (this.sequencer !== null) this.sequencer.admit(room, policy, member, presented, tell)
    else this.settle(room, policy, this.memoryLog(room, policy), member, presented, tell)
  }

  /** Tells a member its position, and with a presented one what follows: from this instance's copy, or read from the store. */
  settle (room: string, policy: HistoryPolicy, log: RoomLog, member: M, presented: Position | undefined, tell: (admission: Admission) => void): void {
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
    if (this.sequencer === null) this.lost(tell, position, entries)
    else this.sequencer.resume(room, policy, log as Followed<M>, member, after, tell)
  }

  recovered (room: string, member: M, tell: (admission: Admission) => void, position: Position, entries: readonly Entry[]): void {
    this.counters.resumeRecovered++
    tell({ position, recovered: true, missed: entries.length })
    for (const entry of entries) member.deliver(entry.message, room)
    this.counters.historyReplayed += entries.length
  }

  lost (tell: (admission: Admission) => void, position: Position, reason: LostReason): void {
    this.counters.resumeFailed++
    tell({ position, recovered: false, missed: 0, reason })
  }

  /** A message of a history room, from the store (any instance's append). */
  sequenced (room: string, position: Position, message: EncodedMessage, exceptIds: ReadonlySet<string> | null): void {
    this.sequencer?.sequenced(room, position, message, exceptIds)
  }

  /** The adapter (re)subscribed the room's channel: what the store has that this instance did not deliver is read. */
  resync (room: string): void {
    this.sequencer?.resync(room)
  }
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
