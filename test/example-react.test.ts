import t from 'tap'
import { execFile } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import type { Page } from 'playwright-core'
import { connect } from './helpers/server'
import { inbox, startExample, type Example } from './helpers/examples'
import { root } from './helpers/processes'
import { browserSkip, changed, changeLog, launchBrowser, recordChanges } from './helpers/browser'

// The React example: its page (the seed's ChatComponent on the useRealtime
// hook, which uses the official client imported as
// 'fastify-nexus-realtime/client') built by Vite, served by the example's
// server, driven in Chromium.

t.setTimeout(240000)

const FILE = 'examples/react/server.ts'
/** Reconnecting waits for the client's backoff (up to 20 s between attempts) on a busy machine. */
const RECONNECT = 90000

/** Where the development build of the page goes (StrictMode mounts twice only there). */
let devDist = ''

/** `vite build examples/react` with extra arguments and environment. */
async function vite (args: string[], env: NodeJS.ProcessEnv = {}): Promise<void> {
  const childEnv: NodeJS.ProcessEnv = { ...process.env, _TAPJS_PROCESSINFO_COVERAGE_: '0', ...env }
  delete childEnv.NODE_V8_COVERAGE
  await promisify(execFile)(process.execPath, [join(root, 'node_modules', 'vite', 'bin', 'vite.js'), 'build', 'examples/react', ...args], {
    cwd: root,
    env: childEnv
  })
}

t.before(async () => {
  // The server serves what Vite built: build the page from the current
  // sources, as `npm run example:react:build` does, and once more as a
  // development build (NODE_ENV=development: React's development build).
  await vite([])
  devDist = await mkdtemp(join(tmpdir(), 'nexus-react-dev-'))
  await vite(['--outDir', devDist, '--emptyOutDir'], { NODE_ENV: 'development' })
})
t.teardown(async () => {
  if (devDist !== '') await rm(devDist, { recursive: true, force: true })
})

/** How many list items of the page hold `text`. */
async function items (page: Page, text: string): Promise<number> {
  return await page.locator('li', { hasText: text }).count()
}

t.test('react: the server serves the built page, its assets and /ws/chat', async (t) => {
  const example = await startExample(t, FILE)

  const page = await fetch(`${example.url}/`)
  t.equal(page.status, 200)
  t.match(page.headers.get('content-type'), /^text\/html/)
  const html = await page.text()
  const script = /<script type="module"[^>]* src="(\/assets\/[^"]+\.js)"/.exec(html)
  t.ok(script, 'the page loads its bundle from /assets/')

  const bundle = await fetch(`${example.url}${script?.[1]}`)
  t.equal(bundle.status, 200)
  t.match(bundle.headers.get('content-type'), /^text\/javascript/)
  const code = await bundle.text()
  t.match(code, '/ws/chat', 'the bundle holds the page\'s code')
  t.match(code, 'nexus.v1', 'and the official client')

  t.equal((await fetch(`${example.url}/assets/nope.js`)).status, 404)
  t.equal((await fetch(`${example.url}/assets/..%2Fserver.ts`)).status, 404, 'nothing outside dist/assets')

  const client = await connect(`${example.wsUrl}/ws/chat?token=user1`)
  t.teardown(() => client.close())
  t.same(await inbox(client).next(), { type: 'welcome', message: 'Welcome user1!', room: 'general' })
})

