// Waiting in tests: a plain pause, and polling until something holds.

/** Resolves after `ms` milliseconds. */
export const delay = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/**
 * Resolves once `predicate` (sync or async) holds, polling every few
 * milliseconds; rejects with "`what` not met within `timeout` ms" when it
 * does not hold in time. A sync predicate is checked at once, without a
 * turn of the microtask queue in between.
 */
export async function until (predicate: () => boolean | Promise<boolean>, timeout = 5000, what = 'condition'): Promise<void> {
  const start = Date.now()
  for (;;) {
    const holds = predicate()
    if (typeof holds === 'boolean' ? holds : await holds) return
    if (Date.now() - start > timeout) throw new Error(`${what} not met within ${timeout} ms`)
    await delay(5)
  }
}
