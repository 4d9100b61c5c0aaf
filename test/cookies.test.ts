import { test } from 'tap'
import { accountToken, build, cookieJar, loginCookies, OTHER_SECRET, SECRET, setCookieHeaders, signToken, User } from './helpers'
import { encodeAccount, encodeFresh } from '../lib/cookies/token'
import { AnonymousUserMixin, UserMixin } from '../lib/index'

const DAY = 24 * 60 * 60
const now = (): number => Math.floor(Date.now() / 1000)

test('loginUser sets a signed account cookie and a fresh cookie with safe attributes, both ending with the browser session', async (t) => {
  const { app } = await build()
  const response = await app.inject('/login/1')
  const [account, fresh] = response.cookies as Array<Record<string, unknown>>
  t.equal(account.name, 'account')
  // As Flask-Login's login_user: a forgotten option never makes a login last two months.
  t.equal(account.maxAge, undefined, 'not remembered unless asked: a browser-session cookie')
  t.equal(account.expires, undefined)
  t.equal(account.httpOnly, true)
  t.equal(account.sameSite, 'Lax')
  t.equal(account.path, '/')
  t.notOk(account.secure, 'no Secure on plain http')
  t.notOk(account.domain)
  t.not(account.value, '1', 'never the raw id')
  t.equal(fresh.name, 'fresh')
  t.equal(fresh.maxAge, undefined, 'a browser-session cookie')
  t.equal(fresh.expires, undefined)
  t.equal(fresh.httpOnly, true)
  t.equal(fresh.sameSite, 'Lax')
})

test('cookies are Secure on https (trustProxy honoured) and when forced', async (t) => {
  const { app } = await build({}, { trustProxy: true })
  const response = await app.inject({ url: '/login/1', headers: { 'x-forwarded-proto': 'https' } })
  for (const header of setCookieHeaders(response)) t.match(header, /; Secure/)
  const forced = await build({ cookieSecure: true })
  for (const header of setCookieHeaders(await forced.app.inject('/login/1'))) t.match(header, /; Secure/)
  const off = await build({ cookieSecure: false }, { trustProxy: true })
  for (const header of setCookieHeaders(await off.app.inject({ url: '/login/1', headers: { 'x-forwarded-proto': 'https' } }))) t.notMatch(header, /Secure/)
})

test('cookie names, path, domain, SameSite, HttpOnly and remember-me follow the options', async (t) => {
  const { app } = await build({
    cookieName: { account: 'who', isFresh: 'recent' },
    cookiePath: '/app',
    cookieDomain: 'example.com',
    cookieSameSite: 'strict',
    cookieHttpOnly: false,
    cookieRememberMe: { account: false, isFresh: true },
    sessionDuration: 3600
  })
  const response = await app.inject('/login/1')
  const [account, fresh] = response.cookies as Array<Record<string, unknown>>
  t.match(account, { name: 'who', path: '/app', domain: 'example.com', sameSite: 'Strict' })
  t.notOk(account.httpOnly)
  t.equal(account.maxAge, undefined, 'not remembered: browser-session cookie')
  t.match(fresh, { name: 'recent', maxAge: 3600 }, 'fresh cookie remembered')
})

test('remember: false/true on loginUser overrides cookieRememberMe.account', async (t) => {
  const { app } = await build()
  const remembered = await app.inject('/login/1?remember=1')
  const [account] = remembered.cookies as Array<Record<string, unknown>>
  t.equal(account.maxAge, 60 * DAY, 'remember: true remembers for cookieDuration')
  t.ok(account.expires instanceof Date)
  const on = await build({ cookieRememberMe: { account: true } })
  t.equal(((await on.app.inject('/login/1')).cookies as Array<Record<string, unknown>>)[0].maxAge, 60 * DAY, 'cookieRememberMe.account: true makes remembering the default')
  const forgotten = await on.app.inject('/login/1?remember=0')
  t.equal((forgotten.cookies as Array<Record<string, unknown>>)[0].maxAge, undefined)
  await t.rejects(app.loginManager.cookiesFor(new User(1, 'a'), { remember: 'yes' as never }), { code: 'FST_LOGIN_INVALID_OPTION', message: /`remember` must be true or false/ })
})

test('a browser-session login still works and is fresh', async (t) => {
  const { app } = await build()
  const cookies = await loginCookies(app, '2', '?remember=0')
  t.same((await app.inject({ url: '/me', cookies })).json(), { name: 'bob', fresh: true })
})

test('without the fresh cookie (browser restarted) the login is remembered but not fresh', async (t) => {
  const { app } = await build()
  const cookies = await loginCookies(app, '1', '?remember=1')
  const response = await app.inject({ url: '/me', cookies: { account: cookies.account } })
  t.same(response.json(), { name: 'ann', fresh: false })
})

