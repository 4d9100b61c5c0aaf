import { test } from 'tap'
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify'
import { build, cookieJar, loginCookies, OTHER_SECRET, SECRET, setCookieHeaders } from './helpers'

// Response headers that matter to caches and to the browser's cookie jar.
//
// - Set-Cookie only on responses that change the login state.
// - Cache-Control: no-store on every response that sets or expires a login
//   cookie: a shared cache that stored one would hand the login to the next
//   visitor. The plugin sets it when it writes the cookies, replacing any value
//   set before (a scope-wide caching policy is not a decision about a login
//   response); a value the app sets afterwards, in its handler, is its
//   explicit choice for that response and is kept.
// - Vary: Cookie on every response of a guarded route, passed or refused: the
//   answer depends on the Cookie header. Appended to the app's Vary, never
//   replacing it, never twice.

type Case = [label: string, request: InjectOptions]

// The app of helpers, plus the routes that change the login state in the other ways.
async function headersApp (options = {}) {
  const built = await build(options)
  const { app } = built
  app.get('/fresh', { onRequest: app.loginManager.freshLoginRequired }, () => 'fresh')
  app.post('/confirm', { onRequest: app.loginManager.loginRequired }, (request, reply) => {
    app.loginManager.confirmLogin(request, reply)
    return 'confirmed'
  })
  return built
}

const cacheControl = (response: LightMyRequestResponse): unknown => response.headers['cache-control']

function varyTokens (response: LightMyRequestResponse): string[] {
  const vary = response.headers.vary
  return vary === undefined ? [] : String(vary).split(',').map((token) => token.trim().toLowerCase())
}

test('no Set-Cookie, and no Cache-Control from the plugin, on responses that do not change the login state', async (t) => {
  const { app } = await headersApp()
  const cookies = await loginCookies(app)
  const stale = { account: cookies.account }
  const other = await headersApp({ secret: OTHER_SECRET })
  const foreign = await loginCookies(other.app)
  const expiredOrBroken = { account: `${cookies.account.slice(0, -2)}xx`, fresh: cookies.fresh }
  const cases: Case[] = []
  for (const [who, jar] of [['anonymous', {}], ['logged in', cookies], ['logged in, not fresh', stale], ['a cookie signed elsewhere', foreign], ['a broken cookie', expiredOrBroken]] as Array<[string, Record<string, string>]>) {
    for (const url of ['/plain', '/who', '/me', '/guest', '/fresh']) cases.push([`${who}: GET ${url}`, { url, cookies: jar }])
    cases.push([`${who}: GET /me as an API client`, { url: '/me', cookies: jar, headers: { accept: 'application/json' } }])
    cases.push([`${who}: GET /me from another client`, { url: '/me', cookies: jar, headers: { 'user-agent': 'another browser' } }])
  }
  cases.push(['anonymous: logout without cookies', { url: '/logout' }])
  cases.push(['a preflight on a guarded route', { method: 'OPTIONS', url: '/me', cookies }])
  // A user found by the request loader never gets cookies.
  const api = await headersApp()
  api.app.loginManager.requestLoader((request) => request.headers.authorization === 'Bearer ann' ? api.users.get('1') : null)
  const apiCases: Case[] = ['/me', '/who', '/fresh'].map((url) => [`request loader: GET ${url}`, { url, headers: { authorization: 'Bearer ann' } }])
  for (const [label, request] of [...cases, ...apiCases]) {
    const response = await (apiCases.some(([apiLabel]) => apiLabel === label) ? api.app : app).inject(request)
    t.ok(response.statusCode < 500, `${label}: ${response.statusCode}`)
    t.same(setCookieHeaders(response), [], `${label}: no Set-Cookie`)
    t.equal(cacheControl(response), undefined, `${label}: no Cache-Control`)
  }

  // A loader that fails is a 500, not a logout: the cookies stay as they are.
  // (logoutUser still logs out when the loader fails: that is a change.)
  app.loginManager.userLoader(() => { throw new Error('down') })
  for (const url of ['/me', '/who', '/guest', '/fresh']) {
    const response = await app.inject({ url, cookies })
    t.equal(response.statusCode, 500, `a failing loader on ${url}`)
    t.same(setCookieHeaders(response), [], `a failing loader on ${url}: no Set-Cookie`)
  }
})

