import type { AdapterPresence, PresenceChange, PresenceCount, PresenceMember, PresenceSnapshot } from '../../types/index'

/** Where the memory store tells its changes: the host's `presenceChanged`. */
export type PresenceListener = (room: string, seq: number, joined: readonly PresenceMember[], left: readonly string[]) => void

/** A room as the memory store keeps it. */
interface Room {
  /** key → its member entry (connections summed, meta of the last write) */
  readonly members: Map<string, PresenceMember>
  connections: number
  seq: number
}

/**
 * The presence of one process: right for the memory adapter (and any adapter
 * without a shared store), where this instance is the only writer. A room
 * is forgotten when its last member leaves; its next change starts again
 * from seq 1, which the views take as a gap and read the room again (it is
 * empty then, and nobody watches an empty room: a watcher is a member).
 */
export class MemoryPresence implements AdapterPresence {
  private readonly rooms = new Map<string, Room>()
  private readonly changed: PresenceListener

  constructor (changed: PresenceListener) {
    this.changed = changed
  }

  start (): void {}

  async update (room: string, changes: readonly PresenceChange[], replace: boolean): Promise<void> {
    let state = this.rooms.get(room)
    if (state === undefined) {
      state = { members: new Map(), connections: 0, seq: 0 }
      this.rooms.set(room, state)
    }
    const joined: PresenceMember[] = []
    const left: string[] = []
    const given = replace ? new Set<string>() : null
    for (const change of changes) {
      given?.add(change.key)
      this.apply(state, change.key, change.connections, change.meta, joined, left)
    }
    if (given !== null) {
      for (const key of [...state.members.keys()]) if (!given.has(key)) this.apply(state, key, 0, '', joined, left)
    }
    if (state.members.size === 0) this.rooms.delete(room)
    if (joined.length === 0 && left.length === 0) return
    this.changed(room, ++state.seq, joined, left)
  }

  private apply (state: Room, key: string, connections: number, meta: string, joined: PresenceMember[], left: string[]): void {
    const member = state.members.get(key)
    if (connections === 0) {
      if (member === undefined) return
      state.members.delete(key)
      state.connections -= member.connections
      left.push(key)
      return
    }
    const value: unknown = member !== undefined && JSON.stringify(member.meta) === meta ? member.meta : JSON.parse(meta)
    if (member !== undefined && member.connections === connections && value === member.meta) return
    state.connections += connections - (member?.connections ?? 0)
    const next = { key, meta: value, connections }
    state.members.set(key, next)
    joined.push(next)
  }

  async read (room: string): Promise<PresenceSnapshot> {
    const state = this.rooms.get(room)
    return state === undefined ? { seq: 0, members: [] } : { seq: state.seq, members: [...state.members.values()] }
  }

  async count (room: string): Promise<PresenceCount> {
    const state = this.rooms.get(room)
    return state === undefined ? { members: 0, connections: 0 } : { members: state.members.size, connections: state.connections }
  }

  async stop (): Promise<void> {}
}
