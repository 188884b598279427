// The seed's Node.js client: a bot that joins the chat, says it is online and
// answers every chat message of someone else. Start the chat server first:
//
//   npm start                    (in one terminal)
//   npm run example:bot          (in another)
//
// WS_URL overrides where it connects (default ws://localhost:3000/ws/chat?token=bot;
// PORT and HOST change the port and host of that default). Ctrl+C closes it.
import WebSocket from 'ws'

const url = process.env.WS_URL ??
  `ws://${process.env.HOST ?? 'localhost'}:${process.env.PORT ?? 3000}/ws/chat?token=bot`
// The bot's own messages come back to it (it is in the room it writes to):
// it must not answer those, or it would talk to itself forever.
const botName = new URL(url).searchParams.get('token') || 'Anonymous'

const ws = new WebSocket(url)

ws.on('open', () => {
  console.log('Connected to server')
  ws.send(JSON.stringify({ type: 'chat', text: 'Bot is online!' }))
})

ws.on('message', (data) => {
  const message = JSON.parse(data.toString())
  console.log('Received:', message)

  // Auto-reply to messages
  if (message.type === 'chat' && message.user !== botName) {
    ws.send(JSON.stringify({
      type: 'chat',
      text: `You said: ${message.text}`
    }))
  }
})

ws.on('close', () => {
  console.log('Disconnected')
})

// Without an 'error' listener, a refused connection would crash the process
// with an unhandled error instead of a message.
ws.on('error', (error) => {
  console.error('WebSocket error:', error.message)
  process.exitCode = 1
})

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => ws.close(1000, 'Bot stopped'))
}
