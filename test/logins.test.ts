import { test } from 'tap'
import Fastify from 'fastify'
import fastifyCookie from '@fastify/cookie'
import fastifyLogin, { memoryStore } from '../lib/index'
import { kKeptRecords } from '../lib/stores/memory'
import type { LoginRecord, LoginStore, LoginStoreListener } from '../types/index'
import { clock, cookieJar, login, portal, refusesIllFormedIds, SECRET, setCookieHeaders, User, userStore } from './helpers'

// Logins the server can end (issue 10): records in a store, logout that
// revokes every copy of a cookie, per-device revocation, idle timeout and
// the lifetime of logins that are not remembered, for the memory store and
// for synchronous and asynchronous stores an app writes itself.

const DAY = 24 * 60 * 60

// A store over a Map, as an app would write over its own database: every
// method answers after a tick when `async`, and counts its calls.
function tableStore (async: boolean): LoginStore & { calls: Record<string, number>, rows: Map<string, LoginRecord>, fail: unknown } {
  const rows = new Map<string, LoginRecord>()
  const calls: Record<string, number> = {}
  const answer = <T>(method: string, value: () => T): T | Promise<T> => {
    calls[method] = (calls[method] ?? 0) + 1
    if (store.fail !== null) {
      const failure = store.fail
      if (async) return Promise.reject(failure)
      throw failure
    }
    return async ? new Promise((resolve) => setImmediate(() => resolve(value()))) : value()
  }
  const now = () => Math.floor(Date.now() / 1000)
  const store = {
    calls,
    rows,
    fail: null as unknown,
    create: (record: LoginRecord) => answer('create', () => { rows.set(record.loginId, { ...record }) }),
    get: (loginId: string) => answer('get', () => {
      const row = rows.get(loginId)
      return row !== undefined && row.expiresAt > now() ? { ...row } : null
    }),
    touch: (loginId: string, lastSeenAt: number) => answer('touch', () => {
      const row = rows.get(loginId)
      if (row !== undefined) row.lastSeenAt = lastSeenAt
    }),
    delete: (loginId: string) => answer('delete', () => rows.delete(loginId)),
    list: (userId: string) => answer('list', () => [...rows.values()].filter((row) => row.userId === userId && row.expiresAt > now()).sort((a, b) => b.createdAt - a.createdAt)),
    deleteAll: (userId: string, except?: string) => answer('deleteAll', () => {
      let count = 0
      for (const row of [...rows.values()]) {
        if (row.userId === userId && row.loginId !== except) {
          rows.delete(row.loginId)
          count++
        }
      }
      return count
    })
  }
  return store
}

const stores: Array<[string, () => LoginStore]> = [
  ['memoryStore', memoryStore],
  ['a synchronous store of the app', () => tableStore(false)],
  ['an asynchronous store of the app', () => tableStore(true)]
]

