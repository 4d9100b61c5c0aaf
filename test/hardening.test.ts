import { test } from 'tap'
import Fastify from 'fastify'
import fastifyCookie from '@fastify/cookie'
import fastifyView from '@fastify/view'
import ejs from 'ejs'
import { join } from 'node:path'
import fastifyLogin, { UserMixin } from '../lib/index'
import { prefersJson } from '../lib/guards/accept'
import { build, cookieJar, loginCookies, SECRET, setCookieHeaders, User } from './helpers'

// Regressions for defects found in review: each test names the attack or
// the failure it pins down.

test('with an async loader, an error after the loader (a throwing message) is a 500, not an unhandled rejection', async (t) => {
  const { app } = await build({
    loginProhibitedMessage: () => { throw new Error('no translation') }
  })
  app.loginManager.userLoader(async (id) => new User(id, 'async'))
  const cookies = await loginCookies(app)
  const response = await app.inject({ url: '/guest', cookies })
  t.equal(response.statusCode, 500)
  t.match(response.json(), { message: 'no translation' })
  app.loginManager.authorizedHandler(async () => undefined)
  t.equal((await app.inject({ url: '/guest', cookies })).statusCode, 500, 'the same after an async handler')
})

test('with an async loader, pages that do not show the user still render; touching it gives the clear error', async (t) => {
  const app = Fastify()
  await app.register(fastifyLogin, { secret: SECRET, userLoader: async (id) => new User(id, 'ann') })
  await app.register(fastifyView, { engine: { ejs }, root: join(__dirname, 'fixtures') })
  app.get('/title', (_request, reply) => reply.viewAsync('title.ejs', { title: 'public page' }))
  app.get('/page', (_request, reply) => reply.viewAsync('page.ejs', { title: 'uses currentUser' }))
  app.get('/login', (request, reply) => {
    app.loginManager.loginUser(request, reply, new User(1, 'ann'))
    return 'ok'
  })
  const cookies = cookieJar(await app.inject('/login'))
  t.equal((await app.inject({ url: '/title', cookies })).body, 'public page')
  const touched = await app.inject({ url: '/page', cookies })
  t.equal(touched.statusCode, 500)
  t.match(touched.body, /FST_LOGIN_USER_NOT_LOADED/)
})

test('locals assigned by the app keep currentUser', async (t) => {
  const app = Fastify()
  await app.register(fastifyLogin, { secret: SECRET, userLoader: () => null })
  await app.register(fastifyView, { engine: { ejs }, root: join(__dirname, 'fixtures') })
  app.addHook('preHandler', async (_request, reply) => {
    (reply as unknown as { locals: object }).locals = { title: 'from a hook' }
  })
  app.get('/page', (_request, reply) => reply.viewAsync('page.ejs', {}))
  t.equal((await app.inject('/page')).body, 'Log in | from a hook')
})

test('a subclass may define id as a getter', async (t) => {
  class Account extends UserMixin {
    get id (): number { return 42 }
  }
  t.equal(new Account().getId(), '42')
})

test('axios-style Accept headers get JSON; browsers and curl do not', async (t) => {
  t.equal(prefersJson('application/json, text/plain, */*'), true)
  t.equal(prefersJson('text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8'), false)
  t.equal(prefersJson('*/*'), false)
  t.equal(prefersJson('text/html, application/json'), false, 'named alike: the browser behaviour')
  const { app } = await build({ loginRequiredRoute: '/login' })
  const response = await app.inject({ url: '/me', headers: { accept: 'application/json, text/plain, */*' } })
  t.equal(response.statusCode, 401)
  t.same(response.json(), { statusCode: 401, error: 'Unauthorized', message: 'Please log in to access this page.' })
})

test('an app\'s @fastify/cookie parseOptions cannot make a browser-session cookie last', async (t) => {
  const app = Fastify()
  await app.register(fastifyCookie, { parseOptions: { maxAge: 3600, expires: new Date(Date.now() + 3600e3) } })
  await app.register(fastifyLogin, { secret: SECRET, userLoader: (id) => new User(id, 'x') })
  app.get('/login', (request, reply) => {
    app.loginManager.loginUser(request, reply, new User(1, 'x'), { remember: false })
    return 'ok'
  })
  for (const header of setCookieHeaders(await app.inject('/login'))) {
    t.notMatch(header, /Max-Age|Expires/, header.split('=')[0])
  }
})

