// The seed's Node.js client on the official client: a bot that joins the
// chat, says it is online and answers every chat message of someone else. It
// reconnects by itself after a drop or a server restart (and waits for a
// server that is not up yet). Start the chat server first:
//
//   npm start                    (in one terminal)
//   npm run example:bot          (in another)
//
// WS_URL overrides where it connects (default ws://localhost:3000/ws/chat?token=bot;
// PORT and HOST change the port and host of that default). Ctrl+C closes it.
import WebSocket from 'ws'
import { NexusClient } from 'fastify-nexus-realtime/client'

/** What the chat sends (examples/chat/chat.ts): the bot reads chat messages. */
interface ChatEvent {
  type: string
  user?: string
  text?: string
}

const url = process.env.WS_URL ??
  `ws://${process.env.HOST ?? 'localhost'}:${process.env.PORT ?? 3000}/ws/chat?token=bot`
// The bot's own messages come back to it (it is in the room it writes to):
// it must not answer those, or it would talk to itself forever.
const botName = new URL(url).searchParams.get('token') || 'Anonymous'

// Node 20 has no global WebSocket: the client takes ws's.
const client = new NexusClient<ChatEvent, { type: 'chat', text: string }>(url, { WebSocket })

client.on('state', (state, info) => {
  switch (state) {
    case 'connected':
      // On every connection: after a restart the chat hears it again.
      console.log('Connected to server')
      client.send({ type: 'chat', text: 'Bot is online!' })
      break
    case 'disconnected':
      // Not for good: the client tries again, with growing delays.
      console.log(`Connection lost (${info?.code}), reconnecting…`)
      break
    case 'closed':
      console.log('Disconnected')
      break
  }
})

client.on('message', (message) => {
  console.log('Received:', message)

  // Auto-reply to messages
  if (message.type === 'chat' && message.user !== botName) {
    client.send({
      type: 'chat',
      text: `You said: ${message.text}`
    })
  }
})

// A refused connection (REFUSED: the server turned the bot down, e.g. its
// name is too long) closes the client for good; other errors are reported.
client.on('error', (error) => {
  console.error('WebSocket error:', error.message)
  if (client.state === 'closed') process.exitCode = 1
})

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => client.close())
}