test('logoutUser expires both cookies with Max-Age 0 and logs the request out at once', async (t) => {
  const { app } = await build()
  app.get('/logout-and-ask', { onRequest: app.loginManager.loginRequired }, (request, reply) => {
    app.loginManager.logoutUser(request, reply)
    return { authenticated: request.currentUser.isAuthenticated, fresh: request.isFresh }
  })
  const cookies = await loginCookies(app)
  const response = await app.inject({ url: '/logout-and-ask', cookies })
  t.same(response.json(), { authenticated: false, fresh: false })
  const expired = response.cookies as Array<Record<string, unknown>>
  t.same(expired.map((c) => [c.name, c.value, c.maxAge]), [['account', '', 0], ['fresh', '', 0]])
  for (const header of setCookieHeaders(response)) t.match(header, /Path=\/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; HttpOnly; SameSite=Lax/)
})

test('logging in inside a request makes that request authenticated and fresh', async (t) => {
  const { app, users } = await build()
  app.get('/login-and-ask', (request, reply) => {
    app.loginManager.loginUser(request, reply, users.get('2') as never)
    return { id: request.currentUser.getId(), fresh: request.isFresh }
  })
  t.same((await app.inject('/login-and-ask')).json(), { id: '2', fresh: true })
})

test('the server refuses an account cookie past its lifetime even with a valid signature', async (t) => {
  const { app, loaderCalls } = await build()
  const loginId = 'A'.repeat(22)
  const expired = signToken(encodeAccount(accountToken({ issuedAt: now() - 61 * DAY, expiresAt: now() - DAY, loginId })))
  const fresh = signToken(encodeFresh({ loginId, issuedAt: now() - 61 * DAY }))
  const response = await app.inject({ url: '/who', cookies: { account: expired, fresh } })
  t.same(response.json(), { authenticated: false, id: null, fresh: false })
  t.same(loaderCalls, [], 'the loader is not asked about an expired login')
  const valid = signToken(encodeAccount(accountToken({ issuedAt: now() - 10, expiresAt: now() + 10, loginId })))
  t.same((await app.inject({ url: '/who', cookies: { account: valid } })).json(), { authenticated: true, id: '1', fresh: false }, 'the same token before its expiry works')
})

test('bad account cookies resolve to the anonymous user without calling the loader', async (t) => {
  const { app, loaderCalls } = await build()
  const { account } = await loginCookies(app, '1', '?remember=1')
  const payload = account.slice(0, account.lastIndexOf('.'))
  const signature = account.slice(account.lastIndexOf('.') + 1)
  const cases: Record<string, string> = {
    'the design\'s raw id': '1',
    unsigned: payload,
    'empty signature': `${payload}.`,
    truncated: account.slice(0, -3),
    'payload tampered': account.replace('a3.MQ.', 'a3.Mg.'),
    'signature tampered': `${payload}.${signature.startsWith('A') ? 'B' : 'A'}${signature.slice(1)}`,
    'signed by another secret': signToken(payload, OTHER_SECRET),
    oversized: `${payload}${'x'.repeat(5000)}.${signature}`,
    'not UTF-8': '%FF%FE%80.abc',
    'wrong type tag': signToken(payload.replace(/^a3/, 'f1')),
    'too few fields': signToken('a3.MQ.1'),
    'bad id encoding': signToken(payload.replace('a3.MQ.', 'a3.M=Q.')),
    'bad time': signToken(payload.replace(/^a3\.MQ\.[^.]+/, 'a3.MQ.-5')),
    'bad login id': signToken(payload.replace(/\.[A-Za-z0-9_-]{22}\./, '.short.')),
    'bad remember flag': signToken(payload.replace(/\.r\.([^.]*\.[^.]*)$/, '.x.$1')),
    'bad client hash': signToken(payload.replace(/\.r\.([^.]*\.[^.]*)$/, '.r.$1!')),
    empty: ''
  }
  for (const [name, value] of Object.entries(cases)) {
    const response = await app.inject({ url: '/who', cookies: { account: value } })
    t.equal(response.statusCode, 200, name)
    t.same(response.json(), { authenticated: false, id: null, fresh: false }, name)
    const guarded = await app.inject({ url: '/me', cookies: { account: value } })
    t.equal(guarded.statusCode, 401, `${name}: guarded route refused`)
  }
  t.same(loaderCalls, [], 'no bad cookie reached the loader')
})

test('a raw header with garbage, duplicates and odd bytes never crashes', async (t) => {
  const { app } = await build()
  const { account } = await loginCookies(app)
  for (const header of ['account', '=;=;;', 'account=%', `account=${'%'.repeat(9000)}`, 'account="quoted"', `account=x; account=${account}`, 'account=\u00ff\u00fe']) {
    const response = await app.inject({ url: '/who', headers: { cookie: header } })
    t.equal(response.statusCode, 200, header.slice(0, 40))
    t.equal(response.json().authenticated, false, header.slice(0, 40))
  }
})

