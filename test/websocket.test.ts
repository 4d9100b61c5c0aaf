import { once } from 'node:events'
import { test, type Test } from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import fastifyWebsocket from '@fastify/websocket'
import WebSocket from 'ws'
import fastifyLogin from '../lib/index'
import { cookieJar, SECRET, User, userStore } from './helpers'

// docs/websockets.md: an @fastify/websocket route is guarded like any other
// (the guards are onRequest hooks, which run for the upgrade request), and
// crossOriginProtection refuses an upgrade sent from another origin, which
// the browser would make with the user's login cookie (cross-site WebSocket
// hijacking). A real server, and a real `ws` client.

async function listening (t: Test): Promise<{ app: FastifyInstance, origin: string, url: string }> {
  const users = userStore()
  const app = Fastify()
  await app.register(fastifyLogin, { secret: SECRET, userLoader: (id) => users.get(id), trustedOrigins: ['https://app.example.com'] })
  await app.register(fastifyWebsocket)
  const { crossOriginProtection } = app.loginManager
  app.get('/login', (request, reply) => {
    app.loginManager.loginUser(request, reply, users.get('1') as User)
    return 'in'
  })
  app.get('/echo', { websocket: true, onRequest: crossOriginProtection }, (socket) => {
    socket.on('message', (message: Buffer) => socket.send(`echo ${message.toString()}`))
  })
  app.get('/private', { websocket: true, config: { login: 'required' }, onRequest: crossOriginProtection }, (socket, request) => {
    socket.send(`hello ${(request.currentUser as User).name}`)
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  const { port } = app.server.address() as { port: number }
  return { app, origin: `http://127.0.0.1:${port}`, url: `ws://127.0.0.1:${port}` }
}

// Opens a socket: the first message, or the status of a refused upgrade.
async function connect (url: string, options: WebSocket.ClientOptions): Promise<{ status: number, message?: string, socket?: WebSocket }> {
  const socket = new WebSocket(url, options)
  return await new Promise((resolve, reject) => {
    socket.once('unexpected-response', (request, response) => {
      resolve({ status: response.statusCode ?? 0 })
      request.destroy()
    })
    socket.once('open', () => {
      socket.once('message', (message: Buffer) => resolve({ status: 101, message: message.toString(), socket }))
      if (url.endsWith('/echo')) socket.send('ping')
    })
    socket.once('error', reject)
  })
}

test('crossOriginProtection on a WebSocket route: same-origin upgrades open, cross-origin ones are refused with 403', async (t) => {
  const { app, origin, url } = await listening(t)
  const refused: string[] = []
  app.loginManager.on('crossOriginRefused', (request) => refused.push(request.headers.origin ?? ''))
  for (const [what, options, status] of [
    ['same origin', { origin }, 101],
    ['same origin, by Sec-Fetch-Site', { origin, headers: { 'sec-fetch-site': 'same-origin' } }, 101],
    ['no Origin: not a browser page', {}, 101],
    ['a trusted origin', { origin: 'https://app.example.com' }, 101],
    ['another site', { origin: 'https://evil.example' }, 403],
    ['another port of the host', { origin: 'http://127.0.0.1:1' }, 403],
    ['a sibling, by Sec-Fetch-Site', { origin, headers: { 'sec-fetch-site': 'same-site' } }, 403]
  ] as const) {
    const answer = await connect(`${url}/echo`, options)
    t.equal(answer.status, status, what)
    if (status === 101) {
      t.equal(answer.message, 'echo ping', `${what}: the socket works`)
      answer.socket?.close()
    }
  }
  t.same(refused, ['https://evil.example', 'http://127.0.0.1:1', origin], 'crossOriginRefused fired for each refusal')
  const otherUpgrade = await app.inject({ url: '/echo', headers: { origin: 'https://evil.example', upgrade: 'h2c' } })
  t.equal(otherUpgrade.statusCode, 404, 'a GET that asks for another upgrade is a safe method (the route answers it)')
})

test('a guarded WebSocket route: an anonymous upgrade is refused, a logged-in one opens as the user, a hijacking one is refused', async (t) => {
  const { app, origin, url } = await listening(t)
  const anonymous = await connect(`${url}/private`, { origin })
  t.equal(anonymous.status, 401, 'no login: refused before any socket is opened')
  const cookies = cookieJar(await app.inject('/login'))
  const cookie = `account=${cookies.account}; fresh=${cookies.fresh}`
  const user = await connect(`${url}/private`, { origin, headers: { cookie } })
  t.equal(user.status, 101)
  t.equal(user.message, 'hello ann', 'the socket knows the user')
  user.socket?.close()
  if (user.socket !== undefined) await once(user.socket, 'close')
  const hijack = await connect(`${url}/private`, { origin: 'https://evil.example', headers: { cookie } })
  t.equal(hijack.status, 403, 'another site, with the cookie the browser adds: refused')
})
