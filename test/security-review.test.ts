import { test } from 'tap'
import Fastify from 'fastify'
import fastifyCookie from '@fastify/cookie'
import fastifyCors from '@fastify/cors'
import fastifyAutoload from '@fastify/autoload'
import fastifyRateLimit from '@fastify/rate-limit'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import fastifyLogin from '../lib/index'
import { prefersJson } from '../lib/guards/accept'
import { build, cookieJar, loginCookies, SECRET, setCookieHeaders, signToken, User } from './helpers'

// The defects an outside security review found (issue 11): each test here
// fails on the code before the fix.

const now = (): number => Math.floor(Date.now() / 1000)

// Registers the plugin with these options and waits for `ready`.
function registering (options: Record<string, unknown>): () => Promise<void> {
  return async () => {
    const app = Fastify()
    app.register(fastifyLogin, { secret: SECRET, userLoader: () => null, ...options })
    await app.ready()
  }
}
const DAY = 24 * 60 * 60

// Moves the clock for the plugin (it reads Date.now) while `run` is under way.
async function at<T> (secondsFromNow: number, run: () => Promise<T>): Promise<T> {
  const realNow = Date.now
  Date.now = () => realNow() + secondsFromNow * 1000
  try {
    return await run()
  } finally {
    Date.now = realNow
  }
}

test('1. an exempt method never reaches a guarded handler as if it had passed', async (t) => {
  const { app } = await build({ loginRequiredRoute: '/login' })
  let reports = 0
  const report = (): string => { reports++; return 'the report' }
  app.all('/admin/report', { onRequest: app.loginManager.loginRequired }, report)
  app.route({ method: ['GET', 'OPTIONS'], url: '/list', onRequest: app.loginManager.loginRequired, handler: report })
  app.route({ method: ['GET', 'OPTIONS'], url: '/declared', config: { login: 'required' }, handler: report })
  await app.register(async (admin) => {
    admin.addHook('onRequest', admin.loginManager.loginRequired)
    admin.all('/scope/report', report)
  })
  for (const url of ['/admin/report', '/list', '/declared', '/scope/report']) {
    const response = await app.inject({ method: 'OPTIONS', url })
    t.equal(response.statusCode, 204, `${url}: an empty answer`)
    t.equal(response.body, '', `${url}: no report`)
  }
  t.equal(reports, 0, 'the handler never ran for an anonymous OPTIONS')
  const cookies = await loginCookies(app)
  t.equal((await app.inject({ url: '/admin/report', cookies })).body, 'the report', 'a logged-in GET still gets it')
})

test('1. with @fastify/cors registered, preflights get its answer on guarded routes', async (t) => {
  const app = Fastify()
  await app.register(fastifyCors, { origin: 'https://app.example' })
  await app.register(fastifyLogin, { secret: SECRET, userLoader: () => null })
  app.all('/api/report', { onRequest: app.loginManager.loginRequired }, () => 'the report')
  const preflight = await app.inject({
    method: 'OPTIONS',
    url: '/api/report',
    headers: { origin: 'https://app.example', 'access-control-request-method': 'POST' }
  })
  t.equal(preflight.statusCode, 204)
  t.equal(preflight.headers['access-control-allow-origin'], 'https://app.example', 'the CORS plugin answered it')
  t.equal(preflight.body, '')
})

