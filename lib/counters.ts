import type { WebSocketStats } from '../types/index'

/**
 * The manager's counters, in one plain object shared by the routes'
 * connections (which count what happens to them) and the manager (which
 * counts broadcasts and reports them all in `stats()`). Their names and
 * meanings are those of `WebSocketStats`.
 */
export type Counters = Pick<WebSocketStats,
  'messagesReceived' | 'messagesSent' | 'broadcasts' | 'invalidMessages' |
  'errors' | 'slowConsumers' | 'heartbeatTimeouts' | 'rateLimited' |
  'historyAppended' | 'historyFailures' | 'resumeRecovered' | 'resumeFailed' | 'historyReplayed' | 'historyGapsFilled' |
  'presenceUpdates' | 'presenceFailures' | 'presenceFrames'>

export function createCounters (): Counters {
  return {
    messagesReceived: 0,
    messagesSent: 0,
    broadcasts: 0,
    invalidMessages: 0,
    errors: 0,
    slowConsumers: 0,
    heartbeatTimeouts: 0,
    rateLimited: 0,
    historyAppended: 0,
    historyFailures: 0,
    resumeRecovered: 0,
    resumeFailed: 0,
    historyReplayed: 0,
    historyGapsFilled: 0,
    presenceUpdates: 0,
    presenceFailures: 0,
    presenceFrames: 0
  }
}
