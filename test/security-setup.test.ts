import { test } from 'tap'
import Fastify, { type FastifyInstance, type FastifyServerOptions, type LightMyRequestResponse } from 'fastify'
import fastifyCookie from '@fastify/cookie'
import csrf from '@fastify/csrf-protection'
import formbody from '@fastify/formbody'
import fastifyLogin from '../lib/index'
import type { FastifyLoginOptions } from '../types/index'
import { SECRET, setCookieHeaders, User, userStore } from './helpers'

// The settings SECURITY.md recommends, checked to work as it says: CSRF
// protection on the login and logout forms, __Host- cookie names, trustProxy.

const PASSWORD = 'correct horse battery staple'

function loginCookieNames (response: LightMyRequestResponse, names = ['account', 'fresh']): string[] {
  return (response.cookies as Array<{ name: string, value: string }>).filter((cookie) => names.includes(cookie.name) && cookie.value !== '').map((cookie) => cookie.name)
}

// A login form app. `cookieFirst`: the app registers @fastify/cookie (with its
// parsing hook) before fastify-login, as SECURITY.md recommends.
async function formApp (cookieFirst: boolean): Promise<FastifyInstance> {
  const users = userStore()
  const app = Fastify()
  if (cookieFirst) await app.register(fastifyCookie)
  await app.register(formbody)
  await app.register(fastifyLogin, { secret: SECRET, userLoader: (id) => users.get(id) })
  await app.register(csrf)
  app.get('/login', async (_request, reply) => ({ token: reply.generateCsrf() }))
  // preHandler: the token comes in the form body, parsed after onRequest.
  app.post<{ Body: { user: string, password: string } }>('/login', { preHandler: app.csrfProtection }, (request, reply) => {
    if (request.body.password !== PASSWORD) return reply.code(400).send('wrong password')
    app.loginManager.loginUser(request, reply, users.get(request.body.user) as User)
    return reply.redirect(app.loginManager.nextUrl(request, '/'), 303)
  })
  app.post('/logout', { onRequest: app.loginManager.loginRequired, preHandler: app.csrfProtection }, (request, reply) => {
    app.loginManager.logoutUser(request, reply)
    return reply.redirect('/', 303)
  })
  return app
}

function form (fields: Record<string, string>): { headers: Record<string, string>, payload: string } {
  return { headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: new URLSearchParams(fields).toString() }
}

test('CSRF protection on the login and logout forms (@fastify/cookie, then fastify-login, then @fastify/csrf-protection)', async (t) => {
  const app = await formApp(true)
  // The visitor opens the login form: a token, and its secret in the _csrf cookie.
  const page = await app.inject('/login')
  t.equal(page.statusCode, 200, 'the login form')
  const { token } = page.json()
  const csrfCookie = { _csrf: (page.cookies as Array<{ name: string, value: string }>).find((cookie) => cookie.name === '_csrf')?.value as string }

  // Login CSRF: another site makes the visitor's browser post the attacker's
  // credentials, to log the visitor into the attacker's account.
  const attacker = await app.inject('/login')
  const forged = [
    ['no token', { cookies: csrfCookie, ...form({ user: '2', password: PASSWORD }) }],
    ['no token and no _csrf cookie', form({ user: '2', password: PASSWORD })],
    ['the attacker\'s own token', { cookies: csrfCookie, ...form({ user: '2', password: PASSWORD, _csrf: attacker.json().token }) }]
  ] as const
  for (const [label, request] of forged) {
    const response = await app.inject({ method: 'POST', url: '/login', ...request })
    t.equal(response.statusCode, 403, `${label}: refused`)
    t.same(loginCookieNames(response), [], `${label}: nobody is logged in`)
  }

  const login = await app.inject({ method: 'POST', url: '/login?next=%2Fsettings', cookies: csrfCookie, ...form({ user: '1', password: PASSWORD, _csrf: token }) })
  t.equal(login.statusCode, 303, 'with the form\'s token the visitor logs in')
  t.equal(login.headers.location, '/settings', 'back to next')
  t.same(loginCookieNames(login), ['account', 'fresh'], 'with both login cookies')
  const cookies = { ...csrfCookie, ...Object.fromEntries((login.cookies as Array<{ name: string, value: string }>).map((cookie) => [cookie.name, cookie.value])) }

  const forcedLogout = await app.inject({ method: 'POST', url: '/logout', cookies })
  t.equal(forcedLogout.statusCode, 403, 'logout CSRF: refused without the token')
  t.same(setCookieHeaders(forcedLogout), [], 'and the login cookies are untouched')
  const logout = await app.inject({ method: 'POST', url: '/logout', cookies, headers: { 'x-csrf-token': token } })
  t.equal(logout.statusCode, 303, 'with the token the visitor logs out')
})