for (const [name, makeStore] of stores) {
  test(`${name}: a login is recorded, and logout ends every copy of its cookie`, async (t) => {
    const { app, loaderCalls } = await portal(t, makeStore())
    const before = Math.floor(Date.now() / 1000)
    const cookies = await login(app, '1', 'Firefox/1 '.repeat(100))
    const me = (await app.inject({ url: '/me', cookies })).json()
    t.equal(me.name, 'ann')
    const [record] = await app.loginManager.listLogins('1')
    t.match(record, { loginId: me.loginId, userId: '1', remembered: false, ip: '127.0.0.1' }, 'the record of the login')
    t.equal(record.userAgent.length, 512, 'the user agent cut to 512 characters')
    t.ok(record.createdAt >= before && record.lastSeenAt === record.createdAt)
    t.equal(record.expiresAt - record.createdAt, DAY, 'not remembered: sessionDuration (1 day), not 60 days')
    const copy = { ...cookies } // a stolen copy, a shared computer
    const logout = await app.inject({ url: '/logout', cookies })
    t.equal(setCookieHeaders(logout).length, 2, 'the browser is told to forget')
    loaderCalls.length = 0
    t.equal((await app.inject({ url: '/me', cookies: copy })).statusCode, 401, 'the copy is anonymous now')
    t.same(loaderCalls, [], 'and the loader is not called for it')
    t.same(await app.loginManager.listLogins('1'), [])
  })

  test(`${name}: devices: list newest first, revoke one, revoke the others, revoke all`, async (t) => {
    const clock1 = clock(t)
    const { app } = await portal(t, makeStore())
    const laptop = await login(app, '1', 'Laptop', true)
    clock1.advance(5)
    const phone = await login(app, '1', 'Phone')
    clock1.advance(5)
    const tablet = await login(app, '1', 'Tablet')
    const bob = await login(app, '2', 'Bob')
    const devices = (await app.inject({ url: '/devices', cookies: phone })).json() as LoginRecord[]
    t.same(devices.map((d) => d.userAgent), ['Tablet', 'Phone', 'Laptop'], 'newest first, only ann\'s')
    t.equal(devices[2].remembered, true)
    const phoneId = (await app.inject({ url: '/me', cookies: phone })).json().loginId
    t.equal(devices[1].loginId, phoneId, 'loginInfo().loginId marks "this device"')

    t.equal(await app.loginManager.revokeLogin(new User(1, 'ann'), devices[0].loginId), true, 'the tablet revoked')
    t.equal(await app.loginManager.revokeLogin('1', devices[0].loginId), false, 'already gone')
    t.equal((await app.inject({ url: '/me', cookies: tablet })).statusCode, 401)
    t.same((await app.inject({ url: '/revoke-others', cookies: phone })).json(), { revoked: 1 }, 'the laptop')
    t.equal((await app.inject({ url: '/me', cookies: laptop })).statusCode, 401)
    t.equal((await app.inject({ url: '/me', cookies: phone })).statusCode, 200, 'this device kept')
    t.equal((await app.inject({ url: '/me', cookies: bob })).statusCode, 200, 'another user untouched')
    t.equal(await app.loginManager.revokeAllLogins('1'), 1)
    t.equal((await app.inject({ url: '/me', cookies: phone })).statusCode, 401)
    t.equal(await app.loginManager.revokeAllLogins(new User(2, 'bob')), 1)
    t.equal((await app.inject({ url: '/me', cookies: bob })).statusCode, 401)
  })

  test(`${name}: idle timeout and session lifetime, with a controlled clock`, async (t) => {
    const time = clock(t)
    const { app, loaderCalls } = await portal(t, makeStore(), { idleTimeout: 600, rotation: false })
    let cookies = await login(app)
    time.advance(599)
    const used = await app.inject({ url: '/me', cookies })
    t.equal(used.statusCode, 200, 'used within the timeout')
    t.equal(setCookieHeaders(used).length, 1, 'the account cookie re-issued with its last use')
    const copy = { ...cookies } // a copy made before, not used since
    cookies = { ...cookies, ...cookieJar(used) }
    time.advance(599)
    const again = await app.inject({ url: '/me', cookies })
    t.equal(again.statusCode, 200, 'each use restarts it')
    cookies = { ...cookies, ...cookieJar(again) }
    t.equal((await app.inject({ url: '/me', cookies: copy })).statusCode, 200, 'a copy with an older last use: the record knows the login was used')
    const [record] = await app.loginManager.listLogins('1')
    t.ok(Math.floor(Date.now() / 1000) - record.lastSeenAt < 60, 'lastSeenAt written')
    t.same(setCookieHeaders(await app.inject({ url: '/me', cookies })), [], 'not re-issued again within the minute')
    time.advance(600)
    loaderCalls.length = 0
    t.equal((await app.inject({ url: '/me', cookies })).statusCode, 401, 'idle for 600 s: refused')
    t.equal((await app.inject({ url: '/me', cookies: copy })).statusCode, 401, 'every copy')
    t.same(loaderCalls, [])

    const session = await login(app, '2')
    time.advance(DAY - 60)
    t.equal((await app.inject({ url: '/me', cookies: session })).statusCode, 401, 'idle, again')
  })

  test(`${name}: a login that is not remembered ends after sessionDuration on the server`, async (t) => {
    const time = clock(t)
    const { app } = await portal(t, makeStore(), { sessionDuration: 3600 })
    const session = await login(app, '1', 'Firefox', false)
    const remembered = await login(app, '2', 'Firefox', true)
    time.advance(3599)
    t.equal((await app.inject({ url: '/me', cookies: session })).statusCode, 200)
    time.advance(1)
    t.equal((await app.inject({ url: '/me', cookies: session })).statusCode, 401, 'the browser-session login ends')
    t.equal((await app.inject({ url: '/me', cookies: remembered })).statusCode, 200, 'the remembered one lasts cookieDuration')
  })
}

test('a login over another on the same browser ends the earlier one', async (t) => {
  for (const [name, makeStore] of stores) {
    const { app } = await portal(t, makeStore())
    const first = await login(app, '1')
    const copy = { ...first }
    const second = cookieJar(await app.inject({ url: '/login/2', cookies: first }))
    t.equal((await app.inject({ url: '/me', cookies: copy })).statusCode, 401, `${name}: a copy of the first cookie is anonymous`)
    t.same(await app.loginManager.listLogins('1'), [], `${name}: and no longer listed`)
    t.equal((await app.inject({ url: '/me', cookies: second })).json().name, 'bob')
  }
})

