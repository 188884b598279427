import t from 'tap'
import { execFile } from 'node:child_process'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { connect } from './helpers/server'
import { inbox, startExample } from './helpers/examples'
import { root } from './helpers/processes'
import { browserSkip, launchBrowser } from './helpers/browser'

const FILE = 'examples/react/server.ts'

t.before(async () => {
  // The server serves what Vite built: build the page from the current
  // sources, as `npm run example:react:build` does.
  const env: NodeJS.ProcessEnv = { ...process.env, _TAPJS_PROCESSINFO_COVERAGE_: '0' }
  delete env.NODE_V8_COVERAGE
  await promisify(execFile)(process.execPath, [join(root, 'node_modules', 'vite', 'bin', 'vite.js'), 'build', 'examples/react'], {
    cwd: root,
    env
  })
})

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
  t.match(await bundle.text(), '/ws/chat?token=', 'the bundle holds the page\'s code')

  t.equal((await fetch(`${example.url}/assets/nope.js`)).status, 404)
  t.equal((await fetch(`${example.url}/assets/..%2Fserver.ts`)).status, 404, 'nothing outside dist/assets')

  const client = await connect(`${example.wsUrl}/ws/chat?token=user1`)
  t.teardown(() => client.close())
  t.same(await inbox(client).next(), { type: 'welcome', message: 'Welcome user1!', room: 'general' })
})

t.test('react: in a browser the page says Connected, sends, and shows what it receives', { skip: browserSkip }, async (t) => {
  const example = await startExample(t, FILE)
  const browser = await launchBrowser(t)
  const page = await browser.newPage()
  const pageErrors: string[] = []
  page.on('pageerror', (error) => pageErrors.push(error.message))

  await page.goto(`${example.url}/?token=reactor`)
  await page.getByText('Status: Connected').waitFor()
  t.pass('the page shows Status: Connected')
  // The hook records every message: the welcome is the first item.
  await page.locator('li', { hasText: '"message":"Welcome reactor!"' }).waitFor()

  // A message from another client reaches the page.
  const alice = await connect(`${example.wsUrl}/ws/chat?token=alice`)
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

  // The server going away shows on the page.
  example.child.kill('SIGTERM')
  await page.getByText('Status: Disconnected').waitFor()
  t.pass('the page shows Disconnected once the server closed')
  t.same(pageErrors, [], 'no errors in the page')
})
