/**
 * The official client of fastify-nexus-realtime: one module with no imports
 * and no dependencies, for browsers, Node ≥ 22 (global `WebSocket`) and Node
 * 20 with `ws` passed in. It speaks the `nexus.v1` subprotocol (PROTOCOL.md):
 * every frame is a kind letter, a one-line JSON header, a line feed, then the
 * payload. It uses only the browser WebSocket API (`on*` handlers,
 * `binaryType`, `send`, `close`, `readyState`, `protocol`), which `ws` and
 * undici also provide.
 */

const PROTOCOL = 'nexus.v1'

/** Offered beside `nexus.v1` by a client that holds positions: its first frame is then `r`. */
const RESUME = 'nexus.resume'

/**
 * How long (ms) a connection must have stayed open for the reconnect backoff
 * to start again from `minDelay` (or `maxDelay`, when shorter). A server that
 * accepts and then drops every connection at once is thus retried with
 * growing delays, not at `minDelay`.
 */
const STABLE = 5000

/** WebSocket's OPEN readyState (the constant is not on every implementation's instances). */
const OPEN = 1

/** The state of a client. `closed` is final: nothing happens after it. */
export type ClientState = 'connecting' | 'connected' | 'disconnected' | 'closed'

/** Query parameters merged into the URL of every connection attempt; `null`/`undefined` values are left out. */
export type Params = Record<string, string | number | boolean | null | undefined>

/**
 * A WebSocket class: the browser's, Node 22's global one, or `ws`'s. Only
 * the browser API is used.
 */
export type WebSocketClass = new (url: string, protocols: string | string[]) => object

/** Every error the client reports: an `Error` with a `code`. */
export interface NexusError extends Error {
  /** `TIMEOUT`, `DISCONNECTED`, `CLOSED`, `BUFFER_OVERFLOW`, `REFUSED`, `UNSUPPORTED_PROTOCOL`, `INVALID_FRAME`, or the server's code (`FORBIDDEN`, `INVALID_MESSAGE`, …) */
  code: string
  /** the server's details (`x`): e.g. the validation errors of `INVALID_MESSAGE` */
  details?: unknown
  /** a refused subscribe: whether the client will try again by itself */
  temporary?: boolean
  /** a refused subscribe: its room */
  room?: string
  /** `REFUSED`: the close code (4401, 4403, …) */
  closeCode?: number
  /** `REFUSED`: the close reason */
  reason?: string
  /** `BUFFER_OVERFLOW`, `CLOSED`: the data of the message that was dropped */
  data?: unknown
  /** `CONNECT_FAILED`: what `params` (or the WebSocket constructor) threw */
  cause?: unknown
}

/** Where a message comes from: `room` for a room's broadcast (absent for a message to this connection alone). */
export interface MessageInfo {
  room?: string
  /** its position in a room that keeps history */
  offset?: number
}

/** The close code and reason of the connection that just ended (second argument of `state`). */
export interface CloseInfo {
  code: number
  reason: string
}

/**
 * Whether a room of history the client held a position in (presented on
 * reconnect) came back without a gap: `missed` messages were replayed
 * (they arrive next), or none was and `reason` says why (`EPOCH_CHANGED`,
 * `TRIMMED`, `EXPIRED`, `INVALID_POSITION`, `UNAVAILABLE`).
 */
export interface ResumeInfo {
  room: string
  recovered: boolean
  missed: number
  reason?: string
}

/** `subscribed`: every (re)subscribe; `recovered: true, missed: 0` unless the room was resumed (see `ResumeInfo`). */
export interface SubscribedInfo {
  recovered: boolean
  missed: number
  reason?: string
}

/** A member of a presence room. */
export interface PresenceMember {
  key: string
  meta: unknown
  connections: number
}

/** How many members (keys) and connections a presence room has. */
export interface PresenceCount {
  members: number
  connections: number
}

