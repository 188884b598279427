import t from 'tap'
import { type Decoded, type ReceivedMessage, type WireMessage, decode, encode, historyFrameStart, ownEcho, presenceFrameHead } from '../lib/adapters/redis/wire'

// The wire format of the Redis adapter, on Buffers: no Redis here.

const UID = Buffer.alloc(16, 0xab)
const UID_HEX = UID.toString('hex')

/** A frame written out by hand from the layout in lib/adapters/redis/wire.ts: a test of it. */
function frame (kind: number, header: string, body: Buffer = Buffer.alloc(0), { version = 1, uid = UID, length }: { version?: number, uid?: Buffer, length?: number } = {}): Buffer {
  const json = Buffer.from(header)
  const head = Buffer.alloc(22)
  head[0] = version
  head[1] = kind
  uid.copy(head, 2)
  head.writeUInt32BE(length ?? json.length, 18)
  return Buffer.concat([head, json, body])
}

function decoded (payload: Buffer): ReceivedMessage {
  const result = decode(payload)
  if (!result.ok) throw new Error(`expected a message, got: ${result.reason}`)
  return result.message
}

function reason (result: Decoded): string | null {
  return result.ok ? null : result.reason
}

t.test('a broadcast is the header, then the message bytes as they are', async (t) => {
  const data = Buffer.from([0, 1, 2, 255])
  const bytes = encode(UID, { kind: 'broadcast', binary: true, rooms: ['r1', 'r2'], exceptIds: new Set(['a', 'b']), sentAt: null, carrier: null, data })
  t.same(bytes, frame(1, '{"b":1,"r":["r1","r2"],"x":["a","b"]}', data), 'the documented layout, byte for byte')
  t.same(decoded(bytes), { kind: 'broadcast', binary: true, rooms: ['r1', 'r2'], exceptIds: new Set(['a', 'b']), sentAt: null, carrier: null, data })
  t.equal((decoded(bytes) as { data: Buffer }).data.buffer, bytes.buffer, 'the body is a view into the payload, not a copy')

  const text = encode(UID, { kind: 'broadcast', binary: false, rooms: null, exceptIds: null, sentAt: null, carrier: null, data: Buffer.from('"hi"') })
  t.same(text, frame(1, '{"b":0,"r":null}', Buffer.from('"hi"')), 'no x when nobody is skipped')
  t.same(decoded(text), { kind: 'broadcast', binary: false, rooms: null, exceptIds: null, sentAt: null, carrier: null, data: Buffer.from('"hi"') })

  const empty = encode(UID, { kind: 'broadcast', binary: false, rooms: ['r'], exceptIds: new Set(), sentAt: null, carrier: null, data: Buffer.alloc(0) })
  t.same(empty, frame(1, '{"b":0,"r":["r"]}'), 'an empty exceptIds is left out too')
  t.same(decoded(empty), { kind: 'broadcast', binary: false, rooms: ['r'], exceptIds: null, sentAt: null, carrier: null, data: Buffer.alloc(0) })
  t.same(decoded(frame(1, '{"b":1,"r":[],"x":[]}')), { kind: 'broadcast', binary: true, rooms: [], exceptIds: new Set(), sentAt: null, carrier: null, data: Buffer.alloc(0) }, 'empty lists are well-formed')
})

