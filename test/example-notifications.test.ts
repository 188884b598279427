import t from 'tap'
import { type Client, connect, rejected, type TestContext } from './helpers/server'
import { type Example, inbox, printed, startExample } from './helpers/examples'

const FILE = 'examples/notifications/server.ts'

function close (t: TestContext, client: Client): void {
  t.teardown(() => client.close())
}

async function post (example: Example, path: string, body: unknown, token?: string): Promise<{ status: number, body: any }> {
  const headers: Record<string, string> = { 'content-type': 'application/json' }
  if (token !== undefined) headers.authorization = `Bearer ${token}`
  const response = await fetch(`${example.url}${path}`, { method: 'POST', headers, body: JSON.stringify(body) })
  return { status: response.status, body: await response.json() }
}

async function login (example: Example, userId: string): Promise<string> {
  const { status, body } = await post(example, '/login', { userId })
  if (status !== 200) throw new Error(`login of ${userId} answered ${status}: ${JSON.stringify(body)}`)
  return body.token
}

t.test('notifications: the seed scenario with a user and an admin', async (t) => {
  const example = await startExample(t, FILE)
  const aliceToken = await login(example, 'alice') // roles: user
  const bobToken = await login(example, 'bob') // roles: user, admin

  // A notification sent while alice is offline waits for her.
  const early = await post(example, '/notify/alice', { title: 'Welcome', message: 'Glad you are here' }, bobToken)
  t.equal(early.status, 201)
  t.match(early.body, { id: String, delivered: 0 }, 'nobody was online to get it')

  const alice = await connect(`${example.wsUrl}/ws/notifications?token=${aliceToken}`)
  close(t, alice)
  const fromAlice = inbox(alice)
  const unread = await fromAlice.next()
  t.match(unread, { type: 'unread', count: 1 })
  t.match(unread.notifications, [{ id: early.body.id, title: 'Welcome', message: 'Glad you are here', from: 'bob', read: false, createdAt: String }])

  const bob = await connect(`${example.wsUrl}/ws/notifications?token=${bobToken}`)
  close(t, bob)
  const fromBob = inbox(bob)
  t.same(await fromBob.next(), { type: 'unread', count: 0, notifications: [] })

  t.test('POST /notify/:userId reaches that user only', async (t) => {
    const sent = await post(example, '/notify/alice', { message: 'Your order shipped' }, bobToken)
    t.equal(sent.status, 201)
    t.equal(sent.body.delivered, 1)
    t.match(await fromAlice.next(), { type: 'notification', id: sent.body.id, title: 'Notification', message: 'Your order shipped', from: 'bob', read: false })
    t.equal(fromBob.unread, 0)
  })

  t.test('POST /admin/alert reaches the admin role room only', async (t) => {
    const sent = await post(example, '/admin/alert', { message: 'Disk almost full' }, bobToken)
    t.same(sent, { status: 200, body: { delivered: 1 } })
    t.same(await fromBob.next(), { type: 'admin_alert', message: 'Disk almost full' })

    const forbidden = await post(example, '/admin/alert', { message: 'I am not an admin' }, aliceToken)
    t.equal(forbidden.status, 403, 'a user without the admin role may not send alerts')
  })

  t.test('mark_read marks one notification read, for every tab of that user', async (t) => {
    const aliceAgain = await connect(`${example.wsUrl}/ws/notifications?token=${aliceToken}`)
    const fromAliceAgain = inbox(aliceAgain)
    const before = await fromAliceAgain.next()
    t.equal(before.count, 2, 'both notifications are unread')

    alice.send({ type: 'mark_read', notificationId: early.body.id })
    t.same(await fromAlice.next(), { type: 'marked_read', notificationId: early.body.id })
    t.same(await fromAliceAgain.next(), { type: 'marked_read', notificationId: early.body.id })

    alice.send({ type: 'mark_read', notificationId: 'no-such-id' })
    t.same(await fromAlice.next(), { type: 'error', message: 'Unknown notification' })
    bob.send({ type: 'mark_read', notificationId: early.body.id })
    t.same(await fromBob.next(), { type: 'error', message: 'Unknown notification' }, 'nobody marks another user\'s notification')
    bob.send({ type: 'subscribe' })
    t.same(await fromBob.next(), { type: 'error', message: 'Unknown message type' })

    const closed = aliceAgain.closed()
    aliceAgain.close()
    await closed
    const later = await connect(`${example.wsUrl}/ws/notifications?token=${aliceToken}`)
    close(t, later)
    const after = await inbox(later).next()
    t.equal(after.count, 1, 'one notification is left unread on the next connect')
    t.equal(after.notifications[0].message, 'Your order shipped')
  })

  t.test('tokens stay out of the request logs', async (t) => {
    await printed(example, '/ws/notifications?token=[redacted]')
    t.notOk(example.output().includes(aliceToken))
    t.notOk(example.output().includes(bobToken))
  })
})

t.test('notifications: tokens are checked before the upgrade and on the HTTP routes', async (t) => {
  const example = await startExample(t, FILE)
  const aliceToken = await login(example, 'alice')

  t.match((await rejected(`${example.wsUrl}/ws/notifications`)).message, /401/, 'no token')
  t.match((await rejected(`${example.wsUrl}/ws/notifications?token=not-a-jwt`)).message, /401/, 'a malformed token')
  const [header, payload] = aliceToken.split('.')
  t.match((await rejected(`${example.wsUrl}/ws/notifications?token=${header}.${payload}.forged`)).message, /401/, 'a bad signature')

  t.equal((await post(example, '/notify/alice', { message: 'hi' })).status, 401, 'POST /notify without a token')
  t.equal((await post(example, '/admin/alert', { message: 'hi' })).status, 401, 'POST /admin/alert without a token')
  t.equal((await post(example, '/notify/nobody', { message: 'hi' }, aliceToken)).status, 404, 'an unknown user')
  t.equal((await post(example, '/notify/alice', {}, aliceToken)).status, 400, 'a body without a message')
  t.equal((await post(example, '/login', { userId: 'mallory' })).status, 404, 'login of an unknown user')
})
