import sjson from 'secure-json-parse'
import type { Position, PresenceMember } from '../types/index'
import type { JsonSafety } from './codec'
import { MAX_ROOM_NAME_LENGTH } from './constants'

/**
 * The `nexus.v1` wire format (PROTOCOL.md): every frame is a kind letter, a
 * JSON header on one line, a line feed, then the payload as it is. This file
 * encodes and decodes frames and nothing else; what they mean is the
 * connection's business.
 */

/** The WebSocket subprotocol a client offers to speak it. */
export const PROTOCOL = 'nexus.v1'

/** Offered beside `nexus.v1` by a client whose first frame presents its positions in history rooms (`r`). */
export const RESUME = 'nexus.resume'

const LF = 0x0a

/** A frame a client sent, decoded and checked once. */
export type ClientFrame =
  | { readonly kind: 'm', readonly payload: Buffer }
  | { readonly kind: 'q', readonly id: number, readonly payload: Buffer }
  | { readonly kind: 's', readonly id: number, readonly room: unknown, readonly params: unknown, readonly presence: boolean }
  | { readonly kind: 'p', readonly room: unknown }
  | { readonly kind: 'u', readonly id: number, readonly room: unknown }
  | { readonly kind: 'r', readonly positions: Map<string, Position> }

/** Why a frame was refused (sent back in an INVALID_FRAME error). */
export class FrameError {
  readonly reason: string
  /** the request id, when the header carried a valid one */
  readonly id: number | undefined
  constructor (reason: string, id?: number) {
    this.reason = reason
    this.id = id
  }
}

const M_EMPTY: ClientFrame = Object.freeze({ kind: 'm', payload: Buffer.alloc(0) })

/** Decodes a client frame. `safety` is the app's prototype-poisoning policy, applied to headers too. */
export function decodeClientFrame (data: Buffer, safety: JsonSafety): ClientFrame | FrameError {
  const end = data.indexOf(LF)
  if (end < 1) return new FrameError('a frame is a kind letter, a JSON header and a line feed')
  const kind = String.fromCharCode(data[0])
  const payload = data.subarray(end + 1)
  // The common case, a message with an empty header, needs no JSON parse.
  if (kind === 'm' && end === 3 && data[1] === 0x7b && data[2] === 0x7d) {
    return payload.length === 0 ? M_EMPTY : { kind: 'm', payload }
  }
  let header: unknown
  try {
    header = sjson.parse(data.toString('utf8', 1, end), null, safety)
  } catch {
    return new FrameError('the header is not valid JSON')
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) return new FrameError('the header is not a JSON object')
  const fields = header as { i?: unknown, r?: unknown, p?: unknown, w?: unknown }
  if (kind === 'm') return { kind, payload }
  if (kind === 'r') return { kind, positions: positionsOf(fields.p) }
  if (kind === 'p') return { kind, room: fields.r }
  const id = fields.i
  if (typeof id !== 'number' || !Number.isSafeInteger(id) || id <= 0) return new FrameError(`a "${kind}" frame needs a positive integer "i"`)
  switch (kind) {
    case 'q': return { kind, id, payload }
    case 's': return { kind, id, room: fields.r, params: fields.p, presence: fields.w === 1 || fields.w === true }
    case 'u': return { kind, id, room: fields.r }
    default: return new FrameError(`unknown frame kind "${kind}"`, id)
  }
}

/** Positions a client presents at most (further ones are ignored). */
export const MAX_PRESENTED = 1024

/**
 * The positions of an `r` frame: `{ room: [offset, epoch] }`. A malformed
 * one is kept with offset -1, so that its room is answered INVALID_POSITION.
 */