test('without a store: the idle timeout travels in the signed cookie, re-issued at most once a minute', async (t) => {
  const time = clock(t)
  const users = userStore()
  const app = Fastify()
  await app.register(fastifyLogin, { secret: SECRET, userLoader: (id) => users.get(id), idleTimeout: 1800 })
  app.get('/me', { onRequest: app.loginManager.loginRequired }, () => 'me')
  let cookies = await app.loginManager.cookiesFor(users.get('1') as User)
  const issued = setCookieHeaders(await app.inject({ url: '/me', cookies }))
  t.same(issued, [], 'a cookie just issued is not re-sent')
  time.advance(59)
  t.same(setCookieHeaders(await app.inject({ url: '/me', cookies })), [], 'nor within the minute')
  time.advance(1)
  const renewed = await app.inject({ url: '/me', cookies })
  t.equal(setCookieHeaders(renewed).length, 1, 'after a minute: the account cookie, with the new last use')
  cookies = { ...cookies, ...cookieJar(renewed) }
  time.advance(1799)
  t.equal((await app.inject({ url: '/me', cookies })).statusCode, 200, 'its clock restarted')
  time.advance(1800)
  t.equal((await app.inject({ url: '/me', cookies })).statusCode, 401, 'idle for the timeout: refused')

  const short = Fastify()
  await short.register(fastifyLogin, { secret: SECRET, userLoader: (id) => users.get(id), idleTimeout: 100 })
  short.get('/me', { onRequest: short.loginManager.loginRequired }, () => 'me')
  const shortCookies = await short.loginManager.cookiesFor(users.get('1') as User)
  time.advance(10)
  t.equal(setCookieHeaders(await short.inject({ url: '/me', cookies: shortCookies })).length, 1, 'a tenth of a short timeout')
})

test('without a store: browsing unguarded pages carries the last use too', async (t) => {
  const time = clock(t)
  const users = userStore()
  const app = Fastify()
  await app.register(fastifyLogin, { secret: SECRET, userLoader: (id) => users.get(id), idleTimeout: 600 })
  app.get('/page', (request) => request.currentUser.isAuthenticated)
  app.get('/static', () => 'no login asked')
  let cookies = await app.loginManager.cookiesFor(users.get('1') as User)
  for (let i = 0; i < 4; i++) {
    time.advance(300)
    const response = await app.inject({ url: '/page', cookies })
    t.equal(response.body, 'true', `still logged in after ${(i + 1) * 300} s of use`)
    cookies = { ...cookies, ...cookieJar(response) }
  }
  time.advance(300)
  t.same(setCookieHeaders(await app.inject({ url: '/static', cookies })), [], 'a route that never asks re-issues nothing')
  t.same(setCookieHeaders(await app.inject('/page')), [], 'nor an anonymous visit')
})

test('without a store: the four store methods say to pass one', async (t) => {
  const app = Fastify()
  await app.register(fastifyLogin, { secret: SECRET, userLoader: () => null })
  const calls: Array<() => Promise<unknown>> = [
    () => app.loginManager.listLogins('1'),
    () => app.loginManager.revokeLogin('1', 'x'),
    () => app.loginManager.revokeAllLogins('1'),
    () => app.loginManager.revokeOtherLogins({} as never)
  ]
  for (const call of calls) {
    await t.rejects(call, { code: 'FST_LOGIN_NO_STORE', message: /needs a login store: logins are stateless without one\. Pass `store`/ })
  }
})

test('a store that fails is a server error, never a logout and never an unchecked login', async (t) => {
  for (const async of [false, true]) {
    const store = tableStore(async)
    const { app, loaderCalls } = await portal(t, store)
    const cookies = await login(app)
    store.fail = new Error('connection refused')
    loaderCalls.length = 0
    for (const url of ['/me', '/login/2', '/logout', '/devices']) {
      const response = await app.inject({ url, cookies })
      t.equal(response.statusCode, 503, `${url} (${async ? 'async' : 'sync'}): 503`)
      t.match(response.json(), { code: 'FST_LOGIN_STORE_FAILED', message: /the login store failed in `(get|create|delete)`\. The request cannot be answered/ })
      t.notMatch(response.body, /connection refused/, 'what the store said stays out of the answer')
    }
    t.same(loaderCalls, [], 'nobody was loaded unchecked')
    store.fail = 'a string, not an Error'
    t.match((await app.inject({ url: '/me', cookies })).json(), { statusCode: 503, message: /failed in `get`/ }, 'whatever the store throws')
    store.fail = null
    t.equal((await app.inject({ url: '/me', cookies })).statusCode, 200, 'back to normal without a restart')
  }
})

test('a logout while the store is down keeps the cookies, so the user can log out once it is back', async (t) => {
  const store = tableStore(true)
  const { app } = await portal(t, store)
  const cookies = await login(app)
  store.fail = new Error('down')
  const failed = await app.inject({ url: '/logout', cookies })
  t.equal(failed.statusCode, 503)
  t.same(setCookieHeaders(failed), [], 'no clearing cookie: the login was not ended')
  store.fail = null
  const copy = { ...cookies }
  t.equal(setCookieHeaders(await app.inject({ url: '/logout', cookies })).length, 2, 'the second try ends it')
  t.equal((await app.inject({ url: '/me', cookies: copy })).statusCode, 401)
})