export interface ClientOptions {
  /** Query parameters, or a function (sync or async) that gives them, called before every connection attempt. */
  params?: Params | (() => Params | Promise<Params>)
  /** The WebSocket class; default: the global `WebSocket` (browsers, Node ≥ 22). In Node 20 pass `ws`'s. */
  WebSocket?: WebSocketClass
  /**
   * Delays between connection attempts, in ms: a random delay from `minDelay`
   * up to `minDelay × 2^attempt`, never more than `maxDelay`. `false`: no
   * reconnect (a drop closes the client).
   * @default { minDelay: 500, maxDelay: 20000 }
   */
  reconnect?: { minDelay?: number, maxDelay?: number } | false
  /** Default timeout of `request()` in ms; `0` waits for ever. @default 10000 */
  requestTimeout?: number
  /** Messages and requests kept while not connected; the oldest is dropped beyond `maxMessages`. @default { maxMessages: 100 } */
  buffer?: { maxMessages?: number }
}

export interface SubscribeOptions {
  /** Any JSON value, handed to the route's `rooms.authorize(room, ctx, params)` on every (re)subscribe. */
  params?: unknown
  /** Ask for the room's members (`presence` events); the room's policy must track presence, or the subscribe is refused with `NOT_ENABLED`. */
  presence?: boolean
}

export interface RequestOptions {
  /** ms; `0` waits for ever. Default: the client's `requestTimeout`. */
  timeout?: number
}

export interface ClientEvents<Incoming> {
  /** Every change of `state`; `info` is the close that caused `disconnected` or `closed`, when there was one. */
  state: (state: ClientState, info?: CloseInfo) => void
  /** Every application message: JSON-parsed when it parses, else the string; binary as a `Uint8Array`. */
  message: (data: Incoming, info: MessageInfo) => void
  /**
   * Per room of history presented on reconnect (subscribed or joined by the
   * server), and when the server says a room's history was lost while connected.
   */
  resume: (info: ResumeInfo) => void
  error: (error: NexusError) => void
}

export interface SubscriptionEvents<T> {
  /** A message of the room (it also reaches the client's `message`). */
  message: (data: T, info: { offset?: number }) => void
  /** The subscription is in place, after every (re)subscribe: a broadcast sent from now on arrives. */
  subscribed: (info: SubscribedInfo) => void
  /** The subscribe was refused; `temporary: false` ends the subscription. */
  error: (error: NexusError & { temporary: boolean }) => void
  /**
   * The room's members, kept current: after every snapshot and every change
   * from the server. `members` is `null` while the room is above its
   * `listLimit` (the server then sends counts only); `count` is always given.
   */
  presence: (members: PresenceMember[] | null, count: PresenceCount) => void
  /** The server removed the connection from the room; the client does not subscribe again. */
  unsubscribed: () => void
}

// Handlers of any shape: each event's own type is in its events interface.
type Listener = (...args: any[]) => void
type Timer = ReturnType<typeof setTimeout>
type Frame = string | Uint8Array
/** A frame's header: PROTOCOL.md, "Server to client". */
interface Header { id?: string, i?: number, r?: string, o?: number, e?: string, c: string, m: string, t?: boolean, x?: unknown, recovered?: boolean, missed?: number, reason?: string }
/** A member as presence frames carry it: key, connections, meta. */
type Entry = [string, number, unknown]
/** The header of a presence frame: `p` a snapshot (`m`) or counts (`n`, `c`), `d` changes (`u` set, `l` gone). */
interface PresenceHeader { r: string, v: number, m?: Entry[], n: number, c: number, u?: Entry[], l?: string[] }

/** The part of a WebSocket the client touches. */
interface Socket {
  binaryType: string
  readonly readyState: number
  readonly protocol: string
  send (data: Frame): void
  close (code?: number): void
  onopen: (() => void) | null
  onmessage: ((event: { data: string | ArrayBuffer }) => void) | null
  onclose: ((event: { code: number, reason: string }) => void) | null
  onerror: (() => void) | null
}

/** A request: its promise's settlers, its timer, and whether it waits in the buffer (not sent yet). */
interface Pending {
  i: number
  ok: (value: never) => void
  ko: (error: NexusError) => void
  t?: Timer
  b?: boolean
}

