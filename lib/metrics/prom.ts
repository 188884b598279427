import type * as PromClient from 'prom-client'
import { errors } from '../errors'

export type PromClientModule = typeof PromClient

/**
 * Loads prom-client, an optional peer dependency: only the `metrics` option
 * needs it, so an app without metrics never loads it.
 */
export function requirePromClient (id = 'prom-client'): PromClientModule {
  try {
    return require(id)
  } catch (err) {
    throw new errors.FST_NEXUS_INVALID_OPTION('metrics', `the "${id}" package to be installed (npm install prom-client)`, (err as Error).message)
  }
}
