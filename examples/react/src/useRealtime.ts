// A React hook on the official client, fastify-nexus-realtime/client: the
// seed's useWebSocket (beside it, unchanged) grown into what a page needs.
// The client reconnects by itself, with backoff, after a drop or a server
// restart; what is sent while it is offline waits in its bounded buffer and
// goes out once it is connected again; `state` says where it is.
import { useCallback, useEffect, useRef, useState } from 'react'
import { NexusClient, type ClientOptions, type ClientState, type RequestOptions } from 'fastify-nexus-realtime/client'

export interface Realtime<Incoming, Outgoing> {
  /** Every message received, oldest first. */
  messages: Incoming[]
  /** 'connecting' | 'connected' | 'disconnected' (it will retry) | 'closed' (for good) */
  state: ClientState
  /** Sends a message; kept while offline and sent once connected. */
  send: (data: Outgoing) => void
  /** Sends a request: resolves with what the route's onMessage returns, rejects with an error that has a `code`. */
  request: <R = unknown>(data: Outgoing, options?: RequestOptions) => Promise<R>
}

/**
 * One client per mounted component and `url`. `options` are read when the
 * client is created (on mount, and when `url` changes): an object written in
 * place in the component does not reconnect on every render. The effect's
 * cleanup closes the client, so StrictMode's mount, unmount, mount leaves one
 * live connection: the first client is closed before it opened its socket.
 */
export function useRealtime<Incoming = unknown, Outgoing = unknown> (url: string, options: ClientOptions = {}): Realtime<Incoming, Outgoing> {
  const [messages, setMessages] = useState<Incoming[]>([])
  const [state, setState] = useState<ClientState>('connecting')
  const clientRef = useRef<NexusClient<Incoming, Outgoing> | null>(null)
  const optionsRef = useRef(options)
  optionsRef.current = options

  useEffect(() => {
    const client = new NexusClient<Incoming, Outgoing>(url, optionsRef.current)
    clientRef.current = client
    // A closed client's last events must not reach the state of the next one.
    let current = true
    setState(client.state)
    client.on('state', (next) => { if (current) setState(next) })
    client.on('message', (data) => { if (current) setMessages((prev) => [...prev, data]) })

    return () => {
      current = false
      if (clientRef.current === client) clientRef.current = null
      client.close()
    }
  }, [url])

  const send = useCallback((data: Outgoing) => {
    clientRef.current?.send(data)
  }, [])

  const request = useCallback(<R = unknown>(data: Outgoing, requestOptions?: RequestOptions): Promise<R> => {
    const client = clientRef.current
    if (client === null) return Promise.reject(Object.assign(new Error('Not mounted'), { code: 'CLOSED' }))
    return client.request<R>(data, requestOptions)
  }, [])

  return { messages, state, send, request }
}
