import sjson from 'secure-json-parse'
import type { EncodedMessage, MessageParser, ParseMode } from '../types/index'
import { ErrorFrameCode, MAX_REPORTED_ERRORS } from './constants'
import { describe, errors } from './errors'
import { isThenable } from './promise'
import { messageHead } from './protocol'

/**
 * A message encoded once for every socket it goes to. Its WebSocket frame is
 * built on first use by the write path (lib/outbound.ts) into a slot the
 * message has from the start, so every message keeps one shape.
 */
export class Encoded implements EncodedMessage {
  readonly data: Buffer
  readonly binary: boolean
  /** the pre-built frame, as the one-element list ws's sendFrame takes; null until a socket needs it */
  frame: Buffer[] | null = null
  /**
   * Its `nexus.v1` form (a header in front of the same bytes), made when the
   * first protocol socket needs it and shared by all of them: one per room
   * the broadcast names (`null`: no room). The first is kept in two fields,
   * further ones (a broadcast to several rooms) in a map.
   */
  private variant: Encoded | null = null
  private variantRoom: string | null = null
  private variants: Map<string | null, Encoded> | null = null
  /** In a history room: the room, and the message's position there (its `nexus.v1` form carries it). */
  placedIn: string | null = null
  offset = 0
  epoch = ''

  constructor (data: Buffer, binary: boolean) {
    this.data = data
    this.binary = binary
  }

  /** This message as `nexus.v1` sockets get it, as a message of `room` (or of no room). */
  protocolFor (room: string | null): Encoded {
    const variant = this.variant
    if (variant === null) {
      this.variantRoom = room
      this.variant = this.wrap(room)
      return this.variant
    }
    if (this.variantRoom === room) return variant
    const more = this.variants ??= new Map()
    let other = more.get(room)
    if (other === undefined) {
      other = this.wrap(room)
      more.set(room, other)
    }
    return other
  }

  /** Gives the message its position in a history room; before any socket got its `nexus.v1` form. */
  place (room: string, offset: number, epoch: string): void {
    this.placedIn = room
    this.offset = offset
    this.epoch = epoch
  }

  private wrap (room: string | null): Encoded {
    const head = room !== null && room === this.placedIn ? messageHead(room, this.offset, this.epoch) : messageHead(room)
    return new Encoded(Buffer.concat([head, this.data], head.length + this.data.length), this.binary)
  }
}

/** A message received already encoded (from another instance) as the write path takes it. */
export function encodedFrom (data: Buffer, binary: boolean): Encoded {
  return new Encoded(data, binary)
}

/** A message an adapter hands back, as the write path takes it (a custom adapter may build plain objects). */
export function asEncoded (message: EncodedMessage): Encoded {
  return message instanceof Encoded ? message : new Encoded(message.data, message.binary)
}

/**
 * Encodes outgoing data once, whatever number of sockets it goes to: strings
 * as text, binary as binary, anything else as JSON. The result is a Buffer so
 * that ws does not convert a string again for every socket.
 */
export function encode (data: unknown): Encoded {
  if (typeof data === 'string') return new Encoded(Buffer.from(data), false)
  if (Buffer.isBuffer(data)) return new Encoded(data, true)
  if (ArrayBuffer.isView(data)) return new Encoded(Buffer.from(data.buffer, data.byteOffset, data.byteLength), true)
  if (data instanceof ArrayBuffer) return new Encoded(Buffer.from(data), true)

  let json: string | undefined
  try {
    json = JSON.stringify(data)
  } catch (err) {
    throw new errors.FST_NEXUS_INVALID_DATA((err as Error).message)
  }
  if (json === undefined) {
    throw new errors.FST_NEXUS_INVALID_DATA(`${describe(data)} has no JSON form`)
  }
  return new Encoded(Buffer.from(json), false)
}

/**
 * An inbound frame the route cannot accept; its `frame` is what a raw client
 * is sent, its code, message and `errors` what a `nexus.v1` client is.
 */
export class InvalidMessage extends Error {
  readonly code: string
  readonly frame: Buffer
  readonly errors: unknown
  constructor (code: string, message: string, errors?: unknown[]) {
    super(message)
    this.code = code
    this.errors = errors
    this.frame = errorFrame(code, message, errors === undefined ? undefined : { errors })
  }
}

