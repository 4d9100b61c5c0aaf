import { test } from 'tap'
import type { Test } from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import fastifyCookie from '@fastify/cookie'
import fastifyLogin, { memoryStore } from '../lib/index'
import type { LoginRecord, LoginStore } from '../types/index'
import { clock, cookieJar, login, portal, SECRET, setCookieHeaders, User, userStore } from './helpers'

// The edges of logins with a store (issue 19): realms, the number of logins
// per user, re-authentication as a new login, what the plugin checks of the
// store's answers, and how a user proved who they are (issue 22).

const DAY = 24 * 60 * 60

test('two login areas in one app: separate cookies, loaders and stores, one secret', async (t) => {
  const store = memoryStore()
  const customers = userStore()
  const admins = new Map([['1', new User(1, 'root')]])
  const app = Fastify()
  // The natural Fastify shape: two sibling scopes, each with its registration.
  await app.register(async (scope) => {
    await scope.register(fastifyLogin, { secret: SECRET, store, userLoader: (id) => customers.get(id), cookieName: { account: 'customer', isFresh: 'customer_fresh' } })
    scope.get('/shop/login/:id', async (request, reply) => {
      await scope.loginManager.loginUser(request, reply, customers.get((request.params as { id: string }).id) as User)
      return 'in'
    })
    scope.get('/shop/me', { config: { login: 'required' } }, (request) => (request.currentUser as User).name)
    scope.get('/shop/devices', { config: { login: 'required' } }, async (request) => (await scope.loginManager.listLogins(request.currentUser as User)).length)
  })
  await app.register(async (scope) => {
    await scope.register(fastifyLogin, { secret: SECRET, store, userLoader: (id) => admins.get(id), cookieName: { account: 'admin', isFresh: 'admin_fresh' } })
    scope.get('/admin/login/:id', async (request, reply) => {
      await scope.loginManager.loginUser(request, reply, admins.get((request.params as { id: string }).id) as User)
      return 'in'
    })
    scope.get('/admin/me', { config: { login: 'fresh' } }, (request) => (request.currentUser as User).name)
    scope.get('/admin/devices', { config: { login: 'required' } }, async (request) => (await scope.loginManager.listLogins(request.currentUser as User)).length)
  })
  await app.ready()
  t.teardown(() => app.close())

  const customer = cookieJar(await app.inject('/shop/login/1'))
  t.same(Object.keys(customer).sort(), ['customer', 'customer_fresh'])
  t.equal((await app.inject({ url: '/shop/me', cookies: customer })).body, 'ann')
  // The customer with id 1 renames their cookies: the administrator with id 1?
  const renamed = { admin: customer.customer, admin_fresh: customer.customer_fresh }
  t.equal((await app.inject({ url: '/admin/me', cookies: renamed })).statusCode, 401, 'a cookie opens only the realm that issued it (ASVS 9.2.3)')

  const admin = cookieJar(await app.inject('/admin/login/1'))
  t.equal((await app.inject({ url: '/admin/me', cookies: admin })).body, 'root')
  t.equal((await app.inject({ url: '/shop/me', cookies: { customer: admin.admin } })).statusCode, 401, 'nor the other way')
  t.equal((await app.inject({ url: '/shop/devices', cookies: customer })).body, '1', 'each realm lists only its own logins of user 1')
  t.equal((await app.inject({ url: '/admin/devices', cookies: admin })).body, '1')
})

test('two apps on one store with other secrets never see or end each other\'s logins', async (t) => {
  const store = memoryStore()
  const one = await portal(t, store)
  const two = await portal(t, store, { secret: 'another-app-secret-that-is-long-enough-42' })
  await login(one.app, '1', 'One')
  const theirs = await login(two.app, '1', 'Two')
  t.same((await one.app.loginManager.listLogins('1')).map((record) => record.userAgent), ['One'], 'one app lists its own')
  t.same((await two.app.loginManager.listLogins('1')).map((record) => record.userAgent), ['Two'])
  t.equal(await one.app.loginManager.revokeAllLogins('1'), 1, 'and ends its own')
  t.equal((await two.app.inject({ url: '/me', cookies: theirs })).statusCode, 200, 'the other app\'s login lives on')
  const [record] = await two.app.loginManager.listLogins('1')
  t.equal(await one.app.loginManager.revokeLogin('1', record.loginId), false, 'not even by its login id')
  t.equal((await two.app.inject({ url: '/me', cookies: theirs })).statusCode, 200)
})

