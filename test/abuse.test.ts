import t from 'tap'
import WebSocket from 'ws'
import type { FastifyInstance } from 'fastify'
import type { Socket } from 'node:net'
import { isUtf8 } from 'node:buffer'
import { randomBytes, randomInt } from 'node:crypto'
import { performance } from 'node:perf_hooks'
import type { WebSocketManager, WebSocketRouteConfig, WebSocketStats } from '../types/index'
import { build, Client, connect, listen } from './helpers/server'
import { delay, until } from './helpers/wait'
import { closePayload, encodeFrame, Opcode, RawClient } from './helpers/frames'

// Bounded per file, not by tap's 30 s default: the file's waits are bounded themselves, and a busy 2-core machine stretches them.
t.setTimeout(180_000)

// The abuse suite: hostile and broken clients against one shared server.
// After every case the same server must still answer a normal client, nothing
// may have leaked into Object.prototype, every socket of the case must be gone
// and the heap must be back near the baseline measured before the first case.

const KiB = 1024
const MiB = 1024 * KiB
/** how far above the baseline the heap may be after a case (gc'd) */
const HEAP_TOLERANCE = 6 * MiB
/** the same for memory held by Buffers (arrayBuffers) */
const BUFFER_TOLERANCE = 2 * MiB
const HEARTBEAT_INTERVAL = 100
const RATE_LIMIT = { max: 10, windowMs: 1000 }

const unhandled: unknown[] = []
process.on('unhandledRejection', (reason) => { unhandled.push(reason) })

interface ServerEvent {
  path: string
  tag: string
  at: number
  code?: number
  error?: Error & { code?: string }
}

/** every onClose and onError of the server, in order */
const closes: ServerEvent[] = []
const failures: ServerEvent[] = []

let app: FastifyInstance
let manager: WebSocketManager
let base = ''
let baseline: { heap: number, buffers: number } | null = null
let cases = 0
let tags = 0

/** A unique tag for one connection, passed as `?tag=` so the server's events can be told apart. */
function tag (prefix: string): string {
  return `${prefix}-${++tags}`
}

function url (path: string, connectionTag: string): string {
  return `${base}${path}?tag=${connectionTag}`
}

function tagOf (ctx: { query: Record<string, string | string[]> }): string {
  return String(ctx.query.tag ?? '')
}

/** onClose and onError of every route: recorded; onError also tells the client, as an app would. */
function tracked (path: string): Pick<WebSocketRouteConfig, 'onClose' | 'onError'> {
  return {
    onClose: (_socket, ctx, code) => {
      closes.push({ path, tag: tagOf(ctx), code, at: performance.now() })
    },
    onError: (socket, error, ctx) => {
      failures.push({ path, tag: tagOf(ctx), error, at: performance.now() })
      if (socket.readyState === WebSocket.OPEN) {
        socket.send(JSON.stringify({ type: 'app-error', code: (error as { code?: string }).code ?? error.name }))
      }
    }
  }
}

async function closeOf (connectionTag: string, timeout = 5000): Promise<ServerEvent> {
  await until(() => closes.some((event) => event.tag === connectionTag), timeout)
  const found = closes.filter((event) => event.tag === connectionTag)
  if (found.length !== 1) throw new Error(`onClose ran ${found.length} times for ${connectionTag}`)
  return found[0]
}

function failuresOf (connectionTag: string): Array<Error & { code?: string }> {
  return failures.filter((event) => event.tag === connectionTag).map((event) => event.error as Error)
}

function delta (before: WebSocketStats, key: keyof WebSocketStats): number {
  return manager.stats()[key] - before[key]
}

const gc = globalThis.gc

async function settledMemory (): Promise<{ heap: number, buffers: number }> {
  for (let i = 0; i < 4; i++) {
    gc?.()
    await delay(10)
  }
  const { heapUsed, arrayBuffers } = process.memoryUsage()
  return { heap: heapUsed, buffers: arrayBuffers }
}

const mib = (bytes: number): string => `${(bytes / MiB).toFixed(2)} MiB`

