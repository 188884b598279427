/**
 * The credit window of a measured round, on the side that sends (the server
 * in fan-out and burst, the client in inbound): `steps` steps, one per
 * event-loop turn, never more than `window` steps beyond the last one the
 * other side acknowledged, so that nothing buffers without bound.
 */
export interface Credit {
  /** The other side has every step up to `complete`. */
  acknowledge (complete: number): void
  /** Settles when the last step is acknowledged, or at the time bound (`timedOut`). */
  readonly done: Promise<{ timedOut: boolean, sent: number }>
}

/**
 * Starts sending: `send(step)` for steps 1…`steps`, each in its own
 * event-loop turn (setImmediate); `turnEnd`, when given, runs at the start of
 * the turn after each step, before the next one is sent.
 */
export function sendWithCredit (steps: number, window: number, timeoutMs: number, send: (step: number) => void, turnEnd?: () => void): Credit {
  let sent = 0
  let acked = 0
  let parked = false
  let finished = false
  let settle!: (result: { timedOut: boolean, sent: number }) => void
  const done = new Promise<{ timedOut: boolean, sent: number }>((resolve) => { settle = resolve })
  const finish = (timedOut: boolean): void => {
    if (finished) return
    finished = true
    clearTimeout(timer)
    settle({ timedOut, sent })
  }
  const timer = setTimeout(() => finish(true), timeoutMs)
  const pump = (): void => {
    if (finished || sent >= steps || sent - acked >= window) {
      parked = true
      return
    }
    parked = false
    send(++sent)
    setImmediate(nextTurn)
  }
  const nextTurn = (): void => {
    turnEnd?.()
    pump()
  }
  pump()
  return {
    acknowledge (complete) {
      acked = complete
      if (acked >= steps) finish(false)
      else if (parked) pump()
    },
    done
  }
}
