import t from 'tap'
import { browserSkip, launchBrowser } from './helpers/browser'
import { startExample } from './helpers/examples'
import { connect, type Client } from './helpers/server'

// The live view (examples/live-view) in Chromium, against the example run as
// its own process: clients of the demo route come and go, talk, and one
// leaves with an unusual close code; the page follows, refreshed live.

t.setTimeout(180_000)

t.test('live view: connections, rooms, message rates and recent closes, refreshed live', { skip: browserSkip }, async (t) => {
  const example = await startExample(t, 'examples/live-view/server.ts')
  const browser = await launchBrowser(t)
  const errors: string[] = []
  const page = await browser.newPage()
  page.on('pageerror', (error) => errors.push(error.message))
  await page.goto(`${example.url}/_nexus`)
  await page.locator('#status[data-state=live]').waitFor({ timeout: 30_000 })
  await page.locator('#connections', { hasText: /^0$/ }).waitFor({ timeout: 30_000 })
  t.pass('live, with no connection yet (the page itself is not counted)')

  const clients: Client[] = []
  for (const room of ['lobby', 'lobby', 'lobby', 'games']) {
    const client = await connect(`${example.wsUrl}/ws/demo?room=${room}`)
    t.teardown(() => client.close())
    clients.push(client)
  }
  await page.locator('#connections', { hasText: /^4$/ }).waitFor({ timeout: 30_000 })
  await page.locator('#rooms-count', { hasText: /^2$/ }).waitFor({ timeout: 30_000 })
  await page.locator('#rooms tr[data-room=lobby] td', { hasText: /^3$/ }).waitFor({ timeout: 30_000 })
  await page.locator('#rooms tr[data-room=games] td', { hasText: /^1$/ }).waitFor({ timeout: 30_000 })
  t.same(await page.locator('#rooms tr').evaluateAll((rows) => rows.map((row) => (row as unknown as { dataset: { room: string } }).dataset.room)), ['lobby', 'games'], 'the largest room first')

  // Messages keep coming until the page shows a rate: each is broadcast to the 3 members of lobby.
  const talking = { on: true }
  const talk = (async () => {
    while (talking.on) {
      clients[0].send({ text: 'hello' })
      await clients[1].waitFor(clients[1].messages.length + 1)
    }
  })()
  await page.locator('#rate-received', { hasText: /^(?!0\.0$)\d/ }).waitFor({ timeout: 30_000 })
  await page.locator('#rate-sent', { hasText: /^(?!0\.0$)\d/ }).waitFor({ timeout: 30_000 })
  await page.locator('#rate-broadcasts', { hasText: /^(?!0\.0$)\d/ }).waitFor({ timeout: 30_000 })
  talking.on = false
  await talk
  t.pass('message rates in, out and of broadcasts')

  clients[3].ws.close(4001, 'bye')
  await page.locator('#closes tr[data-code="4001"] td', { hasText: '/ws/demo' }).waitFor({ timeout: 30_000 })
  await page.locator('#connections', { hasText: /^3$/ }).waitFor({ timeout: 30_000 })
  await page.locator('#rooms-count', { hasText: /^1$/ }).waitFor({ timeout: 30_000 })
  t.equal(await page.locator('#closes tr[data-code="4001"] td.code-abnormal').textContent(), '4001', 'the close code, marked as unusual')
  clients[2].ws.close(1000)
  await page.locator('#closes tr[data-code="1000"] td.code-normal', { hasText: '1000' }).waitFor({ timeout: 30_000 })
  t.equal(await page.locator('#closes tr').count(), 2, 'the newest close first, then the one before')
  t.equal(await page.locator('#closes tr').first().getAttribute('data-code'), '1000')

  t.same(errors, [], 'no error in the page')
})