test('2. __Host- and __Secure- names that browsers would drop fail at register', async (t) => {
  const cases: Array<[Record<string, unknown>, RegExp]> = [
    [{ cookieName: { account: '__Host-account' }, cookieDomain: 'example.com' }, /`cookieName.account` starts with __Host-, which browsers accept only without a Domain/],
    [{ cookieName: { account: '__Host-account' }, cookiePath: '/app' }, /`cookieName.account` starts with __Host-, which browsers accept only with Path=\//],
    [{ cookieName: { account: '__Host-account' }, cookieSecure: false }, /`cookieName.account` starts with __Host-, which browsers accept only with Secure/],
    [{ cookieName: { isFresh: '__Secure-fresh' }, cookieSecure: false }, /`cookieName.isFresh` starts with __Secure-/],
    [{ cookieName: { account: '__HOST-account' }, cookieSecure: false }, /starts with __Host-/],
    [{ cookieName: { account: '__secure-account' }, cookieSecure: false }, /starts with __Secure-/]
  ]
  for (const [options, message] of cases) {
    await t.rejects(registering(options), { code: 'FST_LOGIN_INVALID_OPTION', message }, JSON.stringify(options))
  }
  const { app } = await build({ cookieName: { account: '__Host-account', isFresh: '__Secure-fresh' }, cookieSecure: true, cookieDomain: undefined })
  const lines = setCookieHeaders(await app.inject('/login/1'))
  t.match(lines[0], /^__Host-account=[^;]+;.* Path=\/;.* Secure/, 'a valid __Host- cookie: Secure, Path=/, no Domain')
  t.notMatch(lines[0], /Domain=/)
  t.match(lines[1], /^__Secure-fresh=.*Secure/)
  const secureDomain = await build({ cookieName: { account: '__Secure-account' }, cookieDomain: 'example.com', cookiePath: '/app' })
  t.ok(secureDomain.app.loginManager, '__Secure- allows a Domain and a Path, and "auto" Secure')
})

test('3. a login cookie sent twice is no login at all, and says so', async (t) => {
  const { app, loaderCalls } = await build()
  const heard: string[] = []
  app.loginManager.on('duplicateCookie', (request) => heard.push(request.url))
  const victim = await loginCookies(app, '1')
  const attacker = await loginCookies(app, '2')
  loaderCalls.length = 0
  for (const cookie of [
    `account=${attacker.account}; account=${victim.account}`,
    `account=${victim.account}; account=${attacker.account}`,
    `account=${victim.account}; fresh=${victim.fresh}; fresh=${attacker.fresh}`,
    `account=${victim.account};account =${attacker.account}`
  ]) {
    t.same((await app.inject({ url: '/who', headers: { cookie } })).json(), { authenticated: false, id: null, fresh: false }, cookie.slice(0, 40))
    t.equal((await app.inject({ url: '/me', headers: { cookie } })).statusCode, 401)
  }
  t.same(loaderCalls, [], 'the loader is never asked')
  t.equal(heard.length, 8, 'duplicateCookie fired for each request')
  t.same((await app.inject({ url: '/who', headers: { cookie: `xaccount=1; account=${victim.account}; myfresh=2` } })).json().id, '1', 'names that only end like ours are other cookies')
})

test('4. freshness ends freshDuration after login; confirmLogin restarts it; null keeps it', async (t) => {
  const { app } = await build()
  app.get('/confirm', { onRequest: app.loginManager.loginRequired }, (request, reply) => {
    app.loginManager.confirmLogin(request, reply)
    return 'confirmed'
  })
  app.get('/fresh', { onRequest: app.loginManager.freshLoginRequired }, () => 'fresh')
  const cookies = await loginCookies(app)
  t.equal((await at(3500, () => app.inject({ url: '/fresh', cookies }))).statusCode, 200, 'fresh within the hour')
  t.equal((await at(3600, () => app.inject({ url: '/fresh', cookies }))).statusCode, 401, 'not fresh from an hour on (default 3600)')
  t.same((await at(3600, () => app.inject({ url: '/me', cookies }))).json(), { name: 'ann', fresh: false }, 'still logged in')
  const confirmed = await at(3600, async () => cookieJar(await app.inject({ url: '/confirm', cookies })))
  t.equal((await at(3600 + 3500, () => app.inject({ url: '/fresh', cookies: { ...cookies, ...confirmed } }))).statusCode, 200, 'confirmLogin restarted the clock')

  const ancient = { ...cookies, fresh: signToken(`f1.${cookies.fresh.split('.')[1]}.0`) }
  t.same((await app.inject({ url: '/me', cookies: ancient })).json(), { name: 'ann', fresh: false }, 'a fresh cookie "issued" in 1970 does not count')

  const short = await build({ freshDuration: 60 })
  const shortCookies = await loginCookies(short.app)
  t.same((await at(60, () => short.app.inject({ url: '/me', cookies: shortCookies }))).json().fresh, false)
  const forever = await build({ freshDuration: null })
  const foreverCookies = await loginCookies(forever.app, '1', '?remember=1')
  t.same((await at(30 * DAY, () => forever.app.inject({ url: '/me', cookies: foreverCookies }))).json().fresh, true, 'null: no limit of its own')
  for (const freshDuration of [0, -1, 'soon', Infinity]) {
    await t.rejects(registering({ freshDuration }), { code: 'FST_LOGIN_INVALID_OPTION', message: /`freshDuration`/ })
  }
})

test('5. tokens issued in the future beyond the clock tolerance are refused', async (t) => {
  const { app, loaderCalls } = await build()
  const ann = new User(1, 'ann')
  const fromTheFuture = await at(3600, () => app.loginManager.cookiesFor(ann))
  loaderCalls.length = 0
  t.same((await app.inject({ url: '/who', cookies: fromTheFuture })).json(), { authenticated: false, id: null, fresh: false }, 'an hour-fast issuer: refused')
  t.same(loaderCalls, [])
  const slightlyFast = await at(30, () => app.loginManager.cookiesFor(ann))
  t.same((await app.inject({ url: '/who', cookies: slightlyFast })).json(), { authenticated: true, id: '1', fresh: true }, '30 s fast is within tolerance')
  const withFutureFresh = { account: slightlyFast.account, fresh: (await at(3600, () => app.loginManager.cookiesFor(ann))).fresh }
  t.equal((await app.inject({ url: '/who', cookies: withFutureFresh })).json().fresh, false, 'a fresh cookie from the future does not count')
  const payload = (issued: number, expires: number): string => `a2.MQ.${issued.toString(36)}.${expires.toString(36)}.${issued.toString(36)}.AAAAAAAAAAAAAAAA.r.`
  const sessionOff = await build({ sessionProtection: false })
  const tooLong = signToken(payload(now() - 10, now() - 10 + 401 * DAY))
  t.equal((await sessionOff.app.inject({ url: '/who', cookies: { account: tooLong } })).json().authenticated, false, 'a lifetime longer than any option allows')
  const fine = signToken(payload(now() - 10, now() + DAY))
  t.equal((await sessionOff.app.inject({ url: '/who', cookies: { account: fine } })).json().authenticated, true, 'the same token with a possible lifetime')
})

test('6. the session-protection tag is no signature of the app\'s @fastify/cookie', async (t) => {
  const warnings: string[] = []
  const strong = Fastify({ logger: { level: 'warn', stream: { write: (line: string) => warnings.push(line) } } })
  await strong.register(fastifyCookie, { secret: SECRET })
  await strong.register(fastifyLogin, { userLoader: () => null, sessionProtection: 'strong' })
  t.match(warnings.join(''), /rotating that secret logs every user out/, 'borrowed signer with strong protection: warned at register')
  const app = Fastify()
  await app.register(fastifyCookie, { secret: SECRET })
  await app.register(fastifyLogin, { userLoader: (id) => new User(id, 'x') }) // borrowed signer
  app.get('/login', (request, reply) => { app.loginManager.loginUser(request, reply, new User(1, 'x')); return 'ok' })
  const response = await app.inject({ url: '/login', headers: { 'user-agent': 'evil-chosen' } })
  const account = cookieJar(response).account
  const payload = app.unsignCookie(account).value as string
  const tag = payload.split('.')[11]
  t.ok(tag.length > 0, 'a tag is recorded')
  for (const message of ['client\nevil-chosen\n127.0.0.1', 'evil-chosen\n127.0.0.1']) {
    for (const signature of [tag, tag.replaceAll('-', '+').replaceAll('_', '/')]) {
      t.notOk(app.unsignCookie(`${message}.${signature}`).valid, 'the tag does not make an app-valid signed value')
    }
    t.not(app.signCookie(message).split('.').pop(), tag)
  }
  const again = cookieJar(await app.inject({ url: '/login', headers: { 'user-agent': 'evil-chosen' } })).account
  t.equal((app.unsignCookie(again).value as string).split('.')[11], tag, 'the same client gets the same tag: the key is stable')
})

test('7. prototype names as cookie names never read as cookies the request sent', async (t) => {
  for (const name of ['constructor', 'toString', '__proto__', 'hasOwnProperty']) {
    const { app } = await build({ cookieName: { account: name, isFresh: `${name}-fresh` } })
    const response = await app.inject('/logout')
    t.same(setCookieHeaders(response), [], `${name}: a logout without cookies sends no Set-Cookie`)
    t.same((await app.inject('/who')).json(), { authenticated: false, id: null, fresh: false })
    // Taken from the Set-Cookie line itself: cookie-jar parsers drop such names.
    const cookie = setCookieHeaders(await app.inject('/login/1'))[0].split(';')[0]
    t.same((await app.inject({ url: '/who', headers: { cookie } })).json().id, '1', `${name}: a real cookie of that name works`)
  }
  const withHook = Fastify()
  await withHook.register(fastifyCookie)
  await withHook.register(fastifyLogin, { secret: SECRET, userLoader: () => null, cookieName: { account: 'constructor', isFresh: 'toString' } })
  withHook.get('/logout', (request, reply) => { withHook.loginManager.logoutUser(request, reply); return 'bye' })
  t.same(setCookieHeaders(await withHook.inject('/logout')), [], 'nor with the app\'s own parsed request.cookies')
})

test('8. only canonical base64url ids that are UTF-8 reach the loader', async (t) => {
  const { app, loaderCalls } = await build({ sessionProtection: false, userLoader: () => new User(1, 'x') })
  const token = (id64: string): string => signToken(`a2.${id64}.${(now() - 10).toString(36)}.${(now() + DAY).toString(36)}.${(now() - 10).toString(36)}.AAAAAAAAAAAAAAAA.r.`)
  t.equal((await app.inject({ url: '/who', cookies: { account: token('MQ') } })).json().authenticated, true, 'the canonical spelling of "1"')
  loaderCalls.length = 0
  for (const [label, id64] of [['"1" with stray bits', 'MR'], ['"1" with padding bits', 'MS'], ['0xff, not UTF-8', '_w'], ['a lone surrogate as CESU-8', '7aCA'], ['overlong "/"', 'wK8']]) {
    t.equal((await app.inject({ url: '/who', cookies: { account: token(id64) } })).json().authenticated, false, label)
  }
  t.same(loaderCalls, [], 'none of them reached the loader')
})

test('cookies of the first format (a1) are still read', async (t) => {
  const { app } = await build({ sessionProtection: false })
  const issued = now() - 10
  const a1 = signToken(`a1.MQ.${issued.toString(36)}.${(issued + DAY).toString(36)}.AAAAAAAAAAAAAAAA.r.`)
  t.same((await app.inject({ url: '/who', cookies: { account: a1 } })).json(), { authenticated: true, id: '1', fresh: false })
})

test('9. Accept parsing is bounded: a 100 KB header of commas is cheap and safe', async (t) => {
  const header = ','.repeat(100_000) + 'application/json'
  t.equal(prefersJson(header), false, 'ranges past the bound are not read')
  t.equal(prefersJson('application/json,' + ','.repeat(100_000)), true, 'the first ranges decide')
  const { app } = await build()
  const response = await app.inject({ url: '/me', headers: { accept: header } })
  t.equal(response.statusCode, 401)
})

test('10. a route with config.login declared before the plugin loaded is never served anonymously', async (t) => {
  t.test('an un-awaited register', async (t) => {
    const app = Fastify()
    app.register(fastifyLogin, { secret: SECRET, userLoader: (id) => new User(id, 'ann') })
    app.get('/early', { config: { login: 'required' } }, () => 'secret')
    app.get('/open', () => 'open')
    await app.ready()
    t.equal((await app.inject('/early')).statusCode, 401, 'guarded all the same')
    t.equal((await app.inject('/open')).body, 'open')
    const cookies = await app.loginManager.cookiesFor(new User(1, 'ann'))
    t.equal((await app.inject({ url: '/early', cookies })).body, 'secret')
  })
  t.test('an @fastify/autoload folder whose routes sort before the login plugin', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'autoload-'))
    t.teardown(() => rmSync(dir, { recursive: true, force: true }))
    writeFileSync(join(dir, 'a-admin.js'), `module.exports = async function (app) {
      app.get('/admin', { config: { login: 'required' } }, () => 'the admin page')
      app.get('/admin/fresh', { config: { login: 'fresh' } }, () => 'the fresh page')
    }`)
    writeFileSync(join(dir, 'b-login.js'), `const fp = require(${JSON.stringify(require.resolve('fastify-plugin'))})
    const fastifyLogin = require(${JSON.stringify(require.resolve('../lib/index'))})
    module.exports = fp(async function (app) {
      await app.register(fastifyLogin, { secret: ${JSON.stringify(SECRET)}, userLoader: (id) => ({ id, isAuthenticated: true }) })
    })`)
    const app = Fastify()
    await app.register(fastifyAutoload, { dir })
    await app.ready()
    t.equal((await app.inject('/admin')).statusCode, 401, 'guarded, though declared first')
    t.equal((await app.inject('/admin/fresh')).statusCode, 401)
    const cookies = await app.loginManager.cookiesFor({ id: '1' } as never)
    t.equal((await app.inject({ url: '/admin', cookies })).body, 'the admin page')
    t.equal((await app.inject({ method: 'OPTIONS', url: '/admin' })).statusCode, 404, 'an undeclared method is still a 404')
  })
  t.test('one config object shared by routes of two registrations', async (t) => {
    const app = Fastify()
    const adminOnly = { config: { login: 'required' as const } }
    await app.register(async (api) => {
      await api.register(fastifyLogin, { secret: SECRET, userLoader: () => null })
      api.get('/api/me', adminOnly, () => 'api')
    })
    await app.register(async (admin) => {
      admin.get('/admin/report', adminOnly, () => 'SECRET REPORT')
      await admin.register(fastifyLogin, { secret: SECRET, userLoader: () => null })
    })
    t.equal((await app.inject('/api/me')).statusCode, 401)
    t.equal((await app.inject('/admin/report')).statusCode, 401, 'not taken for guarded by the other registration')
  })

  t.test('routes declared after the plugin cost nothing extra', async (t) => {
    const { app } = await build()
    app.get('/declared', { config: { login: 'required' } }, () => 'ok')
    await app.ready()
    t.notMatch(app.printRoutes({ includeHooks: true, commonPrefix: false }), /guardEarlierRoutes/, 'no scope-wide hook')
  })
})

