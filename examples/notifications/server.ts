// The seed's Notifications Service: each socket joins its user's room and one
// room per role, gets its unread notifications on connect, and can mark them
// read; ordinary Fastify HTTP handlers send notifications and admin alerts.
// The seed's undefined `verifyToken` is @fastify/jwt here.
//
//   npm run example:notifications
//   curl -s -X POST localhost:3000/login -H 'content-type: application/json' -d '{"userId":"bob"}'
//   → {"token":"…"}; connect to ws://localhost:3000/ws/notifications?token=<token>
//   curl -s -X POST localhost:3000/notify/alice -H "authorization: Bearer <token>" \
//     -H 'content-type: application/json' -d '{"title":"Hi","message":"Your order shipped"}'
//   curl -s -X POST localhost:3000/admin/alert -H "authorization: Bearer <admin token>" \
//     -H 'content-type: application/json' -d '{"message":"Disk almost full"}'
import Fastify, { type FastifyReply, type FastifyRequest } from 'fastify'
import fastifyJwt from '@fastify/jwt'
import nexusRealtime from 'fastify-nexus-realtime'
import { randomUUID } from 'node:crypto'

const port = Number(process.env.PORT ?? 3000)
const host = process.env.HOST ?? 'localhost'
const DEV_SECRET = 'development-only-secret-set-JWT_SECRET'
const secret = process.env.JWT_SECRET ?? DEV_SECRET

interface User {
  id: string
  name: string
  roles: string[]
}

/** What the tokens carry: the user, with its id as the standard `sub` claim. */
interface TokenPayload {
  sub: string
  name: string
  roles: string[]
}

declare module '@fastify/jwt' {
  interface FastifyJWT {
    payload: TokenPayload
    user: TokenPayload
  }
}

interface Notification {
  id: string
  title: string
  message: string
  from: string | null
  createdAt: string
  read: boolean
}

// ------------------------------------------------------------ a tiny store
// Stands for the app's database: users, and notifications kept per user so
// that a user who is offline finds them unread on the next connect.

const users = new Map<string, User>([
  ['alice', { id: 'alice', name: 'Alice', roles: ['user'] }],
  ['bob', { id: 'bob', name: 'Bob', roles: ['user', 'admin'] }]
])

const notifications = new Map<string, Notification[]>()

function addNotification (userId: string, fields: { title: string, message: string, from: string | null }): Notification {
  const notification: Notification = { id: randomUUID(), ...fields, createdAt: new Date().toISOString(), read: false }
  const list = notifications.get(userId) ?? []
  list.push(notification)
  notifications.set(userId, list)
  return notification
}

async function getUnreadNotifications (userId: string): Promise<Notification[]> {
  return (notifications.get(userId) ?? []).filter((notification) => !notification.read)
}

/** Marks one of the user's notifications read; `false` when the user has no such notification. */
async function markNotificationRead (notificationId: string, userId: string): Promise<boolean> {
  const notification = notifications.get(userId)?.find((candidate) => candidate.id === notificationId)
  if (notification === undefined) return false
  notification.read = true
  return true
}

/** An Error that Fastify answers with this HTTP status. */
function httpError (statusCode: number, message: string): Error {
  return Object.assign(new Error(message), { statusCode })
}

