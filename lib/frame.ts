import WebSocket from 'ws'
import type { EncodedMessage } from '../types/index'

/**
 * Pre-built frames: a broadcast builds the WebSocket frame of its message once
 * (header and payload in one buffer) and hands that same buffer to every
 * socket, as socket.io does with ws's `Sender.frame`. Everything here checks
 * that ws's internals are what it expects, once, and otherwise the plugin
 * falls back to `socket.send()`.
 */

/** ws's Sender as this module uses it. */
interface SenderLike {
  _state: number
  sendFrame (list: Buffer[], cb?: () => void): void
}

type FrameBuilder = (data: Buffer, options: { fin: boolean, rsv1: boolean, opcode: number, mask: boolean, readOnly: boolean }) => Buffer[]

const kFrame = Symbol('nexus.frame')
type Framed = EncodedMessage & { [kFrame]?: Buffer[] }

/** ws's Sender state when nothing is queued inside it (no deflate, no Blob read). */
const SENDER_IDLE = 0

/**
 * `Sender.frame`, if it builds the frames this module expects: probed once
 * with a two-byte text payload, whose frame is 0x81 0x02 followed by it.
 */
export function probeFrameBuilder (candidate: unknown): FrameBuilder | null {
  if (typeof candidate !== 'function') return null
  try {
    const payload = Buffer.from('ok')
    const list = (candidate as FrameBuilder)(payload, { fin: true, rsv1: false, opcode: 1, mask: false, readOnly: true })
    const frame = Buffer.concat(list)
    return frame.length === 4 && frame[0] === 0x81 && frame[1] === 0x02 && frame.subarray(2).equals(payload)
      ? candidate as FrameBuilder
      : null
  } catch {
    return null
  }
}

const buildFrame = probeFrameBuilder((WebSocket as unknown as { Sender?: { frame?: unknown } }).Sender?.frame)

/**
 * The sender of a socket that pre-built frames can be written to, or null:
 * a frame goes out as is only when no extension (permessage-deflate) was
 * negotiated and ws's sender has the shape this module writes to.
 */
export function frameSenderOf (socket: WebSocket, builder: FrameBuilder | null = buildFrame): SenderLike | null {
  const sender = (socket as unknown as { _sender?: Partial<SenderLike> })._sender
  if (builder === null || sender === undefined || typeof sender.sendFrame !== 'function' || typeof sender._state !== 'number') return null
  // ws keeps the negotiated extensions (permessage-deflate) as the keys of
  // `_extensions`; the public `extensions` getter builds a string each call.
  const extensions = (socket as unknown as { _extensions?: unknown })._extensions
  return typeof extensions === 'object' && extensions !== null && isEmpty(extensions) ? sender as SenderLike : null
}

function isEmpty (object: object): boolean {
  for (const key in object) if (Object.hasOwn(object, key)) return false
  return true
}

/** The frame of a message as a one-element list for `sendFrame`, built on first use and kept on the message. */
export function frameOf (message: EncodedMessage): Buffer[] {
  const framed = message as Framed
  let list = framed[kFrame]
  if (list === undefined) {
    const parts = (buildFrame as FrameBuilder)(message.data, { fin: true, rsv1: false, opcode: message.binary ? 2 : 1, mask: false, readOnly: true })
    list = [parts.length === 1 ? parts[0] : Buffer.concat(parts)]
    framed[kFrame] = list
  }
  return list
}

/** Whether a sender can take a frame now (nothing of its own queued, which would reorder). */
export function senderIdle (sender: SenderLike): boolean {
  return sender._state === SENDER_IDLE
}

export type { SenderLike }

// ------------------------------------------------------------ one write per socket per turn
//
// A socket that gets several messages in one event-loop turn (several rooms
// updated by one timer, as in a price feed) gets them in one write: its second
// write in a turn corks it, and every corked socket is uncorked in a
// process.nextTick, before the turn ends. A socket written once per turn is
// never corked, so a single broadcast costs nothing extra.

interface Corkable { cork (): void, uncork (): void }

let turn = 1
let turnOpen = false
const corked: Corkable[] = []

function endTurn (): void {
  turnOpen = false
  turn++
  for (const socket of corked) socket.uncork()
  corked.length = 0
}

/** The number of the current turn; the first call in a turn schedules its end. */
export function currentTurn (): number {
  if (!turnOpen) {
    turnOpen = true
    process.nextTick(endTurn)
  }
  return turn
}

/** Holds a socket's writes until the turn ends. */
export function corkForTurn (socket: Corkable): void {
  socket.cork()
  corked.push(socket)
}
