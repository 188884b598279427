import t from 'tap'
import { mkdir } from 'node:fs/promises'
import { dirname } from 'node:path'
import type { BrowserContext, Page } from 'playwright-core'
import { startExample } from './helpers/examples'
import { browserSkip, changed, changeLog, launchBrowser, recordChanges } from './helpers/browser'

// The chat page (examples/chat/public/index.html) in Chromium, against the
// example server run as its own process, as `npm start` runs it. The page
// uses the official client, loaded from the server as it ships.

t.setTimeout(240000)

/** Reconnecting waits for the client's backoff (up to 20 s between attempts) on a busy machine. */
const RECONNECT = 90000

// CHAT_SCREENSHOT=<file.png> saves a picture of a page once two messages are in.
const screenshot = process.env.CHAT_SCREENSHOT

/** Opens the chat page, joins as `name` in `room`, and waits until connected. */
async function join (browser: BrowserContext, url: string, name: string, room: string, errors: string[]): Promise<Page> {
  const page = await browser.newPage()
  page.on('pageerror', (error) => errors.push(`${name}: ${error.message}`))
  await page.goto(`${url}/`)
  await page.locator('#name').fill(name)
  await page.locator('#room').fill(room)
  await page.getByRole('button', { name: 'Join' }).click()
  await page.locator('#status', { hasText: `Connected as ${name} in ${room}` }).waitFor()
  await page.locator('#messages li', { hasText: `You joined ${room}` }).waitFor()
  return page
}

async function say (page: Page, text: string): Promise<void> {
  await page.locator('#text').fill(text)
  await page.getByRole('button', { name: 'Send' }).click()
}

/** How many lines of the page's messages hold `text`. */
async function lines (page: Page, text: string): Promise<number> {
  return await page.locator('#messages li', { hasText: text }).count()
}

t.test('chat page: two browser tabs in one room exchange messages', { skip: browserSkip }, async (t) => {
  const example = await startExample(t, 'examples/chat/server.ts')
  const browser = await launchBrowser(t)
  const errors: string[] = []

  const alice = await join(browser, example.url, 'alice', 'dev', errors)
  const bob = await join(browser, example.url, 'bob', 'dev', errors)
  await alice.locator('#messages li', { hasText: 'bob joined the chat' }).waitFor()
  // Who is in the room (presence): both, on both pages.
  await alice.locator('#who', { hasText: 'In dev: alice, bob' }).waitFor()
  await bob.locator('#who', { hasText: 'In dev: alice, bob' }).waitFor()
  // A second tab of bob is the same member, with two connections.
  const bobAgain = await join(browser, example.url, 'bob', 'dev', errors)
  await alice.locator('#who', { hasText: 'In dev: alice, bob (2 tabs)' }).waitFor()
  await bobAgain.close()
  await alice.locator('#who', { hasText: /^In dev: alice, bob$/ }).waitFor()
  t.pass('the pages list who is in the room, one entry per user')

  await say(alice, 'Hi Bob, this is the dev room')
  await bob.locator('#messages li', { hasText: 'alice: Hi Bob, this is the dev room' }).waitFor()
  t.pass('bob\'s tab shows alice\'s message')
  // While bob types, alice's tab says so.
  await bob.locator('#text').fill('Hello Alice')
  await alice.locator('#typing', { hasText: 'bob is typing…' }).waitFor()
  await bob.getByRole('button', { name: 'Send' }).click()
  await alice.locator('#messages li', { hasText: 'bob: Hello Alice' }).waitFor()
  t.pass('alice\'s tab shows bob\'s answer')

  const lines = await alice.locator('#messages li').allTextContents()
  t.notOk(lines.some((line) => line.includes('[dev]')), 'messages of the tab\'s own room carry no room label')
  t.equal(await alice.locator('#text').inputValue(), '', 'the input is cleared after sending')

  if (screenshot !== undefined) {
    await mkdir(dirname(screenshot), { recursive: true })
    await alice.screenshot({ path: screenshot, fullPage: true })
    t.comment(`screenshot: ${screenshot}`)
  }

  // A private message reaches bob's tab only, labelled as private.
  await say(alice, '/msg bob only for you')
  await bob.locator('#messages li.private', { hasText: '(private) alice: only for you' }).waitFor()
  await alice.locator('#messages li.private', { hasText: '(private to bob) only for you' }).waitFor()
  await say(alice, '/msg carol are you there?')
  await alice.locator('#messages li.error', { hasText: 'Error: carol is not online' }).waitFor()
  t.pass('private messages and the offline error show in the pages')

  await bob.close()
  await alice.locator('#messages li', { hasText: 'bob left the chat' }).waitFor()
  await alice.locator('#who', { hasText: /^In dev: alice$/ }).waitFor()
  t.pass('closing a tab is announced, and the list follows')
  t.same(errors, [], 'no errors in the pages')
})

