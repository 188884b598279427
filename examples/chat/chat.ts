// The chat of examples/chat as a Fastify plugin: the /ws/chat route of the
// seed's Chat Application, plus the join_room / leave_room messages of its Room
// Management section, and rooms on demand for the official client.
// examples/chat/server.ts and examples/react/app.ts both register it.
//
// Private messages, which the seed leaves unfinished, are done with rooms:
// every socket also joins `user:<name>`, so a private message is a broadcast
// to that room. Nothing scans the list of connections, and a user with two
// tabs open gets the message in both.
import type { FastifyPluginAsync } from 'fastify'
import { randomUUID } from 'node:crypto'
import type { WebSocket } from 'ws'

const MAX_NAME_LENGTH = 50
const MAX_ROOM_LENGTH = 50
const MAX_TEXT_LENGTH = 2000
const USER_ROOM_PREFIX = 'user:'

function generateId (): string {
  return randomUUID()
}

/** The room that holds every socket of one user. */
function userRoom (name: string): string {
  return USER_ROOM_PREFIX + name
}

/** Why a client may not enter this room, or `undefined` when it may. */
function roomProblem (room: unknown): string | undefined {
  if (typeof room !== 'string' || room === '' || room.length > MAX_ROOM_LENGTH) {
    return `A room name is a string of at most ${MAX_ROOM_LENGTH} characters`
  }
  if (room.startsWith(USER_ROOM_PREFIX)) {
    return `Room names starting with "${USER_ROOM_PREFIX}" are reserved`
  }
  return undefined
}

/** An Error that answers the handshake with this HTTP status. */
function httpError (statusCode: number, message: string): Error {
  return Object.assign(new Error(message), { statusCode })
}

/** Declares /ws/chat; the app must have registered fastify-nexus-realtime. */
export const chat: FastifyPluginAsync = async (app) => {
  /** Sends `{ type: 'error', message }` to one socket. */
  function sendError (socket: WebSocket, message: string): void {
    app.getWebSocket().send(socket, { type: 'error', message })
  }

  /**
   * The room a chat, typing, join_room or leave_room message names ('general'
   * when it names none), or `undefined` after telling the client why it is
   * refused. Clients never get into a `user:` room: those carry private messages.
   */
  function requestedRoom (socket: WebSocket, room: unknown): string | undefined {
    if (room === undefined || room === null || room === '') return 'general'
    const problem = roomProblem(room)
    if (problem !== undefined) {
      sendError(socket, problem)
      return undefined
    }
    return room as string
  }

  /** The text of a chat or private message, or `undefined` after telling the client why it is refused. */
  function textOf (socket: WebSocket, text: unknown): string | undefined {
    if (typeof text !== 'string' || text === '' || text.length > MAX_TEXT_LENGTH) {
      sendError(socket, `"text" is a string of 1 to ${MAX_TEXT_LENGTH} characters`)
      return undefined
    }
    return text
  }

  /** Like requestedRoom, and the socket must be in that room. */
  function memberRoom (socket: WebSocket, room: unknown): string | undefined {
    const name = requestedRoom(socket, room)
    if (name === undefined) return undefined
    if (!app.getWebSocket().roomsOf(socket).includes(name)) {
      sendError(socket, `You are not in room ${name}`)
      return undefined
    }
    return name
  }

  app.ws('/ws/chat', {
    auth: async (ctx) => {
      const token = ctx.query.token as string
      if (typeof token === 'string' && token.length > MAX_NAME_LENGTH) {
        throw httpError(400, `A name is at most ${MAX_NAME_LENGTH} characters`)
      }
      return { id: generateId(), name: token || 'Anonymous' }
    },

    // Pages on the official client (the chat page) enter their room with
    // `client.subscribe(room)` rather than a join_room message: the client
    // subscribes again by itself after every reconnect, before it sends what
    // was typed while offline. The rules are join_room's; raw clients keep
    // join_room and leave_room.
    rooms: {
      authorize: (room) => {
        const problem = roomProblem(room)
        return problem === undefined ? true : { allow: false, message: problem }
      }
    },

    // Who is in a room (the page's list): one member per user name, however
    // many tabs it has open. Rooms track it when the app's roomPolicies say
    // so (examples/chat/server.ts: every room but the `user:` ones).
    presence: {
      key: (ctx) => ctx.user.name,
      meta: (ctx) => ({ name: ctx.user.name })
    },

    onConnect: async (socket, ctx) => {
      const ws = app.getWebSocket()!

      // Join default room, and the user's own room for private messages
      ws.joinRoom('general', socket)
      ws.joinRoom(userRoom(ctx.user.name), socket)

      // Welcome message
      socket.send(JSON.stringify({
        type: 'welcome',
        message: `Welcome ${ctx.user.name}!`,
        room: 'general'
      }))

      // Notify others, once per user: a second tab of the same user is not news.
      if (ws.roomSize(userRoom(ctx.user.name)) === 1) {
        ws.broadcast('general', {
          type: 'system',
          message: `${ctx.user.name} joined the chat`
        })
      }
    },

    onMessage: async (socket, message, ctx) => {
      const ws = app.getWebSocket()!

      switch (message?.type) {
        case 'chat': {
          const room = memberRoom(socket, message.room)
          const text = room === undefined ? undefined : textOf(socket, message.text)
          if (room === undefined || text === undefined) break
          ws.broadcast(room, {
            type: 'chat',
            room,
            user: ctx.user.name,
            text,
            timestamp: new Date().toISOString()
          })
          break
        }

        case 'private': {
          if (typeof message.to !== 'string' || message.to === '' || message.to.length > MAX_NAME_LENGTH) {
            sendError(socket, 'A private message needs "to": the name of a user')
            break
          }
          const text = textOf(socket, message.text)
          if (text === undefined) break
          // Every socket of the target is in its user room: one broadcast
          // reaches all of them, and 0 sockets written means nobody is there.
          const delivered = ws.broadcast(userRoom(message.to), {
            type: 'private',
            from: ctx.user.name,
            text,
            timestamp: new Date().toISOString()
          })
          if (delivered === 0) sendError(socket, `${message.to} is not online`)
          break
        }

        case 'typing': {
          const room = memberRoom(socket, message.room)
          if (room === undefined) break
          ws.broadcast(room, {
            type: 'typing',
            room,
            user: ctx.user.name
          })
          break
        }

        case 'join_room': {
          const room = requestedRoom(socket, message.room)
          if (room === undefined) break
          ws.joinRoom(room, socket)
          socket.send(JSON.stringify({ type: 'room_joined', room }))
          break
        }

        case 'leave_room': {
          const room = requestedRoom(socket, message.room)
          if (room === undefined) break
          ws.leaveRoom(room, socket)
          socket.send(JSON.stringify({ type: 'room_left', room }))
          break
        }

        default:
          sendError(socket, 'Unknown message type')
      }
    },

    onClose: async (_socket, ctx) => {
      const ws = app.getWebSocket()!
      // The socket has left its rooms already: an empty user room means this
      // was the user's last connection.
      if (ws.roomSize(userRoom(ctx.user.name)) > 0) return
      ws.broadcast('general', {
        type: 'system',
        message: `${ctx.user.name} left the chat`
      })
    },

    onError: async (_socket, error, ctx) => {
      console.error(`WebSocket error for ${ctx.user?.name}:`, error)
    }
  })
}