test('a realm keeps its id in the store across a secret rotation', async (t) => {
  const store = memoryStore()
  const NEW = 'a-new-secret-for-the-rotation-0123456789'
  const before = await portal(t, store)
  const cookies = await login(before.app, '1', 'Kept')
  const during = await portal(t, store, { secret: [SECRET, NEW] })
  const after = await portal(t, store, { secret: [NEW, SECRET] })
  const done = await portal(t, store, { secret: [NEW] })
  for (const { app } of [during, after]) {
    t.same((await app.loginManager.listLogins('1')).map((record) => record.userAgent), ['Kept'], 'listed at each step')
  }
  const renewed = { ...cookies, ...cookieJar(await after.app.inject({ url: '/me', cookies })) }
  t.equal((await done.app.inject({ url: '/me', cookies: renewed })).statusCode, 200, 'a cookie re-signed during the rotation works after it')
  t.same((await done.app.loginManager.listLogins('1')).map((record) => record.userAgent), ['Kept'], 'and its login is still listed and can be ended')
})

test('realm option: its own key, and a clear error for a bad one', async (t) => {
  const a = await portal(t, memoryStore(), { realm: 'staff' })
  const b = await portal(t, memoryStore())
  const cookies = await login(a.app)
  t.equal((await b.app.inject({ url: '/me', cookies })).statusCode, 401, 'another realm, the same cookie names: another key')
  t.equal(a.app.loginManager.config.realm, 'staff')
  for (const realm of ['', 'x'.repeat(101), 'tab\there', 42]) {
    const app = Fastify()
    app.register(fastifyLogin, { secret: SECRET, userLoader: () => null, realm: realm as string })
    await t.rejects(async () => { await app.ready() }, { code: 'FST_LOGIN_INVALID_OPTION', message: /`realm` must be 1 to 100 printable ASCII characters/ })
  }
})

test('maxLogins: past the limit, the least recently used login ends', async (t) => {
  const time = clock(t)
  const evicted: LoginRecord[] = []
  const { app } = await portal(t, memoryStore(), { maxLogins: 2, rotation: false }, (app) => {
    app.loginManager.on('loginEvicted', (_request, record) => { evicted.push(record) })
  })
  const laptop = await login(app, '1', 'Laptop')
  time.advance(120)
  const phone = await login(app, '1', 'Phone')
  time.advance(120)
  t.equal((await app.inject({ url: '/me', cookies: laptop })).statusCode, 200, 'the older login used last')
  time.advance(120)
  const tablet = await login(app, '1', 'Tablet')
  t.same(evicted.map((record) => record.userAgent), ['Phone'], 'by last use, not by age: the phone goes')
  t.equal((await app.inject({ url: '/me', cookies: phone })).statusCode, 401, 'and is refused')
  t.equal((await app.inject({ url: '/me', cookies: laptop })).statusCode, 200)
  t.equal((await app.inject({ url: '/me', cookies: tablet })).statusCode, 200, 'never the new one')
  t.same((await app.loginManager.listLogins('1')).map((record) => record.userAgent), ['Tablet', 'Laptop'])
  await login(app, '2', 'Bob')
  t.equal(evicted.length, 1, 'each user has their own limit')
})

test('maxLogins: a function of the user; 1 is one device at a time; a bad value fails clearly', async (t) => {
  const { app } = await portal(t, memoryStore(), { maxLogins: (user: User) => user.name === 'ann' ? 1 : 3 })
  const first = await login(app, '1', 'One')
  const second = await login(app, '1', 'Two')
  t.equal((await app.inject({ url: '/me', cookies: first })).statusCode, 401, 'one device at a time')
  t.equal((await app.inject({ url: '/me', cookies: second })).statusCode, 200)
  for (const maxLogins of [0, 1.5, -1, 'many']) {
    const bad = Fastify()
    bad.register(fastifyLogin, { secret: SECRET, userLoader: () => null, maxLogins: maxLogins as number })
    await t.rejects(async () => { await bad.ready() }, { code: 'FST_LOGIN_INVALID_OPTION', message: /`maxLogins` must be a whole number of logins, at least 1, or a function/ })
  }
  const { app: odd } = await portal(t, memoryStore(), { maxLogins: () => 0 })
  const response = await odd.inject({ url: '/login/1' })
  t.equal(response.statusCode, 500)
  t.match(response.json(), { code: 'FST_LOGIN_INVALID_OPTION', message: /`maxLogins` returned 0 for a user/ })
})