/** What every case ends with: the server still works, nothing leaked. */
async function stillHealthy (t: tap.Test, label: string): Promise<void> {
  await until(() => manager.connections === 0 && app.websocketServer.clients.size === 0, 5000)
  t.equal(manager.stats().rooms, 0, 'no room is left behind')

  const client = await connect(url('/echo', tag('health')))
  client.send({ health: label })
  t.same(await client.waitFor(1), [{ echo: { health: label } }], 'the server still answers a normal client')
  const closing = client.closed()
  client.close()
  await closing
  await until(() => manager.connections === 0)

  t.equal(({} as Record<string, unknown>).polluted, undefined, 'nothing leaked into Object.prototype')
  t.notOk(Object.hasOwn(Object.prototype, 'polluted'), 'Object.prototype has no "polluted" key')
  t.equal(([] as unknown as Record<string, unknown>).polluted, undefined, 'nor into Array.prototype')

  if (gc === undefined || baseline === null) {
    t.comment('memory not checked: global.gc is missing (run node with --expose-gc, as package.json\'s tap config does)')
    return
  }
  const now = await settledMemory()
  t.comment(`memory after "${label}": heap ${mib(now.heap - baseline.heap)} and buffers ${mib(now.buffers - baseline.buffers)} over the baseline`)
  t.ok(now.heap - baseline.heap < HEAP_TOLERANCE, `the heap is back near its baseline (${mib(now.heap)} vs ${mib(baseline.heap)})`)
  t.ok(now.buffers - baseline.buffers < BUFFER_TOLERANCE, `buffer memory is back near its baseline (${mib(now.buffers)} vs ${mib(baseline.buffers)})`)
}

/** One abuse case: its own subtest, then the health checks. */
function abuse (name: string, body: (t: tap.Test) => Promise<void>): void {
  cases++
  t.test(name, async (t) => {
    await body(t)
    await stillHealthy(t, name)
  })
}

t.before(async () => {
  app = await build(t)
  manager = app.getWebSocket()

  // Binary frames come back as they are, anything else as { echo }.
  app.ws('/echo', {
    ...tracked('/echo'),
    onMessage: (socket, message) => {
      socket.send(Buffer.isBuffer(message) ? message : JSON.stringify({ echo: message }))
    }
  })
  // Joins the room the client names: client input goes straight into joinRoom.
  app.ws('/rooms', {
    ...tracked('/rooms'),
    onMessage: (socket, message) => {
      manager.joinRoom(message.room, socket)
      socket.send(JSON.stringify({ joined: message.room, size: manager.roomSize(message.room) }))
    }
  })
  app.ws('/limited', {
    ...tracked('/limited'),
    rateLimit: RATE_LIMIT,
    onMessage: (socket, message) => { socket.send(JSON.stringify({ echo: message })) }
  })
  app.ws('/hb', { ...tracked('/hb'), heartbeat: { interval: HEARTBEAT_INTERVAL } })
  app.ws('/feed', {
    ...tracked('/feed'),
    onConnect: (socket) => { manager.joinRoom('feed', socket) }
  })
  // A recursive message schema: a tree of arrays.
  app.ws('/tree', {
    ...tracked('/tree'),
    schema: { message: { $id: 'abuse-tree', type: 'array', items: { $ref: '#' } } },
    onMessage: (socket, message) => { socket.send(JSON.stringify({ ok: Array.isArray(message) })) }
  })
  base = await listen(app)

  // Warm up every route once, then measure the baseline.
  for (const path of ['/echo', '/rooms', '/limited', '/hb', '/feed', '/tree']) {
    const client = await connect(url(path, tag('warmup')))
    client.send(path === '/rooms' ? { room: 'warmup' } : [])
    if (path !== '/hb' && path !== '/feed') await client.waitFor(1)
    const closing = client.closed()
    client.close()
    await closing
  }
  await until(() => manager.connections === 0)
  if (gc !== undefined) baseline = await settledMemory()
})

t.teardown(() => {
  if (unhandled.length > 0) throw new Error(`unhandled rejections: ${unhandled.map(String).join(', ')}`)
})

// ------------------------------------------------------------------ frames

abuse('invalid UTF-8 in text frames closes that connection with 1007', async (t) => {
  const invalid: Record<string, Buffer> = {
    'a lone 0xFF byte inside JSON': Buffer.from([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xff, 0x22, 0x7d]),
    'an overlong encoding of "/"': Buffer.from([0xc0, 0xaf]),
    'a UTF-16 surrogate (CESU-8)': Buffer.from([0xed, 0xa0, 0x80]),
    'a code point above U+10FFFF': Buffer.from([0xf4, 0x90, 0x80, 0x80]),
    'a truncated sequence at the end': Buffer.from([0x22, 0xe2, 0x82])
  }
  for (const [what, payload] of Object.entries(invalid)) {
    const id = tag('utf8')
    const client = await RawClient.open(base, `/echo?tag=${id}`)
    client.send(Opcode.TEXT, payload)
    t.equal(await client.closed(), 1007, `${what}: close frame 1007`)
    t.equal((await closeOf(id)).code, 1007, `${what}: onClose gets 1007`)
    t.same(failuresOf(id).map((error) => error.code), ['WS_ERR_INVALID_UTF8'], `${what}: onError gets the ws error`)
    t.same(client.messages(), [], `${what}: no message reached the handler`)
  }

  // Split over fragments: a valid character split in two is fine, an invalid one is not.
  const id = tag('utf8-fragments')
  const client = await RawClient.open(base, `/echo?tag=${id}`)
  const euro = Buffer.from('"€"')
  client.send(Opcode.TEXT, euro.subarray(0, 2), { fin: false })
  client.send(Opcode.CONTINUATION, euro.subarray(2))
  await until(() => client.messages().length === 1)
  t.same(client.messages(), [{ echo: '€' }], 'a character split over two fragments is reassembled')
  client.send(Opcode.TEXT, Buffer.from([0x22, 0xe2, 0x82]), { fin: false })
  client.send(Opcode.CONTINUATION, Buffer.from([0x28, 0x22]))
  t.equal(await client.closed(), 1007, 'an invalid sequence across fragments: 1007')
  t.equal((await closeOf(id)).code, 1007)

  // The reason of a close frame must be UTF-8 too.
  const closeId = tag('utf8-close')
  const closer = await RawClient.open(base, `/echo?tag=${closeId}`)
  closer.send(Opcode.CLOSE, Buffer.concat([closePayload(1000), Buffer.from([0xff, 0xfe])]))
  t.equal(await closer.closed(), 1007, 'a close reason that is not UTF-8: 1007')
  t.equal((await closeOf(closeId)).code, 1007)
})