const encoder = new TextEncoder()
const decoder = new TextDecoder()

function error (code: string, message: string, extra?: object): NexusError {
  return Object.assign(new Error(message), { code }, extra)
}

/** Encodes a frame: text unless the data is binary, then the header's bytes in front of it. */
function frame (kind: string, header: object, data?: unknown, hasData?: boolean): Frame {
  const head = kind + JSON.stringify(header) + '\n'
  if (data instanceof ArrayBuffer || ArrayBuffer.isView(data)) {
    const h = encoder.encode(head)
    const bytes = data instanceof ArrayBuffer ? new Uint8Array(data) : new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
    const out = new Uint8Array(h.length + bytes.length)
    out.set(h)
    out.set(bytes, h.length)
    return out
  }
  // JSON has no `undefined` (nor functions): they go as `null`, which a JSON route parses.
  return hasData ? head + (JSON.stringify(data) ?? 'null') : head
}

/** A text payload as JSON when it parses, else as the string. */
function parse (text: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    return text
  }
}

/** PROTOCOL.md, "Close codes and reconnecting": refused, or closed for good by the application. */
function isFinal (code: number): boolean {
  return code >= 4400 && code < 4500 && code !== 4408 && code !== 4429
}

/** `on`/`off` and a dispatcher where a throwing handler stops neither the others nor the client. */
class Emitter<E extends Record<keyof E, Listener>> {
  /** @internal */
  _l: { [K in keyof E]?: Set<E[K]> } = {}

  on<K extends keyof E>(event: K, handler: E[K]): this {
    (this._l[event] ??= new Set()).add(handler)
    return this
  }

  off<K extends keyof E>(event: K, handler: E[K]): this {
    this._l[event]?.delete(handler)
    return this
  }

  /** @internal */
  _emit<K extends keyof E>(event: K, ...args: Parameters<E[K]>): void {
    // A copy: a handler may add or remove handlers.
    for (const handler of [...this._l[event] ?? []]) {
      try {
        handler(...args)
      } catch (e) {
        // Reported like any uncaught error (the console, Node's
        // uncaughtException), but the frame being handled is not cut short.
        queueMicrotask(() => { throw e })
      }
    }
  }
}

/** A room the client holds: it is subscribed again after every reconnect until `unsubscribe()`, a final refusal or the server's removal. */
export class Subscription<T = unknown> extends Emitter<SubscriptionEvents<T>> {
  readonly room: string
  /** `subscribing` until the server confirmed, `subscribed`, then `unsubscribed` once it ended (for good). */
  state: 'subscribing' | 'subscribed' | 'unsubscribed' = 'subscribing'
  /** @internal */
  _c: NexusClient<unknown, unknown>
  /** @internal */
  _o: SubscribeOptions
  /** @internal temporary refusals in a row */
  _a = 0
  /** @internal the retry after a temporary refusal */
  _t?: Timer
  /** @internal presence: the members by key (undefined while only counts are known) */
  _m?: Map<string, PresenceMember>
  /** @internal presence: the version of the last frame applied */
  _v = 0
  /** @internal presence: the last count */
  _n?: PresenceCount
  /** @internal presence: a snapshot was asked after a gap and has not come yet */
  _g?: boolean

  /** Made by `client.subscribe()`. */
  constructor (client: NexusClient<unknown, unknown>, room: string, options: SubscribeOptions) {
    super()
    this._c = client
    this.room = room
    this._o = options
  }

  /** Leaves the room; the subscription is not renewed after reconnects. */
  unsubscribe (): void {
    this._c._unsub(this as Subscription<unknown>)
  }
}

