import path from 'node:path'

/** The parts of a V8 `.cpuprofile` (written by `node --cpu-prof`) the summary reads. */
export interface CpuProfile {
  nodes: Array<{
    id: number
    callFrame: { functionName: string, url: string, lineNumber: number, columnNumber: number }
    children?: number[]
  }>
  startTime: number
  endTime: number
  samples: number[]
  timeDeltas: number[]
}

export interface ProfileEntry {
  name: string
  where: string
  ms: number
  percent: number
}

export interface ProfileSummary {
  /** sampled time inside the windows, in ms */
  totalMs: number
  /** false when the windows did not fall inside the profile and the whole profile was used */
  windowed: boolean
  /** functions by self time */
  self: ProfileEntry[]
  /** where the self time is, by module (ws, the plugin's dist/, node core, native, GC…) */
  byArea: ProfileEntry[]
  /** functions by inclusive time (self + callees) */
  inclusive: ProfileEntry[]
}

/** `node_modules/ws/lib/sender.js` → `ws/lib/sender.js`; `node:internal/...` stays; the repo's files relative to it. */
function shortUrl (url: string, root: string): string {
  if (url === '') return ''
  let file = url.startsWith('file://') ? decodeURIComponent(url.slice('file://'.length)) : url
  const modules = file.lastIndexOf('/node_modules/')
  if (modules !== -1) return file.slice(modules + '/node_modules/'.length)
  if (file.startsWith(root)) file = path.relative(root, file)
  return file
}

function areaOf (name: string, where: string): string {
  if (name === '(garbage collector)') return 'GC'
  if (name === '(program)' || name === '(idle)' || name === '(root)') return name
  if (where === '') return 'native (V8 builtins, C++ bindings: socket writes, Buffer ops)'
  if (where.startsWith('ws/')) return 'ws (sender, websocket)'
  if (where.startsWith('dist/')) return 'fastify-nexus-realtime (dist/)'
  if (where.startsWith('socket.io') || where.startsWith('engine.io')) return 'socket.io / engine.io'
  if (where.startsWith('node:internal/streams') || where.startsWith('node:net') || where.startsWith('node:internal/stream_base_commons')) return 'node streams / net (socket.write)'
  if (where.startsWith('node:')) return 'node core (other)'
  if (where.startsWith('bench/')) return 'benchmark harness (bench/)'
  return 'other JS (fastify, …)'
}

/**
 * Self and inclusive time per function, from the samples whose time falls
 * inside `windows` (monotonic µs, the clock V8 stamps samples with and the
 * one `process.hrtime` reads), so that startup and connection setup are left out.
 */
export function summarizeProfile (profile: CpuProfile, windows: ReadonlyArray<readonly [number, number]>, root: string, top = 15): ProfileSummary {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]))
  const parent = new Map<number, number>()
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id)

  const inWindows = windows.length > 0 && windows.every(([start, end]) => start >= profile.startTime - 1e6 && end <= profile.endTime + 1e6)
  const keep = (time: number): boolean => !inWindows || windows.some(([start, end]) => time >= start && time <= end)

  const self = new Map<string, number>()
  const inclusive = new Map<string, number>()
  const areas = new Map<string, number>()
  const where = new Map<string, string>()
  let total = 0
  let time = profile.startTime
  for (let i = 0; i < profile.samples.length; i++) {
    time += profile.timeDeltas[i]
    // A sample stands for the time until the next one.
    const weight = profile.timeDeltas[i + 1] ?? 0
    if (weight <= 0 || !keep(time)) continue
    const node = byId.get(profile.samples[i])
    if (node === undefined) continue
    total += weight
    const key = (id: number): string => {
      const frame = byId.get(id)!.callFrame
      const file = shortUrl(frame.url, root)
      const name = frame.functionName === '' ? '(anonymous)' : frame.functionName
      const k = file === '' ? name : `${name} ${file}:${frame.lineNumber + 1}`
      where.set(k, file)
      return k
    }
    const own = key(node.id)
    self.set(own, (self.get(own) ?? 0) + weight)
    const frame = node.callFrame
    const area = areaOf(frame.functionName, shortUrl(frame.url, root))
    areas.set(area, (areas.get(area) ?? 0) + weight)
    const seen = new Set<string>()
    for (let id: number | undefined = node.id; id !== undefined; id = parent.get(id)) {
      const k = key(id)
      if (seen.has(k)) continue
      seen.add(k)
      inclusive.set(k, (inclusive.get(k) ?? 0) + weight)
    }
  }
  const entries = (map: Map<string, number>, limit: number): ProfileEntry[] => [...map]
    .sort((a, b) => b[1] - a[1])
    .slice(0, limit)
    .map(([name, us]) => ({ name, where: where.get(name) ?? '', ms: us / 1000, percent: total === 0 ? 0 : (100 * us) / total }))
  return {
    totalMs: total / 1000,
    windowed: inWindows,
    self: entries(self, top),
    byArea: entries(areas, 20),
    inclusive: entries(new Map([...inclusive].filter(([name]) => !name.startsWith('(root)'))), top + 10)
  }
}

export function profileMarkdown (title: string, summary: ProfileSummary): string {
  const table = (entries: ProfileEntry[]): string[] => [
    '| % | ms | function |',
    '| ---: | ---: | --- |',
    ...entries.map((entry) => `| ${entry.percent.toFixed(1)} | ${entry.ms.toFixed(1)} | \`${entry.name}\` |`)
  ]
  return [
    `### ${title}`,
    '',
    `${summary.totalMs.toFixed(0)} ms of samples${summary.windowed ? ' inside the measured rounds' : ' (whole profile: the round windows did not match its clock)'}.`,
    '',
    '**Self time by area**',
    '',
    ...table(summary.byArea),
    '',
    '**Top functions by self time**',
    '',
    ...table(summary.self),
    '',
    '**Top functions by inclusive time**',
    '',
    ...table(summary.inclusive),
    ''
  ].join('\n')
}
