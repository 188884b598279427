import { connect as connectTcp, type Socket } from 'node:net'
import { randomBytes } from 'node:crypto'

/**
 * A hand-made WebSocket client over a plain TCP socket, for frames a real
 * client would never send: invalid UTF-8 in text frames, lying length
 * headers, unmasked or reserved frames, floods written in one go, and peers
 * that stop reading.
 */

export const Opcode = Object.freeze({
  CONTINUATION: 0x0,
  TEXT: 0x1,
  BINARY: 0x2,
  CLOSE: 0x8,
  PING: 0x9,
  PONG: 0xa
} as const)

export interface FrameOptions {
  /** the FIN bit; default true */
  fin?: boolean
  /** mask the payload, as a client must; default true */
  mask?: boolean
  /** the three RSV bits, 0–7; default 0 */
  rsv?: number
  /** the payload length written in the header, when it should lie about the payload */
  length?: number | bigint
}

/** Encodes one frame (7-, 16- or 64-bit length), masked with a random key unless told otherwise. */
export function encodeFrame (opcode: number, payload: Buffer | string = Buffer.alloc(0), options: FrameOptions = {}): Buffer {
  const data = typeof payload === 'string' ? Buffer.from(payload) : payload
  const { fin = true, mask = true, rsv = 0 } = options
  const length = BigInt(options.length ?? data.length)
  const maskBit = mask ? 0x80 : 0
  let header: Buffer
  if (length < 126n) {
    header = Buffer.alloc(2)
    header[1] = maskBit | Number(length)
  } else if (length < 65536n) {
    header = Buffer.alloc(4)
    header[1] = maskBit | 126
    header.writeUInt16BE(Number(length), 2)
  } else {
    header = Buffer.alloc(10)
    header[1] = maskBit | 127
    header.writeBigUInt64BE(length, 2)
  }
  header[0] = (fin ? 0x80 : 0) | ((rsv & 0x7) << 4) | (opcode & 0xf)
  if (!mask) return Buffer.concat([header, data])
  const key = randomBytes(4)
  const masked = Buffer.allocUnsafe(data.length)
  for (let i = 0; i < data.length; i++) masked[i] = data[i] ^ key[i & 3]
  return Buffer.concat([header, key, masked])
}

/** The payload of a close frame: a 2-byte code and a UTF-8 reason. */
export function closePayload (code: number, reason = ''): Buffer {
  const payload = Buffer.alloc(2 + Buffer.byteLength(reason))
  payload.writeUInt16BE(code, 0)
  payload.write(reason, 2)
  return payload
}

export interface Frame {
  fin: boolean
  opcode: number
  payload: Buffer
}

/** Parses the (unmasked) frames a server sends, from a stream of chunks. */
export class FrameParser {
  private pending: Buffer = Buffer.alloc(0)

  push (chunk: Buffer): Frame[] {
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk])
    const frames: Frame[] = []
    for (;;) {
      const buffer = this.pending
      if (buffer.length < 2) break
      let length = buffer[1] & 0x7f
      let offset = 2
      if (length === 126) {
        if (buffer.length < 4) break
        length = buffer.readUInt16BE(2)
        offset = 4
      } else if (length === 127) {
        if (buffer.length < 10) break
        length = Number(buffer.readBigUInt64BE(2))
        offset = 10
      }
      if ((buffer[1] & 0x80) !== 0) throw new Error('a server frame must not be masked')
      if (buffer.length < offset + length) break
      frames.push({ fin: (buffer[0] & 0x80) !== 0, opcode: buffer[0] & 0xf, payload: buffer.subarray(offset, offset + length) })
      this.pending = buffer.subarray(offset + length)
    }
    return frames
  }
}

export interface RawClientOptions {
  /** extra handshake headers */
  headers?: Record<string, string>
  /**
   * `false`: after the handshake the client never reads again (its socket is
   * paused, so the kernel buffers fill up and it answers no ping).
   * @default true
   */
  read?: boolean
  /** answer pings with pongs, as a client must; default true */
  answerPings?: boolean
}

/**
 * A raw client after a successful handshake. A reading client records every
 * frame, answers pings, and answers the server's close frame as RFC 6455 asks.
 */
export class RawClient {
  readonly socket: Socket
  readonly frames: Frame[] = []
  /** the code of the server's close frame, once it came */
  closeCode: number | undefined
  /** resolves when the TCP connection has closed */
  readonly ended: Promise<void>
  private readonly parser = new FrameParser()
  private closeSent = false
  private readonly answerPings: boolean