test('confirmLogin starts a new login: new id, the old cookie refused, one row with its first creation time', async (t) => {
  const time = clock(t)
  const confirmed: string[] = []
  const { app } = await portal(t, memoryStore(), {}, (app) => {
    app.post('/confirm', { config: { login: 'required' } }, async (request, reply) => {
      await app.loginManager.confirmLogin(request, reply, { method: (request.query as { method?: string }).method })
      const info = app.loginManager.loginInfo(request)
      confirmed.push(info?.loginId as string)
      return info
    })
  })
  const cookies = await login(app, '1', 'Laptop', true)
  const [before] = await app.loginManager.listLogins('1')
  time.advance(90)
  const response = await app.inject({ method: 'POST', url: '/confirm?method=passkey', cookies })
  t.match(response.json(), { fresh: true, method: 'passkey', authenticatedAt: before.createdAt + 90, remembered: true })
  t.not(response.json().loginId, before.loginId, 'a new login id (ASVS 7.2.4)')
  const renewed = { ...cookies, ...cookieJar(response) }
  t.equal((await app.inject({ url: '/me', cookies })).statusCode, 401, 'a copy of the cookie from before is refused')
  t.equal((await app.inject({ url: '/me', cookies: renewed })).statusCode, 200)
  const rows = await app.loginManager.listLogins('1')
  t.equal(rows.length, 1, 'the devices list still shows one row for this device')
  t.match(rows[0], { loginId: confirmed[0], createdAt: before.createdAt, method: 'passkey', authenticatedAt: before.createdAt + 90, expiresAt: before.expiresAt })
  const again = await app.inject({ method: 'POST', url: '/confirm', cookies: renewed })
  t.equal(again.json().method, null, 'confirmed without a method: none, never the old one')
})

test('the plugin checks what the store answers: ownership, liveness, its own realm', async (t) => {
  const time = clock(t)
  // A store keyed by login id alone, as docs/logins.md allows: it ignores the
  // user id it is given, and lists expired and idle rows.
  const rows = new Map<string, LoginRecord>()
  const careless: LoginStore = {
    create: (record) => { rows.set(record.loginId, { ...record }) },
    get: (loginId) => rows.get(loginId) ?? null,
    touch: (loginId, lastSeenAt) => { const row = rows.get(loginId); if (row !== undefined) row.lastSeenAt = lastSeenAt },
    delete: (loginId) => rows.delete(loginId),
    list: (userId) => [...rows.values()].filter((row) => row.userId === userId)
  }
  const { app } = await portal(t, careless, { idleTimeout: 3600 })
  const ann = await login(app, '1', 'Ann')
  const bob = await login(app, '2', 'Bob')
  const [bobsLogin] = await app.loginManager.listLogins('2')
  t.equal(await app.loginManager.revokeLogin('1', bobsLogin.loginId), false, 'ann cannot end bob\'s login by its id')
  t.equal((await app.inject({ url: '/me', cookies: bob })).statusCode, 200)
  await login(app, '1', 'Short', false)
  time.advance(2 * 3600)
  t.same(await app.loginManager.listLogins('1'), [], 'idle and expired logins are not listed (ASVS 7.5.2), whatever the store returns')
  t.equal(await app.loginManager.revokeAllLogins('1'), 0, 'nor counted as ended')
  t.equal(await app.loginManager.revokeLogin('1', [...rows.keys()][0]), false)
  t.equal((await app.inject({ url: '/me', cookies: ann })).statusCode, 401)
  rows.set('stranger', { ...bobsLogin, loginId: 'stranger', realm: 'another app' })
  t.same((await app.loginManager.listLogins('2')).map((record) => record.loginId), [], 'another realm\'s record is not ours')
})

test('a sliding login used every minute stays listed and endable, and stays ended', async (t) => {
  const time = clock(t)
  const { app } = await portal(t, memoryStore(), { cookieRefreshEachRequest: true, cookieDuration: 3600, idleTimeout: 1800, rotation: false })
  const jars = [await login(app, '1', 'Owner', true), await login(app, '1', 'Thief', true)]
  const use = async (i: number): Promise<number> => {
    const response = await app.inject({ url: '/me', cookies: jars[i] })
    jars[i] = { ...jars[i], ...cookieJar(response) }
    return response.statusCode
  }
  // Each used every 50 s for longer than the idle timeout and the cookie's duration.
  for (let second = 50; second <= 4000; second += 50) {
    time.advance(50)
    t.equal(await use(0), 200)
    t.equal(await use(1), 200)
  }
  t.same((await app.loginManager.listLogins('1')).map((record) => record.userAgent).sort(), ['Owner', 'Thief'], 'both listed: their records moved with their cookies')
  const [thief] = (await app.loginManager.listLogins('1')).filter((record) => record.userAgent === 'Thief')
  t.equal(await app.loginManager.revokeLogin('1', thief.loginId), true, 'and the thief\'s can be ended')
  // The thief keeps the cookie, whatever the answers say.
  const stolen = { ...jars[1] }
  for (let second = 0; second < 2 * 3600; second += 50) {
    time.advance(50)
    t.equal((await app.inject({ url: '/me', cookies: stolen })).statusCode, 401, `ended, ${second + 50} s later`)
    t.equal(await use(0), 200)
  }
})

