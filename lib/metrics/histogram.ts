import type { Histogram, HistogramConfiguration } from 'prom-client'
import type { PromClientModule } from './prom'

/**
 * The observations of one label set: a count per bucket (the last one for
 * values above every bound), their sum and their count.
 */
export class Series {
  readonly labels: Readonly<Record<string, string>>
  readonly counts: Float64Array
  sum = 0
  count = 0

  constructor (labels: Readonly<Record<string, string>>, buckets: number) {
    this.labels = labels
    this.counts = new Float64Array(buckets + 1)
  }
}

type Exported = Awaited<ReturnType<Histogram['get']>>

/** A prom-client histogram that keeps its observations in `Series` the caller holds on to. */
export interface Timings extends Histogram {
  /** The series of these label values (in the order of `labelNames`), made on first use. */
  series (...values: string[]): Series
  /** Adds one observation to a series. */
  record (series: Series, value: number): void
}

/**
 * A prom-client `Histogram` for the hot paths (every broadcast, every
 * inbound message when metrics are on): an observation is a bucket search
 * and three additions on a `Series` found once, where prom-client's own
 * `observe` checks, sorts and hashes its labels each time. It is a real
 * prom-client histogram to the registry: same type, same exposition (the
 * cumulative `_bucket` series up to `le="+Inf"`, `_sum`, `_count`).
 */
export function timingsClass (prom: PromClientModule): new (config: HistogramConfiguration<string>) => Timings {
  // prom-client's own export of a histogram (what its registry reads): name,
  // help, type and collect(), here with no values of its own.
  const exportBase = (prom.Histogram.prototype as { getForPromString?: (this: Histogram) => Promise<Exported> }).getForPromString
  /* c8 ignore next 3 -- every prom-client 15 (the peer dependency's range) has it */
  if (typeof exportBase !== 'function') {
    throw new TypeError('prom-client\'s Histogram has no getForPromString(): prom-client 15 is needed')
  }
  return class FastHistogram extends prom.Histogram<string> implements Timings {
    private readonly bounds: readonly number[]
    private readonly names: readonly string[]
    private readonly byKey = new Map<string, Series>()

    constructor (config: HistogramConfiguration<string>) {
      super(config)
      this.bounds = [...config.buckets as number[]]
      this.names = [...config.labelNames as string[]]
      // A histogram without labels is exported from the start, at zero, as prom-client's are.
      if (this.names.length === 0) this.series()
    }

    series (...values: string[]): Series {
      // Label values never hold a NUL here: routes, room classes and fixed words.
      const key = values.join('\u0000')
      let series = this.byKey.get(key)
      if (series === undefined) {
        const labels: Record<string, string> = {}
        this.names.forEach((name, i) => { labels[name] = values[i] })
        series = new Series(labels, this.bounds.length)
        this.byKey.set(key, series)
      }
      return series
    }

    record (series: Series, value: number): void {
      const bounds = this.bounds
      let i = 0
      while (i < bounds.length && value > bounds[i]) i++
      series.counts[i]++
      series.sum += value
      series.count++
    }

    /**
     * `registry.resetMetrics()`: every series back to zero, in place, since
     * the callers hold on to them. (prom-client's constructor calls it too,
     * before this class's fields exist.)
     */
    override reset (): void {
      super.reset()
      const byKey = this.byKey as Map<string, Series> | undefined
      if (byKey === undefined) return
      for (const series of byKey.values()) {
        series.counts.fill(0)
        series.sum = 0
        series.count = 0
      }
    }

    override async get (): Promise<Exported> {
      const exported = await exportBase.call(this)
      const values: Exported['values'] = []
      for (const series of this.byKey.values()) {
        let cumulative = 0
        this.bounds.forEach((bound, i) => {
          cumulative += series.counts[i]
          values.push({ labels: { ...series.labels, le: bound }, value: cumulative, metricName: `${exported.name}_bucket` })
        })
        values.push(
          { labels: { ...series.labels, le: '+Inf' }, value: series.count, metricName: `${exported.name}_bucket` },
          { labels: series.labels, value: series.sum, metricName: `${exported.name}_sum` },
          { labels: series.labels, value: series.count, metricName: `${exported.name}_count` }
        )
      }
      return { ...exported, values }
    }

    /** What the registry's text output reads (prom-client's own histograms have it too). */
    async getForPromString (): Promise<Exported> {
      return await this.get()
    }
  }
}
