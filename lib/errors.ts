import createError from '@fastify/error'
import type { errors as ErrorsType } from '../types/index'
import { MAX_ROOM_NAME_LENGTH } from './constants'

/**
 * Every coded error of the plugin. The key is the code; `%s` arguments say
 * what was received. test/errors.test.ts keeps this table, the codes and
 * types/index.d.ts in agreement.
 */
export const errors: typeof ErrorsType = {
  FST_NEXUS_INVALID_OPTION: createError<'FST_NEXUS_INVALID_OPTION', [string, string, string]>(
    'FST_NEXUS_INVALID_OPTION',
    'Invalid option "%s": expected %s, received %s',
    500,
    TypeError
  ),
  FST_NEXUS_INVALID_ROUTE: createError<'FST_NEXUS_INVALID_ROUTE', [string, string, string, string]>(
    'FST_NEXUS_INVALID_ROUTE',
    'Invalid ws route "%s": "%s" must be %s, received %s',
    500,
    TypeError
  ),
  FST_NEXUS_INVALID_ROOM: createError<'FST_NEXUS_INVALID_ROOM', [string]>(
    'FST_NEXUS_INVALID_ROOM',
    `Invalid room name %s: a room name is a non-empty string of at most ${MAX_ROOM_NAME_LENGTH} characters`,
    500,
    TypeError
  ),
  FST_NEXUS_UNKNOWN_SOCKET: createError<'FST_NEXUS_UNKNOWN_SOCKET', [string]>(
    'FST_NEXUS_UNKNOWN_SOCKET',
    'Expected the socket of an app.ws() connection, received %s',
    500,
    TypeError
  ),
  FST_NEXUS_ROOMS_DISABLED: createError<'FST_NEXUS_ROOMS_DISABLED', [string]>(
    'FST_NEXUS_ROOMS_DISABLED',
    'Rooms are disabled on the ws route "%s" (rooms: false)'
  ),
  FST_NEXUS_INVALID_DATA: createError<'FST_NEXUS_INVALID_DATA', [string]>(
    'FST_NEXUS_INVALID_DATA',
    'Cannot encode the data to send: %s',
    500,
    TypeError
  ),
  FST_NEXUS_UNAUTHORIZED: createError<'FST_NEXUS_UNAUTHORIZED', 401, [{ cause: unknown }?]>(
    'FST_NEXUS_UNAUTHORIZED',
    'Unauthorized',
    401
  ),
  FST_NEXUS_ORIGIN_NOT_ALLOWED: createError<'FST_NEXUS_ORIGIN_NOT_ALLOWED', 403, [string]>(
    'FST_NEXUS_ORIGIN_NOT_ALLOWED',
    'Origin %s is not allowed to open a WebSocket',
    403
  ),
  FST_NEXUS_AUTH_TIMEOUT: createError<'FST_NEXUS_AUTH_TIMEOUT', 503, [string]>(
    'FST_NEXUS_AUTH_TIMEOUT',
    'Authentication did not complete within %s ms',
    503
  ),
  FST_NEXUS_NOT_WEBSOCKET: createError<'FST_NEXUS_NOT_WEBSOCKET', 404, [string]>(
    'FST_NEXUS_NOT_WEBSOCKET',
    'The route %s does not accept WebSocket connections',
    404
  ),
  FST_NEXUS_SHUTTING_DOWN: createError<'FST_NEXUS_SHUTTING_DOWN', 503, []>(
    'FST_NEXUS_SHUTTING_DOWN',
    'The server is shutting down',
    503
  ),
  FST_NEXUS_HISTORY_UNAVAILABLE: createError<'FST_NEXUS_HISTORY_UNAVAILABLE', 503, [string]>(
    'FST_NEXUS_HISTORY_UNAVAILABLE',
    'The message could not be stored in the room\'s history: %s',
    503
  ),
  FST_NEXUS_NO_HISTORY: createError<'FST_NEXUS_NO_HISTORY', [string]>(
    'FST_NEXUS_NO_HISTORY',
    'The room %s has no history: give it a roomPolicies entry with history'
  ),
  FST_NEXUS_NO_PRESENCE: createError<'FST_NEXUS_NO_PRESENCE', [string]>(
    'FST_NEXUS_NO_PRESENCE',
    'The room %s does not track presence: give it a roomPolicies entry with presence: true'
  ),
  FST_NEXUS_PRESENCE_UNAVAILABLE: createError<'FST_NEXUS_PRESENCE_UNAVAILABLE', 503, [string]>(
    'FST_NEXUS_PRESENCE_UNAVAILABLE',
    'The presence store could not be read: %s',
    503
  ),
  FST_NEXUS_INVALID_PRESENCE: createError<'FST_NEXUS_INVALID_PRESENCE', [string]>(
    'FST_NEXUS_INVALID_PRESENCE',
    'The route\'s presence option gave %s'
  )
}

/** A short, bounded description of a received value for error messages. */
export function describe (value: unknown): string {
  if (typeof value === 'string') {
    const shown = value.length > 60 ? `${value.slice(0, 60)}…` : value
    return `the string ${JSON.stringify(shown)}${value.length > 60 ? ` (${value.length} characters)` : ''}`
  }
  if (value === null || value === undefined) return String(value)
  if (Array.isArray(value)) return 'an array'
  if (typeof value === 'object') return `an object (${kindOf(value)})`
  if (typeof value === 'function') return 'a function'
  return `${typeof value} ${String(value)}`
}

/**
 * The class of an object, read from its prototype, never from its own
 * properties: a room name may come straight from a client's JSON, whose own
 * `constructor` key is the client's to choose.
 */
function kindOf (value: object): string {
  const prototype: unknown = Object.getPrototypeOf(value)
  if (prototype === null) return 'null prototype'
  const name: unknown = (prototype as { constructor?: { name?: unknown } }).constructor?.name
  return typeof name === 'string' && name !== '' ? name.slice(0, 40) : 'object'
}
