// The seed's React hook, statement for statement (only the semicolons went, for the house style).
import { useEffect, useState, useCallback, useRef } from 'react'

export function useWebSocket (url: string) {
  const [messages, setMessages] = useState<any[]>([])
  const [isConnected, setIsConnected] = useState(false)
  const wsRef = useRef<WebSocket | null>(null)

  useEffect(() => {
    const ws = new WebSocket(url)
    wsRef.current = ws

    ws.onopen = () => setIsConnected(true)
    ws.onclose = () => setIsConnected(false)
    ws.onmessage = (event) => {
      const data = JSON.parse(event.data)
      setMessages(prev => [...prev, data])
    }

    return () => ws.close()
  }, [url])

  const send = useCallback((data: any) => {
    wsRef.current?.send(JSON.stringify(data))
  }, [])

  return { messages, isConnected, send }
}
