import type { HistoryPolicy, PresencePolicy, RoomPolicy } from '../types/index'
import { MAX_TIMEOUT } from './constants'
import type { Fail } from './options'

/** The most messages one room may keep. */
export const MAX_HISTORY_SIZE = 100_000

/** The highest `presence.listLimit`, and its default. */
export const MAX_LIST_LIMIT = 100_000
export const DEFAULT_LIST_LIMIT = 1000

/** A room's policy, compiled: what it keeps (null: nothing of that kind). */
interface Compiled {
  readonly history: HistoryPolicy | null
  readonly presence: Required<PresencePolicy> | null
}

/**
 * The `roomPolicies` option, compiled: exact names in a map, prefixes
 * (`'chat:*'`) longest first, so that the first prefix that matches is the
 * longest match. An exact name beats any prefix.
 */
export class Policies {
  private readonly exact = new Map<string, Compiled>()
  private readonly prefixes: Array<{ prefix: string, policy: Compiled }> = []
  /** whether some room keeps a history, or tracks presence */
  history = false
  presence = false

  /** The history policy of a room, or null: the room keeps nothing. */
  historyOf (room: string): HistoryPolicy | null {
    return this.of(room)?.history ?? null
  }

  /** The presence policy of a room, or null: nobody is tracked in it. */
  presenceOf (room: string): Required<PresencePolicy> | null {
    return this.of(room)?.presence ?? null
  }

  /** The policy of the longest key that matches the room. */
  private of (room: string): Compiled | undefined {
    const exact = this.exact.get(room)
    if (exact !== undefined) return exact
    for (const { prefix, policy } of this.prefixes) {
      if (room.startsWith(prefix)) return policy
    }
    return undefined
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
      const policy = roomPolicy(value, field, fail)
      if (policy.history !== null) policies.history = true
      if (policy.presence !== null) policies.presence = true
      if (key.endsWith('*')) {
        policies.prefixes.push({ prefix: key.slice(0, -1), policy })
      } else {
        policies.exact.set(key, policy)
      }
    }
    if (!policies.history && !policies.presence) return null
    policies.prefixes.sort((a, b) => b.prefix.length - a.prefix.length)
    return policies
  }
}

function roomPolicy (value: unknown, field: string, fail: Fail): Compiled {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return fail(field, '{ history: { size, ttl }, presence: true }', value)
  for (const key of Object.keys(value)) {
    if (key !== 'history' && key !== 'presence') fail(`${field}.${key}`, 'a known policy (history, presence)', (value as Record<string, unknown>)[key])
  }
  const { history, presence } = value as RoomPolicy
  return Object.freeze({
    history: history === undefined ? null : historyPolicy(history, `${field}.history`, fail),
    presence: presence === undefined || presence === false ? null : presencePolicy(presence, `${field}.presence`, fail)
  })
}

function presencePolicy (value: unknown, field: string, fail: Fail): Required<PresencePolicy> {
  if (value === true) return DEFAULT_PRESENCE
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return fail(field, 'true, or { listLimit }', value)
  for (const key of Object.keys(value)) {
    if (key !== 'listLimit') fail(`${field}.${key}`, 'a known presence option (listLimit)', (value as Record<string, unknown>)[key])
  }
  const { listLimit = DEFAULT_LIST_LIMIT } = value as PresencePolicy
  if (!Number.isInteger(listLimit) || listLimit < 1 || listLimit > MAX_LIST_LIMIT) {
    fail(`${field}.listLimit`, `an integer from 1 to ${MAX_LIST_LIMIT} (members)`, listLimit)
  }
  return Object.freeze({ listLimit })
}

const DEFAULT_PRESENCE: Required<PresencePolicy> = Object.freeze({ listLimit: DEFAULT_LIST_LIMIT })

function historyPolicy (history: unknown, field: string, fail: Fail): HistoryPolicy {
  if (typeof history !== 'object' || history === null) return fail(field, '{ size, ttl }', history)
  const { size, ttl } = history as HistoryPolicy
  if (!Number.isInteger(size) || size < 1 || size > MAX_HISTORY_SIZE) {
    fail(`${field}.size`, `an integer from 1 to ${MAX_HISTORY_SIZE} (messages)`, size)
  }
  if (!Number.isInteger(ttl) || ttl < 1 || ttl > MAX_TIMEOUT) {
    fail(`${field}.ttl`, `an integer from 1 to ${MAX_TIMEOUT} (milliseconds)`, ttl)
  }
  return Object.freeze({ size, ttl })
}
