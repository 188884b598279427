import { createHash } from 'node:crypto'
import type { RedisClient } from '../../../types/index'

/** A Lua script: its source, and the SHA1 that EVALSHA names it by. */
export interface Script {
  readonly source: string
  readonly sha: string
}

export type Arg = string | number | Buffer

export function script (source: string): Script {
  return { source, sha: createHash('sha1').update(source).digest('hex') }
}

/** Throws, naming what failed, unless the client can run a script now. */
export function checkReady (client: RedisClient, closed: boolean, rooms: 'history' | 'presence'): void {
  if (closed) throw new Error('the Redis adapter is closed')
  if (client.status !== 'ready') throw new Error(`Redis connection is ${client.status}`)
  if (typeof client.callBuffer !== 'function') throw new Error(`the Redis client has no callBuffer(): ${rooms} rooms need an ioredis client`)
}

/**
 * Runs a script: EVALSHA, and EVAL when Redis does not have it (yet, or any
 * more). A failure calls `failed` (on a cluster the slots are read again)
 * and is thrown.
 */
export async function runScript (client: RedisClient, which: Script, keys: readonly string[], args: readonly Arg[], failed: () => void): Promise<unknown> {
  const call = client.callBuffer as NonNullable<RedisClient['callBuffer']>
  try {
    try {
      return await call.call(client, 'EVALSHA', which.sha, keys.length, ...keys, ...args)
    } catch (err) {
      // On a cluster client without retries (the adapter's own) the message is wrapped: "Too many Cluster redirections. Last error: …NOSCRIPT…".
      if (!(err as Error).message.includes('NOSCRIPT')) throw err
      return await call.call(client, 'EVAL', which.source, keys.length, ...keys, ...args)
    }
  } catch (err) {
    failed()
    throw err
  }
}
