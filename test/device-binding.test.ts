import { test } from 'tap'
import type { Test } from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import fastifyLogin, { memoryStore } from '../lib/index'
import type { LoginRecord, LoginStore } from '../types/index'
import { bindingApp, boundBrowser, challengeOf, cookieNames, DbscBrowser, HTTPS, offerOf, protocolSuite, refused, type Instances } from './device-binding-suite'
import { clock, SECRET, setCookieHeaders } from './helpers'

// Device binding (issue 20, part 2) with memoryStore: the protocol (the same
// as with Redis, test/device-binding-redis.test.ts), then what the rest of
// the plugin does with a bound login.

async function instances (t: Parameters<typeof bindingApp>[0]): Promise<Instances> {
  const events = { bound: [] as LoginRecord[], missing: [] as string[] }
  // Two registrations of the plugin on one store: two instances of an app.
  const store = memoryStore()
  return { issuer: await bindingApp(t, store, {}, events), verifier: await bindingApp(t, store, {}, events), ...events }
}

test('the protocol, with memoryStore', async (t) => {
  protocolSuite(t, 'memoryStore', instances)
})

// A memoryStore that counts what the plugin asks of it.
function countingStore (inner: LoginStore = memoryStore()): LoginStore & { calls: Record<string, number> } {
  const calls: Record<string, number> = {}
  const counted = Object.fromEntries(Object.entries(inner).map(([name, method]) => [name, (...args: unknown[]) => {
    calls[name] = (calls[name] ?? 0) + 1
    return (method as (...values: unknown[]) => unknown)(...args)
  }]))
  return Object.assign(counted as unknown as LoginStore, { calls })
}

async function single (t: Test, options: Record<string, unknown> = {}, store: LoginStore = memoryStore()): Promise<Instances & { app: FastifyInstance }> {
  const events = { bound: [] as LoginRecord[], missing: [] as string[] }
  const app = await bindingApp(t, store, options, events)
  return { app, issuer: app, verifier: app, ...events }
}

test('options: device binding needs a store that can bind, https cookies, and sane values', async (t) => {
  const loader = (): null => null
  const attempt = async (options: Record<string, unknown>): Promise<unknown> => {
    const app = Fastify()
    app.register(fastifyLogin, { secret: SECRET, userLoader: loader, ...options })
    try {
      await app.ready()
      return null
    } catch (error) {
      return error
    } finally {
      await app.close()
    }
  }
  const { bind, ...cannotBind } = memoryStore()
  const { useChallenge, ...cannotUse } = memoryStore()
  t.match(await attempt({ deviceBinding: true }), { code: 'FST_LOGIN_NO_STORE', message: /`deviceBinding` needs a login store/ })
  t.match(await attempt({ deviceBinding: {}, store: cannotBind }), { code: 'FST_LOGIN_STORE_CANNOT', message: /deviceBinding needs the login store to have a `bind` method/ })
  t.match(await attempt({ deviceBinding: {}, store: cannotUse }), { code: 'FST_LOGIN_STORE_CANNOT', message: /`useChallenge` method/ })
  t.ok(typeof bind === 'function' && typeof useChallenge === 'function')
  t.match(await attempt({ store: { ...memoryStore(), bind: 42 } }), { code: 'FST_LOGIN_INVALID_OPTION', message: /`store.bind` must be a function when present/ })
  for (const [options, message] of [
    [{ deviceBinding: 'yes' }, /`deviceBinding` must be true, false or \{ path, credentialDuration \}/],
    [{ deviceBinding: ['/bind'] }, /`deviceBinding` must be true, false/],
    [{ deviceBinding: { paht: '/bind' } }, /`deviceBinding.paht` is unknown: did you mean `deviceBinding.path`\?/],
    [{ deviceBinding: true, cookieSecure: false }, /`deviceBinding` works over https only/],
    [{ deviceBinding: { path: 'bind' } }, /`deviceBinding.path` must be a path such as/],
    [{ deviceBinding: { path: '/bind/' } }, /`deviceBinding.path` must be a path/],
    [{ deviceBinding: { path: '/a b' } }, /`deviceBinding.path` must be a path/],
    [{ deviceBinding: { path: 42 } }, /`deviceBinding.path` must be a path/],
    [{ deviceBinding: { path: '/other/bind' }, cookiePath: '/app' }, /`deviceBinding.path` must be under `cookiePath` \('\/app'\)/],
    [{ deviceBinding: { path: '/application/bind' }, cookiePath: '/app' }, /under `cookiePath`/],
    [{ deviceBinding: { credentialDuration: 0 } }, /`deviceBinding.credentialDuration` must be a whole number of seconds from 1 to 86400/],
    [{ deviceBinding: { credentialDuration: 1.5 } }, /credentialDuration/],
    [{ deviceBinding: { credentialDuration: 86401 } }, /credentialDuration/],
    [{ deviceBinding: { credentialDuration: '600' } }, /credentialDuration/],
    [{ cookieName: { bound: 'account' } }, /`cookieName` must use three different names for `account`, `isFresh` and `bound`/],
    [{ cookieName: { bound: 'a;b' } }, /`cookieName.bound` must be a non-empty cookie name/],
    [{ cookieName: { bound: '__Host-bound' }, cookieSecure: false }, /`cookieName.bound` starts with __Host-/]
  ] as const) {
    t.match(await attempt({ store: memoryStore(), ...options }), { code: 'FST_LOGIN_INVALID_OPTION', message }, JSON.stringify(options))
  }
})