test('a fresh cookie only counts with the account cookie of the same login', async (t) => {
  const { app } = await build()
  const ann = await loginCookies(app, '1')
  const bob = await loginCookies(app, '2')
  const annAgain = await loginCookies(app, '1')
  t.same((await app.inject({ url: '/me', cookies: { account: ann.account, fresh: bob.fresh } })).json(), { name: 'ann', fresh: false }, 'another user\'s fresh cookie')
  t.same((await app.inject({ url: '/me', cookies: { account: ann.account, fresh: annAgain.fresh } })).json(), { name: 'ann', fresh: false }, 'the same user\'s other login')
  t.same((await app.inject({ url: '/me', cookies: { account: ann.account, fresh: '1' } })).json(), { name: 'ann', fresh: false }, 'the design\'s bare 1')
  t.same((await app.inject({ url: '/me', cookies: { account: ann.account, fresh: ann.account } })).json(), { name: 'ann', fresh: false }, 'an account token as fresh')
  t.same((await app.inject({ url: '/me', cookies: { account: ann.account, fresh: ann.fresh.slice(0, -2) } })).json(), { name: 'ann', fresh: false }, 'a truncated fresh cookie')
  t.same((await app.inject({ url: '/me', cookies: ann })).json(), { name: 'ann', fresh: true }, 'its own fresh cookie')
  t.same((await app.inject({ url: '/who', cookies: { fresh: ann.fresh } })).json(), { authenticated: false, id: null, fresh: false }, 'a fresh cookie alone logs no one in')
})

test('key rotation: cookies signed with a listed older secret are accepted and re-signed with the current one', async (t) => {
  const old = await build({ secret: OTHER_SECRET })
  const cookies = await loginCookies(old.app, '1')
  const { app } = await build({ secret: [SECRET, OTHER_SECRET] })
  const response = await app.inject({ url: '/me', cookies })
  t.same(response.json(), { name: 'ann', fresh: true })
  const renewed = cookieJar(response)
  t.same(Object.keys(renewed).sort(), ['account', 'fresh'])
  const login = (account: string): string => account.split('.').slice(0, 11).join('.')
  t.equal(login(renewed.account), login(cookies.account), 'same login (id, times, login id, flags, method), new signature')
  t.not(renewed.account.split('.')[11], cookies.account.split('.')[11], 'its client tag re-made with the current secret')
  const { app: newOnly } = await build({ secret: SECRET })
  t.same((await newOnly.inject({ url: '/me', cookies: renewed })).json(), { name: 'ann', fresh: true }, 'the re-signed cookies work once the old secret is gone')
  t.equal((await newOnly.inject({ url: '/me', cookies })).statusCode, 401, 'the old cookies do not')
  const second = await app.inject({ url: '/me', cookies: renewed })
  t.same(setCookieHeaders(second), [], 'nothing to re-sign for current cookies')
  const accountOnly = await app.inject({ url: '/me', cookies: { account: cookies.account } })
  t.same(Object.keys(cookieJar(accountOnly)), ['account'], 'no fresh cookie invented when it was missing')
})

test('an id too long for a cookie, a non-Unicode id, a missing id and the anonymous user are refused by loginUser', async (t) => {
  const { app } = await build()
  const cases: Array<[unknown, string, RegExp]> = [
    [{ id: 'x'.repeat(4000) }, 'FST_LOGIN_INVALID_USER', /user id is too long/],
    [{ id: 'a\ud800b' }, 'FST_LOGIN_INVALID_USER', /well-formed Unicode/],
    [new UserMixin(), 'FST_LOGIN_NO_USER_ID', /No `id` attribute/],
    [{ name: 'no id' }, 'FST_LOGIN_NO_USER_ID', /No `id` attribute/],
    [{ id: '' }, 'FST_LOGIN_NO_USER_ID', /No `id` attribute/],
    [new AnonymousUserMixin(), 'FST_LOGIN_INVALID_USER', /anonymous user cannot log in/],
    [null, 'FST_LOGIN_INVALID_USER', /expected a user object/],
    ['1', 'FST_LOGIN_INVALID_USER', /expected a user object/]
  ]
  cases.forEach(([user], index) => {
    app.get(`/case-${index}`, (request, reply) => {
      app.loginManager.loginUser(request, reply, user as never)
      return 'logged in'
    })
  })
  for (let i = 0; i < cases.length; i++) {
    const response = await app.inject(`/case-${i}`)
    t.equal(response.statusCode, 500)
    t.match(response.json(), { code: cases[i][1], message: cases[i][2] })
    t.same(setCookieHeaders(response), [], 'no cookie set')
  }
})

test('plain objects with getId() or id can log in, and ids of any characters round-trip', async (t) => {
  const ids = ['42', 'user@example.com', 'a.b.c', 'semi;colon, comma=equals', 'émoji 🎉 ünïcode', ' spaced ', 'line\nbreak']
  const { app } = await build()
  app.loginManager.userLoader((id) => ({ getId: () => id, isAuthenticated: true, isActive: true, isAnonymous: false }) as never)
  app.get<{ Querystring: { id: string, plain?: string } }>('/login-id', (request, reply) => {
    const id = request.query.id
    app.loginManager.loginUser(request, reply, (request.query.plain === '1' ? { id } : { getId: () => id }) as never)
    return 'ok'
  })
  for (const id of ids) {
    for (const plain of ['0', '1']) {
      const cookies = cookieJar(await app.inject({ url: '/login-id', query: { id, plain } }))
      const response = await app.inject({ url: '/who', cookies })
      t.same(response.json(), { authenticated: true, id, fresh: true }, JSON.stringify(id))
    }
  }
})
