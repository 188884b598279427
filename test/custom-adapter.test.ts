import t from 'tap'
import { EventEmitter } from 'node:events'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { EmitterAdapter } from '../examples/custom-adapter/emitter-adapter'
import { runExample, printed } from './helpers/examples'
import { root } from './helpers/processes'
import { build, connect, listen } from './helpers/server'
import { until } from './helpers/wait'

// The README's minimal custom adapter (examples/custom-adapter), run for real.

t.test('a custom adapter: two apps share a room, each broadcast reaches every client once', async (t) => {
  const bus = new EventEmitter()
  const apps = await Promise.all(['a', 'b'].map(async (name) => {
    const app = await build(t, { adapter: new EmitterAdapter(bus) })
    app.ws('/ws', {
      onConnect: (socket) => { app.getWebSocket().joinRoom('lobby', socket) },
      onMessage: (_socket, message) => { app.getWebSocket().broadcast('lobby', { from: name, message }) }
    })
    return app
  }))
  const [a, b] = await Promise.all(apps.map(async (app) => await connect(`${await listen(app)}/ws`)))
  await until(() => apps.every((app) => app.getWebSocket().roomSize('lobby') === 1))
  a.send({ text: 'hello' })
  await Promise.all([a.waitFor(1), b.waitFor(1)])
  t.same([a.messages, b.messages], [[{ from: 'a', message: { text: 'hello' } }], [{ from: 'a', message: { text: 'hello' } }]])

  // Once app b has no member in the room, its adapter lets the room's broadcasts pass by.
  apps[1].getWebSocket().leaveRoom('lobby', apps[1].getWebSocket().socketsIn('lobby')[0])
  t.equal(apps[0].getWebSocket().broadcast('lobby', 'after leave'), 1)
  t.equal(apps[0].getWebSocket().broadcastAll('to all'), 1)
  await Promise.all([a.waitFor(3), b.waitFor(2)])
  t.same(b.messages.slice(1), ['to all'])

  await apps[1].close()
  t.equal(bus.listenerCount('broadcast'), 1, 'close removed the listener it added')
})

t.test('the custom-adapter example runs: a message sent to one app reaches the clients of both', async (t) => {
  const example = runExample(t, 'examples/custom-adapter/server.ts')
  await printed(example, 'app b on', 20000)
  const urls = [...example.output().matchAll(/on (ws:\/\/\S+)/g)].map((match) => match[1])
  t.equal(urls.length, 2)
  const clients = await Promise.all(urls.map(async (url) => await connect(url)))
  t.teardown(() => { for (const client of clients) client.close() })
  clients[1].send({ text: 'hi' })
  await Promise.all(clients.map((client) => client.waitFor(1)))
  for (const client of clients) t.same(client.messages, [{ from: 'b', message: { text: 'hi' } }])
})

t.test('the README shows the example adapter exactly as it is in examples/', async (t) => {
  const readme = readFileSync(join(root, 'README.md'), 'utf8')
  const code = readFileSync(join(root, 'examples/custom-adapter/emitter-adapter.ts'), 'utf8')
  t.ok(readme.includes('```ts\n' + code + '```'), 'README.md holds examples/custom-adapter/emitter-adapter.ts verbatim')
})