test('options: the resolved config, the warning under 300 s, and the routes under a scope\'s prefix', async (t) => {
  const { app } = await single(t)
  t.same(app.loginManager.config.deviceBinding, { path: '/device-binding', credentialDuration: 600 })
  t.equal(app.loginManager.config.cookieName.bound, 'bound')
  const off = await bindingApp(t, memoryStore(), { deviceBinding: false })
  t.equal(off.loginManager.config.deviceBinding, false)
  t.equal((await off.inject({ method: 'POST', url: '/device-binding/refresh', headers: HTTPS })).statusCode, 404, 'no routes when off')
  const deep = await bindingApp(t, memoryStore(), { cookiePath: '/app/', deviceBinding: { credentialDuration: 300 } })
  t.same(deep.loginManager.config.deviceBinding, { path: '/app/device-binding', credentialDuration: 300 })

  const warnings: string[] = []
  const logged = Fastify({ logger: { level: 'warn', stream: { write: (line: string) => { warnings.push(JSON.parse(line).msg) } } } })
  await logged.register(fastifyLogin, { secret: SECRET, store: memoryStore(), userLoader: () => null, deviceBinding: { credentialDuration: 299 } })
  await logged.ready()
  await logged.close()
  t.match(warnings, [/`deviceBinding.credentialDuration` is 299 s\. Chrome refreshes the bound cookie when 2 minutes are left.*Use it in tests only/])

  const scoped = Fastify({ trustProxy: true })
  await scoped.register(async (auth) => {
    await auth.register(fastifyLogin, { secret: SECRET, store: memoryStore(), userLoader: () => null, deviceBinding: { path: '/auth/binding' } })
  }, { prefix: '/auth' })
  await scoped.ready()
  t.teardown(() => scoped.close())
  t.equal((await scoped.inject({ method: 'POST', url: '/auth/binding/refresh', headers: { ...HTTPS, 'sec-secure-session-id': 'x' } })).statusCode, 401, 'the routes are at the path, prefix included')
  const misplaced = Fastify()
  misplaced.register(async (auth) => {
    await auth.register(fastifyLogin, { secret: SECRET, store: memoryStore(), userLoader: () => null, deviceBinding: true })
  }, { prefix: '/auth' })
  await t.rejects(async () => { await misplaced.ready() }, { code: 'FST_LOGIN_INVALID_OPTION', message: /`deviceBinding.path` must be under '\/auth', the prefix of the scope fastify-login is registered in/ })
})

