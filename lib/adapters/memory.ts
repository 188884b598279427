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
    const { rooms, except } = target
    if (rooms === null) {
      /* c8 ignore next -- the plugin calls init() before any broadcast */
      if (this.host === undefined) return 0
      return deliverAll(this.host.members(), message, except)
    }
    if (rooms.length === 1) return deliverAll(this.index.membersOf(rooms[0]), message, except)

    // Several rooms: a member of more than one of them gets the message once.
    let written = 0
    const seen = new Set<AdapterMember>()
    for (const room of rooms) {
      for (const member of this.index.membersOf(room)) {
        if (seen.has(member)) continue
        seen.add(member)
        if (except !== null && except.has(member)) continue
        if (member.deliver(message)) written++
      }
    }
    return written
  }

  close (): void {
    this.host = undefined
  }
}

function deliverAll (members: Iterable<AdapterMember>, message: EncodedMessage, except: ReadonlySet<AdapterMember> | null): number {
  let written = 0
  if (except === null) {
    for (const member of members) {
      if (member.deliver(message)) written++
    }
  } else {
    for (const member of members) {
      if (!except.has(member) && member.deliver(message)) written++
    }
  }
  return written
}