test('a logout with a planted duplicate cookie still ends the real login', async (t) => {
  const { app } = await portal(t, memoryStore())
  const victim = await login(app, '1')
  const copy = { ...victim }
  const other = await login(app, '1', 'Phone')
  const cookie = `account=planted; flag; account=%E0%A4%A; account=${encodeURIComponent(victim.account)}; account="${other.account}"`
  const response = await app.inject({ url: '/logout', headers: { cookie } })
  t.equal(response.statusCode, 200)
  t.same(await app.loginManager.listLogins('1'), [], 'both logins its cookies named are gone (a quoted value too)')
  t.equal((await app.inject({ url: '/me', cookies: copy })).statusCode, 401, 'and every copy of their cookies is anonymous')
})

test('a logout reads four distinct account cookies at most, and ends each login once', async (t) => {
  // Borrowed signing: every HMAC the plugin runs goes through app.unsignCookie.
  const app = Fastify()
  await app.register(fastifyCookie, { secret: SECRET })
  const inner = memoryStore()
  let deletes = 0
  const users = userStore()
  await app.register(fastifyLogin, {
    store: { ...inner, delete: (loginId, userId) => { deletes++; return inner.delete(loginId, userId) } },
    userLoader: (id) => users.get(id)
  })
  app.get('/login', async (request, reply) => { await app.loginManager.loginUser(request, reply, users.get('1') as User); return 'in' })
  app.get('/logout', async (request, reply) => { await app.loginManager.logoutUser(request, reply); return 'bye' })
  await app.ready()
  t.teardown(() => app.close())
  const unsign = app.unsignCookie.bind(app)
  let hmacs = 0
  app.unsignCookie = (value) => { hmacs++; return unsign(value) }

  const revoked = cookieJar(await app.inject('/login')).account
  await app.inject({ url: '/logout', cookies: { account: revoked } })
  deletes = 0
  hmacs = 0
  const response = await app.inject({ url: '/logout', headers: { cookie: Array(123).fill(`account=${revoked}`).join('; ') } })
  t.equal(response.statusCode, 200)
  t.equal(hmacs, 1, 'one revoked cookie sent 123 times is verified once')
  t.equal(deletes, 1, 'and its login deleted once')

  const live: string[] = []
  for (let i = 0; i < 10; i++) live.push(cookieJar(await app.inject('/login')).account)
  deletes = 0
  hmacs = 0
  await app.inject({ url: '/logout', headers: { cookie: live.map((value) => `account=${value}`).join('; ') } })
  t.equal(hmacs, 4, 'ten distinct cookies: four are verified')
  t.equal(deletes, 4, 'four logins ended')
  t.equal((await app.loginManager.listLogins('1')).length, 6, 'the others are left to their own logout')
})

test('a login and a logout in one request with a planted duplicate cookie leave no live login', async (t) => {
  const { app } = await portal(t, memoryStore(), {}, (app) => {
    app.get('/in-and-out', async (request, reply) => {
      await app.loginManager.loginUser(request, reply, { id: '2', getId: () => '2' } as unknown as User)
      await app.loginManager.logoutUser(request, reply)
      return 'done'
    })
  })
  const real = await login(app, '1')
  const response = await app.inject({ url: '/in-and-out', headers: { cookie: `account=planted; account=${real.account}` } })
  t.equal(response.statusCode, 200)
  t.same(await app.loginManager.listLogins('2'), [], 'the login this request made is ended too')
  t.same(await app.loginManager.listLogins('1'), [], 'and the one its cookies named')
})

test('loginUser and logoutUser that nobody awaits: logged, never a crash', async (t) => {
  const lines: string[] = []
  const users = userStore()
  const store = tableStore(true)
  const app = Fastify({ logger: { level: 'error', stream: { write: (line: string) => lines.push(line) } } })
  await app.register(fastifyLogin, { secret: SECRET, store, userLoader: (id) => users.get(id) })
  app.get('/careless-login', (request, reply) => {
    app.loginManager.loginUser(request, reply, users.get('1') as User)
    return 'sent before the login was recorded'
  })
  app.get('/careless-logout', (request, reply) => {
    app.loginManager.logoutUser(request, reply)
    return 'sent before the logout'
  })
  t.teardown(() => app.close())
  const response = await app.inject('/careless-login')
  t.same(setCookieHeaders(response), [], 'no cookie could be written')
  const cookies = await app.loginManager.cookiesFor(users.get('1') as User)
  t.equal((await app.inject({ url: '/careless-logout', cookies })).statusCode, 200)
  store.fail = new Error('down')
  t.equal((await app.inject({ url: '/careless-logout', cookies })).statusCode, 200)
  for (let waited = 0; waited < 2000 && lines.length < 3; waited += 10) await new Promise((resolve) => setTimeout(resolve, 10))
  const logged = lines.map((line) => JSON.parse(line) as { msg: string, err: { code: string } })
  t.same(logged.map((entry) => [entry.msg, entry.err.code]).sort(), [
    ['fastify-login: loginUser() failed after the reply was sent', 'FST_LOGIN_NOT_AWAITED'],
    ['fastify-login: logoutUser() failed after the reply was sent', 'FST_LOGIN_NOT_AWAITED'],
    ['fastify-login: logoutUser() failed after the reply was sent', 'FST_LOGIN_STORE_FAILED']
  ], 'each is logged, with what to do')
})

