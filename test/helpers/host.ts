// A small real AdapterHost for the tests that drive a store adapter
// directly (the Redis history and presence stores): no rooms or connections
// of its own; it records what its adapter hands it.
import Fastify, { type FastifyBaseLogger } from 'fastify'
import type { AdapterHost, EncodedMessage, Position, PresenceMember } from '../../types/index'
import { logCapture } from './logs'

/** What `host.sequenced` was called with. */
export interface Sequenced {
  room: string
  position: Position
  data: Buffer
  binary: boolean
  exceptIds: ReadonlySet<string> | null
}

/** What `host.presenceChanged` was called with. */
export interface Changed {
  room: string
  seq: number
  joined: PresenceMember[]
  left: string[]
}

export class RecordingHost implements AdapterHost {
  readonly log: FastifyBaseLogger
  readonly lines: any[]
  readonly received: Sequenced[] = []
  readonly resynced: string[] = []
  readonly changes: Changed[] = []
  /** presenceLost() calls */
  lost = 0
  /** resync() throws, as a broken host would */
  failResync = false
  /** presenceLost() throws, as a broken host would */
  failLost = false
  /** called with every log message as the adapter logs it (synchronously) */
  onLog: (msg: string) => void = () => {}

  constructor () {
    const { stream, lines } = logCapture()
    const onLog = (msg: string): void => this.onLog(msg)
    this.log = Fastify({
      logger: {
        level: 'debug',
        stream,
        hooks: {
          logMethod (args, method) {
            onLog(String(args.find((arg) => typeof arg === 'string')))
            method.apply(this, args)
          }
        }
      }
    }).log
    this.lines = lines
  }

  deliver (): number { return 0 }
  rooms (): string[] { return [] }
  roomSize (): number { return 0 }
  connections (): number { return 0 }

  sequenced (room: string, position: Position, message: EncodedMessage, exceptIds: ReadonlySet<string> | null): void {
    this.received.push({ room, position, data: message.data, binary: message.binary, exceptIds })
  }

  resync (room: string): void {
    this.resynced.push(room)
    if (this.failResync) throw new Error('resync exploded')
  }

  presenceChanged (room: string, seq: number, joined: readonly PresenceMember[], left: readonly string[]): void {
    this.changes.push({ room, seq, joined: [...joined], left: [...left] })
  }

  presenceLost (): void {
    this.lost++
    if (this.failLost) throw new Error('presenceLost exploded')
  }

  /** How many times `room` was resynced. */
  resyncsOf (room: string): number {
    return this.resynced.filter((name) => name === room).length
  }

  /** The offsets `sequenced` got for `room`, in the order it got them. */
  offsetsOf (room: string): number[] {
    return this.received.filter((call) => call.room === room).map((call) => call.position.offset)
  }

  changesOf (room: string): Changed[] {
    return this.changes.filter((change) => change.room === room)
  }
}
