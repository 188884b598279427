import type { EventEmitter } from 'node:events'
import type { Adapter, AdapterHost, EncodedMessage, PublishTarget } from 'fastify-nexus-realtime'

/**
 * The smallest transport: apps of one process share rooms over an
 * EventEmitter. The plugin keeps membership and writes to this app's sockets
 * itself; the adapter only carries broadcasts between apps.
 */
export class EmitterAdapter implements Adapter {
  private readonly bus: EventEmitter
  private host: AdapterHost | undefined
  /** rooms with a member in this app: a real transport subscribes to them */
  private readonly active = new Set<string>()

  constructor (bus: EventEmitter) {
    this.bus = bus
  }

  init (host: AdapterHost): void {
    this.host = host
    this.bus.on('broadcast', this.receive)
  }

  roomActive (room: string): void {
    this.active.add(room)
  }

  roomIdle (room: string): void {
    this.active.delete(room)
  }

  publish (message: EncodedMessage, target: PublishTarget): void {
    this.bus.emit('broadcast', this, message, target)
  }

  close (): void {
    this.bus.off('broadcast', this.receive)
    this.host = undefined
  }

  private readonly receive = (from: EmitterAdapter, message: EncodedMessage, target: PublishTarget): void => {
    // Its own broadcasts come back too: this app's sockets have them already.
    if (from === this || this.host === undefined) return
    if (target.rooms !== null && !target.rooms.some((room) => this.active.has(room))) return
    this.host.deliver(message, target)
  }
}
