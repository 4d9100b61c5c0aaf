import { test } from 'tap'
import Fastify from 'fastify'
import fastifyLogin, { memoryStore } from '../lib/index'
import { bearerLoader, build, cookieJar, loginCookies, SECRET, User, userStore } from './helpers'

// Errors that name what is actually wrong, and the typed accessor
// app.loginManager.user(request).

test('confirmLogin for a user of the request loader says the login came from it', async (t) => {
  const users = userStore()
  const app = Fastify()
  await app.register(fastifyLogin, { secret: SECRET, userLoader: (id) => users.get(id), requestLoader: bearerLoader(users, new Map([['token-1', '1']])) })
  app.post('/reauthenticate', { onRequest: app.loginManager.loginRequired }, (request, reply) => {
    app.loginManager.confirmLogin(request, reply)
    return 'confirmed'
  })
  const response = await app.inject({ method: 'POST', url: '/reauthenticate', headers: { authorization: 'Bearer token-1' } })
  t.equal(response.statusCode, 500)
  t.match(response.json(), { code: 'FST_LOGIN_NOT_A_COOKIE_LOGIN', message: /confirmLogin\(\) needs a login made with the login cookie, but this request's user came from the `requestLoader`/ })
  t.notMatch(response.json().message, /Guard the route/, 'it does not ask for the guard the route already has')
})

test('loginUser and cookiesFor without a userLoader say that a cookie needs one', async (t) => {
  const users = userStore()
  const app = Fastify()
  await app.register(fastifyLogin, { secret: SECRET, requestLoader: bearerLoader(users, new Map()) })
  app.get('/login', (request, reply) => app.loginManager.loginUser(request, reply, users.get('1') as User))
  const login = await app.inject('/login')
  t.equal(login.statusCode, 500)
  t.match(login.json(), { code: 'FST_LOGIN_COOKIE_NEEDS_USER_LOADER', message: /loginUser\(\) issues a login cookie, and only a `userLoader` can turn that cookie back into a user/ })
  await t.rejects(app.loginManager.cookiesFor(users.get('1') as User), { code: 'FST_LOGIN_COOKIE_NEEDS_USER_LOADER', message: /cookiesFor\(\) issues a login cookie/ })
})

test('app.loginManager.user(request) is the logged-in user, and a 401 for nobody', async (t) => {
  const { app } = await build()
  app.get('/typed', (request) => ({ name: (app.loginManager.user(request) as User).name }))
  app.get('/typed-guarded', { config: { login: 'required' } }, (request) => ({ id: app.loginManager.user(request).getId() }))
  const cookies = await loginCookies(app, '2')
  t.same((await app.inject({ url: '/typed', cookies })).json(), { name: 'bob' })
  t.same((await app.inject({ url: '/typed-guarded', cookies })).json(), { id: '2' })
  const anonymous = await app.inject('/typed')
  t.equal(anonymous.statusCode, 401)
  t.match(anonymous.json(), { code: 'FST_LOGIN_UNAUTHORIZED', message: /app\.loginManager\.user\(request\) found nobody logged in: this route lets anonymous visitors reach it\. Guard it/ })
  t.equal((await app.inject('/typed-guarded')).statusCode, 401, 'the guard refuses first')
})

test('app.loginManager.user(request) with an async loader: after the guard, or the not-loaded error', async (t) => {
  const users = userStore()
  const app = Fastify()
  await app.register(fastifyLogin, { secret: SECRET, userLoader: async (id) => users.get(id) })
  app.get('/login', (request, reply) => { app.loginManager.loginUser(request, reply, users.get('1') as User); return 'ok' })
  app.get('/guarded', { onRequest: app.loginManager.loginRequired }, (request) => app.loginManager.user(request).getId())
  app.get('/unguarded', (request) => app.loginManager.user(request).getId())
  const cookies = cookieJar(await app.inject('/login'))
  t.equal((await app.inject({ url: '/guarded', cookies })).body, '1')
  t.match((await app.inject({ url: '/unguarded', cookies })).json(), { code: 'FST_LOGIN_USER_NOT_LOADED' })
})

test('revokeOtherLogins for a user of the request loader says the login came from it', async (t) => {
  const users = userStore()
  const app = Fastify()
  await app.register(fastifyLogin, { secret: SECRET, store: memoryStore(), userLoader: (id) => users.get(id), requestLoader: bearerLoader(users, new Map([['token-1', '1']])) })
  app.post('/revoke-others', { onRequest: app.loginManager.loginRequired }, async (request) => await app.loginManager.revokeOtherLogins(request))
  const response = await app.inject({ method: 'POST', url: '/revoke-others', headers: { authorization: 'Bearer token-1' } })
  t.match(response.json(), { code: 'FST_LOGIN_NOT_A_COOKIE_LOGIN', message: /revokeOtherLogins\(\) needs a login made with the login cookie/ })
})