test('the session config: the cookie path scopes the session, the attributes match the cookie', async (t) => {
  const app = await bindingApp(t, memoryStore(), { cookiePath: '/app', cookieDomain: 'example.com', cookieSameSite: 'strict', cookieHttpOnly: false, cookieName: { bound: '__Secure-bound' } })
  // The fake browser sends its cookies to every path.
  const browser = new DbscBrowser()
  const offer = offerOf(await browser.get(app, '/login/1'))
  t.equal(offer?.path, '/app/device-binding/register')
  const registration = await browser.register(app, offer as NonNullable<typeof offer>)
  t.same(registration.json(), {
    session_identifier: browser.session,
    refresh_url: '/app/device-binding/refresh',
    scope: { include_site: false, scope_specification: [{ type: 'exclude', domain: '*', path: '/' }, { type: 'include', domain: '*', path: '/app' }] },
    credentials: [{ type: 'cookie', name: '__Secure-bound', attributes: 'Domain=example.com; Path=/app; Secure; SameSite=Strict' }]
  })
  t.match(setCookieHeaders(registration).find((line) => line.startsWith('__Secure-bound=')), /; Max-Age=600; Domain=example\.com; Path=\/app; Expires=[^;]+; Secure; SameSite=Strict$/)
})

test('a login offered binding: accepted as it is for a minute, then its record decides, once', async (t) => {
  const time = clock(t)
  const store = countingStore()
  const { app, missing } = await single(t, { rotation: { every: 600, grace: 60 } }, store)
  // A browser without device binding: it never registers.
  const plain = new DbscBrowser()
  await plain.get(app, '/login/1')
  const reads = (): number => store.calls.get ?? 0
  t.equal((await plain.get(app, '/me')).json().bound, false)
  t.equal(reads(), 0, 'within the minute: the fast path, no store read')
  time.advance(60)
  const judged = await plain.get(app, '/me')
  t.equal(judged.statusCode, 200, 'a minute on, never bound: still logged in')
  t.equal(reads(), 1, 'its record was read once')
  t.match(setCookieHeaders(judged)[0], /^account=[^;]+\.[rs]\.\./, 're-issued without the offer')
  await plain.get(app, '/me')
  t.equal(reads(), 1, 'and the fast path again')
  time.advance(600)
  t.match(setCookieHeaders(await plain.get(app, '/me'))[0], /^account=a3(\.[^.]+){6}\.1\./, 'rotation still protects it')

  // Bound since the copy was made: the copy is anonymous, ends nothing.
  const browser = new DbscBrowser()
  const offer = offerOf(await browser.get(app, '/login/1'))
  const copy = new DbscBrowser({ jar: { account: browser.jar.account } })
  await browser.register(app, offer as NonNullable<typeof offer>)
  t.equal((await copy.get(app, '/me')).statusCode, 200, 'within the minute the copy still works')
  time.advance(60)
  t.equal((await copy.get(app, '/me')).statusCode, 401, 'a minute on, the copy of the pending cookie is anonymous')
  t.same(missing, ['/me'], 'boundProofMissing')
  await copy.get(app, '/logout')
  t.equal((await copy.get(app, '/login/1')).statusCode, 200)
  time.advance(600)
  t.equal((await browser.get(app, '/me')).statusCode, 401, 'the real browser\'s bound cookie expired too')
  t.equal((await browser.refresh(app)).statusCode, 200, 'it refreshes')
  t.match((await browser.get(app, '/me')).json(), { bound: true }, 'and goes on: the copy ended nothing, not even as an old generation')
})

test('a pending cookie beside a valid bound cookie: its browser registered, and the cookie says so from then on', async (t) => {
  const store = countingStore()
  const { app } = await single(t, {}, store)
  const browser = new DbscBrowser()
  const offer = offerOf(await browser.get(app, '/login/1'))
  const pending = browser.jar.account
  await browser.register(app, offer as NonNullable<typeof offer>)
  // A response to a request sent before the registration finished set the pending cookie again.
  browser.jar.account = pending
  const reads = store.calls.get ?? 0
  const me = await browser.get(app, '/me')
  t.equal(me.json().bound, true)
  t.match(setCookieHeaders(me)[0], /^account=[^;]+\.[rs]b\.\./, 're-issued flagged bound')
  t.equal(store.calls.get ?? 0, reads, 'without a store read')
})

