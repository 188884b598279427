import type { Adapter } from '../types/index'
import { createCounters, type Counters } from './counters'
import { Heartbeat } from './heartbeat'
import { Hub, type Member } from './hub'
import { LiveConnections } from './live'
import type { Policies } from './policies'

/**
 * What one registration of the plugin shares between its routes'
 * connections and its manager. Connections report into it; the manager reads
 * it; neither calls the other.
 */
export interface Runtime<C extends Member = Member> {
  readonly counters: Counters
  readonly live: LiveConnections<C>
  readonly hub: Hub<C>
  readonly heartbeat: Heartbeat
  /** set when app.close() starts: upgrades that still get through are closed at once */
  closing: boolean
}

export function createRuntime<C extends Member> (adapter: Adapter, policies: Policies | null = null): Runtime<C> {
  const live = new LiveConnections<C>()
  const counters = createCounters()
  return {
    counters,
    live,
    hub: new Hub<C>(adapter, live.open, policies, counters),
    heartbeat: new Heartbeat(),
    closing: false
  }
}
