// The seed's Live Updates example: each socket joins one `stock:<symbol>` room
// per symbol it follows, and a price feed broadcasts every symbol's price to its
// room, so only a symbol's subscribers get its prices.
//
//   npm run example:stocks
//   then connect to ws://localhost:3000/ws/stocks?symbols=AAPL,MSFT and send
//   {"type":"subscribe","symbol":"AMZN"} or {"type":"unsubscribe","symbol":"AAPL"}
//
// PRICE_INTERVAL_MS sets the feed's period (default 1000).
import Fastify from 'fastify'
import nexusRealtime from 'fastify-nexus-realtime'
import type { WebSocket } from 'ws'

const port = Number(process.env.PORT ?? 3000)
const host = process.env.HOST ?? 'localhost'
const interval = Number(process.env.PRICE_INTERVAL_MS ?? 1000)

const stocks = ['AAPL', 'GOOGL', 'MSFT', 'AMZN']
const DEFAULT_SYMBOLS = ['AAPL', 'GOOGL']

/** The last simulated price of each symbol: a random walk from a start price. */
const prices = new Map<string, number>([['AAPL', 190], ['GOOGL', 140], ['MSFT', 410], ['AMZN', 180]])

function nextPrice (symbol: string): number {
  const last = prices.get(symbol) as number
  // A step of at most ±1%, kept above one cent.
  const price = Math.max(0.01, Math.round(last * (1 + (Math.random() - 0.5) / 50) * 100) / 100)
  prices.set(symbol, price)
  return price
}

async function start (): Promise<void> {
  const app = Fastify({ logger: true })
  await app.register(nexusRealtime)

  /** The symbol a message or the query names, upper-cased, or `undefined` after an error frame. */
  function knownSymbol (socket: WebSocket, symbol: unknown): string | undefined {
    const name = typeof symbol === 'string' ? symbol.trim().toUpperCase() : ''
    if (stocks.includes(name)) return name
    app.getWebSocket().send(socket, {
      type: 'error',
      message: `Unknown symbol ${JSON.stringify(symbol)}; known symbols: ${stocks.join(', ')}`
    })
    return undefined
  }

  app.ws('/ws/stocks', {
    onConnect: async (socket, ctx) => {
      const ws = app.getWebSocket()!
      const requested = typeof ctx.query.symbols === 'string' && ctx.query.symbols !== ''
        ? ctx.query.symbols.split(',')
        : DEFAULT_SYMBOLS
      const symbols: string[] = []
      for (const symbol of requested) {
        const name = knownSymbol(socket, symbol)
        if (name !== undefined && !symbols.includes(name)) symbols.push(name)
      }

      // Subscribe to stock symbols
      symbols.forEach(symbol => {
        ws.joinRoom(`stock:${symbol}`, socket)
      })

      socket.send(JSON.stringify({
        type: 'subscribed',
        symbols
      }))
    },

    onMessage: async (socket, message, _ctx) => {
      const ws = app.getWebSocket()!

      if (message?.type === 'subscribe') {
        const symbol = knownSymbol(socket, message.symbol)
        if (symbol === undefined) return
        ws.joinRoom(`stock:${symbol}`, socket)
        socket.send(JSON.stringify({ type: 'subscribed', symbols: [symbol] }))
        return
      }

      if (message?.type === 'unsubscribe') {
        const symbol = knownSymbol(socket, message.symbol)
        if (symbol === undefined) return
        ws.leaveRoom(`stock:${symbol}`, socket)
        socket.send(JSON.stringify({ type: 'unsubscribed', symbols: [symbol] }))
        return
      }

      ws.send(socket, { type: 'error', message: 'Unknown message type' })
    }
  })

  // Price update service (simulated). It starts once the server is ready and
  // is cleared when the app closes: a timer left running would keep the
  // process alive after app.close().
  let feed: NodeJS.Timeout | undefined
  app.addHook('onReady', async () => {
    feed = setInterval(() => {
      const ws = app.getWebSocket()
      const timestamp = new Date().toISOString()
      stocks.forEach(symbol => {
        ws.broadcast(`stock:${symbol}`, {
          type: 'price_update',
          symbol,
          price: nextPrice(symbol),
          timestamp
        })
      })
    }, interval)
  })
  app.addHook('onClose', async () => {
    clearInterval(feed)
  })

  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      app.close().catch((error: unknown) => {
        console.error(error)
        process.exitCode = 1
      })
    })
  }

  await app.listen({ port, host })
  const { port: actualPort } = app.server.address() as { port: number }
  const shownHost = host === '0.0.0.0' || host === '::' ? 'localhost' : host
  console.log(`Server running at http://${shownHost}:${actualPort}`)
  console.log(`Stocks WebSocket at ws://${shownHost}:${actualPort}/ws/stocks?symbols=AAPL,GOOGL`)
}

start().catch((error: unknown) => {
  console.error(error)
  process.exit(1)
})
