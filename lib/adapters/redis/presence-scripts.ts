import { script } from './scripts'

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

/** The presence scripts; KEYS and ARGV as `RedisPresence` passes them. */
export const scripts = { update: script(UPDATE), read: script(READ), count: script(COUNT), beat: script(BEAT) }