test('registered without @fastify/cookie first, CSRF protection cannot read its cookie: it fails closed, never logs anyone in', async (t) => {
  // fastify-login does not add @fastify/cookie to the app, and
  // @fastify/csrf-protection reads request.cookies: the README says to
  // register @fastify/cookie yourself. Whatever happens here, no login.
  const app = await formApp(false)
  const page = await app.inject('/login')
  const token = page.statusCode === 200 ? page.json().token as string : 'none'
  const cookies = Object.fromEntries((page.cookies as Array<{ name: string, value: string }>).map((cookie) => [cookie.name, cookie.value]))
  for (const [label, fields] of [['no token', { user: '1', password: PASSWORD }], ['a token', { user: '1', password: PASSWORD, _csrf: token }]] as const) {
    const response = await app.inject({ method: 'POST', url: '/login', cookies, ...form(fields) })
    if (label === 'no token') t.ok(response.statusCode >= 400, `${label}: refused (${response.statusCode})`)
    if (response.statusCode >= 400) t.same(loginCookieNames(response), [], `${label}: ${response.statusCode}, nobody is logged in`)
    else t.equal(response.statusCode, 303, `${label}: a working form logs in`)
  }
})

test('__Host- cookie names: Secure, Path=/, no Domain, and a planted unprefixed cookie is ignored', async (t) => {
  const users = userStore()
  const options: FastifyLoginOptions = { secret: SECRET, userLoader: (id) => users.get(id), cookieName: { account: '__Host-account', isFresh: '__Host-fresh' }, cookieSecure: true }
  const app = Fastify()
  await app.register(fastifyLogin, options)
  app.get('/login', (request, reply) => {
    app.loginManager.loginUser(request, reply, users.get('1') as User)
    return 'in'
  })
  app.get('/who', (request) => ({ id: request.currentUser.getId() }))
  const login = await app.inject('/login')
  for (const header of setCookieHeaders(login)) {
    t.match(header, /^__Host-(account|fresh)=[^;]+; /, 'prefixed')
    t.match(header, /; Path=\/(;|$)/, 'Path=/')
    t.match(header, /; Secure(;|$)/, 'Secure')
    t.notMatch(header, /Domain=/i, 'no Domain')
  }
  const cookies = Object.fromEntries((login.cookies as Array<{ name: string, value: string }>).map((cookie) => [cookie.name, cookie.value]))
  t.same((await app.inject({ url: '/who', cookies })).json(), { id: '1' }, 'the prefixed cookies work')
  // A sibling subdomain can plant `account` for the parent domain, never `__Host-account`.
  const bob = await app.loginManager.cookiesFor(users.get('2') as User)
  t.same((await app.inject({ url: '/who', cookies: { account: bob['__Host-account'] } })).json(), { id: null }, 'an unprefixed cookie is not read')
})

test('trustProxy: behind a TLS proxy, cookies are Secure only when the proxy is trusted; other clients cannot claim https or an address', async (t) => {
  const users = userStore()
  async function proxied (serverOptions: FastifyServerOptions, sessionProtection: FastifyLoginOptions['sessionProtection'] = 'basic'): Promise<FastifyInstance> {
    const app = Fastify(serverOptions)
    await app.register(fastifyLogin, { secret: SECRET, userLoader: (id) => users.get(id), sessionProtection })
    app.get('/login', (request, reply) => {
      app.loginManager.loginUser(request, reply, users.get('1') as User)
      return { protocol: request.protocol, ip: request.ip }
    })
    app.get('/me', { onRequest: app.loginManager.loginRequired }, (request) => ({ id: request.currentUser.getId() }))
    return app
  }
  const viaProxy = { remoteAddress: '10.0.0.2', headers: { 'x-forwarded-proto': 'https', 'x-forwarded-for': '203.0.113.7' } }
  const untrusted = await proxied({})
  const missing = await untrusted.inject({ url: '/login', ...viaProxy })
  t.same(missing.json(), { protocol: 'http', ip: '10.0.0.2' }, 'without trustProxy the proxy\'s headers are ignored')
  t.notMatch(setCookieHeaders(missing).join('\n'), /Secure/, '...so cookieSecure \'auto\' sends no Secure: set trustProxy, or cookieSecure: true')

  const trusted = await proxied({ trustProxy: '10.0.0.2' }, 'strong')
  const behind = await trusted.inject({ url: '/login', ...viaProxy })
  t.same(behind.json(), { protocol: 'https', ip: '203.0.113.7' }, 'with the proxy trusted, the client\'s protocol and address')
  t.ok(setCookieHeaders(behind).every((header) => header.includes('; Secure')), 'and Secure cookies')
  const direct = await trusted.inject({ url: '/login', remoteAddress: '198.51.100.9', headers: { 'x-forwarded-proto': 'https', 'x-forwarded-for': '203.0.113.7' } })
  t.same(direct.json(), { protocol: 'http', ip: '198.51.100.9' }, 'a client that is not the proxy cannot claim https or an address')

  // 'strong' protection binds the login to the client's address: a thief
  // connecting directly cannot borrow the victim's by sending X-Forwarded-For.
  const cookies = Object.fromEntries((behind.cookies as Array<{ name: string, value: string }>).map((cookie) => [cookie.name, cookie.value]))
  t.equal((await trusted.inject({ url: '/me', cookies, ...viaProxy })).statusCode, 200, 'the victim, through the proxy')
  t.equal((await trusted.inject({ url: '/me', cookies, remoteAddress: '198.51.100.9', headers: { 'x-forwarded-for': '203.0.113.7' } })).statusCode, 401, 'the thief, claiming the victim\'s address')
})