abuse('random bytes as text frames', async (t) => {
  // Random (valid UTF-8) text through a real client: each frame gets its echo
  // or an INVALID_JSON frame, in order, on one connection that stays open.
  const id = tag('random-text')
  const client = await connect(url('/echo', id))
  const expected: unknown[] = []
  for (let i = 0; i < 200; i++) {
    const chars: string[] = []
    for (let n = randomInt(1, 500); n > 0; n--) {
      const code = randomInt(0x20, 0x10ffff - 0x800)
      chars.push(String.fromCodePoint(code < 0xd800 ? code : code + 0x800))
    }
    const text = chars.join('')
    try {
      expected.push({ echo: JSON.parse(text) })
    } catch {
      expected.push({ type: 'error', code: 'INVALID_JSON', message: 'Message is not valid JSON' })
    }
    client.ws.send(text)
  }
  t.same(await client.waitFor(200), expected, '200 random texts: an echo or an INVALID_JSON frame each, in order')
  t.equal(client.ws.readyState, WebSocket.OPEN, 'the connection stays open')
  t.same(failuresOf(id), [], 'no handler error')
  client.close()
  await closeOf(id)

  // Random raw bytes in a text frame (almost never UTF-8): 1007 when they are not.
  for (let i = 0; i < 10; i++) {
    const rawId = tag('random-text-raw')
    const raw = await RawClient.open(base, `/echo?tag=${rawId}`)
    const payload = randomBytes(randomInt(1, 64 * KiB))
    raw.send(Opcode.TEXT, payload)
    if (isUtf8(payload)) {
      await until(() => raw.messages().length === 1)
      t.equal((raw.messages()[0] as { code?: string }).code, 'INVALID_JSON', `${payload.length} random bytes that happen to be UTF-8: INVALID_JSON`)
      raw.destroy()
    } else {
      t.equal(await raw.closed(), 1007, `${payload.length} random bytes as text: 1007`)
    }
    await closeOf(rawId)
  }
})

abuse('random bytes as binary frames', async (t) => {
  // Every size class of the length header, through a real client: echoed back byte for byte, in order.
  const id = tag('random-binary')
  const client = await connect(url('/echo', id))
  const sizes = [0, 1, 125, 126, 127, 65535, 65536, 65537, 1 * MiB]
  while (sizes.length < 100) sizes.push(randomInt(0, 256 * KiB))
  const sent = sizes.map((size) => randomBytes(size))
  for (const payload of sent) client.ws.send(payload)
  const received = await client.waitFor(sent.length, 10000)
  t.equal(received.length, sent.length)
  t.ok(received.every((data, i) => Buffer.isBuffer(data) && data.equals(sent[i])), `${sent.length} random binary frames (0 B to 1 MiB) echoed intact and in order`)
  client.messages.length = 0
  client.close()
  await closeOf(id)

  // Raw, fragmented at random, with pings between the fragments.
  const rawId = tag('random-binary-raw')
  const raw = await RawClient.open(base, `/echo?tag=${rawId}`)
  const messages = Array.from({ length: 30 }, () => randomBytes(randomInt(1, 32 * KiB)))
  for (const message of messages) {
    const cuts = [...new Set([0, ...Array.from({ length: randomInt(0, 4) }, () => randomInt(0, message.length)), message.length])].sort((a, b) => a - b)
    for (let i = 0; i < cuts.length - 1; i++) {
      raw.send(i === 0 ? Opcode.BINARY : Opcode.CONTINUATION, message.subarray(cuts[i], cuts[i + 1]), { fin: i === cuts.length - 2 })
      if (i < cuts.length - 2) raw.send(Opcode.PING, randomBytes(8))
    }
  }
  await until(() => raw.messages().length === messages.length)
  t.ok(raw.messages().every((data, i) => Buffer.isBuffer(data) && data.equals(messages[i])), '30 random messages in random fragments with pings between them: reassembled and echoed')
  t.ok(raw.frames.some((frame) => frame.opcode === Opcode.PONG), 'the pings were answered')
  raw.destroy()
  await closeOf(rawId)

  // Random bytes straight after the handshake, not framed at all.
  const codes: Array<number | undefined> = []
  for (let i = 0; i < 10; i++) {
    const garbageId = tag('garbage')
    const garbage = await RawClient.open(base, `/echo?tag=${garbageId}`)
    garbage.write(randomBytes(4 * KiB))
    await Promise.race([garbage.ended, delay(300)])
    garbage.destroy()
    const { code } = await closeOf(garbageId)
    codes.push(code)
  }
  t.ok(codes.every((code) => code !== undefined && [1002, 1006, 1007, 1009].includes(code)), `10 streams of unframed random bytes: closed each time (onClose codes ${codes.join(', ')})`)
})

