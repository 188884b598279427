/**
 * What a query does with an answer: `recorded`; `dropped` quietly (its query
 * is over, or this instance answered it already); `unexpected`, an answer of
 * the wrong type for its question, which the transport counts as invalid.
 */
export type AnswerOutcome = 'recorded' | 'dropped' | 'unexpected'

interface Pending {
  readonly answers: unknown[]
  /** the instances that answered: one answer each */
  readonly from: Set<string>
  /** how many other instances received the question; unknown (Infinity) until the transport says */
  expected: number
  readonly accepts: (value: unknown) => boolean
  readonly timer: NodeJS.Timeout
  readonly resolve: (answers: unknown[]) => void
}

/**
 * The cluster-wide queries this instance waits on, with socket.io's
 * ClusterAdapter bookkeeping (`expected`, what arrived, from whom). Nothing
 * here knows Redis: the transport publishes the question, says how many
 * instances received it, and hands over the answers. A query resolves with
 * the answers it has as soon as every instance answered, at its timeout, or
 * at close: it never rejects and never hangs.
 */
export class PendingQueries {
  /** queries that resolved at their timeout, without every instance */
  timeouts = 0
  private lastId = 0
  private readonly pending = new Map<number, Pending>()

  /**
   * Runs a query: `send` publishes the question with its id and resolves with
   * how many other instances received it (a rejection: nobody will answer).
   * Resolves with the answers that `accepts`. The timer does not hold the
   * process open.
   */
  async ask<T> (timeout: number, accepts: (value: unknown) => value is T, send: (id: number) => Promise<number>): Promise<T[]> {
    const id = ++this.lastId
    const answers = new Promise<T[]>((resolve) => {
      const timer = setTimeout(() => {
        this.timeouts++
        this.finish(id)
      }, timeout)
      timer.unref()
      // Only values `accepts` let through are ever pushed: the list is a T[].
      this.pending.set(id, { answers: [], from: new Set(), expected: Infinity, accepts, timer, resolve: resolve as (answers: unknown[]) => void })
    })
    send(id).then((count) => this.expect(id, count), () => this.finish(id))
    return await answers
  }

  /** `count` other instances received the question: once they all answered, it is complete. */
  private expect (id: number, count: number): void {
    const query = this.pending.get(id)
    // The query may be over already (timeout or close) when the transport's reply comes.
    if (query === undefined) return
    query.expected = count
    if (query.answers.length >= count) this.finish(id)
  }

  answer (id: number, origin: string, value: unknown): AnswerOutcome {
    const query = this.pending.get(id)
    // Late answers (after the timeout), and a second answer of one instance, are dropped quietly.
    if (query === undefined || query.from.has(origin)) return 'dropped'
    if (!query.accepts(value)) return 'unexpected'
    query.from.add(origin)
    query.answers.push(value)
    if (query.answers.length >= query.expected) this.finish(id)
    return 'recorded'
  }

  /** Resolves a query with what it has (the question could not be sent, or the time is up). */
  private finish (id: number): void {
    const query = this.pending.get(id)
    if (query === undefined) return
    this.pending.delete(id)
    clearTimeout(query.timer)
    query.resolve(query.answers)
  }

  /** Nobody waits on a closed transport: every open query resolves with what it has. */
  close (): void {
    for (const id of [...this.pending.keys()]) this.finish(id)
  }
}
