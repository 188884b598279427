/**
 * How often a run of failures (of publishes, or of a store's writes) is
 * logged: one line when it starts, one when it ends with the number of
 * failures. On a Redis Cluster one shard may fail while the others work, so
 * that successes come between the failures: there a run ends only at a
 * success that comes `quiet` ms after its last failure (one Redis: `quiet` 0,
 * the first success ends it).
 */
export class FailureRun {
  private readonly quiet: number
  private failures = 0
  private last = 0

  constructor (quiet: number) {
    this.quiet = quiet
  }

  /** Counts a failure; true when it starts a run (the caller logs it). */
  failed (): boolean {
    this.last = Date.now()
    return this.failures++ === 0
  }

  /** A success: the failures of the run it ends (the caller logs them), or 0 when it ends none. */
  succeeded (): number {
    if (this.failures === 0 || (this.quiet > 0 && Date.now() - this.last < this.quiet)) return 0
    const failures = this.failures
    this.failures = 0
    return failures
  }
}

/** `quiet` for a store or transport whose parts fail independently (a Redis Cluster's shards). */
export const SHARDED_QUIET = 1000