abuse('protocol violations close with 1002', async (t) => {
  const violations: Record<string, Buffer> = {
    'an unmasked frame': encodeFrame(Opcode.TEXT, '{}', { mask: false }),
    'RSV1 set without a negotiated extension': encodeFrame(Opcode.TEXT, '{}', { rsv: 4 }),
    'RSV2 and RSV3 set': encodeFrame(Opcode.BINARY, 'x', { rsv: 3 }),
    'a reserved data opcode (0x3)': encodeFrame(0x3, 'x'),
    'a reserved control opcode (0xB)': encodeFrame(0xb, 'x'),
    'a ping of 126 bytes': encodeFrame(Opcode.PING, Buffer.alloc(126)),
    'a fragmented ping': encodeFrame(Opcode.PING, 'x', { fin: false }),
    'a continuation with nothing to continue': encodeFrame(Opcode.CONTINUATION, 'x'),
    'a new text frame inside a fragmented message': Buffer.concat([encodeFrame(Opcode.TEXT, '[', { fin: false }), encodeFrame(Opcode.TEXT, ']')]),
    'a close frame with a 1-byte payload': encodeFrame(Opcode.CLOSE, Buffer.from([3])),
    'a close frame with an invalid code (999)': encodeFrame(Opcode.CLOSE, closePayload(999))
  }
  for (const [what, bytes] of Object.entries(violations)) {
    const id = tag('protocol')
    const client = await RawClient.open(base, `/echo?tag=${id}`)
    client.write(bytes)
    t.equal(await client.closed(), 1002, `${what}: close frame 1002`)
    t.equal((await closeOf(id)).code, 1002, `${what}: onClose gets 1002`)
    t.same(client.messages(), [], `${what}: nothing reached the handler`)
  }
})

abuse('oversized frames close with 1009, before the payload is buffered', async (t) => {
  // Exactly maxPayload (1 MiB) is fine.
  const okId = tag('max-payload')
  const ok = await connect(url('/echo', okId))
  ok.ws.send(Buffer.alloc(MiB, 7))
  const [echoed] = await ok.waitFor(1)
  t.equal((echoed as Buffer).length, MiB, 'a frame of exactly 1 MiB is accepted')
  ok.messages.length = 0
  ok.close()
  await closeOf(okId)

  // One byte more, from a real client.
  const bigId = tag('too-big')
  const big = await connect(url('/echo', bigId))
  const bigClosed = big.closed()
  big.ws.send(Buffer.alloc(MiB + 1, 0x20).toString())
  t.equal((await bigClosed).code, 1009, 'a text frame of 1 MiB + 1 byte: 1009')
  t.equal((await closeOf(bigId)).code, 1009, 'onClose gets 1009')

  const raws: Record<string, Buffer> = {
    // Only the header is sent: the server must not wait for 2 MiB to refuse them.
    'a header that announces 2 MiB': encodeFrame(Opcode.BINARY, Buffer.alloc(0), { length: 2 * MiB }).subarray(0, 14),
    'a header that announces 2^53 bytes': encodeFrame(Opcode.BINARY, Buffer.alloc(0), { length: 2n ** 53n }).subarray(0, 14),
    'a header that announces 2^63 - 1 bytes': encodeFrame(Opcode.TEXT, Buffer.alloc(0), { length: 2n ** 63n - 1n }).subarray(0, 14),
    // Small fragments whose sum passes maxPayload.
    'five fragments of 256 KiB (1.25 MiB in all)': Buffer.concat(Array.from({ length: 5 }, (_, i) =>
      encodeFrame(i === 0 ? Opcode.BINARY : Opcode.CONTINUATION, Buffer.alloc(256 * KiB), { fin: i === 4 })))
  }
  for (const [what, bytes] of Object.entries(raws)) {
    const id = tag('oversized')
    const client = await RawClient.open(base, `/echo?tag=${id}`)
    client.write(bytes)
    t.equal(await client.closed(), 1009, `${what}: close frame 1009`)
    t.equal((await closeOf(id)).code, 1009, `${what}: onClose gets 1009`)
    t.same(client.messages(), [], `${what}: nothing reached the handler`)
  }

  // A frame cut short: the peer vanishes in the middle of its payload.
  const cutId = tag('truncated-frame')
  const cut = await RawClient.open(base, `/echo?tag=${cutId}`)
  cut.write(encodeFrame(Opcode.TEXT, '{"a":"' + 'x'.repeat(1000) + '"}').subarray(0, 100))
  await delay(50)
  cut.destroy()
  t.equal((await closeOf(cutId)).code, 1006, 'a frame cut short by a vanishing peer: onClose gets 1006')
  t.same(cut.messages(), [])
})

