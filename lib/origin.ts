import type { FastifyRequest } from 'fastify'
import type { OriginPredicate } from '../types/index'
import { errors } from './errors'

/**
 * The route hook that refuses WebSocket upgrades from browser origins that are
 * not allowed (403), before auth runs. A request without `Origin` is not from
 * a browser page and is let through: the check protects cookie-authenticated
 * sockets from other sites' pages (cross-site WebSocket hijacking).
 */
export function createOriginCheck (allowed: ReadonlyArray<string | RegExp> | OriginPredicate) {
  const isAllowed: OriginPredicate = typeof allowed === 'function'
    ? allowed
    : (origin) => {
        const lower = origin.toLowerCase()
        return allowed.some((entry) => typeof entry === 'string' ? entry === lower : entry.test(origin))
      }
  return async function checkOrigin (request: FastifyRequest): Promise<void> {
    const origin = request.headers.origin
    if (!request.ws || origin === undefined) return
    if (!(await isAllowed(origin, request))) throw new errors.FST_NEXUS_ORIGIN_NOT_ALLOWED(JSON.stringify(origin))
  }
}
