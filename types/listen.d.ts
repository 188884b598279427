// Opt-in types for the plugin's `listen: 'positional'` option. Fastify 5's
// `listen` takes an options object only; with the option, the plugin makes
// the `listen` of the instance it is registered on also take the Nexus
// document's positional forms. Importing this module once
// (`import type {} from 'fastify-nexus-realtime/listen'`) declares them.
// TypeScript cannot scope a declaration to one instance: once imported, every
// FastifyInstance of the program type-checks them, while only instances that
// registered the plugin with `listen: 'positional'` accept them at run time.
import type {
  FastifyBaseLogger,
  FastifyTypeProvider,
  FastifyTypeProviderDefault,
  RawReplyDefaultExpression,
  RawRequestDefaultExpression,
  RawServerBase,
  RawServerDefault
} from 'fastify'

declare module 'fastify' {
  // A merged declaration must repeat FastifyInstance's type parameters, used or not.
  /* eslint-disable @typescript-eslint/no-unused-vars */
  interface FastifyInstance<
    RawServer extends RawServerBase = RawServerDefault,
    RawRequest extends RawRequestDefaultExpression<RawServer> = RawRequestDefaultExpression<RawServer>,
    RawReply extends RawReplyDefaultExpression<RawServer> = RawReplyDefaultExpression<RawServer>,
    Logger extends FastifyBaseLogger = FastifyBaseLogger,
    TypeProvider extends FastifyTypeProvider = FastifyTypeProviderDefault
  > {
    /* eslint-enable @typescript-eslint/no-unused-vars */
    /** `listen(port, callback)`: with the plugin's `listen: 'positional'` option only. */
    listen(port: number | string, callback: (err: Error | null, address: string) => void): void
    /** `listen(port, host, callback)`: with the plugin's `listen: 'positional'` option only. */
    listen(port: number | string, host: string, callback: (err: Error | null, address: string) => void): void
    /** `listen(port[, host])` or `listen(socketPath)`, a promise: with the plugin's `listen: 'positional'` option only. */
    listen(port: number | string, host?: string): Promise<string>
  }
}

export {}
