import t from 'tap'
import { type Client, connect, type TestContext } from './helpers/server'
import { inbox, startExample } from './helpers/examples'

const FILE = 'examples/game/server.ts'

function close (t: TestContext, client: Client): void {
  t.teardown(() => client.close())
}

t.test('game: without ?game= the client gets an error message, then the socket is closed', async (t) => {
  const example = await startExample(t, FILE)
  const client = await connect(`${example.wsUrl}/ws/game?name=Ann`)
  const closed = client.closed()
  t.same(await inbox(client).next(), { type: 'error', message: 'Game ID required' })
  t.same(await closed, { code: 1008, reason: 'Game ID required' })
})

t.test('game: the seed scenario, two players and a spectator in one game', async (t) => {
  const example = await startExample(t, FILE)

  const ann = await connect(`${example.wsUrl}/ws/game?game=42&name=Ann`)
  close(t, ann)
  const toAnn = inbox(ann)
  const first = await toAnn.next()
  t.match(first, { type: 'game_state', you: 'X', state: { id: '42', turn: 'X', winner: null, players: { X: { name: 'Ann', id: String }, O: null } } })
  t.same(first.state.board, Array(9).fill(null))
  const annId = first.state.players.X.id

  const ben = await connect(`${example.wsUrl}/ws/game?game=42&name=Ben`)
  close(t, ben)
  const toBen = inbox(ben)
  const second = await toBen.next()
  t.match(second, { type: 'game_state', you: 'O', state: { players: { X: { name: 'Ann' }, O: { name: 'Ben' } } } })
  const benId = second.state.players.O.id
  t.match(await toAnn.next(), { type: 'player_joined', player: { id: benId, name: 'Ben' }, mark: 'O' }, 'the others hear of the new player')

  // A player of another game hears nothing of this one.
  const other = await connect(`${example.wsUrl}/ws/game?game=7&name=Zoe`)
  close(t, other)
  const toOther = inbox(other)
  t.match(await toOther.next(), { type: 'game_state', you: 'X', state: { id: '7' } })

  t.test('moves are checked, then broadcast with the new state', async (t) => {
    ben.send({ type: 'move', move: { cell: 0 } })
    t.same(await toBen.next(), { type: 'error', message: 'Not your turn' }, 'only the mover hears of a refused move')

    ann.send({ type: 'move', move: { cell: 4 } })
    for (const message of [await toAnn.next(), await toBen.next()]) {
      t.match(message, { type: 'move_made', player: annId, move: { cell: 4 }, result: { mark: 'X', cell: 4, turn: 'O', winner: null } })
      t.equal(message.result.board[4], 'X')
    }

    ben.send({ type: 'move', move: { cell: 4 } })
    t.same(await toBen.next(), { type: 'error', message: 'That cell is taken' })
    ben.send({ type: 'move', move: { cell: 9 } })
    t.same(await toBen.next(), { type: 'error', message: 'A move is { "cell": 0–8 }' })
  })

  const scenario = t
  t.test('a late joiner gets the state kept in memory, and watches', async (t) => {
    const cat = await connect(`${example.wsUrl}/ws/game?game=42&name=Cat`)
    // Cat stays to the end: a close now would be announced to the others.
    close(scenario, cat)
    const toCat = inbox(cat)
    const state = await toCat.next()
    t.match(state, { type: 'game_state', you: null, state: { turn: 'O' } })
    t.equal(state.state.board[4], 'X')
    t.match(await toAnn.next(), { type: 'player_joined', player: { name: 'Cat' }, mark: null })
    t.match(await toBen.next(), { type: 'player_joined', player: { name: 'Cat' }, mark: null })

    cat.send({ type: 'move', move: { cell: 0 } })
    t.same(await toCat.next(), { type: 'error', message: 'Spectators cannot move' })

    cat.send({ type: 'chat', text: 'go Ben' })
    for (const reader of [toAnn, toBen, toCat]) {
      t.same(await reader.next(), { type: 'game_chat', player: 'Cat', text: 'go Ben' })
    }

    // The game goes on; everyone in it sees every move.
    const moves: Array<[Client, number]> = [[ben, 0], [ann, 3], [ben, 1]]
    for (const [player, cell] of moves) {
      player.send({ type: 'move', move: { cell } })
      for (const reader of [toAnn, toBen, toCat]) t.match(await reader.next(), { type: 'move_made', move: { cell } })
    }
  })

  t.test('a winning move ends the game; the other game never heard of it', async (t) => {
    // X holds 3 and 4; 5 completes the middle row.
    ann.send({ type: 'move', move: { cell: 5 } })
    for (const reader of [toAnn, toBen]) {
      t.match(await reader.next(), { type: 'move_made', move: { cell: 5 }, result: { mark: 'X', winner: 'X' } })
    }
    ben.send({ type: 'move', move: { cell: 2 } })
    t.same(await toBen.next(), { type: 'error', message: 'The game is over' })

    other.send({ type: 'move', move: { cell: 0 } })
    t.same(await toOther.next(), { type: 'error', message: 'Waiting for a second player' })
    t.equal(toOther.unread, 0, 'game 7 heard nothing of game 42')
  })

  t.test('a player leaving is announced and frees the seat', async (t) => {
    const closed = ben.closed()
    ben.close()
    await closed
    t.match(await toAnn.next(), { type: 'player_left', player: { id: benId, name: 'Ben' }, mark: 'O' })
    const dan = await connect(`${example.wsUrl}/ws/game?game=42&name=Dan`)
    close(t, dan)
    t.match(await inbox(dan).next(), { type: 'game_state', you: 'O' })
  })
})

t.test('game: unknown messages get an error frame', async (t) => {
  const example = await startExample(t, FILE)
  const client = await connect(`${example.wsUrl}/ws/game?game=1`)
  close(t, client)
  const messages = inbox(client)
  t.match(await messages.next(), { type: 'game_state', you: 'X', state: { players: { X: { name: 'Player' } } } })
  client.send({ type: 'resign' })
  t.same(await messages.next(), { type: 'error', message: 'Unknown message type' })
  client.send({ type: 'chat' })
  t.same(await messages.next(), { type: 'error', message: 'A chat message needs "text"' })
})
