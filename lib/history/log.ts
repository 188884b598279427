import { randomBytes } from 'node:crypto'
import type { Encoded } from '../codec'

/** A message of a history room as this instance keeps it: the encoded bytes the live send wrote. */
export interface Entry {
  readonly offset: number
  readonly message: Encoded
  readonly time: number
}

/** A new epoch, the name of a room's history until it is lost: 48 random bits, base64url (8 characters, nothing to escape in JSON). */
export function newEpoch (): string {
  return randomBytes(6).toString('base64url')
}

/** Why the messages after a position cannot be given back exactly. */
export type LostReason = 'EPOCH_CHANGED' | 'TRIMMED' | 'EXPIRED' | 'INVALID_POSITION' | 'UNAVAILABLE'

/**
 * One history room on this instance: its epoch, the offset of the last
 * message delivered here (`top`), and a ring of the newest messages, with
 * contiguous offsets ending at `top`. With the memory store it is the
 * history; with a shared store (Redis) it is this instance's copy of the
 * stream's tail since the room was first followed here, which serves most
 * resumes without a round trip.
 */
export class RoomLog {
  epoch: string
  top = 0
  private readonly ring: Array<Entry | undefined> = []
  /** index of the oldest entry in `ring` */
  private head = 0
  private count = 0
  private readonly capacity: number
  /** the highest offset pushed out by the size limit (below it: TRIMMED), and by age (EXPIRED) */
  private trimmedTo = 0

  constructor (epoch: string, capacity: number) {
    this.epoch = epoch
    this.capacity = capacity
  }

  /** Adds the message that follows `top` (its offset is `top + 1`). */
  push (entry: Entry): void {
    this.top = entry.offset
    if (this.count < this.capacity) {
      // Grows up to its capacity, then wraps: an idle room costs no preallocated array.
      this.ring[(this.head + this.count) % this.capacity] = entry
      this.count++
      return
    }
    this.trimmedTo = (this.ring[this.head] as Entry).offset
    this.ring[this.head] = entry
    this.head = (this.head + 1) % this.capacity
  }

  /** The message at `offset` (up to `top`), when this instance still keeps it. */
  at (offset: number): Entry | undefined {
    const back = this.top - offset
    if (back >= this.count) return undefined
    return this.ring[(this.head + this.count - 1 - back) % this.capacity]
  }

  /** Forgets every message (the room starts again from `top`: a new epoch, or a gap that cannot be filled). */
  reset (epoch: string, top: number): void {
    this.epoch = epoch
    this.top = top
    this.ring.length = 0
    this.head = 0
    this.count = 0
    this.trimmedTo = top
  }

  /** Drops the messages older than `ttl` ms (they could not be given back anyway). */
  expire (now: number, ttl: number): void {
    while (this.count > 0) {
      const oldest = this.ring[this.head] as Entry
      if (now - oldest.time <= ttl) return
      this.ring[this.head] = undefined
      this.head = (this.head + 1) % this.capacity
      this.count--
    }
  }

  /**
   * The messages after offset `after` (of this epoch), oldest first, or why
   * they cannot all be given: pushed out by the size limit, or older than `ttl`.
   * `after` is at most `top`.
   */
  since (after: number, now: number, ttl: number): Entry[] | LostReason {
    const wanted = this.top - after
    if (wanted === 0) return []
    if (wanted > this.count) return after < this.trimmedTo ? 'TRIMMED' : 'EXPIRED'
    const first = (this.head + this.count - wanted) % this.capacity
    if (now - (this.ring[first] as Entry).time > ttl) return 'EXPIRED'
    const entries = new Array<Entry>(wanted)
    for (let i = 0; i < wanted; i++) entries[i] = this.ring[(first + i) % this.capacity] as Entry
    return entries
  }

  /** The newest `limit` messages, or the first `limit` after `after`, without the expired ones; oldest first. */
  list (after: number | null, limit: number, now: number, ttl: number): Entry[] {
    const entries: Entry[] = []
    for (let i = 0; i < this.count; i++) {
      const entry = this.ring[(this.head + i) % this.capacity] as Entry
      if ((after === null || entry.offset > after) && now - entry.time <= ttl) entries.push(entry)
    }
    return after === null ? entries.slice(-limit) : entries.slice(0, limit)
  }
}
