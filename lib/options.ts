import type { Adapter, NexusRealtimeOptions, OriginPredicate, RateLimitOptions, WebSocketServerOptions } from '../types/index'
import { MemoryAdapter } from './adapters/memory'
import { describe, errors } from './errors'
import { Policies } from './policies'

/** The defaults; the user's values are spread over them, then checked one by one. */
export const DEFAULTS = Object.freeze({
  /** 1 MiB, not ws's 100 MiB: a realtime message that large is an attack or a bug. */
  maxPayload: 1024 * 1024,
  shutdownTimeout: 5000,
  heartbeat: { interval: 30000 },
  /** 4 MiB of unsent bytes: far more than a healthy client ever lags behind. */
  maxBufferedBytes: 4 * 1024 * 1024,
  rateLimit: false as const
})

/** The per-connection settings that a route may override. */
export interface ConnectionLimits {
  /** ms between pings; 0 for no heartbeat */
  heartbeat: number
  maxBufferedBytes: number
  rateLimit: RateLimitOptions | null
}

export interface NormalizedOptions extends ConnectionLimits {
  adapter: Adapter
  websocket: WebSocketServerOptions & { maxPayload: number }
  shutdownTimeout: number
  allowedOrigins: ReadonlyArray<string | RegExp> | OriginPredicate | null
  /** `roomPolicies`, compiled; null when no room has one */
  policies: Policies | null
}

/** Reports an invalid field: (field, what was expected, the value received). */
export type Fail = (field: string, expected: string, received: unknown) => never

/**
 * Every method the plugin calls on an adapter: the required keys of the
 * `Adapter` type, which this literal must list in full (and only them) to compile.
 */
export const ADAPTER_METHODS = Object.keys({
  init: true, roomActive: true, roomIdle: true, publish: true, close: true
} satisfies Record<RequiredKeys<Adapter>, true>)

type RequiredKeys<T> = { [K in keyof T]-?: {} extends Pick<T, K> ? never : K }[keyof T]

function isPlainObject (value: unknown): boolean {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function isNonNegativeInteger (value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 0
}

function isPositiveInteger (value: unknown): value is number {
  return isNonNegativeInteger(value) && value > 0
}

/** `heartbeat`: `{ interval }` or `false`; gives the interval in ms, 0 for off. */
export function normalizeHeartbeat (value: unknown, fail: Fail): number {
  if (value === false) return 0
  if (!isPlainObject(value)) return fail('heartbeat', '{ interval } or false', value)
  const interval = (value as { interval?: unknown }).interval
  if (!isPositiveInteger(interval)) return fail('heartbeat.interval', 'a positive integer (milliseconds)', interval)
  return interval
}

/** `rateLimit`: `{ max, windowMs }` or `false`. */
export function normalizeRateLimit (value: unknown, fail: Fail): RateLimitOptions | null {
  if (value === false) return null
  if (!isPlainObject(value)) return fail('rateLimit', '{ max, windowMs } or false', value)
  const { max, windowMs } = value as { max?: unknown, windowMs?: unknown }
  if (!isPositiveInteger(max)) return fail('rateLimit.max', 'a positive integer (messages)', max)
  if (!isPositiveInteger(windowMs)) return fail('rateLimit.windowMs', 'a positive integer (milliseconds)', windowMs)
  return { max, windowMs }
}

export function normalizeMaxBufferedBytes (value: unknown, fail: Fail): number {
  if (!isPositiveInteger(value)) return fail('maxBufferedBytes', 'a positive integer (bytes)', value)
  return value
}

function normalizeAllowedOrigins (value: unknown, fail: Fail): NormalizedOptions['allowedOrigins'] {
  if (value === undefined) return null
  if (typeof value === 'function') return value as OriginPredicate
  if (!Array.isArray(value)) return fail('allowedOrigins', 'an array of origins or a function', value)
  for (const origin of value) {
    if (typeof origin !== 'string' && !(origin instanceof RegExp)) {
      return fail('allowedOrigins', 'origins given as strings or RegExps', origin)
    }
  }
  // Origins compare case-insensitively: the scheme and host of a URL are.
  return value.map((origin: string | RegExp) => typeof origin === 'string' ? origin.toLowerCase() : origin)
}

const failOption: Fail = (field, expected, received) => {
  throw new errors.FST_NEXUS_INVALID_OPTION(field, expected, describe(received))
}

/** A given value, or the default when the option is left out (`null` is not "left out"). */
function orDefault (value: unknown, fallback: unknown): unknown {
  return value === undefined ? fallback : value
}

export function normalizeOptions (given: NexusRealtimeOptions): NormalizedOptions {
  if (!isPlainObject(given)) return failOption('options', 'an object', given)

  const adapter: unknown = given.adapter === undefined ? new MemoryAdapter() : given.adapter
  if (typeof adapter !== 'object' || adapter === null) return failOption('adapter', 'an adapter object', adapter)
  for (const method of ADAPTER_METHODS) {
    if (typeof (adapter as Record<string, unknown>)[method] !== 'function') {
      throw new errors.FST_NEXUS_INVALID_OPTION('adapter', `an adapter with a ${method}() method`, `an adapter without ${method}()`)
    }
  }

  const websocketGiven = orDefault(given.websocket, {})
  if (!isPlainObject(websocketGiven)) return failOption('websocket', 'an object of ws server options', websocketGiven)
  const websocket = { maxPayload: DEFAULTS.maxPayload, ...(websocketGiven as WebSocketServerOptions) }
  if (!isNonNegativeInteger(websocket.maxPayload)) return failOption('websocket.maxPayload', 'a non-negative integer (bytes)', websocket.maxPayload)
  for (const key of ['noServer', 'server', 'port', 'host', 'path']) {
    if (key in (websocketGiven as object)) {
      return failOption(`websocket.${key}`, 'to be left to the plugin (routes are declared with app.ws)', (websocketGiven as Record<string, unknown>)[key])
    }
  }

  const shutdownTimeout = orDefault(given.shutdownTimeout, DEFAULTS.shutdownTimeout)
  if (!isNonNegativeInteger(shutdownTimeout)) return failOption('shutdownTimeout', 'a non-negative integer (milliseconds)', shutdownTimeout)

  return {
    adapter: adapter as Adapter,
    websocket: websocket as NormalizedOptions['websocket'],
    shutdownTimeout,
    heartbeat: normalizeHeartbeat(orDefault(given.heartbeat, DEFAULTS.heartbeat), failOption),
    maxBufferedBytes: normalizeMaxBufferedBytes(orDefault(given.maxBufferedBytes, DEFAULTS.maxBufferedBytes), failOption),
    rateLimit: normalizeRateLimit(orDefault(given.rateLimit, DEFAULTS.rateLimit), failOption),
    allowedOrigins: normalizeAllowedOrigins(given.allowedOrigins, failOption),
    policies: Policies.from(given.roomPolicies, failOption)
  }
}