// ------------------------------------------------------------------ JSON

abuse('truncated JSON gets INVALID_JSON for every prefix', async (t) => {
  const id = tag('truncated-json')
  const client = await connect(url('/echo', id))
  const doc = JSON.stringify({ type: 'chat', text: 'héllo wörld €', list: [1, 2.5, -3e2, true, false, null], nested: { a: { b: ['c'] } } })
  const prefixes = Array.from({ length: doc.length - 1 }, (_, i) => doc.slice(0, i + 1)).filter((prefix) => {
    try {
      JSON.parse(prefix)
      return false
    } catch {
      return true
    }
  })
  for (const prefix of prefixes) client.ws.send(prefix)
  client.ws.send(doc)
  const received = await client.waitFor(prefixes.length + 1)
  t.ok(received.slice(0, prefixes.length).every((frame) => frame.type === 'error' && frame.code === 'INVALID_JSON' && frame.message === 'Message is not valid JSON'),
    `${prefixes.length} truncated documents: INVALID_JSON each, never echoing what was sent`)
  t.same(received[prefixes.length], { echo: JSON.parse(doc) }, 'the whole document after them is handled')
  t.same(failuresOf(id), [], 'no handler error')
  client.close()
  await closeOf(id)
})

abuse('deeply nested JSON (100k levels)', async (t) => {
  const depth = 100_000
  const id = tag('deep')
  const client = await connect(url('/echo', id))
  client.ws.send('['.repeat(depth))
  client.ws.send('['.repeat(depth) + ']'.repeat(depth))
  client.ws.send('{"a":'.repeat(depth) + '{"__proto__":{"polluted":true}}' + '}'.repeat(depth))
  client.ws.send('{"a":'.repeat(depth) + '{"constructor":{"prototype":{"polluted":true}}}' + '}'.repeat(depth))
  client.ws.send('"still here"')
  const received = await client.waitFor(5)
  t.same(received[0], { type: 'error', code: 'INVALID_JSON', message: 'Message is not valid JSON' }, '100k unclosed [: INVALID_JSON')
  t.same(received[1], { type: 'app-error', code: 'RangeError' }, '100k balanced []: parsed; the handler\'s JSON.stringify throws and onError gets it')
  t.same(failuresOf(id).map((error) => error.name), ['RangeError'], 'the handler error is a RangeError, reported to onError')
  t.same(received.slice(2, 4).map((frame) => frame.code), ['INVALID_JSON', 'INVALID_JSON'], '__proto__ and constructor.prototype 100k levels down: INVALID_JSON')
  t.same(received[4], { echo: 'still here' }, 'the connection still works')
  client.close()
  await closeOf(id)

  // A recursive message schema validates a 100k-deep tree: the validator
  // must not take the connection (or the process) down with it.
  const unhandledBefore = unhandled.length
  const treeId = tag('deep-schema')
  const tree = await connect(url('/tree', treeId))
  tree.ws.send('[[[]]]')
  tree.ws.send('['.repeat(depth) + ']'.repeat(depth))
  tree.ws.send('[]')
  let answered = true
  await tree.waitFor(3, 2000).catch(() => { answered = false })
  const frames = tree.messages
  t.same(frames[0], { ok: true }, 'a shallow tree passes the schema')
  const deepRejected = (frames[1]?.type === 'error' && frames[1]?.code === 'INVALID_MESSAGE') || failuresOf(treeId).length === 1
  t.ok(deepRejected, 'the 100k-deep tree gets an INVALID_MESSAGE frame (or its error goes to onError)')
  t.ok(answered, 'the message after it is still handled')
  t.same(frames.at(-1), { ok: true }, 'the last frame answers the message after it')
  const closing = tree.closed()
  tree.close()
  await closing
  let closed = true
  await closeOf(treeId, 2000).catch(() => { closed = false })
  t.ok(closed, 'onClose runs for that connection')
  await delay(20)
  const rejections = unhandled.splice(unhandledBefore)
  t.same(rejections.map(String), [], 'no unhandled rejection')
})