test('ill-formed user ids are refused, not rewritten into another user\'s', async (t) => {
  const { app } = await portal(t, memoryStore())
  const calls: Array<() => Promise<unknown>> = [() => app.loginManager.listLogins('x\uD800'), () => app.loginManager.revokeAllLogins('x\uD800'), () => app.loginManager.revokeLogin('x\uDC00', 'id')]
  for (const call of calls) {
    await t.rejects(call, { code: 'FST_LOGIN_INVALID_USER' })
  }
})

test('cookieRefreshEachRequest with a store slides the record too', async (t) => {
  const time = clock(t)
  const { app } = await portal(t, memoryStore(), { cookieRefreshEachRequest: true, cookieDuration: DAY, rotation: false })
  let cookies = await login(app, '1', 'Sliding', true)
  const [first] = await app.loginManager.listLogins('1')
  for (let hour = 1; hour <= 30; hour++) {
    time.advance(3600)
    const response = await app.inject({ url: '/me', cookies })
    t.equal(response.statusCode, 200, `used every hour: alive after ${hour} h`)
    cookies = { ...cookies, ...cookieJar(response) }
  }
  const [record] = await app.loginManager.listLogins('1')
  t.ok(record.expiresAt >= first.expiresAt + 29 * 3600, 'the record\'s expiry moved with the cookie\'s')
  time.advance(DAY)
  t.equal((await app.inject({ url: '/me', cookies })).statusCode, 401, 'unused for its duration: ended')
})

test('how the user logged in: method in the cookie, the record and loginInfo', async (t) => {
  for (const store of [memoryStore(), null]) {
    const users = userStore()
    const app = Fastify()
    await app.register(fastifyLogin, { secret: SECRET, userLoader: (id) => users.get(id), ...(store === null ? {} : { store }) })
    app.get('/login/:method', async (request, reply) => {
      const { method } = request.params as { method: string }
      await app.loginManager.loginUser(request, reply, users.get('1') as User, { method: method === 'none' ? undefined : method })
      return 'in'
    })
    app.get('/info', { config: { login: 'required' } }, (request) => app.loginManager.loginInfo(request))
    const cookies = cookieJar(await app.inject('/login/passkey'))
    const info = (await app.inject({ url: '/info', cookies })).json()
    t.match(info, { method: 'passkey', authenticatedAt: Number }, `${store === null ? 'stateless' : 'store'}: the method travels in the cookie`)
    if (store !== null) t.match(await app.loginManager.listLogins('1'), [{ method: 'passkey' }], 'and in the record')
    t.equal((await app.inject({ url: '/info', cookies: cookieJar(await app.inject('/login/none')) })).json().method, null, 'default null')
    for (const method of ['pass key', '', 'm'.repeat(33), 'é']) {
      const response = await app.inject(`/login/${encodeURIComponent(method)}`)
      t.equal(response.statusCode, 500, JSON.stringify(method))
      t.match(response.json(), { code: 'FST_LOGIN_INVALID_OPTION', message: /`method` must be 1 to 32 letters/ })
    }
    await app.close()
  }
})

async function stepUpApp (t: Test, withStore: boolean): Promise<FastifyInstance> {
  const users = userStore()
  const app = Fastify()
  await app.register(fastifyLogin, {
    secret: SECRET,
    userLoader: (id) => users.get(id),
    refreshRoute: '/reauthenticate',
    ...(withStore ? { store: memoryStore() } : {})
  })
  app.get('/login/:method', async (request, reply) => {
    await app.loginManager.loginUser(request, reply, users.get('1') as User, { method: (request.params as { method: string }).method })
    return 'in'
  })
  app.post('/confirm/:method', { config: { login: 'required' } }, async (request, reply) => {
    await app.loginManager.confirmLogin(request, reply, { method: (request.params as { method: string }).method })
    return 'confirmed'
  })
  app.get('/delete-account', { config: { login: { mode: 'fresh', maxAge: 300, methods: ['passkey', 'password'] } } }, () => 'deleted')
  app.get('/recent', { config: { login: { mode: 'fresh', maxAge: 60 } } }, () => 'recent')
  app.get('/passkey-only', { config: { login: { mode: 'fresh', methods: ['passkey'] } } }, () => 'passkey')
  await app.ready()
  t.teardown(() => app.close())
  return app
}

