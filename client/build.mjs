// Builds the official client: tsc twice (ES module with its types, then
// CommonJS), then gives the outputs the names package.json "exports" points
// to, with their source maps. Run by `npm run build`, after the plugin's own
// build.
import { execFileSync } from 'node:child_process'
import { readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const out = join(root, 'dist', 'client')
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc')

/** Moves `from/index.js` (and its map) to `out/index<ext>`, fixing the map's references. */
function move (from, ext) {
  const name = `index${ext}`
  const code = readFileSync(join(from, 'index.js'), 'utf8')
  writeFileSync(join(out, name), code.replace(/\/\/# sourceMappingURL=index\.js\.map\s*$/, `//# sourceMappingURL=${name}.map\n`))
  const map = JSON.parse(readFileSync(join(from, 'index.js.map'), 'utf8'))
  map.file = name
  map.sources = map.sources.map((source) => relative(out, resolve(from, map.sourceRoot ?? '', source)))
  writeFileSync(join(out, `${name}.map`), JSON.stringify(map))
  if (from === out) {
    rmSync(join(out, 'index.js'))
    rmSync(join(out, 'index.js.map'))
  }
}

rmSync(out, { recursive: true, force: true })
for (const project of ['tsconfig.client.json', 'tsconfig.client-cjs.json']) {
  execFileSync(process.execPath, [tsc, '-p', join(root, project)], { stdio: 'inherit' })
}
move(out, '.mjs')
move(join(out, 'cjs'), '.cjs')
rmSync(join(out, 'cjs'), { recursive: true })