abuse('__proto__ and constructor.prototype payloads never reach a handler or Object.prototype', async (t) => {
  const id = tag('proto')
  const client = await connect(url('/echo', id))
  const poisoned = [
    '{"__proto__":{"polluted":true}}',
    '{"a":1,"__proto__":{"polluted":true}}',
    '{"a":{"b":{"__proto__":{"polluted":true}}}}',
    '[{"__proto__":{"polluted":true}}]',
    '{"\\u005f_proto__":{"polluted":true}}',
    '{"__proto\\u005F_":{"polluted":true}}',
    '{"__proto__" :{"polluted":true}}',
    '{"__proto__":{},"__proto__":{"polluted":true}}',
    '{"constructor":{"prototype":{"polluted":true}}}',
    '{"a":[{"constructor":{"prototype":{"polluted":true}}}]}',
    '{"constructor":{"\\u0070rototype":{"polluted":true}}}',
    '{"\\u0063onstructor":{"prototype":{"polluted":true}}}'
  ]
  const lookalikes = ['{"constructor":"x"}', '{"proto":1}', '{"__proto":1}', '{"prototype":{"polluted":true}}', '{"constructor":{"name":"x"}}']
  for (const payload of poisoned) client.ws.send(payload)
  for (const payload of lookalikes) client.ws.send(payload)
  // The same bytes in a binary frame are not parsed at all.
  client.ws.send(Buffer.from(poisoned[0]))
  const received = await client.waitFor(poisoned.length + lookalikes.length + 1)
  const rejected = received.slice(0, poisoned.length)
  t.ok(rejected.every((frame) => frame.code === 'INVALID_JSON' && frame.message === 'Message contains a forbidden __proto__ or constructor.prototype key'),
    `${poisoned.length} poisoned payloads (nested, escaped, duplicated keys): INVALID_JSON each`)
  t.same(received.slice(poisoned.length, -1), lookalikes.map((payload) => ({ echo: JSON.parse(payload) })), 'harmless look-alikes are accepted')
  t.ok(Buffer.isBuffer(received.at(-1)) && received.at(-1).equals(Buffer.from(poisoned[0])), 'a binary frame is passed on as bytes, unparsed')
  t.equal(({} as Record<string, unknown>).polluted, undefined)
  t.same(failuresOf(id), [], 'no handler error')
  client.close()
  await closeOf(id)
})

// ------------------------------------------------------------------ rooms

abuse('bad room names from client input go to onError; the connection stays usable', async (t) => {
  const id = tag('rooms')
  const client = await connect(url('/rooms', id))
  const bad: unknown[] = [
    '',
    'x'.repeat(300),
    'x'.repeat(257),
    42,
    null,
    true,
    { a: 1 },
    [],
    ['lobby'],
    // a hostile object whose description cannot be built naively
    { constructor: { name: { toString: 1 } } },
    { constructor: { name: 'y'.repeat(100_000) } }
  ]
  for (const room of bad) client.send({ room })
  client.send({}) // no room at all
  const count = bad.length + 1
  const received = await client.waitFor(count)
  t.same(received, Array.from({ length: count }, () => ({ type: 'app-error', code: 'FST_NEXUS_INVALID_ROOM' })),
    `${count} bad room names ('' / 300 and 257 chars / number / null / boolean / object / arrays / hostile objects / missing): one onError each, in order`)
  const errors = failuresOf(id)
  t.equal(errors.length, count)
  t.ok(errors.every((error) => error instanceof TypeError), 'each one a TypeError')
  t.ok(errors.every((error) => error.message.length < 400), `each message is bounded (longest: ${Math.max(...errors.map((error) => error.message.length))} characters)`)
  t.ok(errors[1].message.includes('300 characters'), 'the message names the bad value')
  t.equal(client.ws.readyState, WebSocket.OPEN, 'the connection stays open')

  for (const room of ['lobby', 'x'.repeat(256), '__proto__', 'constructor', 'hasOwnProperty', 'toString']) client.send({ room })
  const joined = (await client.waitFor(count + 6)).slice(count)
  t.same(joined.map((frame) => frame.size), [1, 1, 1, 1, 1, 1], 'a later valid join works, including names such as __proto__ and constructor')
  t.same(manager.roomsOf(manager.socketsIn('lobby')[0]).sort(), ['lobby', 'x'.repeat(256), '__proto__', 'constructor', 'hasOwnProperty', 'toString'].sort())
  t.equal(manager.broadcast('__proto__', { to: '__proto__' }), 1, 'a broadcast to the room "__proto__" reaches its member')
  t.equal(manager.broadcast('lobby', { to: 'lobby' }), 1)
  t.same((await client.waitFor(count + 8)).slice(count + 6), [{ to: '__proto__' }, { to: 'lobby' }])
  t.equal(({} as Record<string, unknown>).polluted, undefined)
  client.close()
  await closeOf(id)
  t.equal(manager.hasRoom('lobby'), false, 'the rooms vanish with their last member')
})

