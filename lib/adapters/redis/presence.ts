import type { AdapterHost, AdapterPresence, PresenceChange, PresenceCount, PresenceMember, PresenceSnapshot, RedisClient } from '../../../types/index'
import { type Publishing, roomTag } from './keys'
import { scripts } from './presence-scripts'
import { type Arg, checkReady, runScript, type Script } from './scripts'
import { presenceFrameHead } from './wire'

// The keys of the presence rooms and the scripts on them: presence-scripts.ts.

/** How long the lock of an instance removing a dead one's entries lasts, in ms (then another may try). */
const REAP_LOCK_TTL = 60_000
/** The most dead instances one heartbeat removes (the next ones go at the next beat). */
const REAP_BATCH = 16

/** How often an instance beats, and how long without a beat makes it dead, in ms. */
export interface PresenceTimings {
  readonly beatInterval: number
  readonly deadAfter: number
}

/** A crash is noticed within deadAfter + beatInterval: 20 s. */
export const DEFAULT_PRESENCE_TIMINGS: PresenceTimings = { beatInterval: 5000, deadAfter: 15_000 }

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
    checkReady(this.client, this.closed, 'presence')
  }

  private async call (command: string, ...args: Arg[]): Promise<unknown> {
    return await (this.client.callBuffer as NonNullable<RedisClient['callBuffer']>)(command, ...args)
  }

  /** Runs a script on these keys. */
  private async run (which: Script, keys: readonly string[], args: readonly Arg[]): Promise<unknown> {
    return await runScript(this.client, which, keys, args, () => this.publishing.failed())
  }
}
