import type { PresenceMember } from '../../../types/index'
import { MAX_ROOM_NAME_LENGTH } from '../../constants'

// ------------------------------------------------------------------ wire format
//
// Every message an instance publishes is one binary frame:
//
//   offset 0    u8    format version (FORMAT_VERSION)
//   offset 1    u8    kind: broadcast, query, answer, history or presence
//   offset 2    16 B  uid of the publishing instance
//   offset 18   u32   length H of the JSON header (big-endian)
//   offset 22   H B   the JSON header
//   offset 22+H       the body: for a broadcast or a history message, the
//                     message exactly as the sockets get it (encoded once, never again);
//                     nothing for the other kinds
//
// Headers: broadcast `{ b: 0|1 (binary), r: rooms | null (every connection),
// x?: connection ids to skip, s?: Date.now() when it was published (for the
// pub/sub lag), t?: the trace carrier of its publish, string → string, only
// when a tracer filled one in }`; query `{ id, q: 'rooms'|'size'|'connections',
// room? }`; answer `{ id, v }`; history `{ b, r: [room], x?, o: offset, e: epoch }`;
// presence `{ r: room, s: seq, u: [[key, connections, meta], ...], l: [key, ...] }`
// (members joined or changed, with their totals across instances; keys gone).
//
// A history frame is put together by the history store's append script
// (./history.ts), in Redis: Node gives it the fixed part up to the header
// length (`historyFrameStart`) and the header without its end; the script adds
// `,"o":N,"e":"E"}`, the header length and the body, and publishes it.
//
// A presence frame is written whole by the presence store's update script
// (./presence.ts): Node gives it the fixed part up to the header length
// (`presenceFrameHead`); the script writes the header, JSON.stringify's way
// (the metas embedded as the JSON texts Node gave), its length, and publishes
// it. History and presence frames come back to the instance that published
// them, and are handled there as everywhere.
//
// A broadcast's `s` and `t` came later within version 1: a broadcast without
// them (from an older instance) is still one, and older instances ignore them.
//
// This module is pure: bytes in, typed messages out, and back. Whatever comes
// from Redis is checked here, once; the adapter never looks at a header.

export const FORMAT_VERSION = 1
export const UID_BYTES = 16

const KIND_BROADCAST = 1
const KIND_QUERY = 2
const KIND_ANSWER = 3
const KIND_HISTORY = 4
const KIND_PRESENCE = 5
/** the longest epoch a history frame may carry (the store's are 8 characters) */
const MAX_EPOCH_LENGTH = 64
/** the most entries a trace carrier may have, and the longest key and value (a W3C tracestate is at most 512 characters) */
const MAX_CARRIER_ENTRIES = 16
const MAX_CARRIER_KEY = 64
const MAX_CARRIER_VALUE = 1024
const UID_END = 2 + UID_BYTES
const HEADER_START = UID_END + 4

/** A broadcast of one instance, for the local members of the others. */
export interface BroadcastMessage {
  readonly kind: 'broadcast'
  readonly binary: boolean
  /** `null`: every connection */
  readonly rooms: readonly string[] | null
  /** `null` (or empty): nobody is skipped */
  readonly exceptIds: ReadonlySet<string> | null
  /** when it was published (Date.now() of the publisher); null from an instance that does not say */
  readonly sentAt: number | null
  /** the trace carrier of its publish; null when there is none */
  readonly carrier: Readonly<Record<string, string>> | null
  /** the message as the publisher's own sockets got it */
  readonly data: Buffer
}

/** What a cluster-wide query asks every other instance for. */
export type Question =
  | { readonly query: 'rooms' }
  | { readonly query: 'connections' }
  | { readonly query: 'size', readonly room: string }

export type QueryMessage = { readonly kind: 'query', readonly id: number } & Question

/** Room names for a `rooms` query, a count for the others. */
export type AnswerValue = readonly string[] | number

