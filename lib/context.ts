import type { FastifyBaseLogger, FastifyRequest } from 'fastify'
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http'
import type { WebSocketContext } from '../types/index'
import { randomUUID } from 'node:crypto'

/**
 * The context of one connection, built once per handshake (before `auth`
 * when the route has one) and handed to every handler of that connection.
 *
 * It holds the request and `user`; everything else is read from the request
 * or made on first use, so that an idle connection costs as little memory as
 * it can (most handlers never read most fields).
 */
export class Context implements WebSocketContext {
  readonly request: FastifyRequest
  user: any = undefined
  private lazyId: string | undefined = undefined
  private lazyMetadata: Record<string, any> | undefined = undefined
  private lazyLog: FastifyBaseLogger | undefined = undefined

  constructor (request: FastifyRequest) {
    this.request = request
  }

  get id (): string {
    this.lazyId ??= randomUUID()
    return this.lazyId
  }

  /** The URL as requested (before any rewriteUrl), without its query string. */
  get path (): string {
    const url = this.request.originalUrl
    const queryStart = url.indexOf('?')
    return queryStart === -1 ? url : url.slice(0, queryStart)
  }

  get query (): Record<string, string | string[]> {
    return this.request.query as Record<string, string | string[]>
  }

  get headers (): IncomingHttpHeaders {
    return this.request.headers
  }

  get params (): Record<string, string> {
    return this.request.params as Record<string, string>
  }

  get raw (): { readonly req: IncomingMessage } {
    return { req: this.request.raw }
  }

  get metadata (): Record<string, any> {
    this.lazyMetadata ??= {}
    return this.lazyMetadata
  }

  set metadata (value: Record<string, any>) {
    this.lazyMetadata = value
  }

  /** A child of the request's logger carrying the connection id. */
  get log (): FastifyBaseLogger {
    this.lazyLog ??= this.request.log.child({ connectionId: this.id })
    return this.lazyLog
  }
}
