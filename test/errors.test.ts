import t from 'tap'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import type { FastifyError } from '@fastify/error'
import { CloseCode, ErrorFrameCode } from '../lib/constants'
import { errors } from '../lib/errors'
import entry = require('../lib/index')

// lib/index.ts assigns module.exports, which TypeScript does not see as
// exports: the public types say what the entry is.
const pkg = entry as unknown as typeof import('../types/index')

const root = join(__dirname, '..')
const declarations = readFileSync(join(root, 'types', 'index.d.ts'), 'utf8')

type AnyErrorConstructor = new (...args: unknown[]) => FastifyError
const table = errors as unknown as Record<string, AnyErrorConstructor>
const codes = Object.keys(table)

/** The body of `export const <name>: { … }` in types/index.d.ts. */
function declaredBlock (name: string): string {
  const start = declarations.indexOf(`export const ${name}: {`)
  if (start === -1) throw new Error(`types/index.d.ts declares no "export const ${name}"`)
  const end = declarations.indexOf('\n  }\n', start)
  return declarations.slice(start, end)
}

interface DeclaredError { code: string, statusCode: number | undefined, arity: number }

/** Each `FST_…: FastifyErrorConstructor<{ code: '…', statusCode?: n }, [args]>` of the `errors` declaration. */
function declaredErrors (): Map<string, DeclaredError> {
  const found = new Map<string, DeclaredError>()
  const line = /^\s*(\w+): FastifyErrorConstructor<\{ code: '([^']*)'(?:, statusCode: (\d+))? \}, \[([^\]]*)\]>/gm
  for (const [, key, code, statusCode, args] of declaredBlock('errors').matchAll(line)) {
    found.set(key, {
      code,
      statusCode: statusCode === undefined ? undefined : Number(statusCode),
      // `{ cause }` is @fastify/error's options argument, not a `%s` of the message.
      arity: args.split(',').filter((arg) => arg.trim() !== '' && !arg.includes('cause')).length
    })
  }
  return found
}

/** Bad arguments and bad options are TypeErrors; the others are plain Errors. */
const TYPE_ERRORS = new Set([
  'FST_NEXUS_INVALID_OPTION',
  'FST_NEXUS_INVALID_ROUTE',
  'FST_NEXUS_INVALID_ROOM',
  'FST_NEXUS_UNKNOWN_SOCKET',
  'FST_NEXUS_INVALID_DATA'
])

const STATUS_CODES: Record<string, number> = {
  FST_NEXUS_UNAUTHORIZED: 401,
  FST_NEXUS_ORIGIN_NOT_ALLOWED: 403,
  FST_NEXUS_AUTH_TIMEOUT: 503,
  FST_NEXUS_NOT_WEBSOCKET: 404,
  FST_NEXUS_SHUTTING_DOWN: 503,
  FST_NEXUS_HISTORY_UNAVAILABLE: 503,
  FST_NEXUS_PRESENCE_UNAVAILABLE: 503
}

t.test('the package exports the table of lib/errors.ts', async (t) => {
  t.equal(pkg.errors, errors)
  t.equal(pkg.default.errors, errors)
  t.equal(pkg.nexusRealtime.errors, errors)
})

t.test('the table is not empty', async (t) => {
  t.ok(codes.length > 0)
})

t.test('every key equals the code of its instance', async (t) => {
  for (const key of codes) {
    const error = new table[key]()
    t.equal(error.code, key, key)
    t.equal(error.name, 'FastifyError', `${key} name`)
    t.ok(error instanceof Error, `${key} is an Error`)
    t.ok(error instanceof table[key], `${key} instanceof its constructor`)
    t.match(String(error), `[${key}]`, `${key} toString carries the code`)
  }
})

t.test('every code starts with FST_NEXUS_ and is upper snake case', async (t) => {
  for (const key of codes) t.match(key, /^FST_NEXUS_[A-Z0-9]+(?:_[A-Z0-9]+)*$/, key)
})

t.test('the table and the errors declaration of types/index.d.ts list the same codes', async (t) => {
  const declared = declaredErrors()
  t.ok(declared.size > 0, 'the declaration was parsed')
  for (const key of codes) t.ok(declared.has(key), `${key} is declared in types/index.d.ts`)
  for (const key of declared.keys()) t.ok(key in table, `${key} declared in types/index.d.ts is in the table`)
  t.same([...declared.keys()].sort(), [...codes].sort())
})

