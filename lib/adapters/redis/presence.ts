import { createHash } from 'node:crypto'
import type { AdapterHost, AdapterPresence, PresenceChange, PresenceCount, PresenceMember, PresenceSnapshot, RedisClient } from '../../../types/index'
import { type Publishing, roomTag } from './keys'
import { presenceFrameHead } from './wire'

// ------------------------------------------------------------------ the store
//
// Per presence room R, keys with the room as hash tag (one Cluster slot), as
// the history keys have:
//
//   `${prefix}:pk:{R}`        hash: key -> its connections across instances (none at 0)
//   `${prefix}:pm:{R}`        hash: key -> its meta as JSON text (the last one written)
//   `${prefix}:pn:{R}`        hash: `c` the room's connections, `s` the seq of its last change
//   `${prefix}:pi:{R}`        set:  uids of the instances with entries in the room
//   `${prefix}:p:{R}:<uid>`   hash: key -> its connections on instance uid
//
// Per instance, for the removal of a dead one's entries:
//
//   `${prefix}:pr:{<uid>}`    set:  the rooms where instance uid has entries
//   `${prefix}:pl`            zset: uid -> its last heartbeat (ms, Redis TIME)
//   `${prefix}:reap:{<uid>}`  string: the lock of the instance removing uid's entries
//
// A room's changes are one script on its keys (UPDATE): the instance's part,
// the totals, the seq and the published frame change together, so that every
// instance hosting the room gets its changes in seq order. `pr` is another
// slot on a Cluster: Node adds the room to it before an update that gives the
// instance entries there, and takes it out after one that leaves it none.
//
// Every instance beats (BEAT) every few seconds. An instance whose last beat
// is older than `deadAfter` is dead: the first live instance to take its lock
// runs UPDATE with its uid and nothing in every room of its `pr` (which
// publishes its members' leaves), then forgets it.

/** How long the lock of an instance removing a dead one's entries lasts, in ms (then another may try). */
const REAP_LOCK_TTL = 60_000
/** The most dead instances one heartbeat removes (the next ones go at the next beat). */
const REAP_BATCH = 16

/** `quote(s)`: `s` as a JSON string, as JSON.stringify writes it. */
const QUOTE = String.raw`
local escapes = { ['"'] = '\\"', ['\\'] = '\\\\', ['\b'] = '\\b', ['\f'] = '\\f', ['\n'] = '\\n', ['\r'] = '\\r', ['\t'] = '\\t' }
local function escape (c)
  return escapes[c] or string.format('\\u%04x', string.byte(c))
end
local function quote (s)
  return '"' .. (string.gsub(s, '[%z\1-\31"\\]', escape)) .. '"'
end
`

/**
 * KEYS pk, pm, pn, pi, inst; ARGV uid, replace ("1"/"0"), channel, frame
 * head, room, PUBLISH or SPUBLISH, then key, connections, meta per change. Applies one instance's
 * changes; when the room's members changed, numbers the change and publishes
 * it. Returns { seq (0: nothing changed), the instance's keys left in the room }.
 */
const UPDATE = QUOTE + `
local order, seen = {}, {}
local connections = 0

local function touch (key)
  if seen[key] then return end
  seen[key] = true
  order[#order + 1] = key
end

local function apply (key, new, meta)
  local old = tonumber(redis.call('HGET', KEYS[5], key)) or 0
  local delta = new - old
  if delta ~= 0 then
    if new > 0 then redis.call('HSET', KEYS[5], key, new) else redis.call('HDEL', KEYS[5], key) end
    local total = redis.call('HINCRBY', KEYS[1], key, delta)
    local before = total - delta
    connections = connections + math.max(total, 0) - math.max(before, 0)
    if total <= 0 then
      redis.call('HDEL', KEYS[1], key)
      redis.call('HDEL', KEYS[2], key)
      if before > 0 then touch(key) end
      return
    end
    touch(key)
  end
  if new > 0 and redis.call('HGET', KEYS[2], key) ~= meta then
    redis.call('HSET', KEYS[2], key, meta)
    touch(key)
  end
end

local given = {}
for i = 7, #ARGV, 3 do
  given[ARGV[i]] = true
  apply(ARGV[i], tonumber(ARGV[i + 1]), ARGV[i + 2])
end
if ARGV[2] == '1' then
  for _, key in ipairs(redis.call('HKEYS', KEYS[5])) do
    if not given[key] then apply(key, 0, nil) end
  end
end

local here = redis.call('HLEN', KEYS[5])
if here > 0 then redis.call('SADD', KEYS[4], ARGV[1]) else redis.call('SREM', KEYS[4], ARGV[1]) end
if connections ~= 0 then redis.call('HINCRBY', KEYS[3], 'c', connections) end
if #order == 0 then return { 0, here } end

local seq = redis.call('HINCRBY', KEYS[3], 's', 1)
local joined, left = {}, {}
for _, key in ipairs(order) do
  local total = redis.call('HGET', KEYS[1], key)
  if total then
    joined[#joined + 1] = '[' .. quote(key) .. ',' .. total .. ',' .. (redis.call('HGET', KEYS[2], key) or 'null') .. ']'
  else
    left[#left + 1] = quote(key)
  end
end
local header = '{"r":' .. quote(ARGV[5]) .. ',"s":' .. string.format('%d', seq) .. ',"u":[' .. table.concat(joined, ',') .. '],"l":[' .. table.concat(left, ',') .. ']}'
local n = #header
local length = string.char(math.floor(n / 16777216) % 256, math.floor(n / 65536) % 256, math.floor(n / 256) % 256, n % 256)
redis.call(ARGV[6], ARGV[3], ARGV[4] .. length .. header)
return { seq, here }
`

