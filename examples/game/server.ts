// The seed's Multiplayer Game, made a real one: tic-tac-toe. Players of one
// game share the room `game:<id>`, where `id` is the `?game=` query; the first
// two players take X and O, later ones watch. The state lives in memory and is
// dropped when the last player of a game leaves.
//
//   npm run example:game
//   then connect to ws://localhost:3000/ws/game?game=42&name=Ann and send
//   {"type":"move","move":{"cell":4}} (cells 0–8, row by row) or
//   {"type":"chat","text":"good luck"}
import Fastify from 'fastify'
import nexusRealtime from 'fastify-nexus-realtime'
import { randomUUID } from 'node:crypto'

const port = Number(process.env.PORT ?? 3000)
const host = process.env.HOST ?? 'localhost'

const MAX_GAME_ID_LENGTH = 64
/** Close code for a connection refused by the app's own rule (RFC 6455: policy violation). */
const POLICY_VIOLATION = 1008

type Mark = 'X' | 'O'

interface Player {
  id: string
  name: string
}

interface GameState {
  id: string
  /** 9 cells, row by row */
  board: Array<Mark | null>
  /** who plays X and O; `null` while a seat is free */
  players: Record<Mark, Player | null>
  /** whose turn it is */
  turn: Mark
  winner: Mark | 'draw' | null
}

interface MoveResult {
  mark: Mark
  cell: number
  board: Array<Mark | null>
  turn: Mark
  winner: Mark | 'draw' | null
}

const LINES = [[0, 1, 2], [3, 4, 5], [6, 7, 8], [0, 3, 6], [1, 4, 7], [2, 5, 8], [0, 4, 8], [2, 4, 6]]

/** Every game being played, by id. */
const games = new Map<string, GameState>()

function generatePlayerId (): string {
  return randomUUID()
}

/** The id given as `?game=`, or `undefined` when it is missing or not usable. */
function gameIdOf (query: Record<string, string | string[]>): string | undefined {
  const id = query.game
  return typeof id === 'string' && id !== '' && id.length <= MAX_GAME_ID_LENGTH ? id : undefined
}

/** The state of a game, created on first use. */
async function getGameState (gameId: string): Promise<GameState> {
  let state = games.get(gameId)
  if (state === undefined) {
    state = { id: gameId, board: Array(9).fill(null), players: { X: null, O: null }, turn: 'X', winner: null }
    games.set(gameId, state)
  }
  return state
}

/** Gives the player the first free seat; `null` makes them a spectator. */
function takeSeat (state: GameState, player: Player): Mark | null {
  for (const mark of ['X', 'O'] as const) {
    if (state.players[mark] === null) {
      state.players[mark] = player
      return mark
    }
  }
  return null
}

/** A move the rules refuse; its message goes back to the player who made it. */
class InvalidMove extends Error {}

function winnerOf (board: Array<Mark | null>): Mark | 'draw' | null {
  for (const [a, b, c] of LINES) {
    if (board[a] !== null && board[a] === board[b] && board[a] === board[c]) return board[a]
  }
  return board.every((cell) => cell !== null) ? 'draw' : null
}

async function processMove (gameId: string, playerId: string, move: unknown): Promise<MoveResult> {
  const state = await getGameState(gameId)
  const mark = (['X', 'O'] as const).find((seat) => state.players[seat]?.id === playerId)
  if (mark === undefined) throw new InvalidMove('Spectators cannot move')
  if (state.winner !== null) throw new InvalidMove('The game is over')
  if (state.players.X === null || state.players.O === null) throw new InvalidMove('Waiting for a second player')
  if (state.turn !== mark) throw new InvalidMove('Not your turn')
  const cell = (move as { cell?: unknown } | null)?.cell
  if (typeof cell !== 'number' || !Number.isInteger(cell) || cell < 0 || cell > 8) {
    throw new InvalidMove('A move is { "cell": 0–8 }')
  }
  if (state.board[cell] !== null) throw new InvalidMove('That cell is taken')
  state.board[cell] = mark
  state.turn = mark === 'X' ? 'O' : 'X'
  state.winner = winnerOf(state.board)
  return { mark, cell, board: [...state.board], turn: state.turn, winner: state.winner }
}

async function start (): Promise<void> {
  const app = Fastify({ logger: true })
  await app.register(nexusRealtime)

  app.ws('/ws/game', {
    auth: async (ctx) => {
      const name = ctx.query.name
      return {
        id: generatePlayerId(),
        name: typeof name === 'string' && name !== '' ? name.slice(0, 50) : 'Player'
      }
    },

    onConnect: async (socket, ctx) => {
      const ws = app.getWebSocket()!
      const gameId = gameIdOf(ctx.query)

      if (!gameId) {
        socket.send(JSON.stringify({ type: 'error', message: 'Game ID required' }))
        socket.close(POLICY_VIOLATION, 'Game ID required')
        return
      }

      // Join game room
      ws.joinRoom(`game:${gameId}`, socket)

      const gameState = await getGameState(gameId)
      ctx.metadata.mark = takeSeat(gameState, ctx.user)

      // Notify other players
      ws.broadcast(`game:${gameId}`, {
        type: 'player_joined',
        player: ctx.user,
        mark: ctx.metadata.mark
      }, { except: socket })

      // Send current game state
      socket.send(JSON.stringify({
        type: 'game_state',
        you: ctx.metadata.mark,
        state: gameState
      }))
    },

    onMessage: async (socket, message, ctx) => {
      const ws = app.getWebSocket()!
      const gameId = gameIdOf(ctx.query) as string

      switch (message?.type) {
        case 'move': {
          let result: MoveResult
          try {
            result = await processMove(gameId, ctx.user.id, message.move)
          } catch (error) {
            if (!(error instanceof InvalidMove)) throw error
            ws.send(socket, { type: 'error', message: error.message })
            break
          }
          ws.broadcast(`game:${gameId}`, {
            type: 'move_made',
            player: ctx.user.id,
            move: message.move,
            result
          })
          break
        }

        case 'chat':
          if (typeof message.text !== 'string' || message.text === '') {
            ws.send(socket, { type: 'error', message: 'A chat message needs "text"' })
            break
          }
          ws.broadcast(`game:${gameId}`, {
            type: 'game_chat',
            player: ctx.user.name,
            text: message.text
          })
          break

        default:
          ws.send(socket, { type: 'error', message: 'Unknown message type' })
      }
    },

    onClose: async (_socket, ctx) => {
      const ws = app.getWebSocket()!
      const gameId = gameIdOf(ctx.query)
      // A connection refused for its missing id never joined a game.
      if (!gameId) return

      const state = games.get(gameId)
      const mark = ctx.metadata.mark as Mark | null | undefined
      if (state !== undefined && mark) state.players[mark] = null
      // The socket has left the room already: an empty room is a finished game.
      if (ws.roomSize(`game:${gameId}`) === 0) {
        games.delete(gameId)
        return
      }

      ws.broadcast(`game:${gameId}`, {
        type: 'player_left',
        player: ctx.user,
        mark: mark ?? null
      })
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
  console.log(`Server running at http://${shownHost}:${actualPort}`)
  console.log(`Game WebSocket at ws://${shownHost}:${actualPort}/ws/game?game=<id>&name=<name>`)
}

start().catch((error: unknown) => {
  console.error(error)
  process.exit(1)
})
