export function median (values: readonly number[]): number {
  if (values.length === 0) return Number.NaN
  const sorted = [...values].sort((a, b) => a - b)
  const middle = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
}

/** Spread of the samples around their median, as a fraction (median absolute deviation / median). */
export function relativeSpread (values: readonly number[]): number {
  if (values.length < 2) return 0
  const m = median(values)
  if (m === 0) return 0
  return median(values.map((value) => Math.abs(value - m))) / Math.abs(m)
}