function positionsOf (given: unknown): Map<string, Position> {
  const positions = new Map<string, Position>()
  if (typeof given !== 'object' || given === null) return positions
  for (const [room, value] of Object.entries(given)) {
    if (positions.size === MAX_PRESENTED) break
    if (!isRoomName(room)) continue
    const [offset, epoch] = Array.isArray(value) ? value as unknown[] : []
    const valid = typeof offset === 'number' && Number.isSafeInteger(offset) && offset >= 0 && typeof epoch === 'string'
    positions.set(room, valid ? { offset, epoch } : { offset: -1, epoch: '' })
  }
  return positions
}

/** Whether a value is a room name: a string of 1 to MAX_ROOM_NAME_LENGTH characters. */
export function isRoomName (value: unknown): value is string {
  return typeof value === 'string' && value.length > 0 && value.length <= MAX_ROOM_NAME_LENGTH
}

/** A frame: kind, header, optional payload. */
export function encodeFrame (kind: string, header: object, payload?: Buffer): Buffer {
  const head = Buffer.from(`${kind}${JSON.stringify(header)}\n`)
  return payload === undefined ? head : Buffer.concat([head, payload], head.length + payload.length)
}

/**
 * The head of a server `m` frame: `{}` for a message to this socket,
 * `{"r":room}` for a room's, `{"r":room,"o":offset,"e":epoch}` for a history room's.
 */
export function messageHead (room: string | null, offset?: number, epoch?: string): Buffer {
  if (room === null) return DIRECT_HEAD
  const position = offset === undefined ? '' : `,"o":${offset},"e":${JSON.stringify(epoch)}`
  return Buffer.from(`m{"r":${JSON.stringify(room)}${position}}\n`)
}

/** `m{}\n`: the head of every message written to one socket. */
export const DIRECT_HEAD = Buffer.from('m{}\n')

/** The hello frame, first on every `nexus.v1` connection. */
export function helloFrame (id: string): Buffer {
  return encodeFrame('h', { v: 1, id })
}

/** An error frame: code, message, and the request id, room, temporary flag and details when there are. */
export function protocolError (code: string, message: string, extra?: { i?: number, r?: string, t?: boolean, x?: unknown }): Buffer {
  return encodeFrame('e', { c: code, m: message, ...extra })
}

/** What a connection is told when it enters a history room: its position, and the outcome of a resume. */
export interface Status {
  readonly position: Position
  readonly recovered?: boolean
  readonly missed?: number
  readonly reason?: string
}

/**
 * The answer to a subscribe (`s`, with the request id) or the notice of a
 * join by server code (`j`), with the position in a history room and the
 * outcome of a resume when the client presented a position.
 */
export function statusFrame (kind: 's' | 'j', room: string, id: number | undefined, status: Status | null): Buffer {
  const header: Record<string, unknown> = id === undefined ? { r: room } : { i: id, r: room }
  if (status !== null) {
    header.o = status.position.offset
    header.e = status.position.epoch
    if (status.recovered !== undefined) {
      header.recovered = status.recovered
      header.missed = status.missed
      if (status.reason !== undefined) header.reason = status.reason
    }
  }
  return encodeFrame(kind, header)
}

/** A presence room's members (`p` with `m`): what a watcher's list is from version `v` on. */
export function presenceListFrame (room: string, version: number, members: Iterable<PresenceMember>): Buffer {
  const m: unknown[] = []
  for (const member of members) m.push([member.key, member.connections, member.meta])
  return encodeFrame('p', { r: room, v: version, m })
}

/** A presence room's counts only (`p` with `n` and `c`): the room has more members than its list limit. */
export function presenceCountFrame (room: string, version: number, members: number, connections: number): Buffer {
  return encodeFrame('p', { r: room, v: version, n: members, c: connections })
}

/** What changed in a presence room since version `v - 1` (`d`): members added or changed, keys gone. */
export function presenceChangesFrame (room: string, version: number, updated: readonly PresenceMember[], gone: readonly string[]): Buffer {
  return encodeFrame('d', { r: room, v: version, u: updated.map((member) => [member.key, member.connections, member.meta]), l: gone })
}
