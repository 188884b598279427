import t from 'tap'
import { connect } from './helpers/server'
import { until } from './helpers/wait'
import { inbox, printed, runExample, startExample, type ExampleProcess } from './helpers/examples'

// The bot (examples/bot/bot.ts) as its own process, on the official client
// with ws, against the chat example run as its own process.

t.setTimeout(180000)

/** Reconnecting waits for the client's backoff (up to 20 s between attempts) on a busy machine. */
const RECONNECT = 90000

/** How many times the bot printed `text`. */
function times (bot: ExampleProcess, text: string): number {
  return bot.output().split(text).length - 1
}

t.test('bot: joins the chat, says it is online, answers others and not itself', async (t) => {
  const server = await startExample(t, 'examples/chat/server.ts')
  const alice = await connect(`${server.wsUrl}/ws/chat?token=alice`)
  t.teardown(() => alice.close())
  const toAlice = inbox(alice)
  await toAlice.next() // welcome
  await toAlice.next() // alice joined

  const bot = runExample(t, 'examples/bot/bot.ts', { WS_URL: `${server.wsUrl}/ws/chat?token=bot` })
  await printed(bot, 'Connected to server', 20000)
  t.same(await toAlice.next(), { type: 'system', message: 'bot joined the chat' })
  t.match(await toAlice.next(), { type: 'chat', user: 'bot', text: 'Bot is online!' })

  alice.send({ type: 'chat', text: 'hello bot' })
  t.match(await toAlice.next(), { type: 'chat', user: 'alice', text: 'hello bot' })
  t.match(await toAlice.next(), { type: 'chat', user: 'bot', text: 'You said: hello bot' })
  await printed(bot, 'Received:')

  // The bot does not answer its own messages. It handles what it receives in
  // order: had it answered its own "You said: hello bot", that answer would
  // come before its answer to the next message.
  alice.send({ type: 'chat', text: 'again' })
  t.match(await toAlice.next(), { type: 'chat', user: 'alice', text: 'again' })
  t.match(await toAlice.next(), { type: 'chat', user: 'bot', text: 'You said: again' }, 'no reply to its own reply')

  bot.child.kill('SIGTERM')
  t.same(await toAlice.next(), { type: 'system', message: 'bot left the chat' })
  t.equal(await bot.exited, 0, 'SIGTERM closes the client and the bot exits')
  t.match(bot.output(), 'Disconnected')
  t.equal(times(bot, 'Connection lost'), 0, 'closing is not a lost connection')
})

t.test('bot: reconnects by itself after a server restart, and answers again', async (t) => {
  const first = await startExample(t, 'examples/chat/server.ts')
  const port = new URL(first.url).port
  const bot = runExample(t, 'examples/bot/bot.ts', { PORT: port, HOST: '127.0.0.1' })
  await printed(bot, 'Connected to server', 20000)

  // The server stops: the bot's connection is closed with 1001, and it keeps trying.
  first.child.kill('SIGTERM')
  t.equal(await first.exited, 0, 'the first server exited')
  await printed(bot, 'Connection lost (1001), reconnecting…', 20000)
  await printed(bot, 'Connection lost (1006), reconnecting…', RECONNECT)
  t.equal(bot.child.exitCode, null, 'the bot is still running')

  // A new server on the same port: the bot comes back by itself.
  const second = await startExample(t, 'examples/chat/server.ts', { PORT: port })
  await until(() => times(bot, 'Connected to server') === 2, RECONNECT, 'the bot connected again')
  t.pass('the bot reconnected')

  const alice = await connect(`${second.wsUrl}/ws/chat?token=alice`)
  t.teardown(() => alice.close())
  const toAlice = inbox(alice)
  t.same(await toAlice.next(), { type: 'welcome', message: 'Welcome alice!', room: 'general' })
  alice.send({ type: 'chat', text: 'are you back?' })
  // Alice's own message, then the bot's answer (and perhaps the bot's
  // "Bot is online!" before them, if the bot's connection got there first).
  const answer = { type: 'chat', user: 'bot', text: 'You said: are you back?' }
  for (;;) {
    const message = await toAlice.next(RECONNECT)
    if (message.type === 'chat' && message.user === 'bot' && message.text === answer.text) break
  }
  t.pass('the bot answers on the new server')

  bot.child.kill('SIGTERM')
  t.equal(await bot.exited, 0, 'SIGTERM still closes it')
})

t.test('bot: a server that refuses it ends it with an error', async (t) => {
  const server = await startExample(t, 'examples/chat/server.ts')
  // The chat refuses names over 50 characters; the client does not retry a refusal.
  const bot = runExample(t, 'examples/bot/bot.ts', { WS_URL: `${server.wsUrl}/ws/chat?token=${'b'.repeat(51)}` })
  t.equal(await bot.exited, 1, 'exit code 1')
  t.match(bot.errors(), 'WebSocket error: A name is at most 50 characters')
  t.equal(times(bot, 'Connected to server'), 0)
  t.match(bot.output(), 'Disconnected')
})
