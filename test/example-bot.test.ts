import t from 'tap'
import { connect } from './helpers/server'
import { delay } from './helpers/wait'
import { inbox, printed, runExample, startExample } from './helpers/examples'

t.test('bot: joins the chat, says it is online, answers others and not itself', async (t) => {
  const server = await startExample(t, 'examples/chat/server.ts')
  const alice = await connect(`${server.wsUrl}/ws/chat?token=alice`)
  t.teardown(() => alice.close())
  const toAlice = inbox(alice)
  await toAlice.next() // welcome
  await toAlice.next() // alice joined

  const bot = runExample(t, 'examples/bot/bot.ts', { WS_URL: `${server.wsUrl}/ws/chat?token=bot` })
  await printed(bot, 'Connected to server')
  t.same(await toAlice.next(), { type: 'system', message: 'bot joined the chat' })
  t.match(await toAlice.next(), { type: 'chat', user: 'bot', text: 'Bot is online!' })

  alice.send({ type: 'chat', text: 'hello bot' })
  t.match(await toAlice.next(), { type: 'chat', user: 'alice', text: 'hello bot' })
  t.match(await toAlice.next(), { type: 'chat', user: 'bot', text: 'You said: hello bot' })
  await printed(bot, 'Received:')

  // The bot does not answer its own messages: nothing more comes.
  await delay(200)
  t.equal(toAlice.unread, 0, 'no reply to its own reply')

  bot.child.kill('SIGTERM')
  t.same(await toAlice.next(), { type: 'system', message: 'bot left the chat' })
  t.equal(await bot.exited, 0, 'SIGTERM closes the socket and the bot exits')
  t.match(bot.output(), 'Disconnected')
})

t.test('bot: exits when the server shuts down, and reports a refused connection', async (t) => {
  const server = await startExample(t, 'examples/chat/server.ts')
  const bot = runExample(t, 'examples/bot/bot.ts', { PORT: new URL(server.url).port, HOST: '127.0.0.1' })
  await printed(bot, 'Connected to server')
  server.child.kill('SIGTERM')
  t.equal(await bot.exited, 0)
  t.match(bot.output(), 'Disconnected')

  const refused = runExample(t, 'examples/bot/bot.ts', { WS_URL: `${server.wsUrl}/ws/chat?token=bot` })
  t.equal(await refused.exited, 1, 'no server: exit code 1')
  t.match(refused.errors(), /WebSocket error: .*ECONNREFUSED/)
})
