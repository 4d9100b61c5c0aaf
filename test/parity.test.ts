import { test } from 'tap'
import Fastify from 'fastify'
import fastifyLogin, { UserMixin } from '../lib/index'
import { build, cookieJar, loginCookies, SECRET, setCookieHeaders, User } from './helpers'

test('freshLoginRequired: fresh passes, remembered-only goes to the needs-refresh path, anonymous to the unauthorized path', async (t) => {
  const { app } = await build()
  app.get('/settings', { onRequest: app.loginManager.freshLoginRequired }, (request) => `settings of ${request.currentUser.getId()}`)
  const cookies = await loginCookies(app)
  t.equal((await app.inject({ url: '/settings', cookies })).body, 'settings of 1')
  const stale = await app.inject({ url: '/settings', cookies: { account: cookies.account } })
  t.equal(stale.statusCode, 401)
  t.equal(stale.body, 'Please reauthenticate to access this page.')
  const anonymous = await app.inject('/settings')
  t.equal(anonymous.statusCode, 401)
  t.equal(anonymous.body, 'Please log in to access this page.')
})

test('the needs-refresh path: handler, else 307 to refreshRoute with next, else the message', async (t) => {
  const { app } = await build({ refreshRoute: '/reauth', needsRefreshMessage: (request) => `again, ${request.url}` })
  app.get('/settings', { preHandler: app.loginManager.freshLoginRequired }, () => 'settings')
  const { account } = await loginCookies(app)
  const redirected = await app.inject({ url: '/settings?tab=password', cookies: { account } })
  t.equal(redirected.statusCode, 307)
  t.equal(redirected.headers.location, '/reauth?next=%2Fsettings%3Ftab%3Dpassword')
  app.loginManager.needsRefreshHandler(async (_request, reply) => reply.code(401).send('handled'))
  t.equal((await app.inject({ url: '/settings', cookies: { account } })).body, 'handled')

  const plain = await build({ needsRefreshMessage: (request) => `again, ${request.url}` })
  plain.app.get('/settings', { onRequest: plain.app.loginManager.freshLoginRequired }, () => 'settings')
  const stale = await loginCookies(plain.app)
  t.equal((await plain.app.inject({ url: '/settings', cookies: { account: stale.account } })).body, 'again, /settings')
})

test('confirmLogin makes a remembered login fresh again without changing who is logged in', async (t) => {
  const { app } = await build()
  app.post('/reauth', { onRequest: app.loginManager.loginRequired }, (request, reply) => {
    app.loginManager.confirmLogin(request, reply)
    return { id: request.currentUser.getId(), fresh: request.isFresh }
  })
  const { account } = await loginCookies(app, '2')
  const confirmed = await app.inject({ method: 'POST', url: '/reauth', cookies: { account } })
  t.same(confirmed.json(), { id: '2', fresh: true })
  const cookies = cookieJar(confirmed)
  t.same((await app.inject({ url: '/me', cookies })).json(), { name: 'bob', fresh: true })
})

