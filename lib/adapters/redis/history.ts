import type { AdapterHistory, EncodedMessage, HistoryPolicy, HistoryRead, Position, RedisClient, StoredMessage } from '../../../types/index'
import { encodedFrom } from '../../codec'
import { newEpoch } from '../../history/log'
import { type Publishing, roomTag } from './keys'
import { type Arg, checkReady, runScript, script, type Script } from './scripts'
import { historyFrameStart } from './wire'

// ------------------------------------------------------------------ the store
//
// Per history room, two keys with the room as hash tag (one Cluster slot):
//
//   `${prefix}:h:{${room}}`  hash: `e` the epoch, `o` the top offset
//   `${prefix}:s:{${room}}`  stream: entry `<offset>-0` per message, fields
//                            `d` the message bytes, `b` "1" binary / "0",
//                            `t` when it was stored (ms, Redis TIME)
//
// Every call is one Lua script on the room's two keys, so that numbering,
// storing and publishing (append), or the position and the messages (read),
// are one atomic step. A missing hash is a room with no history, or one whose
// history was lost: it gets a new epoch (the candidate the caller made) and
// starts at offset 0, and a stream left over from the lost epoch is deleted
// (its ids would be ahead of the new offsets).

/** How long the epoch and top offset of a quiet room outlive its messages, in ms. */
export const META_TTL = 86_400_000

/** Gives a room's hash (its epoch and top), making it for a room with no history: `local epoch, top = meta(candidate)`. */
const META = `
local function meta (candidate)
  local found = redis.call('HMGET', KEYS[1], 'e', 'o')
  if found[1] then return found[1], tonumber(found[2]) end
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'e', candidate, 'o', 0)
  redis.call('PEXPIRE', KEYS[1], ${META_TTL})
  return candidate, 0
end
`

/**
 * KEYS hash, stream; ARGV candidate epoch, size, ttl, channel, frame head,
 * header start, body, binary ("1"/"0"), PUBLISH or SPUBLISH. Numbers, stores
 * and publishes one message; returns { offset, epoch }.
 */
const APPEND = META + `
local epoch = meta(ARGV[1])
local offset = redis.call('HINCRBY', KEYS[1], 'o', 1)
local now = redis.call('TIME')
local time = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], string.format('%d-0', offset), 'd', ARGV[7], 'b', ARGV[8], 't', string.format('%d', time))
local ttl = tonumber(ARGV[3])
redis.call('PEXPIRE', KEYS[2], ttl)
redis.call('PEXPIRE', KEYS[1], math.max(ttl, ${META_TTL}))
local header = ARGV[6] .. ',"o":' .. string.format('%d', offset) .. ',"e":"' .. epoch .. '"}'
local n = #header
local length = string.char(math.floor(n / 16777216) % 256, math.floor(n / 65536) % 256, math.floor(n / 256) % 256, n % 256)
redis.call(ARGV[9], ARGV[4], ARGV[5] .. length .. header .. ARGV[7])
return { offset, epoch }
`

/**
 * KEYS hash, stream; ARGV the epoch that lost messages, candidate epoch.
 * Starts the candidate when the room is still at that epoch (or has none).
 * Returns { top, epoch }.
 */
const RENEW = `
local epoch = redis.call('HGET', KEYS[1], 'e')
if epoch and epoch ~= ARGV[1] then return { tonumber(redis.call('HGET', KEYS[1], 'o')), epoch } end
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[1], 'e', ARGV[2], 'o', 0)
redis.call('PEXPIRE', KEYS[1], ${META_TTL})
return { 0, ARGV[2] }
`

/** KEYS hash, stream; ARGV candidate epoch. Returns { top, epoch }. */
const POSITION = META + `
local epoch, top = meta(ARGV[1])
return { top, epoch }
`

/** KEYS hash, stream; ARGV candidate epoch, first id, count. Returns { top, epoch, entries }. */
const READ = META + `
local epoch, top = meta(ARGV[1])
-- COUNT 0 gives a null reply (false here), not an empty list.
return { top, epoch, redis.call('XRANGE', KEYS[2], ARGV[2], '+', 'COUNT', ARGV[3]) or {} }
`

const scripts = { append: script(APPEND), position: script(POSITION), read: script(READ), renew: script(RENEW) }

/** An entry of XRANGE as Buffers: its id, and its fields as the append script wrote them (d, b, t). */
type Entry = [id: Buffer, fields: [Buffer, Buffer, Buffer, Buffer, Buffer, Buffer]]

/**
 * The history rooms of a Redis adapter, in Redis Streams, on the adapter's
 * publishing connection. Every call resolves or rejects; none throws. While
 * the connection is not ready, they reject at once (nothing is queued: the
 * plugin retries, and `publish` tells the app).
 */
export class RedisHistory implements AdapterHistory {
  private readonly client: RedisClient
  private readonly prefix: string
  private readonly publishing: Publishing
  private readonly uid: Buffer
  private closed = false
  /** on a cluster, a room's store is on one shard, and shards fail independently */
  readonly sharded: boolean

  constructor (client: RedisClient, prefix: string, publishing: Publishing, uid: Buffer) {
    this.client = client
    this.prefix = prefix
    this.publishing = publishing
    this.sharded = publishing.command === 'SPUBLISH'
    this.uid = uid
  }

  /** The adapter closed: every later call rejects. */
  close (): void {
    this.closed = true
  }

  async append (room: string, message: EncodedMessage, policy: HistoryPolicy, exceptIds: ReadonlySet<string> | null): Promise<Position> {
    const { head, headerStart } = historyFrameStart(this.uid, { room, binary: message.binary, exceptIds })
    const [offset, epoch] = await this.run(scripts.append, room, [
      newEpoch(), policy.size, policy.ttl, this.publishing.channelOf(room), head, headerStart, message.data, message.binary ? '1' : '0', this.publishing.command
    ]) as [number, Buffer]
    return { offset, epoch: epoch.toString() }
  }

  async position (room: string): Promise<Position> {
    const [offset, epoch] = await this.run(scripts.position, room, [newEpoch()]) as [number, Buffer]
    return { offset, epoch: epoch.toString() }
  }

  async renew (room: string, epoch: string, candidate: string): Promise<Position> {
    const [offset, current] = await this.run(scripts.renew, room, [epoch, candidate]) as [number, Buffer]
    return { offset, epoch: current.toString() }
  }

  async read (room: string, after: number, limit: number): Promise<HistoryRead> {
    const [offset, epoch, entries] = await this.run(scripts.read, room, [newEpoch(), `${after + 1}-0`, limit]) as [number, Buffer, Entry[]]
    const messages: StoredMessage[] = entries.map(([id, fields]) => ({
      // `<offset>-0`: the digits before the dash.
      offset: Number.parseInt(id.toString(), 10),
      message: encodedFrom(fields[1], fields[3][0] === 0x31),
      time: Number(fields[5].toString())
    }))
    return { position: { offset, epoch: epoch.toString() }, messages }
  }

  /** Runs a script on a room's keys. */
  private async run (which: Script, room: string, args: Arg[]): Promise<unknown> {
    checkReady(this.client, this.closed, 'history')
    const tag = roomTag(room)
    return await runScript(this.client, which, [`${this.prefix}:h:${tag}`, `${this.prefix}:s:${tag}`], args, () => this.publishing.failed())
  }
}
