import { readFileSync } from 'node:fs'

/**
 * Heap snapshots (`v8.writeHeapSnapshot`) reduced to bytes and counts per
 * kind of object, and the difference of two of them per connection: what an
 * idle connection keeps alive, by constructor.
 */

export interface HeapTally {
  bytes: Map<string, number>
  counts: Map<string, number>
  total: number
}

interface Snapshot {
  snapshot: { meta: { node_fields: string[], node_types: [string[], ...unknown[]] } }
  nodes: number[]
  strings: string[]
}

export function tallySnapshot (file: string): HeapTally {
  const data = JSON.parse(readFileSync(file, 'utf8')) as Snapshot
  const fields = data.snapshot.meta.node_fields
  const types = data.snapshot.meta.node_types[0]
  const width = fields.length
  const typeAt = fields.indexOf('type')
  const nameAt = fields.indexOf('name')
  const sizeAt = fields.indexOf('self_size')
  const bytes = new Map<string, number>()
  const counts = new Map<string, number>()
  let total = 0
  for (let i = 0; i < data.nodes.length; i += width) {
    const type = types[data.nodes[i + typeAt]]
    const size = data.nodes[i + sizeAt]
    const name = data.strings[data.nodes[i + nameAt]]
    // Objects and closures by constructor / function name; strings, numbers and code by kind only.
    let key: string
    if (type === 'object' || type === 'closure') key = `${name}${type === 'closure' ? '()' : ''}`
    else if (type === 'string' || type === 'concatenated string' || type === 'sliced string' || type === 'number' || type === 'bigint') key = `(${type})`
    else key = `(${type}) ${name.length > 50 ? name.slice(0, 50) + '…' : name}`
    bytes.set(key, (bytes.get(key) ?? 0) + size)
    counts.set(key, (counts.get(key) ?? 0) + 1)
    total += size
  }
  return { bytes, counts, total }
}

export interface HeapDiffEntry {
  name: string
  bytesPerConnection: number
  countPerConnection: number
}

/** What `after` holds beyond `before`, per connection, largest first. */
export function diffPerConnection (before: HeapTally, after: HeapTally, connections: number, top = 20): { totalPerConnection: number, entries: HeapDiffEntry[] } {
  const entries: HeapDiffEntry[] = []
  for (const [name, bytes] of after.bytes) {
    const grown = bytes - (before.bytes.get(name) ?? 0)
    if (grown <= 0) continue
    entries.push({
      name,
      bytesPerConnection: grown / connections,
      countPerConnection: ((after.counts.get(name) ?? 0) - (before.counts.get(name) ?? 0)) / connections
    })
  }
  entries.sort((a, b) => b.bytesPerConnection - a.bytesPerConnection)
  return { totalPerConnection: (after.total - before.total) / connections, entries: entries.slice(0, top) }
}

export function heapMarkdown (title: string, diff: { totalPerConnection: number, entries: HeapDiffEntry[] }): string {
  return [
    `### ${title}`,
    '',
    `${(diff.totalPerConnection / 1024).toFixed(2)} KB of heap per idle connection (snapshot difference).`,
    '',
    '| bytes/conn | objects/conn | kind |',
    '| ---: | ---: | --- |',
    ...diff.entries.map((entry) => `| ${entry.bytesPerConnection.toFixed(0)} | ${entry.countPerConnection.toFixed(2)} | \`${entry.name}\` |`),
    ''
  ].join('\n')
}
