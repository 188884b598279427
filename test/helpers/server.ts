import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import { createServer, type AddressInfo } from 'node:net'
import { once } from 'node:events'
import WebSocket from 'ws'
import nexusRealtime from '../../lib/index'
import type { NexusRealtimeOptions } from '../../types/index'

export interface TestContext {
  teardown (fn: () => unknown): void
}

/** A Fastify app with the plugin registered, closed when the test ends. */
export async function build (t: TestContext, options?: NexusRealtimeOptions, fastifyOptions?: FastifyServerOptions): Promise<FastifyInstance> {
  const app = Fastify({ logger: false, ...fastifyOptions })
  await app.register(nexusRealtime, options ?? {})
  t.teardown(() => app.close())
  return app
}

/** Listens on 127.0.0.1, port 0, and returns the ws:// base URL. */
export async function listen (app: FastifyInstance): Promise<string> {
  await app.listen({ host: '127.0.0.1', port: 0 })
  const { port } = app.server.address() as AddressInfo
  return `ws://127.0.0.1:${port}`
}

/** A client that records every message it receives, parsed as JSON when it can be. */
export class Client {
  readonly ws: WebSocket
  readonly messages: any[] = []
  private waiters: Array<{ count: number, resolve: () => void }> = []

  constructor (url: string, options?: WebSocket.ClientOptions) {
    this.ws = new WebSocket(url, options)
    this.ws.on('message', (data, isBinary) => {
      if (isBinary) {
        this.messages.push(data)
      } else {
        const text = data.toString()
        try {
          this.messages.push(JSON.parse(text))
        } catch {
          this.messages.push(text)
        }
      }
      this.waiters = this.waiters.filter((waiter) => {
        if (this.messages.length < waiter.count) return true
        waiter.resolve()
        return false
      })
    })
    this.ws.on('error', () => {})
  }

  opened (): Promise<unknown> {
    return this.ws.readyState === WebSocket.OPEN ? Promise.resolve() : once(this.ws, 'open')
  }

  send (data: unknown): void {
    this.ws.send(typeof data === 'string' || Buffer.isBuffer(data) ? data : JSON.stringify(data))
  }

  /** Resolves once `count` messages in all have arrived. */
  waitFor (count: number, timeout = 5000): Promise<any[]> {
    if (this.messages.length >= count) return Promise.resolve(this.messages)
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out waiting for ${count} messages, got ${this.messages.length}: ${JSON.stringify(this.messages).slice(0, 500)}`)), timeout)
      this.waiters.push({
        count,
        resolve: () => {
          clearTimeout(timer)
          resolve(this.messages)
        }
      })
    })
  }

  /** Resolves with the close code and reason. */
  async closed (): Promise<{ code: number, reason: string }> {
    if (this.ws.readyState === WebSocket.CLOSED) throw new Error('already closed')
    const [code, reason] = await once(this.ws, 'close')
    return { code, reason: reason.toString() }
  }

  close (code?: number): void {
    this.ws.close(code)
  }
}

/** Opens a client and waits until it is open. */
export async function connect (url: string, options?: WebSocket.ClientOptions): Promise<Client> {
  const client = new Client(url, options)
  await client.opened()
  return client
}

/** The error a handshake failed with (e.g. "Unexpected server response: 401"). */
export async function rejected (url: string): Promise<Error> {
  const ws = new WebSocket(url)
  const [error] = await once(ws, 'error')
  return error
}

/**
 * Sends a WebSocket handshake over a plain TCP socket and returns the raw
 * HTTP answer, to check status lines and bodies a ws client does not expose.
 */
export async function rawHandshake (base: string, path: string, headers: Record<string, string> = {}): Promise<{ status: number, head: string, body: string }> {
  const { hostname, port } = new URL(base)
  const { connect: connectTcp } = await import('node:net')
  const socket = connectTcp(Number(port), hostname)
  const extra = Object.entries(headers).map(([name, value]) => `${name}: ${value}\r\n`).join('')
  socket.write(`GET ${path} HTTP/1.1\r\nHost: ${hostname}:${port}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n` +
    `Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n${extra}\r\n`)
  const chunks: Buffer[] = []
  socket.on('data', (chunk) => chunks.push(chunk))
  await once(socket, 'close')
  const text = Buffer.concat(chunks).toString()
  const split = text.indexOf('\r\n\r\n')
  const head = split === -1 ? text : text.slice(0, split)
  return { status: Number(/^HTTP\/1\.1 (\d+)/.exec(head)?.[1] ?? 0), head, body: split === -1 ? '' : text.slice(split + 4) }
}

/** A port nothing listens on on 127.0.0.1 (it was free a moment ago). */
export async function freePort (): Promise<number> {
  const server = createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as AddressInfo
  server.close()
  await once(server, 'close')
  return port
}
