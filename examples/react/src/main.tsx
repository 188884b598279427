import { StrictMode } from 'react'
import { createRoot } from 'react-dom/client'
import { ChatComponent } from './ChatComponent'

// StrictMode: in development React mounts every component twice (mount,
// unmount, mount) to find effects that do not clean up after themselves.
// useRealtime's cleanup closes its client, so that leaves one connection.
// (The seed's useWebSocket, kept in useWebSocket.ts, is not written for it.)
createRoot(document.getElementById('root') as HTMLElement).render(
  <StrictMode>
    <ChatComponent />
  </StrictMode>
)
