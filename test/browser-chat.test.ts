import t from 'tap'
import { mkdir } from 'node:fs/promises'
import { dirname } from 'node:path'
import type { BrowserContext, Page } from 'playwright-core'
import { startExample } from './helpers/examples'
import { browserSkip, launchBrowser } from './helpers/browser'

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

t.test('chat page: two browser tabs in one room exchange messages', { skip: browserSkip }, async (t) => {
  const example = await startExample(t, 'examples/chat/server.ts')
  const browser = await launchBrowser(t)
  const errors: string[] = []

  const alice = await join(browser, example.url, 'alice', 'dev', errors)
  const bob = await join(browser, example.url, 'bob', 'dev', errors)
  await alice.locator('#messages li', { hasText: 'bob joined the chat' }).waitFor()

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
  t.pass('closing a tab is announced')
  t.same(errors, [], 'no errors in the pages')
})