export interface AnswerMessage {
  readonly kind: 'answer'
  readonly id: number
  readonly value: AnswerValue
}

/**
 * A message of a history room as the store numbered it: delivered by every
 * instance that hosts the room, its publisher included, in offset order.
 */
export interface HistoryMessage {
  readonly kind: 'history'
  readonly room: string
  /** its offset in the room (from 1) */
  readonly offset: number
  /** the epoch of the room's history it belongs to */
  readonly epoch: string
  readonly binary: boolean
  /** `null` (or empty): nobody is skipped */
  readonly exceptIds: ReadonlySet<string> | null
  /** the message as the sockets get it */
  readonly data: Buffer
}

/** What a history frame's start is made of: everything but its position and body. */
export interface HistoryFrameFields {
  readonly room: string
  readonly binary: boolean
  readonly exceptIds: ReadonlySet<string> | null
}

/**
 * What changed in a presence room's members, as the store applied it:
 * handled by every instance that hosts the room, its writer included, in seq order.
 */
export interface PresenceMessage {
  readonly kind: 'presence'
  readonly room: string
  /** the room's change number (from 1) */
  readonly seq: number
  /** members added or changed, with their totals across instances */
  readonly joined: readonly PresenceMember[]
  /** keys gone from the room */
  readonly left: readonly string[]
}

export type WireMessage = BroadcastMessage | QueryMessage | AnswerMessage | HistoryMessage | PresenceMessage

/** The uid (hex) of the instance that published it: queries are answered, and answers counted, per instance. */
interface Origin { readonly origin: string }

/** A message as decoded: queries and answers say who sent them. */
export type ReceivedMessage = BroadcastMessage | HistoryMessage | PresenceMessage | (QueryMessage & Origin) | (AnswerMessage & Origin)

export type Decoded =
  | { readonly ok: true, readonly message: ReceivedMessage }
  | { readonly ok: false, readonly reason: string }

/** The frame of a message published by the instance `uid` (UID_BYTES bytes). */
export function encode (uid: Buffer, message: WireMessage): Buffer {
  if (message.kind === 'history') {
    // As the store's script completes it: one layout, whoever writes it.
    const { head, headerStart } = historyFrameStart(uid, message)
    const json = Buffer.from(headerStart + `,"o":${message.offset},"e":${JSON.stringify(message.epoch)}}`)
    const length = Buffer.allocUnsafe(4)
    length.writeUInt32BE(json.length)
    return Buffer.concat([head, length, json, message.data])
  }
  if (message.kind === 'presence') {
    // As the store's script writes it: one layout, whoever writes it.
    const { room, seq, joined, left } = message
    const json = Buffer.from(JSON.stringify({ r: room, s: seq, u: joined.map((member) => [member.key, member.connections, member.meta]), l: left }))
    const length = Buffer.allocUnsafe(4)
    length.writeUInt32BE(json.length)
    return Buffer.concat([presenceFrameHead(uid), length, json])
  }
  let kind: number
  let header: object
  let body: Buffer | undefined
  switch (message.kind) {
    case 'broadcast': {
      kind = KIND_BROADCAST
      const { exceptIds, sentAt, carrier } = message
      // `x`, `s` and `t` are left out when there are none: the usual broadcast has the shortest header.
      const fields: { b: number, r: readonly string[] | null, x?: string[], s?: number, t?: Readonly<Record<string, string>> } = { b: message.binary ? 1 : 0, r: message.rooms }
      if (exceptIds !== null && exceptIds.size > 0) fields.x = [...exceptIds]
      if (sentAt !== null) fields.s = sentAt
      if (carrier !== null) fields.t = carrier
      header = fields
      body = message.data
      break
    }
    case 'query':
      kind = KIND_QUERY
      header = message.query === 'size' ? { id: message.id, q: message.query, room: message.room } : { id: message.id, q: message.query }
      break
    case 'answer':
      kind = KIND_ANSWER
      header = { id: message.id, v: message.value }
      break
  }
  const json = Buffer.from(JSON.stringify(header))
  const head = Buffer.allocUnsafe(HEADER_START)
  head[0] = FORMAT_VERSION
  head[1] = kind
  uid.copy(head, 2)
  head.writeUInt32BE(json.length, UID_END)
  return body === undefined ? Buffer.concat([head, json]) : Buffer.concat([head, json, body])
}