  private constructor (socket: Socket, rest: Buffer, read: boolean, answerPings: boolean) {
    this.socket = socket
    this.answerPings = answerPings
    // Not events.once, which rejects on 'error': a connection reset is an end too.
    this.ended = new Promise((resolve) => socket.once('close', () => resolve()))
    socket.on('error', () => {})
    if (!read) {
      socket.pause()
      return
    }
    socket.on('data', (chunk: Buffer) => this.onData(chunk))
    if (rest.length > 0) this.onData(rest)
  }

  /** Performs the handshake on `base` + `path`; rejects unless the answer is 101. */
  static async open (base: string, path: string, options: RawClientOptions = {}): Promise<RawClient> {
    const { hostname, port } = new URL(base)
    const socket = connectTcp(Number(port), hostname)
    socket.setNoDelay(true)
    const extra = Object.entries(options.headers ?? {}).map(([name, value]) => `${name}: ${value}\r\n`).join('')
    socket.write(`GET ${path} HTTP/1.1\r\nHost: ${hostname}:${port}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n` +
      `Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\n${extra}\r\n`)
    const { head, rest } = await new Promise<{ head: string, rest: Buffer }>((resolve, reject) => {
      let received = Buffer.alloc(0)
      const timer = setTimeout(() => fail(new Error('no handshake answer in time')), 5000)
      function fail (error: Error): void {
        clearTimeout(timer)
        socket.removeListener('data', onData)
        socket.destroy()
        reject(error)
      }
      function onData (chunk: Buffer): void {
        received = Buffer.concat([received, chunk])
        const end = received.indexOf('\r\n\r\n')
        if (end === -1) return
        clearTimeout(timer)
        socket.removeListener('data', onData)
        socket.removeListener('close', onClose)
        resolve({ head: received.subarray(0, end).toString(), rest: received.subarray(end + 4) })
      }
      function onClose (): void {
        fail(new Error(`connection closed during the handshake: ${received.toString().slice(0, 200)}`))
      }
      socket.on('data', onData)
      socket.on('close', onClose)
    })
    if (!/^HTTP\/1\.1 101 /.test(head)) {
      socket.destroy()
      throw new Error(`handshake refused: ${head.split('\r\n')[0]}`)
    }
    return new RawClient(socket, rest, options.read ?? true, options.answerPings ?? true)
  }

  /** Writes bytes as they are: one or more encoded frames, or garbage. */
  write (bytes: Buffer): void {
    this.socket.write(bytes)
  }

  /** Sends one masked frame. */
  send (opcode: number, payload?: Buffer | string, options?: FrameOptions): void {
    this.write(encodeFrame(opcode, payload, options))
  }

  /** Text and binary payloads received so far, text ones parsed as JSON when they can be. */
  messages (): unknown[] {
    const out: unknown[] = []
    for (const frame of this.frames) {
      if (frame.opcode === Opcode.BINARY) {
        out.push(frame.payload)
      } else if (frame.opcode === Opcode.TEXT) {
        const text = frame.payload.toString()
        try {
          out.push(JSON.parse(text))
        } catch {
          out.push(text)
        }
      }
    }
    return out
  }

  /** Resolves with the code of the server's close frame (undefined if the connection ended without one). */
  async closed (timeout = 5000): Promise<number | undefined> {
    let timer: NodeJS.Timeout | undefined
    await Promise.race([
      this.ended,
      new Promise((_resolve, reject) => { timer = setTimeout(() => reject(new Error('the server did not close the connection in time')), timeout) })
    ])
    clearTimeout(timer)
    return this.closeCode
  }

  destroy (): void {
    this.socket.destroy()
  }

  private onData (chunk: Buffer): void {
    for (const frame of this.parser.push(chunk)) {
      this.frames.push(frame)
      if (frame.opcode === Opcode.PING) {
        if (this.answerPings) this.send(Opcode.PONG, frame.payload)
      } else if (frame.opcode === Opcode.CLOSE) {
        this.closeCode = frame.payload.length >= 2 ? frame.payload.readUInt16BE(0) : 1005
        if (!this.closeSent) {
          this.closeSent = true
          this.socket.end(encodeFrame(Opcode.CLOSE, frame.payload.subarray(0, 2)))
        }
      }
    }
  }
}