export class NexusClient<Incoming = unknown, Outgoing = unknown> extends Emitter<ClientEvents<Incoming>> {
  state: ClientState = 'connecting'
  /** The connection id the server gave (its `ctx.id`), once connected. */
  id?: string
  private _url: URL
  private _WS: WebSocketClass
  private _params: ClientOptions['params']
  private _re: boolean
  private _min: number
  private _max: number
  private _rt: number
  private _bm: number
  private _ws?: Socket
  /** the last id of a request, subscribe or unsubscribe */
  private _n = 0
  /** failed attempts since the last stable connection */
  private _a = 0
  private _t?: Timer
  /** when the current connection said hello (0: not connected) */
  private _up = 0
  private _buf: Array<{ f: Frame, r?: Pending, d?: unknown }> = []
  private _req = new Map<number, Pending>()
  private _subs = new Map<string, Subscription<unknown>>()
  /** subscribes in flight on this connection, by id */
  private _sid = new Map<number, Subscription<unknown>>()
  /** the last position [offset, epoch] of each room of history held, presented on reconnect */
  private _pos = new Map<string, [number, string]>()

  constructor (url: string, options: ClientOptions = {}) {
    super()
    const g: { WebSocket?: WebSocketClass, location?: { href: string } } = globalThis
    const WS = options.WebSocket ?? g.WebSocket
    if (!WS) throw new TypeError('No WebSocket class: pass one, e.g. new NexusClient(url, { WebSocket }) with ws\'s')
    this._WS = WS
    // Relative URLs resolve against the page; http(s) becomes ws(s). A bad URL throws here.
    this._url = new URL(url, g.location?.href)
    this._url.protocol = this._url.protocol.replace('http', 'ws')
    this._params = options.params
    const re = options.reconnect
    this._re = re !== false
    // Refused subscribes are retried with these delays even without reconnect.
    this._min = (re || {}).minDelay ?? 500
    this._max = (re || {}).maxDelay ?? 20000
    this._rt = options.requestTimeout ?? 10000
    this._bm = options.buffer?.maxMessages ?? 100
    this._connect()
  }

  /** Sends a message (`onMessage` on the server): binary data as a binary frame, anything else as JSON. Buffered while not connected. */
  send (data: Outgoing): void {
    this._out(frame('m', {}, data, true), undefined, data)
  }