test('step-up: fresh, and authenticated at most maxAge ago, with one of the methods', async (t) => {
  for (const withStore of [false, true]) {
    const time = clock(t)
    const app = await stepUpApp(t, withStore)
    const asked: unknown[] = []
    app.loginManager.on('needsRefresh', (_request, requirement) => { asked.push(requirement) })
    let cookies = cookieJar(await app.inject('/login/password'))
    const get = async (url: string): Promise<{ status: number, location?: string }> => {
      const response = await app.inject({ url, cookies })
      return { status: response.statusCode, location: response.headers.location as string | undefined }
    }
    t.same(await get('/delete-account'), { status: 200, location: undefined }, 'a password login, just now')
    time.advance(300)
    t.equal((await get('/delete-account')).status, 200, 'exactly maxAge passes')
    time.advance(1)
    t.same(await get('/delete-account'), { status: 307, location: '/reauthenticate?next=%2Fdelete-account&methods=passkey%2Cpassword' }, 'one second past: re-authenticate, and the page learns with what')
    t.same(asked.at(-1), { maxAge: 300, methods: ['passkey', 'password'] }, 'the needsRefresh event says what the route asked for')
    t.equal((await get('/recent')).status, 307)
    t.equal((await get('/recent')).location, '/reauthenticate?next=%2Frecent', 'no methods asked, none told')
    t.equal((await get('/passkey-only')).status, 307, 'a password is not a passkey, however recent')
    const confirm = await app.inject({ method: 'POST', url: '/confirm/passkey', cookies })
    cookies = { ...cookies, ...cookieJar(confirm) }
    t.equal((await get('/passkey-only')).status, 200, 'confirmed with a passkey')
    t.equal((await get('/delete-account')).status, 200)
    const oidc = { ...cookies, ...cookieJar(await app.inject({ method: 'POST', url: '/confirm/oidc', cookies })) }
    t.equal((await app.inject({ url: '/delete-account', cookies: oidc })).statusCode, 307, 'confirmed with another method: refused')
    t.equal((await app.inject({ url: '/delete-account', cookies: { account: oidc.account } })).statusCode, 307, 'not fresh at all: refused')
    t.equal((await app.inject('/delete-account')).statusCode, 401, 'anonymous: unauthorized, not needsRefresh')
  }
})

test('step-up options are checked when the route is declared', async (t) => {
  const cases: Array<[unknown, RegExp]> = [
    [{ mode: 'required', maxAge: 60 }, /`maxAge` and `methods` go with mode 'fresh' only, not 'required'/],
    [{ mode: 'prohibited', methods: ['passkey'] }, /go with mode 'fresh' only/],
    [{ mode: 'fresh', maxAge: 0 }, /`login.maxAge` must be a positive number of seconds/],
    [{ mode: 'fresh', maxAge: '300' }, /`login.maxAge` must be a positive number/],
    [{ mode: 'fresh', methods: [] }, /`login.methods` must be a non-empty array/],
    [{ mode: 'fresh', methods: ['pass key'] }, /`login.methods` must be a non-empty array/],
    [{ mode: 'fresh', methods: 'passkey' }, /`login.methods` must be a non-empty array/]
  ]
  for (const [login, message] of cases) {
    const app = Fastify()
    await app.register(fastifyLogin, { secret: SECRET, userLoader: () => null })
    t.throws(() => app.get('/x', { config: { login: login as never } }, () => 'x'), { code: 'FST_LOGIN_INVALID_OPTION', message })
    t.throws(() => app.loginManager.guard(login as never), { code: 'FST_LOGIN_INVALID_OPTION' })
    await app.close()
  }
})

test('loginRevoked fires once on every instance when a login ends, here or elsewhere', async (t) => {
  const store = memoryStore()
  const heard: Array<[string, string, string]> = []
  const one = await portal(t, store, {}, (app) => { app.loginManager.on('loginRevoked', (loginId, userId) => { heard.push(['one', loginId, userId]) }) })
  await portal(t, store, {}, (app) => { app.loginManager.on('loginRevoked', (loginId, userId) => { heard.push(['two', loginId, userId]) }) })
  const cookies = await login(one.app)
  const loginId = (await one.app.inject({ url: '/me', cookies })).json().loginId
  t.same(setCookieHeaders(await one.app.inject({ url: '/logout', cookies })).length, 2)
  t.same(heard.sort(), [['one', loginId, '1'], ['two', loginId, '1']], 'each instance once, with the login and the user')
  one.app.loginManager.on('loginRevoked', () => { throw new Error('a listener that throws') })
  const other = await login(one.app)
  await one.app.inject({ url: '/logout', cookies: other })
  t.equal(heard.length, 4, 'a throwing listener breaks nothing')
  // An instance started later reads back the logins ended before: none of
  // its sockets can be open for them, so it says nothing of them.
  const later: string[] = []
  const three = await portal(t, store, {}, (app) => { app.loginManager.on('loginRevoked', (loginId) => { later.push(loginId) }) })
  t.same(later, [], 'nothing for the logins ended before it listened')
  const third = await login(three.app)
  await three.app.inject({ url: '/logout', cookies: third })
  t.equal(later.length, 1, 'and each one ended since')
})