t.test('chat page: after a server restart each tab reconnects by itself, back in its room, and sends what was typed offline once', { skip: browserSkip }, async (t) => {
  const first = await startExample(t, 'examples/chat/server.ts')
  const port = new URL(first.url).port
  const browser = await launchBrowser(t)
  const errors: string[] = []

  const alice = await join(browser, first.url, 'alice', 'dev', errors)
  const bob = await join(browser, first.url, 'bob', 'dev', errors)
  await say(alice, 'before the restart')
  await bob.locator('#messages li', { hasText: 'alice: before the restart' }).waitFor()
  for (const page of [alice, bob]) await recordChanges(page, '#status')

  // The server goes away: its sockets are closed with 1001 (going away).
  first.child.kill('SIGTERM')
  t.equal(await first.exited, 0, 'the first server exited')
  for (const page of [alice, bob]) {
    await page.locator('#messages li', { hasText: 'Connection lost (1001)' }).waitFor()
    // It keeps trying: a failed attempt shows as a new disconnect.
    await changed(page, 'disconnected Disconnected (1006)', RECONNECT)
  }
  t.pass('both tabs say the connection was lost, and retry')

  // What is sent while the server is down is taken, and shown as waiting.
  await say(alice, 'typed while the server was down')
  await say(bob, 'bob typed this offline')
  await alice.locator('#messages li.pending', { hasText: 'Waiting for the connection: typed while the server was down' }).waitFor()
  await bob.locator('#messages li.pending', { hasText: 'Waiting for the connection: bob typed this offline' }).waitFor()
  t.equal(await alice.locator('#text').inputValue(), '', 'the input is cleared: the message was taken')
  t.ok(await alice.getByRole('button', { name: 'Send' }).isEnabled(), 'sending stays possible while offline')

  // A new server on the same port, as after a deploy or a crash.
  const second = await startExample(t, 'examples/chat/server.ts', { PORT: port })
  t.equal(second.url, first.url, 'the new server listens where the old one did')

  for (const [page, name] of [[alice, 'alice'], [bob, 'bob']] as const) {
    await page.locator('#status', { hasText: `Connected as ${name} in dev` }).waitFor({ timeout: RECONNECT })
    await page.locator('#messages li', { hasText: 'Back in dev' }).waitFor({ timeout: RECONNECT })
    await page.locator('#messages li').getByText('Reconnected', { exact: true }).waitFor()
  }
  t.pass('each tab reconnected by itself and is back in its room')

  // Now they talk again, both ways: they are both in dev.
  await say(alice, 'alice is back')
  await bob.locator('#messages li', { hasText: 'alice: alice is back' }).waitFor()
  await say(bob, 'bob is back')
  await alice.locator('#messages li', { hasText: 'bob: bob is back' }).waitFor()
  t.pass('the tabs chat in their room again')

  // Messages of one connection are handled in order: what was buffered went
  // out right after the reconnect, before 'alice is back', so it is here now.
  // Each tab shows its own offline message once: the server broadcast it to
  // the room once, the tab being in the room again by then (the client
  // subscribes before it sends what waited). The other tab shows it at most
  // once: only if it had reconnected first.
  t.equal(await lines(alice, 'alice: typed while the server was down'), 1, 'alice\'s offline message was delivered once')
  t.equal(await lines(bob, 'bob: bob typed this offline'), 1, 'bob\'s offline message was delivered once')
  t.ok(await lines(bob, 'alice: typed while the server was down') <= 1, 'never twice in the other tab')
  t.ok(await lines(alice, 'bob: bob typed this offline') <= 1, 'never twice in the other tab')
  t.equal(await alice.locator('#messages li.pending').count(), 0, 'nothing is left waiting')
  t.equal(await lines(alice, 'Welcome alice!'), 1, 'the welcome of the new connection is not shown again')

  // What the status line said, from the drop to the reconnect: the 1001 of
  // the shutdown, then attempts and their failures, then connected.
  const log = await changeLog(alice)
  t.match(log[0], /^disconnected Disconnected \(1001\), retrying soon…/, 'first: disconnected, with the close code')
  t.match(log[1], /^connecting Reconnecting \(attempt 1\)…/, 'then: reconnecting')
  t.ok(log.some((entry) => entry.startsWith('disconnected Disconnected (1006)')), 'failed attempts while the server was down')
  t.equal(log[log.length - 1], 'connected Connected as alice in dev', 'last: connected')
  t.same(errors, [], 'no errors in the pages')
})