test('11. refusals count toward a rate limit registered before the plugin', async (t) => {
  const app = Fastify()
  await app.register(fastifyRateLimit, { max: 3, timeWindow: 60_000 })
  await app.register(fastifyLogin, { secret: SECRET, userLoader: () => null })
  app.get('/account', { config: { login: 'required' } }, () => 'account')
  app.get('/guarded', { onRequest: app.loginManager.loginRequired }, () => 'guarded')
  const statuses: number[] = []
  for (let i = 0; i < 5; i++) statuses.push((await app.inject('/account')).statusCode)
  t.same(statuses, [401, 401, 401, 429, 429], 'the 4th anonymous request is limited, not refused again')
})

test('crossOriginProtection: unsafe requests from another origin are refused with 403', async (t) => {
  const { app } = await build({ trustedOrigins: ['https://partner.example'] })
  const refused: string[] = []
  app.loginManager.on('crossOriginRefused', (request) => refused.push(request.headers.origin ?? String(request.headers['sec-fetch-site'])))
  app.post('/transfer', { onRequest: app.loginManager.crossOriginProtection }, () => 'done')
  app.get('/transfer', { onRequest: app.loginManager.crossOriginProtection }, () => 'page')
  const post = async (headers: Record<string, string>): Promise<number> => (await app.inject({ method: 'POST', url: '/transfer', headers: { host: 'bank.example', ...headers } })).statusCode
  const cases: Array<[Record<string, string>, number, string]> = [
    [{}, 200, 'neither header: not a browser page'],
    [{ 'sec-fetch-site': 'same-origin' }, 200, 'same origin'],
    [{ 'sec-fetch-site': 'none' }, 200, 'typed by the user'],
    [{ 'sec-fetch-site': 'same-site' }, 403, 'a sibling subdomain, or another port of the same host'],
    [{ 'sec-fetch-site': 'cross-site' }, 403, 'another site'],
    [{ 'sec-fetch-site': 'cross-site', origin: 'https://partner.example' }, 200, 'a trusted origin'],
    [{ 'sec-fetch-site': 'same-site', origin: 'https://evil.example' }, 403, 'an untrusted origin'],
    [{ origin: 'https://bank.example' }, 200, 'old browser, Origin of this host'],
    [{ origin: 'http://bank.example' }, 200, 'the scheme is not compared (TLS ends at a proxy)'],
    [{ origin: 'https://bank.example:8443' }, 403, 'another port'],
    [{ origin: 'https://evil.example' }, 403, 'old browser, another origin'],
    [{ origin: 'null' }, 403, 'an opaque origin'],
    [{ origin: 'not a url' }, 403, 'garbage'],
    [{ origin: 'HTTPS://PARTNER.EXAMPLE' }, 200, 'trusted origins match case-insensitively'],
    [{ origin: 'https://bank.example:443' }, 200, 'an explicit default port is the same host'],
    [{ origin: 'data:,x' }, 403, 'an opaque origin has no host']
  ]
  for (const [headers, status, label] of cases) t.equal(await post(headers), status, label)
  t.equal(refused.length, cases.filter(([, status]) => status === 403).length, 'crossOriginRefused fired for each refusal')
  t.equal((await app.inject({ url: '/transfer', headers: { host: 'bank.example', 'sec-fetch-site': 'cross-site' } })).body, 'page', 'safe methods pass')
  const json = await app.inject({ method: 'POST', url: '/transfer', headers: { host: 'bank.example', 'sec-fetch-site': 'cross-site', accept: 'application/json' } })
  t.same(json.json(), { statusCode: 403, error: 'Forbidden', message: 'Cross-origin request refused.' })
  const text = await app.inject({ method: 'POST', url: '/transfer', headers: { host: 'bank.example', 'sec-fetch-site': 'cross-site' } })
  t.equal(text.body, 'Cross-origin request refused.')
  for (const trustedOrigins of ['https://a.example', ['https://a.example/path'], ['a.example'], [42]]) {
    await t.rejects(registering({ trustedOrigins }), { code: 'FST_LOGIN_INVALID_OPTION', message: /`trustedOrigins`/ })
  }
})
