import { test } from 'tap'
import Fastify from 'fastify'
import fastifyLogin from '../lib/index'
import { build, loginCookies, SECRET, User } from './helpers'

test('loginRequired: anonymous gets 401 with the message, the route does not run', async (t) => {
  const { app } = await build()
  let ran = false
  app.get('/secret', { onRequest: app.loginManager.loginRequired }, () => {
    ran = true
    return 'secret'
  })
  const response = await app.inject('/secret')
  t.equal(response.statusCode, 401)
  t.equal(response.body, 'Please log in to access this page.')
  t.match(response.headers['content-type'], /^text\/plain/)
  t.notOk(ran)
})

test('loginRequired lets a logged-in user through as onRequest and as preHandler', async (t) => {
  const { app } = await build()
  app.get('/pre', { preHandler: app.loginManager.loginRequired }, (request) => request.currentUser.getId())
  const cookies = await loginCookies(app, '2')
  t.same((await app.inject({ url: '/me', cookies })).json(), { name: 'bob', fresh: true })
  t.equal((await app.inject({ url: '/pre', cookies })).body, '2')
  t.equal((await app.inject('/pre')).statusCode, 401)
})

test('loginRequired redirects with 307 to loginRequiredRoute when set; a refused form post gets 303', async (t) => {
  const { app } = await build({ loginRequiredRoute: '/login' })
  app.route({ method: ['GET', 'HEAD', 'POST', 'PUT', 'DELETE'], url: '/form', onRequest: app.loginManager.loginRequired, handler: () => 'posted' })
  for (const method of ['GET', 'HEAD'] as const) {
    const response = await app.inject({ method, url: '/form' })
    t.equal(response.statusCode, 307, method)
    t.equal(response.headers.location, '/login?next=%2Fform', 'carries where it came from')
  }
  for (const method of ['POST', 'PUT', 'DELETE'] as const) {
    const response = await app.inject({ method, url: '/form', payload: { password: 'new secret' } })
    t.equal(response.statusCode, 303, `${method}: the browser follows with a GET, never re-posting the fields`)
    t.equal(response.headers.location, '/login?next=%2Fform')
  }
})

test('loginInfo tells how the current user logged in', async (t) => {
  const { app } = await build({ requestLoader: (request) => request.headers.authorization === 'Bearer k' ? new User(9, 'robot') : null })
  app.get('/info', (request) => app.loginManager.loginInfo(request))
  const remembered = await loginCookies(app, '1', '?remember=1')
  const session = await loginCookies(app, '2', '?remember=0')
  const info = (await app.inject({ url: '/info', cookies: remembered })).json()
  t.match(info, { source: 'cookie', remembered: true, fresh: true })
  t.equal(info.expiresAt - info.issuedAt, 60 * 24 * 60 * 60)
  t.match((await app.inject({ url: '/info', cookies: { account: session.account } })).json(), { source: 'cookie', remembered: false, fresh: false })
  t.same((await app.inject({ url: '/info', headers: { authorization: 'Bearer k' } })).json(), { source: 'request', loginId: null, remembered: false, fresh: false, issuedAt: null, expiresAt: null, method: null, authenticatedAt: null, bound: false })
  t.equal((await app.inject('/info')).body, 'null', 'anonymous: null')
})

test('loginRequiredMessage may be changed, or a function of the request', async (t) => {
  const { app } = await build({ loginRequiredMessage: 'Sign in first.' })
  t.equal((await app.inject('/me')).body, 'Sign in first.')
  const translated = await build({ loginRequiredMessage: (request) => request.headers['accept-language'] === 'fr' ? 'Connectez-vous.' : 'Log in.' })
  t.equal((await translated.app.inject({ url: '/me', headers: { 'accept-language': 'fr' } })).body, 'Connectez-vous.')
})

test('the unauthorized handler wins over the route and the message', async (t) => {
  const { app } = await build({ loginRequiredRoute: '/login' })
  app.loginManager.unauthorizedHandler((request, reply) => {
    reply.code(418).send({ teapot: request.url })
  })
  const response = await app.inject('/me')
  t.equal(response.statusCode, 418)
  t.same(response.json(), { teapot: '/me' })
})

test('the unauthorized handler may be async and may return the payload', async (t) => {
  const { app } = await build()
  app.loginManager.unauthorizedHandler(async (_request, reply) => {
    await new Promise((resolve) => setImmediate(resolve))
    reply.code(401)
    return { error: 'who are you?' }
  })
  const response = await app.inject('/me')
  t.equal(response.statusCode, 401)
  t.same(response.json(), { error: 'who are you?' })
})

test('a handler that returns reply sends later; one that does nothing gets the default answer', async (t) => {
  const { app } = await build()
  app.loginManager.unauthorizedHandler((_request, reply) => {
    setImmediate(() => reply.code(401).send('later'))
    return reply
  })
  t.equal((await app.inject('/me')).body, 'later')
  const idle = await build({ loginRequiredRoute: '/login' })
  let ran = false
  idle.app.get('/guarded', { onRequest: idle.app.loginManager.loginRequired }, () => {
    ran = true
    return 'leak'
  })
  idle.app.loginManager.unauthorizedHandler(() => undefined)
  const response = await idle.app.inject('/guarded')
  t.equal(response.statusCode, 307, 'falls back to the redirect, never to the route')
  t.notOk(ran)
  idle.app.loginManager.unauthorizedHandler(async () => undefined)
  t.equal((await idle.app.inject('/guarded')).statusCode, 307)
})