test('loginUser options: duration, fresh, force, and inactive users', async (t) => {
  const { app, users } = await build()
  app.get<{ Querystring: { id: string, duration?: string, fresh?: string, force?: string } }>('/login-with', (request, reply) => {
    const { id, duration, fresh, force } = request.query
    const ok = app.loginManager.loginUser(request, reply, users.get(id) as User, {
      duration: duration === undefined ? undefined : Number(duration),
      remember: true,
      fresh: fresh === undefined ? undefined : fresh === '1',
      force: force === '1'
    })
    return { ok, authenticated: request.currentUser.isAuthenticated }
  })

  const short = await app.inject({ url: '/login-with', query: { id: '1', duration: '90' } })
  t.equal((short.cookies as Array<{ maxAge?: number }>)[0].maxAge, 90, 'duration overrides cookieDuration')

  const notFresh = await app.inject({ url: '/login-with', query: { id: '1', fresh: '0' } })
  t.same(Object.keys(cookieJar(notFresh)), ['account'], 'fresh: false sets no fresh cookie')
  t.same((await app.inject({ url: '/me', cookies: cookieJar(notFresh) })).json(), { name: 'ann', fresh: false })

  const inactive = await app.inject({ url: '/login-with', query: { id: '3' } })
  t.same(inactive.json(), { ok: false, authenticated: false }, 'an inactive user is refused')
  t.same(setCookieHeaders(inactive), [], 'and nothing is set')

  const forced = await app.inject({ url: '/login-with', query: { id: '3', force: '1' } })
  t.same(forced.json(), { ok: true, authenticated: true })
  t.same((await app.inject({ url: '/who', cookies: cookieJar(forced) })).json(), { authenticated: true, id: '3', fresh: true })

  for (const duration of ['0', '-5', 'NaN', 'Infinity']) {
    const response = await app.inject({ url: '/login-with', query: { id: '1', duration } })
    t.equal(response.statusCode, 500, duration)
    t.match(response.json(), { code: 'FST_LOGIN_INVALID_OPTION', message: /`duration` must be a positive, finite number of seconds/ })
  }
})

test('the server enforces a per-login duration', async (t) => {
  const { app } = await build()
  const cookies = await app.loginManager.cookiesFor(new User(1, 'ann'), { duration: 1 })
  t.equal((await app.inject({ url: '/me', cookies })).statusCode, 200)
  await new Promise((resolve) => setTimeout(resolve, 2100))
  t.equal((await app.inject({ url: '/me', cookies })).statusCode, 401, 'refused once its own duration is over')
})

test('request loader: used without a valid cookie, sets no cookies, forgets the next request', async (t) => {
  const tokens = new Map([['token-ann', '1']])
  const { app, users, loaderCalls } = await build({
    requestLoader: (request) => {
      const match = /^Bearer (.+)$/.exec(request.headers.authorization ?? '')
      return match === null ? null : users.get(tokens.get(match[1]) ?? '')
    }
  })
  const bearer = { authorization: 'Bearer token-ann' }
  const response = await app.inject({ url: '/me', headers: bearer })
  t.same(response.json(), { name: 'ann', fresh: false }, 'authenticated, never fresh')
  t.same(setCookieHeaders(response), [], 'no cookie set')
  t.same(loaderCalls, [], 'the user loader is not involved')
  t.equal((await app.inject('/me')).statusCode, 401, 'the next request without the header is anonymous')
  t.equal((await app.inject({ url: '/me', headers: { authorization: 'Bearer wrong' } })).statusCode, 401)

  const cookies = await loginCookies(app, '2')
  t.same((await app.inject({ url: '/me', cookies, headers: bearer })).json(), { name: 'bob', fresh: true }, 'a valid cookie wins over the header')
  t.same((await app.inject({ url: '/me', cookies: { account: 'forged' }, headers: bearer })).json(), { name: 'ann', fresh: false }, 'an invalid cookie is no cookie')
})

test('a loader-only app (no userLoader) is valid, async request loaders work, and failures are 500s', async (t) => {
  const app = Fastify()
  await app.register(fastifyLogin, {
    secret: SECRET,
    requestLoader: async (request) => {
      if (request.headers['x-api-key'] === 'boom') throw new Error('key store down')
      return request.headers['x-api-key'] === 'k1' ? new User('api', 'robot') : undefined
    }
  })
  app.get('/api', { onRequest: app.loginManager.loginRequired }, (request) => ({ id: request.currentUser.getId() }))
  app.get('/login', (request, reply) => {
    app.loginManager.loginUser(request, reply, new User(1, 'ann'))
    return 'ok'
  })
  await t.resolves(async () => { await app.ready() })
  t.same((await app.inject({ url: '/api', headers: { 'x-api-key': 'k1' } })).json(), { id: 'api' })
  t.equal((await app.inject('/api')).statusCode, 401)
  t.equal((await app.inject({ url: '/api', headers: { 'x-api-key': 'boom' } })).statusCode, 500)
  const cookies = cookieJar(await app.inject('/login'))
  t.equal((await app.inject({ url: '/api', cookies })).statusCode, 401, 'without a user loader a cookie cannot be loaded')
})