t.test('a broadcast says when it was published, and carries its trace carrier; frames without them still decode', async (t) => {
  const carrier = { traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01', tracestate: 'vendor=x' }
  const bytes = encode(UID, { kind: 'broadcast', binary: false, rooms: ['r'], exceptIds: new Set(['a']), sentAt: 1700000000123, carrier, data: Buffer.from('"hi"') })
  t.same(bytes, frame(1, `{"b":0,"r":["r"],"x":["a"],"s":1700000000123,"t":${JSON.stringify(carrier)}}`, Buffer.from('"hi"')), 'the documented layout, byte for byte')
  const message = decoded(bytes) as { sentAt: number, carrier: Record<string, string> }
  t.same(message, { kind: 'broadcast', binary: false, rooms: ['r'], exceptIds: new Set(['a']), sentAt: 1700000000123, carrier, data: Buffer.from('"hi"') })
  t.equal(Object.getPrototypeOf(message.carrier), null, 'the carrier is copied into an object without a prototype')

  const noTrace = encode(UID, { kind: 'broadcast', binary: true, rooms: null, exceptIds: null, sentAt: 5, carrier: null, data: Buffer.alloc(0) })
  t.same(noTrace, frame(1, '{"b":1,"r":null,"s":5}'), 'no t without a carrier')
  t.same(decoded(frame(1, '{"b":0,"r":null,"t":{}}')), { kind: 'broadcast', binary: false, rooms: null, exceptIds: null, sentAt: null, carrier: {}, data: Buffer.alloc(0) }, 'an empty carrier is well-formed')
  const named = (decoded(frame(1, '{"b":0,"r":null,"t":{"__proto__":"x"}}')) as { carrier: Record<string, string> }).carrier
  t.same(Object.entries(named), [['__proto__', 'x']], 'a key named __proto__ is a plain key')
  t.equal(({} as Record<string, unknown>).x, undefined, 'and no prototype was touched')
})

t.test('queries and answers round-trip, with the uid of their publisher', async (t) => {
  const cases: Array<[WireMessage, string]> = [
    [{ kind: 'query', id: 1, query: 'rooms' }, '{"id":1,"q":"rooms"}'],
    [{ kind: 'query', id: 2, query: 'connections' }, '{"id":2,"q":"connections"}'],
    [{ kind: 'query', id: 3, query: 'size', room: 'lobby' }, '{"id":3,"q":"size","room":"lobby"}'],
    [{ kind: 'answer', id: 1, value: ['r1', 'x'.repeat(256)] }, `{"id":1,"v":["r1","${'x'.repeat(256)}"]}`],
    [{ kind: 'answer', id: 2, value: [] }, '{"id":2,"v":[]}'],
    [{ kind: 'answer', id: 3, value: 0 }, '{"id":3,"v":0}']
  ]
  for (const [message, header] of cases) {
    const bytes = encode(UID, message)
    t.same(bytes, frame(message.kind === 'query' ? 2 : 3, header), header)
    t.same(decoded(bytes), { ...message, origin: UID_HEX }, header)
  }
})

t.test('ownEcho tells an instance its own frames, before any decoding; never a history frame', async (t) => {
  const own = encode(UID, { kind: 'query', id: 1, query: 'rooms' })
  t.equal(ownEcho(own, UID), true)
  t.equal(ownEcho(own, Buffer.alloc(16, 0xcd)), false, 'another instance')
  t.equal(ownEcho(own.subarray(0, 21), UID), false, 'too short to be a frame')
  t.equal(ownEcho(Buffer.concat([Buffer.from([2]), own.subarray(1)]), UID), false, 'another format version')
  t.equal(ownEcho(frame(1, '{not json'), UID), true, 'the header is not read')
  const history = encode(UID, { kind: 'history', room: 'r', offset: 1, epoch: 'e', binary: false, exceptIds: null, data: Buffer.from('"x"') })
  t.equal(ownEcho(history, UID), false, 'its own history message is delivered when it comes back')
  t.equal(ownEcho(frame(4, '{not json'), UID), false)
  const presence = encode(UID, { kind: 'presence', room: 'r', seq: 1, joined: [], left: ['k'] })
  t.equal(ownEcho(presence, UID), false, 'nor a presence frame: every instance applies it, its writer too')
  t.equal(ownEcho(frame(5, '{not json'), UID), false)
})

t.test('a presence frame: the room, its seq, the members joined or changed and the keys gone; no body', async (t) => {
  const joined = [
    { key: 'ann', meta: { name: 'Ann', tags: ['a', { b: null }], n: 1.5 }, connections: 2 },
    { key: 'k "q" \\ \n ü 🎉', meta: null, connections: 1 },
    { key: '', meta: 'text', connections: 9007199254740991 }
  ]
  const message = { kind: 'presence', room: 'chat:{1} ünï "x"', seq: 42, joined, left: ['bob', 'cy'] } as const
  const bytes = encode(UID, message)
  const header = '{"r":"chat:{1} ünï \\"x\\"","s":42,"u":[["ann",2,{"name":"Ann","tags":["a",{"b":null}],"n":1.5}],' +
    '["k \\"q\\" \\\\ \\n ü 🎉",1,null],["",9007199254740991,"text"]],"l":["bob","cy"]}'
  t.same(bytes, frame(5, header), 'the documented layout, byte for byte (the length counts bytes)')
  t.same(decoded(bytes), message)
  t.same(presenceFrameHead(UID), frame(5, '').subarray(0, 18), 'version, kind 5 and the uid: the script adds the header length and the header')

  const empty = { kind: 'presence', room: 'r', seq: 9007199254740991, joined: [], left: [] } as const
  t.same(encode(UID, empty), frame(5, '{"r":"r","s":9007199254740991,"u":[],"l":[]}'))
  t.same(decoded(encode(UID, empty)), empty, 'a change of nothing is well-formed')
  t.same(decoded(frame(5, '{"l":[],"u":[["k",1,{"deep":[1,2,{"x":"y"}]}]],"s":1,"r":"r","extra":true}')),
    { kind: 'presence', room: 'r', seq: 1, joined: [{ key: 'k', meta: { deep: [1, 2, { x: 'y' }] }, connections: 1 }], left: [] }, 'any order of the fields; others are ignored')
})

t.test('a history frame: the room, its position, who is skipped, and the message bytes as they are', async (t) => {
  // Arbitrary bytes: a newline, invalid UTF-8, NUL.
  const data = Buffer.from([0x0a, 0xff, 0xfe, 0x00, 0xc3, 0x28, 0x0a])
  const message = { kind: 'history', room: 'chat:{1}', offset: 42, epoch: 'AbC-_x12', binary: true, exceptIds: new Set(['a', 'b']), data } as const
  const bytes = encode(UID, message)
  t.same(bytes, frame(4, '{"b":1,"r":["chat:{1}"],"x":["a","b"],"o":42,"e":"AbC-_x12"}', data), 'the documented layout, byte for byte')
  t.same(decoded(bytes), message)
  t.equal((decoded(bytes) as { data: Buffer }).data.buffer, bytes.buffer, 'the body is a view into the payload, not a copy')

  const room = 'ünïcødé 🎉 "quoted" \\ {x}'
  const plain = encode(UID, { kind: 'history', room, offset: 9007199254740991, epoch: 'e'.repeat(64), binary: false, exceptIds: new Set(), data: Buffer.from('{"json":true}') })
  t.same(plain, frame(4, `{"b":0,"r":[${JSON.stringify(room)}],"o":9007199254740991,"e":"${'e'.repeat(64)}"}`, Buffer.from('{"json":true}')), 'no x when nobody is skipped; the header length counts bytes')
  t.same(decoded(plain), { kind: 'history', room, offset: 9007199254740991, epoch: 'e'.repeat(64), binary: false, exceptIds: null, data: Buffer.from('{"json":true}') })
  t.same(decoded(frame(4, '{"b":0,"r":["r"],"x":[],"o":1,"e":"E"}')), { kind: 'history', room: 'r', offset: 1, epoch: 'E', binary: false, exceptIds: new Set(), data: Buffer.alloc(0) }, 'an empty x is well-formed')
})

t.test('historyFrameStart is what the store\'s script completes: the fixed part and the header without its end', async (t) => {
  const { head, headerStart } = historyFrameStart(UID, { room: 'r', binary: true, exceptIds: new Set(['id']) })
  t.same(head, frame(4, '').subarray(0, 18), 'version, kind 4 and the uid: the script adds the header length')
  t.equal(headerStart, '{"b":1,"r":["r"],"x":["id"]')
  t.equal(historyFrameStart(UID, { room: 'r', binary: false, exceptIds: null }).headerStart, '{"b":0,"r":["r"]')
  t.equal(historyFrameStart(UID, { room: 'r', binary: false, exceptIds: new Set() }).headerStart, '{"b":0,"r":["r"]')
  // What the script does, in Node: the same bytes as encode().
  const suffix = ',"o":7,"e":"ep"}'
  const header = Buffer.from(headerStart + suffix)
  const length = Buffer.alloc(4)
  length.writeUInt32BE(header.length)
  const body = Buffer.from([1, 2, 3])
  t.same(Buffer.concat([head, length, header, body]), encode(UID, { kind: 'history', room: 'r', offset: 7, epoch: 'ep', binary: true, exceptIds: new Set(['id']), data: body }))
})

t.test('every malformed frame is rejected with its reason', async (t) => {
  const long = 'x'.repeat(257)
  const cases: Array<[string, Buffer, string]> = [
    ['empty', Buffer.alloc(0), 'unknown format'],
    ['shorter than the fixed part', Buffer.from('hello'), 'unknown format'],
    ['one byte short of the fixed part', frame(1, '').subarray(0, 21), 'unknown format'],
    ['another version', frame(1, '{"b":0,"r":null}', Buffer.alloc(0), { version: 2 }), 'unknown format'],
    ['version 0', Buffer.alloc(30), 'unknown format'],
    ['a header longer than the payload', frame(1, '{"b":0,"r":null}', Buffer.alloc(0), { length: 17 }), 'truncated'],
    ['a header length of 2^32 - 1', frame(1, '', Buffer.alloc(0), { length: 0xffffffff }), 'truncated'],
    ['an empty header', frame(1, ''), 'header is not JSON'],
    ['a header that is not JSON', frame(1, '{not json'), 'header is not JSON'],
    ['a header cut short', frame(1, '{"b":0,"r":null}', Buffer.from('}'), { length: 15 }), 'header is not JSON'],
    ['null', frame(1, 'null'), 'header is not an object'],
    ['a number', frame(1, '7'), 'header is not an object'],
    ['a string', frame(2, '"rooms"'), 'header is not an object'],
    ['an array', frame(1, '[0,null]'), 'bad broadcast header'],
    ['binary flag 2', frame(1, '{"b":2,"r":null}'), 'bad broadcast header'],
    ['binary flag true', frame(1, '{"b":true,"r":null}'), 'bad broadcast header'],
    ['no binary flag', frame(1, '{"r":null}'), 'bad broadcast header'],
    ['no rooms', frame(1, '{"b":0}'), 'bad broadcast header'],
    ['rooms as a string', frame(1, '{"b":0,"r":"r"}'), 'bad broadcast header'],
    ['an empty room name', frame(1, '{"b":0,"r":[""]}'), 'bad broadcast header'],
    ['a room name over the limit', frame(1, `{"b":0,"r":["${long}"]}`), 'bad broadcast header'],
    ['a room that is not a string', frame(1, '{"b":0,"r":["r",1]}'), 'bad broadcast header'],
    ['except ids that are not strings', frame(1, '{"b":0,"r":["r"],"x":[1]}'), 'bad broadcast header'],
    ['except ids as a string', frame(1, '{"b":0,"r":null,"x":"a"}'), 'bad broadcast header'],
    ['except ids null', frame(1, '{"b":0,"r":null,"x":null}'), 'bad broadcast header'],
    ['a publish time that is a string', frame(1, '{"b":0,"r":null,"s":"1"}'), 'bad broadcast header'],
    ['a negative publish time', frame(1, '{"b":0,"r":null,"s":-1}'), 'bad broadcast header'],
    ['a fractional publish time', frame(1, '{"b":0,"r":null,"s":1.5}'), 'bad broadcast header'],
    ['a carrier that is a string', frame(1, '{"b":0,"r":null,"t":"x"}'), 'bad broadcast header'],
    ['a carrier that is null', frame(1, '{"b":0,"r":null,"t":null}'), 'bad broadcast header'],
    ['a carrier that is an array', frame(1, '{"b":0,"r":null,"t":["x"]}'), 'bad broadcast header'],
    ['a carrier with a number', frame(1, '{"b":0,"r":null,"t":{"traceparent":1}}'), 'bad broadcast header'],
    ['a carrier of 17 entries', frame(1, `{"b":0,"r":null,"t":${JSON.stringify(Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`k${i}`, 'v'])))}}`), 'bad broadcast header'],
    ['a carrier key over 64 characters', frame(1, `{"b":0,"r":null,"t":{"${'k'.repeat(65)}":"v"}}`), 'bad broadcast header'],
    ['a carrier value over 1024 characters', frame(1, `{"b":0,"r":null,"t":{"k":"${'v'.repeat(1025)}"}}`), 'bad broadcast header'],
    ['a query of another kind', frame(2, '{"id":1,"q":"everything"}'), 'bad query header'],
    ['a query without a kind', frame(2, '{"id":1}'), 'bad query header'],
    ['a query with a negative id', frame(2, '{"id":-1,"q":"rooms"}'), 'bad query header'],
    ['a query with a fractional id', frame(2, '{"id":1.5,"q":"rooms"}'), 'bad query header'],
    ['a query with an id beyond 2^53', frame(2, '{"id":9007199254740993,"q":"rooms"}'), 'bad query header'],
    ['a query with a string id', frame(2, '{"id":"1","q":"connections"}'), 'bad query header'],
    ['a size query without a room', frame(2, '{"id":1,"q":"size"}'), 'bad query header'],
    ['a size query with a number for room', frame(2, '{"id":1,"q":"size","room":42}'), 'bad query header'],
    ['a size query with an empty room', frame(2, '{"id":1,"q":"size","room":""}'), 'bad query header'],
    ['a size query with a room over the limit', frame(2, `{"id":1,"q":"size","room":"${long}"}`), 'bad query header'],
    ['an answer without a value', frame(3, '{"id":1}'), 'bad answer'],
    ['a negative count', frame(3, '{"id":1,"v":-1}'), 'bad answer'],
    ['a fractional count', frame(3, '{"id":1,"v":0.5}'), 'bad answer'],
    ['a count as a string', frame(3, '{"id":1,"v":"3"}'), 'bad answer'],
    ['null as the value', frame(3, '{"id":1,"v":null}'), 'bad answer'],
    ['an empty room name in the answer', frame(3, '{"id":1,"v":[""]}'), 'bad answer'],
    ['a room over the limit in the answer', frame(3, `{"id":1,"v":["${long}"]}`), 'bad answer'],
    ['a list of numbers', frame(3, '{"id":1,"v":[1]}'), 'bad answer'],
    ['an answer without an id', frame(3, '{"v":1}'), 'bad answer'],
    ['an answer with a negative id', frame(3, '{"id":-1,"v":1}'), 'bad answer'],
    ['a history frame without a binary flag', frame(4, '{"r":["r"],"o":1,"e":"E"}'), 'bad history header'],
    ['a history frame with binary flag 2', frame(4, '{"b":2,"r":["r"],"o":1,"e":"E"}'), 'bad history header'],
    ['a history frame without a room', frame(4, '{"b":0,"o":1,"e":"E"}'), 'bad history header'],
    ['a history frame for every connection', frame(4, '{"b":0,"r":null,"o":1,"e":"E"}'), 'bad history header'],
    ['a history frame with its room as a string', frame(4, '{"b":0,"r":"r","o":1,"e":"E"}'), 'bad history header'],
    ['a history frame of no room', frame(4, '{"b":0,"r":[],"o":1,"e":"E"}'), 'bad history header'],
    ['a history frame of two rooms', frame(4, '{"b":0,"r":["r","s"],"o":1,"e":"E"}'), 'bad history header'],
    ['a history frame with an empty room name', frame(4, '{"b":0,"r":[""],"o":1,"e":"E"}'), 'bad history header'],
    ['a history frame with a room over the limit', frame(4, `{"b":0,"r":["${long}"],"o":1,"e":"E"}`), 'bad history header'],
    ['a history frame with except ids that are not strings', frame(4, '{"b":0,"r":["r"],"x":[1],"o":1,"e":"E"}'), 'bad history header'],
    ['a history frame with except ids null', frame(4, '{"b":0,"r":["r"],"x":null,"o":1,"e":"E"}'), 'bad history header'],
    ['a history frame without an offset', frame(4, '{"b":0,"r":["r"],"e":"E"}'), 'bad history header'],
    ['a history frame at offset 0', frame(4, '{"b":0,"r":["r"],"o":0,"e":"E"}'), 'bad history header'],
    ['a history frame at a negative offset', frame(4, '{"b":0,"r":["r"],"o":-1,"e":"E"}'), 'bad history header'],
    ['a history frame at a fractional offset', frame(4, '{"b":0,"r":["r"],"o":1.5,"e":"E"}'), 'bad history header'],
    ['a history frame at an offset beyond 2^53', frame(4, '{"b":0,"r":["r"],"o":9007199254740993,"e":"E"}'), 'bad history header'],
    ['a history frame with the offset as a string', frame(4, '{"b":0,"r":["r"],"o":"1","e":"E"}'), 'bad history header'],
    ['a history frame without an epoch', frame(4, '{"b":0,"r":["r"],"o":1}'), 'bad history header'],
    ['a history frame with an empty epoch', frame(4, '{"b":0,"r":["r"],"o":1,"e":""}'), 'bad history header'],
    ['a history frame with an epoch over 64 characters', frame(4, `{"b":0,"r":["r"],"o":1,"e":"${'e'.repeat(65)}"}`), 'bad history header'],
    ['a history frame with the epoch as a number', frame(4, '{"b":0,"r":["r"],"o":1,"e":1}'), 'bad history header'],
    ['a history frame whose header is an array', frame(4, '[0,["r"],1,"E"]'), 'bad history header'],
    ['a history frame whose header is not JSON', frame(4, '{"b":0,"r":["r"],"o":1,"e":"E"'), 'header is not JSON'],
    ['a history frame whose header is truncated', frame(4, '{"b":0,"r":["r"],"o":1,"e":"E"}', Buffer.alloc(0), { length: 40 }), 'truncated'],
    ['a presence frame without a room', frame(5, '{"s":1,"u":[],"l":[]}'), 'bad presence header'],
    ['a presence frame with an empty room name', frame(5, '{"r":"","s":1,"u":[],"l":[]}'), 'bad presence header'],
    ['a presence frame with a room over the limit', frame(5, `{"r":"${long}","s":1,"u":[],"l":[]}`), 'bad presence header'],
    ['a presence frame with its room as a list', frame(5, '{"r":["r"],"s":1,"u":[],"l":[]}'), 'bad presence header'],
    ['a presence frame without a seq', frame(5, '{"r":"r","u":[],"l":[]}'), 'bad presence header'],
    ['a presence frame at seq 0', frame(5, '{"r":"r","s":0,"u":[],"l":[]}'), 'bad presence header'],
    ['a presence frame at a negative seq', frame(5, '{"r":"r","s":-1,"u":[],"l":[]}'), 'bad presence header'],
    ['a presence frame at a fractional seq', frame(5, '{"r":"r","s":1.5,"u":[],"l":[]}'), 'bad presence header'],
    ['a presence frame at a seq beyond 2^53', frame(5, '{"r":"r","s":9007199254740993,"u":[],"l":[]}'), 'bad presence header'],
    ['a presence frame with the seq as a string', frame(5, '{"r":"r","s":"1","u":[],"l":[]}'), 'bad presence header'],
    ['a presence frame without joined members', frame(5, '{"r":"r","s":1,"l":[]}'), 'bad presence header'],
    ['a presence frame with joined members as an object', frame(5, '{"r":"r","s":1,"u":{"k":1},"l":[]}'), 'bad presence header'],
    ['a presence frame with a member as an object', frame(5, '{"r":"r","s":1,"u":[{"key":"k","connections":1,"meta":null}],"l":[]}'), 'bad presence header'],
    ['a presence frame with a member of two fields', frame(5, '{"r":"r","s":1,"u":[["k",1]],"l":[]}'), 'bad presence header'],
    ['a presence frame with a member of four fields', frame(5, '{"r":"r","s":1,"u":[["k",1,null,0]],"l":[]}'), 'bad presence header'],
    ['a presence frame with a number as a key', frame(5, '{"r":"r","s":1,"u":[[1,1,null]],"l":[]}'), 'bad presence header'],
    ['a presence frame with a member of no connections', frame(5, '{"r":"r","s":1,"u":[["k",0,null]],"l":[]}'), 'bad presence header'],
    ['a presence frame with negative connections', frame(5, '{"r":"r","s":1,"u":[["k",-1,null]],"l":[]}'), 'bad presence header'],
    ['a presence frame with fractional connections', frame(5, '{"r":"r","s":1,"u":[["k",1.5,null]],"l":[]}'), 'bad presence header'],
    ['a presence frame with connections as a string', frame(5, '{"r":"r","s":1,"u":[["k","1",null]],"l":[]}'), 'bad presence header'],
    ['a presence frame with a good member and a bad one', frame(5, '{"r":"r","s":1,"u":[["k",1,null],["j"]],"l":[]}'), 'bad presence header'],
    ['a presence frame without left keys', frame(5, '{"r":"r","s":1,"u":[]}'), 'bad presence header'],
    ['a presence frame with left keys as a string', frame(5, '{"r":"r","s":1,"u":[],"l":"k"}'), 'bad presence header'],
    ['a presence frame with a left key that is not a string', frame(5, '{"r":"r","s":1,"u":[],"l":["k",1]}'), 'bad presence header'],
    ['a presence frame with left keys null', frame(5, '{"r":"r","s":1,"u":[],"l":null}'), 'bad presence header'],
    ['a presence frame whose header is an array', frame(5, '["r",1,[],[]]'), 'bad presence header'],
    ['a presence frame whose header is not JSON', frame(5, '{"r":"r","s":1,"u":[],"l":[]'), 'header is not JSON'],
    ['a presence frame whose header is truncated', frame(5, '{"r":"r","s":1,"u":[],"l":[]}', Buffer.alloc(0), { length: 40 }), 'truncated'],
    ['a presence frame with a body', frame(5, '{"r":"r","s":1,"u":[],"l":[]}', Buffer.from('x')), 'presence frame with a body'],
    ['kind 0', frame(0, '{}'), 'unknown kind 0'],
    ['kind 9', frame(9, '{"b":0,"r":null}'), 'unknown kind 9']
  ]
  for (const [name, payload, expected] of cases) t.equal(reason(decode(payload)), expected, name)
})

t.test('decode never throws, whatever the bytes', async (t) => {
  // Frames of every kind, cut at every length and with every byte of the fixed part changed.
  const frames = [
    encode(UID, { kind: 'broadcast', binary: true, rooms: ['a'], exceptIds: new Set(['x']), sentAt: 1, carrier: { traceparent: 'tp' }, data: Buffer.from('body') }),
    encode(UID, { kind: 'query', id: 7, query: 'size', room: 'a' }),
    encode(UID, { kind: 'answer', id: 7, value: ['a'] }),
    encode(UID, { kind: 'history', room: 'a', offset: 3, epoch: 'E', binary: true, exceptIds: new Set(['x']), data: Buffer.from('body') }),
    encode(UID, { kind: 'presence', room: 'a', seq: 3, joined: [{ key: 'k', meta: { n: 1 }, connections: 2 }], left: ['j'] })
  ]
  let decodedCount = 0
  for (const whole of frames) {
    for (let end = 0; end <= whole.length; end++) {
      if (decode(whole.subarray(0, end)).ok) decodedCount++
    }
    for (let i = 0; i < 22; i++) {
      const changed = Buffer.from(whole)
      changed[i] ^= 0xff
      decode(changed)
    }
  }
  t.ok(decodedCount >= frames.length, 'the whole frames decode (a broadcast cut in its body is a shorter broadcast)')
})
