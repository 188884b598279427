import t from 'tap'
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import WebSocket, { WebSocketServer } from 'ws'
import { NexusClient, type ClientOptions, type ClientState, type PresenceCount, type PresenceMember, type Subscription } from '../client/index'
import { decode, type Frame } from './helpers/protocol'
import type { TestContext } from './helpers/server'

// The official client's presence (client/index.ts), against a ws server that
// speaks the nexus.v1 presence frames of PROTOCOL.md by hand: the test
// decides every snapshot, change, gap and count, and reads every frame the
// client sends. Real sockets on 127.0.0.1; every wait is for an event, with
// generous bounds (the machine may be a busy 2-core box).

t.setTimeout(180000)

const WAIT = 15000

interface Events {
  on: (event: any, handler: any) => unknown
  off: (event: any, handler: any) => unknown
}

/** A client with ws's class, closed when the test ends. */
function open (t: TestContext, url: string, options: ClientOptions = {}): NexusClient<any, any> {
  const client = new NexusClient<any, any>(url, { WebSocket, ...options })
  t.teardown(() => client.close())
  return client
}

/** The arguments of the next `event` for which `test` holds. */
function next (emitter: Events, event: string, test: (...args: any[]) => boolean = () => true): Promise<any[]> {
  return new Promise((resolve, reject) => {
    const handler = (...args: any[]): void => {
      if (!test(...args)) return
      clearTimeout(timer)
      emitter.off(event, handler)
      resolve(args)
    }
    const timer = setTimeout(() => {
      emitter.off(event, handler)
      reject(new Error(`no "${event}" event within ${WAIT} ms`))
    }, WAIT)
    emitter.on(event, handler)
  })
}

async function reach (client: NexusClient<any, any>, state: ClientState): Promise<void> {
  if (client.state !== state) await next(client, 'state', (s) => s === state)
}

type PresenceCall = [PresenceMember[] | null, PresenceCount]

/** Every `presence` event of a subscription, and a wait for the n-th. */
function watch (sub: Subscription<any>): { calls: PresenceCall[], nth: (n: number) => Promise<PresenceCall> } {
  const calls: PresenceCall[] = []
  const waiters = new Set<() => void>()
  sub.on('presence', (members, count) => {
    calls.push([members, count])
    for (const waiter of [...waiters]) waiter()
  })
  return {
    calls,
    nth: (n) => new Promise((resolve, reject) => {
      const check = (): void => {
        if (calls.length < n) return
        clearTimeout(timer)
        waiters.delete(check)
        resolve(calls[n - 1])
      }
      const timer = setTimeout(() => {
        waiters.delete(check)
        reject(new Error(`presence event ${n} not within ${WAIT} ms; got ${calls.length}`))
      }, WAIT)
      waiters.add(check)
      check()
    })
  }
}

/** Members as the client gives them, from [key, connections, meta] entries. */
function members (...entries: Array<[string, number, unknown]>): PresenceMember[] {
  return entries.map(([key, connections, meta]) => ({ key, meta, connections }))
}

/** One server side connection: what the client sent, and frames written by hand. */
class Peer {
  readonly frames: Frame[] = []
  /** the frames `take` already handed out */
  private readonly taken = new Set<Frame>()
  private readonly waiters = new Set<() => void>()

  constructor (readonly ws: WebSocket) {
    ws.on('message', (data: Buffer, binary) => {
      this.frames.push(decode(data, binary))
      for (const waiter of [...this.waiters]) waiter()
    })
  }

  send (kind: string, header: object, payload = ''): void {
    this.ws.send(`${kind}${JSON.stringify(header)}\n${payload}`)
  }

