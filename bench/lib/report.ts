import { LABELS, type Impl } from './protocol'
import { median, relativeSpread } from './stats'

/** One figure of the suite, measured for every implementation. */
export interface Metric {
  key: string
  /** the scenario, e.g. "Fan-out, 1,000 clients" */
  scenario: string
  /** what is measured, e.g. "server CPU per delivered message" */
  what: string
  unit: string
  better: 'lower' | 'higher'
  /** shown in the chart */
  chart: boolean
  /** shown in the tables (every figure is in the JSON) */
  table: boolean
  samples: Partial<Record<Impl, number[]>>
  /** per sample: the round was flagged as noisy */
  noisySamples: Partial<Record<Impl, boolean[]>>
  /** rounds of each implementation flagged as noisy */
  noisy: Partial<Record<Impl, number>>
  /** rounds of each implementation that failed (not every message delivered, or out of time) */
  failed: Partial<Record<Impl, number>>
}

export interface Figure {
  /** median of the quiet rounds when at least half the rounds (and 2) were quiet, else of all rounds */
  median: number
  /** the median includes rounds flagged as noisy */
  includesNoisy: boolean
  /** median absolute deviation / median */
  spread: number
  /** median / raw ws's median */
  ratio: number
  samples: number[]
  noisy: number
  failed: number
}

export interface Row {
  key: string
  scenario: string
  what: string
  unit: string
  better: 'lower' | 'higher'
  chart: boolean
  table: boolean
  figures: Partial<Record<Impl, Figure>>
}

export function summarize (metrics: Iterable<Metric>, impls: readonly Impl[]): Row[] {
  const rows: Row[] = []
  for (const metric of metrics) {
    const base = median(metric.samples.ws ?? [])
    const figures: Partial<Record<Impl, Figure>> = {}
    for (const impl of impls) {
      const samples = metric.samples[impl] ?? []
      if (samples.length === 0 && (metric.failed[impl] ?? 0) === 0) continue
      const flags = metric.noisySamples[impl] ?? []
      const quiet = samples.filter((_, i) => flags[i] !== true)
      const quietEnough = quiet.length >= Math.max(2, Math.ceil(samples.length / 2))
      const used = quietEnough ? quiet : samples
      const m = median(used)
      figures[impl] = {
        median: m,
        includesNoisy: used.length > quiet.length,
        spread: relativeSpread(used),
        ratio: m / base,
        samples,
        noisy: metric.noisy[impl] ?? 0,
        failed: metric.failed[impl] ?? 0
      }
    }
    rows.push({ key: metric.key, scenario: metric.scenario, what: metric.what, unit: metric.unit, better: metric.better, chart: metric.chart, table: metric.table, figures })
  }
  return rows
}

export function formatNumber (value: number): string {
  if (!Number.isFinite(value)) return 'n/a'
  const abs = Math.abs(value)
  if (abs >= 1000) return Math.round(value).toLocaleString('en-US')
  if (abs >= 100) return value.toFixed(0)
  if (abs >= 10) return value.toFixed(1)
  return value.toFixed(2)
}

export function formatRatio (ratio: number): string {
  return Number.isFinite(ratio) ? `${ratio.toFixed(2)}×` : 'n/a'
}

function cell (figure: Figure | undefined): string {
  if (figure === undefined) return '–'
  if (figure.samples.length === 0) return `failed (${figure.failed})`
  const marks = (figure.includesNoisy ? ` ⚠${figure.noisy}` : '') + (figure.failed > 0 ? ` ✗${figure.failed}` : '')
  return `${formatNumber(figure.median)} (**${formatRatio(figure.ratio)}**)${marks}`
}

/** A Markdown table: one row per figure, one column per implementation, each cell "median (ratio to raw ws)". */
export function markdownTable (rows: readonly Row[], impls: readonly Impl[]): string {
  const head = ['scenario', 'figure', ...impls.map((impl) => LABELS[impl])]
  const lines = [`| ${head.join(' | ')} |`, `|${head.map((_, i) => i < 2 ? ' --- ' : ' ---: ').join('|')}|`]
  for (const row of rows.filter((r) => r.table)) {
    const what = `${row.what}, ${row.unit} (${row.better} is better)`
    lines.push(`| ${[row.scenario, what, ...impls.map((impl) => cell(row.figures[impl]))].join(' | ')} |`)
  }
  return lines.join('\n')
}

/** The same table for a terminal: aligned columns, no Markdown. */
export function textTable (rows: readonly Row[], impls: readonly Impl[]): string {
  const head = ['figure', ...impls.map((impl) => LABELS[impl])]
  const body = rows.filter((row) => row.table).map((row) => [
    `${row.scenario}: ${row.what}, ${row.unit}${row.better === 'lower' ? ' ↓' : ' ↑'}`,
    ...impls.map((impl) => {
      const figure = row.figures[impl]
      if (figure === undefined) return '–'
      if (figure.samples.length === 0) return 'failed'
      return `${formatNumber(figure.median)} ${formatRatio(figure.ratio)}${figure.includesNoisy ? ` ⚠${figure.noisy}` : ''}${figure.failed > 0 ? ` ✗${figure.failed}` : ''}`
    })
  ])
  const widths = head.map((_, column) => Math.max(...[head, ...body].map((line) => line[column].length)))
  const format = (line: string[]): string => line.map((text, column) => column === 0 ? text.padEnd(widths[column]) : text.padStart(widths[column])).join('  ')
  return [format(head), ...body.map(format)].join('\n')
}
