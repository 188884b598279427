import t from 'tap'
import Fastify from 'fastify'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import nexusRealtime from '../lib/index'
// The opt-in types of `listen: 'positional'` (fastify-nexus-realtime/listen).
import type {} from '../types/listen'
import { connect } from './helpers/server'

/** An app whose listen is opted in to the document's positional forms. */
async function app () {
  const instance = Fastify()
  await instance.register(nexusRealtime, { listen: 'positional' })
  instance.ws('/ws', { onConnect: (socket) => { socket.send('hello') } })
  return instance
}

t.test("with listen: 'positional', the document's app.listen(port, callback) works on Fastify 5", async (t) => {
  const server = await app()
  t.teardown(() => server.close())
  const address = await new Promise<string>((resolve, reject) => {
    server.listen(0, (err, address) => { if (err === null) resolve(address); else reject(err) })
  })
  t.match(address, /^http:\/\/(localhost|127\.0\.0\.1|\[::1\]):\d+$/)
  const { port } = server.server.address() as { port: number }
  const client = await connect(`ws://127.0.0.1:${port}/ws`)
  await client.waitFor(1)
  t.same(client.messages, ['hello'])
})

t.test('listen(port, host, callback), listen(port) as a promise, and a numeric string', async (t) => {
  const a = await app()
  t.teardown(() => a.close())
  await new Promise<void>((resolve) => { a.listen('0', '127.0.0.1', () => resolve()) })
  t.equal((a.server.address() as { address: string }).address, '127.0.0.1')

  const b = await app()
  t.teardown(() => b.close())
  const address = await b.listen(0, '127.0.0.1')
  t.match(address, /^http:\/\/127\.0\.0\.1:\d+$/)
})

t.test('a non-numeric string is a socket path; the options form is untouched', async (t) => {
  const path = join(mkdtempSync(join(tmpdir(), 'nexus-')), 'app.sock')
  const a = await app()
  t.teardown(() => a.close())
  await a.listen(path)
  t.equal(a.server.address(), path)

  const b = await app()
  t.teardown(() => b.close())
  const address = await b.listen({ host: '127.0.0.1', port: 0 })
  t.match(address, /^http:\/\/127\.0\.0\.1:\d+$/)
})

t.test("without the option, the plugin leaves Fastify's listen alone", async (t) => {
  const plain = Fastify()
  const original = plain.listen
  await plain.register(nexusRealtime)
  t.teardown(() => plain.close())
  t.equal(plain.listen, original, 'the same function as before register')
  // Fastify 5's own behaviour: a port number is not an options object.
  t.throws(() => { (plain.listen as unknown as (port: number, callback: () => void) => void)(0, () => {}) }, TypeError)
})

t.test('the option patches only the instance it is registered on', async (t) => {
  const patched = await app()
  t.teardown(() => patched.close())
  const other = Fastify()
  t.teardown(() => other.close())
  const original = other.listen
  t.not(patched.listen, original)
  t.equal(other.listen, original, "another Fastify instance's listen is its own")
  t.throws(() => { other.listen(9091, () => {}) }, TypeError, 'and still refuses a port number')
})

t.test('listen accepts only the string positional', async (t) => {
  for (const bad of [true, 'yes', 3000]) {
    const instance = Fastify()
    await t.rejects(async () => { await instance.register(nexusRealtime, { listen: bad as 'positional' }) }, {
      code: 'FST_NEXUS_INVALID_OPTION',
      message: /^Invalid option "listen": expected 'positional' \(or left out\)/
    }, String(bad))
  }
})