test('loginRevoked with a store that cannot tell of endings elsewhere: this process\'s own', async (t) => {
  const inner = memoryStore()
  const store: LoginStore = {
    create: (record) => inner.create(record),
    get: (loginId, userId) => inner.get(loginId, userId),
    touch: (loginId, lastSeenAt, userId, expiresAt) => inner.touch(loginId, lastSeenAt, userId, expiresAt),
    delete: (loginId, userId) => inner.delete(loginId, userId),
    list: (userId) => inner.list(userId)
  }
  const heard: string[] = []
  const { app } = await portal(t, store, { rotation: false }, (app) => { app.loginManager.on('loginRevoked', (loginId) => { heard.push(loginId) }) })
  const cookies = await login(app)
  await app.inject({ url: '/logout', cookies })
  t.equal(heard.length, 1)
})

test('rotation: on by default where the store can, an error where asked for and it cannot, a warning where it is off', async (t) => {
  const withMemory = Fastify()
  await withMemory.register(fastifyLogin, { secret: SECRET, userLoader: () => null, store: memoryStore() })
  t.same(withMemory.loginManager.config.rotation, { every: 600, grace: 60 }, 'memoryStore: every 10 minutes, a minute of grace')
  const stateless = Fastify()
  await stateless.register(fastifyLogin, { secret: SECRET, userLoader: () => null })
  t.equal(stateless.loginManager.config.rotation, false, 'without a store: off')
  const asked = Fastify()
  asked.register(fastifyLogin, { secret: SECRET, userLoader: () => null, rotation: { every: 60 } })
  await t.rejects(async () => { await asked.ready() }, { code: 'FST_LOGIN_NO_STORE', message: /`rotation` needs a login store/ })
  const { advanceGeneration, ...unable } = memoryStore()
  t.type(advanceGeneration, 'function')
  const cannot = Fastify()
  cannot.register(fastifyLogin, { secret: SECRET, userLoader: () => null, store: unable, rotation: {} })
  await t.rejects(async () => { await cannot.ready() }, { code: 'FST_LOGIN_STORE_CANNOT', message: /rotation needs the login store to have a `advanceGeneration` method/ })
  const warnings: string[] = []
  const quiet = Fastify({ logger: { level: 'warn', stream: { write: (line: string) => { warnings.push(JSON.parse(line).msg) } } } })
  await quiet.register(fastifyLogin, { secret: SECRET, userLoader: () => null, store: unable })
  await quiet.ready()
  t.match(warnings, [/the login store has no `advanceGeneration` method, so logins are not rotated/], 'a store without it: off, with one warning at ready')
  const knowing = Fastify({ logger: { level: 'warn', stream: { write: (line: string) => { warnings.push(JSON.parse(line).msg) } } } })
  await knowing.register(fastifyLogin, { secret: SECRET, userLoader: () => null, store: unable, rotation: false })
  await knowing.ready()
  t.equal(warnings.length, 1, 'none when turned off on purpose')
  for (const [rotation, message] of [[{ every: 0 }, /`rotation.every` must be a positive/], [{ grace: 700 }, /`rotation.grace` must be a number of seconds from 0 to `rotation.every`/], ['often', /`rotation` must be \{ every, grace \}/]] as const) {
    const bad = Fastify()
    bad.register(fastifyLogin, { secret: SECRET, userLoader: () => null, store: memoryStore(), rotation: rotation as never })
    await t.rejects(async () => { await bad.ready() }, { code: 'FST_LOGIN_INVALID_OPTION', message })
  }
  for (const app of [withMemory, stateless, quiet, knowing]) await app.close()
})

test('borrowed signing (no secret of its own): realms apart too', async (t) => {
  const build = async (realm?: string): Promise<FastifyInstance> => {
    const app = Fastify()
    await app.register(fastifyCookie, { secret: SECRET })
    await app.register(fastifyLogin, { userLoader: (id) => userStore().get(id), ...(realm === undefined ? {} : { realm }) })
    app.get('/login', (request, reply) => { app.loginManager.loginUser(request, reply, userStore().get('1') as User); return 'in' })
    app.get('/me', { config: { login: 'required' } }, (request) => (request.currentUser as User).name)
    return app
  }
  const staff = await build('staff')
  const plain = await build()
  const cookies = cookieJar(await staff.inject('/login'))
  t.equal((await staff.inject({ url: '/me', cookies })).body, 'ann', 'a realm of its own with the app\'s signer')
  t.equal((await plain.inject({ url: '/me', cookies })).statusCode, 401, 'not a cookie of the default realm')
  t.equal((await staff.inject({ url: '/me', cookies: cookieJar(await plain.inject('/login')) })).statusCode, 401, 'nor the other way')
  t.equal((await staff.inject({ url: '/me', cookies: { account: 'a3.x' } })).statusCode, 401, 'an unsigned value')
})

