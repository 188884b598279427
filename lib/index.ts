import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import type nexusRealtimeTypes from '../types/index'
import type { NexusRealtimeOptions } from '../types/index'
import { MemoryAdapter } from './adapters/memory'
import { RedisAdapter, redisAdapter } from './adapters/redis'
import { CloseCode, ErrorFrameCode } from './constants'
import { errors } from './errors'
import { plugin } from './plugin'

/** The public entry: `require()`, `import x from` and `import { nexusRealtime } from` all give the plugin. */
async function nexusRealtime (fastify: FastifyInstance, options: NexusRealtimeOptions): Promise<void> {
  await plugin(fastify, options)
}
nexusRealtime.default = nexusRealtime
nexusRealtime.nexusRealtime = nexusRealtime
nexusRealtime.MemoryAdapter = MemoryAdapter
nexusRealtime.RedisAdapter = RedisAdapter
nexusRealtime.redisAdapter = redisAdapter
nexusRealtime.errors = errors
nexusRealtime.CloseCode = CloseCode
nexusRealtime.ErrorFrameCode = ErrorFrameCode
fp(nexusRealtime, { fastify: '5.x', name: 'fastify-nexus-realtime' })

// The entry must be what types/index.d.ts declares: checked, not cast.
nexusRealtime satisfies typeof nexusRealtimeTypes

export = nexusRealtime

// Node's ESM loader finds the named exports of a CommonJS module by reading
// `module.exports.name =` statements; tsc emits `module.exports = nexusRealtime`
// after them, so the values come from the function above.
module.exports.default = nexusRealtime
module.exports.nexusRealtime = nexusRealtime
module.exports.MemoryAdapter = MemoryAdapter
module.exports.RedisAdapter = RedisAdapter
module.exports.redisAdapter = redisAdapter
module.exports.errors = errors
module.exports.CloseCode = CloseCode
module.exports.ErrorFrameCode = ErrorFrameCode