test('a refresh: one store read and one conditional write; a failing store is a 503 and no cookie', async (t) => {
  const store = countingStore()
  const setup = await single(t, {}, store)
  const { browser } = await boundBrowser(setup)
  const before = { ...store.calls }
  const asked = await browser.post(setup.app, '/device-binding/refresh', { 'sec-secure-session-id': browser.session as string })
  t.same(store.calls, before, 'asking for a challenge reads nothing')
  await browser.post(setup.app, '/device-binding/refresh', { 'sec-secure-session-id': browser.session as string, 'secure-session-response': browser.token(challengeOf(asked)) })
  t.same(Object.fromEntries(Object.entries(store.calls).map(([name, count]) => [name, count - (before[name] ?? 0)]).filter(([, count]) => count !== 0)), { get: 1, useChallenge: 1 }, 'the proof: one read, one write')

  const failing = countingStore()
  const broken = await single(t, {}, failing)
  const victim = await boundBrowser(broken)
  failing.useChallenge = () => { throw new Error('the store is down') }
  const response = await victim.browser.refresh(broken.app)
  t.equal(response.statusCode, 503)
  t.equal(response.json().code, 'FST_LOGIN_STORE_FAILED')
  t.same(cookieNames(response), [])
  failing.bind = async () => await Promise.reject(new Error('down'))
  const other = new DbscBrowser()
  const offer = offerOf(await other.get(broken.app, '/login/2'))
  const registration = await other.register(broken.app, offer as NonNullable<typeof offer>)
  t.equal(registration.statusCode, 503, 'registration too')
  t.same(cookieNames(registration), [])
})

test('the bound cookie: its own lifetime, never past the login\'s, and rotation leaves it valid', async (t) => {
  const time = clock(t)
  const setup = await single(t, { rotation: { every: 60, grace: 10 }, cookieRememberMe: { account: true }, cookieDuration: 300, deviceBinding: { credentialDuration: 600 } })
  const { browser, registration } = await boundBrowser(setup)
  t.match(setCookieHeaders(registration).find((line) => line.startsWith('bound=')), /Max-Age=300;/, 'a login of 300 s gets a bound cookie of 300 s')
  time.advance(61)
  const rotated = await browser.get(setup.app, '/me')
  t.equal(rotated.statusCode, 200)
  t.match(setCookieHeaders(rotated)[0], /^account=a3(\.[^.]+){6}\.1\.[^.]+\.[rs]ub\./, 'rotated to generation 1, still bound')
  t.equal((await browser.get(setup.app, '/me')).statusCode, 200, 'the bound cookie names the login, not the generation')
  time.advance(300 - 61 + 5)
  t.equal((await browser.get(setup.app, '/me')).statusCode, 401, 'the login expired')

  const { browser: second } = await boundBrowser(await single(t))
  time.advance(600 + 4)
  t.equal((await second.get(setup.app, '/me')).statusCode, 401)
})

test('the bound cookie expires: a few seconds of grace, then a refresh', async (t) => {
  const time = clock(t)
  const setup = await single(t, { deviceBinding: { credentialDuration: 600 } })
  const { browser } = await boundBrowser(setup)
  time.advance(600 + 4)
  t.equal((await browser.get(setup.app, '/me')).statusCode, 200, 'sent as the browser drops it: still its own')
  time.advance(1)
  t.equal((await browser.get(setup.app, '/me')).statusCode, 401, 'expired')
  t.equal((await browser.refresh(setup.app)).statusCode, 200)
  t.equal((await browser.get(setup.app, '/me')).statusCode, 200, 'refreshed')
  // A page that plants a bound cookie of its own beside the real one.
  const planted = await setup.app.inject({ url: '/me', headers: { ...HTTPS, cookie: `bound=b1.x.y.z; account=${browser.jar.account}; bound=${browser.jar.bound}` } })
  t.equal(planted.statusCode, 200, 'a planted bound cookie beside the real one changes nothing')
})

test('logout from the bound browser ends the login and expires the bound cookie; its session is refused then', async (t) => {
  const setup = await single(t)
  const { browser } = await boundBrowser(setup)
  const out = await browser.get(setup.app, '/logout')
  t.match(setCookieHeaders(out).find((line) => line.startsWith('bound=')), /^bound=; Max-Age=0;/, 'the bound cookie expires with the others')
  t.same((await setup.app.inject('/devices')).json(), [], 'the login ended')
  t.equal((await browser.refresh(setup.app)).statusCode, 401, 'the browser\'s refresh is refused: it ends its session')
  // A visitor without any cookie: a logout sets none.
  t.same(setCookieHeaders(await new DbscBrowser().get(setup.app, '/logout')), [])
})

