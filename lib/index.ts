import fp from 'fastify-plugin'
import type nexusRealtimeTypes from '../types/index'
import { MemoryAdapter } from './adapters/memory'
import { RedisAdapter, redisAdapter } from './adapters/redis'
import { CloseCode, ErrorFrameCode } from './constants'
import { errors } from './errors'
import { plugin } from './plugin'

/** The public entry: `require()`, `import x from` and `import { nexusRealtime } from` all give the plugin. */
const nexusRealtime = Object.assign(fp(plugin, {
  fastify: '5.x',
  name: 'fastify-nexus-realtime'
}), { MemoryAdapter, RedisAdapter, redisAdapter, errors, CloseCode, ErrorFrameCode }) as unknown as typeof nexusRealtimeTypes
Object.assign(nexusRealtime, { default: nexusRealtime, nexusRealtime })

export = nexusRealtime

// Node's ESM loader finds the named exports of a CommonJS module by reading
// `module.exports.name =` statements; tsc emits `module.exports = nexusRealtime`
// after them, so the values come from the object above.
module.exports.default = nexusRealtime
module.exports.nexusRealtime = nexusRealtime
module.exports.MemoryAdapter = MemoryAdapter
module.exports.RedisAdapter = RedisAdapter
module.exports.redisAdapter = redisAdapter
module.exports.errors = errors
module.exports.CloseCode = CloseCode
module.exports.ErrorFrameCode = ErrorFrameCode
