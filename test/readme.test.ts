import t from 'tap'
import { existsSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import ts from 'typescript'

// Every ```ts, ```tsx and ```js block of README.md must compile as written,
// against the package's own types as users import them: 'fastify-nexus-realtime'
// and 'fastify-nexus-realtime/client' resolve through package.json "exports"
// (types/index.d.ts and the client's built dist/client/index.d.ts: `npm test`
// builds before tap). Each block is its own module (so top-level await and
// imports work, and a block's own `const app` hides the prelude's). A failing
// block fails the test named after its line.
//
// The prelude below is everything a block may use without importing or
// declaring it: a README snippet continues an app or a client the reader has
// already made, and calls the app's own functions, which the README leaves
// undefined. Nothing else is assumed: a block that uses the plugin, a class
// or a type imports it.

// Two TypeScript programs over the whole API: slow under a loaded test run.
t.setTimeout(180000)

const root = join(__dirname, '..')
const readmePath = join(root, 'README.md')

const PRELUDE = `
import type { FastifyInstance } from 'fastify'
import type {} from 'fastify-nexus-realtime'
import type { NexusClient } from 'fastify-nexus-realtime/client'

declare global {
  /** The app being built: \`const app = Fastify()\`, then \`await app.register(nexusRealtime)\`. */
  const app: FastifyInstance
  /** A client made as in "Client": \`new NexusClient(url)\`. */
  const client: NexusClient
  /** The URL of a route, e.g. 'wss://example.com/ws/chat'. */
  const url: string
  /** The app's own functions. */
  function verifyToken (token: string): Promise<{ id: string, name: string }>
  function isMember (userId: string, room: string, params: unknown): Promise<boolean>
  function getToken (): string
  function render (data: unknown): void
  function show (from: string, text: string): void
  /** An invitation code the page was given. */
  const invite: string
}
`

/** Blocks checked beside the sources they import, by their first line. */
const PLACES: Record<string, string> = {
  // The React example's hook (examples/react/src/useRealtime.ts).
  "import { useRealtime } from './useRealtime'": join(root, 'examples', 'react', 'src')
}

interface Block {
  /** README.md line of the opening fence */
  line: number
  lang: 'ts' | 'tsx' | 'js'
  code: string
}

function extractBlocks (markdown: string): Block[] {
  const blocks: Block[] = []
  const lines = markdown.split('\n')
  for (let i = 0; i < lines.length; i++) {
    const open = /^(\s*)```(ts|tsx|js)\s*$/.exec(lines[i])
    if (open === null) continue
    const indent = open[1].length
    const body: string[] = []
    let j = i + 1
    for (; j < lines.length && !/^\s*```\s*$/.test(lines[j]); j++) body.push(lines[j].slice(Math.min(indent, lines[j].length - lines[j].trimStart().length)))
    blocks.push({ line: i + 1, lang: open[2] as Block['lang'], code: body.join('\n') })
    i = j
  }
  return blocks
}

const blocks = extractBlocks(readFileSync(readmePath, 'utf8'))

t.test('README.md has code blocks to check', async (t) => {
  t.ok(blocks.length >= 10, `${blocks.length} blocks`)
  t.ok(existsSync(join(root, 'dist', 'client', 'index.d.ts')), 'the client types are built (npm run build)')
})

/**
 * One program for the given blocks: virtual files in the project, the rest
 * from disk. JavaScript is checked with the same strictness except for
 * implicit `any`s, which plain JavaScript has no way to annotate.
 */
function check (blocks: Block[], js: boolean): Map<Block, string[]> {
  const files = new Map<string, string>()
  const fileOf = new Map<Block, string>()
  const preludeFile = join(root, 'test', '.readme-prelude.d.ts')
  files.set(preludeFile, PRELUDE)
  for (const block of blocks) {
    const dir = PLACES[block.code.split('\n')[0]] ?? join(root, 'test')
    const ext = block.lang === 'js' ? 'mjs' : block.lang === 'tsx' ? 'tsx' : 'mts'
    const file = join(dir, `.readme-line-${block.line}.${ext}`)
    // `export {}` makes every block a module without moving its lines.
    files.set(file, `${block.code}\nexport {}\n`)
    fileOf.set(block, file)
  }

  const options: ts.CompilerOptions = {
    strict: true,
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.ESNext,
    moduleResolution: ts.ModuleResolutionKind.Bundler,
    lib: ['lib.es2022.d.ts', 'lib.dom.d.ts', 'lib.dom.iterable.d.ts'],
    types: ['node'],
    jsx: ts.JsxEmit.ReactJSX,
    allowJs: js,
    checkJs: js,
    noImplicitAny: !js,
    esModuleInterop: true,
    skipLibCheck: true,
    noEmit: true
  }
  const host = ts.createCompilerHost(options)
  const { getSourceFile, fileExists, readFile } = host
  host.fileExists = (name) => files.has(name) || fileExists.call(host, name)
  host.readFile = (name) => files.get(name) ?? readFile.call(host, name)
  host.getSourceFile = (name, language, onError, create) => {
    const text = files.get(name)
    return text === undefined ? getSourceFile.call(host, name, language, onError, create) : ts.createSourceFile(name, text, language, true)
  }
  const program = ts.createProgram([...files.keys()], options, host)

  const format = (diagnostic: ts.Diagnostic): string => ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n')
  const result = new Map<Block, string[]>()
  const preludeErrors = ts.getPreEmitDiagnostics(program, program.getSourceFile(preludeFile)).map(format)
  if (preludeErrors.length > 0) throw new Error(`the prelude does not compile: ${preludeErrors.join('; ')}`)
  for (const block of blocks) {
    const source = program.getSourceFile(fileOf.get(block) as string)
    const diagnostics = [...program.getSyntacticDiagnostics(source), ...program.getSemanticDiagnostics(source)]
    result.set(block, diagnostics.map((diagnostic) => {
      const at = diagnostic.start === undefined ? 0 : (source as ts.SourceFile).getLineAndCharacterOfPosition(diagnostic.start).line
      // The fence is the block's line 0.
      return `README.md:${block.line + 1 + at}: ${format(diagnostic)}`
    }))
  }
  return result
}

t.test('every ts, tsx and js block of README.md compiles', async (t) => {
  const results = new Map([
    ...check(blocks.filter((block) => block.lang !== 'js'), false),
    ...check(blocks.filter((block) => block.lang === 'js'), true)
  ])
  for (const block of blocks) {
    const errors = results.get(block) ?? []
    t.same(errors, [], `README.md line ${block.line} (\`\`\`${block.lang})${errors.length > 0 ? ':\n  ' + errors.join('\n  ') : ''}`)
  }
})

t.test('the extraction reads indented blocks and names the fence line', async (t) => {
  const found = extractBlocks('text\n\n  ```ts\n  const a = 1\n    a\n  ```\n\n```sh\nnpm test\n```\n```js\nx\n```\n')
  t.same(found, [
    { line: 3, lang: 'ts', code: 'const a = 1\n  a' },
    { line: 11, lang: 'js', code: 'x' }
  ])
  t.equal(dirname(readmePath), root)
})