t.test('chat page: a tab whose connection drops gets what was said meanwhile, once, in order, and says so', { skip: browserSkip }, async (t) => {
  const example = await startExample(t, 'examples/chat/server.ts')
  const browser = await launchBrowser(t)
  const errors: string[] = []
  const alice = await join(browser, example.url, 'alice', 'dev', errors)
  // Bob's page records its WebSockets, and can be kept from opening new ones (a network that is down).
  const bob = await browser.newPage()
  // (Page code as text: it runs in the page, whose globals this file's types do not describe.)
  await bob.addInitScript({
    content: `
      const Native = window.WebSocket
      const state = window.net = { sockets: [], down: false }
      window.WebSocket = class extends Native {
        constructor (url, protocols) {
          // While down, attempts go to a port nothing listens on: they fail as a dead network does.
          super(state.down ? 'ws://127.0.0.1:9/' : url, protocols)
          state.sockets.push(this)
        }
      }`
  })
  bob.on('pageerror', (error) => errors.push(`bob: ${error.message}`))
  await bob.goto(`${example.url}/`)
  await bob.locator('#name').fill('bob')
  await bob.locator('#room').fill('dev')
  await bob.getByRole('button', { name: 'Join' }).click()
  await bob.locator('#messages li', { hasText: 'You joined dev' }).waitFor()
  await say(alice, 'before the drop')
  await bob.locator('#messages li', { hasText: 'alice: before the drop' }).waitFor()

  // Bob's network goes down: the open socket is dropped, new attempts fail.
  await bob.evaluate("window.net.down = true; for (const socket of window.net.sockets) socket.close(3000, 'network down')")
  await bob.locator('#messages li', { hasText: 'Connection lost (3000)' }).waitFor()
  for (const text of ['one while bob is away', 'two while bob is away', 'three while bob is away']) await say(alice, text)
  await alice.locator('#messages li', { hasText: 'alice: three while bob is away' }).waitFor()

  // The network is back: bob's tab reconnects, and gets the three, in order, once.
  await bob.evaluate('window.net.down = false')
  await bob.locator('#messages li', { hasText: 'missed messages of dev recovered' }).waitFor({ timeout: RECONNECT })
  await bob.locator('#messages li', { hasText: 'alice: three while bob is away' }).waitFor()
  const shown = (await bob.locator('#messages li').allTextContents()).filter((line) => line.includes('while bob is away') || line.includes('before the drop'))
  t.same(shown.map((line) => line.replace(/^.*alice: /, '')), ['before the drop', 'one while bob is away', 'two while bob is away', 'three while bob is away'], 'what was said meanwhile, once, in order')
  t.ok((await bob.locator('#messages li').allTextContents()).some((line) => /^\d+ missed messages of dev recovered$/.test(line)), 'the page says the missed messages came back')
  await say(alice, 'and live again')
  await bob.locator('#messages li', { hasText: 'alice: and live again' }).waitFor()
  t.same(errors, [], 'no errors in the pages')
})

t.test('chat page: a room it may not enter is refused; a refused name closes the client for good', { skip: browserSkip }, async (t) => {
  const example = await startExample(t, 'examples/chat/server.ts')
  const browser = await launchBrowser(t)
  const errors: string[] = []
  const open = async (query: string): Promise<Page> => {
    const page = await browser.newPage()
    page.on('pageerror', (error) => errors.push(error.message))
    await page.goto(`${example.url}/?${query}`)
    await page.getByRole('button', { name: 'Join' }).click()
    return page
  }

  // user: rooms carry private messages: the route's rooms.authorize refuses them.
  const carol = await open('name=carol&room=user:alice')
  await carol.locator('#messages li.error', { hasText: 'Error: Room names starting with "user:" are reserved' }).waitFor()
  await carol.locator('#status', { hasText: 'Connected as carol in general' }).waitFor()
  await say(carol, 'still here')
  await carol.locator('#messages li', { hasText: 'carol: still here' }).waitFor()
  t.pass('refused a room, the page talks in general')

  // The name input takes 50 characters; a link can carry more.
  const page = await open(`name=${'x'.repeat(51)}&room=dev`)
  await page.locator('#status[data-state=closed]', { hasText: 'Closed (4400: A name is at most 50 characters)' }).waitFor()
  t.ok(await page.getByRole('button', { name: 'Send' }).isDisabled(), 'nothing more can be sent')
  t.same(errors, [], 'no errors in the pages')
})
