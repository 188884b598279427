import type { ClientState } from 'fastify-nexus-realtime/client'
import { useRealtime } from './useRealtime'

// The seed's ChatComponent on the useRealtime hook (useWebSocket.ts keeps the
// seed's own hook). The seed writes ws://localhost:3000/ws/chat?token=user1;
// the client takes a path relative to the page instead, so it works on any
// host and port, and the token as a parameter. ?token=<name> in the page's
// address picks the name (default user1).
const token = new URLSearchParams(window.location.search).get('token') ?? 'user1'

const STATUS: Record<ClientState, string> = {
  connecting: 'Connecting…',
  connected: 'Connected',
  disconnected: 'Disconnected, reconnecting…',
  closed: 'Closed'
}

// Usage, as in the seed
export function ChatComponent () {
  const { messages, state, send } = useRealtime('/ws/chat', { params: { token } })

  return (
    <div>
      <p>Status: <span data-state={state}>{STATUS[state]}</span></p>
      {/* While offline the message is kept, and sent once reconnected. */}
      <button onClick={() => send({ type: 'chat', text: 'Hello!' })}>
        Send
      </button>
      <ul>
        {messages.map((msg, i) => (
          <li key={i}>{JSON.stringify(msg)}</li>
        ))}
      </ul>
    </div>
  )
}