t.test('react: in a browser the page says Connected, sends, shows what it receives, and comes back after a server restart', { skip: browserSkip }, async (t) => {
  const first = await startExample(t, FILE)
  const browser = await launchBrowser(t)
  const page = await browser.newPage()
  const pageErrors: string[] = []
  page.on('pageerror', (error) => pageErrors.push(error.message))

  await page.goto(`${first.url}/?token=reactor`)
  await page.getByText('Status: Connected').waitFor()
  t.pass('the page shows Status: Connected')
  // The hook records every message: the welcome is the first item.
  await page.locator('li', { hasText: '"message":"Welcome reactor!"' }).waitFor()

  // A message from another client reaches the page.
  const alice = await connect(`${first.wsUrl}/ws/chat?token=alice`)
  t.teardown(() => alice.close())
  const toAlice = inbox(alice)
  await toAlice.next()
  await toAlice.next()
  alice.send({ type: 'chat', text: 'hi from node' })
  t.match(await toAlice.next(), { type: 'chat', user: 'alice', text: 'hi from node' })
  await page.locator('li', { hasText: '"user":"alice","text":"hi from node"' }).waitFor()
  t.pass('the page shows a chat message it received')

  // The Send button sends the seed's { type: 'chat', text: 'Hello!' }.
  await page.getByRole('button', { name: 'Send' }).click()
  t.match(await toAlice.next(), { type: 'chat', user: 'reactor', text: 'Hello!' })
  await page.locator('li', { hasText: '"user":"reactor","text":"Hello!"' }).waitFor()

  // The server goes away (1001); the page says so and keeps trying.
  await recordChanges(page, '[data-state]')
  first.child.kill('SIGTERM')
  t.equal(await first.exited, 0, 'the server exited')
  await changed(page, 'connecting', RECONNECT)
  t.equal((await changeLog(page))[0], 'disconnected Disconnected, reconnecting…', 'the page shows the drop')

  // Sent while the server is down: the client keeps it.
  await page.getByRole('button', { name: 'Send' }).click()

  // A new server on the same port.
  const second: Example = await startExample(t, FILE, { PORT: new URL(first.url).port })
  await page.getByText('Status: Connected').waitFor({ timeout: RECONNECT })
  t.pass('the page reconnected by itself')
  await page.locator('li', { hasText: '"message":"Welcome reactor!"' }).nth(1).waitFor()
  // What was sent offline went out once the page was connected again: the
  // server broadcast it to general, the page included.
  await page.locator('li', { hasText: '"user":"reactor","text":"Hello!"' }).nth(1).waitFor()

  // And it talks again both ways.
  const bob = await connect(`${second.wsUrl}/ws/chat?token=bob`)
  t.teardown(() => bob.close())
  const toBob = inbox(bob)
  await toBob.next()
  bob.send({ type: 'chat', text: 'hi after the restart' })
  await page.locator('li', { hasText: '"user":"bob","text":"hi after the restart"' }).waitFor()
  t.equal(await items(page, '"user":"reactor","text":"Hello!"'), 2, 'the message sent offline arrived once')

  const log = await changeLog(page)
  t.equal(log[log.length - 1], 'connected Connected', 'the status went back to Connected')
  t.ok(log.includes('connecting Connecting…'), 'through Connecting…')
  t.same(pageErrors, [], 'no errors in the page')
})

t.test('react: under StrictMode (development build) the double mount leaves exactly one connection', { skip: browserSkip }, async (t) => {
  const example = await startExample(t, 'test/fixtures/react-example.ts', { REACT_DIST: devDist })
  const held = async (): Promise<{ connections: number, upgrades: number }> => await (await fetch(`${example.url}/test/connections`)).json() as { connections: number, upgrades: number }
  const browser = await launchBrowser(t)
  const page = await browser.newPage()
  const pageErrors: string[] = []
  const consoleLines: string[] = []
  page.on('pageerror', (error) => pageErrors.push(error.message))
  page.on('console', (message) => consoleLines.push(message.text()))

  await page.goto(`${example.url}/?token=strict`)
  await page.getByText('Status: Connected').waitFor()
  t.ok(consoleLines.some((line) => line.includes('React DevTools')), 'the page runs React\'s development build, where StrictMode mounts twice')
  await page.locator('li', { hasText: '"message":"Welcome strict!"' }).waitFor()

  // A round trip, then count: the connection is up and in use.
  await page.getByRole('button', { name: 'Send' }).click()
  await page.locator('li', { hasText: '"user":"strict","text":"Hello!"' }).waitFor()
  t.same(await held(), { connections: 1, upgrades: 1 }, 'one connection, and no second one was ever opened')
  t.equal(await items(page, '"message":"Welcome strict!"'), 1, 'one welcome: one connection')
  t.equal(await items(page, '"user":"strict","text":"Hello!"'), 1, 'the message went once')

  // Leaving the page closes the client: the server holds nothing.
  await page.close()
  const start = Date.now()
  while ((await held()).connections !== 0) {
    if (Date.now() - start > 30000) throw new Error('the connection was not closed')
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  t.pass('closing the page closed its connection')
  t.same(pageErrors, [], 'no errors in the page')
})
