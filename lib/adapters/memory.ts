import type { Adapter, AdapterHost, AdapterMember, BroadcastTarget, EncodedMessage } from '../../types/index'
import { RoomIndex } from '../rooms'

/**
 * The embedded adapter: rooms live in this process and a broadcast reaches
 * this process's sockets. Adapters that reach other instances extend it and
 * add their transport around `broadcast`.
 */
export class MemoryAdapter implements Adapter {
  protected readonly index = new RoomIndex()
  protected host: AdapterHost | undefined

  init (host: AdapterHost): void {
    this.host = host
  }

  createRoom (room: string): void {
    this.index.create(room)
  }

  deleteRoom (room: string): boolean {
    return this.index.delete(room)
  }

  hasRoom (room: string): boolean {
    return this.index.has(room)
  }

  join (room: string, member: AdapterMember): void {
    this.index.join(room, member)
  }

  leave (room: string, member: AdapterMember): void {
    this.index.leave(room, member)
  }

  leaveAll (member: AdapterMember): void {
    this.index.leaveAll(member)
  }

  roomSize (room: string): number {
    return this.index.size(room)
  }

  membersOf (room: string): Iterable<AdapterMember> {
    return this.index.membersOf(room)
  }

  roomsOf (member: AdapterMember): Iterable<string> {
    return this.index.roomsOf(member)
  }

  rooms (): string[] {
    return this.index.list()
  }

  broadcast (message: EncodedMessage, target: BroadcastTarget): number {
    const { rooms } = target
    const skip = skipOf(target)
    if (rooms === null) {
      /* c8 ignore next -- the plugin calls init() before any broadcast */
      if (this.host === undefined) return 0
      return deliverAll(this.host.members(), message, skip)
    }
    if (rooms.length === 1) return deliverAll(this.index.membersOf(rooms[0]), message, skip)

    // Several rooms: a member of more than one of them gets the message once.
    let written = 0
    const seen = new Set<AdapterMember>()
    for (const room of rooms) {
      for (const member of this.index.membersOf(room)) {
        if (seen.has(member)) continue
        seen.add(member)
        if (skip !== null && skip(member)) continue
        if (member.deliver(message)) written++
      }
    }
    return written
  }

  close (): void {
    this.host = undefined
  }
}

/** Whether a member is excluded by `except` (members) or `exceptIds` (connection ids); `null` when nobody is. */
function skipOf (target: BroadcastTarget): ((member: AdapterMember) => boolean) | null {
  const except = target.except !== null && target.except.size > 0 ? target.except : null
  const ids = target.exceptIds !== undefined && target.exceptIds !== null && target.exceptIds.size > 0 ? target.exceptIds : null
  if (ids === null) return except === null ? null : (member) => except.has(member)
  if (except === null) return (member) => ids.has(member.id)
  return (member) => except.has(member) || ids.has(member.id)
}

function deliverAll (members: Iterable<AdapterMember>, message: EncodedMessage, skip: ((member: AdapterMember) => boolean) | null): number {
  let written = 0
  if (skip === null) {
    for (const member of members) {
      if (member.deliver(message)) written++
    }
  } else {
    for (const member of members) {
      if (!skip(member) && member.deliver(message)) written++
    }
  }
  return written
}