test('a loginUser nobody awaited leaves no login behind: its record is deleted, since no browser got its cookie', async (t) => {
  const users = userStore()
  const store = tableStore(true)
  const app = Fastify()
  await app.register(fastifyLogin, { secret: SECRET, store, userLoader: (id) => users.get(id) })
  const careless: { pending: Promise<boolean> | boolean } = { pending: false }
  app.get('/careless-login', (request, reply) => {
    careless.pending = app.loginManager.loginUser(request, reply, users.get('1') as User) // no await
    return 'sent before the login was recorded'
  })
  app.get('/careless-login-store-down', (request, reply) => {
    careless.pending = app.loginManager.loginUser(request, reply, users.get('2') as User)
    store.fail = new Error('down after create')
    return 'sent'
  })
  t.teardown(() => app.close())

  t.same(setCookieHeaders(await app.inject('/careless-login')), [], 'no cookie could be written')
  await t.rejects(Promise.resolve(careless.pending), { code: 'FST_LOGIN_NOT_AWAITED', message: /`await` it before the handler returns/ })
  t.same(await app.loginManager.listLogins('1'), [], 'no phantom device in listLogins')
  t.equal(store.rows.size, 0)
  t.equal(store.calls.create, 1)
  t.equal(store.calls.delete, 1)

  // The record could not be deleted either: the error still says what to fix,
  // and keeps the store's failure as its cause.
  await app.inject('/careless-login-store-down')
  const error = await Promise.resolve(careless.pending).then(() => null, (error: Error & { cause?: Error }) => error)
  t.match(error, { code: 'FST_LOGIN_NOT_AWAITED' })
  t.match(error?.cause, { code: 'FST_LOGIN_STORE_FAILED', cause: { message: 'down after create' } })
})

test('loginUser after the reply was sent: an error, and no login left behind, with a synchronous store or none', async (t) => {
  for (const store of [memoryStore(), undefined]) {
    const users = userStore()
    const app = Fastify()
    await app.register(fastifyLogin, { secret: SECRET, store, userLoader: (id) => users.get(id) })
    let thrown: unknown = null
    app.get('/late', (request, reply) => {
      reply.send('sent')
      try {
        app.loginManager.loginUser(request, reply, users.get('1') as User)
      } catch (error) {
        thrown = error
      }
      return reply
    })
    t.same(setCookieHeaders(await app.inject('/late')), [])
    t.match(thrown, { code: 'FST_LOGIN_NOT_AWAITED' }, store === undefined ? 'no store' : 'memoryStore')
    if (store !== undefined) t.same(await app.loginManager.listLogins('1'), [], 'memoryStore: no record left')
    await app.close()
  }
})

test('the devices recipe of docs/logins.md: a revocation refused for freshness comes back to the page after re-authenticating', async (t) => {
  const { app } = await portal(t, memoryStore(), { refreshRoute: '/reauthenticate' }, (app) => {
    app.get('/reauthenticate', { onRequest: app.loginManager.loginRequired }, () => 'type your password again')
    app.get('/devices-page', { onRequest: app.loginManager.loginRequired }, async (request) => {
      const here = app.loginManager.loginInfo(request)?.loginId
      const logins = await app.loginManager.listLogins(request.currentUser as User)
      return logins.map((login) => ({ ...login, thisDevice: login.loginId === here }))
    })
    app.post<{ Body: { loginId?: string } }>('/devices-page', { onRequest: [app.loginManager.crossOriginProtection, app.loginManager.freshLoginRequired] }, async (request) => {
      const { loginId } = request.body
      const revoked = loginId === undefined
        ? await app.loginManager.revokeOtherLogins(request)
        : await app.loginManager.revokeLogin(request.currentUser as User, loginId)
      return { revoked }
    })
  })
  const time = clock(t)
  const laptop = await login(app, '1', 'Laptop')
  time.advance(1)
  const phone = await login(app, '1', 'Phone')
  time.advance(1)
  const tablet = await login(app, '1', 'Tablet')
  const listed = (await app.inject({ url: '/devices-page', cookies: phone })).json() as Array<{ loginId: string, thisDevice: boolean, userAgent: string }>
  t.same(listed.map((login) => [login.userAgent, login.thisDevice]), [['Tablet', false], ['Phone', true], ['Laptop', false]], 'newest first, this device marked')
  const phoneLogin = listed[1]

  // The laptop's browser was restarted: remembered, not fresh.
  const stale = { account: laptop.account }
  const refused = await app.inject({ method: 'POST', url: '/devices-page', cookies: stale, payload: { loginId: phoneLogin.loginId } })
  t.equal(refused.statusCode, 303)
  t.equal(refused.headers.location, '/reauthenticate?next=%2Fdevices-page')
  const back = await app.inject({ url: '/devices-page', cookies: stale })
  t.equal(back.statusCode, 200, 'next names the page, not a URL that only takes POST')
  t.equal((await app.inject({ url: '/me', cookies: phone })).statusCode, 200, 'nothing was revoked')

  // Fresh, from the laptop that logged in ('basic' session protection).
  const fromLaptop = { 'user-agent': 'Laptop' }
  const crossSite = await app.inject({ method: 'POST', url: '/devices-page', cookies: laptop, payload: { loginId: phoneLogin.loginId }, headers: { ...fromLaptop, 'sec-fetch-site': 'cross-site' } })
  t.equal(crossSite.statusCode, 403, 'another site cannot post it')
  t.same((await app.inject({ method: 'POST', url: '/devices-page', cookies: laptop, payload: { loginId: phoneLogin.loginId }, headers: fromLaptop })).json(), { revoked: true })
  t.equal((await app.inject({ url: '/me', cookies: phone })).statusCode, 401, 'the phone is logged out')
  t.same((await app.inject({ method: 'POST', url: '/devices-page', cookies: laptop, payload: {}, headers: fromLaptop })).json(), { revoked: 1 }, 'no loginId: every other device')
  t.equal((await app.inject({ url: '/me', cookies: tablet })).statusCode, 401)
  t.equal((await app.inject({ url: '/me', cookies: laptop })).statusCode, 200)
})

