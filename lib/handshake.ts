import type { IncomingMessage } from 'node:http'
import type { Duplex } from 'node:stream'

/**
 * `app.injectWS()` of @fastify/websocket (11.3.7 and older) emits a fake
 * upgrade on the server: its request carries `sec-websocket-version` as the
 * number 13, where a real request always carries a string, and ws >= 8.23.1
 * compares the header with '13' and answers 400 ("Missing or invalid
 * Sec-WebSocket-Version header"). Prepended to the server's `upgrade`
 * listeners, this gives such a request the string a real one would have, so
 * `injectWS` works on every version our ranges allow.
 *
 * Its stream (in-memory, not a TCP socket) also never emits `close` once
 * both sides ended, which is what ws waits for after a close handshake: a
 * client's `ws.close()` would leave the server's socket open (and `onClose`
 * pending) until ws's 30 s timer or `app.close()`. Such a stream is
 * destroyed once both sides ended, as a TCP socket would be.
 */
export function normalizeInjectedHandshake (request: IncomingMessage, socket: Duplex): void {
  const headers = request.headers as Record<string, unknown>
  const version = headers['sec-websocket-version']
  if (typeof version !== 'number') return
  headers['sec-websocket-version'] = String(version)
  let ended = 0
  const ends = (): void => {
    if (++ended === 2) socket.destroy()
  }
  socket.once('end', ends)
  socket.once('finish', ends)
}
