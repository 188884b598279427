// Compiled by smoke.sh in the fresh project with strict settings and
// skipLibCheck: false: the package's types must need nothing installed by
// hand (@types/ws comes with it), and `socket` must be ws's WebSocket, not `any`.
import Fastify from 'fastify'
import nexusRealtime from 'fastify-nexus-realtime'
import type { WebSocket } from 'ws'

const app = Fastify()
await app.register(nexusRealtime)

app.ws<{ user: { name: string }, message: { text: string } }>('/ws/chat', {
  auth: (ctx) => ({ name: String(ctx.query.token) }),
  onMessage: (socket, message, ctx) => {
    const typed: WebSocket = socket
    typed.send(JSON.stringify({ from: ctx.user.name, text: message.text.toUpperCase() }))
    // @ts-expect-error socket is ws's WebSocket: there is no sendJson (were it `any`, this directive would fail)
    socket.sendJson({ text: message.text })
    // @ts-expect-error send takes data, not a number of arguments of any type
    socket.send(Symbol('nope'))
    // @ts-expect-error the message is typed
    void message.missing
  }
})

await app.ready()
const ws = await app.injectWS('/ws/chat?token=a')
ws.terminate()
await app.close()