// Every way a response sets or expires login cookies.
async function cookieSettingResponses (): Promise<Array<[string, LightMyRequestResponse]>> {
  const { app } = await headersApp()
  const cookies = await loginCookies(app)
  const rotating = await headersApp({ secret: [SECRET, OTHER_SECRET] })
  const old = await loginCookies((await headersApp({ secret: OTHER_SECRET })).app)
  const sliding = await headersApp({ cookieRefreshEachRequest: true })
  const strong = await headersApp({ sessionProtection: 'strong' })
  const strongCookies = await loginCookies(strong.app)
  return [
    ['loginUser', await app.inject('/login/1')],
    ['logoutUser', await app.inject({ url: '/logout', cookies })],
    ['confirmLogin', await app.inject({ method: 'POST', url: '/confirm', cookies: { account: cookies.account } })],
    ['a guard re-signing cookies of a rotated secret', await rotating.app.inject({ url: '/me', cookies: old })],
    ['a guard re-signing them on a refused request', await rotating.app.inject({ url: '/fresh', cookies: { account: old.account } })],
    ['a guard sliding a remembered login', await sliding.app.inject({ url: '/me', cookies: await loginCookies(sliding.app, '1', '?remember=1') })],
    ['a guard expiring a login refused by strong protection', await strong.app.inject({ url: '/me', cookies: strongCookies, headers: { 'user-agent': 'another browser' } })]
  ]
}

test('responses that change the login state do set cookies', async (t) => {
  for (const [label, response] of await cookieSettingResponses()) {
    t.ok(setCookieHeaders(response).length > 0, `${label}: ${response.statusCode}, Set-Cookie for ${Object.keys(cookieJar(response)).join(', ')}`)
  }
})

test('Cache-Control: no-store on every response that sets or expires a login cookie', async (t) => {
  for (const [label, response] of await cookieSettingResponses()) {
    t.equal(cacheControl(response), 'no-store', label)
  }

  // The decision about an app's own value (see the top of this file).
  const { app, users } = await headersApp()
  app.register(async (scope) => {
    scope.addHook('onRequest', async (_request, reply) => { reply.header('cache-control', 'public, max-age=600') })
    scope.get('/cached/login', (request, reply) => {
      app.loginManager.loginUser(request, reply, users.get('1') as never)
      return 'in'
    })
    scope.get('/cached/plain', () => 'plain')
  })
  app.get('/login-then-choose', (request, reply) => {
    app.loginManager.loginUser(request, reply, users.get('1') as never)
    reply.header('cache-control', 'private, no-cache')
    return 'in'
  })
  t.equal(cacheControl(await app.inject('/cached/login')), 'no-store', 'a value set before the login is replaced')
  t.equal(cacheControl(await app.inject('/cached/plain')), 'public, max-age=600', 'and left alone where nothing is logged in')
  t.equal(cacheControl(await app.inject('/login-then-choose')), 'private, no-cache', 'a value the handler sets after loginUser is kept')
})

test('Vary: Cookie on every response of a guarded route, passed or refused', async (t) => {
  const redirecting = await headersApp({ loginRequiredRoute: '/login', loginProhibitedRoute: '/', refreshRoute: '/reauth' })
  const plain = await headersApp()
  const handled = await headersApp()
  handled.app.loginManager.unauthorizedHandler((_request, reply) => reply.code(418).send('no'))
  for (const { app } of [redirecting, plain, handled]) {
    app.get('/declared', { config: { login: 'required' } }, () => 'declared')
    app.register(async (scope) => {
      scope.addHook('onRequest', scope.loginManager.loginRequired)
      scope.get('/scope/page', () => 'page')
    })
  }
  const cookies = await loginCookies(plain.app)
  const cases: Array<[string, FastifyInstance, InjectOptions]> = []
  for (const [name, { app }] of [['redirects', redirecting], ['messages', plain], ['handler', handled]] as const) {
    for (const url of ['/me', '/guest', '/fresh', '/declared', '/scope/page']) {
      cases.push([`${name}: anonymous ${url}`, app, { url }])
      cases.push([`${name}: logged in ${url}`, app, { url, cookies }])
      cases.push([`${name}: not fresh ${url}`, app, { url, cookies: { account: cookies.account } }])
      cases.push([`${name}: API client ${url}`, app, { url, headers: { accept: 'application/json' } }])
    }
  }
  const statuses = new Set<number>()
  for (const [label, app, request] of cases) {
    const response = await app.inject(request)
    statuses.add(response.statusCode)
    t.same(varyTokens(response).filter((token) => token === 'cookie'), ['cookie'], `${label} (${response.statusCode}): Vary names Cookie once`)
  }
  t.same([...statuses].sort(), [200, 307, 401, 403, 418], 'passed, redirected, refused and handled responses were all checked')

  // The app's own Vary is kept, and Cookie is not repeated.
  const { app } = await headersApp()
  app.register(async (scope) => {
    scope.addHook('onRequest', async (request, reply) => { reply.header('vary', String(request.headers['x-vary'])) })
    scope.get('/varied', { onRequest: scope.loginManager.loginRequired }, () => 'varied')
  })
  for (const [before, after] of [['Accept-Encoding', ['accept-encoding', 'cookie']], ['Accept-Language, Cookie', ['accept-language', 'cookie']], ['cookie', ['cookie']], ['*', ['*']]] as const) {
    t.same(varyTokens(await app.inject({ url: '/varied', headers: { 'x-vary': before } })), after, `Vary: ${before}`)
  }
  t.same(varyTokens(await app.inject('/plain')), [], 'unguarded routes are left alone')
})