  /** The first frame not taken yet that matches, arrived or to come. */
  take (match: (frame: Frame) => boolean): Promise<Frame> {
    return new Promise((resolve, reject) => {
      const check = (): void => {
        const frame = this.frames.find((f) => !this.taken.has(f) && match(f))
        if (frame === undefined) return
        clearTimeout(timer)
        this.waiters.delete(check)
        this.taken.add(frame)
        resolve(frame)
      }
      const timer = setTimeout(() => {
        this.waiters.delete(check)
        reject(new Error(`no matching frame within ${WAIT} ms; got ${JSON.stringify(this.frames.map((f) => [f.kind, f.header]))}`))
      }, WAIT)
      this.waiters.add(check)
      check()
    })
  }

  /** Waits for the client's subscribe to `room` and accepts it; resolves with the subscribe's header. */
  async accept (room: string): Promise<Record<string, any>> {
    const { header } = await this.take((f) => f.kind === 's' && f.header.r === room)
    this.send('s', { i: header.i, r: room })
    return header
  }

  /** The presence snapshot requests (`p` frames) the client sent. */
  asks (): Array<Record<string, any>> {
    return this.frames.filter((f) => f.kind === 'p').map((f) => f.header)
  }
}

/** A ws server that speaks nexus.v1: it says hello to each connection; the test writes the rest. */
async function scripted (t: TestContext): Promise<{ url: string, connection: (n: number) => Promise<Peer> }> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, handleProtocols: (protocols) => protocols.has('nexus.v1') ? 'nexus.v1' : false })
  await once(wss, 'listening')
  t.teardown(() => new Promise<void>((resolve) => {
    for (const ws of wss.clients) ws.terminate()
    wss.close(() => resolve())
  }))
  const peers: Peer[] = []
  const waiters = new Set<() => void>()
  wss.on('connection', (ws) => {
    const peer = new Peer(ws)
    peers.push(peer)
    peer.send('h', { v: 1, id: `peer-${peers.length}` })
    for (const waiter of [...waiters]) waiter()
  })
  return {
    url: `ws://127.0.0.1:${(wss.address() as AddressInfo).port}/`,
    // The n-th connection (from 0), arrived or to come.
    connection: (n) => new Promise((resolve, reject) => {
      const check = (): void => {
        if (peers.length <= n) return
        clearTimeout(timer)
        waiters.delete(check)
        resolve(peers[n])
      }
      const timer = setTimeout(() => {
        waiters.delete(check)
        reject(new Error(`no connection ${n} within ${WAIT} ms`))
      }, WAIT)
      waiters.add(check)
      check()
    })
  }
}

let marks = 0

/**
 * A round trip behind everything sent so far: the client has handled every
 * frame the peer wrote before (a connection's frames are handled in order),
 * and the peer has every frame the client sent while handling them.
 */
async function sync (client: NexusClient<any, any>, peer: Peer): Promise<void> {
  const mark = `mark-${++marks}`
  const received = next(client, 'message', (data) => data === mark)
  peer.send('m', {}, JSON.stringify(mark))
  await received
  client.send(mark)
  await peer.take((f) => f.kind === 'm' && f.payload === JSON.stringify(mark))
}

