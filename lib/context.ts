import type { FastifyBaseLogger, FastifyRequest } from 'fastify'
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http'
import type { WebSocketContext } from '../types/index'
import { randomUUID } from 'node:crypto'

/**
 * The context of one connection, built once per handshake (before `auth`
 * when the route has one) and handed to every handler of that connection.
 */
export class Context implements WebSocketContext {
  readonly id: string = randomUUID()
  readonly path: string
  readonly query: Record<string, string | string[]>
  readonly headers: IncomingHttpHeaders
  readonly params: Record<string, string>
  readonly raw: { readonly req: IncomingMessage }
  readonly request: FastifyRequest
  user: any = undefined
  metadata: Record<string, any> = {}
  private childLog: FastifyBaseLogger | undefined

  constructor (request: FastifyRequest) {
    // The URL as requested, before any rewriteUrl.
    const url = request.originalUrl
    const queryStart = url.indexOf('?')
    this.path = queryStart === -1 ? url : url.slice(0, queryStart)
    this.query = request.query as Record<string, string | string[]>
    this.headers = request.headers
    this.params = request.params as Record<string, string>
    this.raw = { req: request.raw }
    this.request = request
  }

  /** Made on first use: most connections never log, and a child logger per idle socket costs memory. */
  get log (): FastifyBaseLogger {
    this.childLog ??= this.request.log.child({ connectionId: this.id })
    return this.childLog
  }
}
