import { existsSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { chromium, type BrowserContext, type Page } from 'playwright-core'
import type { TestContext } from './server'

/** Debian's chromium (`apt-get install chromium`); `.ci/run` installs it. */
export const CHROMIUM = '/usr/bin/chromium'

const FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync'
]

/**
 * The `skip` option of a browser test: a reason when no browser is installed,
 * so `npm test` says why it skipped them. Under CI=true nothing is skipped:
 * there a missing browser fails the test (see launchBrowser).
 */
export const browserSkip: string | false = existsSync(CHROMIUM) || process.env.CI === 'true'
  ? false
  : `no browser at ${CHROMIUM} (install it with \`apt-get install chromium\`): browser tests skipped`

/**
 * Starts chromium headless with a fresh profile; it is closed and its profile
 * removed when the test ends. Every page of the context is a separate tab, with
 * its own WebSocket connections.
 */
export async function launchBrowser (t: TestContext): Promise<BrowserContext> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`CI=true and no browser at ${CHROMIUM}: .ci/run installs it with \`apt-get install chromium\``)
  }
  const profile = await mkdtemp(join(tmpdir(), 'nexus-chromium-'))
  // Playwright gives chromium this fresh directory as --user-data-dir.
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: FLAGS,
    timeout: 30000
  })
  t.teardown(async () => {
    await context.close()
    await rm(profile, { recursive: true, force: true })
  })
  return context
}

/** The little of a page's DOM the recorder below uses (the project's type-check has no DOM types). */
interface Watched {
  getAttribute (name: string): string | null
  textContent: string | null
}
interface RecorderGlobals {
  document: { querySelector (selector: string): Watched | null }
  MutationObserver: new (callback: () => void) => { observe (target: Watched, options: Record<string, boolean>): void }
  changeLog: string[]
}

/**
 * Records in the page every change of the element `selector` as
 * `<its data-state> <its text>`: a state may last a few milliseconds only,
 * too short to be seen by polling. Read with `changeLog`, wait with `changed`.
 */
export async function recordChanges (page: Page, selector: string): Promise<void> {
  await page.evaluate((selector) => {
    const g = globalThis as unknown as RecorderGlobals
    const element = g.document.querySelector(selector)
    if (element === null) throw new Error(`no ${selector} in the page`)
    const log: string[] = g.changeLog = []
    new g.MutationObserver(() => {
      const entry = `${element.getAttribute('data-state')} ${element.textContent}`
      if (log[log.length - 1] !== entry) log.push(entry)
    }).observe(element, { attributes: true, childList: true, characterData: true, subtree: true })
  }, selector)
}

/** What `recordChanges` recorded so far, oldest first. */
export async function changeLog (page: Page): Promise<string[]> {
  return await page.evaluate(() => (globalThis as unknown as RecorderGlobals).changeLog)
}

/** Resolves once a recorded change starts with `prefix`. */
export async function changed (page: Page, prefix: string, timeout = 30000): Promise<void> {
  await page.waitForFunction((prefix) => (globalThis as unknown as RecorderGlobals).changeLog.some((entry) => entry.startsWith(prefix)), prefix, { timeout })
}