t.test('a snapshot gives the members, changes set and delete them, and frames for other rooms are ignored', async (t) => {
  const server = await scripted(t)
  const client = open(t, server.url)
  const peer = await server.connection(0)
  const plain = client.subscribe('plain')
  const sub = client.subscribe('room', { presence: true, params: { invite: 'x' } })
  t.same(await peer.accept('plain'), { i: 1, r: 'plain' }, 'no "w" without presence')
  t.same(await peer.accept('room'), { i: 2, r: 'room', p: { invite: 'x' }, w: 1 }, '"w":1 asks presence')
  const plainEvents = watch(plain)
  const events = watch(sub)

  peer.send('p', { r: 'room', v: 3, m: [['ann', 2, { name: 'Ann' }], ['bob', 1, null]] })
  t.same(await events.nth(1), [members(['ann', 2, { name: 'Ann' }], ['bob', 1, null]), { members: 2, connections: 3 }], 'the snapshot, counted from the list')

  peer.send('d', { r: 'room', v: 4, u: [['cat', 1, { name: 'Cat' }], ['ann', 1, { name: 'Ann B.' }]], l: ['bob'] })
  t.same(await events.nth(2), [members(['ann', 1, { name: 'Ann B.' }], ['cat', 1, { name: 'Cat' }]), { members: 2, connections: 2 }],
    'u sets (a new member, a changed one), l deletes')

  peer.send('d', { r: 'room', v: 5, l: ['cat', 'nobody'] })
  t.same(await events.nth(3), [members(['ann', 1, { name: 'Ann B.' }]), { members: 1, connections: 1 }], 'a change with leaves only; an unknown key is no error')

  peer.send('d', { r: 'room', v: 6, u: [['ann', 1, { name: 'Ann B.' }]] })
  t.same(await events.nth(4), [members(['ann', 1, { name: 'Ann B.' }]), { members: 1, connections: 1 }], 'absolute values: the same change again changes nothing')

  peer.send('d', { r: 'room', v: 7, u: [['dan', 3]] })
  t.same(await events.nth(5), [[{ key: 'ann', meta: { name: 'Ann B.' }, connections: 1 }, { key: 'dan', meta: undefined, connections: 3 }], { members: 2, connections: 4 }],
    'a member without meta')

  // Presence frames for a room held without presence, or not held, are ignored.
  peer.send('p', { r: 'plain', v: 1, m: [['x', 1, null]] })
  peer.send('d', { r: 'plain', v: 2, u: [['y', 1, null]] })
  peer.send('p', { r: 'elsewhere', v: 1, m: [['x', 1, null]] })
  peer.send('d', { r: 'elsewhere', v: 9, l: ['x'] })
  await sync(client, peer)
  t.equal(events.calls.length, 5)
  t.same(plainEvents.calls, [], 'no presence for a subscription that did not ask')
  t.same(peer.asks(), [], 'no snapshot asked: every version followed the last')
})

t.test('a version gap: applied anyway, one snapshot asked until it comes, and the snapshot restores the list', async (t) => {
  const server = await scripted(t)
  const client = open(t, server.url)
  const peer = await server.connection(0)
  const sub = client.subscribe('room', { presence: true })
  await peer.accept('room')
  const events = watch(sub)
  peer.send('p', { r: 'room', v: 1, m: [['a', 1, null]] })
  await events.nth(1)

  peer.send('d', { r: 'room', v: 3, u: [['b', 1, null]] })
  t.same(await events.nth(2), [members(['a', 1, null], ['b', 1, null]), { members: 2, connections: 2 }], 'the change after a gap is applied')
  const ask = await peer.take((f) => f.kind === 'p')
  t.same(ask.header, { r: 'room' }, 'p{"r":room} asks a snapshot')
  t.equal(ask.payload, '')

  peer.send('d', { r: 'room', v: 5, u: [['c', 2, null]] })
  peer.send('d', { r: 'room', v: 6, l: ['a'] })
  peer.send('d', { r: 'room', v: 6, l: ['a'] })
  t.same(await events.nth(5), [members(['b', 1, null], ['c', 2, null]), { members: 2, connections: 3 }], 'more gaps, a repeated change: all applied')
  await sync(client, peer)
  t.equal(peer.asks().length, 1, 'one snapshot asked until it comes')

  // The server's answer; 'x' joined meanwhile, 'c' left.
  peer.send('p', { r: 'room', v: 9, m: [['b', 1, null], ['x', 1, { n: 1 }]] })
  t.same(await events.nth(6), [members(['b', 1, null], ['x', 1, { n: 1 }]), { members: 2, connections: 2 }], 'the snapshot replaces the list')
  peer.send('d', { r: 'room', v: 10, l: ['b'] })
  t.same(await events.nth(7), [members(['x', 1, { n: 1 }]), { members: 1, connections: 1 }], 'the snapshot\'s version is the base')
  await sync(client, peer)
  t.equal(peer.asks().length, 1)

  peer.send('d', { r: 'room', v: 12, u: [['y', 1, null]] })
  await events.nth(8)
  await sync(client, peer)
  t.same(peer.asks(), [{ r: 'room' }, { r: 'room' }], 'a gap after the snapshot asks again')
})