/** The one shape of every error frame the plugin sends: `{"type":"error","code","message"}`. */
export function errorFrame (code: string, message: string, extra?: Record<string, unknown>): Buffer {
  return Buffer.from(JSON.stringify({ type: 'error', code, message, ...extra }))
}

/** Fixed error frames, built once: parse errors never echo what the client sent. */
const INVALID_JSON = new InvalidMessage(ErrorFrameCode.INVALID_JSON, 'Message is not valid JSON')
const POISONED_JSON = new InvalidMessage(ErrorFrameCode.INVALID_JSON, 'Message contains a forbidden __proto__ or constructor.prototype key')
const UNPARSABLE = new InvalidMessage(ErrorFrameCode.INVALID_MESSAGE, 'Message could not be parsed')
/** Sent when the route's message validator itself threw. */
export const VALIDATOR_FAILED = new InvalidMessage(ErrorFrameCode.INVALID_MESSAGE, 'Message could not be validated')

export type ProtoAction = 'error' | 'remove' | 'ignore'

export interface JsonSafety {
  protoAction: ProtoAction
  constructorAction: ProtoAction
}

/** Builds the parser of a route from its `parse` option. */
export function createParser (mode: ParseMode | MessageParser, safety: JsonSafety): (data: Buffer, isBinary: boolean) => unknown {
  if (typeof mode === 'function') {
    return function parseCustom (data, isBinary) {
      try {
        return mode(data, isBinary)
      } catch {
        throw UNPARSABLE
      }
    }
  }
  if (mode === 'binary') return (data) => data
  if (mode === 'text') return (data, isBinary) => isBinary ? data : data.toString()

  const options = { protoAction: safety.protoAction, constructorAction: safety.constructorAction }
  return function parseJson (data, isBinary) {
    if (isBinary) return data
    try {
      return sjson.parse(data.toString(), null, options)
    } catch (err) {
      // secure-json-parse throws a SyntaxError both for bad JSON and for a
      // poisoned key; only the latter carries this message.
      throw (err as Error).message.startsWith('Object contains forbidden') ? POISONED_JSON : INVALID_JSON
    }
  }
}

/**
 * A route's compiled `schema.message`: gives the message to use or the
 * InvalidMessage to send (a promise of either for an async validator).
 */
export type MessageValidator = (message: unknown) => unknown

/** What a Fastify validator compiler returns: ajv-style (boolean + `.errors`) or `{ value } | { error }`. */
type CompiledValidator = ((data: unknown) => unknown) & { errors?: unknown }

/**
 * Wraps a validator made by the instance's validator compiler. The shapes
 * Fastify accepts are honoured: `true`/`false` with `.errors` (ajv),
 * `{ value }`/`{ error }` (TypeBox, Zod and other compilers), where `value`
 * replaces the message, and a promise of these (async schemas), whose
 * rejection carries the errors.
 */
export function createMessageValidator (validate: CompiledValidator): MessageValidator {
  const interpret = (message: unknown, result: unknown): unknown => {
    if (result === false) return schemaError(validate.errors)
    if (typeof result === 'object' && result !== null) {
      const { error, value } = result as { error?: unknown, value?: unknown }
      if (error !== undefined && error !== null) return schemaError(error)
      if ('value' in result) return value
    }
    return message
  }
  return function validateMessage (message) {
    const result = validate(message)
    if (isThenable(result)) {
      return result.then(
        (settled) => interpret(message, settled),
        (error: unknown) => schemaError(errorsOf(error))
      )
    }
    return interpret(message, result)
  }
}

/** The errors an async validator rejected with: ajv's ValidationError carries them as `errors`. */
function errorsOf (rejection: unknown): unknown {
  return rejection instanceof Error && 'errors' in rejection ? rejection.errors : rejection
}

function schemaError (errors: unknown): InvalidMessage {
  const list = Array.isArray(errors) ? errors : [{ message: errors instanceof Error ? errors.message : String(errors) }]
  return new InvalidMessage(ErrorFrameCode.INVALID_MESSAGE, 'Message does not match the schema', list.slice(0, MAX_REPORTED_ERRORS))
}
