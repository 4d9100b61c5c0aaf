import { test } from 'tap'
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify'
import fastifyAuth from '@fastify/auth'
import fastifyLogin from '../lib/index'
import { cookieJar, OTHER_SECRET, SECRET, User, userStore } from './helpers'

// @fastify/auth: `app.loginManager.authenticate` is one check among others.
// A guard answers a refused request itself (a redirect, a 401), so with a
// guard @fastify/auth never tried the API key; `authenticate` only reports.

const KEY = 'Bearer key-of-bob'

async function authApp (loader: 'sync' | 'async', options: Record<string, unknown> = {}): Promise<FastifyInstance> {
  const users = userStore()
  const app = Fastify()
  await app.register(fastifyAuth)
  await app.register(fastifyLogin, {
    secret: SECRET,
    // A guard would redirect here: authenticate never does.
    loginRequiredRoute: '/login',
    userLoader: loader === 'sync'
      ? (id) => users.get(id)
      : async (id) => { await new Promise((resolve) => setImmediate(resolve)); return users.get(id) },
    ...options
  })
  const apiKey = (request: FastifyRequest, _reply: FastifyReply, done: (error?: Error) => void): void => {
    done(request.headers.authorization === KEY ? undefined : Object.assign(new Error('Send your API key.'), { statusCode: 401, code: 'APP_NO_KEY' }))
  }
  const who = (request: FastifyRequest): { user: string | null, key: boolean } => ({
    user: request.currentUser.isAuthenticated ? (request.currentUser as User).name : null,
    key: request.headers.authorization === KEY
  })
  app.get('/login/:id', (request, reply) => {
    app.loginManager.loginUser(request, reply, users.get((request.params as { id: string }).id) as User)
    return 'ok'
  })
  app.get('/either', { preHandler: app.auth([app.loginManager.authenticate, apiKey], { relation: 'or' }) }, who)
  app.get('/either-key-first', { preHandler: app.auth([apiKey, app.loginManager.authenticate], { relation: 'or' }) }, who)
  app.get('/either-keeps-away', { preHandler: app.auth([app.loginManager.authenticate, apiKey], { relation: 'or' }) }, () => 'in')
  app.get('/both', { preHandler: app.auth([app.loginManager.authenticate, apiKey], { relation: 'and' }) }, who)
  app.get('/key-then-login', { preHandler: app.auth([apiKey, app.loginManager.authenticate], { relation: 'and' }) }, who)
  return app
}

for (const loader of ['sync', 'async'] as const) {
  test(`with a ${loader} loader: 'or' lets a login or an API key through, and refuses with a 401, never a redirect`, async (t) => {
    const app = await authApp(loader)
    const cookies = cookieJar(await app.inject('/login/1'))

    const byCookie = await app.inject({ url: '/either', cookies })
    t.equal(byCookie.statusCode, 200)
    t.same(byCookie.json(), { user: 'ann', key: false }, 'the login passes, currentUser resolved')
    t.equal(byCookie.headers.vary, 'Cookie', 'the answer depends on the cookie')
    const byKey = await app.inject({ url: '/either', headers: { authorization: KEY } })
    t.equal(byKey.statusCode, 200, 'no login: the API key is tried, and passes')
    t.same(byKey.json(), { user: null, key: true })

    const neither = await app.inject('/either')
    t.equal(neither.statusCode, 401, 'neither: a 401, not a 307 to loginRequiredRoute')
    t.equal(neither.headers.location, undefined)
    t.match(neither.json(), { code: 'APP_NO_KEY' }, 'with the last check\'s error')
    const loginLast = await app.inject('/either-key-first')
    t.equal(loginLast.statusCode, 401)
    t.match(loginLast.json(), { code: 'FST_LOGIN_UNAUTHORIZED', message: 'fastify-login: app.loginManager.authenticate found nobody logged in: the request has no valid login.' })
    t.same((await app.inject({ url: '/either-key-first', cookies })).json(), { user: 'ann', key: false })
  })

  test(`with a ${loader} loader: 'and' needs both the login and the API key`, async (t) => {
    const app = await authApp(loader)
    const cookies = cookieJar(await app.inject('/login/1'))
    t.same((await app.inject({ url: '/both', cookies, headers: { authorization: KEY } })).json(), { user: 'ann', key: true })
    t.match((await app.inject({ url: '/both', cookies })).json(), { statusCode: 401, code: 'APP_NO_KEY' })
    const keyOnly = await app.inject({ url: '/both', headers: { authorization: KEY } })
    t.equal(keyOnly.statusCode, 401)
    t.match(keyOnly.json(), { code: 'FST_LOGIN_UNAUTHORIZED' })
    t.match((await app.inject({ url: '/key-then-login', headers: { authorization: KEY } })).json(), { code: 'FST_LOGIN_UNAUTHORIZED' })
  })
}

test('authenticate refreshes cookies like a guard, and a failing loader is its own error, not a 401', async (t) => {
  const app = await authApp('async', { secret: [SECRET, OTHER_SECRET] })
  const other = await authApp('sync', { secret: OTHER_SECRET })
  const old = cookieJar(await other.inject('/login/2'))
  const renewed = await app.inject({ url: '/either-key-first', cookies: old })
  t.same(renewed.json(), { user: 'bob', key: false })
  t.same((renewed.cookies as Array<{ name: string }>).map((cookie) => cookie.name), ['account', 'fresh'], 'cookies of a rotated-out secret are re-signed')

  app.loginManager.userLoader(async () => { throw Object.assign(new Error('database down'), { statusCode: 503 }) })
  const failed = await app.inject({ url: '/either-key-first', cookies: old })
  t.equal(failed.statusCode, 503, 'the loader\'s failure, not a logout')
  app.loginManager.userLoader(() => { throw new Error('sync failure') })
  const sync = await app.inject({ url: '/either-key-first', cookies: old })
  t.equal(sync.statusCode, 500, 'an error without a status is a 500, not @fastify/auth\'s 401')
  t.match(sync.json(), { message: 'sync failure' })
  app.loginManager.userLoader(async () => { throw new Error('async failure') })
  t.equal((await app.inject({ url: '/either-key-first', cookies: old })).statusCode, 500)
  const keyAfter = await app.inject({ url: '/either-keeps-away', cookies: old, headers: { authorization: KEY } })
  t.equal(keyAfter.statusCode, 200, 'under \'or\', a check that passes after it still lets the request through')
  t.equal(keyAfter.body, 'in')
})

test('authenticate as a plain hook: done(error) is a 401 through the error handler', async (t) => {
  const users = userStore()
  const app = Fastify()
  await app.register(fastifyLogin, { secret: SECRET, userLoader: (id) => users.get(id) })
  app.get('/hooked', { onRequest: app.loginManager.authenticate }, () => 'in')
  t.equal((await app.inject('/hooked')).statusCode, 401)
  const cookies = await app.loginManager.cookiesFor(users.get('1') as User)
  t.equal((await app.inject({ url: '/hooked', cookies })).body, 'in')
})
