import type { HistoryPolicy, RoomPolicy } from '../types/index'
import { MAX_TIMEOUT } from './constants'
import type { Fail } from './options'

/** The most messages one room may keep. */
export const MAX_HISTORY_SIZE = 100_000

/**
 * The `roomPolicies` option, compiled: exact names in a map, prefixes
 * (`'chat:*'`) longest first, so that the first prefix that matches is the
 * longest match. An exact name beats any prefix.
 */
export class Policies {
  private readonly exact = new Map<string, HistoryPolicy>()
  private readonly prefixes: Array<{ prefix: string, history: HistoryPolicy }> = []

  /** The history policy of a room, or null: the room keeps nothing. */
  historyOf (room: string): HistoryPolicy | null {
    const exact = this.exact.get(room)
    if (exact !== undefined) return exact
    for (const { prefix, history } of this.prefixes) {
      if (room.startsWith(prefix)) return history
    }
    return null
  }

  /** Compiles the option; null when no room keeps anything (the plain path, at no cost). */
  static from (given: unknown, fail: Fail): Policies | null {
    if (given === undefined) return null
    if (typeof given !== 'object' || given === null || Array.isArray(given)) {
      return fail('roomPolicies', "an object of room names or prefixes ('chat:*') to policies", given)
    }
    const policies = new Policies()
    for (const [key, value] of Object.entries(given)) {
      const field = `roomPolicies[${JSON.stringify(key)}]`
      // '*' alone is the empty prefix: every room.
      if (key.length === 0 || (key.indexOf('*') !== -1 && key.indexOf('*') !== key.length - 1)) {
        fail('roomPolicies', "keys that are room names, or prefixes with one '*' at the end", key)
      }
      const history = historyPolicy(value, field, fail)
      if (key.endsWith('*')) {
        policies.prefixes.push({ prefix: key.slice(0, -1), history })
      } else {
        policies.exact.set(key, history)
      }
    }
    if (policies.exact.size === 0 && policies.prefixes.length === 0) return null
    policies.prefixes.sort((a, b) => b.prefix.length - a.prefix.length)
    return policies
  }
}

function historyPolicy (value: unknown, field: string, fail: Fail): HistoryPolicy {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return fail(field, '{ history: { size, ttl } }', value)
  for (const key of Object.keys(value)) {
    if (key !== 'history') fail(`${field}.${key}`, 'a known policy (history)', (value as Record<string, unknown>)[key])
  }
  const history = (value as RoomPolicy).history
  if (typeof history !== 'object' || history === null) return fail(`${field}.history`, '{ size, ttl }', history)
  const { size, ttl } = history
  if (!Number.isInteger(size) || size < 1 || size > MAX_HISTORY_SIZE) {
    fail(`${field}.history.size`, `an integer from 1 to ${MAX_HISTORY_SIZE} (messages)`, size)
  }
  if (!Number.isInteger(ttl) || ttl < 1 || ttl > MAX_TIMEOUT) {
    fail(`${field}.history.ttl`, `an integer from 1 to ${MAX_TIMEOUT} (milliseconds)`, ttl)
  }
  return Object.freeze({ size, ttl })
}