test('SameSite=None cookies are always Secure, even on plain http with cookieSecure auto', async (t) => {
  const { app } = await build({ cookieSameSite: 'none' })
  for (const header of setCookieHeaders(await app.inject('/login/1'))) t.match(header, /SameSite=None.*Secure|Secure.*SameSite=None/)
})

test('misconfigurations that used to fail per request fail at register', async (t) => {
  for (const [options, message] of [
    [{ loginRequiredRoute: '/login\r\nSet-Cookie: x=1' }, /`loginRequiredRoute` must be a URL \(string of printable ASCII/],
    [{ refreshRoute: '/réauth' }, /`refreshRoute`/],
    [{ cookieDuration: 401 * 24 * 60 * 60 }, /`cookieDuration` must be at most 400 days/]
  ] as const) {
    const app = Fastify()
    app.register(fastifyLogin, { secret: SECRET, userLoader: () => null, ...options })
    await t.rejects(async () => { await app.ready() }, { code: 'FST_LOGIN_INVALID_OPTION', message })
  }
  const { app } = await build()
  await t.rejects(app.loginManager.cookiesFor(new User(1, 'a'), { duration: 1e13 }), { message: /`duration` must be at most 400 days/ })
})

test('loginUser in an app without a user loader is an error, not a cookie nobody can read', async (t) => {
  const app = Fastify()
  await app.register(fastifyLogin, { secret: SECRET, requestLoader: () => null })
  app.get('/login', (request, reply) => {
    app.loginManager.loginUser(request, reply, new User(1, 'x'))
    return 'ok'
  })
  const response = await app.inject('/login')
  t.equal(response.statusCode, 500)
  t.match(response.json(), { code: 'FST_LOGIN_COOKIE_NEEDS_USER_LOADER', message: /loginUser\(\) issues a login cookie/ })
  t.same(setCookieHeaders(response), [])
})

test('a sync loader that throws is called once per request, its error remembered', async (t) => {
  const { app } = await build()
  let calls = 0
  app.get('/twice', (request) => {
    const messages: string[] = []
    for (let i = 0; i < 2; i++) {
      try {
        request.currentUser.getId()
      } catch (error) {
        messages.push((error as Error).message)
      }
    }
    return { messages, calls }
  })
  const cookies = await loginCookies(app)
  app.loginManager.userLoader(() => {
    calls++
    throw new Error('db down')
  })
  t.same((await app.inject({ url: '/twice', cookies })).json(), { messages: ['db down', 'db down'], calls: 1 })
})

test('a load superseded by a logout does not fail the request', async (t) => {
  const { app } = await build()
  let failLoad: (error: Error) => void = () => {}
  app.get('/race', async (request, reply) => {
    const loading = request.loadUser()
    app.loginManager.logoutUser(request, reply)
    failLoad(new Error('db down'))
    const user = await loading
    return { anonymous: user.isAnonymous }
  })
  const cookies = await loginCookies(app)
  app.loginManager.userLoader(() => new Promise((_resolve, reject) => { failLoad = reject }))
  t.same((await app.inject({ url: '/race', cookies })).json(), { anonymous: true })
})

test('responses that set or clear login cookies are not stored by caches', async (t) => {
  const { app } = await build()
  t.equal((await app.inject('/login/1')).headers['cache-control'], 'no-store')
  const cookies = await loginCookies(app)
  t.equal((await app.inject({ url: '/logout', cookies })).headers['cache-control'], 'no-store')
  t.equal((await app.inject({ url: '/me', cookies })).headers['cache-control'], undefined, 'a response that changes nothing is left alone')
})

test('an app may still put its own currentUser in reply.locals, or reset them with null', async (t) => {
  const app = Fastify()
  await app.register(fastifyLogin, { secret: SECRET, userLoader: () => null })
  app.get('/own', (_request, reply) => {
    const holder = reply as unknown as { locals: unknown }
    holder.locals = { currentUser: 'the app\'s own' }
    const own = (holder.locals as { currentUser: string }).currentUser
    holder.locals = null
    return { own, reset: Object.keys(holder.locals as object) }
  })
  t.same((await app.inject('/own')).json(), { own: 'the app\'s own', reset: ['currentUser'] }, 'null starts the locals afresh')
})

test('an id with a leading byte order mark is not the id without it', async (t) => {
  const { app, users } = await build()
  users.set('\uFEFFadmin', new User('\uFEFFadmin', 'mallory'))
  users.set('admin', new User('admin', 'the admin'))
  const cookies = await loginCookies(app, encodeURIComponent('\uFEFFadmin'))
  t.equal((await app.inject({ url: '/me', cookies })).json().name, 'mallory')
})