t.test('each declaration names its own code and the status code the error has', async (t) => {
  for (const [key, declared] of declaredErrors()) {
    t.equal(declared.code, key, `${key}: declared code`)
    const Ctor = table[key]
    if (Ctor === undefined) continue
    if (declared.statusCode !== undefined) {
      t.equal(new Ctor().statusCode, declared.statusCode, `${key}: declared statusCode`)
    }
  }
})

t.test('each declaration takes as many arguments as its message has %s', async (t) => {
  for (const [key, declared] of declaredErrors()) {
    const Ctor = table[key]
    if (Ctor === undefined) continue
    // Without arguments, the message is the template itself.
    const template = new Ctor().message
    t.equal(template.split('%s').length - 1, declared.arity, `${key}: "${template}"`)
    const args = Array.from({ length: declared.arity }, (_, i) => `<arg${i}>`)
    const message = new Ctor(...args).message
    t.notMatch(message, '%s', `${key}: every placeholder is filled`)
    for (const arg of args) t.match(message, arg, `${key}: the message says ${arg}`)
  }
})

t.test('errors for bad arguments are TypeErrors, the others are not', async (t) => {
  for (const key of codes) {
    const error = new table[key]()
    t.equal(error instanceof TypeError, TYPE_ERRORS.has(key), `${key} ${TYPE_ERRORS.has(key) ? 'is' : 'is not'} a TypeError`)
  }
  for (const key of TYPE_ERRORS) t.ok(key in table, `${key} exists`)
})

t.test('status codes', async (t) => {
  for (const key of codes) {
    t.equal(new table[key]().statusCode, STATUS_CODES[key] ?? 500, key)
  }
})

t.test('a constructor called without new still builds the coded error', async (t) => {
  const build = errors.FST_NEXUS_INVALID_ROOM as unknown as (...args: unknown[]) => FastifyError
  const error = build('the string ""')
  t.ok(error instanceof errors.FST_NEXUS_INVALID_ROOM)
  t.equal(error.code, 'FST_NEXUS_INVALID_ROOM')
  t.match(error.message, 'the string ""')
})

t.test('CloseCode and ErrorFrameCode agree with types/index.d.ts and are frozen', async (t) => {
  for (const [name, values] of [['CloseCode', CloseCode], ['ErrorFrameCode', ErrorFrameCode]] as const) {
    const declared: Record<string, unknown> = {}
    for (const [, key, value] of declaredBlock(name).matchAll(/readonly (\w+): (\d+|'[^']*')/g)) {
      declared[key] = value.startsWith("'") ? value.slice(1, -1) : Number(value)
    }
    t.ok(Object.keys(declared).length > 0, `${name}: the declaration was parsed`)
    t.same(values, declared, name)
    t.ok(Object.isFrozen(values), `${name} is frozen`)
  }
  t.equal(pkg.CloseCode, CloseCode)
  t.equal(pkg.ErrorFrameCode, ErrorFrameCode)
  for (const code of Object.values(ErrorFrameCode)) t.match(code, /^[A-Z]+(?:_[A-Z]+)*$/, code)
})

t.test('every code is documented in README.md', async (t) => {
  const path = join(root, 'README.md')
  t.ok(existsSync(path), 'README.md exists')
  const readme = existsSync(path) ? readFileSync(path, 'utf8') : ''
  for (const key of codes) t.ok(readme.includes(key), `README.md documents ${key}`)
  for (const code of Object.values(ErrorFrameCode)) t.ok(readme.includes(code), `README.md documents the error frame code ${code}`)
})

t.test('error messages describe the value they received, briefly', async (t) => {
  const { describe: describeValue } = await import('../lib/errors')
  t.equal(describeValue('room'), 'the string "room"')
  t.equal(describeValue('x'.repeat(300)), `the string "${'x'.repeat(60)}…" (300 characters)`)
  t.equal(describeValue(undefined), 'undefined')
  t.equal(describeValue(null), 'null')
  t.equal(describeValue([1]), 'an array')
  t.equal(describeValue(new Map()), 'an object (Map)')
  t.equal(describeValue(Object.create(null)), 'an object (null prototype)')
  t.equal(describeValue(Object.create(Object.create(null))), 'an object (object)', 'a prototype without a constructor')
  t.equal(describeValue({ constructor: { name: { toString: 1 } } }), 'an object (Object)', 'own keys a client chose are not read')
  t.equal(describeValue(() => {}), 'a function')
  t.equal(describeValue(42), 'number 42')
})