test('a login offered binding is ended by its logout within the minute; later, unless bound', async (t) => {
  const time = clock(t)
  const setup = await single(t)
  const browser = new DbscBrowser()
  await browser.get(setup.app, '/login/1')
  await browser.get(setup.app, '/logout')
  t.same((await setup.app.inject('/devices')).json(), [], 'within the minute')
  const late = new DbscBrowser()
  await late.get(setup.app, '/login/1')
  time.advance(60)
  await late.get(setup.app, '/logout')
  t.same((await setup.app.inject('/devices')).json(), [], 'a minute on, never bound: ended')
  const bound = new DbscBrowser()
  const offer = offerOf(await bound.get(setup.app, '/login/1'))
  const copy = new DbscBrowser({ jar: bound.jar })
  await bound.register(setup.app, offer as NonNullable<typeof offer>)
  time.advance(60)
  await copy.get(setup.app, '/logout')
  t.equal(((await setup.app.inject('/devices')).json() as unknown[]).length, 1, 'a minute on, bound since: a copy of its pending cookie ends nothing')
  await bound.get(setup.app, '/login/2')
  t.same((await setup.app.inject('/devices')).json(), [], 'a login over it from its own browser ends it')
  // Within the minute, bound a second after the offer: its record says so.
  const soon = new DbscBrowser()
  const soonOffer = offerOf(await soon.get(setup.app, '/login/1'))
  const soonCopy = new DbscBrowser({ jar: { ...soon.jar } })
  await soon.register(setup.app, soonOffer as NonNullable<typeof soonOffer>)
  await soonCopy.get(setup.app, '/logout')
  t.equal(((await setup.app.inject('/devices')).json() as unknown[]).length, 1, 'within the minute, bound since: a copy of its pending cookie ends nothing either')
  t.match((await soon.get(setup.app, '/me')).json(), { bound: true }, 'and its browser goes on')
})

test('with storeCacheWindow, whether a login offered binding was bound is read from the store, never the window', async (t) => {
  const time = clock(t)
  const inner = memoryStore()
  // A store that cannot tell of endings elsewhere: its reads may be reused.
  const store = Object.fromEntries(Object.entries(inner).filter(([name]) => name !== 'subscribe')) as unknown as LoginStore
  const { app } = await single(t, { storeCacheWindow: 3600 }, store)
  const browser = new DbscBrowser()
  const offer = offerOf(await browser.get(app, '/login/1'))
  const copy = new DbscBrowser({ jar: { ...browser.jar } })
  t.equal((await browser.get(app, '/me')).statusCode, 200, 'read, and kept in the window, before it was bound')
  await browser.register(app, offer as NonNullable<typeof offer>)
  time.advance(60)
  t.equal((await copy.get(app, '/me')).statusCode, 401, 'a minute on, the copy of the pending cookie is anonymous')
  t.match((await browser.get(app, '/me')).json(), { bound: true }, 'its browser goes on')
  time.advance(3600)
  t.equal((await copy.get(app, '/me')).statusCode, 401, 'and the copy stays anonymous')
})

