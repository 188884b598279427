import { once } from 'node:events'
import WebSocket from 'ws'

// A nexus.v1 client written by hand from PROTOCOL.md, on a real ws socket:
// it sends frames as bytes and reads every frame it gets.

/** A frame as it arrived: kind, header, and the payload as text (text frames) or bytes (binary). */
export interface Frame {
  kind: string
  header: Record<string, any>
  payload: string | Buffer
  binary: boolean
}

export function decode (data: Buffer, binary: boolean): Frame {
  const end = data.indexOf(0x0a)
  if (end < 1) throw new Error(`not a nexus.v1 frame: ${data.toString().slice(0, 80)}`)
  const payload = data.subarray(end + 1)
  return {
    kind: String.fromCharCode(data[0]),
    header: JSON.parse(data.toString('utf8', 1, end)),
    payload: binary ? payload : payload.toString(),
    binary
  }
}

export class ProtocolClient {
  readonly ws: WebSocket
  readonly frames: Frame[] = []
  private lastId = 0
  private waiters: Array<() => void> = []

  constructor (url: string, protocols: string | string[] = 'nexus.v1', options?: WebSocket.ClientOptions) {
    this.ws = new WebSocket(url, protocols, options)
    this.ws.on('message', (data: Buffer, binary) => {
      this.frames.push(decode(data, binary))
      for (const waiter of this.waiters) waiter()
    })
    this.ws.on('error', () => {})
  }

  async opened (): Promise<void> {
    if (this.ws.readyState !== WebSocket.OPEN) await once(this.ws, 'open')
  }

  /** Sends a raw frame: kind, header (object or JSON text), payload. */
  frame (kind: string, header: object | string, payload: string | Buffer = '', binary = Buffer.isBuffer(payload)): void {
    const head = Buffer.from(`${kind}${typeof header === 'string' ? header : JSON.stringify(header)}\n`)
    this.ws.send(Buffer.concat([head, Buffer.isBuffer(payload) ? payload : Buffer.from(payload)]), { binary })
  }

  /** An app message (JSON-encoded unless it is a string or bytes). */
  message (data: unknown): void {
    this.frame('m', {}, typeof data === 'string' || Buffer.isBuffer(data) ? data : JSON.stringify(data))
  }

  /** Sends a request; resolves with its answer frame (`a` or `e`). */
  async request (data: unknown, timeout = 10000): Promise<Frame> {
    const id = ++this.lastId
    this.frame('q', { i: id }, typeof data === 'string' || Buffer.isBuffer(data) ? data : JSON.stringify(data))
    return await this.answerTo(id, timeout)
  }

  async subscribe (room: unknown, params?: unknown, timeout = 10000): Promise<Frame> {
    const id = ++this.lastId
    this.frame('s', params === undefined ? { i: id, r: room } : { i: id, r: room, p: params })
    return await this.answerTo(id, timeout)
  }

  async unsubscribe (room: unknown, timeout = 10000): Promise<Frame> {
    const id = ++this.lastId
    this.frame('u', { i: id, r: room })
    return await this.answerTo(id, timeout)
  }

  async answerTo (id: number, timeout = 10000): Promise<Frame> {
    return await this.next((frame) => frame.header.i === id && frame.kind !== 'm', timeout)
  }

  /** Resolves with the first frame (already arrived or to come) that matches. */
  async next (match: (frame: Frame) => boolean, timeout = 10000): Promise<Frame> {
    const found = this.frames.find(match)
    if (found !== undefined) return found
    return await new Promise((resolve, reject) => {
      const check = (): void => {
        const frame = this.frames.find(match)
        if (frame === undefined) return
        done()
        resolve(frame)
      }
      const timer = setTimeout(() => {
        done()
        reject(new Error(`no matching frame within ${timeout} ms; got ${JSON.stringify(this.frames.map((f) => [f.kind, f.header])).slice(0, 600)}`))
      }, timeout)
      const done = (): void => {
        clearTimeout(timer)
        this.waiters = this.waiters.filter((waiter) => waiter !== check)
      }
      this.waiters.push(check)
    })
  }

  /** The app messages (`m` frames) received so far, JSON-parsed when they parse. */
  messages (): Array<{ room: string | undefined, data: unknown }> {
    return this.frames.filter((frame) => frame.kind === 'm').map((frame) => ({ room: frame.header.r, data: parse(frame.payload) }))
  }

  async closed (): Promise<{ code: number, reason: string }> {
    if (this.ws.readyState === WebSocket.CLOSED) throw new Error('already closed')
    const [code, reason] = await once(this.ws, 'close')
    return { code, reason: reason.toString() }
  }

  close (): void {
    this.ws.close()
  }
}

function parse (payload: string | Buffer): unknown {
  if (Buffer.isBuffer(payload)) return payload
  try {
    return JSON.parse(payload)
  } catch {
    return payload
  }
}

/** Opens a nexus.v1 client and waits for its hello frame. */
export async function connectProtocol (url: string, protocols?: string | string[]): Promise<ProtocolClient> {
  const client = new ProtocolClient(url, protocols)
  await client.opened()
  await client.next((frame) => frame.kind === 'h')
  return client
}

/** The last position a client got in each history room: from `m` frames with `o`, and `s`/`j` frames. */
export function positionsOf (frames: readonly Frame[]): Record<string, [number, string]> {
  const positions: Record<string, [number, string]> = {}
  for (const frame of frames) {
    const { r, o, e } = frame.header
    if (typeof r === 'string' && typeof o === 'number' && (frame.kind === 'm' || frame.kind === 's' || frame.kind === 'j')) positions[r] = [o, e]
  }
  return positions
}

/** Opens a nexus.v1 client that presents positions (`nexus.resume`, then an `r` frame first), and waits for its hello. */
export async function connectResuming (url: string, positions: Record<string, unknown>): Promise<ProtocolClient> {
  const client = new ProtocolClient(url, ['nexus.v1', 'nexus.resume'])
  await client.opened()
  client.frame('r', { p: positions })
  await client.next((frame) => frame.kind === 'h')
  return client
}

/** The `m` frames of a room: [offset, data] in arrival order. */
export function roomMessages (client: ProtocolClient, room: string): Array<[number | undefined, unknown]> {
  return client.frames.filter((frame) => frame.kind === 'm' && frame.header.r === room).map((frame) => [frame.header.o, parse(frame.payload)])
}