/**
 * KEYS pk, pm, pn. Returns { seq, { key, connections, ... }, { key, meta, ... } }:
 * the two hashes whole, joined by key in Node (a lookup per member in the
 * script kept Redis busy about 20 ms for a room of 10,000).
 */
const READ = `
return { tonumber(redis.call('HGET', KEYS[3], 's')) or 0, redis.call('HGETALL', KEYS[1]), redis.call('HGETALL', KEYS[2]) }
`

/** KEYS pk, pn. Returns { members, connections }. */
const COUNT = `
return { redis.call('HLEN', KEYS[1]), tonumber(redis.call('HGET', KEYS[2], 'c')) or 0 }
`

/**
 * KEYS pl; ARGV uid, dead after (ms), batch. Records the instance's beat.
 * Returns { 1 when it was not recorded (first beat, removed while alive,
 * Redis restarted empty), now (ms), uids of dead instances, oldest first }.
 */
const BEAT = `
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local added = redis.call('ZADD', KEYS[1], string.format('%d', now), ARGV[1])
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. string.format('%d', now - tonumber(ARGV[2])), 'LIMIT', 0, ARGV[3])
return { added, now, dead }
`

interface Script {
  readonly source: string
  readonly sha: string
}

function script (source: string): Script {
  return { source, sha: createHash('sha1').update(source).digest('hex') }
}

const scripts = { update: script(UPDATE), read: script(READ), count: script(COUNT), beat: script(BEAT) }

/** How often an instance beats, and how long without a beat makes it dead, in ms. */
export interface PresenceTimings {
  readonly beatInterval: number
  readonly deadAfter: number
}

/** A crash is noticed within deadAfter + beatInterval: 20 s. */
export const DEFAULT_PRESENCE_TIMINGS: PresenceTimings = { beatInterval: 5000, deadAfter: 15_000 }

type Arg = string | number | Buffer

/**
 * The presence rooms of a Redis adapter, in Redis hashes, on the adapter's
 * publishing connection. Every call resolves or rejects; none throws. While
 * the connection is not ready, they reject at once (nothing is queued: the
 * plugin writes the room again once the store answers).
 */
export class RedisPresence implements AdapterPresence {
  private readonly client: RedisClient
  private readonly prefix: string
  private readonly publishing: Publishing
  /** on a cluster, a room's store is on one shard, and shards fail independently */
  readonly sharded: boolean
  /** this instance's uid, hex */
  private readonly uid: string
  private readonly head: Buffer
  private readonly timings: PresenceTimings
  /** updates under way per room: the room leaves `pr` only when no later one was sent */
  private readonly pending = new Map<string, number>()
  /** rooms known to be in this instance's `pr` set: no SADD for each of their writes */
  private readonly listed = new Set<string>()
  private host: AdapterHost | undefined
  private timer: NodeJS.Timeout | undefined
  /** a heartbeat (and what it removes) is under way */
  private beating = false
  /** start() or update() ran: stop() has something to remove */
  private used = false
  private closed = false
  private reapedCount = 0

  constructor (client: RedisClient, prefix: string, publishing: Publishing, uid: Buffer, timings: Partial<PresenceTimings> = {}) {
    this.client = client
    this.prefix = prefix
    this.publishing = publishing
    this.sharded = publishing.command === 'SPUBLISH'
    this.uid = uid.toString('hex')
    this.head = presenceFrameHead(uid)
    this.timings = { ...DEFAULT_PRESENCE_TIMINGS, ...timings }
  }

