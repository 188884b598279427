import { MAX_ROOM_NAME_LENGTH } from '../../constants'

// ------------------------------------------------------------------ wire format
//
// Every message an instance publishes is one binary frame:
//
//   offset 0    u8    format version (FORMAT_VERSION)
//   offset 1    u8    kind: broadcast, query or answer
//   offset 2    16 B  uid of the publishing instance
//   offset 18   u32   length H of the JSON header (big-endian)
//   offset 22   H B   the JSON header
//   offset 22+H       the body: for a broadcast, the message exactly as the
//                     publisher's own sockets got it (encoded once, never again)
//
// Headers: broadcast `{ b: 0|1 (binary), r: rooms | null (every connection),
// x?: connection ids to skip }`; query `{ id, q: 'rooms'|'size'|'connections',
// room? }`; answer `{ id, v }`.
//
// This module is pure: bytes in, typed messages out, and back. Whatever comes
// from Redis is checked here, once; the adapter never looks at a header.

export const FORMAT_VERSION = 1
export const UID_BYTES = 16

const KIND_BROADCAST = 1
const KIND_QUERY = 2
const KIND_ANSWER = 3
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

export type WireMessage = BroadcastMessage | QueryMessage | AnswerMessage

/** The uid (hex) of the instance that published it: queries are answered, and answers counted, per instance. */
interface Origin { readonly origin: string }

/** A message as decoded: queries and answers say who sent them. */
export type ReceivedMessage = BroadcastMessage | (QueryMessage & Origin) | (AnswerMessage & Origin)

export type Decoded =
  | { readonly ok: true, readonly message: ReceivedMessage }
  | { readonly ok: false, readonly reason: string }

/** The frame of a message published by the instance `uid` (UID_BYTES bytes). */
export function encode (uid: Buffer, message: WireMessage): Buffer {
  let kind: number
  let header: object
  let body: Buffer | undefined
  switch (message.kind) {
    case 'broadcast': {
      kind = KIND_BROADCAST
      const { exceptIds } = message
      const b = message.binary ? 1 : 0
      // `x` is left out when nobody is skipped: the usual broadcast has the shortest header.
      header = exceptIds !== null && exceptIds.size > 0 ? { b, r: message.rooms, x: [...exceptIds] } : { b, r: message.rooms }
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
 * Whether a frame was published by the instance `uid`. Checked before
 * decoding: every broadcast comes back to its publisher, which has delivered
 * it locally already and drops it unread.
 */
export function publishedBy (payload: Buffer, uid: Buffer): boolean {
  return payload.length >= HEADER_START && payload[0] === FORMAT_VERSION && uid.compare(payload, 2, UID_END) === 0
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
    default: return invalid(`unknown kind ${payload[1]}`)
  }
}

function decodeBroadcast ({ b, r, x }: Record<string, unknown>, data: Buffer): Decoded {
  if ((b !== 0 && b !== 1) || (r !== null && !isRoomList(r)) || (x !== undefined && !isStringArray(x))) {
    return invalid('bad broadcast header')
  }
  // The body is a view into the reply ioredis read, memory ioredis never
  // reuses: the sockets may hold on to it until their (possibly corked) writes go out.
  return valid({ kind: 'broadcast', binary: b === 1, rooms: r, exceptIds: x === undefined ? null : new Set(x), data })
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