// ------------------------------------------------------------------ floods

abuse('floods past the rate limit: RATE_LIMITED frames, then 1008', async (t) => {
  // A real client: max messages pass; each further one up to 2 × max in the
  // window is dropped with a RATE_LIMITED frame; the next one closes the connection.
  const before = manager.stats()
  const id = tag('flood')
  const client = await connect(url('/limited', id))
  const closing = client.closed()
  for (let n = 0; n < RATE_LIMIT.max; n++) client.send({ n })
  await client.waitFor(RATE_LIMIT.max)
  for (let n = RATE_LIMIT.max; n < 3 * RATE_LIMIT.max; n++) client.send({ n })
  t.equal((await closing).code, 1008, 'closed with 1008 past 2 × max in one window')
  t.equal((await closeOf(id)).code, 1008, 'onClose gets 1008')
  const echoes = client.messages.filter((frame) => frame.echo !== undefined).map((frame) => frame.echo.n)
  const limited = client.messages.filter((frame) => frame.code === 'RATE_LIMITED')
  // A token may have been refilled meanwhile (max per windowMs): one more message may pass.
  t.ok(echoes.length >= RATE_LIMIT.max && echoes.length <= RATE_LIMIT.max + 1, `max messages handled (${echoes.length})`)
  t.same(echoes.slice(0, RATE_LIMIT.max), Array.from({ length: RATE_LIMIT.max }, (_, n) => n), 'the first max messages are handled, in order')
  t.ok(limited.length >= RATE_LIMIT.max - 1 && echoes.length + limited.length >= 2 * RATE_LIMIT.max && echoes.length + limited.length <= 2 * RATE_LIMIT.max + 1,
    `the others up to 2 × max got a RATE_LIMITED frame each (${limited.length})`)
  t.same(limited[0], { type: 'error', code: 'RATE_LIMITED', message: 'Too many messages: at most 10 per 1000 ms' })
  t.equal(delta(before, 'rateLimited'), limited.length + 1, 'stats().rateLimited counts the dropped messages and the one that closed')

  // 100,000 frames written in one go by a raw client: cut off after 2 × max.
  const rawId = tag('flood-raw')
  const raw = await RawClient.open(base, `/limited?tag=${rawId}`)
  const frame = encodeFrame(Opcode.TEXT, '{"n":0}')
  raw.write(Buffer.concat(Array.from({ length: 100_000 }, () => frame)))
  t.equal(await raw.closed(10000), 1008, '100,000 frames in one write: 1008')
  t.equal((await closeOf(rawId)).code, 1008)
  const closeIndex = raw.frames.findIndex((f) => f.opcode === Opcode.CLOSE)
  t.equal(closeIndex, raw.frames.length - 1, 'nothing is sent after the close frame')
  const rawEchoes = raw.messages().filter((m) => (m as { echo?: unknown }).echo !== undefined).length
  t.ok(rawEchoes >= 1 && rawEchoes <= RATE_LIMIT.max + 1, `at most max messages handled (${rawEchoes}; the others admitted are still queued when the 1008 close drops the queue)`)

  // A client that keeps to the limit is never limited.
  const calmId = tag('calm')
  const calm = await connect(url('/limited', calmId))
  for (let n = 0; n < 15; n++) {
    calm.send({ n })
    await delay(RATE_LIMIT.windowMs / RATE_LIMIT.max + 10)
  }
  const calmFrames = await calm.waitFor(15)
  t.same(calmFrames.map((f) => f.echo?.n), Array.from({ length: 15 }, (_, n) => n), '15 messages at the allowed pace: all handled, none limited')
  calm.close()
  await closeOf(calmId)
})

abuse('a flood of 50,000 messages in one write, without a rate limit, is worked off in order', async (t) => {
  const id = tag('flood-unlimited')
  const raw = await RawClient.open(base, `/echo?tag=${id}`)
  const count = 50_000
  raw.write(Buffer.concat(Array.from({ length: count }, (_, n) => encodeFrame(Opcode.TEXT, String(n)))))
  await until(() => raw.frames.length >= count, 20000)
  const echoed = raw.messages().map((m) => (m as { echo: number }).echo)
  t.equal(echoed.length, count)
  t.ok(echoed.every((n, i) => n === i), `${count} messages written in one go: all handled, in order`)
  raw.destroy()
  await closeOf(id)
})

// ------------------------------------------------------------------ dead and slow peers