/**
 * The start of a history frame: the bytes before the header length (version,
 * kind, uid), and the JSON header without its end, which is
 * `,"o":<offset>,"e":"<epoch>"}` (epochs are base64url: nothing to escape).
 */
export function historyFrameStart (uid: Buffer, fields: HistoryFrameFields): { head: Buffer, headerStart: string } {
  const head = Buffer.allocUnsafe(UID_END)
  head[0] = FORMAT_VERSION
  head[1] = KIND_HISTORY
  uid.copy(head, 2)
  const { exceptIds } = fields
  const start = { b: fields.binary ? 1 : 0, r: [fields.room] }
  // `x` is left out when nobody is skipped, as in a broadcast.
  const json = JSON.stringify(exceptIds !== null && exceptIds.size > 0 ? { ...start, x: [...exceptIds] } : start)
  return { head, headerStart: json.slice(0, -1) }
}

/** The start of a presence frame: the bytes before the header length (version, kind, uid). */
export function presenceFrameHead (uid: Buffer): Buffer {
  const head = Buffer.allocUnsafe(UID_END)
  head[0] = FORMAT_VERSION
  head[1] = KIND_PRESENCE
  uid.copy(head, 2)
  return head
}

/**
 * Whether a frame is the instance `uid`'s own, come back to it: dropped
 * unread, before any decoding, as it delivered its broadcasts locally already
 * (and asked its queries itself). Not a history or presence frame: those
 * are handled when they come back, by the instance that wrote them too.
 */
export function ownEcho (payload: Buffer, uid: Buffer): boolean {
  return payload.length >= HEADER_START && payload[0] === FORMAT_VERSION && payload[1] !== KIND_HISTORY && payload[1] !== KIND_PRESENCE &&
    uid.compare(payload, 2, UID_END) === 0
}

/** A frame from Redis as a checked message, or why it is not one. Never throws. */
export function decode (payload: Buffer): Decoded {
  if (payload.length < HEADER_START || payload[0] !== FORMAT_VERSION) return invalid('unknown format')
  const headerEnd = HEADER_START + payload.readUInt32BE(UID_END)
  if (headerEnd > payload.length) return invalid('truncated')
  let header: unknown
  try {
    header = JSON.parse(payload.toString('utf8', HEADER_START, headerEnd))
  } catch {
    return invalid('header is not JSON')
  }
  if (typeof header !== 'object' || header === null) return invalid('header is not an object')
  const fields = header as Record<string, unknown>
  switch (payload[1]) {
    case KIND_BROADCAST: return decodeBroadcast(fields, payload.subarray(headerEnd))
    case KIND_QUERY: return decodeQuery(fields, payload.toString('hex', 2, UID_END))
    case KIND_ANSWER: return decodeAnswer(fields, payload.toString('hex', 2, UID_END))
    case KIND_HISTORY: return decodeHistory(fields, payload.subarray(headerEnd))
    case KIND_PRESENCE: return headerEnd === payload.length ? decodePresence(fields) : invalid('presence frame with a body')
    default: return invalid(`unknown kind ${payload[1]}`)
  }
}