t.test('counts only: members null and the server\'s count, changes wait for a snapshot, then a list again', async (t) => {
  const server = await scripted(t)
  const client = open(t, server.url)
  const peer = await server.connection(0)
  const sub = client.subscribe('big', { presence: true })
  await peer.accept('big')
  const events = watch(sub)
  peer.send('p', { r: 'big', v: 1, m: [['a', 1, null], ['b', 2, null]] })
  await events.nth(1)

  peer.send('p', { r: 'big', v: 2, n: 10500, c: 12000 })
  t.same(await events.nth(2), [null, { members: 10500, connections: 12000 }], 'above the listLimit: no list, the count as given')
  peer.send('p', { r: 'big', v: 3, n: 10501, c: 12003 })
  t.same(await events.nth(3), [null, { members: 10501, connections: 12003 }])

  // A change with no list to apply it to: no event, a snapshot asked (once).
  peer.send('d', { r: 'big', v: 4, u: [['c', 1, null]] })
  peer.send('d', { r: 'big', v: 5, l: ['a'] })
  await sync(client, peer)
  t.equal(events.calls.length, 3, 'no event for changes to an unknown list')
  t.same(peer.asks(), [{ r: 'big' }])

  peer.send('p', { r: 'big', v: 6, m: [['b', 1, null], ['c', 1, null]] })
  t.same(await events.nth(4), [members(['b', 1, null], ['c', 1, null]), { members: 2, connections: 2 }], 'under the limit again: a full list')
  peer.send('d', { r: 'big', v: 7, u: [['d', 4, null]] })
  t.same(await events.nth(5), [members(['b', 1, null], ['c', 1, null], ['d', 4, null]), { members: 3, connections: 6 }])
  await sync(client, peer)
  t.equal(peer.asks().length, 1)
})

t.test('a change before any snapshot asks one; an empty snapshot is an empty list', async (t) => {
  const server = await scripted(t)
  const client = open(t, server.url)
  const peer = await server.connection(0)
  const sub = client.subscribe('room', { presence: true })
  await peer.accept('room')
  const events = watch(sub)
  peer.send('d', { r: 'room', v: 1, u: [['a', 1, null]] })
  await sync(client, peer)
  t.same(events.calls, [])
  t.same(peer.asks(), [{ r: 'room' }])
  peer.send('p', { r: 'room', v: 1, m: [] })
  t.same(await events.nth(1), [[], { members: 0, connections: 0 }])
})

t.test('after a reconnect: "w":1 again, and the new snapshot replaces the list', async (t) => {
  const server = await scripted(t)
  const client = open(t, server.url, { reconnect: { minDelay: 10, maxDelay: 50 } })
  const first = await server.connection(0)
  const sub = client.subscribe('room', { presence: true })
  client.subscribe('plain')
  t.same(await first.accept('room'), { i: 1, r: 'room', w: 1 })
  t.same(await first.accept('plain'), { i: 2, r: 'plain' })
  const events = watch(sub)
  first.send('p', { r: 'room', v: 7, m: [['a', 1, null], ['b', 1, null]] })
  first.send('d', { r: 'room', v: 8, u: [['c', 1, null]] })
  await events.nth(2)

  first.ws.close(1012)
  await reach(client, 'disconnected')
  t.equal(sub.state, 'subscribing')
  const second = await server.connection(1)
  const resubscribe = await second.take((f) => f.kind === 's' && f.header.r === 'room')
  t.same(resubscribe.header, { i: 3, r: 'room', w: 1 }, 'presence asked again')
  t.same(await second.accept('plain'), { i: 4, r: 'plain' }, 'still none for the other room')
  t.equal(events.calls.length, 2, 'nothing in between')
  const subscribed = next(sub, 'subscribed')
  second.send('s', { i: 3, r: 'room' })
  await subscribed
  // Versions belong to a server instance: this one starts anywhere.
  second.send('p', { r: 'room', v: 1, m: [['b', 2, null], ['d', 1, null]] })
  t.same(await events.nth(3), [members(['b', 2, null], ['d', 1, null]), { members: 2, connections: 3 }], 'replaced, not merged')
  second.send('d', { r: 'room', v: 2, l: ['d'] })
  t.same(await events.nth(4), [members(['b', 2, null]), { members: 1, connections: 2 }])
  await sync(client, second)
  t.same(second.asks(), [], 'no gap across the reconnect')
  t.same(first.asks(), [])
})

