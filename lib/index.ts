import fp from 'fastify-plugin'
import { MemoryAdapter } from './adapters/memory'
import { CloseCode, ErrorFrameCode } from './constants'
import { errors } from './errors'
import { plugin } from './plugin'

/** The public entry: `require()`, `import x from` and `import { nexusRealtime } from` all give the plugin. */
const nexusRealtime = fp(plugin, {
  fastify: '5.x',
  name: 'fastify-nexus-realtime'
})

module.exports = nexusRealtime
module.exports.default = nexusRealtime
module.exports.nexusRealtime = nexusRealtime
module.exports.MemoryAdapter = MemoryAdapter
module.exports.errors = errors
module.exports.CloseCode = CloseCode
module.exports.ErrorFrameCode = ErrorFrameCode
