import type { Adapter, NexusRealtimeOptions, WebSocketServerOptions } from '../types/index'
import { MemoryAdapter } from './adapters/memory'
import { describe, errors } from './errors'

/** The defaults; the user's values are spread over them, then checked one by one. */
export const DEFAULTS = Object.freeze({
  /** 1 MiB, not ws's 100 MiB: a realtime message that large is an attack or a bug. */
  maxPayload: 1024 * 1024,
  shutdownTimeout: 5000
})

export interface NormalizedOptions {
  adapter: Adapter
  websocket: WebSocketServerOptions & { maxPayload: number }
  shutdownTimeout: number
}

/** Every method the manager calls on an adapter. */
const ADAPTER_METHODS = [
  'init', 'createRoom', 'deleteRoom', 'hasRoom', 'join', 'leave', 'leaveAll',
  'roomSize', 'membersOf', 'roomsOf', 'rooms', 'broadcast', 'close'
] as const

function isPlainObject (value: unknown): boolean {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function isNonNegativeInteger (value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 0
}

export function normalizeOptions (given: NexusRealtimeOptions): NormalizedOptions {
  if (!isPlainObject(given)) {
    throw new errors.FST_NEXUS_INVALID_OPTION('options', 'an object', describe(given))
  }

  const adapter: Adapter = given.adapter === undefined ? new MemoryAdapter() : given.adapter
  if (typeof adapter !== 'object' || adapter === null) {
    throw new errors.FST_NEXUS_INVALID_OPTION('adapter', 'an adapter object', describe(adapter))
  }
  for (const method of ADAPTER_METHODS) {
    if (typeof (adapter as unknown as Record<string, unknown>)[method] !== 'function') {
      throw new errors.FST_NEXUS_INVALID_OPTION('adapter', `an adapter with a ${method}() method`, `an adapter without ${method}()`)
    }
  }

  const websocketGiven = given.websocket === undefined ? {} : given.websocket
  if (!isPlainObject(websocketGiven)) {
    throw new errors.FST_NEXUS_INVALID_OPTION('websocket', 'an object of ws server options', describe(websocketGiven))
  }
  const websocket = { maxPayload: DEFAULTS.maxPayload, ...websocketGiven }
  if (!isNonNegativeInteger(websocket.maxPayload)) {
    throw new errors.FST_NEXUS_INVALID_OPTION('websocket.maxPayload', 'a non-negative integer (bytes)', describe(websocket.maxPayload))
  }
  for (const key of ['noServer', 'server', 'port', 'host', 'path'] as const) {
    if (key in websocketGiven) {
      throw new errors.FST_NEXUS_INVALID_OPTION(`websocket.${key}`, 'to be left to the plugin (routes are declared with app.ws)', describe((websocketGiven as Record<string, unknown>)[key]))
    }
  }

  const shutdownTimeout = given.shutdownTimeout === undefined ? DEFAULTS.shutdownTimeout : given.shutdownTimeout
  if (!isNonNegativeInteger(shutdownTimeout)) {
    throw new errors.FST_NEXUS_INVALID_OPTION('shutdownTimeout', 'a non-negative integer (milliseconds)', describe(shutdownTimeout))
  }

  return { adapter, websocket, shutdownTimeout }
}
