import { describe, errors } from '../errors'

/** Changes of a room are gathered this long, then written (and told to its watchers) at once, in ms. */
export const PRESENCE_WINDOW_MS = 100
/** A room whose write failed (or whose read failed) is tried again this long after, in ms. */
export const PRESENCE_RETRY_MS = 1000
/** The longest presence key, and the largest meta (its JSON, in bytes). */
export const MAX_PRESENCE_KEY_LENGTH = 256
export const MAX_PRESENCE_META_BYTES = 4096

/** Who a connection is in presence rooms: computed once per connection. */
export interface PresenceIdentity {
  readonly key: string
  /** its meta as JSON text */
  readonly meta: string
}

/** A connection as presence sees it. */
export interface PresenceHolder {
  /** Its identity; null when its route's `presence.key` or `meta` failed (it is then being closed, and not listed). */
  presenceIdentity (): PresenceIdentity | null
  /** Writes a presence frame to it (it asked for presence in a room). */
  presenceFrame (frame: Buffer): void
}

/**
 * The identity of what a route's `presence.key` and `presence.meta` gave: a
 * key of 1 to MAX_PRESENCE_KEY_LENGTH characters (a finite number becomes
 * one), a meta whose JSON fits MAX_PRESENCE_META_BYTES. Throws
 * FST_NEXUS_INVALID_PRESENCE otherwise.
 */
export function identityOf (key: unknown, meta: unknown): PresenceIdentity {
  if (typeof key === 'number' && Number.isFinite(key)) key = String(key)
  if (typeof key !== 'string' || key.length === 0 || key.length > MAX_PRESENCE_KEY_LENGTH) {
    throw new errors.FST_NEXUS_INVALID_PRESENCE(`a key that is not a string of 1 to ${MAX_PRESENCE_KEY_LENGTH} characters (${describe(key)})`)
  }
  // undefined (and a function) have no JSON form: the member's meta is null.
  const json = JSON.stringify(meta) ?? 'null'
  if (Buffer.byteLength(json) > MAX_PRESENCE_META_BYTES) {
    throw new errors.FST_NEXUS_INVALID_PRESENCE(`a meta whose JSON is over ${MAX_PRESENCE_META_BYTES} bytes`)
  }
  return { key, meta: json }
}
