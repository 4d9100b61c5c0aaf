import { test } from 'tap'
import Fastify from 'fastify'
import fastifyCookie from '@fastify/cookie'
import fastifyLogin from '../lib/index'
import { kLoginState } from '../lib/state'
import { build, cookieJar, loginCookies, SECRET, setCookieHeaders, User } from './helpers'

const loader = (): null => null

test('registration fails without any secret, naming the fix', async (t) => {
  const app = Fastify()
  app.register(fastifyLogin, { userLoader: loader })
  await t.rejects(async () => { await app.ready() }, { code: 'FST_LOGIN_NO_SECRET', message: /Pass `secret`/ })
})

test('registration fails with a short string secret', async (t) => {
  const app = Fastify()
  app.register(fastifyLogin, { secret: 'short', userLoader: loader })
  await t.rejects(async () => { await app.ready() }, { code: 'FST_LOGIN_WEAK_SECRET', message: /5 characters long, shorter than 32/ })
})

test('registration fails with a short Buffer, an empty array or a non-secret', async (t) => {
  for (const [secret, message] of [
    [Buffer.alloc(16), /Buffer of 16 bytes/],
    [[], /empty array/],
    [[SECRET, 42], /string, a Buffer, or an array/]
  ] as const) {
    const app = Fastify()
    app.register(fastifyLogin, { secret: secret as never, userLoader: loader })
    await t.rejects(async () => { await app.ready() }, { code: 'FST_LOGIN_WEAK_SECRET', message })
  }
})

test('a Buffer secret and an array of secrets are accepted', async (t) => {
  for (const secret of [Buffer.alloc(32, 7), [SECRET, Buffer.alloc(40, 1)]]) {
    const app = Fastify()
    await app.register(fastifyLogin, { secret, userLoader: loader })
    await t.resolves(async () => { await app.ready() })
    await app.close()
  }
})

test('ready() fails when no user loader was set', async (t) => {
  const app = Fastify()
  await app.register(fastifyLogin, { secret: SECRET })
  await t.rejects(async () => { await app.ready() }, { code: 'FST_LOGIN_NO_USER_LOADER', message: /userLoader\(fn\)/ })
})

test('a user loader set after register, before ready, is used', async (t) => {
  const app = Fastify()
  await app.register(fastifyLogin, { secret: SECRET })
  const returned = app.loginManager.userLoader((id) => new User(id, 'late'))
  t.equal(returned, app.loginManager, 'setters chain')
  app.get('/login', (request, reply) => {
    app.loginManager.loginUser(request, reply, new User(5, 'late'))
    return 'ok'
  })
  app.get('/me', { onRequest: app.loginManager.loginRequired }, (request) => (request.currentUser as User).name)
  const cookies = cookieJar(await app.inject('/login'))
  const response = await app.inject({ url: '/me', cookies })
  t.equal(response.body, 'late')
})

test('callbacks must be functions', async (t) => {
  const { app } = await build()
  for (const setter of ['userLoader', 'unauthorizedHandler', 'authorizedHandler'] as const) {
    t.throws(() => app.loginManager[setter]('nope' as never), { code: 'FST_LOGIN_INVALID_OPTION', message: new RegExp(`\`${setter}\` must be a function`) })
  }
})