test('with an asynchronous store, an unguarded read of currentUser fails the same way, cached or not', async (t) => {
  const { app } = await portal(t, { ...tableStore(true), subscribe: (listener: LoginStoreListener) => listener.listening(true) }, {}, (app) => {
    app.get('/unguarded', (request) => request.currentUser.getId())
    app.get('/loaded', async (request) => (await request.loadUser()).getId())
  })
  const cookies = await login(app)
  t.equal((await app.inject({ url: '/me', cookies })).statusCode, 200, 'the guard loads it, and the cache keeps it')
  for (let i = 0; i < 2; i++) {
    t.match((await app.inject({ url: '/unguarded', cookies })).json(), { code: 'FST_LOGIN_USER_NOT_LOADED' }, 'unguarded: the clear error every time')
  }
  t.equal((await app.inject({ url: '/loaded', cookies })).body, '1', 'await request.loadUser() works')
})

test('the store methods check what they are given', async (t) => {
  const { app } = await portal(t, memoryStore(), {}, (app) => {
    app.get('/anonymous-revoke', async (request) => await app.loginManager.revokeOtherLogins(request))
  })
  await t.rejects(app.loginManager.revokeLogin('1', ''), { code: 'FST_LOGIN_INVALID_OPTION', message: /`loginId` must be the `loginId` of one of the user's logins/ })
  await t.rejects(app.loginManager.listLogins({} as User), { code: 'FST_LOGIN_INVALID_USER', message: /a user object with an id, or a user id/ })
  await t.rejects(app.loginManager.revokeAllLogins(null as unknown as User), { code: 'FST_LOGIN_INVALID_USER' })
  t.match((await app.inject('/anonymous-revoke')).json(), { code: 'FST_LOGIN_NOT_LOGGED_IN', message: /revokeOtherLogins\(\) needs a user logged in/ })
})

test('memoryStore: a user id that is not well-formed Unicode is refused by the store methods', async (t) => {
  await refusesIllFormedIds(t, memoryStore())
})

test('a login without a user agent is recorded with an empty one', async (t) => {
  const { app } = await portal(t, memoryStore(), {}, (app) => {
    app.get('/login-bare', {
      onRequest: async (request) => { delete request.headers['user-agent'] }
    }, async (request, reply) => await app.loginManager.loginUser(request, reply, new User(1, 'ann')))
  })
  await app.inject('/login-bare')
  t.match(await app.loginManager.listLogins('1'), [{ userAgent: '' }])
})

test('a login or logout while the store is still answering supersedes that answer', async (t) => {
  const inner = tableStore(false)
  const slowReads: LoginStore = { ...inner, get: (loginId, userId) => new Promise((resolve) => setTimeout(() => resolve(inner.get(loginId, userId)), 20)) }
  const { app } = await portal(t, slowReads, {}, (app) => {
    app.get('/switch', async (request, reply) => {
      const pending = request.loadUser() // the store is asked about ann's login…
      await app.loginManager.loginUser(request, reply, new User(2, 'bob')) // …and bob logs in meanwhile
      const user = await pending
      return { pending: user.getId(), current: request.currentUser.getId() }
    })
  })
  const cookies = await login(app, '1')
  t.same((await app.inject({ url: '/switch', cookies })).json(), { pending: '2', current: '2' }, 'the earlier answer does not overwrite the login')
})

test('memoryStore drops expired logins when it looks at them', async (t) => {
  const store = memoryStore()
  const now = Math.floor(Date.now() / 1000)
  const record = (loginId: string, expiresAt: number): LoginRecord => ({ loginId, userId: 'u', createdAt: now - 10, lastSeenAt: now - 10, expiresAt, remembered: false, userAgent: '', ip: '', method: null, authenticatedAt: now - 10, generation: 0, generationUsedAt: now - 10, realm: 'r', deviceKey: null, deviceSession: null, deviceChallengeAt: 0, bound: false })
  store.create(record('old', now - 1))
  store.create(record('live', now + 60))
  t.equal(store.get('old', 'u'), null, 'expired')
  t.same((store.list('u') as LoginRecord[]).map((r) => r.loginId), ['live'])
  t.equal(store.get('live', 'someone else'), null, 'another user\'s login id')
  t.equal(store.delete('live', 'someone else'), false)
  store.touch('live', now, 'someone else')
  t.equal((store.get('live', 'u') as LoginRecord).lastSeenAt, now - 10, 'nor touched for another user')
  store.create(record('gone', now - 1))
  t.equal(store.deleteAll?.('u', 'live'), 0, 'the expired one is not counted')
  t.equal(store.deleteAll?.('u'), 1)
  t.same(store.list('nobody'), [])
  t.equal(store.deleteAll?.('nobody'), 0)
})

test('memoryStore frees the expired logins of users nobody looks at, a few per login created, with no timer', async (t) => {
  const time = clock(t)
  const timers = process.getActiveResourcesInfo().filter((resource) => resource === 'Timeout').length
  const store = memoryStore()
  const kept = (): number => (store as unknown as Record<typeof kKeptRecords, number>)[kKeptRecords]
  const record = (loginId: string, lifetime: number): LoginRecord => {
    const now = Math.floor(Date.now() / 1000)
    return { loginId, userId: `user-${loginId}`, createdAt: now, lastSeenAt: now, expiresAt: now + lifetime, remembered: false, userAgent: '', ip: '', method: null, authenticatedAt: now, generation: 0, generationUsedAt: now, realm: 'r', deviceKey: null, deviceSession: null, deviceChallengeAt: 0, bound: false }
  }
  for (let i = 0; i < 1000; i++) store.create(record(`old-${i}`, 60))
  t.equal(kept(), 1000)
  t.equal(process.getActiveResourcesInfo().filter((resource) => resource === 'Timeout').length, timers, 'no timer keeps the process alive')
  time.advance(61)
  store.create(record('new-0', DAY))
  t.equal(kept(), 1000 - 4 + 1, 'a login created frees four expired ones, no more')
  // 1,000 logins look at 4,000 records: the rest of a round and a whole new one.
  for (let i = 1; i < 1000; i++) store.create(record(`new-${i}`, DAY))
  t.equal(kept(), 1000, 'after 1,000 logins every expired one is gone; the live ones stay')
  time.advance(DAY)
  for (let i = 0; i < 1000; i++) store.create(record(`newer-${i}`, DAY))
  t.equal(kept(), 1000, 'the sweep went round again, over the records added after it started')
  t.same(store.list('user-newer-0'), [record('newer-0', DAY)], 'a live login is untouched')
})

test('a known login costs no store read; a revocation on another instance is heard', async (t) => {
  const shared = memoryStore()
  const one = await portal(t, shared)
  const two = await portal(t, shared)
  const cookies = await login(one.app)
  t.equal((await two.app.inject({ url: '/me', cookies })).statusCode, 200, 'a login made on one instance works on another')
  const counted = tableStore(false)
  const { app } = await portal(t, counted)
  const mine = await login(app)
  for (let i = 0; i < 5; i++) await app.inject({ url: '/me', cookies: mine })
  t.equal(counted.calls.get, 5, 'a store without subscribe is read on every request (storeCacheWindow 0)')
  const onDevice = (await one.app.inject({ url: '/me', cookies })).json().loginId
  await one.app.loginManager.revokeLogin('1', onDevice)
  t.equal((await two.app.inject({ url: '/me', cookies })).statusCode, 401, 'revoked on one, refused by the other')
})

test('storeCacheWindow: a store without subscribe may be cached for a window, with that staleness', async (t) => {
  const time = clock(t)
  const store = tableStore(false)
  const { app } = await portal(t, store, { storeCacheWindow: 30 })
  const cookies = await login(app)
  for (let i = 0; i < 3; i++) await app.inject({ url: '/me', cookies })
  t.equal(store.calls.get, 1, 'one read, then the window')
  store.rows.clear() // revoked behind this instance's back
  t.equal((await app.inject({ url: '/me', cookies })).statusCode, 200, 'stale within the window, as documented')
  time.advance(30)
  t.equal((await app.inject({ url: '/me', cookies })).statusCode, 401, 'and refused after it')
  for (const storeCacheWindow of [-1, 3601, 'long']) {
    const bad = Fastify()
    bad.register(fastifyLogin, { secret: SECRET, userLoader: () => null, storeCacheWindow: storeCacheWindow as number })
    await t.rejects(async () => { await bad.ready() }, { code: 'FST_LOGIN_INVALID_OPTION', message: /`storeCacheWindow`/ })
  }
})

test('a revocation that races a read of the same login leaves no stale entry', async (t) => {
  let release: () => void = () => {}
  let listener: LoginStoreListener | null = null
  const inner = tableStore(false)
  // get() answers only when released: the revocation happens in between.
  const racing: LoginStore = {
    ...inner,
    get: (loginId, userId) => new Promise((resolve) => { release = () => resolve(inner.get(loginId, userId)) }),
    subscribe: (l) => { listener = l; l.listening(true) }
  }
  const { app } = await portal(t, racing)
  const cookies = await login(app)
  const reading = app.inject({ url: '/me', cookies })
  await new Promise((resolve) => setImmediate(resolve))
  const loginId = [...inner.rows.keys()][0]
  const record = { ...inner.rows.get(loginId) as LoginRecord }
  inner.rows.delete(loginId)
  ;(listener as unknown as LoginStoreListener).revoked([loginId]) // heard from another instance
  inner.rows.set(loginId, record) // the read below still sees the old row
  release()
  t.equal((await reading).statusCode, 200, 'the read that began before the revocation answers as it read')
  inner.rows.delete(loginId)
  const after = app.inject({ url: '/me', cookies })
  await new Promise((resolve) => setImmediate(resolve))
  release()
  t.equal((await after).statusCode, 401, 'the next request reads the store again: nothing stale was cached')
})

test('the fast path: trusted only while the store proves, within 100 ms, that it heard every revocation', async (t) => {
  let listener: LoginStoreListener | null = null
  const inner = tableStore(false)
  const proving: LoginStore = { ...inner, subscribe: (l) => { listener = l; l.listening(true) } }
  const { app } = await portal(t, proving, { rotation: false })
  const hear = listener as unknown as LoginStoreListener
  const cookies = await login(app)
  const realNow = performance.now
  t.teardown(() => { performance.now = realNow })
  let at = 1_000_000
  performance.now = () => at
  await app.inject({ url: '/me', cookies })
  t.equal(inner.calls.get, 1, 'listening, but no proof yet: the store is read')
  hear.heard(at)
  for (let i = 0; i < 3; i++) await app.inject({ url: '/me', cookies })
  t.equal(inner.calls.get, 1, 'a proof of now: no store read')
  at += 99
  await app.inject({ url: '/me', cookies })
  t.equal(inner.calls.get, 1, 'a proof 99 ms old still holds')
  at += 1
  await app.inject({ url: '/me', cookies })
  t.equal(inner.calls.get, 2, 'one 100 ms old does not: a revocation made 100 ms ago might be unheard')
  hear.heard(at - 5)
  await app.inject({ url: '/me', cookies })
  t.equal(inner.calls.get, 2, 'a new proof: trusted again')
  hear.listening(false)
  await app.inject({ url: '/me', cookies })
  await app.inject({ url: '/me', cookies })
  t.equal(inner.calls.get, 4, 'deaf: a read per request')
  hear.listening(true)
  await app.inject({ url: '/me', cookies })
  t.equal(inner.calls.get, 5, 'listening again, but a proof from before it was deaf proves nothing')
  const loginId = [...inner.rows.keys()][0]
  inner.rows.delete(loginId)
  hear.revoked([{ loginId, userId: '1', expiresAt: Math.floor(Date.now() / 1000) + 60 }]) // what it missed
  hear.heard(at)
  t.equal((await app.inject({ url: '/me', cookies })).statusCode, 401, 'an ended login that was reported is refused without a read')
  t.equal(inner.calls.get, 5)
})

test('store option: a clear error at register for what is not a store', async (t) => {
  const cases: Array<[unknown, RegExp]> = [
    [{}, /`store` must be a LoginStore .* it has no create, get, touch, delete, list method/],
    ['redis://localhost', /`store` must be a LoginStore .* it is a string/],
    [{ ...memoryStore(), subscribe: 'yes' }, /`store.subscribe` must be a function when present/]
  ]
  for (const [store, message] of cases) {
    const app = Fastify()
    app.register(fastifyLogin, { secret: SECRET, userLoader: () => null, store: store as LoginStore })
    await t.rejects(async () => { await app.ready() }, { code: 'FST_LOGIN_INVALID_OPTION', message })
  }
})

test('cookiesFor records the login it makes cookies for; close() reaches the store', async (t) => {
  let closed = 0
  const store = { ...memoryStore(), close: () => { closed++ } }
  const { app } = await portal(t, store)
  const cookies = await app.loginManager.cookiesFor(new User(1, 'ann'), { userAgent: 'test-agent' })
  t.equal((await app.inject({ url: '/me', cookies })).statusCode, 200)
  t.match(await app.loginManager.listLogins('1'), [{ userAgent: 'test-agent' }])
  await app.close()
  t.equal(closed, 1)
})
