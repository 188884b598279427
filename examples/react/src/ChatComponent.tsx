import { useWebSocket } from './useWebSocket'

// The seed writes ws://localhost:3000/ws/chat?token=user1; the page asks the
// server it was loaded from instead, so it works on any host and port.
// ?token=<name> in the page's address picks the name (default user1).
const token = new URLSearchParams(window.location.search).get('token') ?? 'user1'
const scheme = window.location.protocol === 'https:' ? 'wss:' : 'ws:'
const url = `${scheme}//${window.location.host}/ws/chat?token=${encodeURIComponent(token)}`

// Usage, as in the seed
export function ChatComponent () {
  const { messages, isConnected, send } = useWebSocket(url)

  return (
    <div>
      <p>Status: {isConnected ? 'Connected' : 'Disconnected'}</p>
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