async function start (): Promise<void> {
  const app = Fastify({
    logger: {
      serializers: {
        // The WebSocket handshake carries the token in its query string:
        // keep it out of the request logs.
        req: (request) => ({
          method: request.method,
          url: request.url.replace(/([?&]token=)[^&]*/, '$1[redacted]'),
          remoteAddress: request.ip
        })
      }
    }
  })
  await app.register(fastifyJwt, { secret, sign: { expiresIn: '1h' } })
  await app.register(nexusRealtime)

  // Send notification from anywhere in your app (the seed's function): it is
  // stored, then pushed to every open socket of that user.
  function sendNotification (userId: string, notification: Notification): number {
    const ws = app.getWebSocket()
    return ws.broadcast(`user:${userId}`, {
      type: 'notification',
      ...notification
    })
  }

  // Send to all admins (the seed's function)
  function notifyAdmins (message: string): number {
    const ws = app.getWebSocket()
    return ws.broadcast('role:admin', {
      type: 'admin_alert',
      message
    })
  }

  /** preHandler of the HTTP routes: a valid `Authorization: Bearer <token>`. */
  async function authenticate (request: FastifyRequest): Promise<void> {
    await request.jwtVerify()
  }

  /** preHandler of the admin routes, after authenticate. */
  async function requireAdmin (request: FastifyRequest, reply: FastifyReply): Promise<void> {
    if (!request.user.roles.includes('admin')) {
      await reply.code(403).send({ statusCode: 403, error: 'Forbidden', message: 'Admins only' })
    }
  }

  // A stand-in for a real login: it trusts the user id it is given, where a
  // real app checks a password or an identity provider first.
  app.post<{ Body: { userId: string } }>('/login', {
    schema: {
      body: {
        type: 'object',
        required: ['userId'],
        properties: { userId: { type: 'string', minLength: 1 } }
      }
    }
  }, async (request) => {
    const user = users.get(request.body.userId)
    if (user === undefined) throw httpError(404, 'Unknown user')
    return { token: app.jwt.sign({ sub: user.id, name: user.name, roles: user.roles }) }
  })

  app.post<{ Params: { userId: string }, Body: { title?: string, message: string } }>('/notify/:userId', {
    preHandler: authenticate,
    schema: {
      body: {
        type: 'object',
        required: ['message'],
        properties: {
          title: { type: 'string', maxLength: 200 },
          message: { type: 'string', minLength: 1, maxLength: 2000 }
        }
      }
    }
  }, async (request, reply) => {
    const { userId } = request.params
    if (!users.has(userId)) throw httpError(404, 'Unknown user')
    const notification = addNotification(userId, {
      title: request.body.title ?? 'Notification',
      message: request.body.message,
      from: request.user.sub
    })
    const delivered = sendNotification(userId, notification)
    return reply.code(201).send({ id: notification.id, delivered })
  })

  app.post<{ Body: { message: string } }>('/admin/alert', {
    preHandler: [authenticate, requireAdmin],
    schema: {
      body: {
        type: 'object',
        required: ['message'],
        properties: { message: { type: 'string', minLength: 1, maxLength: 2000 } }
      }
    }
  }, async (request) => {
    return { delivered: notifyAdmins(request.body.message) }
  })

  app.ws('/ws/notifications', {
    auth: async (ctx) => {
      const token = ctx.query.token
      if (typeof token !== 'string' || token === '') throw httpError(401, 'Token required')
      // Throws on a bad signature, an expired or malformed token: the
      // handshake is then answered 401 and no socket is created.
      const payload = app.jwt.verify<TokenPayload>(token)
      return { id: payload.sub, name: payload.name, roles: payload.roles }
    },

    onConnect: async (socket, ctx) => {
      const ws = app.getWebSocket()!

      // Join user-specific room
      ws.joinRoom(`user:${ctx.user.id}`, socket)

      // Join role-based rooms
      ctx.user.roles.forEach((role: string) => {
        ws.joinRoom(`role:${role}`, socket)
      })

      // Send unread notifications
      const unread = await getUnreadNotifications(ctx.user.id)
      socket.send(JSON.stringify({
        type: 'unread',
        count: unread.length,
        notifications: unread
      }))
    },

    onMessage: async (socket, message, ctx) => {
      const ws = app.getWebSocket()!
      if (message?.type === 'mark_read') {
        const found = typeof message.notificationId === 'string' &&
          await markNotificationRead(message.notificationId, ctx.user.id)
        if (!found) {
          ws.send(socket, { type: 'error', message: 'Unknown notification' })
          return
        }
        // Every open socket of this user (other tabs too) learns it was read.
        ws.broadcast(`user:${ctx.user.id}`, {
          type: 'marked_read',
          notificationId: message.notificationId
        })
        return
      }
      ws.send(socket, { type: 'error', message: 'Unknown message type' })
    }
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
  if (secret === DEV_SECRET) console.log('JWT_SECRET is not set: tokens are signed with a development secret')
  console.log(`Server running at http://${shownHost}:${actualPort}`)
  console.log(`Notifications WebSocket at ws://${shownHost}:${actualPort}/ws/notifications?token=<token from POST /login>`)
}

start().catch((error: unknown) => {
  console.error(error)
  process.exit(1)
})
