import { existsSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { chromium, type BrowserContext } from 'playwright-core'
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
