/**
 * Label values with a bounded number of values: close-code buckets and room
 * classes. Whatever the traffic, a metric labelled with them has a fixed
 * number of series.
 */

/** Close codes with a bucket of their own; every other code is `other`, or `4xxx` for an application's. */
const OWN_BUCKETS: ReadonlyMap<number, string> = new Map([1000, 1001, 1006, 1008, 1011, 1013].map((code) => [code, String(code)]))

/** The `code` label of a close: 1000, 1001, 1006, 1008, 1011, 1013, 4xxx (4000–4999) or other. */
export function closeCodeBucket (code: number): string {
  const own = OWN_BUCKETS.get(code)
  if (own !== undefined) return own
  return code >= 4000 && code <= 4999 ? '4xxx' : 'other'
}

/** The class of a broadcast to every connection (`broadcastAll`). */
export const ALL = 'all'
/** The class of a broadcast to several rooms of different classes. */
export const MIXED = 'mixed'
/** Rooms whose class is past the cap, or that the app's function could not classify. */
export const OTHER = 'other'
/** Longer class names are taken for a mistake (a room name returned as it is) and counted as `other`. */
const MAX_CLASS_LENGTH = 64

/**
 * The `room_class` label: the app's `roomClass(room)`, of which the first
 * `max` distinct values are kept and every later one counted as `other`. A
 * function that throws or returns anything but a short non-empty string
 * gives `other` too: a label must never break a broadcast.
 */
export class RoomClasses {
  private readonly classify: (room: string) => string
  private readonly max: number
  private readonly seen = new Set<string>()

  constructor (classify: (room: string) => string, max: number) {
    this.classify = classify
    this.max = max
  }

  /** The class of a broadcast's target: `all` for every connection, one class, or `mixed`. */
  of (rooms: readonly string[] | null): string {
    if (rooms === null) return ALL
    // broadcast([]) reaches nobody: no class to learn.
    if (rooms.length === 0) return OTHER
    let found = this.classOf(rooms[0])
    for (let i = 1; i < rooms.length; i++) {
      if (this.classOf(rooms[i]) !== found) {
        found = MIXED
        break
      }
    }
    return found
  }

  private classOf (room: string): string {
    let name: unknown
    try {
      name = this.classify(room)
    } catch {
      return OTHER
    }
    if (typeof name !== 'string' || name.length === 0 || name.length > MAX_CLASS_LENGTH) return OTHER
    if (this.seen.has(name)) return name
    if (this.seen.size >= this.max) return OTHER
    this.seen.add(name)
    return name
  }
}
