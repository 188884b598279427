// Where a room's keys and channels live on a Redis Cluster.
//
// Every key of a room (history, presence) and, on a cluster, its channel carry
// the room's hash tag, so that they hash to one slot: the scripts that number,
// store and publish a room's messages touch one shard only. The tag is
// `{<room>}`; Redis hashes what is between the first `{` and the first `}`
// after it, so a room named `a}b` has the tag `a` for all of its keys alike.
// Only a room whose name starts with `}` would have an empty tag (Redis then
// hashes each whole key, and the keys of one room would land on different
// slots): such rooms get `{\0}<room>\0` instead, whose tag is `\0`. No other
// room's keys can take those names: theirs end with `}`, these with `\0`.

/** The part of a room's keys and cluster channel that names the room: `{<room>}`, or `{\0}<room>\0` for a name starting with `}`. */
export function roomTag (room: string): string {
  return room.charCodeAt(0) === 0x7d ? `{\0}${room}\0` : `{${room}}`
}

/** CRC16-CCITT (XMODEM) of each byte value's high half, as Redis Cluster computes it: a table of 256. */
const TABLE = new Uint16Array(256)
for (let byte = 0; byte < 256; byte++) {
  let crc = byte << 8
  for (let bit = 0; bit < 8; bit++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff
  TABLE[byte] = crc
}

function crc16 (bytes: Uint8Array, start: number, end: number): number {
  let crc = 0
  for (let i = start; i < end; i++) crc = ((crc << 8) & 0xffff) ^ TABLE[((crc >> 8) ^ bytes[i]) & 0xff]
  return crc
}

/** The cluster slot (0 to 16383) of a key or a shard channel, hash tags honoured. */
export function keySlot (name: string | Buffer): number {
  const bytes = typeof name === 'string' ? Buffer.from(name) : name
  const open = bytes.indexOf(0x7b)
  if (open !== -1) {
    const close = bytes.indexOf(0x7d, open + 1)
    if (close > open + 1) return crc16(bytes, open + 1, close) & 0x3fff
  }
  return crc16(bytes, 0, bytes.length) & 0x3fff
}

/** How the stores' scripts publish a room's changes: PUBLISH on one Redis, SPUBLISH on a cluster, on the room's channel. */
export interface Publishing {
  readonly command: 'PUBLISH' | 'SPUBLISH'
  channelOf (room: string): string
  /** a call failed: on a cluster the slots may have moved (a failover), and are read again */
  failed (): void
}
