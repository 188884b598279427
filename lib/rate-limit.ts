import type { RateLimitOptions } from '../types/index'

/** What a message gets from the limiter. */
export const Verdict = Object.freeze({
  ALLOW: 0,
  DROP: 1,
  /** more than 2 × max in one window: the connection is closed with 1008 */
  CLOSE: 2
} as const)
export type VerdictValue = typeof Verdict[keyof typeof Verdict]

/**
 * A per-connection token bucket: it holds at most `max` tokens and refills at
 * `max` per `windowMs`, computed from the clock at each message (no timer).
 * Beside it, a fixed window counts every message received, kept or not.
 */
export class TokenBucket {
  private readonly max: number
  private readonly windowMs: number
  private tokens: number
  private last: number
  private windowStart: number
  private windowCount = 0

  constructor ({ max, windowMs }: RateLimitOptions, now: number) {
    this.max = max
    this.windowMs = windowMs
    this.tokens = max
    this.last = now
    this.windowStart = now
  }

  take (now: number): VerdictValue {
    if (now - this.windowStart >= this.windowMs) {
      this.windowStart = now
      this.windowCount = 0
    }
    this.windowCount++
    this.tokens = Math.min(this.max, this.tokens + (now - this.last) * this.max / this.windowMs)
    this.last = now
    if (this.tokens >= 1) {
      this.tokens -= 1
      return Verdict.ALLOW
    }
    return this.windowCount > 2 * this.max ? Verdict.CLOSE : Verdict.DROP
  }
}