test('exempt methods get an empty answer from the guards, never the guarded handler', async (t) => {
  const { app } = await build()
  app.options('/me', () => 'preflight ok')
  app.route({ method: ['GET', 'HEAD'], url: '/report', onRequest: app.loginManager.loginRequired, handler: () => 'report' })
  t.equal((await app.inject({ method: 'OPTIONS', url: '/me' })).body, 'preflight ok', 'an unguarded OPTIONS route is the app\'s')
  const custom = await build({ exemptMethods: ['options', 'head'] })
  custom.app.route({ method: ['GET', 'HEAD'], url: '/report', onRequest: custom.app.loginManager.loginRequired, handler: () => 'report' })
  const head = await custom.app.inject({ method: 'HEAD', url: '/report' })
  t.equal(head.statusCode, 204, 'lower-case names are normalised; the exempt method is answered by the guard')
  t.equal((await custom.app.inject('/report')).statusCode, 401)
  t.equal((await app.inject({ method: 'HEAD', url: '/report' })).statusCode, 401, 'HEAD is guarded by default')
})

test('declarative route config applies the matching guard', async (t) => {
  const { app } = await build({ loginRequiredRoute: '/login' })
  const order: string[] = []
  app.get('/r', { config: { login: 'required' } }, () => 'required ok')
  app.get('/p', { config: { login: 'prohibited' } }, () => 'prohibited ok')
  app.get('/f', { config: { login: 'fresh' } }, () => 'fresh ok')
  app.get('/custom', { config: { login: { mode: 'required', route: '/admin/login', message: 'admins only' } } }, () => 'custom ok')
  app.get('/message-only', { config: { login: { mode: 'required', route: null, message: 'members only' } } }, () => 'ok')
  app.get('/hooked', {
    config: { login: 'required' },
    onRequest: (_request, _reply, done) => { order.push('route hook'); done() }
  }, () => 'hooked')
  app.get('/hooked-array', {
    config: { login: 'required' },
    onRequest: [(_request, _reply, done) => { order.push('array hook'); done() }]
  }, () => 'hooked')
  app.get('/open', () => 'open')
  const cookies = await loginCookies(app)

  t.equal((await app.inject('/r')).headers.location, '/login?next=%2Fr')
  t.equal((await app.inject({ url: '/r', cookies })).body, 'required ok')
  t.equal((await app.inject('/p')).body, 'prohibited ok')
  t.equal((await app.inject({ url: '/p', cookies })).statusCode, 403)
  t.equal((await app.inject({ url: '/f', cookies: { account: cookies.account } })).statusCode, 401)
  t.equal((await app.inject({ url: '/f', cookies })).body, 'fresh ok')
  t.equal((await app.inject('/custom')).headers.location, '/admin/login?next=%2Fcustom', 'per-route login page')
  t.equal((await app.inject('/message-only')).body, 'members only', 'route: null turns the redirect off for this route')
  t.equal((await app.inject('/hooked')).statusCode, 307)
  t.same(order, ['route hook'], 'the guard comes after the route\'s own onRequest hooks (and a rate limit\'s), and still refuses')
  order.length = 0
  t.equal((await app.inject({ url: '/hooked-array', cookies })).body, 'hooked')
  t.equal((await app.inject({ url: '/hooked', cookies })).body, 'hooked')
  t.same(order, ['array hook', 'route hook'])
  t.equal((await app.inject('/open')).body, 'open')
})