  /** Dead instances whose entries this one removed. */
  get reaped (): number {
    return this.reapedCount
  }

  /** The adapter's host: told when this instance's entries may be gone. Beats wait for it. */
  attach (host: AdapterHost): void {
    this.host = host
  }

  /** The adapter closed: beats stop, and every later call rejects. */
  close (): void {
    this.closed = true
    this.stopBeating()
  }

  start (): void {
    if (this.timer !== undefined || this.closed) return
    this.used = true
    this.timer = setInterval(() => { void this.beat() }, this.timings.beatInterval).unref()
    void this.beat()
  }

  async update (room: string, changes: readonly PresenceChange[], replace: boolean): Promise<void> {
    this.check()
    this.used = true
    const args: Arg[] = this.updateArgs(this.uid, replace, room)
    let gives = false
    for (const { key, connections, meta } of changes) {
      // A script that fails half-way keeps what it wrote: nothing it would choke on is sent.
      if (!Number.isSafeInteger(connections) || connections < 0) throw new TypeError(`presence connections must be a count, not ${connections}`)
      args.push(key, connections, meta)
      if (connections > 0) gives = true
    }
    const pr = this.roomsKey(this.uid)
    this.pending.set(room, (this.pending.get(room) ?? 0) + 1)
    try {
      // The room is in `pr` before the entries are written, so that a reaper finds them. On a
      // cluster the two are on different shards: sent one after the other (only at a room's first entry).
      if (gives && !this.listed.has(room)) await this.call('SADD', pr, room)
      const [, here] = await this.run(scripts.update, this.roomKeys(room, this.uid), args) as [number, number]
      if (gives) this.listed.add(room)
      // An update sent after this one may have given entries again: it is the one to tell.
      if (here === 0 && this.pending.get(room) === 1) {
        this.listed.delete(room)
        await this.call('SREM', pr, room)
      }
    } finally {
      const left = (this.pending.get(room) as number) - 1
      if (left === 0) this.pending.delete(room)
      else this.pending.set(room, left)
    }
  }

  async read (room: string): Promise<PresenceSnapshot> {
    this.check()
    const keys = this.roomKeys(room, this.uid).slice(0, 3)
    const [seq, totals, metas] = await this.run(scripts.read, keys, []) as [number, Buffer[], Buffer[]]
    const meta = new Map<string, Buffer>()
    for (let i = 0; i < metas.length; i += 2) meta.set(metas[i].toString(), metas[i + 1])
    const members: PresenceMember[] = []
    for (let i = 0; i < totals.length; i += 2) {
      const key = totals[i].toString()
      const text = meta.get(key)
      /* c8 ignore next -- the update script writes a key's meta with its total: only a hand-edited hash lacks one */
      members.push({ key, meta: text === undefined ? null : JSON.parse(text.toString()), connections: Number(totals[i + 1].toString()) })
    }
    return { seq, members }
  }

  async count (room: string): Promise<PresenceCount> {
    this.check()
    const [pk, , pn] = this.roomKeys(room, this.uid)
    const [members, connections] = await this.run(scripts.count, [pk, pn], []) as [number, number]
    return { members, connections }
  }

  /**
   * Beats stop; what is left of this instance's entries is removed (leaves
   * published) and it is forgotten. When Redis cannot be reached, or the
   * removal fails, the entries stay: the other instances remove them once
   * its beats are missed. Never rejects.
   */
  async stop (): Promise<void> {
    this.stopBeating()
    if (!this.used || this.closed || this.client.status !== 'ready') return
    try {
      await this.remove(this.uid)
      await this.call('ZREM', this.liveKey(), this.uid)
    } catch (err) {
      this.host?.log.warn({ err }, 'Presence entries of this instance not removed at close: the other instances remove them when its heartbeat is missed')
    }
  }

  // ---------------------------------------------------------------- liveness

  private stopBeating (): void {
    clearInterval(this.timer)
    this.timer = undefined
  }

