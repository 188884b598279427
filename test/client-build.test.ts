import t from 'tap'
import { execFile } from 'node:child_process'
import { readFileSync, statSync } from 'node:fs'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { gzipSync } from 'node:zlib'
import ts from 'typescript'

// The client as it ships: dist/client/, built by `npm run build` (client/build.mjs).
const root = join(__dirname, '..')
const dist = join(root, 'dist', 'client')
const MJS = join(dist, 'index.mjs')
const CJS = join(dist, 'index.cjs')
const DTS = join(dist, 'index.d.ts')
const LIMIT = 6144

const run = promisify(execFile)

/**
 * Node without tap's coverage collection: dist/ is a build of client/index.ts
 * (whose coverage the other suites measure), not a second source.
 */
function node (args: string[]): Promise<{ stdout: string }> {
  const env = { ...process.env }
  delete env.NODE_V8_COVERAGE
  delete env.NODE_OPTIONS
  return run(process.execPath, args, { cwd: root, env })
}

t.test('dist/client is built from the current client/index.ts', async (t) => {
  const source = statSync(join(root, 'client', 'index.ts')).mtimeMs
  for (const file of [MJS, CJS, DTS]) {
    t.ok(statSync(file, { throwIfNoEntry: false }), `${file} exists (npm run build)`)
    t.ok((statSync(file, { throwIfNoEntry: false })?.mtimeMs ?? 0) >= source, `${file} is not older than client/index.ts (npm run build)`)
  }
})

t.test('the ES module is at most 6 KB minified and gzipped, and imports nothing', async (t) => {
  const code = readFileSync(MJS, 'utf8')
  const esbuild: typeof import('esbuild') = require('esbuild')
  const minified = esbuild.transformSync(code, { minify: true, format: 'esm' }).code
  const size = gzipSync(minified, { level: 9 }).length
  t.comment(`dist/client/index.mjs: ${code.length} bytes, ${minified.length} minified, ${size} minified + gzipped (limit ${LIMIT})`)
  t.ok(size <= LIMIT, `${size} bytes <= ${LIMIT}`)
  for (const [name, text] of [['index.mjs', minified], ['index.cjs', esbuild.transformSync(readFileSync(CJS, 'utf8'), { minify: true }).code]]) {
    t.notMatch(text, /\bimport\s*[\s{*'"(]|\bimport\.meta\b/, `${name} has no import`)
    t.notMatch(text, /\brequire\s*\(/, `${name} has no require`)
  }
  // esbuild's own view: bundling the module needs nothing outside it.
  const bundle = esbuild.buildSync({ entryPoints: [MJS], bundle: true, write: false, metafile: true, format: 'esm', platform: 'neutral' })
  t.same(Object.keys(bundle.metafile.inputs), ['dist/client/index.mjs'], 'the bundle has one input')
})

t.test('package.json exports ./client for import and require, with the same API', async (t) => {
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'))
  t.same(pkg.exports['./client'], {
    types: './dist/client/index.d.ts',
    import: './dist/client/index.mjs',
    require: './dist/client/index.cjs'
  })
  const script = `
    const cjs = require('fastify-nexus-realtime/client')
    import('fastify-nexus-realtime/client').then((esm) => {
      console.log(JSON.stringify({
        cjs: Object.keys(cjs).sort(), esm: Object.keys(esm).sort(),
        cjsPath: require.resolve('fastify-nexus-realtime/client'),
        functions: [typeof cjs.NexusClient, typeof esm.NexusClient, typeof esm.Subscription]
      }))
    })`
  const { stdout } = await node(['-e', script])
  const result = JSON.parse(stdout)
  t.same(result.cjs, ['NexusClient', 'Subscription'])
  t.same(result.esm, ['NexusClient', 'Subscription'])
  t.equal(result.cjsPath, CJS)
  t.same(result.functions, ['function', 'function', 'function'])
})

t.test('without a WebSocket class the constructor says what to pass', async (t) => {
  // Node 20 has no global WebSocket (without --experimental-websocket).
  const script = `
    const { NexusClient } = require('./dist/client/index.cjs')
    try { new NexusClient('ws://127.0.0.1:1/ws') } catch (e) { console.log(e.constructor.name + ': ' + e.message) }`
  const { stdout } = await node(['-e', script])
  t.match(stdout, /^TypeError: No WebSocket class: pass one/)
})

// Typed usage, checked against dist/client/index.d.ts alone.
const usage = (dts: string): string => `
import { NexusClient, type NexusError, type Subscription, type ClientState } from ${JSON.stringify(dts)}
interface ChatIn { type: 'chat', text: string }
interface ChatOut { text: string }
declare function sink (...values: unknown[]): void
const client = new NexusClient<ChatIn, ChatOut>('ws://localhost:3000/ws', {
  params: async () => ({ token: 'secret', n: 1, skip: undefined }),
  reconnect: { minDelay: 100, maxDelay: 1000 },
  requestTimeout: 5000,
  buffer: { maxMessages: 10 }
})
new NexusClient('ws://x', { reconnect: false, params: { a: 'b' } })
client.on('message', (data, info) => sink(data.text, info.room, info.offset))
client.on('state', (state: ClientState, info) => sink(state, info?.code, info?.reason))
client.on('error', (error: NexusError) => sink(error.code, error.message, error.closeCode, error.details))
client.on('resume', ({ room, recovered, missed, reason }) => sink(room, recovered, missed, reason))
client.send({ text: 'hi' })
// @ts-expect-error the outgoing type is checked
client.send({ txt: 'hi' })
// @ts-expect-error events are checked
client.on('nope', () => {})
const answer: Promise<{ ok: boolean }> = client.request<{ ok: boolean }>({ text: 'q' }, { timeout: 300 })
const sub: Subscription<ChatIn> = client.subscribe('chat:42', { params: { invite: 'x' }, presence: true })
sub.on('message', (data, { offset }) => sink(data.type, offset))
sub.on('subscribed', ({ recovered, missed }) => sink(recovered, missed))
sub.on('error', ({ code, message, temporary }) => sink(code, message, temporary === true))
sub.on('presence', (members, { members: n, connections }) => sink(members?.map((m) => [m.key, m.meta, m.connections]), n, connections))
sub.on('unsubscribed', () => sink(sub.room, sub.state))
const other = client.subscribe<number>('counter')
other.on('message', (n) => sink(n.toFixed()))
sub.unsubscribe()
client.off('message', sink)
client.close()
sink(answer, client.state, client.id)
`

t.test('index.d.ts stands alone (ES2020 lib only, no DOM, no Node types) and types the usage', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'nexus-client-types-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const file = join(dir, 'usage.ts')
  await writeFile(file, usage(join(dist, 'index')))
  const program = ts.createProgram([file], {
    strict: true,
    noEmit: true,
    lib: ['lib.es2020.d.ts'],
    types: [],
    target: ts.ScriptTarget.ES2020,
    module: ts.ModuleKind.ES2020,
    moduleResolution: ts.ModuleResolutionKind.Node10,
    skipLibCheck: false
  })
  const diagnostics = ts.getPreEmitDiagnostics(program).map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n'))
  t.same(diagnostics, [], 'no type errors')
  const dts = readFileSync(DTS, 'utf8')
  t.notMatch(dts, /\b_emit\b|\b_l\b|\b_sub\b|\b_unsub\b/, 'internals are stripped from the types')
})
