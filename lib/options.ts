import type { Adapter, MetricsRegistry, NexusRealtimeOptions, OriginPredicate, RateLimitOptions, WebSocketServerOptions } from '../types/index'
import { MemoryAdapter } from './adapters/memory'
import { MAX_TIMEOUT } from './constants'
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
  /**
   * 4 MiB of received messages waiting for onMessage: four messages of the
   * default maxPayload. A fixed size, not a multiple of maxPayload, so that
   * raising maxPayload does not multiply what every connection may hold.
   */
  maxInboundBytes: 4 * 1024 * 1024,
  rateLimit: false as const,
  /** 10 s for `auth` to settle: longer is a stuck database call, not a slow one. */
  authTimeout: 10_000,
  /**
   * Room classes kept as metric labels. Ten, so that the series of the two
   * broadcast histograms (about twenty per class) stay well within a few hundred.
   */
  maxRoomClasses: 10
})

/** The per-connection settings that a route may override. */
export interface ConnectionLimits {
  /** ms between pings; 0 for no heartbeat */
  heartbeat: number
  maxBufferedBytes: number
  /** bytes of inbound messages queued behind onMessage beyond which the socket is paused */
  maxInboundBytes: number
  rateLimit: RateLimitOptions | null
}

export interface NormalizedOptions extends ConnectionLimits {
  adapter: Adapter
  websocket: WebSocketServerOptions & { maxPayload: number }
  shutdownTimeout: number
  allowedOrigins: ReadonlyArray<string | RegExp> | OriginPredicate | null
  /** `roomPolicies`, compiled; null when no room has one */
  policies: Policies | null
  /** ms an `auth` may take before the handshake is refused with 503 */
  authTimeout: number
  /** `listen: 'positional'`: the instance's listen also takes `listen(port, callback)` */
  positionalListen: boolean
  /** `metrics`, checked; null when off (then prom-client is never loaded) */
  metrics: MetricsSettings | null
}

/** The `metrics` option with its defaults filled in. */
export interface MetricsSettings {
  /** the registry given; null for prom-client's default registry */
  registry: MetricsRegistry | null
  /** prepended to every metric name */
  prefix: string
  /** the label a broadcast's room gets; capped by `maxRoomClasses` */
  roomClass: (room: string) => string
  /** distinct room classes kept as labels; further ones are counted as `other` */
  maxRoomClasses: number
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

export function normalizeMaxInboundBytes (value: unknown, fail: Fail): number {
  if (!isPositiveInteger(value)) return fail('maxInboundBytes', 'a positive integer (bytes)', value)
  return value
}

/** `authTimeout`: milliseconds, a positive integer setTimeout honours. */
export function normalizeAuthTimeout (value: unknown, fail: Fail): number {
  if (!isPositiveInteger(value) || value > MAX_TIMEOUT) return fail('authTimeout', `a positive integer of milliseconds up to ${MAX_TIMEOUT}`, value)
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

/** `listen`: left out, or `'positional'` to opt in to the document's `listen(port, callback)`. */
function normalizeListen (value: unknown): boolean {
  if (value === undefined) return false
  if (value !== 'positional') return failOption('listen', "'positional' (or left out)", value)
  return true
}

/**
 * The room class of a room when the app gives no `roomClass`: what comes
 * before the first `:` (`chat:42` → `chat`), the usual `kind:id` naming;
 * `other` for a name without one, so that no room name becomes a label.
 */
export function defaultRoomClass (room: string): string {
  const colon = room.indexOf(':')
  return colon > 0 ? room.slice(0, colon) : 'other'
}

/** The most room classes `maxRoomClasses` may keep: each one costs about twenty series. */
export const MAX_ROOM_CLASSES = 100
const METRICS_FIELDS = new Set(['registry', 'prefix', 'roomClass', 'maxRoomClasses'])
/** A prefix that leaves a valid Prometheus metric name in front of `nexus_…`. */
const METRIC_PREFIX = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/

/** `metrics`: `true`, `false` (or left out), or `{ registry?, prefix?, roomClass?, maxRoomClasses? }`. */
function normalizeMetrics (value: unknown): MetricsSettings | null {
  if (value === undefined || value === false) return null
  const given: Record<string, unknown> = value === true ? {} : value as Record<string, unknown>
  if (!isPlainObject(given)) return failOption('metrics', 'true, false or { registry, prefix, roomClass, maxRoomClasses }', value)
  for (const key of Object.keys(given)) {
    if (!METRICS_FIELDS.has(key)) return failOption(`metrics.${key}`, 'left out: metrics takes registry, prefix, roomClass and maxRoomClasses', given[key])
  }
  const { registry, prefix = '', roomClass = defaultRoomClass, maxRoomClasses = DEFAULTS.maxRoomClasses } = given
  if (registry !== undefined) {
    const methods = registry as Record<string, unknown> | null
    if (typeof methods !== 'object' || methods === null || !['registerMetric', 'getSingleMetric', 'removeSingleMetric', 'metrics'].every((name) => typeof methods[name] === 'function')) {
      return failOption('metrics.registry', 'a prom-client Registry', registry)
    }
  }
  if (typeof prefix !== 'string' || (prefix !== '' && !METRIC_PREFIX.test(prefix))) {
    return failOption('metrics.prefix', 'a string of letters, digits, _ and : that does not start with a digit', prefix)
  }
  if (typeof roomClass !== 'function') return failOption('metrics.roomClass', 'a function (room) => string', roomClass)
  if (!isNonNegativeInteger(maxRoomClasses) || maxRoomClasses > MAX_ROOM_CLASSES) {
    return failOption('metrics.maxRoomClasses', `an integer from 0 to ${MAX_ROOM_CLASSES}`, maxRoomClasses)
  }
  return {
    registry: (registry ?? null) as MetricsRegistry | null,
    prefix,
    roomClass: roomClass as (room: string) => string,
    maxRoomClasses
  }
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
    maxInboundBytes: normalizeMaxInboundBytes(orDefault(given.maxInboundBytes, DEFAULTS.maxInboundBytes), failOption),
    rateLimit: normalizeRateLimit(orDefault(given.rateLimit, DEFAULTS.rateLimit), failOption),
    allowedOrigins: normalizeAllowedOrigins(given.allowedOrigins, failOption),
    policies: Policies.from(given.roomPolicies, failOption),
    authTimeout: normalizeAuthTimeout(orDefault(given.authTimeout, DEFAULTS.authTimeout), failOption),
    positionalListen: normalizeListen(given.listen),
    metrics: normalizeMetrics(given.metrics)
  }
}