abuse('a client that never answers pings is terminated within ~2 intervals', async (t) => {
  const before = manager.stats()
  const aliveId = tag('hb-alive')
  const alive = await connect(url('/hb', aliveId))
  let pings = 0
  alive.ws.on('ping', () => { pings++ })

  // Never reads, never answers: only the handshake.
  const silentId = tag('hb-silent')
  const silent = await RawClient.open(base, `/hb?tag=${silentId}`, { read: false })
  const opened = performance.now()
  const silentClose = await closeOf(silentId, 10 * HEARTBEAT_INTERVAL)
  const elapsed = silentClose.at - opened
  t.ok(elapsed <= 2 * HEARTBEAT_INTERVAL + 150, `a silent client is terminated after ${Math.round(elapsed)} ms (interval ${HEARTBEAT_INTERVAL} ms)`)
  t.equal(silentClose.code, 1006, 'onClose runs (1006: no close frame)')
  t.equal(delta(before, 'heartbeatTimeouts'), 1, 'stats().heartbeatTimeouts counts it')
  silent.destroy()

  // Reads everything, answers nothing.
  const deafId = tag('hb-deaf')
  const deaf = await RawClient.open(base, `/hb?tag=${deafId}`, { answerPings: false })
  await closeOf(deafId, 10 * HEARTBEAT_INTERVAL)
  t.ok(deaf.frames.some((frame) => frame.opcode === Opcode.PING), 'a client that reads but never answers got pings…')
  t.equal(delta(before, 'heartbeatTimeouts'), 2, '…and is terminated too')
  deaf.destroy()

  await delay(5 * HEARTBEAT_INTERVAL)
  t.equal(alive.ws.readyState, WebSocket.OPEN, 'a client that answers stays connected over 5+ intervals')
  t.ok(pings >= 4, `it was pinged ${pings} times`)
  t.equal(delta(before, 'heartbeatTimeouts'), 2)
  alive.close()
  await closeOf(aliveId)
})

/** Broadcasts 20 MiB in 20 KiB messages to the 'feed' room at the pace of the normal clients. */
async function flood20MiB (t: tap.Test, normal: Client[], stalledId: string): Promise<void> {
  const before = manager.stats()
  const size = 20 * KiB
  const total = (20 * MiB) / size
  const batch = 32
  let written = 0
  let lastWithStalled = -1
  for (let seq = 0; seq < total; seq++) {
    const message = Buffer.alloc(size, seq & 0xff)
    message.writeUInt32BE(seq, 0)
    const reached = manager.broadcast('feed', message)
    written += reached
    if (reached === 3) lastWithStalled = seq
    if (seq % batch === batch - 1) await Promise.all(normal.map((client) => client.waitFor(seq + 1, 10000)))
  }
  await Promise.all(normal.map((client) => client.waitFor(total, 10000)))
  const stalledClose = await closeOf(stalledId, 5000)
  t.equal(stalledClose.code, 1013, 'the stalled client is closed; onClose gets 1013')
  t.equal(delta(before, 'slowConsumers'), 1, 'stats().slowConsumers is 1')
  t.ok(lastWithStalled < total - 1, `it stopped receiving after ${lastWithStalled + 1} messages (${mib((lastWithStalled + 1) * size)}) of ${total}`)
  t.equal(written, 2 * total + lastWithStalled + 1, 'every broadcast reached the two normal clients')
  for (const [i, client] of normal.entries()) {
    const inOrder = client.messages.length === total && client.messages.every((data: Buffer, seq: number) => data.length === size && data.readUInt32BE(0) === seq)
    t.ok(inOrder, `normal client ${i + 1} received all ${total} messages (20 MiB), in order`)
    t.equal(client.ws.readyState, WebSocket.OPEN, `normal client ${i + 1} is still connected`)
    client.messages.length = 0
  }
  t.equal(manager.roomSize('feed'), 2, 'the stalled client left the room')
}

abuse('a client that stops reading while its room gets 20 MiB (paused ws client)', async (t) => {
  const normal = [await connect(url('/feed', tag('feed-normal'))), await connect(url('/feed', tag('feed-normal')))]
  const stalledId = tag('feed-stalled')
  const stalled = await connect(url('/feed', stalledId))
  ;(stalled.ws as unknown as { _socket: Socket })._socket.pause()
  await until(() => manager.roomSize('feed') === 3)
  await flood20MiB(t, normal, stalledId)
  stalled.ws.terminate()
  for (const client of normal) client.close()
})

abuse('a client that stops reading while its room gets 20 MiB (raw TCP client)', async (t) => {
  const normal = [await connect(url('/feed', tag('feed-normal'))), await connect(url('/feed', tag('feed-normal')))]
  const stalledId = tag('feed-stalled-raw')
  const stalled = await RawClient.open(base, `/feed?tag=${stalledId}`, { read: false })
  await until(() => manager.roomSize('feed') === 3)
  await flood20MiB(t, normal, stalledId)
  stalled.destroy()
  for (const client of normal) client.close()
})

t.test('summary', async (t) => {
  t.comment(`abuse suite: ${cases} cases, each followed by the health checks (echo round-trip, Object.prototype, sockets and rooms gone, memory near baseline)`)
  t.equal(cases, 14)
})
