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

/** The samples a figure's median is taken from: the quiet ones when at least half of them (and 2) are, else all. */
function usedSamples (metric: Metric, impl: Impl): { samples: number[], used: number[], quiet: number[] } {
  const samples = metric.samples[impl] ?? []
  const flags = metric.noisySamples[impl] ?? []
  const quiet = samples.filter((_, i) => flags[i] !== true)
  const quietEnough = quiet.length >= Math.max(2, Math.ceil(samples.length / 2))
  return { samples, used: quietEnough ? quiet : samples, quiet }
}

export function summarize (metrics: Iterable<Metric>, impls: readonly Impl[]): Row[] {
  const rows: Row[] = []
  for (const metric of metrics) {
    // The ratios' base is raw ws's figure itself (its median taken as every figure's is), so that its own ratio is 1.
    const base = median(usedSamples(metric, 'ws').used)
    const figures: Partial<Record<Impl, Figure>> = {}
    for (const impl of impls) {
      const { samples, used, quiet } = usedSamples(metric, impl)
      if (samples.length === 0 && (metric.failed[impl] ?? 0) === 0) continue
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

// ---------------------------------------------------------------- the protocol clients' table

/** The plugin's figures with `nexus.v1` clients in one broadcast scenario, against raw ws and the plugin with raw clients. */
export interface ProtocolEntry {
  /** `<scenario kind>.<n>`, as in the metric keys */
  key: string
  scenario: string
  /** server CPU per delivered message (µs), medians */
  cpu: { ws?: number, nexus?: number, protocol?: number, mixed?: number }
  /** their noise and failure marks, as in the main table */
  marks: { ws?: string, nexus?: string, protocol?: string, mixed?: string }
  /** protocol / ws and mixed / ws */
  vsWs: { nexus?: number, protocol?: number, mixed?: number }
  /** protocol / nexus and mixed / nexus (the plugin with raw clients) */
  vsNexus: { protocol?: number, mixed?: number }
  /** `nexus.v1` encodings per broadcast, medians (the plugin with raw clients: 0) */
  encodings: { nexus?: number, protocol?: number, mixed?: number }
}

function marksOf (figure: Figure | undefined): string {
  if (figure === undefined) return ''
  return (figure.includesNoisy ? ` ⚠${figure.noisy}` : '') + (figure.failed > 0 ? ` ✗${figure.failed}` : '')
}

function medianOf (figure: Figure | undefined): number | undefined {
  return figure === undefined || figure.samples.length === 0 ? undefined : figure.median
}

function ratioOf (a: number | undefined, b: number | undefined): number | undefined {
  return a === undefined || b === undefined ? undefined : a / b
}

/** One entry per broadcast scenario in which `nexus-protocol` or `nexus-mixed` ran. */
export function protocolSummary (rows: readonly Row[]): ProtocolEntry[] {
  const byKey = new Map(rows.map((row) => [row.key, row]))
  const entries: ProtocolEntry[] = []
  for (const row of rows) {
    const [kind, n, figure] = row.key.split('.')
    if (figure !== 'cpu' || !['fanout', 'fanout-async', 'burst'].includes(kind)) continue
    if (row.figures['nexus-protocol'] === undefined && row.figures['nexus-mixed'] === undefined) continue
    const cpu = {
      ws: medianOf(row.figures.ws),
      nexus: medianOf(row.figures.nexus),
      protocol: medianOf(row.figures['nexus-protocol']),
      mixed: medianOf(row.figures['nexus-mixed'])
    }
    const encodingRow = byKey.get(`${kind}.${n}.encodings`)
    entries.push({
      key: `${kind}.${n}`,
      scenario: row.scenario,
      cpu,
      marks: { ws: marksOf(row.figures.ws), nexus: marksOf(row.figures.nexus), protocol: marksOf(row.figures['nexus-protocol']), mixed: marksOf(row.figures['nexus-mixed']) },
      vsWs: { nexus: ratioOf(cpu.nexus, cpu.ws), protocol: ratioOf(cpu.protocol, cpu.ws), mixed: ratioOf(cpu.mixed, cpu.ws) },
      vsNexus: { protocol: ratioOf(cpu.protocol, cpu.nexus), mixed: ratioOf(cpu.mixed, cpu.nexus) },
      encodings: {
        nexus: medianOf(encodingRow?.figures.nexus),
        protocol: medianOf(encodingRow?.figures['nexus-protocol']),
        mixed: medianOf(encodingRow?.figures['nexus-mixed'])
      }
    })
  }
  return entries
}

const PROTOCOL_HEAD = [
  'scenario',
  'raw ws, µs/msg',
  'plugin, raw clients, µs/msg (× ws)',
  'plugin, nexus.v1 clients, µs/msg',
  '× ws',
  '× plugin raw (target ≤ 1.10×)',
  'plugin, ½ raw ½ nexus.v1, µs/msg',
  '× ws',
  '× plugin raw',
  'nexus.v1 encodings per broadcast (raw / all nexus.v1 / mixed)'
]

function protocolCells (entry: ProtocolEntry, bold: (text: string) => string): string[] {
  const num = (value: number | undefined, mark = ''): string => value === undefined ? '–' : `${formatNumber(value)}${mark}`
  const ratio = (value: number | undefined): string => value === undefined ? '–' : bold(formatRatio(value))
  const count = (value: number | undefined): string => value === undefined ? '–' : value.toFixed(2)
  return [
    entry.scenario,
    num(entry.cpu.ws, entry.marks.ws),
    entry.cpu.nexus === undefined ? '–' : `${num(entry.cpu.nexus, entry.marks.nexus)} (${ratio(entry.vsWs.nexus)})`,
    num(entry.cpu.protocol, entry.marks.protocol),
    ratio(entry.vsWs.protocol),
    ratio(entry.vsNexus.protocol),
    num(entry.cpu.mixed, entry.marks.mixed),
    ratio(entry.vsWs.mixed),
    ratio(entry.vsNexus.mixed),
    `${count(entry.encodings.nexus)} / ${count(entry.encodings.protocol)} / ${count(entry.encodings.mixed)}`
  ]
}

/** The protocol clients' table, in Markdown. */
export function protocolMarkdown (entries: readonly ProtocolEntry[]): string {
  const lines = [`| ${PROTOCOL_HEAD.join(' | ')} |`, `|${PROTOCOL_HEAD.map((_, i) => i === 0 ? ' --- ' : ' ---: ').join('|')}|`]
  for (const entry of entries) lines.push(`| ${protocolCells(entry, (text) => `**${text}**`).join(' | ')} |`)
  return lines.join('\n')
}

/** The same table for a terminal. */
export function protocolText (entries: readonly ProtocolEntry[]): string {
  const head = ['scenario', 'ws µs/msg', 'nexus µs/msg', 'nexus.v1 µs/msg', '×ws', '×nexus', 'mixed µs/msg', '×ws', '×nexus', 'enc/broadcast raw/v1/mixed']
  const body = entries.map((entry) => protocolCells(entry, (text) => text))
  const widths = head.map((_, column) => Math.max(...[head, ...body].map((line) => line[column].length)))
  const format = (line: string[]): string => line.map((text, column) => column === 0 ? text.padEnd(widths[column]) : text.padStart(widths[column])).join('  ')
  return [format(head), ...body.map(format)].join('\n')
}

// ---------------------------------------------------------------- the history rooms' table

/**
 * The plugin's figures when the broadcast rooms keep a memory history, in
 * one broadcast scenario: against raw ws and against the same clients in a
 * plain room (`nexus` for raw clients, `nexus-protocol` for `nexus.v1` ones).
 */
export interface HistoryEntry {
  /** `<scenario kind>.<n>`, as in the metric keys */
  key: string
  scenario: string
  /** server CPU per delivered message (µs), medians */
  cpu: { ws?: number, nexus?: number, history?: number, protocol?: number, historyProtocol?: number }
  marks: { ws?: string, nexus?: string, history?: string, protocol?: string, historyProtocol?: string }
  /** each / raw ws */
  vsWs: { nexus?: number, history?: number, historyProtocol?: number }
  /** history / nexus, and historyProtocol / nexus-protocol: what the history costs per delivered message (target ≤ 1.15) */
  vsPlain: { history?: number, historyProtocol?: number }
  /** `nexus.v1` encodings per broadcast of `nexus-history-protocol`, median */
  encodings?: number
}

/** One entry per broadcast scenario in which `nexus-history` or `nexus-history-protocol` ran. */
export function historySummary (rows: readonly Row[]): HistoryEntry[] {
  const byKey = new Map(rows.map((row) => [row.key, row]))
  const entries: HistoryEntry[] = []
  for (const row of rows) {
    const [kind, n, figure] = row.key.split('.')
    if (figure !== 'cpu' || !['fanout', 'fanout-async', 'burst'].includes(kind)) continue
    const f = row.figures
    if (f['nexus-history'] === undefined && f['nexus-history-protocol'] === undefined) continue
    const cpu = {
      ws: medianOf(f.ws),
      nexus: medianOf(f.nexus),
      history: medianOf(f['nexus-history']),
      protocol: medianOf(f['nexus-protocol']),
      historyProtocol: medianOf(f['nexus-history-protocol'])
    }
    const encodings = medianOf(byKey.get(`${kind}.${n}.encodings`)?.figures['nexus-history-protocol'])
    entries.push({
      key: `${kind}.${n}`,
      scenario: row.scenario,
      cpu,
      marks: { ws: marksOf(f.ws), nexus: marksOf(f.nexus), history: marksOf(f['nexus-history']), protocol: marksOf(f['nexus-protocol']), historyProtocol: marksOf(f['nexus-history-protocol']) },
      vsWs: { nexus: ratioOf(cpu.nexus, cpu.ws), history: ratioOf(cpu.history, cpu.ws), historyProtocol: ratioOf(cpu.historyProtocol, cpu.ws) },
      vsPlain: { history: ratioOf(cpu.history, cpu.nexus), historyProtocol: ratioOf(cpu.historyProtocol, cpu.protocol) },
      ...(encodings === undefined ? {} : { encodings })
    })
  }
  return entries
}

const HISTORY_HEAD = [
  'scenario',
  'raw ws, µs/msg',
  'plugin, plain room, µs/msg (× ws)',
  'plugin, history room, µs/msg',
  '× ws',
  '× plain room (target ≤ 1.15×)',
  'plugin, plain room, nexus.v1 clients, µs/msg',
  'plugin, history room, nexus.v1 clients, µs/msg',
  '× ws',
  '× plain room, nexus.v1 (target ≤ 1.15×)',
  'nexus.v1 encodings per broadcast (history room)'
]

function historyCells (entry: HistoryEntry, bold: (text: string) => string): string[] {
  const num = (value: number | undefined, mark = ''): string => value === undefined ? '–' : `${formatNumber(value)}${mark}`
  const ratio = (value: number | undefined): string => value === undefined ? '–' : bold(formatRatio(value))
  return [
    entry.scenario,
    num(entry.cpu.ws, entry.marks.ws),
    entry.cpu.nexus === undefined ? '–' : `${num(entry.cpu.nexus, entry.marks.nexus)} (${ratio(entry.vsWs.nexus)})`,
    num(entry.cpu.history, entry.marks.history),
    ratio(entry.vsWs.history),
    ratio(entry.vsPlain.history),
    num(entry.cpu.protocol, entry.marks.protocol),
    num(entry.cpu.historyProtocol, entry.marks.historyProtocol),
    ratio(entry.vsWs.historyProtocol),
    ratio(entry.vsPlain.historyProtocol),
    entry.encodings === undefined ? '–' : entry.encodings.toFixed(2)
  ]
}

/** The columns shown: the `nexus.v1` ones (from the 7th) only when `nexus-history-protocol` ran. */
function historyColumns<T> (entries: readonly HistoryEntry[], line: readonly T[]): T[] {
  return entries.some((entry) => entry.cpu.historyProtocol !== undefined) ? [...line] : line.slice(0, 6)
}

/** The history rooms' table, in Markdown. */
export function historyMarkdown (entries: readonly HistoryEntry[]): string {
  const head = historyColumns(entries, HISTORY_HEAD)
  const lines = [`| ${head.join(' | ')} |`, `|${head.map((_, i) => i === 0 ? ' --- ' : ' ---: ').join('|')}|`]
  for (const entry of entries) lines.push(`| ${historyColumns(entries, historyCells(entry, (text) => `**${text}**`)).join(' | ')} |`)
  return lines.join('\n')
}

/** The same table for a terminal. */
export function historyText (entries: readonly HistoryEntry[]): string {
  const head = historyColumns(entries, ['scenario', 'ws µs/msg', 'nexus µs/msg', 'history µs/msg', '×ws', '×nexus', 'v1 plain µs/msg', 'v1 history µs/msg', '×ws', '×v1 plain', 'v1 enc/broadcast'])
  const body = entries.map((entry) => historyColumns(entries, historyCells(entry, (text) => text)))
  const widths = head.map((_, column) => Math.max(...[head, ...body].map((line) => line[column].length)))
  const format = (line: string[]): string => line.map((text, column) => column === 0 ? text.padEnd(widths[column]) : text.padStart(widths[column])).join('  ')
  return [format(head), ...body.map(format)].join('\n')
}

// ---------------------------------------------------------------- the metrics table

/**
 * What the plugin's Prometheus metrics cost: `nexus-metrics` (the same server
 * and raw clients as `nexus`, with `metrics` on) against `nexus`, per
 * delivered (or, inbound, received) message. The project's target: within
 * 5 % (≤ 1.05×) in the fan-out scenarios.
 */
export interface MetricsEntry {
  key: string
  scenario: string
  cpu: { ws?: number, nexus?: number, metrics?: number }
  marks: { ws?: string, nexus?: string, metrics?: string }
  /** metrics / nexus */
  vsOff?: number
}

/** One entry per scenario in which `nexus-metrics` ran. */
export function metricsSummary (rows: readonly Row[]): MetricsEntry[] {
  const entries: MetricsEntry[] = []
  for (const row of rows) {
    const [kind, n, figure] = row.key.split('.')
    if (figure !== 'cpu' || !['fanout', 'fanout-async', 'burst', 'inbound'].includes(kind)) continue
    const f = row.figures
    if (f['nexus-metrics'] === undefined) continue
    const cpu = { ws: medianOf(f.ws), nexus: medianOf(f.nexus), metrics: medianOf(f['nexus-metrics']) }
    const vsOff = ratioOf(cpu.metrics, cpu.nexus)
    entries.push({
      key: `${kind}.${n}`,
      scenario: row.scenario,
      cpu,
      marks: { ws: marksOf(f.ws), nexus: marksOf(f.nexus), metrics: marksOf(f['nexus-metrics']) },
      ...(vsOff === undefined ? {} : { vsOff })
    })
  }
  return entries
}

function metricsCells (entry: MetricsEntry, bold: (text: string) => string): string[] {
  const num = (value: number | undefined, mark = ''): string => value === undefined ? '–' : `${formatNumber(value)}${mark}`
  return [
    entry.scenario,
    num(entry.cpu.ws, entry.marks.ws),
    num(entry.cpu.nexus, entry.marks.nexus),
    num(entry.cpu.metrics, entry.marks.metrics),
    entry.vsOff === undefined ? '–' : bold(formatRatio(entry.vsOff))
  ]
}

/** The metrics table, in Markdown. */
export function metricsMarkdown (entries: readonly MetricsEntry[]): string {
  const head = ['scenario', 'raw ws, µs/msg', 'plugin, metrics off, µs/msg', 'plugin, metrics on, µs/msg', '× metrics off (target ≤ 1.05×)']
  const lines = [`| ${head.join(' | ')} |`, `|${head.map((_, i) => i === 0 ? ' --- ' : ' ---: ').join('|')}|`]
  for (const entry of entries) lines.push(`| ${metricsCells(entry, (text) => `**${text}**`).join(' | ')} |`)
  return lines.join('\n')
}

/** The same table for a terminal. */
export function metricsText (entries: readonly MetricsEntry[]): string {
  const head = ['scenario', 'ws µs/msg', 'off µs/msg', 'on µs/msg', '×off']
  const body = entries.map((entry) => metricsCells(entry, (text) => text))
  const widths = head.map((_, column) => Math.max(...[head, ...body].map((line) => line[column].length)))
  const format = (line: string[]): string => line.map((text, column) => column === 0 ? text.padEnd(widths[column]) : text.padStart(widths[column])).join('  ')
  return [format(head), ...body.map(format)].join('\n')
}