function decodeBroadcast ({ b, r, x, s, t }: Record<string, unknown>, data: Buffer): Decoded {
  if ((b !== 0 && b !== 1) || (r !== null && !isRoomList(r)) || (x !== undefined && !isStringArray(x)) || (s !== undefined && !isCount(s))) {
    return invalid('bad broadcast header')
  }
  const carrier = t === undefined ? null : carrierOf(t)
  if (carrier === undefined) return invalid('bad broadcast header')
  // The body is a view into the reply ioredis read, memory ioredis never
  // reuses: the sockets may hold on to it until their (possibly corked) writes go out.
  return valid({ kind: 'broadcast', binary: b === 1, rooms: r, exceptIds: x === undefined ? null : new Set(x), sentAt: s ?? null, carrier, data })
}

/**
 * A trace carrier from a header, copied into an object without a prototype
 * (its keys are the publisher's to choose); undefined when it is not a small
 * string → string object.
 */
function carrierOf (value: unknown): Record<string, string> | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined
  const entries = Object.entries(value)
  if (entries.length > MAX_CARRIER_ENTRIES) return undefined
  const carrier: Record<string, string> = Object.create(null)
  for (const [key, item] of entries) {
    if (key.length > MAX_CARRIER_KEY || typeof item !== 'string' || item.length > MAX_CARRIER_VALUE) return undefined
    carrier[key] = item
  }
  return carrier
}

function decodeHistory ({ b, r, x, o, e }: Record<string, unknown>, data: Buffer): Decoded {
  if ((b !== 0 && b !== 1) || !isRoomList(r) || r.length !== 1 || (x !== undefined && !isStringArray(x)) || !isOffset(o) || !isEpoch(e)) {
    return invalid('bad history header')
  }
  // The body is a view into the reply, as a broadcast's.
  return valid({ kind: 'history', room: r[0], offset: o, epoch: e, binary: b === 1, exceptIds: x === undefined ? null : new Set(x), data })
}

function decodePresence ({ r, s, u, l }: Record<string, unknown>): Decoded {
  if (!isRoomName(r) || !isOffset(s) || !Array.isArray(u) || !u.every(isPresenceEntry) || !isStringArray(l)) {
    return invalid('bad presence header')
  }
  const joined = u.map(([key, connections, meta]): PresenceMember => ({ key, meta, connections }))
  return valid({ kind: 'presence', room: r, seq: s, joined, left: l })
}

/** `[key, connections (from 1), meta (any JSON)]` */
function isPresenceEntry (value: unknown): value is [string, number, unknown] {
  return Array.isArray(value) && value.length === 3 && typeof value[0] === 'string' && isOffset(value[1])
}

function decodeQuery ({ id, q, room }: Record<string, unknown>, origin: string): Decoded {
  if (!isCount(id)) return invalid('bad query header')
  if (q === 'rooms' || q === 'connections') return valid({ kind: 'query', id, query: q, origin })
  if (q === 'size' && isRoomName(room)) return valid({ kind: 'query', id, query: q, room, origin })
  return invalid('bad query header')
}

function decodeAnswer ({ id, v }: Record<string, unknown>, origin: string): Decoded {
  // Which of the two the query wanted is the asking instance's to check: it alone knows the question.
  if (!isCount(id) || !(isCount(v) || isRoomList(v))) return invalid('bad answer')
  return valid({ kind: 'answer', id, value: v, origin })
}

function valid (message: ReceivedMessage): Decoded {
  return { ok: true, message }
}

function invalid (reason: string): Decoded {
  return { ok: false, reason }
}

function isRoomName (value: unknown): value is string {
  return typeof value === 'string' && value.length > 0 && value.length <= MAX_ROOM_NAME_LENGTH
}

function isRoomList (value: unknown): value is string[] {
  return Array.isArray(value) && value.every(isRoomName)
}

function isStringArray (value: unknown): value is string[] {
  return Array.isArray(value) && value.every((item) => typeof item === 'string')
}

function isCount (value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0
}

function isOffset (value: unknown): value is number {
  return isCount(value) && value > 0
}

function isEpoch (value: unknown): value is string {
  return typeof value === 'string' && value.length > 0 && value.length <= MAX_EPOCH_LENGTH
}