test('with a store and an idle timeout, browsing unguarded pages carries the last use too', async (t) => {
  const time = clock(t)
  const { app } = await portal(t, memoryStore(), { idleTimeout: 600, rotation: false }, (app) => {
    app.get('/page', (request) => request.currentUser.isAuthenticated)
  })
  let cookies = await login(app)
  for (let i = 0; i < 4; i++) {
    time.advance(300)
    const response = await app.inject({ url: '/page', cookies })
    t.equal(response.body, 'true', `still logged in after ${(i + 1) * 300} s of unguarded pages`)
    cookies = { ...cookies, ...cookieJar(response) }
  }
  const [record] = await app.loginManager.listLogins('1')
  t.ok(Math.floor(Date.now() / 1000) - record.lastSeenAt < 60, 'the record knows the last use')
})

test('maxLogins: logins used in the same second go by age', async (t) => {
  const evicted: string[] = []
  const { app } = await portal(t, memoryStore(), { maxLogins: 2 }, (app) => {
    app.loginManager.on('loginEvicted', (_request, record) => { evicted.push(record.userAgent) })
  })
  clock(t)
  await login(app, '1', 'First')
  await login(app, '1', 'Second')
  await login(app, '1', 'Third')
  t.same(evicted, ['First'])
})

test('confirmLogin of a login whose record the store lost meanwhile keeps its issue time', async (t) => {
  const inner = memoryStore()
  let lose = false
  const forgetful: LoginStore = { ...inner, get: (loginId, userId) => lose ? null : inner.get(loginId, userId), subscribe: undefined }
  const { app } = await portal(t, forgetful, { rotation: false }, (app) => {
    app.post('/confirm', { config: { login: 'required' } }, async (request, reply) => {
      lose = true
      await app.loginManager.confirmLogin(request, reply)
      return 'ok'
    })
  })
  const cookies = await login(app)
  t.equal((await app.inject({ method: 'POST', url: '/confirm', cookies })).statusCode, 200)
  lose = false
  const records = await app.loginManager.listLogins('1')
  t.equal(records.length, 1)
})

test('the record a store answers is checked against the cookie, whatever the store', async (t) => {
  const rows = new Map<string, LoginRecord>()
  // A store that answers by login id alone, without subscribe: every request reads.
  const byLoginId: LoginStore = {
    create: (record) => { rows.set(record.loginId, { ...record }) },
    get: (loginId) => rows.get(loginId) ?? null,
    touch: () => {},
    delete: (loginId) => rows.delete(loginId),
    list: (userId) => [...rows.values()].filter((row) => row.userId === userId)
  }
  const { app } = await portal(t, byLoginId, { rotation: false })
  const cookies = await login(app, '1')
  const loginId = (await app.inject({ url: '/me', cookies })).json().loginId
  const row = rows.get(loginId) as LoginRecord
  const answers: Array<[string, Partial<LoginRecord>]> = [
    ['another user\'s record under this login id', { userId: '2' }],
    ['a record of another login', { loginId: 'someone-else' }],
    ['a record of another realm (another app)', { realm: 'another app' }],
    ['a record past its expiry', { expiresAt: row.createdAt }]
  ]
  for (const [label, change] of answers) {
    rows.set(loginId, { ...row, ...change })
    t.equal((await app.inject({ url: '/me', cookies })).statusCode, 401, label)
  }
  // Written before realms and before the newer fields: read with their defaults.
  const { method, authenticatedAt, generation, generationUsedAt, realm, deviceKey, deviceSession, deviceChallengeAt, bound, ...old } = row
  t.same([typeof method, typeof authenticatedAt, typeof generation, typeof generationUsedAt, typeof realm, deviceKey, deviceSession, deviceChallengeAt, bound], ['object', 'number', 'number', 'number', 'string', null, null, 0, false])
  // A store whose delete says yes but keeps the row: ended is ended.
  const other = await login(app, '1', 'Other')
  const otherId = (await app.inject({ url: '/me', cookies: other })).json().loginId
  const kept = rows.get(otherId) as LoginRecord
  t.equal(await app.loginManager.revokeLogin('1', otherId), true)
  rows.set(otherId, kept)
  t.notOk((await app.loginManager.listLogins('1')).some((record) => record.loginId === otherId), 'not listed once ended, whatever the store still holds')
  rows.delete(otherId)
  rows.set(loginId, old as LoginRecord)
  t.equal((await app.inject({ url: '/me', cookies })).statusCode, 200, 'a record of an older version is this realm\'s until it expires')
  t.match(await app.loginManager.listLogins('1'), [{ loginId, method: null, authenticatedAt: row.createdAt, generation: 0, generationUsedAt: row.createdAt, realm: '', deviceKey: null, deviceSession: null, deviceChallengeAt: 0, bound: false }])
})

