import sjson from 'secure-json-parse'
import type { EncodedMessage, MessageParser, ParseMode } from '../types/index'
import { ErrorFrameCode } from './constants'
import { describe, errors } from './errors'

/**
 * Encodes outgoing data once, whatever number of sockets it goes to: strings
 * as text, binary as binary, anything else as JSON. The result is a Buffer so
 * that ws does not convert a string again for every socket.
 */
export function encode (data: unknown): EncodedMessage {
  if (typeof data === 'string') return { data: Buffer.from(data), binary: false }
  if (Buffer.isBuffer(data)) return { data, binary: true }
  if (ArrayBuffer.isView(data)) return { data: Buffer.from(data.buffer, data.byteOffset, data.byteLength), binary: true }
  if (data instanceof ArrayBuffer) return { data: Buffer.from(data), binary: true }

  let json: string | undefined
  try {
    json = JSON.stringify(data)
  } catch (err) {
    throw new errors.FST_NEXUS_INVALID_DATA((err as Error).message)
  }
  if (json === undefined) {
    throw new errors.FST_NEXUS_INVALID_DATA(`${describe(data)} has no JSON form`)
  }
  return { data: Buffer.from(json), binary: false }
}

/** An inbound frame the route cannot accept; its `frame` is what the client is sent. */
export class InvalidMessage extends Error {
  readonly frame: Buffer
  constructor (code: string, message: string, extra?: Record<string, unknown>) {
    super(message)
    this.frame = errorFrame(code, message, extra)
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
