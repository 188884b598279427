// A strict reader of the Prometheus text exposition format (version 0.0.4),
// written from the format's documentation: it parses a scrape and throws on
// anything Prometheus would refuse or `promtool check metrics` would flag, so
// that a test can both check the format and read values.

export type MetricKind = 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped'

export interface Sample {
  /** the sample's own name (`x_bucket`, `x_sum`, … for a histogram `x`) */
  name: string
  labels: Record<string, string>
  value: number
}

export interface Family {
  name: string
  type: MetricKind
  help: string | undefined
  samples: Sample[]
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/
const KINDS = new Set<string>(['counter', 'gauge', 'histogram', 'summary', 'untyped'])

/** Throws with the line number and the line. */
function fail (lineNumber: number, line: string, why: string): never {
  throw new Error(`line ${lineNumber}: ${why}: ${JSON.stringify(line)}`)
}

/** A HELP text: only `\\` and `\n` are escapes. */
function unescapeHelp (text: string, lineNumber: number, line: string): string {
  return text.replace(/\\(.?)/g, (_match, next: string) => {
    if (next === '\\') return '\\'
    if (next === 'n') return '\n'
    return fail(lineNumber, line, `invalid escape \\${next} in HELP`)
  })
}

/** A sample value: a Go float, NaN, +Inf or -Inf. */
function parseValue (text: string, lineNumber: number, line: string): number {
  if (text === 'NaN') return NaN
  if (text === '+Inf' || text === 'Inf') return Infinity
  if (text === '-Inf') return -Infinity
  if (!/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(text)) fail(lineNumber, line, `invalid value ${text}`)
  return Number(text)
}

/**
 * Reads `{a="1",b="x\"y"}` from `line` at `start` (the `{`); returns the
 * labels and where the text after the closing brace starts.
 */
function parseLabels (line: string, start: number, lineNumber: number): { labels: Record<string, string>, end: number } {
  const labels: Record<string, string> = Object.create(null)
  let i = start + 1
  for (;;) {
    if (line[i] === '}') return { labels, end: i + 1 }
    const eq = line.indexOf('=', i)
    if (eq === -1) fail(lineNumber, line, 'label without =')
    const name = line.slice(i, eq)
    if (!LABEL_NAME.test(name)) fail(lineNumber, line, `invalid label name ${JSON.stringify(name)}`)
    if (name.startsWith('__')) fail(lineNumber, line, `label name ${name} is reserved`)
    if (name in labels) fail(lineNumber, line, `label ${name} twice`)
    if (line[eq + 1] !== '"') fail(lineNumber, line, `label ${name}: value not quoted`)
    let value = ''
    let j = eq + 2
    for (;;) {
      const c = line[j]
      if (c === undefined) fail(lineNumber, line, `label ${name}: unterminated value`)
      if (c === '"') break
      if (c === '\\') {
        const next = line[j + 1]
        if (next === '\\') value += '\\'
        else if (next === '"') value += '"'
        else if (next === 'n') value += '\n'
        else fail(lineNumber, line, `label ${name}: invalid escape \\${next ?? ''}`)
        j += 2
        continue
      }
      value += c
      j++
    }
    labels[name] = value
    i = j + 1
    if (line[i] === ',') {
      i++
      continue
    }
    if (line[i] !== '}') fail(lineNumber, line, `label ${name}: expected , or } after the value`)
  }
}

/** The family a sample name belongs to: `x_bucket`, `x_sum`, `x_count` of a histogram or summary `x`. */
function familyOf (name: string, families: Map<string, Family>): Family | undefined {
  const own = families.get(name)
  if (own !== undefined) return own
  for (const suffix of ['_bucket', '_sum', '_count']) {
    if (!name.endsWith(suffix)) continue
    const family = families.get(name.slice(0, -suffix.length))
    if (family === undefined) continue
    if (family.type === 'histogram' || (family.type === 'summary' && suffix !== '_bucket')) return family
  }
  return undefined
}

function seriesKey (name: string, labels: Record<string, string>): string {
  return name + JSON.stringify(Object.keys(labels).sort().map((key) => [key, labels[key]]))
}

/** Checks what the format says of a histogram's samples, per label set. */
function checkHistogram (family: Family): void {
  const groups = new Map<string, { buckets: Array<[number, number]>, sum?: number, count?: number }>()
  for (const sample of family.samples) {
    const { le, ...rest } = sample.labels
    const key = seriesKey('', rest)
    let group = groups.get(key)
    if (group === undefined) groups.set(key, group = { buckets: [] })
    if (sample.name === `${family.name}_bucket`) {
      if (le === undefined) throw new Error(`${family.name}: a bucket without le`)
      group.buckets.push([parseValue(le, 0, `le="${le}"`), sample.value])
    } else if (sample.name === `${family.name}_sum`) {
      if (le !== undefined) throw new Error(`${family.name}_sum with an le label`)
      group.sum = sample.value
    } else if (sample.name === `${family.name}_count`) {
      if (le !== undefined) throw new Error(`${family.name}_count with an le label`)
      group.count = sample.value
    } else {
      throw new Error(`${family.name}: a sample named ${sample.name} in a histogram`)
    }
  }
  for (const [key, group] of groups) {
    const where = `${family.name}${key}`
    if (group.buckets.length === 0) throw new Error(`${where}: no buckets`)
    for (let i = 1; i < group.buckets.length; i++) {
      if (!(group.buckets[i][0] > group.buckets[i - 1][0])) throw new Error(`${where}: buckets not in increasing order of le`)
      if (group.buckets[i][1] < group.buckets[i - 1][1]) throw new Error(`${where}: bucket counts not cumulative (le=${group.buckets[i][0]})`)
    }
    const last = group.buckets[group.buckets.length - 1]
    if (last[0] !== Infinity) throw new Error(`${where}: no le="+Inf" bucket`)
    if (group.count === undefined) throw new Error(`${where}: no _count`)
    if (group.sum === undefined) throw new Error(`${where}: no _sum`)
    if (last[1] !== group.count) throw new Error(`${where}: the +Inf bucket (${last[1]}) is not the count (${group.count})`)
  }
}

/**
 * Parses a scrape; throws on a malformed line, a sample without its TYPE
 * first, a TYPE or HELP given twice, a family whose samples are not
 * together, a duplicate series, a malformed histogram, a counter without
 * `_total`, a negative counter, or a metric without HELP.
 */
export function parseExposition (text: string): Map<string, Family> {
  const families = new Map<string, Family>()
  const series = new Set<string>()
  const done = new Set<string>()
  const typed = new Set<string>()
  let currentFamily: Family | undefined
  if (text.length > 0 && !text.endsWith('\n')) throw new Error('the exposition does not end with a line feed')
  const lines = text.split('\n')
  lines.pop()
  lines.forEach((line, index) => {
    const lineNumber = index + 1
    if (line.trim() === '') return
    if (line.startsWith('#')) {
      const match = /^# (HELP|TYPE) (\S+)(?: (.*))?$/.exec(line)
      // Any other comment is allowed and ignored.
      if (match === null) return
      const [, keyword, name, rest = ''] = match
      if (!METRIC_NAME.test(name)) fail(lineNumber, line, `invalid metric name ${name}`)
      let family = families.get(name)
      if (family !== undefined && done.has(name)) fail(lineNumber, line, `${name}: ${keyword} after its samples ended`)
      if (family === undefined) {
        if (currentFamily !== undefined) done.add(currentFamily.name)
        family = { name, type: 'untyped', help: undefined, samples: [] }
        families.set(name, family)
      }
      currentFamily = family
      if (keyword === 'HELP') {
        if (family.help !== undefined) fail(lineNumber, line, `${name}: HELP twice`)
        family.help = unescapeHelp(rest, lineNumber, line)
      } else {
        if (typed.has(name)) fail(lineNumber, line, `${name}: TYPE twice`)
        if (family.samples.length > 0) fail(lineNumber, line, `${name}: TYPE after its first sample`)
        if (!KINDS.has(rest)) fail(lineNumber, line, `${name}: unknown type ${rest}`)
        family.type = rest as MetricKind
        typed.add(name)
      }
      return
    }
    const nameMatch = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(line)
    if (nameMatch === null) fail(lineNumber, line, 'a sample line must start with a metric name')
    const name = nameMatch[0]
    let rest = line.slice(name.length)
    let labels: Record<string, string> = Object.create(null)
    if (rest.startsWith('{')) {
      const parsed = parseLabels(line, name.length, lineNumber)
      labels = parsed.labels
      rest = line.slice(parsed.end)
    }
    const parts = rest.split(' ')
    if (parts[0] !== '' || parts.length < 2 || parts.length > 3) fail(lineNumber, line, 'expected one space, a value and an optional timestamp')
    const value = parseValue(parts[1], lineNumber, line)
    if (parts.length === 3 && !/^-?\d+$/.test(parts[2])) fail(lineNumber, line, 'invalid timestamp')
    const family = familyOf(name, families)
    if (family === undefined) fail(lineNumber, line, `sample ${name} before any TYPE or HELP of its family`)
    if (family !== currentFamily) {
      if (done.has(family.name)) fail(lineNumber, line, `${family.name}: its samples are not all together`)
      if (currentFamily !== undefined) done.add(currentFamily.name)
      currentFamily = family
    }
    if (family.type === 'histogram' && name !== family.name + '_bucket' && 'le' in labels) fail(lineNumber, line, 'le on a sample that is not a bucket')
    const key = seriesKey(name, labels)
    if (series.has(key)) fail(lineNumber, line, 'duplicate series')
    series.add(key)
    family.samples.push({ name, labels: { ...labels }, value })
  })
  for (const family of families.values()) {
    if (family.help === undefined || family.help === '') throw new Error(`${family.name}: no HELP`)
    if (family.type === 'untyped') throw new Error(`${family.name}: no TYPE`)
    if (family.type === 'histogram') checkHistogram(family)
    if (family.type === 'counter') {
      if (!family.name.endsWith('_total')) throw new Error(`${family.name}: a counter's name should end in _total`)
      for (const sample of family.samples) if (sample.value < 0 || Number.isNaN(sample.value)) throw new Error(`${family.name}: a counter at ${sample.value}`)
    }
    if (/[A-Z]/.test(family.name)) throw new Error(`${family.name}: metric names are snake_case`)
  }
  return families
}

/** The number of series (sample lines) of a scrape. */
export function seriesCount (families: Map<string, Family>): number {
  let count = 0
  for (const family of families.values()) count += family.samples.length
  return count
}

/**
 * The value of the one sample named `name` whose labels include `labels`;
 * 0 when none matches (a labelled series that never happened is not shown),
 * and a throw when several do.
 */
export function valueOf (families: Map<string, Family>, name: string, labels: Record<string, string> = {}): number {
  const family = familyOf(name, families)
  if (family === undefined) throw new Error(`no metric ${name} in the scrape`)
  const matches = family.samples.filter((sample) => sample.name === name && Object.entries(labels).every(([key, value]) => sample.labels[key] === value))
  if (matches.length > 1) throw new Error(`${matches.length} samples of ${name} match ${JSON.stringify(labels)}`)
  return matches[0]?.value ?? 0
}