test('memoryStore: a registration that subscribes later hears of the logins ended before', async (t) => {
  const time = clock(t)
  const store = memoryStore()
  const early = await portal(t, store)
  const ended = await login(early.app, '1', 'Ended')
  const endedSoon = await login(early.app, '2', 'Ended soon', false)
  const kept = await login(early.app, '1', 'Kept')
  await early.app.inject({ url: '/logout', cookies: endedSoon })
  time.advance(2 * DAY)
  await early.app.inject({ url: '/logout', cookies: ended })
  const late = await portal(t, store)
  t.equal((await late.app.inject({ url: '/me', cookies: ended })).statusCode, 401, 'refused without a store read')
  t.equal((await late.app.inject({ url: '/me', cookies: kept })).statusCode, 401, 'kept: not remembered, past its day')
  t.equal(store.advanceGeneration?.('no-such-login', '1', 1, 0, '1 0'), false)
})

test('an un-awaited confirmLogin with an asynchronous store: the error says to await it', async (t) => {
  const inner = memoryStore()
  const later = <T>(value: T): Promise<T> => new Promise((resolve) => setImmediate(() => resolve(value)))
  const slow: LoginStore = { ...inner, get: async (loginId, userId) => await later(inner.get(loginId, userId)) }
  const errors: unknown[] = []
  const { app } = await portal(t, slow, { rotation: false }, (app) => {
    app.post('/confirm', { config: { login: 'required' } }, (request, reply) => {
      const confirming = app.loginManager.confirmLogin(request, reply) as Promise<void>
      confirming.catch((error: unknown) => { errors.push(error) })
      return 'sent before the store answered'
    })
  })
  const cookies = await login(app)
  t.equal((await app.inject({ method: 'POST', url: '/confirm', cookies })).body, 'sent before the store answered')
  for (let i = 0; i < 20 && errors.length === 0; i++) await new Promise((resolve) => setImmediate(resolve))
  t.match(errors, [{ code: 'FST_LOGIN_NOT_AWAITED', message: /confirmLogin\(\) finished after the reply was sent/ }])
})

test('a store that warns about its settings is logged once per message', async (t) => {
  const lines: string[] = []
  const warning: LoginStore = {
    ...memoryStore(),
    subscribe: (listener) => {
      listener.warn?.('a setting that breaks a promise')
      listener.warn?.('a setting that breaks a promise')
      listener.listening(true)
    }
  }
  const app = Fastify({ logger: { level: 'warn', stream: { write: (line: string) => { lines.push(JSON.parse(line).msg) } } } })
  await app.register(fastifyLogin, { secret: SECRET, userLoader: () => null, store: warning })
  await app.ready()
  t.same(lines, ['fastify-login: a setting that breaks a promise'])
  await app.close()
})

test('memoryStore forgets ended logins once they would have expired', async (t) => {
  const time = clock(t)
  const store = memoryStore()
  const { app } = await portal(t, store, { maxLogins: 1000 })
  await app.inject({ url: '/logout', cookies: await login(app, '2', 'Remembered', true) })
  for (let i = 0; i < 70; i++) {
    const cookies = await login(app, '1', `Browser ${i}`)
    await app.inject({ url: '/logout', cookies })
  }
  const heard: string[] = []
  store.subscribe?.({ revoked: (ended) => { for (const one of ended) heard.push(typeof one === 'string' ? one : one.loginId) }, listening: () => {}, heard: () => {}, trustedSince: () => {} })
  t.equal(heard.length, 71, 'every ended login, until it would have expired')
  time.advance(2 * DAY)
  for (let i = 0; i < 60; i++) await app.inject({ url: '/logout', cookies: await login(app, '2', `Later ${i}`) })
  heard.length = 0
  store.subscribe?.({ revoked: (ended) => { for (const one of ended) heard.push(typeof one === 'string' ? one : one.loginId) }, listening: () => {}, heard: () => {}, trustedSince: () => {} })
  t.equal(heard.length, 61, 'then only those that have not: the remembered one, and the 60 new ones')
})