test('confirmLogin keeps a bound login bound to the same key, as a new login', async (t) => {
  const setup = await single(t)
  const { browser } = await boundBrowser(setup)
  const before = (await browser.get(setup.app, '/me')).json()
  const oldBound = browser.jar.bound
  const confirmed = await browser.get(setup.app, '/confirm')
  const after = confirmed.json()
  t.not(after.loginId, before.loginId, 'a new login id')
  t.equal(after.bound, true, 'still bound')
  t.equal(confirmed.headers['secure-session-registration'], undefined, 'nothing to register again')
  t.not(browser.jar.bound, oldBound, 'a bound cookie for the new login')
  t.equal(browser.jar.bound.split('.')[2], oldBound.split('.')[2], 'expiring when the old one would have')
  const records = (await setup.app.inject('/devices')).json() as LoginRecord[]
  t.same(records.map((record) => [record.loginId, record.bound, record.deviceSession]), [[after.loginId, true, browser.session]], 'the old login ended; the new one has its key and session')
  t.equal((await browser.get(setup.app, '/me')).statusCode, 200)
  t.equal((await browser.refresh(setup.app)).statusCode, 200, 'the browser\'s session refreshes the new login')

  // A login offered binding, confirmed: offered again under its new id (over https), not over http.
  const pending = new DbscBrowser()
  await pending.get(setup.app, '/login/2')
  const again = await pending.get(setup.app, '/confirm')
  t.equal(offerOf(again)?.path, '/device-binding/register', 'offered again')
  t.equal(again.json().bound, false)
  const overHttp = await setup.app.inject({ url: '/confirm', cookies: pending.jar })
  t.equal(overHttp.headers['secure-session-registration'], undefined, 'over http: not offered')
  t.match(setCookieHeaders(overHttp)[0], /^account=[^;]+\.[rs]\.\./)
})

test('a bound login ended elsewhere: anonymous, and its refresh refused', async (t) => {
  const setup = await single(t)
  const { browser } = await boundBrowser(setup)
  await setup.app.loginManager.revokeAllLogins('1')
  t.equal((await browser.get(setup.app, '/me')).statusCode, 401)
  t.equal((await browser.refresh(setup.app)).statusCode, 401)
})

test('the endpoints take no body', async (t) => {
  const { app } = await single(t)
  const response = await app.inject({ method: 'POST', url: '/device-binding/refresh', headers: { ...HTTPS, 'content-type': 'application/json' }, payload: '{"a":1}' })
  t.equal(response.statusCode, 413)
})

test('what the checks before them leave to the last ones: a challenge from the future, a short RSA key, a login ended while binding', async (t) => {
  const time = clock(t)
  const store = memoryStore()
  const setup = await single(t, {}, store)
  const { browser } = await boundBrowser(setup)
  time.advance(61)
  const asked = await browser.post(setup.app, '/device-binding/refresh', { 'sec-secure-session-id': browser.session as string })
  time.advance(-61)
  refused(t, await browser.post(setup.app, '/device-binding/refresh', { 'sec-secure-session-id': browser.session as string, 'secure-session-response': browser.token(challengeOf(asked)) }),
    401, /does not sign a refresh challenge of this app/, 'a challenge issued more than a minute in the future (a clock that is wrong)')

  // 342 characters of modulus, the first bytes zero: fewer than 2048 bits.
  const rsa = new DbscBrowser({ alg: 'RS256' })
  const offer = offerOf(await rsa.get(setup.app, '/login/2')) as NonNullable<ReturnType<typeof offerOf>>
  const short = { kty: 'RSA', e: 'AQAB', n: `AAAA${rsa.jwk.n.slice(4)}` }
  refused(t, await rsa.post(setup.app, offer.path, { 'secure-session-response': rsa.token(offer.challenge, { header: { jwk: short } }) }), 400, /RSA key \(`jwk`\) must have 2048 to 4096 bits/, 'a modulus with leading zeros')

  // The login ends between the binding and the read that follows it.
  const racing = countingStore()
  const raced = await single(t, {}, racing)
  const inner = racing.bind as NonNullable<LoginStore['bind']>
  racing.bind = (loginId, userId, key, session) => {
    const bound = inner(loginId, userId, key, session)
    racing.delete(loginId, userId)
    return bound
  }
  const late = new DbscBrowser()
  const lateOffer = offerOf(await late.get(raced.app, '/login/1')) as NonNullable<ReturnType<typeof offerOf>>
  refused(t, await late.register(raced.app, lateOffer), 401, /the login has ended/, 'a login that ended meanwhile')

  // A store that will not bind, and keeps the record unbound: not taken for
  // a registration tried again.
  const refusing = { ...memoryStore(), bind: () => false }
  const unbound = await single(t, {}, refusing)
  const turnedDown = new DbscBrowser()
  const turnedDownOffer = offerOf(await turnedDown.get(unbound.app, '/login/1')) as NonNullable<ReturnType<typeof offerOf>>
  refused(t, await turnedDown.register(unbound.app, turnedDownOffer), 409, /already bound to a key, or has ended/, 'a store that does not bind')
})
