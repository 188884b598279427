import t from 'tap'
import { execFile } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { CloseCode, ErrorFrameCode } from '../lib/constants'
import { errors } from '../lib/errors'
import { ADAPTER_METHODS } from '../lib/options'

// These tests run the BUILT package (dist/, as `npm test` builds it before
// tap) in child processes, resolved by its own name through package.json
// "exports", exactly as an application would load it.

const root = join(__dirname, '..')
const manifest = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'))
const NAME: string = manifest.name

interface Run {
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
  /** ms from the child's `closed` line to its exit; null when it never printed one */
  exitDelay: number | null
}

/** The environment of the children, without tap's instrumentation. */
function childEnv (): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const [key, value] of Object.entries(process.env)) {
    // The children run the built dist/: they are kept out of tap's coverage of lib/.
    if (key === 'NODE_OPTIONS' || key === 'NODE_V8_COVERAGE' || key.startsWith('_TAPJS') || key.startsWith('TAP')) continue
    env[key] = value
  }
  return env
}

/** Runs `node [...args] -e script` in the project root; never rejects. */
function run (script: string, args: string[] = [], timeout = 10000): Promise<Run> {
  return new Promise((resolve) => {
    let closedAt: number | null = null
    const child = execFile(process.execPath, [...args, '-e', script], { cwd: root, env: childEnv(), timeout }, (error, stdout, stderr) => {
      const exited = Date.now()
      const failure = error as (Error & { code?: number | string, signal?: NodeJS.Signals | null }) | null
      resolve({
        code: failure === null ? 0 : typeof failure.code === 'number' ? failure.code : null,
        signal: failure?.signal ?? null,
        stdout: String(stdout),
        stderr: String(stderr),
        exitDelay: closedAt === null ? null : exited - closedAt
      })
    })
    child.stdout?.on('data', (chunk: Buffer) => {
      if (closedAt === null && String(chunk).includes('closed\n')) closedAt = Date.now()
    })
  })
}

/** The last line of a child's stdout, parsed as JSON. */
function report (result: Run): any {
  const lines = result.stdout.trim().split('\n')
  try {
    return JSON.parse(lines[lines.length - 1])
  } catch {
    return undefined
  }
}

t.before(() => {
  if (!existsSync(join(root, manifest.main))) {
    throw new Error(`${manifest.main} is missing: run \`npm run build\` before these tests`)
  }
})

t.test('package.json points main, exports and types at files that exist', async (t) => {
  t.equal(manifest.exports['.'].default, `./${manifest.main}`)
  t.ok(existsSync(join(root, manifest.main)), manifest.main)
  t.equal(manifest.exports['.'].types, `./${manifest.types}`)
  t.ok(existsSync(join(root, manifest.types)), manifest.types)
})

t.test('require() through package.json "exports"', async (t) => {
  const result = await run(`
    const plugin = require(${JSON.stringify(NAME)})
    console.log(JSON.stringify({
      resolved: require.resolve(${JSON.stringify(NAME)}),
      type: typeof plugin,
      defaultIsPlugin: plugin.default === plugin,
      namedIsPlugin: plugin.nexusRealtime === plugin,
      memoryAdapter: typeof plugin.MemoryAdapter,
      adapterMethods: Object.getOwnPropertyNames(plugin.MemoryAdapter.prototype).filter((name) => name !== 'constructor'),
      errors: Object.keys(plugin.errors).map((key) => [key, typeof plugin.errors[key], new plugin.errors[key]().code]),
      CloseCode: plugin.CloseCode,
      ErrorFrameCode: plugin.ErrorFrameCode,
      skipOverride: plugin[Symbol.for('skip-override')] === true,
      meta: plugin[Symbol.for('plugin-meta')],
      version: require(${JSON.stringify(`${NAME}/package.json`)}).version
    }))
  `)
  t.equal(result.code, 0, result.stderr)
  const found = report(result)
  t.ok(found, 'the child reported')
  if (found === undefined) return
  t.equal(found.resolved, join(root, 'dist', 'index.js'))
  t.equal(found.type, 'function')
  t.equal(found.defaultIsPlugin, true, '.default is the same function')
  t.equal(found.namedIsPlugin, true, '.nexusRealtime is the same function')
  t.equal(found.memoryAdapter, 'function')
  t.same([...found.adapterMethods].sort(), [...ADAPTER_METHODS].sort(), 'MemoryAdapter has every adapter method')
  t.same(found.errors, Object.keys(errors).map((key) => [key, 'function', key]), 'errors is the coded error table')
  t.same(found.CloseCode, CloseCode)
  t.same(found.ErrorFrameCode, ErrorFrameCode)
  t.equal(found.skipOverride, true, 'wrapped with fastify-plugin: its decorators reach the app')
  t.match(found.meta, { name: NAME, fastify: '5.x' })
  t.equal(found.version, manifest.version)
})

t.test('files other than the entry are not exported', async (t) => {
  const result = await run(`
    try {
      require(${JSON.stringify(`${NAME}/dist/errors.js`)})
      console.log(JSON.stringify({ code: null }))
    } catch (error) {
      console.log(JSON.stringify({ code: error.code }))
    }
  `)
  t.equal(result.code, 0, result.stderr)
  t.same(report(result), { code: 'ERR_PACKAGE_PATH_NOT_EXPORTED' })
})

