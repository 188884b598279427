import { createRoot } from 'react-dom/client'
import { ChatComponent } from './ChatComponent'

// No <StrictMode>: in development it mounts every effect twice, and the seed's
// hook is not written for that. Its first socket, closed by the cleanup, fires
// `onclose` (setIsConnected(false)) after the second one may have opened, so
// the page would say "Disconnected" while it is connected. A production build
// mounts once and is not affected.
createRoot(document.getElementById('root') as HTMLElement).render(<ChatComponent />)
