import type { FastifyInstance, FastifyListenOptions } from 'fastify'

type Listen = FastifyInstance['listen']

/**
 * The Nexus document starts its apps with `app.listen(3000, () => …)`: a port
 * (and optionally a host) then a callback, as Fastify itself did up to v4.
 * Fastify 5 takes only an options object, and fails on a number with a bare
 * TypeError. This wrapper maps those positional forms onto `{ port, host }`
 * (a non-numeric string is a socket path); every other call goes through as is.
 * Applied only with the plugin's `listen: 'positional'` option, to the
 * instance the plugin is registered on: Fastify's own listen is not the
 * plugin's to change behind the app's back.
 */
export function withPositionalListen (listen: Listen): Listen {
  // Fastify's own listen(options?, callback?), whatever overloads are declared.
  const original = listen as unknown as (this: FastifyInstance, ...args: unknown[]) => unknown
  return function positionalListen (this: FastifyInstance, ...args: unknown[]) {
    const [first, second, third] = args
    if (typeof first !== 'number' && typeof first !== 'string') return original.apply(this, args)
    const options: FastifyListenOptions = typeof first === 'string' && !/^\d+$/.test(first)
      ? { path: first }
      : { port: Number(first) }
    let callback = second
    if (typeof second === 'string') {
      options.host = second
      callback = third
    }
    return typeof callback === 'function' ? original.call(this, options, callback) : original.call(this, options)
  } as Listen
}
