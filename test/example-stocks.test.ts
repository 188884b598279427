import t from 'tap'
import { type Client, connect, type TestContext } from './helpers/server'
import { delay } from './helpers/wait'
import { type Inbox, inbox, startExample } from './helpers/examples'

const FILE = 'examples/stocks/server.ts'
// A fast feed keeps the test short.
const env = { PRICE_INTERVAL_MS: '20' }

function close (t: TestContext, client: Client): void {
  t.teardown(() => client.close())
}

/** Reads price updates until one of `symbol` arrives; returns the symbols seen on the way. */
async function until (reader: Inbox, symbol: string): Promise<Set<string>> {
  const seen = new Set<string>()
  for (;;) {
    const message = await reader.next()
    if (message.type !== 'price_update') throw new Error(`expected a price update, got ${JSON.stringify(message)}`)
    seen.add(message.symbol)
    if (message.symbol === symbol) return seen
  }
}

t.test('stocks: the seed scenario, subscribe and unsubscribe per symbol', async (t) => {
  const example = await startExample(t, FILE, env)

  const client = await connect(`${example.wsUrl}/ws/stocks?symbols=AAPL,msft`)
  close(t, client)
  const messages = inbox(client)
  t.same(await messages.next(), { type: 'subscribed', symbols: ['AAPL', 'MSFT'] }, 'symbols are upper-cased')

  const update = await messages.next()
  t.match(update, { type: 'price_update', symbol: /^(AAPL|MSFT)$/, price: Number, timestamp: String })
  t.ok(update.price > 0)

  // Two full rounds of the feed: only the subscribed symbols arrive.
  const seen = new Set([...await until(messages, 'AAPL'), ...await until(messages, 'AAPL')])
  t.same([...seen].sort(), ['AAPL', 'MSFT'])

  client.send({ type: 'subscribe', symbol: 'AMZN' })
  client.send({ type: 'unsubscribe', symbol: 'AAPL' })
  // Updates already on their way may come first; then the answers, in order.
  const answers = []
  while (answers.length < 2) {
    const message = await messages.next()
    if (message.type !== 'price_update') answers.push(message)
  }
  t.same(answers, [{ type: 'subscribed', symbols: ['AMZN'] }, { type: 'unsubscribed', symbols: ['AAPL'] }])

  const after = new Set([...await until(messages, 'AMZN'), ...await until(messages, 'AMZN')])
  t.same([...after].sort(), ['AMZN', 'MSFT'], 'AMZN arrives, AAPL no longer does')

  client.send({ type: 'subscribe', symbol: 'NOPE' })
  for (;;) {
    const message = await messages.next()
    if (message.type === 'price_update') continue
    t.match(message, { type: 'error', message: /Unknown symbol "NOPE"/ })
    break
  }
})

t.test('stocks: without ?symbols= the seed\'s defaults; unknown symbols are refused', async (t) => {
  const example = await startExample(t, FILE, env)
  const plain = await connect(`${example.wsUrl}/ws/stocks`)
  close(t, plain)
  t.same(await inbox(plain).next(), { type: 'subscribed', symbols: ['AAPL', 'GOOGL'] })

  const mixed = await connect(`${example.wsUrl}/ws/stocks?symbols=AAPL,XYZ`)
  close(t, mixed)
  const messages = inbox(mixed)
  t.match(await messages.next(), { type: 'error', message: /Unknown symbol "XYZ"/ })
  t.same(await messages.next(), { type: 'subscribed', symbols: ['AAPL'] })
})

t.test('stocks: the feed timer is cleared on close, so SIGTERM ends the process', async (t) => {
  const example = await startExample(t, FILE, env)
  const client = await connect(`${example.wsUrl}/ws/stocks?symbols=AAPL`)
  const messages = inbox(client)
  await messages.next()
  await messages.next() // the feed is running
  const closed = client.closed()
  example.child.kill('SIGTERM')
  t.same(await closed, { code: 1001, reason: 'Server shutting down' })
  const exit = await Promise.race([example.exited, delay(5000).then(() => 'still running 5 s after SIGTERM')])
  t.equal(exit, 0, 'the process exited by itself, with no timer left')
})
