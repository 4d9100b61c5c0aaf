import { test } from 'tap'
import { connect, constants, type Http2Server, type Http2ServerRequest, type Http2ServerResponse } from 'node:http2'
import Fastify, { type FastifyInstance } from 'fastify'
import fastifyLogin from '../lib/index'
import { SECRET, User, userStore } from './helpers'

// fastify-login on an http2 server: the guards, loginUser, logoutUser,
// confirmLogin, loginInfo and nextUrl take http2's request and reply, at run
// time as in the types (types/index.test-d.ts, section 8).
async function buildHttp2 (): Promise<FastifyInstance<Http2Server, Http2ServerRequest, Http2ServerResponse>> {
  const users = userStore()
  const app = Fastify({ http2: true })
  await app.register(fastifyLogin, {
    secret: SECRET,
    userLoader: (id) => users.get(id),
    loginRequiredRoute: '/login'
  })
  app.get<{ Params: { id: string } }>('/login/:id', { onRequest: app.loginManager.loginProhibited }, (request, reply) => {
    app.loginManager.loginUser(request, reply, users.get(request.params.id) as User, { fresh: false })
    return reply.redirect(app.loginManager.nextUrl(request, '/me'), 303)
  })
  app.get('/me', { config: { login: 'required' } }, (request) => ({
    id: request.currentUser.getId(),
    source: app.loginManager.loginInfo(request)?.source
  }))
  app.post('/confirm', { onRequest: app.loginManager.loginRequired }, (request, reply) => {
    app.loginManager.confirmLogin(request, reply)
    return { fresh: request.isFresh }
  })
  app.get('/settings', { onRequest: app.loginManager.freshLoginRequired }, () => 'fresh enough')
  app.post('/logout', (request, reply) => {
    app.loginManager.logoutUser(request, reply)
    return 'bye'
  })
  return app
}

interface Http2Answer {
  status: number
  headers: Record<string, string | string[] | undefined>
  body: string
}

test('an http2 server logs in, guards and logs out, with a real http2 client', async (t) => {
  const app = await buildHttp2()
  t.teardown(() => app.close())
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as { port: number }
  const session = connect(`http://127.0.0.1:${port}`)
  t.teardown(() => session.close())

  const jar = new Map<string, string>()
  const ask = async (method: string, path: string): Promise<Http2Answer> => await new Promise((resolve, reject) => {
    const cookie = [...jar].map(([name, value]) => `${name}=${value}`).join('; ')
    const stream = session.request({ [constants.HTTP2_HEADER_METHOD]: method, [constants.HTTP2_HEADER_PATH]: path, ...(cookie === '' ? {} : { cookie }) })
    let body = ''
    let headers: Http2Answer['headers'] = {}
    stream.setEncoding('utf8')
    stream.on('response', (received) => { headers = received })
    stream.on('data', (chunk: string) => { body += chunk })
    stream.on('end', () => {
      for (const line of [headers['set-cookie'] ?? []].flat()) {
        const [pair] = line.split(';')
        const [name, value] = [pair.slice(0, pair.indexOf('=')), pair.slice(pair.indexOf('=') + 1)]
        if (/Max-Age=0/i.test(line)) jar.delete(name)
        else jar.set(name, value)
      }
      resolve({ status: Number(headers[':status']), headers, body })
    })
    stream.on('error', reject)
    stream.end()
  })

  const anonymous = await ask('GET', '/me')
  t.equal(anonymous.status, 307, 'the guard redirects a visitor who is not logged in')
  t.equal(anonymous.headers.location, '/login?next=%2Fme')

  const login = await ask('GET', '/login/1?next=%2Fme')
  t.equal(login.status, 303)
  t.equal(login.headers.location, '/me', 'nextUrl read the next field')
  t.same([...jar.keys()], ['account'], 'loginUser set the account cookie (and no fresh one: fresh: false)')

  const me = await ask('GET', '/me')
  t.equal(me.status, 200)
  t.same(JSON.parse(me.body), { id: '1', source: 'cookie' }, 'the login cookie loads the user; loginInfo tells how')

  t.equal((await ask('GET', '/login/2')).status, 403, 'loginProhibited refuses a logged-in visitor')

  t.equal((await ask('GET', '/settings')).status, 401, 'a login started not fresh is refused by freshLoginRequired')
  const confirmed = await ask('POST', '/confirm')
  t.same(JSON.parse(confirmed.body), { fresh: true }, 'confirmLogin made it fresh')
  t.same([...jar.keys()].sort(), ['account', 'fresh'], 'with a fresh cookie now')
  t.equal((await ask('GET', '/settings')).body, 'fresh enough')

  const logout = await ask('POST', '/logout')
  t.equal(logout.body, 'bye')
  t.equal(jar.size, 0, 'logoutUser expired both cookies')
  t.equal((await ask('GET', '/me')).status, 307, 'logged out')
})

test('an http2 app answers app.inject the same way', async (t) => {
  const app = await buildHttp2()
  t.teardown(() => app.close())
  const login = await app.inject('/login/2')
  const cookies = Object.fromEntries(login.cookies.map((cookie: { name: string, value: string }) => [cookie.name, cookie.value]))
  const me = await app.inject({ url: '/me', cookies })
  t.same(me.json(), { id: '2', source: 'cookie' })
  const logout = await app.inject({ method: 'POST', url: '/logout', cookies })
  t.same(logout.cookies.map((cookie: { name: string, maxAge?: number }) => [cookie.name, cookie.maxAge]), [['account', 0]])
})