test('a bad route config fails when the route is declared, with the option named', async (t) => {
  const { app } = await build()
  for (const login of ['maybe', { mode: 'sometimes' }, null, { mode: 'required', route: 5 }, { mode: 'required', message: 5 }]) {
    t.throws(() => app.get('/bad', { config: { login: login as never } }, () => 'x'), { code: 'FST_LOGIN_INVALID_OPTION', message: /`login/ }, JSON.stringify(login))
  }
})

test('guard() gives a scope its own login page (per-blueprint login views)', async (t) => {
  const { app } = await build({ loginRequiredRoute: '/login' })
  await app.register(async (admin) => {
    admin.addHook('onRequest', admin.loginManager.guard({ mode: 'required', route: '/admin/login' }))
    admin.get('/admin', () => 'admin home')
  }, { prefix: '' })
  t.equal((await app.inject('/admin')).headers.location, '/admin/login?next=%2Fadmin')
  t.equal((await app.inject('/me')).statusCode, 307)
  t.equal((await app.inject('/me')).headers.location, '/login?next=%2Fme')
})

test('cookiesFor returns cookies ready for inject, as a login would set them', async (t) => {
  const { app } = await build()
  const ann = new User(1, 'ann')
  t.same((await app.inject({ url: '/me', cookies: await app.loginManager.cookiesFor(ann) })).json(), { name: 'ann', fresh: true })
  const stale = await app.loginManager.cookiesFor(ann, { fresh: false })
  t.same(Object.keys(stale), ['account'])
  t.same((await app.inject({ url: '/me', cookies: stale })).json(), { name: 'ann', fresh: false })
  const elsewhere = await app.loginManager.cookiesFor(ann, { userAgent: 'Firefox', ip: '10.1.1.1' })
  t.same((await app.inject({ url: '/me', cookies: elsewhere, headers: { 'user-agent': 'Firefox' }, remoteAddress: '10.1.1.1' })).json(), { name: 'ann', fresh: true }, 'bound to the client it names')
  await t.rejects(app.loginManager.cookiesFor(null as never), { code: 'FST_LOGIN_INVALID_USER' })
})

test('revocation without a store: an id with a session version', async (t) => {
  // The alternative-id pattern: getId() carries the user's session version,
  // and the loader refuses an id whose version is not the current one.
  class Account extends UserMixin {
    constructor (public id: number, public name: string, public sessionVersion = 1) { super() }
    override getId (): string {
      return `${this.id}:${this.sessionVersion}`
    }
  }
  const accounts = new Map([[1, new Account(1, 'ann')], [2, new Account(2, 'bob')]])
  const app = Fastify()
  await app.register(fastifyLogin, {
    secret: SECRET,
    userLoader: (id) => {
      const [userId, version] = id.split(':')
      const account = accounts.get(Number(userId))
      return account !== undefined && String(account.sessionVersion) === version ? account : null
    }
  })
  app.get('/me', { onRequest: app.loginManager.loginRequired }, (request) => (request.currentUser as Account).name)
  app.post('/logout-everywhere', { onRequest: app.loginManager.loginRequired }, (request, reply) => {
    const account = request.currentUser as Account
    account.sessionVersion += 1
    app.loginManager.loginUser(request, reply, account)
    return 'done'
  })
  const laptop = await app.loginManager.cookiesFor(accounts.get(1) as Account)
  const phone = await app.loginManager.cookiesFor(accounts.get(1) as Account)
  const bob = await app.loginManager.cookiesFor(accounts.get(2) as Account)
  const bumped = await app.inject({ method: 'POST', url: '/logout-everywhere', cookies: laptop })
  const laptopNow = cookieJar(bumped)
  t.equal((await app.inject({ url: '/me', cookies: laptopNow })).body, 'ann', 'the device that asked stays logged in')
  t.equal((await app.inject({ url: '/me', cookies: phone })).statusCode, 401, 'every earlier cookie loads no one')
  t.equal((await app.inject({ url: '/me', cookies: laptop })).statusCode, 401)
  t.equal((await app.inject({ url: '/me', cookies: bob })).body, 'bob', 'other users are untouched')
})