t.test('unsubscribe (or the server\'s u) clears presence: no more events, and a new subscription starts from its own snapshot', async (t) => {
  const server = await scripted(t)
  const client = open(t, server.url)
  const peer = await server.connection(0)
  const sub = client.subscribe('room', { presence: true })
  await peer.accept('room')
  const events = watch(sub)
  peer.send('p', { r: 'room', v: 1, m: [['a', 1, null]] })
  await events.nth(1)

  sub.unsubscribe()
  t.equal(sub.state, 'unsubscribed')
  const left = await peer.take((f) => f.kind === 'u')
  t.same(left.header, { i: 2, r: 'room' })
  // Sent by the server before it handled the unsubscribe.
  peer.send('d', { r: 'room', v: 2, u: [['b', 1, null]] })
  peer.send('p', { r: 'room', v: 3, m: [['c', 1, null]] })
  peer.send('u', { i: 2, r: 'room' })

  // Subscribed again: frames of the old subscription still on their way
  // before the new one's answer are not its own.
  const again = client.subscribe('room', { presence: true })
  const newEvents = watch(again)
  const subscribe = await peer.take((f) => f.kind === 's' && f.header.i === 3)
  t.same(subscribe.header, { i: 3, r: 'room', w: 1 })
  peer.send('d', { r: 'room', v: 4, u: [['old', 1, null]] })
  peer.send('s', { i: 3, r: 'room' })
  peer.send('p', { r: 'room', v: 1, m: [['new', 1, null]] })
  t.same(await newEvents.nth(1), [members(['new', 1, null]), { members: 1, connections: 1 }])
  await sync(client, peer)
  t.equal(events.calls.length, 1, 'the old subscription got nothing after unsubscribe')
  t.equal(newEvents.calls.length, 1, 'the new one got its snapshot only')
  t.same(peer.asks(), [])

  // The server removes the connection from the room: frames after it are dropped.
  const removed = next(again, 'unsubscribed')
  peer.send('u', { r: 'room' })
  await removed
  peer.send('d', { r: 'room', v: 2, u: [['late', 1, null]] })
  await sync(client, peer)
  t.equal(newEvents.calls.length, 1)
  t.equal(again.state, 'unsubscribed')
})

t.test('a room without presence refuses the subscribe with NOT_ENABLED, for good', async (t) => {
  const server = await scripted(t)
  const client = open(t, server.url)
  const peer = await server.connection(0)
  const sub = client.subscribe('no-presence', { presence: true })
  const { header } = await peer.take((f) => f.kind === 's')
  t.same(header, { i: 1, r: 'no-presence', w: 1 })
  const refused = next(sub, 'error')
  peer.send('e', { i: 1, r: 'no-presence', c: 'NOT_ENABLED', m: 'This room does not track presence' })
  const [error] = await refused
  t.match(error, { code: 'NOT_ENABLED', message: 'This room does not track presence', temporary: false, room: 'no-presence' })
  t.equal(sub.state, 'unsubscribed')
  const events = watch(sub)
  peer.send('p', { r: 'no-presence', v: 1, m: [['a', 1, null]] })
  await sync(client, peer)
  t.same(events.calls, [])
})