  /** Sends a request; resolves with what the route's `onMessage` returned, rejects with an error that has a `code`. */
  request<R = unknown>(data: Outgoing, options: RequestOptions = {}): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      const i = ++this._n
      const r: Pending = { i, ok: resolve, ko: reject }
      const f = frame('q', { i }, data, true)
      const ms = options.timeout ?? this._rt
      this._req.set(i, r)
      // Beyond 2^31 - 1 ms setTimeout fires at once: such a timeout means "for ever".
      if (ms > 0 && ms < 2 ** 31) {
        r.t = setTimeout(() => this._fail(r, error('TIMEOUT', `No answer within ${ms} ms`)), ms)
      }
      this._out(f, r)
    })
  }

  /** Subscribes to a room; queued until connected, renewed after every reconnect. */
  subscribe<T = Incoming>(room: string, options: SubscribeOptions = {}): Subscription<T> {
    if (this.state === 'closed') throw error('CLOSED', 'The client is closed')
    if (this._subs.has(room)) throw error('ALREADY_SUBSCRIBED', `Already subscribed to ${room}`)
    const sub = new Subscription<unknown>(this as NexusClient<unknown, unknown>, room, options)
    this._subs.set(room, sub)
    this._sub(sub)
    return sub as Subscription<T>
  }

  /** Closes the connection for good: no reconnect; pending requests reject with `CLOSED`. */
  close (): void {
    const ws = this._ws
    this._end()
    ws?.close(1000)
  }

  /** Opens a connection attempt (params first, which may be async). */
  private _connect (): void {
    this._set('connecting')
    const p = this._params
    new Promise<Params | undefined>((resolve) => resolve(typeof p === 'function' ? p() : p)).then((params) => {
      if (this.state !== 'connecting') return // closed meanwhile
      const url = new URL(this._url)
      for (const key in params) {
        const value = params[key]
        if (value != null) url.searchParams.set(key, String(value))
      }
      const pos = this._pos
      const ws = this._ws = new this._WS(url.href, pos.size ? [PROTOCOL, RESUME] : PROTOCOL) as Socket
      ws.binaryType = 'arraybuffer'
      // ws throws on an 'error' without a listener; a close always follows it.
      ws.onerror = () => {}
      ws.onopen = () => {
        // A server (or an app's handleProtocols) that did not pick nexus.v1
        // would take our frames for raw data: stop instead of looping.
        if (ws.protocol !== PROTOCOL && this._ws === ws) {
          this._ws = undefined
          ws.close(1000)
          this._end(error('UNSUPPORTED_PROTOCOL', `The server does not speak ${PROTOCOL}`))
        } else if (pos.size) {
          // The positions go first, before the hello and anything queued: the
          // server waits for them to join rooms again where the client left off.
          ws.send(frame('r', { p: Object.fromEntries(pos) }))
        }
      }
      ws.onmessage = (event) => { if (this._ws === ws) this._frame(event.data) }
      ws.onclose = (event) => { if (this._ws === ws) this._closed(event.code, event.reason) }
    }).catch((e: unknown) => {
      // params threw, or the WebSocket constructor did: a failed attempt.
      if (this.state !== 'connecting') return
      const message = e instanceof Error ? e.message : String(e)
      this._emit('error', error('CONNECT_FAILED', message, { cause: e }))
      this._closed(1006, message)
    })
  }

  /** One frame from the server. */
  private _frame (data: string | ArrayBuffer): void {
    let kind: string
    let h: Header
    let payload: string | Uint8Array
    try {
      let end: number
      let head: string
      if (typeof data === 'string') {
        end = data.indexOf('\n')
        kind = data[0]
        head = data.slice(1, end)
        payload = data.slice(end + 1)
      } else {
        const bytes = new Uint8Array(data)
        end = bytes.indexOf(10)
        kind = String.fromCharCode(bytes[0])
        head = decoder.decode(bytes.subarray(1, end))
        payload = bytes.subarray(end + 1)
      }
      h = JSON.parse(head)
      if (end < 1 || typeof h !== 'object' || !h) throw Error()
    } catch {
      this._emit('error', error('INVALID_FRAME', `The server sent a frame that is not ${PROTOCOL}`))
      return
    }
    const i = h.i ?? 0
    const sub = this._sid.get(i)
    const req = this._req.get(i)
    switch (kind) {
      case 'h': {
        this.id = h.id
        this._up = Date.now()
        this.state = 'connected'
        // Rooms first, then what was sent offline, oldest first; and all of
        // it before the `state` event, so that what a handler sends on
        // `connected` goes after them.
        for (const s of this._subs.values()) this._sub(s)
        const buf = this._buf
        this._buf = []
        for (const item of buf) {
          if (item.r) item.r.b = false
          this._ws?.send(item.f)
        }
        this._emit('state', 'connected')
        break
      }
      case 'm': {
        const r = h.r as string
        const p = this._pos.get(r)
        // A message of history advances the room's position (held, or being
        // subscribed: not one left with unsubscribe() while this was in flight);
        // one at or before it (same epoch) was already received.
        if (h.e && (p || this._subs.has(r))) {
          if (p?.[1] === h.e && p[0] >= (h.o as number)) break
          this._pos.set(r, [h.o as number, h.e])
        }
        const value = typeof payload === 'string' ? parse(payload) : payload
        const info: MessageInfo = {}
        if (h.r !== undefined) info.room = h.r
        if (h.o !== undefined) info.offset = h.o
        this._subs.get(r)?._emit('message', value, { offset: h.o })
        this._emit('message', value as Incoming, info)
        break
      }
      case 'a': {
        // The JSON of what onMessage returned; empty for undefined.
        const text = typeof payload === 'string' ? payload : decoder.decode(payload)
        if (req) this._settle(req).ok((text ? parse(text) : undefined) as never)
        break
      }
      case 's':
        if (sub) {
          this._sid.delete(i)
          if (this._subs.get(sub.room) === sub) {
            sub._a = 0
            sub.state = 'subscribed'
            this._join(h)
            // Rooms without history recover trivially; a history room's answer says otherwise.
            sub._emit('subscribed', { recovered: h.recovered ?? true, missed: h.missed ?? 0, reason: h.reason })
          }
        }
        break
      case 'j':
        this._join(h)
        break
      case 'p':
      case 'd': {
        const s = this._subs.get(h.r as string)
        // Only to a subscription in place that asked: frames of a previous
        // subscription to the room (left, or from before a reconnect) may
        // still arrive before the answer to this one, and never after it.
        if (s?._o.presence && s.state === 'subscribed') this._pres(s, kind, h as unknown as PresenceHeader)
        break
      }
      case 'u': {
        // With `i`: the answer to unsubscribe(), which already forgot the room.
        if (h.i) break
        // Without: server code removed us from the room; do not come back.
        const r = h.r as string
        const s = this._subs.get(r)
        this._pos.delete(r)
        if (s) {
          this._drop(s)
          s._emit('unsubscribed')
        }
        break
      }
      case 'e': {
        const e = error(h.c, h.m, { details: h.x })
        if (req) {
          this._fail(req, e)
        } else if (sub) {
          this._sid.delete(i)
          if (this._subs.get(sub.room) !== sub) break
          const temporary = !!h.t
          Object.assign(e, { temporary, room: sub.room })
          if (temporary) {
            sub._t = setTimeout(() => this._sub(sub), this._delay(++sub._a))
          } else {
            this._drop(sub)
          }
          sub._emit('error', e as NexusError & { temporary: boolean })
        } else if (!h.i) {
          this._emit('error', e)
        }
      }
    }
  }

  /** The answer to a subscribe, or the server joined a room: its position, and how a resume went. */
  private _join (h: Header): void {
    const room = h.r as string
    // Recovered: the presented position stands, and the missed messages that
    // follow advance it. Otherwise the room goes on from the given one.
    if (h.e && !(h.recovered && this._pos.has(room))) this._pos.set(room, [h.o as number, h.e])
    if (h.recovered !== undefined) this._emit('resume', { room, recovered: h.recovered, missed: h.missed ?? 0, reason: h.reason })
  }

  /** A presence frame of a subscription that asked for it: the list (or counts) updated, then `presence`. */
  private _pres (s: Subscription<unknown>, kind: string, h: PresenceHeader): void {
    let m = s._m
    if (kind === 'p') {
      // A snapshot replaces everything, a gap included; a counts frame leaves no list.
      s._g = false
      m = s._m = h.m && new Map()
      s._n = { members: h.n, connections: h.c }
    } else if ((h.v !== s._v + 1 || !m) && !s._g) {
      // A change was missed (or there is no list to change): changes carry
      // absolute values, so this one still applies, and one snapshot is asked.
      s._g = true
      this._ws?.send(frame('p', { r: s.room }))
    }
    s._v = h.v
    if (m) {
      for (const [key, connections, meta] of h.m ?? h.u ?? []) m.set(key, { key, meta, connections })
      for (const key of h.l ?? []) m.delete(key)
      let c = 0
      for (const x of m.values()) c += x.connections
      s._n = { members: m.size, connections: c }
    } else if (kind === 'd') {
      // No list to change: nothing to tell until the snapshot comes.
      return
    }
    s._emit('presence', m ? [...m.values()] : null, s._n as PresenceCount)
  }

  /** The connection ended: fail what was in flight, then reconnect unless the close is final. */
  private _closed (code: number, reason: string): void {
    this._ws = undefined
    for (const r of this._req.values()) {
      // Sent and unanswered: it may or may not have run, so it is never sent again.
      if (!r.b) this._fail(r, error('DISCONNECTED', 'The connection dropped before the answer'))
    }
    this._sid.clear()
    for (const s of this._subs.values()) {
      clearTimeout(s._t)
      if (s.state === 'subscribed') s.state = 'subscribing'
    }
    // The server going away on purpose (1001: a drain, a rolling restart; 1012: restarting) is not a
    // failed attempt, however soon it came: a client moved by each step of a rolling restart comes back quickly.
    if (code === 1001 || code === 1012 || (this._up && Date.now() - this._up >= Math.min(STABLE, this._max))) this._a = 0
    this._up = 0
    const info = { code, reason }
    if (isFinal(code)) {
      this._end(error('REFUSED', reason || `Connection refused (${code})`, { closeCode: code, reason }), info)
    } else if (!this._re) {
      this._end(undefined, info)
    } else {
      this._set('disconnected', info)
      this._t = setTimeout(() => this._connect(), this._delay(++this._a))
    }
  }

  /** Full jitter with a floor: a random delay in [min, min × 2^attempt], capped at max. */
  private _delay (attempt: number): number {
    const min = this._min
    const cap = Math.min(this._max, min * 2 ** attempt)
    return Math.min(this._max, min + Math.random() * Math.max(0, cap - min))
  }

  /** The final state: every timer cleared, every pending request rejected, the buffer emptied. */
  private _end (cause?: NexusError, info?: CloseInfo): void {
    if (this.state === 'closed') return
    this.state = 'closed'
    this._ws = undefined
    clearTimeout(this._t)
    for (const s of this._subs.values()) this._drop(s)
    // Buffered messages go with the buffer; requests, sent or not, reject.
    for (const r of this._req.values()) this._fail(r, error('CLOSED', 'The client is closed'))
    this._buf = []
    if (cause) this._emit('error', cause)
    this._emit('state', 'closed', info)
  }

  /** Sends a frame now if the connection is open, else buffers it (bounded). */
  private _out (f: Frame, r?: Pending, data?: unknown): void {
    const ws = this._ws
    if (this.state === 'closed') {
      const e = error('CLOSED', 'The client is closed', { data })
      if (r) this._fail(r, e)
      else this._emit('error', e)
    } else if (this.state === 'connected' && ws?.readyState === OPEN) {
      ws.send(f)
    } else {
      if (r) r.b = true
      this._buf.push({ f, r, d: data })
      if (this._buf.length > this._bm) {
        const old = this._buf.shift() as { r?: Pending, d?: unknown }
        const e = error('BUFFER_OVERFLOW', `More than ${this._bm} messages waiting: the oldest was dropped`, { data: old.d })
        if (old.r) this._fail(old.r, e)
        else this._emit('error', e)
      }
    }
  }

  /** Forgets a request: its timer, its place in the buffer. */
  private _settle (r: Pending): Pending {
    clearTimeout(r.t)
    this._req.delete(r.i)
    if (r.b) this._buf = this._buf.filter((item) => item.r !== r)
    return r
  }

  private _fail (r: Pending, e: NexusError): void {
    this._settle(r).ko(e)
  }

  private _set (state: ClientState, info?: CloseInfo): void {
    if (this.state !== state) {
      this.state = state
      this._emit('state', state, info)
    }
  }

  /** @internal Sends the subscribe of `sub` if connected (else it goes at the next hello). */
  _sub (sub: Subscription<unknown>): void {
    const ws = this._ws
    if (this.state !== 'connected' || !ws) return
    const i = ++this._n
    this._sid.set(i, sub)
    // `w`: presence, asked again on every (re)subscribe.
    ws.send(frame('s', { i, r: sub.room, p: sub._o.params, w: sub._o.presence ? 1 : undefined }))
  }

  /** @internal */
  _unsub (sub: Subscription<unknown>): void {
    if (this._subs.get(sub.room) !== sub) return
    this._drop(sub)
    if (this.state === 'connected') this._ws?.send(frame('u', { i: ++this._n, r: sub.room }))
  }

  /** Ends a subscription: never renewed, its position and members forgotten. */
  private _drop (sub: Subscription<unknown>): void {
    this._subs.delete(sub.room)
    this._pos.delete(sub.room)
    clearTimeout(sub._t)
    sub._m = sub._n = undefined
    sub.state = 'unsubscribed'
  }
}