test('invalid options fail at register with the option named', async (t) => {
  const cases: Array<[Record<string, unknown>, RegExp]> = [
    [{ cookieName: { account: 'bad name' } }, /`cookieName.account`/],
    [{ cookieName: { isFresh: '' } }, /`cookieName.isFresh`/],
    [{ cookieName: { account: 'same', isFresh: 'same' } }, /three different names/],
    [{ cookieRememberMe: { account: 'yes' } }, /`cookieRememberMe.account` must be true or false/],
    [{ cookieDuration: 0 }, /`cookieDuration` must be a positive, finite number/],
    [{ cookieDuration: Infinity }, /`cookieDuration`/],
    [{ cookieDuration: '60' }, /`cookieDuration`/],
    [{ cookieSecure: 'yes' }, /`cookieSecure` must be 'auto', true or false/],
    [{ cookieHttpOnly: 1 }, /`cookieHttpOnly`/],
    [{ cookieSameSite: 'lenient' }, /`cookieSameSite` must be 'lax', 'strict' or 'none'/],
    [{ cookieSameSite: 'none', cookieSecure: false }, /'none' needs `cookieSecure`/],
    [{ cookiePath: 'admin' }, /`cookiePath` must be a path starting with '\/'/],
    [{ cookiePath: '/a;b' }, /`cookiePath`/],
    [{ cookieDomain: 'exa mple.com' }, /`cookieDomain`/],
    [{ loginRequiredRoute: '' }, /`loginRequiredRoute` must be a URL/],
    [{ loginProhibitedRoute: 5 }, /`loginProhibitedRoute`/],
    [{ loginRequiredMessage: 5 }, /`loginRequiredMessage` must be a string or a function/],
    [{ anonymousUser: {} }, /`anonymousUser` must be a class or a function/],
    [{ refreshRoute: 7 }, /`refreshRoute` must be a URL/],
    [{ needsRefreshMessage: null }, /`needsRefreshMessage` must be a string or a function/],
    [{ nextField: '' }, /`nextField` must be a query field name, or false/],
    [{ nextField: true }, /`nextField`/],
    [{ exemptMethods: 'OPTIONS' }, /`exemptMethods` must be an array of HTTP methods/],
    [{ exemptMethods: ['GET', 3] }, /`exemptMethods`/],
    [{ sessionProtection: 'paranoid' }, /`sessionProtection` must be 'basic', 'strong' or false/],
    [{ cookieRefreshEachRequest: 'yes' }, /`cookieRefreshEachRequest` must be true or false/]
  ]
  for (const [options, message] of cases) {
    const app = Fastify()
    app.register(fastifyLogin, { secret: SECRET, userLoader: loader, ...options })
    await t.rejects(async () => { await app.ready() }, { code: 'FST_LOGIN_INVALID_OPTION', message }, JSON.stringify(options))
  }
})

test('config shows the resolved options with secure defaults, read-only and without the secret', async (t) => {
  const { app } = await build()
  const config = app.loginManager.config
  t.same(config, {
    cookieName: { account: 'account', isFresh: 'fresh', bound: 'bound' },
    cookieRememberMe: { account: false, isFresh: false },
    cookieDuration: 60 * 24 * 60 * 60,
    cookieSecure: 'auto',
    cookieHttpOnly: true,
    cookieSameSite: 'lax',
    cookiePath: '/',
    cookieDomain: undefined,
    loginRequiredRoute: null,
    loginRequiredMessage: 'Please log in to access this page.',
    loginProhibitedRoute: null,
    loginProhibitedMessage: 'Please log out to access this page.',
    refreshRoute: null,
    needsRefreshMessage: 'Please reauthenticate to access this page.',
    nextField: 'next',
    exemptMethods: ['OPTIONS'],
    sessionProtection: 'basic',
    cookieRefreshEachRequest: false,
    sessionDuration: 24 * 60 * 60,
    freshDuration: 60 * 60,
    idleTimeout: null,
    storeCacheWindow: 0,
    trustedOrigins: [],
    realm: 'account fresh / ',
    maxLogins: 100,
    rotation: false,
    deviceBinding: false,
    anonymousUser: config.anonymousUser
  })
  t.notOk('secret' in config)
  t.ok(Object.isFrozen(config) && Object.isFrozen(config.cookieName))
  t.throws(() => { (config as { cookieDuration: number }).cookieDuration = 1 }, TypeError)
})