  /** Records this instance's beat, then removes the dead instances it found. One at a time. */
  private async beat (): Promise<void> {
    const { host } = this
    // Before init() (no host yet), while the previous beat is under way, while Redis is away: skipped.
    if (host === undefined || this.beating || this.client.status !== 'ready') return
    this.beating = true
    try {
      const [added, now, dead] = await this.run(scripts.beat, [this.liveKey()], [this.uid, this.timings.deadAfter, REAP_BATCH]) as [number, number, Buffer[]]
      if (added === 1) this.lost(host)
      // Never this instance: its beat is `now`, after the limit.
      for (const uid of dead) await this.reap(host, uid.toString(), now - this.timings.deadAfter)
    } catch (err) {
      host.log.warn({ err }, 'Presence heartbeat failed')
    } finally {
      this.beating = false
    }
  }

  private lost (host: AdapterHost): void {
    // Redis may have lost the `pr` set too: every room is listed again by its next write.
    this.listed.clear()
    try {
      host.presenceLost()
    } catch (err) {
      host.log.error({ err }, 'Failed to write the presence entries of this instance again')
    }
  }

  /**
   * Removes the entries of the instance `uid`, taken for dead, when this
   * instance takes its lock and it is still there, not beating since `before`.
   * A failure keeps the lock: the removal is tried again once it expires.
   */
  private async reap (host: AdapterHost, uid: string, before: number): Promise<void> {
    const lock = `${this.prefix}:reap:{${uid}}`
    if (await this.call('SET', lock, this.uid, 'NX', 'PX', REAP_LOCK_TTL) === null) return
    // Another instance removed it (and let its lock go) since this beat saw it; or it beats again.
    const score = await this.call('ZSCORE', this.liveKey(), uid) as Buffer | null
    if (score === null || Number(score.toString()) >= before) {
      await this.call('DEL', lock)
      return
    }
    let rooms: number
    try {
      rooms = await this.remove(uid)
    } catch (err) {
      host.log.error({ err, uid }, 'Failed to remove the presence entries of a dead instance: tried again in a minute')
      return
    }
    await this.call('ZREM', this.liveKey(), uid)
    await this.call('DEL', lock)
    this.reapedCount++
    host.log.info({ uid, rooms }, 'Removed the presence entries of an instance that stopped heartbeating')
  }

  /** Removes every entry of the instance `uid` (publishing the leaves), then its list of rooms; resolves with how many rooms it had. */
  private async remove (uid: string): Promise<number> {
    const pr = this.roomsKey(uid)
    const rooms = await this.call('SMEMBERS', pr) as Buffer[]
    for (const name of rooms) {
      const room = name.toString()
      await this.run(scripts.update, this.roomKeys(room, uid), this.updateArgs(uid, true, room))
    }
    await this.call('DEL', pr)
    return rooms.length
  }

  // ---------------------------------------------------------------- Redis

  private roomKeys (room: string, uid: string): string[] {
    const tag = roomTag(room)
    const p = this.prefix
    return [`${p}:pk:${tag}`, `${p}:pm:${tag}`, `${p}:pn:${tag}`, `${p}:pi:${tag}`, `${p}:p:${tag}:${uid}`]
  }

  /** The update script's arguments before the changes. */
  private updateArgs (uid: string, replace: boolean, room: string): Arg[] {
    return [uid, replace ? '1' : '0', this.publishing.channelOf(room), this.head, room, this.publishing.command]
  }

  private roomsKey (uid: string): string {
    return `${this.prefix}:pr:{${uid}}`
  }

  private liveKey (): string {
    return `${this.prefix}:pl`
  }

  /** Throws (in an async call: rejects) when nothing can be sent now. */
  private check (): void {
    const { client } = this
    if (this.closed) throw new Error('the Redis adapter is closed')
    if (client.status !== 'ready') throw new Error(`Redis connection is ${client.status}`)
    if (typeof client.callBuffer !== 'function') throw new Error('the Redis client has no callBuffer(): presence rooms need an ioredis client')
  }

  private async call (command: string, ...args: Arg[]): Promise<unknown> {
    return await (this.client.callBuffer as NonNullable<RedisClient['callBuffer']>)(command, ...args)
  }

  /** Runs a script: EVALSHA, and EVAL when Redis does not have it (yet, or any more). */
  private async run (which: Script, keys: readonly string[], args: readonly Arg[]): Promise<unknown> {
    try {
      try {
        return await this.call('EVALSHA', which.sha, keys.length, ...keys, ...args)
      } catch (err) {
        // On a cluster client without retries (the adapter's own) the message is wrapped: "Too many Cluster redirections. Last error: …NOSCRIPT…".
        if (!(err as Error).message.includes('NOSCRIPT')) throw err
        return await this.call('EVAL', which.source, keys.length, ...keys, ...args)
      }
    } catch (err) {
      this.publishing.failed()
      throw err
    }
  }
}
