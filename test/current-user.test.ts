import { test } from 'tap'
import Fastify from 'fastify'
import fastifyLogin, { AnonymousUserMixin } from '../lib/index'
import { build, cookieJar, loginCookies, OTHER_SECRET, SECRET, User } from './helpers'

test('no cookie: the anonymous user, without calling the loader', async (t) => {
  const { app, loaderCalls } = await build()
  const response = await app.inject('/who')
  t.same(response.json(), { authenticated: false, id: null, fresh: false })
  t.same(loaderCalls, [])
})

test('a sync loader resolves currentUser on first read and runs once per request', async (t) => {
  const { app, loaderCalls } = await build()
  app.get('/twice', async (request) => {
    const first = request.currentUser
    const again = request.currentUser
    const loaded = await request.loadUser()
    return { same: first === again && again === loaded, id: first.getId() }
  })
  const cookies = await loginCookies(app, '2')
  t.same((await app.inject({ url: '/twice', cookies })).json(), { same: true, id: '2' })
  t.same(loaderCalls, ['2'], 'one loader call for three reads')
})

test('the loader gets the id as a string and the request', async (t) => {
  const seen: unknown[] = []
  const app = Fastify()
  await app.register(fastifyLogin, {
    secret: SECRET,
    userLoader: (id, request) => {
      seen.push(typeof id, id, request.url)
      return new User(Number(id), 'n')
    }
  })
  app.get('/login', (request, reply) => {
    app.loginManager.loginUser(request, reply, new User(7, 'n'))
    return 'ok'
  })
  app.get('/me', { onRequest: app.loginManager.loginRequired }, (request) => request.currentUser.getId())
  const cookies = cookieJar(await app.inject('/login'))
  await app.inject({ url: '/me', cookies })
  t.same(seen, ['string', '7', '/me'])
})

test('an async loader: guards and loadUser() resolve it; reading it before throws a clear error', async (t) => {
  const { app, users, loaderCalls } = await build()
  app.loginManager.userLoader(async (id) => {
    loaderCalls.push(id)
    await new Promise((resolve) => setImmediate(resolve))
    return users.get(id)
  })
  app.get('/early', (request) => request.currentUser.getId())
  app.get('/loaded', async (request) => {
    const user = await request.loadUser()
    const again = await request.loadUser()
    return { id: user.getId(), same: user === again && user === request.currentUser, fresh: request.isFresh }
  })
  app.get('/concurrent', async (request) => {
    const [a, b] = await Promise.all([request.loadUser(), request.loadUser()])
    return { same: a === b }
  })
  app.get('/early-then-load', async (request) => {
    let message = ''
    try {
      request.currentUser.getId()
    } catch (error) {
      message = (error as Error).message
    }
    return { message, id: (await request.loadUser()).getId() }
  })
  const cookies = await loginCookies(app, '1')
  loaderCalls.length = 0

  const early = await app.inject({ url: '/early', cookies })
  t.equal(early.statusCode, 500)
  t.match(early.json(), { code: 'FST_LOGIN_USER_NOT_LOADED', message: /Add a login guard .*, or `config: \{ login: 'optional' \}` to a page that anyone may see, or `await request\.loadUser\(\)`/ })

  t.same((await app.inject({ url: '/me', cookies })).json(), { name: 'ann', fresh: true }, 'a guard resolves it')
  t.same((await app.inject({ url: '/loaded', cookies })).json(), { id: '1', same: true, fresh: true })
  t.same((await app.inject({ url: '/guest', cookies })).statusCode, 403, 'loginProhibited resolves it too')
  loaderCalls.length = 0
  t.same((await app.inject({ url: '/concurrent', cookies })).json(), { same: true })
  t.same(loaderCalls, ['1'], 'concurrent loads share one loader call')
  t.match((await app.inject({ url: '/early-then-load', cookies })).json(), { message: /read before the asynchronous user loader finished/, id: '1' })
  t.same((await app.inject('/early')).body, 'null', 'without a cookie nothing is pending: anonymous at once')
})