t.test('import default and import { nexusRealtime } from an ES module', async (t) => {
  const result = await run(`
    import nexusRealtime from ${JSON.stringify(NAME)}
    import { nexusRealtime as named, default as viaDefault, MemoryAdapter, errors, CloseCode, ErrorFrameCode } from ${JSON.stringify(NAME)}
    import { createRequire } from 'node:module'
    const required = createRequire(process.cwd() + '/')(${JSON.stringify(NAME)})
    console.log(JSON.stringify({
      type: typeof nexusRealtime,
      namedIsDefault: named === nexusRealtime,
      defaultOfDefault: nexusRealtime.default === nexusRealtime,
      viaDefault: viaDefault === nexusRealtime,
      sameAsRequire: required === nexusRealtime,
      memoryAdapter: MemoryAdapter === nexusRealtime.MemoryAdapter && typeof MemoryAdapter,
      errors: errors === nexusRealtime.errors && Object.keys(errors),
      closeCode: CloseCode === nexusRealtime.CloseCode,
      errorFrameCode: ErrorFrameCode === nexusRealtime.ErrorFrameCode
    }))
  `, ['--input-type=module'])
  t.equal(result.code, 0, result.stderr)
  const found = report(result)
  t.ok(found, 'the child reported')
  if (found === undefined) return
  t.equal(found.type, 'function')
  t.equal(found.namedIsDefault, true, 'the named export is the default export')
  t.equal(found.defaultOfDefault, true, '.default of the default export is itself')
  t.equal(found.viaDefault, true, '{ default } is the default export')
  t.equal(found.sameAsRequire, true, 'ESM and CommonJS load the same module instance')
  t.equal(found.memoryAdapter, 'function', 'MemoryAdapter is a named export')
  t.same(found.errors, Object.keys(errors), 'errors is a named export')
  t.equal(found.closeCode, true, 'CloseCode is a named export')
  t.equal(found.errorFrameCode, true, 'ErrorFrameCode is a named export')
})

/**
 * Registers the plugin through one import form, echoes one message to a real
 * ws client, closes the app and returns from the script: the child must then
 * exit by itself, so nothing may be left holding the event loop.
 */
function echoScript (form: string): string {
  return `
    const app = Fastify({ logger: false })
    await app.register(${form})
    app.ws('/echo', {
      onMessage: async (socket, message) => { socket.send(JSON.stringify({ echo: message })) }
    })
    await app.listen({ host: '127.0.0.1', port: 0 })
    const client = new WebSocket('ws://127.0.0.1:' + app.server.address().port + '/echo')
    const closed = new Promise((resolve) => client.on('close', (code) => resolve(code)))
    const reply = await new Promise((resolve, reject) => {
      client.on('error', reject)
      client.on('open', () => client.send(JSON.stringify({ hello: 'world' })))
      client.on('message', (data) => resolve(JSON.parse(data.toString())))
    })
    await app.close()
    const closeCode = await closed
    process.stdout.write('closed\\n')
    console.log(JSON.stringify({ reply, closeCode }))
  `
}

const cjsPrelude = `
  const Fastify = require('fastify')
  const WebSocket = require('ws')
  const nexusRealtime = require(${JSON.stringify(NAME)});
`
const esmPrelude = `
  import Fastify from 'fastify'
  import WebSocket from 'ws'
  import nexusRealtime, { nexusRealtime as named } from ${JSON.stringify(NAME)}
`

const forms: Array<{ name: string, script: string, args: string[] }> = [
  { name: "require('fastify-nexus-realtime')", script: `${cjsPrelude}(async () => {${echoScript('nexusRealtime')}})().catch((error) => { console.error(error); process.exitCode = 1 })`, args: [] },
  { name: "require('fastify-nexus-realtime').default", script: `${cjsPrelude}(async () => {${echoScript('nexusRealtime.default')}})().catch((error) => { console.error(error); process.exitCode = 1 })`, args: [] },
  { name: "require('fastify-nexus-realtime').nexusRealtime", script: `${cjsPrelude}(async () => {${echoScript('nexusRealtime.nexusRealtime')}})().catch((error) => { console.error(error); process.exitCode = 1 })`, args: [] },
  { name: "import nexusRealtime from 'fastify-nexus-realtime'", script: `${esmPrelude}${echoScript('nexusRealtime')}`, args: ['--input-type=module'] },
  { name: "import { nexusRealtime } from 'fastify-nexus-realtime'", script: `${esmPrelude}${echoScript('named')}`, args: ['--input-type=module'] },
  { name: "import nexusRealtime from 'fastify-nexus-realtime', then .default", script: `${esmPrelude}${echoScript('nexusRealtime.default')}`, args: ['--input-type=module'] }
]

for (const form of forms) {
  t.test(`${form.name}: registers, echoes to a real client, and the process exits by itself after app.close()`, async (t) => {
    const result = await run(form.script, form.args)
    t.equal(result.signal, null, 'not killed by the timeout (no handle left open)')
    t.equal(result.code, 0, result.stderr)
    t.same(report(result), { reply: { echo: { hello: 'world' } }, closeCode: 1001 }, 'echo, then close 1001 on shutdown')
    t.not(result.exitDelay, null, 'the child reached the end of its script')
    t.ok((result.exitDelay ?? Infinity) < 3000, `exited ${result.exitDelay} ms after app.close() resolved`)
  })
}