test('without its own secret it borrows the signer of a registered @fastify/cookie', async (t) => {
  const app = Fastify()
  await app.register(fastifyCookie, { secret: SECRET })
  await app.register(fastifyLogin, { userLoader: (id) => new User(id, 'borrowed') })
  app.get('/login', (request, reply) => {
    app.loginManager.loginUser(request, reply, new User(9, 'borrowed'))
    return 'ok'
  })
  app.get('/me', { onRequest: app.loginManager.loginRequired }, (request) => request.currentUser.getId())
  const cookies = cookieJar(await app.inject('/login'))
  t.ok(app.unsignCookie(cookies.account).valid, 'signed by the app\'s @fastify/cookie secret')
  t.equal((await app.inject({ url: '/me', cookies })).body, '9')
})

test('an @fastify/cookie without a secret is not enough', async (t) => {
  const app = Fastify()
  await app.register(fastifyCookie)
  app.register(fastifyLogin, { userLoader: loader })
  await t.rejects(async () => { await app.ready() }, { code: 'FST_LOGIN_NO_SECRET' })
})

test('an app\'s own @fastify/cookie keeps its parsing hook and the plugin reads its result', async (t) => {
  const app = Fastify()
  await app.register(fastifyCookie, { parseOptions: { signed: true } })
  await app.register(fastifyLogin, { secret: SECRET, userLoader: (id) => new User(id, 'x') })
  app.get('/login', (request, reply) => {
    app.loginManager.loginUser(request, reply, new User(4, 'x'))
    return 'ok'
  })
  app.get('/me', { onRequest: app.loginManager.loginRequired }, (request) => ({ id: request.currentUser.getId(), parsed: request.cookies.account !== undefined }))
  const cookies = cookieJar(await app.inject('/login'))
  t.match(cookies.account, /^a3\.NA(\.[^.]+){6}\.[^.]+\.s\.\.[^.]+\.[^.]+$/, 'signed once, even with parseOptions.signed')
  t.same((await app.inject({ url: '/me', cookies })).json(), { id: '4', parsed: true })
})

test('registered alone, it keeps @fastify/cookie and its hooks out of the app: unguarded routes do no login work', async (t) => {
  const { app, loaderCalls } = await build()
  app.get('/raw', (request) => ({
    cookies: request.cookies ?? 'none',
    state: (request as unknown as Record<symbol, unknown>)[kLoginState]
  }))
  await app.ready()
  t.notOk(app.hasPlugin('@fastify/cookie'), 'no @fastify/cookie, so no onSend hook on every route')
  t.notOk(app.hasReplyDecorator('setCookie'))
  const routes = app.printRoutes({ includeHooks: true, commonPrefix: false })
  t.match(routes, '/raw (GET)\n', 'GET /raw listed with no hook at all')
  t.notMatch(routes, /\/raw \(GET\)\n\s*│?\s*•/, 'no hook line under GET /raw')
  const cookies = await loginCookies(app)
  const response = await app.inject({ url: '/raw', cookies })
  t.same(response.json(), { cookies: 'none', state: null }, 'no cookie parsed, no login state created')
  t.same(loaderCalls, [], 'the loader never ran')
  t.same(setCookieHeaders(response), [])
})

test('an app may register @fastify/cookie after it: both write their cookies into one response', async (t) => {
  const app = Fastify()
  await app.register(fastifyLogin, { secret: SECRET, userLoader: (id) => new User(id, 'x') })
  await app.register(fastifyCookie)
  app.get('/login', (request, reply) => {
    reply.setCookie('theme', 'dark')
    app.loginManager.loginUser(request, reply, new User(4, 'x'))
    return 'ok'
  })
  app.get('/me', { onRequest: app.loginManager.loginRequired }, (request) => ({ id: request.currentUser.getId(), theme: request.cookies.theme }))
  const login = await app.inject('/login')
  t.same(Object.keys(cookieJar(login)).sort(), ['account', 'fresh', 'theme'])
  t.same((await app.inject({ url: '/me', cookies: cookieJar(login) })).json(), { id: '4', theme: 'dark' })
})