test("config: { login: 'optional' } resolves an async loader's user before the handler and lets everyone through", async (t) => {
  const { app, users, loaderCalls } = await build({ secret: [SECRET, OTHER_SECRET] })
  app.loginManager.userLoader(async (id) => {
    loaderCalls.push(id)
    await new Promise((resolve) => setImmediate(resolve))
    return users.get(id)
  })
  // A layout's "Logged in as …", on a page anyone may see.
  const layout = (request: { currentUser: { isAuthenticated: boolean } }): string =>
    request.currentUser.isAuthenticated ? `Logged in as ${(request.currentUser as User).name}` : 'Log in'
  app.get('/home', { config: { login: 'optional' } }, (request) => layout(request))
  app.register(async (pages) => {
    pages.addHook('onRequest', pages.loginManager.guard({ mode: 'optional' }))
    pages.get('/pages/news', (request) => layout(request))
  })
  app.route({ method: ['GET', 'OPTIONS'], url: '/both', config: { login: 'optional' }, handler: (request) => `${request.method} ${layout(request)}` })
  const cookies = await loginCookies(app, '1')

  for (const url of ['/home', '/pages/news']) {
    const known = await app.inject({ url, cookies })
    t.equal(known.statusCode, 200, `${url}: a login cookie and an async loader is no 500`)
    t.equal(known.body, 'Logged in as ann')
    t.equal(known.headers.vary, 'Cookie', `${url}: the answer depends on the cookie`)
    const anonymous = await app.inject(url)
    t.equal(anonymous.statusCode, 200, `${url}: anonymous visitors pass`)
    t.equal(anonymous.body, 'Log in')
    t.equal(anonymous.headers.vary, 'Cookie', `${url}: anonymous answers must not be cached for everyone`)
  }
  t.equal((await app.inject({ method: 'OPTIONS', url: '/both', cookies })).body, 'OPTIONS Logged in as ann', 'no method is exempt: nobody is refused')

  // Like the other guards, it re-signs a cookie of a secret being rotated out.
  const other = await build({ secret: OTHER_SECRET })
  const old = await loginCookies(other.app, '2')
  const renewed = await app.inject({ url: '/home', cookies: old })
  t.equal(renewed.body, 'Logged in as bob')
  t.same((renewed.cookies as Array<{ name: string }>).map((cookie) => cookie.name), ['account', 'fresh'], 'the cookies are re-signed with the current secret')

  // A loader that fails is still a server error, never an anonymous page.
  app.loginManager.userLoader(async () => { throw new Error('database down') })
  t.equal((await app.inject({ url: '/home', cookies })).statusCode, 500)
})

test("'optional' refuses nobody, so it takes no route or message", async (t) => {
  const { app } = await build()
  t.throws(() => app.loginManager.guard({ mode: 'optional', route: '/login' }), { code: 'FST_LOGIN_INVALID_OPTION', message: /'optional' refuses nobody, so it takes no `route` or `message`/ })
  t.throws(() => app.get('/x', { config: { login: { mode: 'optional', message: 'no' } } }, () => 'x'), { code: 'FST_LOGIN_INVALID_OPTION' })
  t.throws(() => app.loginManager.guard({ mode: 'maybe' as never }), { message: /must be 'required', 'prohibited', 'fresh' or 'optional'/ })
})

test('the anonymous user comes from anonymousUser: class or factory, new per request', async (t) => {
  class Guest extends AnonymousUserMixin {
    name = 'Guest'
  }
  for (const anonymousUser of [Guest, () => new Guest(), function makeGuest () { return new Guest() }]) {
    const { app } = await build({ anonymousUser: anonymousUser as never })
    const seen: unknown[] = []
    app.get('/guest-name', (request) => {
      seen.push(request.currentUser)
      return (request.currentUser as unknown as Guest).name
    })
    t.equal((await app.inject('/guest-name')).body, 'Guest')
    await app.inject('/guest-name')
    t.not(seen[0], seen[1], 'not shared between requests')
    t.ok(seen[0] instanceof Guest)
  }
})

test('isFresh is false for anonymous visitors and for remembered logins', async (t) => {
  const { app } = await build()
  app.get('/fresh', (request) => ({ fresh: request.isFresh }))
  const cookies = await loginCookies(app)
  t.same((await app.inject('/fresh')).json(), { fresh: false })
  t.same((await app.inject({ url: '/fresh', cookies })).json(), { fresh: true })
  t.same((await app.inject({ url: '/fresh', cookies: { account: cookies.account } })).json(), { fresh: false })
})