test('a handler that throws or rejects is a server error', async (t) => {
  const { app } = await build()
  app.loginManager.unauthorizedHandler(() => {
    throw new Error('handler broke')
  })
  const response = await app.inject('/me')
  t.equal(response.statusCode, 500)
  t.match(response.json(), { message: 'handler broke' })
  app.loginManager.unauthorizedHandler(async () => {
    throw new Error('async handler broke')
  })
  t.match((await app.inject('/me')).json(), { statusCode: 500, message: 'async handler broke' })
})

test('loginProhibited: a logged-in user gets 403 with the message; anonymous passes', async (t) => {
  const { app } = await build()
  t.equal((await app.inject('/guest')).body, 'welcome, guest')
  const cookies = await loginCookies(app)
  const response = await app.inject({ url: '/guest', cookies })
  t.equal(response.statusCode, 403)
  t.equal(response.body, 'Please log out to access this page.')
})

test('loginProhibited redirects to loginProhibitedRoute, or calls the authorized handler', async (t) => {
  const { app } = await build({ loginProhibitedRoute: '/home', loginProhibitedMessage: 'unused' })
  const cookies = await loginCookies(app)
  const response = await app.inject({ url: '/guest', cookies })
  t.equal(response.statusCode, 307)
  t.equal(response.headers.location, '/home')
  app.loginManager.authorizedHandler(async (request) => `already logged in as ${request.currentUser.getId()}`)
  t.equal((await app.inject({ url: '/guest', cookies })).body, 'already logged in as 1')
})

test('addHook on an encapsulated scope guards every route of that scope only', async (t) => {
  const { app } = await build()
  await app.register(async (admin) => {
    admin.addHook('preHandler', admin.loginManager.loginRequired)
    admin.get('/admin/a', () => 'a')
    admin.post('/admin/b', () => 'b')
  })
  app.get('/public', () => 'public')
  t.equal((await app.inject('/admin/a')).statusCode, 401)
  t.equal((await app.inject({ method: 'POST', url: '/admin/b' })).statusCode, 401)
  t.equal((await app.inject('/public')).statusCode, 200)
  const cookies = await loginCookies(app)
  t.equal((await app.inject({ url: '/admin/a', cookies })).body, 'a')
})

test('a user whose account is gone (loader returns null or undefined) is anonymous', async (t) => {
  for (const missing of [null, undefined]) {
    const { app, users } = await build()
    const cookies = await loginCookies(app, '2')
    users.delete('2')
    app.loginManager.userLoader(() => missing)
    t.equal((await app.inject({ url: '/me', cookies })).statusCode, 401)
    t.same((await app.inject({ url: '/who', cookies })).json(), { authenticated: false, id: null, fresh: false })
  }
})

test('a loader that throws is a 500 on guarded and unguarded routes, never a logout', async (t) => {
  const { app } = await build()
  const cookies = await loginCookies(app)
  app.loginManager.userLoader(() => {
    throw new Error('database is down')
  })
  for (const url of ['/me', '/who', '/guest']) {
    const response = await app.inject({ url, cookies })
    t.equal(response.statusCode, 500, url)
    t.match(response.json(), { message: 'database is down' }, url)
    t.notOk(response.headers['set-cookie'], `${url}: cookies untouched`)
  }
})

test('a rejecting async loader is a 500 too, and no unhandled rejection', async (t) => {
  const { app } = await build()
  app.get('/load', async (request) => {
    await request.loadUser()
    return 'unreachable'
  })
  app.get('/peek-twice', async (request) => {
    const first = await request.loadUser().catch((error: Error) => error.message)
    let second: string
    try {
      request.currentUser.getId()
      second = 'no error'
    } catch (error) {
      second = (error as Error).message
    }
    return { first, second }
  })
  const cookies = await loginCookies(app)
  app.loginManager.userLoader(async () => {
    throw new Error('timeout')
  })
  for (const url of ['/me', '/load']) {
    const response = await app.inject({ url, cookies })
    t.equal(response.statusCode, 500, url)
    t.match(response.json(), { message: 'timeout' }, url)
  }
  t.same((await app.inject({ url: '/peek-twice', cookies })).json(), { first: 'timeout', second: 'timeout' }, 'the failure is remembered for the request')
})

test('registered inside a scope, the plugin decorates that scope only', async (t) => {
  const app = Fastify()
  await app.register(async (child) => {
    await child.register(fastifyLogin, { secret: SECRET, userLoader: (id) => new User(id, 'child') })
    child.get('/inside', { onRequest: child.loginManager.loginRequired }, () => 'inside')
  })
  t.equal((await app.inject('/inside')).statusCode, 401)
  t.notOk(app.hasDecorator('loginManager'), 'encapsulated: the parent has no login manager')
})
